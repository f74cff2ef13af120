package main

import (
	"context"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/alexedwards/scs/v2/memstore"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/ddb"
	"github.com/dynaguard/dynaguard/internal/ddbtest"
	"github.com/dynaguard/dynaguard/nonce"
	"github.com/dynaguard/dynaguard/sessionstore"
)

// CPU overhead of the whole stack. Each flow is set up on DynamoDB Local
// (an account, a login, the flow run once for real through a capture), then
// measured on the zero-latency stub (stub.go) twice: through
// middleware.Stack, and on the same routes without it ("bare"). The
// difference is what dynaguard costs per request in CPU and allocations,
// without the SDK or the network. Run them with
//
//	DYNAMODB_ENDPOINT=http://127.0.0.1:8000 go test -run '^$' -bench . ./tools/benchreport
//
// and profile one flow with -bench 'Stack/form-post/stack' -cpuprofile cpu.out.

// reqSpec is a request, rebuilt identically on every iteration.
type reqSpec struct {
	method, target, body string
	header               http.Header
	remote               string
}

func (s reqSpec) build() *http.Request {
	var body io.Reader
	if s.body != "" {
		body = strings.NewReader(s.body)
	}
	r := httptest.NewRequest(s.method, s.target, body)
	r.RemoteAddr = s.remote
	for k, v := range s.header {
		r.Header[k] = v
	}
	return r
}

// nullWriter is a ResponseWriter that keeps only the status, so the
// figures measure the handlers rather than a recorder.
type nullWriter struct {
	h    http.Header
	code int
}

func (w *nullWriter) Header() http.Header { return w.h }
func (w *nullWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}
func (w *nullWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = 200
	}
	return len(p), nil
}

// cpuFlow is one benchmarked flow.
type cpuFlow struct {
	name  string
	cache int // idempotency in-process cache
	// prepare runs on DynamoDB Local: it sets the flow up, runs it once
	// (the capture), and returns the request to repeat. key, when set,
	// rewrites the request per iteration (fresh idempotency keys).
	prepare func(in *instance) (reqSpec, error)
	key     func(r *http.Request, i int)
	want    int
	calls   float64 // DynamoDB calls per request on the stub
}

func loggedIn(in *instance) (*browser, error) {
	return loginAs(in.secure, "192.0.2.10", benchEmail, benchUsername, true)
}

func specOf(b *browser, method, target, body string, hdr map[string]string) reqSpec {
	r := b.request(method, target, body, hdr)
	return reqSpec{method: method, target: target, body: body, header: r.Header.Clone(), remote: b.addr}
}

const apiBody = `{"to":"DE89370400440532013000","amount":1250}`

func apiHeaders(key string) map[string]string {
	return map[string]string{"Content-Type": "application/json", "Idempotency-Key": `"` + key + `"`}
}

func formBody(tok string) string {
	return "nonce=" + queryEscape(tok) + "&to=alice&amount=100"
}

var cpuFlows = []cpuFlow{
	{name: "form-get", want: 200, calls: 0, prepare: func(in *instance) (reqSpec, error) {
		// An anonymous visitor who already has the nonce cookie renders a
		// form: issuing its nonce makes no call.
		b := newBrowser(in.secure, "192.0.2.10")
		if _, err := b.token("/submit"); err != nil {
			return reqSpec{}, err
		}
		return specOf(b, "GET", "/form?for=/submit", "", nil), nil
	}},
	{name: "page-get-session", want: 200, calls: 1, prepare: func(in *instance) (reqSpec, error) {
		// An anonymous session read under the idle timeout: one read, and
		// the commit is skipped.
		b := newBrowser(in.secure, "192.0.2.10")
		if w := b.do("GET", "/visit", "", nil); w.Code != 200 {
			return reqSpec{}, errStatus("GET /visit", w)
		}
		if w := b.do("GET", "/page", "", nil); w.Code != 200 {
			return reqSpec{}, errStatus("GET /page", w)
		}
		return specOf(b, "GET", "/page", "", nil), nil
	}},
	{name: "visit-get-modified", want: 200, calls: 2, prepare: func(in *instance) (reqSpec, error) {
		b := newBrowser(in.secure, "192.0.2.10")
		for range 2 {
			if w := b.do("GET", "/visit", "", nil); w.Code != 200 {
				return reqSpec{}, errStatus("GET /visit", w)
			}
		}
		return specOf(b, "GET", "/visit", "", nil), nil
	}},
	{name: "account-get", want: 200, calls: 2, prepare: func(in *instance) (reqSpec, error) {
		b, err := loggedIn(in)
		if err != nil {
			return reqSpec{}, err
		}
		return specOf(b, "GET", "/account", "", nil), nil
	}},
	{name: "form-post", want: 200, calls: 3, prepare: func(in *instance) (reqSpec, error) {
		// The goal flow: an authenticated, nonce-protected form post.
		b, err := loggedIn(in)
		if err != nil {
			return reqSpec{}, err
		}
		tok, err := b.token("/submit")
		if err != nil {
			return reqSpec{}, err
		}
		live := b.post("/submit", map[string]string{"nonce": tok, "to": "alice", "amount": "100"})
		if live.Code != 200 {
			return reqSpec{}, errStatus("POST /submit", live)
		}
		// The stub accepts the same nonce again (it stores nothing), so the
		// request can be repeated as it is.
		return specOf(b, "POST", "/submit", formBody(tok), map[string]string{"Content-Type": "application/x-www-form-urlencoded"}), nil
	}},
	{name: "api-post-first", want: 201, calls: 4, prepare: func(in *instance) (reqSpec, error) {
		b, err := loggedIn(in)
		if err != nil {
			return reqSpec{}, err
		}
		if w := b.do("POST", "/api/items", apiBody, apiHeaders("live-1")); w.Code != 201 {
			return reqSpec{}, errStatus("POST /api/items", w)
		}
		return specOf(b, "POST", "/api/items", apiBody, apiHeaders("k")), nil
	}, key: func(r *http.Request, i int) {
		r.Header.Set("Idempotency-Key", `"k-`+strconv.Itoa(i)+`"`)
	}},
	{name: "api-post-replay", want: 201, calls: 3, prepare: func(in *instance) (reqSpec, error) {
		b, err := loggedIn(in)
		if err != nil {
			return reqSpec{}, err
		}
		for range 2 { // the second is a replay: its failed claim is captured
			if w := b.do("POST", "/api/items", apiBody, apiHeaders("k-replay")); w.Code != 201 {
				return reqSpec{}, errStatus("POST /api/items", w)
			}
		}
		return specOf(b, "POST", "/api/items", apiBody, apiHeaders("k-replay")), nil
	}},
	{name: "api-post-cached-replay", cache: 1 << 20, want: 201, calls: 2, prepare: func(in *instance) (reqSpec, error) {
		b, err := loggedIn(in)
		if err != nil {
			return reqSpec{}, err
		}
		for range 2 {
			if w := b.do("POST", "/api/items", apiBody, apiHeaders("k-replay")); w.Code != 201 {
				return reqSpec{}, errStatus("POST /api/items", w)
			}
		}
		return specOf(b, "POST", "/api/items", apiBody, apiHeaders("k-replay")), nil
	}},
}

// setup creates a table, an instance on it whose calls go to DynamoDB
// Local through a capture, and runs prepare; then it switches the instance
// to the stub.
func setup(b *testing.B, cache int, events *dynaguard.Events, prepare func(in *instance) (reqSpec, error)) (*instance, reqSpec, *stub) {
	b.Helper()
	if ddbtest.Endpoint() == "" {
		b.Skip(ddbtest.EnvEndpoint + " is not set: the flows are captured from DynamoDB Local once")
	}
	base := ddbtest.NewTable(b)
	sw := &switchable{live: newCapture(base.Client)}
	keys, err := newKeyring()
	if err != nil {
		b.Fatal(err)
	}
	in, err := newInstance(dynaguard.NewTable(sw, base.Name), keys, instanceConfig{Hasher: cheapHasher, IdemCache: cache, Events: events})
	if err != nil {
		b.Fatal(err)
	}
	spec, err := prepare(in)
	if err != nil {
		b.Fatal(err)
	}
	return in, spec, sw.use()
}

// loop serves spec through h until the benchmark ends.
func loop(b *testing.B, h http.Handler, spec reqSpec, key func(*http.Request, int), want int) {
	b.Helper()
	w := &nullWriter{h: http.Header{}}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		r := spec.build()
		if key != nil {
			key(r, i)
		}
		clear(w.h)
		w.code = 0
		h.ServeHTTP(w, r)
		if w.code != want {
			b.Fatalf("status %d, want %d", w.code, want)
		}
	}
}

func BenchmarkStack(b *testing.B) {
	for _, f := range cpuFlows {
		b.Run(f.name, func(b *testing.B) {
			in, spec, st := setup(b, f.cache, nil, f.prepare)
			b.Run("bare", func(b *testing.B) {
				want := f.want
				loop(b, in.bare, spec, f.key, want)
			})
			b.Run("stack", func(b *testing.B) {
				st.calls.Store(0)
				loop(b, in.secure, spec, f.key, f.want)
				got := float64(st.calls.Load()) / float64(b.N)
				if math.Abs(got-f.calls) > 0.5 {
					b.Fatalf("%.2f DynamoDB calls per request on the stub, want %.0f: the flow did not run as captured", got, f.calls)
				}
				b.ReportMetric(got, "ddb-calls/op")
			})
			if f.name != "form-post" {
				return
			}
			// The same stack with security events and telemetry off: what
			// the default sink (the component's logger, here discarding;
			// OpenTelemetry's global no-op providers) costs the goal flow.
			off, spec, _ := setup(b, f.cache, &dynaguard.Events{Off: true}, f.prepare)
			b.Run("stack-events-off", func(b *testing.B) {
				loop(b, off.secure, spec, f.key, f.want)
			})
		})
	}
}

// Peers: the session load-and-save flow (a read-only request under an idle
// timeout, on a session holding three values) through scs with its
// in-memory store — the CPU floor of any scs store — and through
// sessionstore on the stub, sealed (the default) and in plaintext.
func BenchmarkPeers(b *testing.B) {
	page := func(sm *scs.SessionManager) http.Handler {
		return sm.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "theme "+sm.GetString(r.Context(), "theme"))
		}))
	}
	fill := func(sm *scs.SessionManager) (string, error) {
		w := httptest.NewRecorder()
		sm.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			sm.Put(r.Context(), "userID", "0f5c2b9e4d7a41c8b3e6f9a2d5c8b1e4")
			sm.Put(r.Context(), "theme", "dark")
			sm.Put(r.Context(), "visits", 3)
		})).ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
		for _, c := range w.Result().Cookies() {
			if c.Name == sm.Cookie.Name {
				return c.Value, nil
			}
		}
		return "", &statusError{what: "no session cookie", code: w.Code}
	}
	run := func(b *testing.B, sm *scs.SessionManager, token string) {
		spec := reqSpec{method: "GET", target: "/page", remote: "192.0.2.10:40000",
			header: http.Header{"Cookie": {sm.Cookie.Name + "=" + token}}}
		loop(b, page(sm), spec, nil, 200)
	}
	for _, codec := range []bool{false, true} {
		name := map[bool]string{false: "session/scs-memstore", true: "session/scs-memstore-codec"}[codec]
		b.Run(name, func(b *testing.B) {
			sm := scs.New()
			sm.Store = memstore.NewWithCleanupInterval(0)
			sm.IdleTimeout = 30 * time.Minute
			if codec {
				sm.Codec = sessionstore.Codec{}
			}
			token, err := fill(sm)
			if err != nil {
				b.Fatal(err)
			}
			run(b, sm, token)
		})
	}
	for _, plain := range []bool{false, true} {
		name := map[bool]string{false: "session/sessionstore-sealed", true: "session/sessionstore-plaintext"}[plain]
		b.Run(name, func(b *testing.B) {
			if ddbtest.Endpoint() == "" {
				b.Skip(ddbtest.EnvEndpoint + " is not set")
			}
			base := ddbtest.NewTable(b)
			sw := &switchable{live: newCapture(base.Client)}
			keys, _ := newKeyring()
			store, err := sessionstore.New(sessionstore.Config{Table: dynaguard.NewTable(sw, base.Name), Keys: keys, Plaintext: plain, Logger: quiet})
			if err != nil {
				b.Fatal(err)
			}
			sm := scs.New()
			sm.Store, sm.Codec, sm.IdleTimeout = store, sessionstore.Codec{}, 30*time.Minute
			token, err := fill(sm)
			if err != nil {
				b.Fatal(err)
			}
			page(sm).ServeHTTP(httptest.NewRecorder(), reqSpec{method: "GET", target: "/page",
				header: http.Header{"Cookie": {sm.Cookie.Name + "=" + token}}}.build()) // captured
			st := sw.use()
			run(b, sm, token)
			if w := st.writes.Load(); w != 0 {
				b.Fatalf("%d writes for read-only requests", w)
			}
		})
	}

	// A nonce issued and consumed: nonce.Manager (HMAC-signed token, one
	// conditional PutItem) against the seed-style nonce (PutItem on issue,
	// GetItem then DeleteItem on consume), both on the stub.
	b.Run("nonce/dynaguard", func(b *testing.B) {
		sw := &switchable{live: newCapture(nil)}
		sw.use()
		keys, _ := newKeyring()
		m, err := nonce.New(nonce.Config{Table: dynaguard.NewTable(sw, "stub"), Keys: keys, Logger: quiet})
		if err != nil {
			b.Fatal(err)
		}
		var page *http.Request
		w := httptest.NewRecorder()
		m.Handler(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { page = r })).ServeHTTP(w, httptest.NewRequest("GET", "/form", nil))
		cookie := w.Result().Cookies()[0]
		b.ReportAllocs()
		for b.Loop() {
			tok, err := nonce.Token(page, "/transfer")
			if err != nil {
				b.Fatal(err)
			}
			r := httptest.NewRequest("POST", "/transfer", nil)
			r.Header.Set("X-Nonce", tok)
			r.AddCookie(cookie)
			if err := m.Consume(nil, r, "/transfer"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("nonce/seed-style", func(b *testing.B) {
		// The stub answers every read with a live nonce item, so the seed's
		// consume runs its full path (read, check, delete).
		st := &stub{fallback: item{"expires_at": ddb.N(time.Now().Add(time.Hour).Unix())}}
		s := &seedNonces{tbl: dynaguard.NewTable(st, "stub"), ttl: time.Hour}
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			n, err := s.Issue(ctx, "user-1")
			if err != nil {
				b.Fatal(err)
			}
			ok, err := s.Consume(ctx, "user-1", n)
			if err != nil || !ok {
				b.Fatal(ok, err)
			}
		}
	})
}

// BenchmarkPages is the server-side CPU of one GET /account of the example
// app (the whole stack, its templates) and of the raw handler of the
// throughput section (same calls, same page bytes), both on the stub API:
// what the throughput ratio of that flow is made of.
func BenchmarkPages(b *testing.B) {
	if ddbtest.Endpoint() == "" {
		b.Skip(ddbtest.EnvEndpoint + " is not set")
	}
	ctx := context.Background()
	base := ddbtest.NewTable(b)
	sw := &switchable{live: newCapture(base.Client)}
	tbl := dynaguard.NewTable(sw, base.Name)
	ex, err := newExampleTarget(ctx, tbl, 1, 1)
	if err != nil {
		b.Fatal(err)
	}
	defer ex.stop()
	if _, err := capturePage(ctx, ex); err != nil { // also captures the items it read
		b.Fatal(err)
	}
	exHandler := ex.handler
	sessShape, userShape, user0, err := exampleItems(ctx, base)
	if err != nil {
		b.Fatal(err)
	}
	pages, err := appPages()
	if err != nil {
		b.Fatal(err)
	}
	ra := &rawApp{api: sw, table: base.Name, pages: pages, dev: true, sessionShape: sessShape, userShape: userShape}
	rawCookie, err := ra.addUser(ctx, "rawuser0000", poolEmail(0), user0)
	if err != nil {
		b.Fatal(err)
	}
	rawReq := reqSpec{method: "GET", target: "/account", remote: "127.0.0.1:40000", header: http.Header{"Cookie": {rawCookieName + "=" + rawCookie}}}
	if w := httptest.NewRecorder(); true {
		ra.handler().ServeHTTP(w, rawReq.build()) // capture the raw items
		if w.Code != 200 {
			b.Fatalf("raw GET /account: %d", w.Code)
		}
	}
	sw.use()
	b.Run("example-app", func(b *testing.B) {
		loop(b, exHandler, reqSpec{method: "GET", target: "/account", remote: "127.0.0.1:40000", header: http.Header{"Cookie": {ex.cookie[0]}}}, nil, 200)
	})
	b.Run("raw-handler", func(b *testing.B) {
		loop(b, ra.handler(), rawReq, nil, 200)
	})
}
