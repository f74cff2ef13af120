package middleware_test

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/idempotency"
	"github.com/dynaguard/dynaguard/internal/ddbtest"
	"github.com/dynaguard/dynaguard/middleware"
	"github.com/dynaguard/dynaguard/nonce"
	"github.com/dynaguard/dynaguard/sessionstore"
)

// parts are the components of a stack, each on the same table, for tests
// that leave some of them out.
type parts struct {
	tbl    *dynaguard.Table
	keys   *dynaguard.Keyring
	sm     *scs.SessionManager
	nonces *nonce.Manager
}

func newParts(t *testing.T) *parts {
	t.Helper()
	p := &parts{tbl: ddbtest.NewTable(t)}
	var err error
	if p.keys, err = dynaguard.NewKeyring(bytes.Repeat([]byte{9}, 32)); err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.DiscardHandler)
	if p.sm, err = sessionstore.NewManager(sessionstore.Config{Table: p.tbl, Keys: p.keys, Logger: quiet}); err != nil {
		t.Fatal(err)
	}
	p.sm.IdleTimeout = 30 * time.Minute
	if p.nonces, err = nonce.New(nonce.Config{Table: p.tbl, Keys: p.keys, InsecureCookie: true, Logger: quiet}); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *parts) guard(t *testing.T, scope func(*http.Request) (string, bool)) *idempotency.Guard {
	t.Helper()
	g, err := idempotency.New(idempotency.Config{Table: p.tbl, Keyring: p.keys, Scope: scope, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// echo answers 200 with the path it served.
var echo = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "served "+r.URL.Path) })

func serveOnce(h http.Handler, method, target string, hdr map[string]string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, strings.NewReader("payload"))
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// Exempt routes reach the handler without a nonce or key, even cross-site;
// nothing else does, however its path is spelt.
func TestStackExemptions(t *testing.T) {
	p := newParts(t)
	st, err := middleware.New(middleware.Config{Sessions: p.sm, Nonces: p.nonces,
		Exempt:     []string{"/webhooks/", "/oauth/callback"},
		ExemptFunc: func(r *http.Request) bool { return r.URL.Path == "/health/ping" },
		Logger:     slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	h := st.Handler(echo) // the router is irrelevant here: any path is served
	crossSite := map[string]string{"Sec-Fetch-Site": "cross-site"}
	for _, tc := range []struct {
		target string
		hdr    map[string]string
		want   int
	}{
		{"/webhooks/stripe", nil, 200},
		{"/webhooks/stripe", crossSite, 200},
		{"/webhooks/", nil, 200},
		{"/oauth/callback?code=x&state=y", crossSite, 200},
		{"/health/ping", nil, 200},
		{"/oauth/callback/extra", nil, 403}, // exact path only
		{"/webhooks", nil, 403},
		{"/webhooksx/a", nil, 403},
		{"/submit", nil, 403},
		{"/submit", crossSite, 403},
		{"/webhooks/../submit", nil, 403},
		{"/webhooks/%2e%2e/submit", nil, 403},
		{"/webhooks/a%2F..%2F..%2Fsubmit", nil, 403},
		{"/webhooks//submit", nil, 403},
		{"/Webhooks/stripe", nil, 403},
	} {
		w := serveOnce(h, "POST", tc.target, tc.hdr)
		if w.Code != tc.want {
			t.Errorf("POST %s %v: %d %s, want %d", tc.target, tc.hdr, w.Code, w.Body, tc.want)
		}
	}
}

// New refuses the combinations that would leave unsafe requests unguarded.
func TestStackCombinations(t *testing.T) {
	p := newParts(t)
	users := newApp(t).users
	byUser := p.guard(t, idempotency.UserOrSession)
	for _, tc := range []struct {
		name string
		cfg  middleware.Config
		ok   bool
	}{
		{"empty", middleware.Config{}, false},
		{"sessions only", middleware.Config{Sessions: p.sm}, false},
		{"nonces alone", middleware.Config{Nonces: p.nonces}, true},
		{"scs and nonces", middleware.Config{Sessions: p.sm, Nonces: p.nonces}, true},
		{"full", middleware.Config{Sessions: p.sm, Users: users, Nonces: p.nonces, Idempotency: byUser}, true},
		{"API without users", middleware.Config{Sessions: p.sm, Nonces: p.nonces, Idempotency: byUser}, false},
		{"public API without users", middleware.Config{Sessions: p.sm, Nonces: p.nonces, Idempotency: byUser, PublicAPI: true}, true},
		{"API-only", middleware.Config{Sessions: p.sm, Users: users, Idempotency: byUser}, true},
		{"API-only with a prefix", middleware.Config{Sessions: p.sm, Users: users, Idempotency: byUser, APIPrefix: "/api/"}, false},
		{"API prefix without idempotency", middleware.Config{Nonces: p.nonces, APIPrefix: "/api/"}, false},
		{"public API without idempotency", middleware.Config{Nonces: p.nonces, PublicAPI: true}, false},
		{"users without sessions", middleware.Config{Users: users, Nonces: p.nonces}, false},
		{"exempt everything", middleware.Config{Nonces: p.nonces, Exempt: []string{"/"}}, false},
		{"exempt relative", middleware.Config{Nonces: p.nonces, Exempt: []string{"webhooks/"}}, false},
		{"exempt dot segment", middleware.Config{Nonces: p.nonces, Exempt: []string{"/a/../b"}}, false},
		{"exempt escaped", middleware.Config{Nonces: p.nonces, Exempt: []string{"/a%2Fb"}}, false},
		{"exempt query", middleware.Config{Nonces: p.nonces, Exempt: []string{"/a?b"}}, false},
	} {
		_, err := middleware.New(tc.cfg)
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

// With scs and nonces but no users package, the stack names the session:
// a token taken in one session is refused after a login renews it, and
// Vary: Cookie is sent once.
func TestStackWithoutUsers(t *testing.T) {
	for _, store := range []string{"sessionstore", "scs memstore"} {
		t.Run(store, func(t *testing.T) {
			p := newParts(t)
			if store == "scs memstore" {
				p.sm = scs.New() // a store without a keyed ID: the session is named by SHA-256
			}
			testStackWithoutUsers(t, p)
		})
	}
}

func testStackWithoutUsers(t *testing.T, p *parts) {
	st, err := middleware.New(middleware.Config{Sessions: p.sm, Nonces: p.nonces, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /form", func(w http.ResponseWriter, r *http.Request) {
		tok, _ := nonce.Token(r, r.URL.Query().Get("for"))
		io.WriteString(w, tok)
	})
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		_ = p.sm.RenewToken(r.Context())
		p.sm.Put(r.Context(), "user", r.PostFormValue("user"))
	})
	mux.HandleFunc("POST /transfer", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "sent") })
	srv := httptest.NewServer(st.Handler(mux))
	defer srv.Close()
	c := newJarClient(t, srv.URL)

	login := func(user string) {
		t.Helper()
		if resp, body := c.post("/login", url.Values{"nonce": {c.token("/login")}, "user": {user}}, nil); resp.StatusCode != 200 {
			t.Fatalf("login: %d %s", resp.StatusCode, body)
		}
	}
	login("ann")
	resp, _ := c.do("GET", "/form?for=/transfer", nil, nil)
	if n := len(resp.Header.Values("Vary")); n != 1 {
		t.Errorf("Vary sent %d times: %q", n, resp.Header.Values("Vary"))
	}
	tok := c.token("/transfer")
	login("mallory")
	if resp, body := c.post("/transfer", url.Values{"nonce": {tok}}, nil); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "nonce-wrong-session") {
		t.Fatalf("token of ann's session after mallory's login: %d %s", resp.StatusCode, body)
	}
	if resp, body := c.post("/transfer", url.Values{"nonce": {c.token("/transfer")}}, nil); resp.StatusCode != 200 {
		t.Fatalf("fresh token: %d %s", resp.StatusCode, body)
	}
}

// An API-only service: no nonces, no sessions, keys scoped by API key.
func TestStackAPIOnly(t *testing.T) {
	p := newParts(t)
	st, err := middleware.New(middleware.Config{Idempotency: p.guard(t, idempotency.APIKeyHeader("X-API-Key")),
		PublicAPI: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	h := st.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n++
		w.WriteHeader(http.StatusCreated)
	}))
	key := map[string]string{"X-API-Key": "k-1", "Idempotency-Key": `"a"`, "Content-Type": "application/json"}
	if w := serveOnce(h, "POST", "/charges", map[string]string{"X-API-Key": "k-1"}); w.Code != http.StatusBadRequest {
		t.Fatalf("no Idempotency-Key: %d", w.Code)
	}
	w1, w2 := serveOnce(h, "POST", "/charges", key), serveOnce(h, "POST", "/charges", key)
	if w1.Code != 201 || w2.Code != 201 || w2.Header().Get("Idempotent-Replayed") != "true" || n != 1 {
		t.Fatalf("keyed: %d %d %v runs=%d", w1.Code, w2.Code, w2.Header(), n)
	}
	delete(key, "X-API-Key")
	if w := serveOnce(h, "POST", "/charges", key); w.Code != http.StatusForbidden {
		t.Fatalf("without an API key: %d", w.Code)
	}
}

func newJarClient(t *testing.T, base string) *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: t, base: base, c: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}
