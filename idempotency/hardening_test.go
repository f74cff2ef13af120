package idempotency

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/ddb"
	"github.com/dynaguard/dynaguard/internal/ddbtest"
)

// plainFingerprint is the unkeyed fingerprint the package used to store: what
// anyone holding a table dump can compute for a guessed request.
func plainFingerprint(r *http.Request, body []byte) []byte {
	h := sha256.New()
	var buf [binary.MaxVarintLen64]byte
	field := func(b []byte) {
		h.Write(binary.AppendUvarint(buf[:0], uint64(len(b))))
		h.Write(b)
	}
	h.Write([]byte("dynaguard/idempotency/v1 request\x00"))
	field([]byte(r.Method))
	field([]byte(r.URL.EscapedPath()))
	field([]byte(r.URL.RawQuery))
	field([]byte(r.Header.Get("Content-Type")))
	field(body)
	return h.Sum(nil)
}

// From a table dump, a low-entropy body (a password change) can no longer be
// recovered by hashing guesses: the stored fingerprints are keyed. Do's too.
func TestFingerprintsResistDictionary(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	g := e.guard(nil, nil)
	bodies := []string{`{"password":"hunter2"}`, `{"password":"Winter2026!"}`, `{"amount":100,"to":"bob"}`}
	for i, b := range bodies {
		serve(g.Handler(&counter{}), post("u1", "k"+string(rune('a'+i)), b))
	}
	if _, _, err := g.Do(t.Context(), "msg-1", []byte(bodies[0]), func(context.Context) ([]byte, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	var stored [][]byte
	for _, it := range ddbtest.Scan(t, e.tbl) {
		rec, err := parseRecord(rawItem(t, e, it[dynaguard.AttrPK]))
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, rec.fp)
	}
	if len(stored) != len(bodies)+1 {
		t.Fatalf("%d records", len(stored))
	}
	guesses := 0
	for _, fp := range stored {
		for _, b := range bodies {
			for _, cand := range [][]byte{plainFingerprint(post("", "", b), []byte(b)), sum(b), sum(`dynaguard/idempotency/v2 task` + "\x00" + string(sumBytes(b)))} {
				guesses++
				if bytes.Equal(fp, cand) {
					t.Fatalf("a stored fingerprint was matched by an unkeyed guess of %q", b)
				}
			}
		}
	}
	t.Logf("%d guesses, none matched", guesses)
}

func sumBytes(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }
func sum(s string) []byte      { return sumBytes(s) }

func rawItem(t *testing.T, e *env, pk string) map[string]types.AttributeValue {
	t.Helper()
	it := e.item(pk)
	if it == nil {
		t.Fatalf("no item %s", pk)
	}
	return it
}

// A Do record fingerprinted under the previous secret still matches after a
// rotation: the result is replayed, fn is not run again.
func TestDoFingerprintAcrossRotation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	g1 := e.guard(nil, nil) // secret 1
	k21, _ := dynaguard.NewKeyring(secret(2), secret(1))
	g2 := e.guard(nil, func(c *Config) { c.Keyring = k21 })
	var runs atomic.Int64
	fn := func(context.Context) ([]byte, error) { runs.Add(1); return []byte("ok"), nil }
	if _, _, err := g1.Do(t.Context(), "m", []byte("payload"), fn); err != nil {
		t.Fatal(err)
	}
	res, replayed, err := g2.Do(t.Context(), "m", []byte("payload"), fn)
	if err != nil || !replayed || string(res) != "ok" || runs.Load() != 1 {
		t.Fatalf("after rotation: %q %v %v runs=%d", res, replayed, err, runs.Load())
	}
	if _, _, err := g2.Do(t.Context(), "m", []byte("other"), fn); !errors.Is(err, ErrFingerprintMismatch) {
		t.Fatalf("different payload after rotation: %v", err)
	}
}

// Final, then a completion that keeps failing: the key is never taken over.
// Duplicates get 409 (outcome unknown once the lease has lapsed), and the
// retried completion eventually replays — the handler ran once.
func TestFinalSurvivesFailedCompletion(t *testing.T) {
	t.Parallel()
	tbl, faults := ddbtest.Inject(ddbtest.NewTable(t))
	e := &env{t: t, tbl: tbl, clock: ddbtest.NewClock(time.Now()), log: &logBuf{}}
	g := e.guard(nil, nil)
	var runs atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		runs.Add(1)
		if err := Final(r.Context()); err != nil {
			t.Errorf("Final: %v", err)
		}
		faults.Fail("UpdateItem", ddbtest.Throttling) // every write after the mark fails
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, "charged")
	})
	if w := serve(g.Handler(h), post("u1", "k", "{}")); w.Code != http.StatusCreated {
		t.Fatalf("first: %d", w.Code)
	}
	if w := serve(g.Handler(h), post("u1", "k", "{}")); w.Code != http.StatusConflict || reason(t, w) != ReasonInFlight {
		t.Fatalf("within the lease: %d %s", w.Code, w.Body)
	}
	e.clock.Advance(DefaultLease + DefaultMaxClockSkew + time.Second)
	for _, g := range []*Guard{g, e.guard(nil, nil)} {
		w := serve(g.Handler(h), post("u1", "k", "{}"))
		if w.Code != http.StatusConflict || reason(t, w) != ReasonOutcomeUnknown || w.Header().Get("Retry-After") == "" {
			t.Fatalf("after the lease: %d %s", w.Code, w.Body)
		}
	}
	faults.Clear()
	waitFor(t, "the retried completion", func() bool {
		st, _ := ddb.Str(e.item(pkFor("u1", "k")), attrState)
		return st == stateDone
	})
	w := serve(g.Handler(h), post("u1", "k", "{}"))
	if w.Code != http.StatusCreated || !replayed(w) || w.Body.String() != "charged" || runs.Load() != 1 {
		t.Fatalf("replay: %d %s runs=%d", w.Code, w.Body, runs.Load())
	}
}

// A succeeded Do whose completion fails is marked final before Do returns:
// after the lease, a duplicate is not run.
func TestDoSuccessNeverTakenOver(t *testing.T) {
	t.Parallel()
	tbl, faults := ddbtest.Inject(ddbtest.NewTable(t))
	e := &env{t: t, tbl: tbl, clock: ddbtest.NewClock(time.Now()), log: &logBuf{}}
	g := e.guard(nil, func(c *Config) { c.CompletionRetry = 200 * time.Millisecond })
	var runs atomic.Int64
	fn := func(context.Context) ([]byte, error) {
		runs.Add(1)
		faults.FailNth("UpdateItem", 1, ddbtest.InternalError) // the completion; the mark after it lands
		return []byte("sent"), nil
	}
	if res, _, err := g.Do(t.Context(), "m", nil, fn); err != nil || string(res) != "sent" {
		t.Fatalf("first: %q %v", res, err)
	}
	faults.Fail("UpdateItem", ddbtest.InternalError) // and every retry fails
	g.retries.Wait()
	e.clock.Advance(DefaultLease + DefaultMaxClockSkew + time.Second)
	if _, _, err := g.Do(t.Context(), "m", nil, fn); !errors.Is(err, ErrOutcomeUnknown) || runs.Load() != 1 {
		t.Fatalf("after the lease: %v runs=%d", err, runs.Load())
	}
}

// Renewals that keep failing cancel the handler, with cause ErrLeaseLost,
// before the lease they last secured lapses; its outcome is not stored, and
// another instance takes over only after lease + skew.
func TestFailingRenewalsCancelBeforeLapse(t *testing.T) {
	t.Parallel()
	matrixRenew(t, ddbtest.Throttling) // faultmatrix_test.go: every fault class
}

// The fencing token grows with every claim of a key.
func TestFenceGrowsOnTakeover(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	g := e.guard(nil, nil)
	g.renewEvery = time.Hour
	var fences []int64
	b := newBlocker(http.StatusCreated, "x")
	done := make(chan struct{})
	go func() { serve(g.Handler(b), post("u1", "k", "{}")); close(done) }()
	c := <-b.started
	fences = append(fences, c.fence)
	e.clock.Advance(DefaultLease + DefaultMaxClockSkew + time.Millisecond)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, ok := Fence(r.Context())
		if !ok {
			t.Error("no fence in the handler's context")
		}
		fences = append(fences, f)
		w.WriteHeader(http.StatusCreated)
	})
	serve(g.Handler(h), post("u1", "k", "{}"))
	close(b.release)
	<-done
	if len(fences) != 2 || fences[1] <= fences[0] {
		t.Fatalf("fences %v", fences)
	}
	if _, ok := Fence(t.Context()); ok {
		t.Fatal("fence outside a claim")
	}
}

// The associated data covers the stored fields that shape a replay: a
// status, encoding or omitted length changed in the table makes the record
// unreadable (status only, never executed again), not a different replay.
func TestSealCoversReplayFields(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		attr string
		val  types.AttributeValue
	}{
		{attrStatus, ddb.N(200)},
		{attrOmitted, ddb.N(5)},
		{attrEnc, ddb.S("gzip")},
		{attrFP, ddb.B(bytes.Repeat([]byte{1}, 32))},
	} {
		t.Run(tc.attr, func(t *testing.T) {
			e := newEnv(t)
			g := e.guard(nil, nil)
			h := &counter{}
			serve(g.Handler(h), post("u1", "k", "{}"))
			pk := pkFor("u1", "k")
			_, err := ddbtest.Client(t).UpdateItem(t.Context(), &dynamodb.UpdateItemInput{
				TableName: aws.String(e.tbl.Name), Key: ddb.Key(pk),
				UpdateExpression:          aws.String("SET #a = :v"),
				ExpressionAttributeNames:  map[string]string{"#a": tc.attr},
				ExpressionAttributeValues: map[string]types.AttributeValue{":v": tc.val},
			})
			if err != nil {
				t.Fatal(err)
			}
			rec, err := parseRecord(e.item(pk))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := g.open(pk, rec)
			if err == nil || !resp.unreadable {
				t.Fatalf("tampered %s: opened %+v", tc.attr, resp)
			}
			if h.n.Load() != 1 {
				t.Fatal("ran twice")
			}
		})
	}
}

// A replay must not be kept by any cache.
func TestReplayIsNoStore(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	g := e.guard(nil, func(c *Config) { c.CacheBytes = 1 << 20 }).Handler(&counter{})
	serve(g, post("u1", "k", "{}"))
	for range 2 { // from the table, then from the cache
		w := serve(g, post("u1", "k", "{}"))
		if !replayed(w) || w.Header().Get("Cache-Control") != "no-store" {
			t.Fatalf("replay headers %v", w.Header())
		}
	}
	if w := serve(g, post("u1", "k", `{"other":1}`)); w.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("the guard's own answer: %v", w.Header())
	}
	_ = strings.TrimSpace
}
