package nonce

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/ddb"
	"github.com/dynaguard/dynaguard/internal/ddbtest"
)

// sweep does what DynamoDB's TTL sweeper may do at time at: delete every item
// whose ttl has passed. (DynamoDB Local sweeps by the wall clock, which the
// fake clocks of these tests do not follow.)
func sweep(t *testing.T, tbl *dynaguard.Table, at time.Time) (deleted int) {
	t.Helper()
	for _, it := range ddbtest.Scan(t, tbl) {
		var ttl int64
		if _, err := fmt.Sscan(it[dynaguard.AttrTTL], &ttl); err != nil {
			t.Fatal(err)
		}
		if ttl <= at.Unix() {
			_, err := ddbtest.Client(t).DeleteItem(context.Background(), &dynamodb.DeleteItemInput{
				TableName: aws.String(tbl.Name), Key: ddb.Key(it[dynaguard.AttrPK])})
			if err != nil {
				t.Fatal(err)
			}
			deleted++
		}
	}
	return deleted
}

// Two instances share the table; B's clock runs 15 minutes behind A's. A
// token consumed on A just before it expires is replayed on B after the
// table's TTL sweep has run at A's time: B still thinks the token is live,
// so only the consumption record can stop the replay, and it must still be
// there.
func TestSkewedClocksCannotReplayAfterSweep(t *testing.T) {
	tbl := ddbtest.NewTable(t)
	clockA := ddbtest.NewClock(t0)
	clockB := ddbtest.NewClock(t0.Add(-15 * time.Minute))
	skew := func(c *Config) { c.MaxClockSkew = 20 * time.Minute }
	a := newEnvOn(t, tbl, clockA, skew)
	b := newEnvOn(t, tbl, clockB, skew)
	br := a.newBrowser()
	tok := a.token(br, "transfer")

	clockA.Advance(DefaultTTL - time.Second)
	clockB.Advance(DefaultTTL - time.Second)
	if res := a.submit(br, tok, "transfer"); !res.called {
		t.Fatalf("first submission on A refused: %v", res.err)
	}
	// Sweep at A's time, a minute after the token expired.
	clockA.Advance(time.Minute + time.Second)
	clockB.Advance(time.Minute + time.Second)
	sweep(t, tbl, clockA.Now())
	res := b.submit(br, tok, "transfer")
	if res.called || !errors.Is(res.err, ErrAlreadyUsed) {
		t.Fatalf("replay on the slow instance after the sweep: called %v, err %v", res.called, res.err)
	}
}

// A token issued by an instance whose clock runs fast by more than the
// allowed skew is refused; within the skew it is accepted.
func TestTokenFromTheFutureRefused(t *testing.T) {
	tbl := ddbtest.NewTable(t)
	fast := newEnvOn(t, tbl, ddbtest.NewClock(t0.Add(10*time.Minute)))
	slightlyFast := newEnvOn(t, tbl, ddbtest.NewClock(t0.Add(4*time.Minute)))
	now := newEnvOn(t, tbl, ddbtest.NewClock(t0))
	br := now.newBrowser()

	res := now.submit(br, fast.token(br, "transfer"), "transfer")
	if res.called || !errors.Is(res.err, ErrNotYetValid) || res.w.Code != http.StatusForbidden {
		t.Fatalf("token dated 10 min ahead: called %v, err %v, status %d", res.called, res.err, res.w.Code)
	}
	if Reason(res.err) != "nonce-not-yet-valid" {
		t.Fatalf("reason %q", Reason(res.err))
	}
	if res := now.submit(br, slightlyFast.token(br, "transfer"), "transfer"); !res.called {
		t.Fatalf("token dated 4 min ahead (within the 5 min skew) refused: %v", res.err)
	}
}

func TestRecordMarginConfig(t *testing.T) {
	tbl := ddbtest.NewTable(t)
	_, err := New(Config{Table: tbl, Keys: keyring(t, secretA), MaxClockSkew: time.Hour, RecordMargin: time.Minute})
	if err == nil {
		t.Fatal("a margin shorter than the skew was accepted")
	}
}

// With the token in the header the form is not parsed, but the body is still
// limited: a declared oversized body is refused before the token is used,
// and a streamed one fails the handler's read at the limit.
func TestHeaderTokenBodyLimited(t *testing.T) {
	const limit = 64 << 10
	e := newEnv(t, func(c *Config) { c.MaxBodyBytes = limit })
	b := e.newBrowser()
	big := strings.Repeat("a", 20<<20)

	tok := e.token(b, "save")
	r := httptest.NewRequest("POST", "/save", strings.NewReader("note="+big))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set(DefaultHeaderName, tok)
	r.AddCookie(b.cookie)
	res := e.serve("save", r)
	if res.called || !errors.Is(res.err, ErrBodyTooLarge) || res.w.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("declared 20 MB body: called %v, err %v, status %d", res.called, res.err, res.w.Code)
	}
	if e.rec.Count("") != 0 {
		t.Fatal("the token was consumed for a refused body")
	}

	// Streamed (no Content-Length): the handler's read stops at the limit.
	r = httptest.NewRequest("POST", "/save", io.MultiReader(strings.NewReader("note="), strings.NewReader(big)))
	r.ContentLength = -1
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set(DefaultHeaderName, tok)
	r.AddCookie(b.cookie)
	var parseErr error
	var n int64
	w := httptest.NewRecorder()
	e.m.Require("save")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		parseErr = r.ParseForm()
		n = int64(len(r.PostForm.Get("note")))
	})).ServeHTTP(w, r)
	var mbe *http.MaxBytesError
	if !errors.As(parseErr, &mbe) || n > limit {
		t.Fatalf("streamed 20 MB body: ParseForm err %v, field of %d bytes parsed", parseErr, n)
	}
}

// A multipart form larger than 32 MiB in total (net/http's usual in-memory
// budget) but within MaxBodyBytes is kept in memory: no temporary file.
func TestMultipartStaysInMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates 33 MiB")
	}
	const limit = 34 << 20
	e := newEnv(t, func(c *Config) { c.MaxBodyBytes = limit })
	b := e.newBrowser()
	tok := e.token(b, "upload")
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	_ = mw.WriteField(DefaultFieldName, tok)
	fw, _ := mw.CreateFormFile("file", "big.bin")
	_, _ = fw.Write(bytes.Repeat([]byte{'x'}, 33<<20))
	_ = mw.Close()
	r := httptest.NewRequest("POST", "/upload", &body)
	r.Header.Set("Content-Type", mw.FormDataContentType())
	r.AddCookie(b.cookie)
	w := httptest.NewRecorder()
	onDisk := true
	e.m.Require("upload")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fh := r.MultipartForm.File["file"][0]
		f, err := fh.Open()
		if err != nil {
			t.Error(err)
			return
		}
		defer f.Close()
		_, onDisk = f.(*os.File)
	})).ServeHTTP(w, r)
	if w.Code != http.StatusOK || onDisk {
		t.Fatalf("status %d, file part on disk: %v", w.Code, onDisk)
	}
}
