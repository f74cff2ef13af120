package idempotency

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/authctx"
	"github.com/dynaguard/dynaguard/internal/ddb"
	"github.com/dynaguard/dynaguard/internal/ddbtest"
)

// 100 concurrent copies of one request through two Guards sharing a table:
// the handler runs once, every other copy gets 409 or the replayed response,
// and no copy gets a different body.
func TestConcurrentDuplicatesAcrossInstancesRunOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	h := &counter{delay: 20 * time.Millisecond}
	handlers := []http.Handler{e.guard(nil, contended).Handler(h), e.guard(nil, contended).Handler(h)}

	const n = 100
	results := make([]*httptest.ResponseRecorder, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i] = serve(handlers[i%2], post("u1", "k-concurrent", `{"amount":10}`))
		}()
	}
	close(start)
	wg.Wait()

	if got := h.n.Load(); got != 1 {
		t.Fatalf("handler ran %d times, want 1", got)
	}
	var first []byte
	var fresh, replays, conflicts int
	for _, w := range results {
		switch {
		case w.Code == http.StatusCreated && !replayed(w):
			fresh++
			first = w.Body.Bytes()
		case w.Code == http.StatusCreated:
			replays++
		case w.Code == http.StatusConflict:
			conflicts++
			if reason(t, w) != ReasonInFlight || w.Header().Get("Retry-After") == "" {
				t.Fatalf("409 without reason or Retry-After: %v %s", w.Header(), w.Body)
			}
		default:
			t.Fatalf("unexpected answer %d: %s", w.Code, w.Body)
		}
	}
	if fresh != 1 {
		t.Fatalf("%d executed responses, want 1", fresh)
	}
	for _, w := range results {
		if w.Code == http.StatusCreated && !bytes.Equal(w.Body.Bytes(), first) {
			t.Fatalf("a copy got a different body: %s vs %s", w.Body, first)
		}
	}
	// Once complete, every instance replays it.
	for _, hh := range handlers {
		w := serve(hh, post("u1", "k-concurrent", `{"amount":10}`))
		if w.Code != http.StatusCreated || !replayed(w) || !bytes.Equal(w.Body.Bytes(), first) {
			t.Fatalf("late replay: %d %v %s", w.Code, w.Header(), w.Body)
		}
	}
	t.Logf("1 executed, %d replayed, %d told 409", replays, conflicts)
}

// blocker is a handler that signals when it starts and waits for release.
type blocker struct {
	started chan *claimState
	release chan struct{}
	status  int
	body    string
	ctxErr  chan error
}

func newBlocker(status int, body string) *blocker {
	return &blocker{started: make(chan *claimState, 1), release: make(chan struct{}), status: status, body: body, ctxErr: make(chan error, 1)}
}

func (b *blocker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, _ := r.Context().Value(claimKey{}).(*claimState)
	b.started <- c
	select {
	case <-b.release:
	case <-r.Context().Done():
		b.ctxErr <- context.Cause(r.Context())
		<-b.release
	}
	w.WriteHeader(b.status)
	_, _ = io.WriteString(w, b.body)
}

// A worker that stalls past its lease loses the key to a retry; its late
// completion is refused and leaves the new owner's record intact.
func TestCrashTakeoverAndLateCompletionRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	noRenew := func(c *Config) { c.Lease = 5 * time.Second }
	g1, g2 := e.guard(nil, noRenew), e.guard(nil, noRenew)
	g1.renewEvery = time.Hour // the stalled worker never renews
	old := newBlocker(http.StatusCreated, "from the stalled worker")
	oldDone := make(chan *httptest.ResponseRecorder)
	go func() { oldDone <- serve(g1.Handler(old), post("u1", "k", "{}")) }()
	<-old.started

	var runs atomic.Int64
	second := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		runs.Add(1)
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, "from the new owner")
	})
	if w := serve(g2.Handler(second), post("u1", "k", "{}")); w.Code != http.StatusConflict {
		t.Fatalf("while the lease is live: %d, want 409", w.Code)
	}
	e.clock.Advance(5*time.Second + g2.skew + time.Millisecond)
	if w := serve(g2.Handler(second), post("u1", "k", "{}")); w.Code != http.StatusCreated || replayed(w) || runs.Load() != 1 {
		t.Fatalf("takeover after the lease lapsed: %d %s (runs %d)", w.Code, w.Body, runs.Load())
	}

	close(old.release)
	w := <-oldDone
	if w.Code != http.StatusCreated || w.Body.String() != "from the stalled worker" {
		t.Fatalf("the stalled worker's client must still get its response: %d %s", w.Code, w.Body)
	}
	if !strings.Contains(e.log.String(), "late completion refused") {
		t.Fatalf("refused completion not logged: %s", e.log)
	}
	for _, g := range []*Guard{g1, g2} {
		w := serve(g.Handler(second), post("u1", "k", "{}"))
		if w.Code != http.StatusCreated || !replayed(w) || w.Body.String() != "from the new owner" {
			t.Fatalf("replay after takeover: %d %s", w.Code, w.Body)
		}
	}
	if runs.Load() != 1 {
		t.Fatalf("new owner ran %d times", runs.Load())
	}
}

// A stalled worker whose request then fails must not delete the new
// owner's claim either.
func TestLateReleaseRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	g1, g2 := e.guard(nil, nil), e.guard(nil, nil)
	g1.renewEvery, g2.renewEvery = time.Hour, time.Hour
	old := newBlocker(http.StatusInternalServerError, "failed")
	oldDone := make(chan *httptest.ResponseRecorder)
	go func() { oldDone <- serve(g1.Handler(old), post("u1", "k", "{}")) }()
	<-old.started
	e.clock.Advance(DefaultLease + DefaultMaxClockSkew)

	cur := newBlocker(http.StatusCreated, "new owner")
	curDone := make(chan *httptest.ResponseRecorder)
	go func() { curDone <- serve(g2.Handler(cur), post("u1", "k", "{}")) }()
	<-cur.started

	close(old.release)
	<-oldDone
	if !strings.Contains(e.log.String(), "release refused") {
		t.Fatalf("refused release not logged: %s", e.log)
	}
	if w := serve(g1.Handler(cur), post("u1", "k", "{}")); w.Code != http.StatusConflict {
		t.Fatalf("the new owner's claim must survive the old owner's release: %d", w.Code)
	}
	close(cur.release)
	<-curDone
	if w := serve(g1.Handler(cur), post("u1", "k", "{}")); !replayed(w) || w.Body.String() != "new owner" {
		t.Fatalf("replay: %d %s", w.Code, w.Body)
	}
}

// A crashed request's key cannot be taken over by a different payload.
func TestTakeoverRequiresSamePayload(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	g := e.guard(nil, nil)
	g.renewEvery = time.Hour
	old := newBlocker(http.StatusCreated, "x")
	done := make(chan struct{})
	go func() { serve(g.Handler(old), post("u1", "k", `{"a":1}`)); close(done) }()
	<-old.started
	e.clock.Advance(DefaultLease + DefaultMaxClockSkew + time.Second)
	h := &counter{}
	if w := serve(g.Handler(h), post("u1", "k", `{"a":2}`)); w.Code != http.StatusUnprocessableEntity || reason(t, w) != ReasonKeyReused {
		t.Fatalf("different payload after a crash: %d %s", w.Code, w.Body)
	}
	if w := serve(g.Handler(h), post("u1", "k", `{"a":1}`)); w.Code != http.StatusCreated || h.n.Load() != 1 {
		t.Fatalf("same payload takes over: %d", w.Code)
	}
	close(old.release)
	<-done
}

// A long handler renews its lease, so a duplicate arriving after the
// original lease would have lapsed still gets 409.
func TestLeaseRenewedWhileHandlerRuns(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	g := e.guard(nil, nil)
	g.renewEvery = 5 * time.Millisecond
	b := newBlocker(http.StatusCreated, "done")
	done := make(chan struct{})
	go func() { serve(g.Handler(b), post("u1", "k", "{}")); close(done) }()
	<-b.started
	pk := pkFor("u1", "k")
	first, _ := ddb.Int(e.item(pk), attrLease)
	e.clock.Advance(DefaultLease * 9 / 10)
	waitFor(t, "a renewal", func() bool {
		l, _ := ddb.Int(e.item(pk), attrLease)
		return l > first
	})
	e.clock.Advance(DefaultLease / 2) // past the original lease
	if w := serve(g.Handler(&counter{}), post("u1", "k", "{}")); w.Code != http.StatusConflict {
		t.Fatalf("renewed lease not honoured: %d", w.Code)
	}
	close(b.release)
	<-done
}

// When a renewal finds the key taken over, the handler's context is
// canceled with ErrLeaseLost as its cause.
func TestLeaseLostCancelsHandler(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	g := e.guard(nil, nil)
	g.renewEvery = time.Hour
	b := newBlocker(http.StatusCreated, "late")
	done := make(chan struct{})
	go func() { serve(g.Handler(b), post("u1", "k", "{}")); close(done) }()
	c := <-b.started
	e.clock.Advance(DefaultLease + DefaultMaxClockSkew)
	if w := serve(g.Handler(&counter{}), post("u1", "k", "{}")); w.Code != http.StatusCreated {
		t.Fatalf("takeover: %d", w.Code)
	}
	c.renew() // the stalled worker's next renewal
	if err := <-b.ctxErr; !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("context cause %v, want ErrLeaseLost", err)
	}
	close(b.release)
	<-done
	if w := serve(g.Handler(&counter{}), post("u1", "k", "{}")); !replayed(w) || !strings.Contains(w.Body.String(), `"execution":1`) {
		t.Fatalf("the new owner's response must stand: %d %s", w.Code, w.Body)
	}
}

func TestPayloadMismatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	h := &counter{}
	g := e.guard(nil, func(c *Config) { c.Rules.Methods = []string{"POST", "PATCH", "PUT"} }).Handler(h)
	if w := serve(g, post("u1", "k", `{"a":1}`)); w.Code != http.StatusCreated {
		t.Fatal(w.Code)
	}
	variants := map[string]func() *http.Request{
		"body": func() *http.Request { return post("u1", "k", `{"a":2}`) },
		"path": func() *http.Request {
			r := post("u1", "k", `{"a":1}`)
			r.URL.Path = "/other"
			return r
		},
		"query": func() *http.Request {
			r := post("u1", "k", `{"a":1}`)
			r.URL.RawQuery = "dry_run=1"
			return r
		},
		"content type": func() *http.Request {
			r := post("u1", "k", `{"a":1}`)
			r.Header.Set("Content-Type", "text/plain")
			return r
		},
		"method": func() *http.Request {
			r := post("u1", "k", `{"a":1}`)
			r.Method = http.MethodPut
			return r
		},
	}
	for name, mk := range variants {
		w := serve(g, mk())
		if w.Code != http.StatusUnprocessableEntity || reason(t, w) != ReasonKeyReused {
			t.Errorf("different %s: %d %s", name, w.Code, w.Body)
		}
	}
	if h.n.Load() != 1 {
		t.Fatalf("handler ran %d times", h.n.Load())
	}
}

func TestKeyHeaderErrors(t *testing.T) {
	t.Parallel()
	tbl, rec := ddbtest.Record(ddbtest.NewTable(t))
	e := &env{t: t, tbl: tbl, clock: ddbtest.NewClock(time.Now()), log: &logBuf{}}
	h := &counter{}
	g := e.guard(nil, nil)
	required, optional := g.Require(h), g.Handler(h)

	if w := serve(required, post("u1", "", "{}")); w.Code != http.StatusBadRequest || reason(t, w) != ReasonKeyMissing {
		t.Fatalf("missing key on a required route: %d %s", w.Code, w.Body)
	}
	for _, v := range []string{`""`, `"unterminated`, `a b`, `"x";p=1`, strings.Repeat("k", 256), "caf\u00e9"} {
		r := post("u1", "", "{}")
		r.Header.Set(HeaderKey, v)
		if w := serve(optional, r); w.Code != http.StatusBadRequest || reason(t, w) != ReasonKeyMalformed {
			t.Fatalf("malformed key %q: %d %s", v, w.Code, w.Body)
		}
	}
	r := post("u1", "", "{}")
	r.Header.Add(HeaderKey, `"a"`)
	r.Header.Add(HeaderKey, `"b"`)
	if w := serve(optional, r); w.Code != http.StatusBadRequest || reason(t, w) != ReasonKeyMalformed {
		t.Fatalf("two key fields: %d", w.Code)
	}
	if h.n.Load() != 0 || rec.Count("") != 0 {
		t.Fatalf("refused requests ran (%d) or touched the table (%d calls)", h.n.Load(), rec.Count(""))
	}
	// No key on an optional route, or another method: passed through.
	if w := serve(optional, post("u1", "", "{}")); w.Code != http.StatusCreated || replayed(w) {
		t.Fatalf("optional route without key: %d", w.Code)
	}
	get := httptest.NewRequest(http.MethodGet, "/orders", nil)
	get.Header.Set(HeaderKey, "not checked")
	if w := serve(required, get); w.Code != http.StatusCreated {
		t.Fatalf("GET passes through: %d", w.Code)
	}
	if h.n.Load() != 2 || rec.Count("") != 0 {
		t.Fatalf("pass-through: runs %d, calls %d", h.n.Load(), rec.Count(""))
	}
	// A browser gets a page, not JSON.
	r = post("u1", "", "{}")
	r.Header.Set("Sec-Fetch-Mode", "navigate")
	if w := serve(required, r); w.Code != http.StatusBadRequest || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("browser: %d %q", w.Code, w.Header().Get("Content-Type"))
	}
	// Bare and quoted forms name the same key.
	r = post("u1", "", "{}")
	r.Header.Set(HeaderKey, "same-key")
	serve(optional, r)
	r = post("u1", "", "{}")
	r.Header.Set(HeaderKey, `"same-key"`)
	if w := serve(optional, r); !replayed(w) {
		t.Fatalf("quoted form of a bare key not replayed: %d", w.Code)
	}
}

func TestBodyLimitAndBodyHandedOver(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var got []byte
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, _ = io.ReadAll(r.Body)
		if r.ContentLength != int64(len(got)) {
			t.Errorf("ContentLength %d, body %d", r.ContentLength, len(got))
		}
		w.WriteHeader(http.StatusAccepted)
	})
	g := e.guard(nil, func(c *Config) { c.MaxBodyBytes = 16 }).Handler(h)

	if w := serve(g, post("u1", "k1", strings.Repeat("x", 17))); w.Code != http.StatusRequestEntityTooLarge || reason(t, w) != ReasonBodyTooLarge {
		t.Fatalf("over the limit: %d %s", w.Code, w.Body)
	}
	r := post("u1", "k2", "")
	r.Body = io.NopCloser(strings.NewReader(strings.Repeat("y", 40))) // unknown length
	r.ContentLength = -1
	if w := serve(g, r); w.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("chunked body over the limit: %d", w.Code)
	}
	r = post("u1", "k3", "")
	r.Body = io.NopCloser(io.MultiReader(strings.NewReader("abc"), errReader{}))
	r.ContentLength = -1
	if w := serve(g, r); w.Code != http.StatusBadRequest || reason(t, w) != ReasonBodyUnreadable {
		t.Fatalf("broken body: %d %s", w.Code, w.Body)
	}
	if got != nil {
		t.Fatal("handler ran for a refused body")
	}
	body := strings.Repeat("z", 16)
	if w := serve(g, post("u1", "k4", body)); w.Code != http.StatusAccepted || string(got) != body {
		t.Fatalf("at the limit: %d, handler read %q", w.Code, got)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

func TestReplayHeadersAllowlist(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Location", "/orders/7")
		w.Header().Set("X-Request-Id", "per-request")
		http.SetCookie(w, &http.Cookie{Name: "session", Value: "client-A-secret"})
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"id":7}`)
		w.Header().Set("Etag", `"too-late"`) // after WriteHeader: not sent, not stored
	})
	g := e.guard(nil, nil).Handler(h)
	first := serve(g, post("u1", "k", "{}"))
	if first.Header().Get("Set-Cookie") == "" || replayed(first) {
		t.Fatalf("first response: %v", first.Header())
	}
	w := serve(g, post("u1", "k", "{}"))
	if w.Code != http.StatusCreated || w.Body.String() != `{"id":7}` || !replayed(w) {
		t.Fatalf("replay: %d %v %s", w.Code, w.Header(), w.Body)
	}
	if w.Header().Get("Location") != "/orders/7" || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("allowlisted headers missing: %v", w.Header())
	}
	for _, h := range []string{"Set-Cookie", "X-Request-Id", "Etag"} {
		if v := w.Header().Get(h); v != "" {
			t.Fatalf("%s replayed: %q", h, v)
		}
	}
	if strings.Contains(ddbtest.Dump(t, e.tbl), "client-A-secret") {
		t.Fatal("Set-Cookie stored")
	}
}

func TestServerErrorsAndPanicsReleaseTheKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	g := e.guard(nil, nil)
	for _, fail := range []string{"500", "503", "429", "panic", "abort"} {
		t.Run(fail, func(t *testing.T) {
			var runs atomic.Int64
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if runs.Add(1) == 1 {
					switch fail {
					case "panic":
						panic("boom")
					case "abort":
						panic(http.ErrAbortHandler)
					}
					code := 0
					fmt.Sscan(fail, &code)
					w.WriteHeader(code)
					return
				}
				w.WriteHeader(http.StatusCreated)
			})
			key := "k-" + fail
			w, pv := servePanic(g.Handler(h), post("u1", key, "{}"))
			if strings.HasPrefix(fail, "p") || fail == "abort" {
				if pv == nil {
					t.Fatal("the panic must reach the application's recovery")
				}
			} else if w.Code < 429 {
				t.Fatalf("first: %d", w.Code)
			}
			w = serve(g.Handler(h), post("u1", key, "{}"))
			if w.Code != http.StatusCreated || replayed(w) || runs.Load() != 2 {
				t.Fatalf("retry after %s: %d replayed=%v runs=%d", fail, w.Code, replayed(w), runs.Load())
			}
		})
	}
}

func TestFinalAndStoredFailures(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	g := e.guard(nil, nil)
	var runs atomic.Int64
	finalThen500 := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		runs.Add(1)
		if err := Final(r.Context()); err != nil {
			t.Errorf("Final: %v", err)
		}
		http.Error(w, "ledger unavailable", http.StatusBadGateway)
	})
	serve(g.Handler(finalThen500), post("u1", "k1", "{}"))
	if w := serve(g.Handler(finalThen500), post("u1", "k1", "{}")); w.Code != http.StatusBadGateway || !replayed(w) || runs.Load() != 1 {
		t.Fatalf("final 502: %d replayed=%v runs=%d", w.Code, replayed(w), runs.Load())
	}

	runs.Store(0)
	finalThenPanic := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		runs.Add(1)
		Final(r.Context())
		panic("after the charge")
	})
	if _, pv := servePanic(g.Handler(finalThenPanic), post("u1", "k2", "{}")); pv == nil {
		t.Fatal("panic swallowed")
	}
	w := serve(g.Handler(finalThenPanic), post("u1", "k2", "{}"))
	if w.Code != http.StatusInternalServerError || !replayed(w) || reason(t, w) != ReasonFailedFinal || runs.Load() != 1 {
		t.Fatalf("final panic: %d %s runs=%d", w.Code, w.Body, runs.Load())
	}

	runs.Store(0)
	plain500 := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		runs.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
	})
	store := g.With(Rules{StoreServerErrors: true})(plain500)
	serve(store, post("u1", "k3", "{}"))
	if w := serve(store, post("u1", "k3", "{}")); w.Code != http.StatusInternalServerError || !replayed(w) || runs.Load() != 1 {
		t.Fatalf("StoreServerErrors: %d runs=%d", w.Code, runs.Load())
	}

	if err := Final(context.Background()); !errors.Is(err, ErrNotClaimed) {
		t.Fatalf("Final outside a keyed request: %v", err)
	}
}

func TestClientErrorsAreReplayed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var runs atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		runs.Add(1)
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"title":"insufficient funds"}`)
	})
	g := e.guard(nil, nil).Handler(h)
	serve(g, post("u1", "k", "{}"))
	w := serve(g, post("u1", "k", "{}"))
	if w.Code != http.StatusBadRequest || !replayed(w) || w.Body.String() != `{"title":"insufficient funds"}` || runs.Load() != 1 {
		t.Fatalf("4xx replay: %d %s runs=%d", w.Code, w.Body, runs.Load())
	}
}

func TestLargeResponseGoesOutAndIsNotKept(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	big := make([]byte, 600<<10) // random: does not compress
	_, _ = rand.Read(big)
	var runs atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		runs.Add(1)
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Location", "/exports/9")
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write(big)
	})
	g := e.guard(nil, func(c *Config) { c.CacheBytes = 64 << 20 }).Handler(h)
	first := serve(g, post("u1", "k", "{}"))
	if first.Code != http.StatusCreated || !bytes.Equal(first.Body.Bytes(), big) {
		t.Fatalf("first response harmed: %d, %d bytes", first.Code, first.Body.Len())
	}
	item := e.item(pkFor("u1", "k"))
	if n, _ := ddb.Int(item, attrOmitted); n != int64(len(big)) {
		t.Fatalf("omitted = %d, want %d", n, len(big))
	}
	for i := 0; i < 2; i++ { // from the cache, then again
		w := serve(g, post("u1", "k", "{}"))
		if w.Code != http.StatusCreated || !replayed(w) || reason(t, w) != ReasonResponseNotKept || w.Header().Get("Location") != "/exports/9" {
			t.Fatalf("replay of an unkept body: %d %v %s", w.Code, w.Header(), w.Body)
		}
	}
	// From the table, on another instance.
	w := serve(e.guard(nil, nil).Handler(h), post("u1", "k", "{}"))
	if w.Code != http.StatusCreated || !replayed(w) || reason(t, w) != ReasonResponseNotKept {
		t.Fatalf("replay from the table: %d %s", w.Code, w.Body)
	}
	if runs.Load() != 1 {
		t.Fatalf("handler ran %d times", runs.Load())
	}
}

// A body over the capture limit is streamed out whole and not buffered.
func TestHugeStreamedResponseNotBuffered(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	chunk := bytes.Repeat([]byte("0123456789abcdef"), 4096)
	total := 0
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for total < maxCapture+len(chunk) {
			n, _ := w.Write(chunk)
			total += n
		}
	})
	g := e.guard(nil, nil).Handler(h)
	if w := serve(g, post("u1", "k", "{}")); w.Body.Len() != total {
		t.Fatalf("streamed %d of %d bytes", w.Body.Len(), total)
	}
	if w := serve(g, post("u1", "k", "{}")); w.Code != http.StatusOK || reason(t, w) != ReasonResponseNotKept {
		t.Fatalf("replay: %d %s", w.Code, w.Body)
	}
}

func TestCompressedBodyRoundTrip(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var sb strings.Builder
	sb.WriteString(`{"items":[`)
	for i := 0; sb.Len() < 1<<20; i++ {
		fmt.Fprintf(&sb, `{"id":%d,"name":"item %d","status":"active"},`, i, i)
	}
	sb.WriteString(`{}]}`)
	body := sb.String()
	h := &counter{}
	g := e.guard(nil, nil).Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.n.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, body)
	}))
	serve(g, post("u1", "k", "{}"))
	item := e.item(pkFor("u1", "k"))
	enc, _ := ddb.Str(item, attrEnc)
	resp, _ := ddb.Bytes(item, attrResp)
	if enc != "gzip" || len(resp) >= len(body)/4 {
		t.Fatalf("stored enc=%q, %d bytes for a %d-byte body", enc, len(resp), len(body))
	}
	w := serve(g, post("u1", "k", "{}"))
	if w.Code != http.StatusOK || !replayed(w) || w.Body.String() != body || h.n.Load() != 1 {
		t.Fatalf("replay of a compressed body: %d, %d bytes", w.Code, w.Body.Len())
	}
}

// Calls per request, from the recorder: the first request costs two writes,
// a replay one call, a cached replay none.
func TestCallsPerRequest(t *testing.T) {
	t.Parallel()
	tbl, rec := ddbtest.Record(ddbtest.NewTable(t))
	rec.Capacity = true
	e := &env{t: t, tbl: tbl, clock: ddbtest.NewClock(time.Now()), log: &logBuf{}}
	h := &counter{}
	uncached := e.guard(nil, nil).Handler(h)
	cached := e.guard(nil, func(c *Config) { c.CacheBytes = 1 << 20 }).Handler(h)

	serve(uncached, post("u1", "k", "{}"))
	calls := rec.Calls()
	if len(calls) != 2 || rec.Writes() != 2 || calls[0].Op != "PutItem" || calls[1].Op != "UpdateItem" {
		t.Fatalf("first request: %+v", calls)
	}
	if !calls[0].ReturnOnFail || calls[0].Condition == "" || calls[1].Condition == "" {
		t.Fatalf("claim must be conditional with ALL_OLD, completion conditional: %+v", calls)
	}
	_, wcu := rec.CapacityUsed()
	t.Logf("first request: %d calls, %.0f WCU", len(calls), wcu)

	rec.Reset()
	if w := serve(uncached, post("u1", "k", "{}")); !replayed(w) {
		t.Fatal("not replayed")
	}
	if calls := rec.Calls(); len(calls) != 1 || calls[0].Op != "PutItem" || rec.Reads() != 0 {
		t.Fatalf("replay: %+v", calls)
	}
	_, wcu = rec.CapacityUsed()
	t.Logf("replay: 1 call, %.0f WCU as DynamoDB Local reports it (AWS bills a failed conditional write as a write)", wcu)

	rec.Reset()
	serve(cached, post("u1", "k", "{}")) // fills the cache: 1 call
	if rec.Count("") != 1 {
		t.Fatalf("cache fill: %d calls", rec.Count(""))
	}
	rec.Reset()
	for i := 0; i < 3; i++ {
		if w := serve(cached, post("u1", "k", "{}")); !replayed(w) || w.Code != http.StatusCreated {
			t.Fatalf("cached replay: %d", w.Code)
		}
	}
	if w := serve(cached, post("u1", "k", `{"other":1}`)); w.Code != http.StatusUnprocessableEntity {
		t.Fatalf("cached record must still check the fingerprint: %d", w.Code)
	}
	if rec.Count("") != 0 {
		t.Fatalf("cached replays made %d calls", rec.Count(""))
	}
	// The instance that completed a request caches it at once.
	serve(cached, post("u1", "k2", "{}"))
	rec.Reset()
	serve(cached, post("u1", "k2", "{}"))
	if rec.Count("") != 0 {
		t.Fatalf("replay after own completion: %d calls", rec.Count(""))
	}
	if h.n.Load() != 2 {
		t.Fatalf("handler ran %d times", h.n.Load())
	}
}

// Fail closed: a claim that DynamoDB does not confirm is not executed.
func TestClaimFailureRefusesWith503(t *testing.T) {
	t.Parallel()
	tbl, faults := ddbtest.Inject(ddbtest.NewTable(t))
	e := &env{t: t, tbl: tbl, clock: ddbtest.NewClock(time.Now()), log: &logBuf{}}
	h := &counter{}
	g := e.guard(nil, nil).Handler(h)
	for _, f := range ddbtest.StorageFaults {
		faults.Clear()
		faults.Fail("PutItem", f)
		w := serve(g, post("u1", "k-"+f.String(), "{}"))
		if w.Code != http.StatusServiceUnavailable || reason(t, w) != ReasonUnavailable || w.Header().Get("Retry-After") == "" {
			t.Fatalf("%v: %d %v %s", f, w.Code, w.Header(), w.Body)
		}
	}
	if h.n.Load() != 0 {
		t.Fatalf("handler ran %d times on storage faults", h.n.Load())
	}
	faults.Clear()
	if w := serve(g, post("u1", "k-"+ddbtest.Throttling.String(), "{}")); w.Code != http.StatusCreated || h.n.Load() != 1 {
		t.Fatalf("after recovery: %d", w.Code)
	}
}

// A failed completion write does not turn the client's success into an
// error; it is retried in the background, duplicates get 409 meanwhile, and
// once it lands they get the replay — even after the lease would have
// lapsed, never a second execution.
func TestCompletionFailureKeepsClientResponse(t *testing.T) {
	t.Parallel()
	tbl, faults := ddbtest.Inject(ddbtest.NewTable(t))
	e := &env{t: t, tbl: tbl, clock: ddbtest.NewClock(time.Now()), log: &logBuf{}}
	h := &counter{}
	gd := e.guard(nil, nil)
	g := gd.Handler(h)
	faults.Fail("UpdateItem", ddbtest.InternalError)
	w := serve(g, post("u1", "k", "{}"))
	if w.Code != http.StatusCreated || !strings.Contains(w.Body.String(), `"execution":1`) {
		t.Fatalf("client response: %d %s", w.Code, w.Body)
	}
	if !strings.Contains(e.log.String(), "completion failed") {
		t.Fatalf("not logged: %s", e.log)
	}
	if w := serve(g, post("u1", "k", "{}")); w.Code != http.StatusConflict || w.Header().Get("Retry-After") == "" {
		t.Fatalf("while the completion is retried: %d, want 409 with Retry-After", w.Code)
	}
	faults.Clear()
	gd.retries.Wait()
	e.clock.Advance(DefaultLease + DefaultMaxClockSkew)
	if w := serve(g, post("u1", "k", "{}")); w.Code != http.StatusCreated || !replayed(w) || h.n.Load() != 1 {
		t.Fatalf("after the retried completion: %d replayed=%v runs=%d", w.Code, replayed(w), h.n.Load())
	}
}

func TestReleaseFailureFreesKeyAfterLease(t *testing.T) {
	t.Parallel()
	tbl, faults := ddbtest.Inject(ddbtest.NewTable(t))
	e := &env{t: t, tbl: tbl, clock: ddbtest.NewClock(time.Now()), log: &logBuf{}}
	var runs atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if runs.Add(1) == 1 {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusCreated)
	})
	g := e.guard(nil, nil).Handler(h)
	faults.Fail("DeleteItem", ddbtest.Timeout)
	serve(g, post("u1", "k", "{}"))
	faults.Clear()
	if w := serve(g, post("u1", "k", "{}")); w.Code != http.StatusConflict {
		t.Fatalf("within the lease: %d", w.Code)
	}
	e.clock.Advance(DefaultLease + DefaultMaxClockSkew)
	if w := serve(g, post("u1", "k", "{}")); w.Code != http.StatusCreated || runs.Load() != 2 {
		t.Fatalf("after the lease: %d", w.Code)
	}
}

// One client can never replay or block another client's key.
func TestKeysAreScopedPerClient(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	h := &counter{}
	g := e.guard(nil, nil).Handler(h)

	a := serve(g, post("alice", "shared-key", "{}"))
	b := serve(g, post("bob", "shared-key", "{}"))
	if a.Code != http.StatusCreated || b.Code != http.StatusCreated || replayed(b) || h.n.Load() != 2 {
		t.Fatalf("bob must not get alice's response: %d %d %v runs=%d", a.Code, b.Code, replayed(b), h.n.Load())
	}
	// Bob with a different body under alice's key: his own, new request.
	if w := serve(g, post("bob", "alice-only", `{"x":1}`)); w.Code != http.StatusCreated {
		t.Fatal(w.Code)
	}

	// Session scope, when there is no user; the user wins over the session.
	withSession := func(r *http.Request, sid string) *http.Request {
		return r.WithContext(authctx.WithSession(r.Context(), func() string { return sid }))
	}
	s1 := serve(g, withSession(post("", "k", "{}"), "s1"))
	s2 := serve(g, withSession(post("", "k", "{}"), "s2"))
	s1again := serve(g, withSession(post("", "k", "{}"), "s1"))
	if replayed(s1) || replayed(s2) || !replayed(s1again) {
		t.Fatalf("session scopes: %v %v %v", replayed(s1), replayed(s2), replayed(s1again))
	}
	if w := serve(g, withSession(post("alice", "shared-key", "{}"), "s9")); !replayed(w) {
		t.Fatal("the user scope must win over the session")
	}

	// No identity: refused, unless the application names a scope.
	if w := serve(g, post("", "k", "{}")); w.Code != http.StatusForbidden || reason(t, w) != ReasonUnattributed {
		t.Fatalf("anonymous: %d %s", w.Code, w.Body)
	}
	app := e.guard(nil, func(c *Config) {
		c.Scope = func(r *http.Request) (string, bool) {
			id := r.Header.Get("X-Client")
			return id, id != ""
		}
	}).Handler(h)
	r := post("", "k", "{}")
	r.Header.Set("X-Client", "alice") // the same string as a user ID: another namespace
	if w := serve(app, r); w.Code != http.StatusCreated || replayed(w) {
		t.Fatalf("application scope: %d", w.Code)
	}
}

func TestSealedResponses(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	k1, _ := dynaguard.NewKeyring(secret(1))
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", "/keys/LOCATION-SECRET")
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"api_key":"BODY-SECRET-0123456789"}`)
	})
	g := e.guard(nil, func(c *Config) { c.Keyring = k1 }).Handler(h)
	serve(g, post("u1", "k", "{}"))
	serve(g, post("user-alice-7", "key-visible-7", "{}"))
	dump := ddbtest.Dump(t, e.tbl)
	if strings.Contains(dump, "BODY-SECRET") || strings.Contains(dump, "LOCATION-SECRET") ||
		strings.Contains(dump, "alice") || strings.Contains(dump, "visible") {
		t.Fatalf("secret at rest: %s", dump)
	}
	if w := serve(g, post("u1", "k", "{}")); !replayed(w) || !strings.Contains(w.Body.String(), "BODY-SECRET") || w.Header().Get("Location") != "/keys/LOCATION-SECRET" {
		t.Fatalf("sealed replay: %d %s", w.Code, w.Body)
	}
	// After rotation, with the old secret still configured: readable.
	k2, _ := dynaguard.NewKeyring(secret(2), secret(1))
	if w := serve(e.guard(nil, func(c *Config) { c.Keyring = k2 }).Handler(h), post("u1", "k", "{}")); !strings.Contains(w.Body.String(), "BODY-SECRET") {
		t.Fatalf("rotated replay: %d %s", w.Code, w.Body)
	}
	// Once the old secret is dropped, the stored fingerprint can no longer
	// be matched: refused as a different payload, never a second run.
	k3, _ := dynaguard.NewKeyring(secret(3))
	var runs atomic.Int64
	h3 := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { runs.Add(1) })
	w := serve(e.guard(nil, func(c *Config) { c.Keyring = k3 }).Handler(h3), post("u1", "k", "{}"))
	if w.Code != http.StatusUnprocessableEntity || runs.Load() != 0 {
		t.Fatalf("after the secret was dropped: %d %s runs=%d", w.Code, w.Body, runs.Load())
	}
	// A record cannot be moved to another key: the key is associated data.
	pk := pkFor("u1", "k")
	blob, _ := ddb.Bytes(e.item(pk), attrResp)
	rec, err := parseRecord(e.item(pk))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newSealer(k1).open(pkFor("u2", "k"), rec); err == nil {
		t.Fatal("sealed response opened under another record key")
	}
	_ = blob
}

// A completed record expires after the retention; the key is then free.
func TestRetentionExpiry(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	h := &counter{}
	g := e.guard(nil, func(c *Config) { c.Retention = time.Hour; c.CacheBytes = 1 << 20 }).Handler(h)
	serve(g, post("u1", "k", "{}"))
	e.clock.Advance(time.Hour - time.Second)
	if w := serve(g, post("u1", "k", `{"new":1}`)); w.Code != http.StatusUnprocessableEntity {
		t.Fatalf("within the retention: %d", w.Code)
	}
	e.clock.Advance(2 * time.Second)
	if w := serve(g, post("u1", "k", `{"new":1}`)); w.Code != http.StatusCreated || replayed(w) || h.n.Load() != 2 {
		t.Fatalf("after the retention: %d", w.Code)
	}
	ttl, _ := ddb.Int(e.item(pkFor("u1", "k")), dynaguard.AttrTTL)
	if want := ddb.EpochSeconds(e.clock.Now().Add(time.Hour)); ttl != want {
		t.Fatalf("ttl %d, want completion + retention %d", ttl, want)
	}
}

func TestCompletedRecordLayout(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	serve(e.guard(nil, nil).Handler(&counter{}), post("u1", "k", "{}"))
	items := ddbtest.Scan(t, e.tbl)
	if len(items) != 1 {
		t.Fatalf("%d items", len(items))
	}
	it := items[0]
	if !strings.HasPrefix(it["pk"], dynaguard.PrefixIdempotency) || it[attrState] != stateDone || it[attrStatus] != "201" {
		t.Fatalf("layout: %v", it)
	}
	if _, ok := it[attrOwner]; ok {
		t.Fatal("a completed record keeps no owner")
	}
	if _, ok := it[attrLease]; ok {
		t.Fatal("a completed record keeps no lease")
	}
}

func TestUnreadableRecordFailsClosed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	pk := pkFor("u1", "k")
	// A record this package did not write (no state): never a free key.
	_, err := ddbtest.Client(t).PutItem(context.Background(), &dynamodb.PutItemInput{
		TableName: aws.String(e.tbl.Name),
		Item: map[string]types.AttributeValue{
			dynaguard.AttrPK:  ddb.S(pk),
			dynaguard.AttrTTL: ddb.TTLValue(e.clock.Now().Add(time.Hour)),
		}})
	if err != nil {
		t.Fatal(err)
	}
	h := &counter{}
	if w := serve(e.guard(nil, nil).Handler(h), post("u1", "k", "{}")); w.Code != http.StatusServiceUnavailable || h.n.Load() != 0 {
		t.Fatalf("malformed record: %d runs=%d", w.Code, h.n.Load())
	}
}

func TestStreamingHandlerCanFlush(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "part1;")
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("flush: %v", err)
		}
		_, _ = io.WriteString(w, "part2")
	})
	g := e.guard(nil, nil).Handler(h)
	first := serve(g, post("u1", "k", "{}"))
	if !first.Flushed || first.Body.String() != "part1;part2" {
		t.Fatalf("flushed=%v body=%q", first.Flushed, first.Body)
	}
	if w := serve(g, post("u1", "k", "{}")); w.Body.String() != "part1;part2" || !replayed(w) {
		t.Fatalf("replay %q", w.Body)
	}
}

func TestNewRejectsUnsafeConfig(t *testing.T) {
	tbl := dynaguard.NewTable(stubAPI{}, "t")
	k := testKeys
	bad := []Config{
		{},
		{Table: tbl}, // no Keyring
		{Table: tbl, Keyring: k, Lease: time.Hour, Retention: time.Hour},
		{Table: tbl, Keyring: k, Retention: time.Millisecond},
		{Table: tbl, Keyring: k, Lease: time.Millisecond},
		{Table: tbl, Keyring: k, MaxBodyBytes: -1},
		{Table: tbl, Keyring: k, CacheBytes: -1},
		{Table: tbl, Keyring: k, ReplayHeaders: []string{"Content-Type", "set-cookie"}},
		{Table: tbl, Keyring: k, ReplayHeaders: []string{"Transfer-Encoding"}},
		{Table: tbl, Keyring: k, Lease: 30 * time.Second, MaxClockSkew: 10 * time.Second},
		{Table: tbl, Keyring: k, MaxClockSkew: -time.Second},
		{Table: tbl, Keyring: k, CompletionRetry: -time.Second},
	}
	for i, c := range bad {
		if _, err := New(c); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("config %d: %v, want ErrInvalidConfig", i, err)
		}
	}
	g, err := New(Config{Table: tbl, Keyring: k, Scope: UserOrSession})
	if err != nil || g.skew != DefaultMaxClockSkew || g.retryFor != DefaultCompletionRetry || g.retention != DefaultRetention || g.lease != DefaultLease || g.maxBody != DefaultMaxBodyBytes || !g.rules.methods["POST"] || !g.rules.methods["PATCH"] || g.rules.methods["PUT"] {
		t.Fatalf("defaults: %+v %v", g, err)
	}
}

// When DynamoDB refuses the completed item as too large (the size estimate
// was wrong), the key is still completed, without the body.
func TestItemTooLargeFallsBackToNoBody(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	g := e.guard(nil, nil)
	g.budget = 2 * dynaguard.MaxItemSize // let an oversized item reach DynamoDB
	big := make([]byte, dynaguard.MaxItemSize+1024)
	_, _ = rand.Read(big)
	h := &counter{}
	hh := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.n.Add(1)
		w.Header().Set("Location", "/blobs/1")
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write(big)
	})
	if w := serve(g.Handler(hh), post("u1", "k", "{}")); w.Code != http.StatusCreated || w.Body.Len() != len(big) {
		t.Fatalf("first: %d, %d bytes", w.Code, w.Body.Len())
	}
	if n, _ := ddb.Int(e.item(pkFor("u1", "k")), attrOmitted); n != int64(len(big)) {
		t.Fatalf("omitted = %d; log: %s", n, e.log)
	}
	w := serve(g.Handler(hh), post("u1", "k", "{}"))
	if w.Code != http.StatusCreated || reason(t, w) != ReasonResponseNotKept || w.Header().Get("Location") != "/blobs/1" || h.n.Load() != 1 {
		t.Fatalf("replay: %d %s runs=%d", w.Code, w.Body, h.n.Load())
	}
}
