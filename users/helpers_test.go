package users

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/authctx"
	"github.com/dynaguard/dynaguard/internal/ddbtest"
	"github.com/dynaguard/dynaguard/sessionstore"
)

var (
	secretA = bytes.Repeat([]byte{0xA1}, 32)
	secretB = bytes.Repeat([]byte{0xB2}, 32)
)

func keyring(t testing.TB, current []byte, previous ...[]byte) *dynaguard.Keyring {
	t.Helper()
	k, err := dynaguard.NewKeyring(current, previous...)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// countingHasher counts the hash work a Hasher does, so tests can assert
// "the same work on every failure path" by counting instead of timing.
type countingHasher struct {
	Hasher
	verifies, hashes atomic.Int64
}

func (c *countingHasher) Verify(p []byte, e string) (bool, error) {
	c.verifies.Add(1)
	return c.Hasher.Verify(p, e)
}

func (c *countingHasher) Hash(p []byte) (string, error) {
	c.hashes.Add(1)
	return c.Hasher.Hash(p)
}

func (c *countingHasher) reset() { c.verifies.Store(0); c.hashes.Store(0) }

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// env is one test's world: a fresh table on DynamoDB Local, seen through a
// fault injector and a call recorder, a fake clock for users, a real
// session store, and a Users instance with cheap argon2.
type env struct {
	t      *testing.T
	base   *dynaguard.Table // the table without wrappers
	tbl    *dynaguard.Table // faults → recorder → table
	rec    *ddbtest.Recorder
	faults *ddbtest.Faults
	clock  *ddbtest.Clock
	keys   *dynaguard.Keyring
	store  *sessionstore.Store
	users  *Users
	hasher *countingHasher
	mail   *mailbox
	cfg    Config
}

// mailbox is a Mailer that keeps every message.
type mailbox struct {
	mu   sync.Mutex
	msgs []Message
}

func (m *mailbox) Send(_ context.Context, msg Message) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.msgs = append(m.msgs, msg)
	return nil
}

// all returns the messages of kind, oldest first.
func (m *mailbox) all(kind MessageKind) []Message {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Message
	for _, msg := range m.msgs {
		if msg.Kind == kind {
			out = append(out, msg)
		}
	}
	return out
}

func (m *mailbox) count(kind MessageKind) int { return len(m.all(kind)) }

// last returns the newest message of kind (the zero Message if none).
func (m *mailbox) last(kind MessageKind) Message {
	all := m.all(kind)
	if len(all) == 0 {
		return Message{}
	}
	return all[len(all)-1]
}

func newEnv(t *testing.T, mods ...func(*Config)) *env {
	t.Helper()
	e := &env{t: t, base: ddbtest.NewTable(t), clock: ddbtest.NewClock(windowStart(time.Now())), keys: keyring(t, secretA)}
	ft, faults := ddbtest.Inject(e.base)
	e.tbl, e.rec = ddbtest.Record(ft)
	e.faults = faults
	var err error
	// The session store keeps the wall clock: scs computes session
	// deadlines with time.Now, and the fake clock only moves users' time.
	e.store, err = sessionstore.New(sessionstore.Config{Table: e.tbl, Keys: e.keys, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	e.hasher = &countingHasher{Hasher: cheapArgon2}
	e.mail = &mailbox{}
	e.cfg = Config{Table: e.tbl, Keys: e.keys, Sessions: e.store, Hasher: e.hasher, Clock: e.clock, Logger: quietLogger(), Mailer: e.mail}
	for _, m := range mods {
		m(&e.cfg)
	}
	e.users, err = New(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.hasher.reset()
	return e
}

// instance returns a second, independent Users on the same table (another
// process), with its own session store.
func (e *env) instance() *Users {
	e.t.Helper()
	store, err := sessionstore.New(sessionstore.Config{Table: e.tbl, Keys: e.keys, Logger: quietLogger()})
	if err != nil {
		e.t.Fatal(err)
	}
	cfg := e.cfg
	cfg.Sessions = store
	u, err := New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	return u
}

const goodPassword = "purple monkey dishwasher"

var ctx = context.Background()

func (e *env) create(email, username string) *User {
	e.t.Helper()
	u, err := e.users.Create(ctx, NewUser{Email: email, Username: username, Password: goodPassword})
	if err != nil {
		e.t.Fatalf("create %s: %v", email, err)
	}
	return u
}

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

// app is a small web application on top of env: scs with the session
// store, and the users middleware and calls on a few routes.
type app struct {
	e   *env
	u   *Users
	sm  *scs.SessionManager
	srv *httptest.Server
}

func newApp(e *env) *app { return newAppFor(e, e.users, e.store) }

func newAppFor(e *env, users *Users, store *sessionstore.Store) *app {
	a := &app{e: e, u: users}
	a.sm = scs.New()
	a.sm.Store = store
	a.sm.Codec = sessionstore.Codec{}
	a.sm.IdleTimeout = 30 * time.Minute
	a.sm.Lifetime = 12 * time.Hour
	client := func(r *http.Request) Client {
		addr := netip.MustParseAddr("192.0.2.1")
		if h := r.Header.Get("X-Test-IP"); h != "" {
			addr = netip.MustParseAddr(h)
		}
		return Client{IP: addr, UserAgent: r.UserAgent()}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		c := client(r)
		u, err := users.Authenticate(r.Context(), Credentials{Login: r.FormValue("login"), Password: r.FormValue("password"), IP: c.IP})
		pending := false
		if err == nil {
			pending, err = users.BeginLogin(r.Context(), a.sm, u, c)
		}
		if err != nil {
			WriteError(w, r, err)
			return
		}
		if pending {
			w.WriteHeader(http.StatusAccepted) // show the code form
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /code", func(w http.ResponseWriter, r *http.Request) {
		if _, err := users.CompleteLogin(r.Context(), a.sm, r.FormValue("code"), client(r)); err != nil {
			WriteError(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	me := func(w http.ResponseWriter, r *http.Request) {
		u, ok := FromContext(r.Context())
		id, _ := authctx.User(r.Context())
		sid, _ := authctx.Session(r.Context())
		if !ok {
			io.WriteString(w, "anonymous")
			return
		}
		if id != u.ID || sid == "" {
			http.Error(w, "authctx not set", 500)
			return
		}
		io.WriteString(w, u.ID)
	}
	mux.Handle("GET /me", users.RequireUser(a.sm)(http.HandlerFunc(me)))
	mux.Handle("GET /public", users.LoadUser(a.sm)(http.HandlerFunc(me)))
	mux.Handle("GET /sensitive", users.RequireRecentAuth(a.sm, 10*time.Minute)(http.HandlerFunc(me)))
	withUser := func(f func(w http.ResponseWriter, r *http.Request, u *User) error) http.Handler {
		return users.RequireUser(a.sm)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u, _ := FromContext(r.Context())
			if err := f(w, r, u); err != nil {
				WriteError(w, r, err)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		}))
	}
	mux.Handle("POST /password", withUser(func(w http.ResponseWriter, r *http.Request, u *User) error {
		return users.ChangePassword(r.Context(), a.sm, u, Proof{Password: r.FormValue("current"), Code: r.FormValue("code")}, r.FormValue("new"), client(r))
	}))
	mux.Handle("POST /logout-everywhere", withUser(func(w http.ResponseWriter, r *http.Request, u *User) error {
		return users.LogoutEverywhere(r.Context(), a.sm, u)
	}))
	mux.Handle("POST /logout-others", withUser(func(w http.ResponseWriter, r *http.Request, u *User) error {
		return users.LogoutOthers(r.Context(), a.sm, u, client(r))
	}))
	mux.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) {
		if err := users.Logout(r.Context(), a.sm); err != nil {
			WriteError(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	a.srv = httptest.NewServer(a.sm.LoadAndSave(mux))
	e.t.Cleanup(a.srv.Close)
	return a
}

// browser is one client with its own cookie jar.
type browser struct {
	t    *testing.T
	a    *app
	c    *http.Client
	ip   string
	html bool
}

func (a *app) browser(addr string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: a.e.t, a: a, ip: addr, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

func (b *browser) do(method, path string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, b.a.srv.URL+path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if b.ip != "" {
		req.Header.Set("X-Test-IP", b.ip)
	}
	if b.html {
		req.Header.Set("Accept", "text/html")
		req.Header.Set("Sec-Fetch-Mode", "navigate")
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp, string(out)
}

func (b *browser) login(login, password string) int {
	b.t.Helper()
	resp, _ := b.do("POST", "/login", url.Values{"login": {login}, "password": {password}})
	return resp.StatusCode
}

func (b *browser) get(path string) (int, string) {
	b.t.Helper()
	resp, body := b.do("GET", path, nil)
	return resp.StatusCode, body
}

func (b *browser) post(path string, form url.Values) int {
	b.t.Helper()
	resp, _ := b.do("POST", path, form)
	return resp.StatusCode
}

// sessionToken returns the browser's session cookie value.
func (b *browser) sessionToken() string {
	u, _ := url.Parse(b.a.srv.URL)
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == b.a.sm.Cookie.Name {
			return c.Value
		}
	}
	return ""
}

// loginOf is the login recorded in the session of ctx (zero when none).
func loginOf(ctx context.Context, sm *scs.SessionManager) sessionLogin {
	l, _ := getLogin(ctx, sm, sessionAuth)
	return l
}

// windowStart is where every test's fake clock starts: a minute into the
// current UTC day. Throttling counters live in windows aligned to the Unix
// epoch (24 h by default, and divisors of it), so a test that advances its
// clock by hours must not start just before a window ends: the counters
// would start over halfway through, and the test would pass or fail by the
// time of day it runs at.
func windowStart(now time.Time) time.Time {
	return now.UTC().Truncate(24 * time.Hour).Add(time.Minute)
}
