package middleware_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/go-chi/chi/v5"
	"github.com/gorilla/mux"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/idempotency"
	"github.com/dynaguard/dynaguard/internal/ddbtest"
	"github.com/dynaguard/dynaguard/middleware"
	"github.com/dynaguard/dynaguard/nonce"
	"github.com/dynaguard/dynaguard/sessionstore"
	"github.com/dynaguard/dynaguard/users"
)

// app is a tiny application behind the stack: the same handlers mounted on
// each router under test.
type app struct {
	t        *testing.T
	sm       *scs.SessionManager
	users    *users.Users
	stack    *middleware.Stack
	rec      *ddbtest.Recorder
	submits  atomic.Int32
	apiCalls atomic.Int32
}

func newApp(t *testing.T, mutate ...func(*middleware.Config)) *app {
	t.Helper()
	base := ddbtest.NewTable(t)
	tbl, rec := ddbtest.Record(base)
	keys, err := dynaguard.NewKeyring(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.DiscardHandler)
	store, err := sessionstore.New(sessionstore.Config{Table: tbl, Keys: keys, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	sm := scs.New()
	sm.Store = store
	sm.Codec = sessionstore.Codec{}
	sm.IdleTimeout = 30 * time.Minute
	u, err := users.New(users.Config{Table: tbl, Keys: keys, Sessions: store, Logger: quiet,
		Hasher: users.Argon2id{Memory: 64, Time: 1}})
	if err != nil {
		t.Fatal(err)
	}
	nm, err := nonce.New(nonce.Config{Table: tbl, Keys: keys, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	g, err := idempotency.New(idempotency.Config{Table: tbl, Keyring: keys, Scope: idempotency.UserOrSession, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	cfg := middleware.Config{Sessions: sm, Users: u, Nonces: nm, Idempotency: g, Logger: quiet}
	for _, f := range mutate {
		f(&cfg)
	}
	st, err := middleware.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &app{t: t, sm: sm, users: u, stack: st, rec: rec}
}

func (a *app) form(w http.ResponseWriter, r *http.Request) {
	tok, err := nonce.Token(r, r.URL.Query().Get("for"))
	if err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	io.WriteString(w, tok)
}

func (a *app) submit(w http.ResponseWriter, r *http.Request) {
	a.submits.Add(1)
	io.WriteString(w, "submitted "+r.PostFormValue("v"))
}

func (a *app) login(w http.ResponseWriter, r *http.Request) {
	u, err := a.users.Authenticate(r.Context(), users.Credentials{Login: r.PostFormValue("login"),
		Password: r.PostFormValue("password"), IP: middleware.ClientIP(r)})
	if err != nil {
		users.WriteError(w, r, err)
		return
	}
	if err := a.users.Login(r.Context(), a.sm, u, middleware.Client(r)); err != nil {
		users.WriteError(w, r, err)
		return
	}
	http.Redirect(w, r, "/me", http.StatusSeeOther)
}

func (a *app) me(w http.ResponseWriter, r *http.Request) {
	u, ok := users.FromContext(r.Context())
	if !ok {
		http.Error(w, "not logged in", http.StatusUnauthorized)
		return
	}
	io.WriteString(w, u.Email)
}

func (a *app) items(w http.ResponseWriter, r *http.Request) {
	n := a.apiCalls.Add(1)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	fmt.Fprintf(w, `{"n":%d}`, n)
}

func (a *app) boom(http.ResponseWriter, *http.Request) { panic("secret internals") }

func (a *app) routers() map[string]http.Handler {
	std := http.NewServeMux()
	std.HandleFunc("GET /form", a.form)
	std.HandleFunc("POST /submit", a.submit)
	std.HandleFunc("POST /login", a.login)
	std.HandleFunc("GET /me", a.me)
	std.HandleFunc("POST /api/items", a.items)
	std.HandleFunc("GET /panic", a.boom)

	c := chi.NewRouter()
	c.Get("/form", a.form)
	c.Post("/submit", a.submit)
	c.Post("/login", a.login)
	c.Get("/me", a.me)
	c.Post("/api/items", a.items)
	c.Get("/panic", a.boom)

	g := mux.NewRouter()
	g.HandleFunc("/form", a.form).Methods("GET")
	g.HandleFunc("/submit", a.submit).Methods("POST")
	g.HandleFunc("/login", a.login).Methods("POST")
	g.HandleFunc("/me", a.me).Methods("GET")
	g.HandleFunc("/api/items", a.items).Methods("POST")
	g.HandleFunc("/panic", a.boom).Methods("GET")
	return map[string]http.Handler{"servemux": std, "chi": c, "gorilla-mux": g}
}

type client struct {
	t    *testing.T
	base string
	c    *http.Client
}

func (c *client) do(method, path string, body io.Reader, hdr map[string]string) (*http.Response, string) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.c.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func (c *client) token(purpose string) string {
	c.t.Helper()
	resp, body := c.do("GET", "/form?for="+url.QueryEscape(purpose), nil, nil)
	if resp.StatusCode != 200 {
		c.t.Fatalf("GET /form: %d %s", resp.StatusCode, body)
	}
	return body
}

func (c *client) post(path string, form url.Values, hdr map[string]string) (*http.Response, string) {
	if hdr == nil {
		hdr = map[string]string{}
	}
	hdr["Content-Type"] = "application/x-www-form-urlencoded"
	return c.do("POST", path, strings.NewReader(form.Encode()), hdr)
}

func TestStackAroundRouters(t *testing.T) {
	for name := range (&app{}).routers() {
		t.Run(name, func(t *testing.T) {
			a := newApp(t)
			srv := httptest.NewTLSServer(a.stack.Handler(a.routers()[name]))
			defer srv.Close()
			jar, _ := cookiejar.New(nil)
			hc := srv.Client()
			hc.Jar = jar
			hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
			c := &client{t: t, base: srv.URL, c: hc}

			// Security headers on every response.
			resp, _ := c.do("GET", "/form?for=/submit", nil, nil)
			for _, h := range []string{"X-Content-Type-Options", "Referrer-Policy", "Content-Security-Policy"} {
				if resp.Header.Get(h) == "" {
					t.Errorf("missing %s", h)
				}
			}

			// API routes need a logged-in user before any key is claimed.
			anon := map[string]string{"Content-Type": "application/json", "Idempotency-Key": `"anon"`}
			if resp, _ := c.do("POST", "/api/items", strings.NewReader(`{}`), anon); resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("anonymous API POST: %d, want 401", resp.StatusCode)
			}

			// A form post: once with its nonce, never twice.
			tok := c.token("/submit")
			if resp, body := c.post("/submit", url.Values{"nonce": {tok}, "v": {"a"}}, nil); resp.StatusCode != 200 || body != "submitted a" {
				t.Fatalf("first submit: %d %s", resp.StatusCode, body)
			}
			if resp, _ := c.post("/submit", url.Values{"nonce": {tok}, "v": {"a"}}, nil); resp.StatusCode != http.StatusConflict {
				t.Fatalf("replayed submit: %d, want 409", resp.StatusCode)
			}
			if resp, _ := c.post("/submit", url.Values{"v": {"a"}}, nil); resp.StatusCode != http.StatusForbidden {
				t.Fatalf("submit without nonce: %d, want 403", resp.StatusCode)
			}
			// A token for one form is refused at another.
			if resp, _ := c.post("/submit", url.Values{"nonce": {c.token("/login")}}, nil); resp.StatusCode != http.StatusForbidden {
				t.Fatalf("token for /login at /submit: %d, want 403", resp.StatusCode)
			}
			// Cross-origin: refused before the nonce is spent.
			tok = c.token("/submit")
			if resp, _ := c.post("/submit", url.Values{"nonce": {tok}}, map[string]string{"Sec-Fetch-Site": "cross-site"}); resp.StatusCode != http.StatusForbidden {
				t.Fatalf("cross-site submit: %d, want 403", resp.StatusCode)
			}
			if resp, _ := c.post("/submit", url.Values{"nonce": {tok}}, nil); resp.StatusCode != 200 {
				t.Fatalf("the cross-site attempt spent the nonce: %d", resp.StatusCode)
			}
			if n := a.submits.Load(); n != 2 {
				t.Fatalf("handler ran %d times, want 2", n)
			}

			// Log in, then an authenticated GET costs 2 consistent reads, 0 writes.
			if _, err := a.users.Create(t.Context(), users.NewUser{Email: "Ann@Example.com", Username: "ann", Password: "correct horse battery staple"}); err != nil {
				t.Fatal(err)
			}
			resp, body := c.post("/login", url.Values{"nonce": {c.token("/login")}, "login": {"ann"}, "password": {"correct horse battery staple"}}, nil)
			if resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("login: %d %s", resp.StatusCode, body)
			}
			a.rec.Reset()
			if resp, body := c.do("GET", "/me", nil, nil); resp.StatusCode != 200 || body != "Ann@Example.com" {
				t.Fatalf("GET /me: %d %s", resp.StatusCode, body)
			}
			calls := a.rec.Calls()
			if len(calls) != 2 || a.rec.Writes() != 0 || !calls[0].ConsistentRead || !calls[1].ConsistentRead {
				t.Fatalf("authenticated GET made %+v, want 2 consistent GetItems and no write", calls)
			}

			// API: key required, runs once, replays.
			json := map[string]string{"Content-Type": "application/json"}
			if resp, _ := c.do("POST", "/api/items", strings.NewReader(`{}`), json); resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("API POST without key: %d, want 400", resp.StatusCode)
			}
			json["Idempotency-Key"] = `"k-1"`
			resp1, body1 := c.do("POST", "/api/items", strings.NewReader(`{}`), json)
			resp2, body2 := c.do("POST", "/api/items", strings.NewReader(`{}`), json)
			if resp1.StatusCode != 201 || resp2.StatusCode != 201 || body1 != body2 || resp2.Header.Get("Idempotent-Replayed") != "true" {
				t.Fatalf("API replay: %d %s / %d %s %v", resp1.StatusCode, body1, resp2.StatusCode, body2, resp2.Header)
			}
			if n := a.apiCalls.Load(); n != 1 {
				t.Fatalf("API handler ran %d times, want 1", n)
			}
			// A panic is a 500 page without internals.
			resp, body = c.do("GET", "/panic", nil, map[string]string{"Accept": "application/json"})
			if resp.StatusCode != 500 || strings.Contains(body, "secret internals") {
				t.Fatalf("panic: %d %s", resp.StatusCode, body)
			}
		})
	}
}

func TestStackNeedsItsParts(t *testing.T) {
	if _, err := middleware.New(middleware.Config{}); err == nil {
		t.Fatal("an empty config was accepted")
	}
}

func TestStackProblemBodies(t *testing.T) {
	a := newApp(t)
	srv := httptest.NewTLSServer(a.stack.Handler(a.routers()["servemux"]))
	defer srv.Close()
	c := &client{t: t, base: srv.URL, c: srv.Client()}
	resp, body := c.do("POST", "/api/items", strings.NewReader(`{}`), map[string]string{"Content-Type": "application/json", "Accept": "application/json"})
	var p map[string]any
	if err := json.Unmarshal([]byte(body), &p); err != nil || resp.Header.Get("Content-Type") != "application/problem+json" || p["status"] != float64(401) {
		t.Fatalf("API error is not problem+json: %d %q %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	resp, body = c.post("/submit", url.Values{}, map[string]string{"Accept": "text/html"})
	if resp.StatusCode != 403 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(body, "<h1>") {
		t.Fatalf("browser error is not a page: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

// With PublicAPI, anonymous API requests reach the guard, which refuses a
// key it cannot attribute to any client rather than share it between them.
func TestStackPublicAPI(t *testing.T) {
	a := newApp(t, func(c *middleware.Config) { c.PublicAPI = true })
	srv := httptest.NewTLSServer(a.stack.Handler(a.routers()["servemux"]))
	defer srv.Close()
	c := &client{t: t, base: srv.URL, c: srv.Client()}
	resp, body := c.do("POST", "/api/items", strings.NewReader(`{}`), map[string]string{"Content-Type": "application/json", "Idempotency-Key": `"k"`})
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "idempotency-unattributed") {
		t.Fatalf("anonymous keyed POST with PublicAPI: %d %s", resp.StatusCode, body)
	}
	if a.apiCalls.Load() != 0 {
		t.Fatal("handler ran")
	}
}
