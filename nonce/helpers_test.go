package nonce

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/authctx"
	"github.com/dynaguard/dynaguard/internal/ddbtest"
)

var (
	secretA = bytes.Repeat([]byte{0xA1}, 32)
	secretB = bytes.Repeat([]byte{0xB2}, 32)
	t0      = time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
)

func keyring(t testing.TB, secrets ...[]byte) *dynaguard.Keyring {
	t.Helper()
	k, err := dynaguard.NewKeyring(secrets[0], secrets[1:]...)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// env is one application instance under test: a Manager over a recorded
// table on DynamoDB Local, with a fake clock.
type env struct {
	t     testing.TB
	m     *Manager
	cfg   Config
	base  *dynaguard.Table // the table without the recorder
	rec   *ddbtest.Recorder
	clock *ddbtest.Clock
}

type errSink struct{}

func testConfig(tbl *dynaguard.Table, keys *dynaguard.Keyring, clock dynaguard.Clock) Config {
	return Config{
		Table:  tbl,
		Keys:   keys,
		Clock:  clock,
		Logger: slog.New(slog.DiscardHandler),
		// Record the refusal for the test, then answer as by default.
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if p, ok := r.Context().Value(errSink{}).(*error); ok {
				*p = err
			}
			DefaultErrorHandler(w, r, err)
		},
	}
}

func newEnv(t testing.TB, mutate ...func(*Config)) *env {
	t.Helper()
	return newEnvOn(t, ddbtest.NewTable(t), ddbtest.NewClock(t0), mutate...)
}

// newEnvOn makes another instance over an existing table (a second
// application server).
func newEnvOn(t testing.TB, base *dynaguard.Table, clock *ddbtest.Clock, mutate ...func(*Config)) *env {
	t.Helper()
	tbl, rec := ddbtest.Record(base)
	cfg := testConfig(tbl, keyring(t, secretA), clock)
	for _, f := range mutate {
		f(&cfg)
	}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, m: m, cfg: cfg, base: base, rec: rec, clock: clock}
}

// browser is a client: its nonce cookie and its current session ID.
type browser struct {
	cookie  *http.Cookie
	session string
}

func withSession(r *http.Request, session string) *http.Request {
	if session == "" {
		return r
	}
	return r.WithContext(authctx.WithSession(r.Context(), func() string { return session }))
}

// newBrowser visits a page through Handler and keeps the cookie it sets.
func (e *env) newBrowser() *browser {
	e.t.Helper()
	w := httptest.NewRecorder()
	e.m.Handler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})).ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
	c := setCookie(w, e.m.cookieName)
	if c == nil {
		e.t.Fatal("Handler set no nonce cookie for a new browser")
	}
	return &browser{cookie: c}
}

func setCookie(w *httptest.ResponseRecorder, name string) *http.Cookie {
	for _, c := range w.Result().Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// token renders a form for b and returns its token.
func (e *env) token(b *browser, purpose string) string {
	e.t.Helper()
	var tok string
	var err error
	r := withSession(httptest.NewRequest("GET", "/form", nil), b.session)
	if b.cookie != nil {
		r.AddCookie(b.cookie)
	}
	w := httptest.NewRecorder()
	e.m.Handler(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		tok, err = Token(r, purpose)
	})).ServeHTTP(w, r)
	if err != nil {
		e.t.Fatal(err)
	}
	if c := setCookie(w, e.m.cookieName); c != nil {
		b.cookie = c
	}
	return tok
}

type result struct {
	w      *httptest.ResponseRecorder
	called bool  // the protected handler ran
	err    error // what the ErrorHandler was given
}

func formRequest(b *browser, field, token string) *http.Request {
	form := url.Values{"amount": {"100"}}
	if token != "" {
		form.Set(field, token)
	}
	r := httptest.NewRequest("POST", "/transfer", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if b != nil && b.cookie != nil {
		r.AddCookie(b.cookie)
	}
	if b != nil {
		r = withSession(r, b.session)
	}
	return r
}

// serve sends r through Require(purpose) and reports what happened.
func (e *env) serve(purpose string, r *http.Request) result {
	var res result
	r = r.WithContext(context.WithValue(r.Context(), errSink{}, &res.err))
	res.w = httptest.NewRecorder()
	e.m.Require(purpose)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		res.called = true
		w.WriteHeader(http.StatusNoContent)
	})).ServeHTTP(res.w, r)
	return res
}

// submit posts the form with token from b to a route requiring purpose.
func (e *env) submit(b *browser, token, purpose string) result {
	return e.serve(purpose, formRequest(b, e.m.fieldName, token))
}

// newGet is a page view by b.
func newGet(b *browser) *http.Request {
	r := withSession(httptest.NewRequest("GET", "/form", nil), b.session)
	if b.cookie != nil {
		r.AddCookie(b.cookie)
	}
	return r
}

// discard is a ResponseWriter that keeps nothing.
type discard struct{}

func (discard) Header() http.Header         { return http.Header{} }
func (discard) Write(b []byte) (int, error) { return len(b), nil }
func (discard) WriteHeader(int)             {}

// signRaw makes a token of any payload with m's key number key, the way
// issue does: what a holder of the key could produce.
func signRaw(m *Manager, key int, payload []byte) string {
	tag := m.keys[key].token.tag(payload)
	return tokenEncoding.EncodeToString(append(bytes.Clone(payload), tag[:]...))
}
