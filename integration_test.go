package dynaguard_test

// End-to-end tests of the whole suite: the example app (example/app) served
// over real HTTP by two instances that share one DynamoDB Local table and
// one secret, as two replicas behind a load balancer would. One test per
// attack; every test talks to both instances.
//
// The instances run in production mode over TLS (Secure, __Host- cookies),
// except TestIntegrationDevModeOverPlainHTTP, which checks the -dev wiring.

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/example/app"
	"github.com/dynaguard/dynaguard/internal/ddbtest"
	"github.com/dynaguard/dynaguard/internal/totp"
	"github.com/dynaguard/dynaguard/middleware"
	"github.com/dynaguard/dynaguard/users"
)

// ---- harness ----

// countingHasher is cheap argon2id that counts verifications, so a test can
// show that a throttled login does no password work.
type countingHasher struct {
	users.Argon2id
	verifies atomic.Int64
}

func (h *countingHasher) Verify(password []byte, encoded string) (bool, error) {
	h.verifies.Add(1)
	return h.Argon2id.Verify(password, encoded)
}

// cluster is two instances of the app on one table.
type cluster struct {
	t      testing.TB
	tbl    *dynaguard.Table
	outbox *app.Outbox
	hasher *countingHasher
	a, b   *httptest.Server
	tls    bool
	rec    *ddbtest.Recorder
	events eventLog // the security events of both instances
}

type clusterOpts struct {
	dev    bool
	clock  dynaguard.Clock
	record bool // both instances call DynamoDB through c.rec
	// Limits and client addresses (integration_guessing_test.go). Without
	// signup, sign-ups are not limited: every test browser is 127.0.0.1.
	throttle users.Throttle
	signup   *users.SignupConfig
	clientIP middleware.ClientIPConfig
	// passkeys: both instances offer passkeys for both their origins
	// (integration_passkey_test.go).
	passkeys bool
}

func newCluster(t testing.TB, o clusterOpts) *cluster {
	t.Helper()
	var secret [32]byte
	_, _ = rand.Read(secret[:])
	keys, err := dynaguard.ParseKeyring(hex.EncodeToString(secret[:]))
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{
		t:      t,
		tbl:    ddbtest.NewTable(t),
		outbox: &app.Outbox{},
		hasher: &countingHasher{Argon2id: users.Argon2id{Memory: 64, Time: 1, Threads: 1}},
		tls:    !o.dev,
	}
	appTable := c.tbl
	if o.record {
		appTable, c.rec = ddbtest.Record(c.tbl)
	}
	signup := users.SignupConfig{PerIP: users.Limit{Free: 1 << 20}, Ranges: []users.RangeLimit{}}
	if o.signup != nil {
		signup = *o.signup
	}
	// The servers listen before the apps are built: passkeys need the
	// origins they are served at.
	srvA, srvB := httptest.NewUnstartedServer(nil), httptest.NewUnstartedServer(nil)
	t.Cleanup(srvA.Close)
	t.Cleanup(srvB.Close)
	pk := passkeyConfig(o, srvA, srvB)
	start := func(srv *httptest.Server) *httptest.Server {
		h, err := app.New(app.Config{
			Table:    appTable,
			Keys:     keys,
			Dev:      o.dev,
			Mailer:   c.outbox,
			Hasher:   c.hasher,
			Throttle: o.throttle,
			Signup:   signup,
			ClientIP: o.clientIP,
			Clock:    o.clock,
			Logger:   testLogger(t),
			Events:   c.events.config(),
			Passkeys: pk,
		})
		if err != nil {
			t.Fatal(err)
		}
		srv.Config.Handler = h
		if o.dev {
			srv.Start()
		} else {
			srv.StartTLS()
		}
		return srv
	}
	c.a, c.b = start(srvA), start(srvB)
	return c
}

// testLogger sends the app's log to t.Log (shown for failing tests and with
// -v), and drops what is logged after the test ended.
func testLogger(t testing.TB) *slog.Logger {
	if _, bench := t.(*testing.B); bench {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	w := &testWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// browser is one user agent: a cookie jar shared by both instances (cookies
// ignore ports, so both replicas see the same cookies, as behind a load
// balancer). It does not follow redirects: tests check every 303.
type browser struct {
	t   testing.TB
	c   *cluster
	jar *cookiejar.Jar
	hc  *http.Client
}

func (c *cluster) browser() *browser {
	jar, _ := cookiejar.New(nil)
	transport := http.DefaultTransport
	if c.tls {
		transport = c.a.Client().Transport // trusts httptest's certificate (the same for both)
	}
	return &browser{t: c.t, c: c, jar: jar, hc: &http.Client{
		Jar:       jar,
		Transport: transport,
		Timeout:   20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}}
}

type response struct {
	*http.Response
	body string
}

func (b *browser) do(req *http.Request) response {
	b.t.Helper()
	resp, err := b.hc.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return response{resp, string(body)}
}

func (b *browser) get(srv *httptest.Server, path string) response {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
	req.Header.Set("Accept", "text/html")
	return b.do(req)
}

func (b *browser) post(srv *httptest.Server, path string, form url.Values) response {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "text/html")
	return b.do(req)
}

// submit loads page on srv, takes the nonce of the form that posts to
// action, and posts fields with it to postTo (another instance, possibly).
func (b *browser) submit(page, postTo *httptest.Server, pagePath, action string, fields url.Values) response {
	b.t.Helper()
	p := b.get(page, pagePath)
	if p.StatusCode != http.StatusOK {
		b.t.Fatalf("GET %s: %d\n%s", pagePath, p.StatusCode, p.body)
	}
	form := url.Values{}
	for k, v := range fields {
		form[k] = v
	}
	form.Set("nonce", nonceFor(b.t, p.body, action))
	return b.post(postTo, action, form)
}

var (
	formRe  = regexp.MustCompile(`(?s)<form\b[^>]*\baction="([^"]*)"[^>]*>(.*?)</form>`)
	nonceRe = regexp.MustCompile(`<input type="hidden" name="nonce" value="([^"]+)">`)
)

// nonceFor returns the nonce of the form in body that posts to action.
func nonceFor(t testing.TB, body, action string) string {
	t.Helper()
	for _, m := range formRe.FindAllStringSubmatch(body, -1) {
		if html.UnescapeString(m[1]) == action {
			if n := nonceRe.FindStringSubmatch(m[2]); n != nil {
				return html.UnescapeString(n[1])
			}
		}
	}
	t.Fatalf("no form posting to %s with a nonce in the page:\n%s", action, body)
	return ""
}

func (b *browser) cookie(name string) string {
	for _, c := range b.jar.Cookies(b.origin()) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

func (b *browser) origin() *url.URL {
	u, _ := url.Parse(b.c.a.URL)
	return u
}

// clone returns a browser holding a copy of b's cookies: a thief's copy.
func (b *browser) clone() *browser {
	o := b.c.browser()
	o.jar.SetCookies(b.origin(), b.jar.Cookies(b.origin()))
	return o
}

func (c *cluster) sessionCookie() string {
	if c.tls {
		return "__Host-session"
	}
	return "session"
}

func expect(t testing.TB, r response, status int, what string) {
	t.Helper()
	if r.StatusCode != status {
		t.Fatalf("%s: status %d, want %d\n%s", what, r.StatusCode, status, r.body)
	}
}

func expectRedirect(t testing.TB, r response, to, what string) {
	t.Helper()
	expect(t, r, http.StatusSeeOther, what)
	if loc := r.Header.Get("Location"); loc != to && !strings.HasPrefix(loc, to+"?") {
		t.Fatalf("%s: redirected to %q, want %q", what, loc, to)
	}
}

// expectProblem checks an API answer's status and that it is problem+json.
func expectProblem(t testing.TB, r response, status int, what string) {
	t.Helper()
	expect(t, r, status, what)
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
		t.Fatalf("%s: Content-Type %q, want application/problem+json", what, ct)
	}
}

const password = "velvet otter quantum 71"

var userSeq atomic.Int64

type account struct{ email, username, password string }

func newAccount() account {
	n := userSeq.Add(1)
	return account{email: fmt.Sprintf("user%d@example.com", n), username: fmt.Sprintf("user%d", n), password: password}
}

// register signs acct up through b, then logs it in (the quiet sign-up
// sends every sign-up to the login page).
func (b *browser) register(srv *httptest.Server, acct account) {
	b.t.Helper()
	r := b.submit(srv, srv, "/register", "/register", url.Values{
		"email": {acct.email}, "username": {acct.username}, "password": {acct.password},
	})
	expectRedirect(b.t, r, "/login", "register "+acct.email)
	expectRedirect(b.t, b.login(srv, srv, acct.email, acct.password), "/account", "login after sign-up "+acct.email)
}

func (b *browser) login(page, postTo *httptest.Server, login, pw string) response {
	b.t.Helper()
	return b.submit(page, postTo, "/login", "/login", url.Values{"login": {login}, "password": {pw}})
}

func (b *browser) logout(srv *httptest.Server) {
	b.t.Helper()
	r := b.submit(srv, srv, "/account", "/logout", nil)
	expectRedirect(b.t, r, "/", "logout")
}

// loggedIn reports whether GET /account on srv shows the account page.
func (b *browser) loggedIn(srv *httptest.Server) bool {
	b.t.Helper()
	r := b.get(srv, "/account")
	switch r.StatusCode {
	case http.StatusOK:
		return true
	case http.StatusSeeOther:
		if !strings.HasPrefix(r.Header.Get("Location"), "/login") {
			b.t.Fatalf("GET /account redirected to %s", r.Header.Get("Location"))
		}
		return false
	}
	b.t.Fatalf("GET /account: %d\n%s", r.StatusCode, r.body)
	return false
}

func (b *browser) api(srv *httptest.Server, method, key, body string) response {
	b.t.Helper()
	req, _ := http.NewRequest(method, srv.URL+"/api/transfers", strings.NewReader(body))
	req.Header.Set("Accept", "application/json")
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", `"`+key+`"`)
	}
	return b.do(req)
}

func (b *browser) transfers(srv *httptest.Server) []app.Transfer {
	b.t.Helper()
	r := b.api(srv, http.MethodGet, "", "")
	expect(b.t, r, http.StatusOK, "GET /api/transfers")
	var ts []app.Transfer
	if err := json.Unmarshal([]byte(r.body), &ts); err != nil {
		b.t.Fatalf("GET /api/transfers: %v\n%s", err, r.body)
	}
	return ts
}

func (c *cluster) lastMessage(to, kind string) app.Message {
	c.t.Helper()
	m, ok := c.outbox.Last(to, kind)
	if !ok {
		c.t.Fatalf("no %s message to %s in the outbox: %+v", kind, to, c.outbox.Messages())
	}
	return m
}

// ---- the attacks ----

// A submitted form captured (from a proxy log, a shared computer's history,
// a browser extension) and sent again — here to the other instance — is
// refused: its nonce was consumed by one conditional write on the first
// submission. The transfer exists once.
func TestIntegrationCapturedFormReplay(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{})
	u := c.browser()
	u.register(c.a, newAccount())

	page := u.get(c.a, "/transfers/new")
	expect(t, page, http.StatusOK, "GET /transfers/new")
	captured := url.Values{"to": {"mallory"}, "amount": {"99.00"}, "nonce": {nonceFor(t, page.body, "/transfers")}}
	expectRedirect(t, u.post(c.a, "/transfers", captured), "/transfers", "first submission")

	replay := u.post(c.b, "/transfers", captured)
	expect(t, replay, http.StatusConflict, "replay on the other instance")
	if !strings.Contains(replay.body, "already submitted") || !strings.Contains(replay.body, `value="mallory"`) {
		t.Errorf("the replay should re-render the form with the input and say it was already submitted:\n%s", replay.body)
	}
	if ts := u.transfers(c.b); len(ts) != 1 || ts[0].Amount != 9900 || ts[0].To != "mallory" {
		t.Fatalf("transfers after a replay: %+v, want exactly one of 99.00 to mallory", ts)
	}
	c.expectEvent(t, dynaguard.EventNonceRefused, "nonce-used")
	// The re-rendered page carries a fresh nonce: a deliberate second
	// transfer is one more click, never an accident.
	again := url.Values{"to": {"mallory"}, "amount": {"99.00"}, "nonce": {nonceFor(t, replay.body, "/transfers")}}
	expectRedirect(t, u.post(c.a, "/transfers", again), "/transfers", "deliberate second transfer")
	if n := len(u.transfers(c.a)); n != 2 {
		t.Fatalf("%d transfers, want 2", n)
	}
}

// Many copies of one API request with one Idempotency-Key, sent at once to
// both instances, create exactly one transfer; every copy that is answered
// gets the same transfer.
func TestIntegrationConcurrentDuplicateAPIPosts(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{})
	u := c.browser()
	u.register(c.a, newAccount())

	const copies = 16
	body := `{"to": "bob", "amount": 1250}`
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		fresh    int
		replayed int
		inFlight int
		ids      = map[string]bool{}
	)
	for i := range copies {
		srv := c.a
		if i%2 == 1 {
			srv = c.b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/transfers", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Idempotency-Key", `"k-concurrent-1"`)
			resp, err := u.hc.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			mu.Lock()
			defer mu.Unlock()
			switch resp.StatusCode {
			case http.StatusCreated:
				var tr app.Transfer
				if err := json.Unmarshal(b, &tr); err != nil || tr.ID == "" {
					t.Errorf("201 without an id: %s", b)
				}
				ids[tr.ID] = true
				if resp.Header.Get("Idempotent-Replayed") == "true" {
					replayed++
				} else {
					fresh++
				}
			case http.StatusConflict: // the first copy is still running
				inFlight++
				if resp.Header.Get("Retry-After") == "" {
					t.Errorf("409 in flight without Retry-After")
				}
			default:
				t.Errorf("status %d: %s", resp.StatusCode, b)
			}
		}()
	}
	wg.Wait()
	t.Logf("%d copies: %d executed, %d replayed, %d refused while in flight", copies, fresh, replayed, inFlight)
	if fresh != 1 || len(ids) != 1 {
		t.Fatalf("executed %d times with %d distinct ids, want exactly once", fresh, len(ids))
	}
	if ts := u.transfers(c.b); len(ts) != 1 {
		t.Fatalf("%d transfers stored, want 1: %+v", len(ts), ts)
	}
	// A later retry, on either instance, is a replay of the same answer.
	for _, srv := range []*httptest.Server{c.a, c.b} {
		r := u.api(srv, http.MethodPost, "k-concurrent-1", body)
		expect(t, r, http.StatusCreated, "retry")
		if r.Header.Get("Idempotent-Replayed") != "true" {
			t.Errorf("retry not marked as replayed")
		}
		var tr app.Transfer
		_ = json.Unmarshal([]byte(r.body), &tr)
		if !ids[tr.ID] {
			t.Errorf("retry answered transfer %q, want the first one", tr.ID)
		}
	}
	c.expectEvent(t, dynaguard.EventIdempotencyClaimed, "")
	c.expectEvent(t, dynaguard.EventIdempotencyReplayed, "")
}

// The same Idempotency-Key with a different payload is refused with 422 —
// never answered with the first request's response, never executed.
func TestIntegrationIdempotencyKeyReusedWithDifferentPayload(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{})
	u := c.browser()
	u.register(c.a, newAccount())

	expect(t, u.api(c.a, http.MethodPost, "k-swap", `{"to": "bob", "amount": 100}`), http.StatusCreated, "first")
	r := u.api(c.b, http.MethodPost, "k-swap", `{"to": "mallory", "amount": 100000}`)
	expect(t, r, http.StatusUnprocessableEntity, "same key, different payload")
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
		t.Errorf("Content-Type %q, want problem+json", ct)
	}
	if ts := u.transfers(c.a); len(ts) != 1 || ts[0].To != "bob" {
		t.Fatalf("transfers: %+v, want only the first", ts)
	}
	c.expectEvent(t, dynaguard.EventIdempotencyMismatch, "")
}

// The API's input rules: a key is required, the JSON is strict, the body
// is bounded, and an anonymous client is told to log in.
func TestIntegrationAPIValidation(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{})
	anon := c.browser()
	// The stack asks for a logged-in user on API routes before the
	// idempotency guard claims a key.
	expectProblem(t, anon.api(c.a, http.MethodPost, "k-anon", `{"to":"bob","amount":1}`), http.StatusUnauthorized, "anonymous POST")
	expect(t, anon.api(c.a, http.MethodGet, "", ""), http.StatusUnauthorized, "anonymous GET")
	expect(t, anon.get(c.a, "/dev/outbox"), http.StatusNotFound, "the outbox outside -dev")

	u := c.browser()
	u.register(c.a, newAccount())
	cases := []struct {
		name, key, body string
		status          int
	}{
		{"no key", "", `{"to":"bob","amount":1}`, http.StatusBadRequest},
		{"unknown field", "k1", `{"to":"bob","amount":1,"currency":"EUR"}`, http.StatusBadRequest},
		{"fractional amount", "k2", `{"to":"bob","amount":1.5}`, http.StatusBadRequest},
		{"amount as string", "k3", `{"to":"bob","amount":"100"}`, http.StatusBadRequest},
		{"negative amount", "k4", `{"to":"bob","amount":-5}`, http.StatusBadRequest},
		{"zero amount", "k5", `{"to":"bob","amount":0}`, http.StatusBadRequest},
		{"huge amount", "k6", `{"to":"bob","amount":100000000000000000000}`, http.StatusBadRequest},
		{"missing to", "k7", `{"amount":1}`, http.StatusBadRequest},
		{"empty to", "k8", `{"to":"  ","amount":1}`, http.StatusBadRequest},
		{"two objects", "k9", `{"to":"bob","amount":1}{"to":"eve","amount":1}`, http.StatusBadRequest},
		{"not JSON", "k10", `to=bob&amount=1`, http.StatusBadRequest},
		{"too large", "k11", `{"to":"` + strings.Repeat("a", 8<<10) + `","amount":1}`, http.StatusBadRequest},
	}
	for _, tc := range cases {
		r := u.api(c.a, http.MethodPost, tc.key, tc.body)
		if r.StatusCode != tc.status || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/problem+json") {
			t.Errorf("%s: %d %s, want %d problem+json\n%s", tc.name, r.StatusCode, r.Header.Get("Content-Type"), tc.status, r.body)
		}
	}
	req, _ := http.NewRequest(http.MethodPost, c.a.URL+"/api/transfers", strings.NewReader("to=bob"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Idempotency-Key", `"k-form"`)
	expect(t, u.do(req), http.StatusUnsupportedMediaType, "form body")
	if ts := u.transfers(c.b); len(ts) != 0 {
		t.Fatalf("invalid requests stored transfers: %+v", ts)
	}
}

// Session fixation: an attacker plants a session cookie of their own in the
// victim's browser before the victim logs in. The login renews the token, so
// the planted one never becomes the victim's session.
func TestIntegrationSessionFixation(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{})
	victimAcct := newAccount()
	setup := c.browser()
	setup.register(c.a, victimAcct)
	setup.logout(c.a)

	// The attacker gets a genuine anonymous session (logging out of their
	// own account leaves one, holding the "logged out" message).
	attacker := c.browser()
	attacker.register(c.b, newAccount())
	attacker.logout(c.b)
	planted := attacker.cookie(c.sessionCookie())
	if planted == "" {
		t.Fatal("the attacker has no session cookie to plant")
	}
	expect(t, attacker.get(c.a, "/"), http.StatusOK, "the planted session works")

	victim := attacker.clone() // the planted cookie, and nothing else of the attacker's
	expectRedirect(t, victim.login(c.a, c.b, victimAcct.email, victimAcct.password), "/account", "victim login")
	if got := victim.cookie(c.sessionCookie()); got == "" || got == planted {
		t.Fatalf("the login kept the planted session token")
	}
	if !victim.loggedIn(c.a) {
		t.Fatal("the victim is not logged in")
	}
	if e := c.expectEvent(t, dynaguard.EventSessionCreated, "login"); e.UserID == "" || e.ClientAddr == "" {
		t.Errorf("the login's session event names no account or client: %+v", e)
	}
	for _, srv := range []*httptest.Server{c.a, c.b} {
		if attacker.loggedIn(srv) {
			t.Fatal("the planted token became the victim's session")
		}
	}
}

// A cookie copied before logout (stolen, or left in another tab) is dead
// after logout — on the other instance too, and for the API.
func TestIntegrationLoggedOutCookieOnOtherInstance(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{})
	u := c.browser()
	u.register(c.a, newAccount())
	thief := u.clone()
	if !thief.loggedIn(c.b) {
		t.Fatal("the copied cookie should work before logout")
	}
	u.logout(c.a)
	if thief.loggedIn(c.b) {
		t.Fatal("the logged-out cookie still works on the other instance")
	}
	expectProblem(t, thief.api(c.b, http.MethodPost, "k-after-logout", `{"to":"eve","amount":1}`), http.StatusUnauthorized, "API with a logged-out cookie")
	expect(t, thief.api(c.b, http.MethodGet, "", ""), http.StatusUnauthorized, "API with a logged-out cookie")
	if thief.loggedIn(c.a) {
		t.Fatal("the logged-out cookie works again")
	}
	c.expectEvent(t, dynaguard.EventSessionRevoked, "delete")
	c.expectEvent(t, dynaguard.EventSessionRefusedAfterLogout, "deleted")
}

// A password change ends every other session of the account at once, on
// both instances; the session that changed it stays logged in.
func TestIntegrationPasswordChangeEndsOtherSessions(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{})
	acct := newAccount()
	laptop := c.browser()
	laptop.register(c.a, acct)
	phone := c.browser()
	expectRedirect(t, phone.login(c.b, c.b, acct.username, acct.password), "/account", "second login")
	if !phone.loggedIn(c.a) {
		t.Fatal("second session not logged in")
	}

	const newPassword = "granite piano meadow 58"
	r := laptop.submit(c.a, c.b, "/account/password", "/account/password", url.Values{"current": {acct.password}, "new": {newPassword}})
	expectRedirect(t, r, "/account", "change password")

	for _, srv := range []*httptest.Server{c.a, c.b} {
		if phone.loggedIn(srv) {
			t.Fatal("the other session survived the password change")
		}
		if !laptop.loggedIn(srv) {
			t.Fatal("the session that changed the password was logged out")
		}
	}
	expect(t, c.browser().login(c.a, c.a, acct.email, acct.password), http.StatusUnauthorized, "old password")
	expectRedirect(t, c.browser().login(c.b, c.b, acct.email, newPassword), "/account", "new password")
	c.expectEvent(t, dynaguard.EventSessionRevoked, "revoke_all")
	c.expectEvent(t, dynaguard.EventLoginFailed, "invalid_credentials")
}

// A reset token works once, and dies when the password changes by any
// other way — even unused. Asking for a reset says the same for an unknown
// address as for a known one.
func TestIntegrationResetTokenReuse(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{})
	acct := newAccount()
	c.browser().register(c.a, acct)

	anon := c.browser()
	known := anon.submit(c.a, c.a, "/password/reset", "/password/reset", url.Values{"email": {acct.email}})
	expect(t, known, http.StatusOK, "reset request for an account")
	unknown := anon.submit(c.b, c.b, "/password/reset", "/password/reset", url.Values{"email": {"nobody-" + acct.email}})
	expect(t, unknown, http.StatusOK, "reset request for no account")
	if a, b := pageText(known.body, acct.email), pageText(unknown.body, "nobody-"+acct.email); a != b {
		t.Errorf("the reset page differs for known and unknown addresses:\n%s\n----\n%s", a, b)
	}
	token := c.lastMessage(acct.email, "password-reset").Token
	if _, ok := c.outbox.Last("nobody-"+acct.email, "password-reset"); ok {
		t.Error("a reset link was sent to an address without an account")
	}

	const pw2 = "harbor lantern cobalt 93"
	confirm := func(srv *httptest.Server, tok, pw string) response {
		return anon.submit(srv, srv, "/password/reset/confirm?token="+url.QueryEscape(tok), "/password/reset/confirm",
			url.Values{"token": {tok}, "password": {pw}})
	}
	expectRedirect(t, confirm(c.b, token, pw2), "/login", "reset with the token")
	reused := confirm(c.a, token, "another secret phrase 77")
	expect(t, reused, http.StatusBadRequest, "the same token again")
	c.expectEvent(t, dynaguard.EventResetUsed, "")
	c.expectEvent(t, dynaguard.EventResetRefused, "invalid_token")
	expect(t, c.browser().login(c.a, c.a, acct.email, "another secret phrase 77"), http.StatusUnauthorized, "password of the reused token")
	expectRedirect(t, c.browser().login(c.a, c.a, acct.email, pw2), "/account", "password of the reset")

	// A token issued before a password change is dead after it, unused.
	anon.submit(c.a, c.a, "/password/reset", "/password/reset", url.Values{"email": {acct.email}})
	stale := c.lastMessage(acct.email, "password-reset").Token
	if stale == token {
		t.Fatal("no new reset token was sent")
	}
	u := c.browser()
	expectRedirect(t, u.login(c.b, c.b, acct.email, pw2), "/account", "login")
	const pw3 = "saffron glacier echo 15"
	expectRedirect(t, u.submit(c.b, c.b, "/account/password", "/account/password", url.Values{"current": {pw2}, "new": {pw3}}),
		"/account", "change password")
	expect(t, confirm(c.a, stale, "attacker chosen phrase 11"), http.StatusBadRequest, "token issued before a password change")
	expectRedirect(t, c.browser().login(c.a, c.a, acct.email, pw3), "/account", "the changed password still works")
}

// pageText strips a page down to its visible words, minus the address and
// the per-request nonces, for comparing two pages.
func pageText(body, email string) string {
	body = nonceRe.ReplaceAllString(body, "")
	body = strings.ReplaceAll(body, html.EscapeString(email), "EMAIL")
	return regexp.MustCompile(`\s+`).ReplaceAllString(body, " ")
}

// Brute force: after the free attempts, a wrong password is answered 429 with
// Retry-After before any password hashing — and so is the right one, from
// the same client, until the delay has passed.
func TestIntegrationBruteForceThrottledBeforeHashing(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{})
	acct := newAccount()
	c.browser().register(c.a, acct)

	attacker := c.browser()
	before := c.hasher.verifies.Load()
	const free = 5 // users.Throttle's default PerAccount.Free
	for i := range free {
		srv := c.a
		if i%2 == 1 {
			srv = c.b
		}
		expect(t, attacker.login(srv, srv, acct.email, fmt.Sprintf("wrong guess %d zebra", i)), http.StatusUnauthorized, "wrong password")
	}
	if got := c.hasher.verifies.Load() - before; got != free {
		t.Fatalf("%d hash verifications for %d attempts", got, free)
	}
	for i, pw := range []string{"wrong guess again zebra", acct.password} {
		srv := []*httptest.Server{c.a, c.b}[i]
		r := attacker.login(srv, srv, acct.email, pw)
		expect(t, r, http.StatusTooManyRequests, "throttled attempt")
		secs, err := strconv.Atoi(r.Header.Get("Retry-After"))
		if err != nil || secs < 1 {
			t.Fatalf("Retry-After %q", r.Header.Get("Retry-After"))
		}
	}
	if got := c.hasher.verifies.Load() - before; got != free {
		t.Fatalf("throttled attempts did password work: %d verifications, want %d", got, free)
	}
	c.expectEvent(t, dynaguard.EventLoginFailed, "invalid_credentials")
	if e := c.expectEvent(t, dynaguard.EventLoginThrottled, ""); e.ClientAddr == "" {
		t.Errorf("the throttled login names no client address: %+v", e)
	}
	// The counters that did it: keyed hashes, never the login name or
	// the address.
	if dump := ddbtest.Dump(t, c.tbl); !strings.Contains(dump, dynaguard.PrefixThrottle+"login#") {
		t.Errorf("no per-login throttling counter in the table")
	}
}

// A second account cannot take an existing one's address or username by a
// case or Unicode variant (NFKC, case folding), on either instance. (A
// taken address is answered quietly, like a new one; a taken username is
// said.)
func TestIntegrationDuplicateRegistrationVariant(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{})
	c.browser().register(c.a, account{email: "alice@example.com", username: "alice", password: password})

	variants := []account{
		{email: "ALICE@Example.COM", username: "alice2"},
		{email: "ａｌｉｃｅ@example.com", username: "alice3"},  // full-width
		{email: "alice4@example.com", username: "ALICE"},  // username case
		{email: "alice5@example.com", username: "ａｌｉｃｅ"},  // full-width username
		{email: " Alice@EXAMPLE.com ", username: "Ａｌｉｃｅ"}, // both
	}
	for i, v := range variants {
		srv := []*httptest.Server{c.a, c.b}[i%2]
		r := c.browser().submit(srv, srv, "/register", "/register", url.Values{
			"email": {v.email}, "username": {v.username}, "password": {password},
		})
		if strings.HasPrefix(v.username, "alice") && v.username != "alice" {
			// Only the email address is taken: the quiet sign-up answers
			// as for a new one (and tells alice by email).
			expectRedirect(t, r, "/login", fmt.Sprintf("register %q / %q", v.email, v.username))
			continue
		}
		expect(t, r, http.StatusConflict, fmt.Sprintf("register %q / %q", v.email, v.username))
	}
	accounts := 0
	for _, item := range ddbtest.Scan(t, c.tbl) {
		if strings.HasPrefix(item["pk"], dynaguard.PrefixUser) {
			accounts++
		}
	}
	if accounts != 1 {
		t.Fatalf("%d accounts in the table, want 1", accounts)
	}
}

// enrolTOTP turns two-step verification on for b's account (whose password
// is the constant password) and returns the secret, its parameters and the
// recovery codes.
func (b *browser) enrolTOTP(srv *httptest.Server, now time.Time) ([]byte, totp.Params, []string) {
	b.t.Helper()
	expectRedirect(b.t, b.submit(srv, srv, "/account/totp", "/account/totp/setup", url.Values{"password": {password}}), "/account/totp", "start TOTP setup")
	page := b.get(srv, "/account/totp")
	m := regexp.MustCompile(`id="totp-uri">([^<]+)<`).FindStringSubmatch(page.body)
	if m == nil {
		b.t.Fatalf("no otpauth URI on the page:\n%s", page.body)
	}
	secret, p := parseOTPAuth(b.t, html.UnescapeString(m[1]))
	code := totp.Code(secret, totp.Step(now, p), p)
	r := b.post(srv, "/account/totp", url.Values{"code": {code}, "password": {password}, "nonce": {nonceFor(b.t, page.body, "/account/totp")}})
	expect(b.t, r, http.StatusOK, "confirm TOTP")
	var codes []string
	for _, m := range regexp.MustCompile(`<span class="recovery-code">([^<]+)</span>`).FindAllStringSubmatch(r.body, -1) {
		codes = append(codes, m[1])
	}
	if len(codes) == 0 {
		b.t.Fatalf("no recovery codes shown:\n%s", r.body)
	}
	return secret, p, codes
}

func parseOTPAuth(t testing.TB, uri string) ([]byte, totp.Params) {
	t.Helper()
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "otpauth" {
		t.Fatalf("bad otpauth URI %q", uri)
	}
	q := u.Query()
	secret, err := totp.DecodeSecret(q.Get("secret"))
	if err != nil {
		t.Fatal(err)
	}
	var p totp.Params
	if d, err := strconv.Atoi(q.Get("digits")); err == nil {
		p.Digits = d
	}
	if s, err := strconv.Atoi(q.Get("period")); err == nil {
		p.Period = time.Duration(s) * time.Second
	}
	if q.Get("algorithm") != "" && q.Get("algorithm") != "SHA1" {
		t.Fatalf("unexpected algorithm %s", q.Get("algorithm"))
	}
	return secret, p
}

// A TOTP code is accepted once: sent again — after an observed login, by a
// phishing proxy, on the other instance — it is refused, and the account
// owner is told. The same holds for a recovery code.
func TestIntegrationTOTPCodeReplay(t *testing.T) {
	t.Parallel()
	clock := ddbtest.NewClock(time.Now())
	c := newCluster(t, clusterOpts{clock: clock})
	acct := newAccount()
	u := c.browser()
	u.register(c.a, acct)
	secret, p, recovery := u.enrolTOTP(c.a, clock.Now())
	u.logout(c.a)

	clock.Advance(p.Defaults().Period) // the enrolment used this step's code
	code := totp.Code(secret, totp.Step(clock.Now(), p), p)
	first := c.browser()
	expectRedirect(t, first.login(c.a, c.a, acct.email, acct.password), "/login/totp", "password step")
	if first.loggedIn(c.a) {
		t.Fatal("logged in before the second factor")
	}
	expectRedirect(t, first.submit(c.a, c.a, "/login/totp", "/login/totp", url.Values{"code": {code}}), "/account", "code step")
	if !first.loggedIn(c.b) {
		t.Fatal("not logged in after the code")
	}

	replayer := c.browser()
	expectRedirect(t, replayer.login(c.b, c.b, acct.username, acct.password), "/login/totp", "password step")
	r := replayer.submit(c.b, c.b, "/login/totp", "/login/totp", url.Values{"code": {code}})
	expect(t, r, http.StatusUnauthorized, "replayed code on the other instance")
	if replayer.loggedIn(c.a) {
		t.Fatal("the replayed code logged in")
	}
	c.lastMessage(acct.email, "totp-code-replayed")
	c.expectEvent(t, dynaguard.EventSecondFactorReplayed, "")

	// A recovery code works once, too.
	expectRedirect(t, replayer.submit(c.b, c.b, "/login/totp", "/login/totp", url.Values{"code": {recovery[0]}}), "/account", "recovery code")
	again := c.browser()
	expectRedirect(t, again.login(c.a, c.a, acct.email, acct.password), "/login/totp", "password step")
	expect(t, again.submit(c.a, c.a, "/login/totp", "/login/totp", url.Values{"code": {recovery[0]}}), http.StatusUnauthorized, "used recovery code")
}

// A cross-origin form post (CSRF) is refused by http.CrossOriginProtection
// before any work: the form's nonce is not even spent.
func TestIntegrationCrossOriginPostRefused(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{})
	acct := newAccount()
	u := c.browser()
	u.register(c.a, acct)

	page := u.get(c.a, "/transfers/new")
	nonce := nonceFor(t, page.body, "/transfers")
	form := url.Values{"to": {"mallory"}, "amount": {"500"}, "nonce": {nonce}}
	req, _ := http.NewRequest(http.MethodPost, c.b.URL+"/transfers", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	expect(t, u.do(req), http.StatusForbidden, "cross-site form post")

	req, _ = http.NewRequest(http.MethodPost, c.a.URL+"/api/transfers", strings.NewReader(`{"to":"mallory","amount":500}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", `"k-csrf"`)
	req.Header.Set("Origin", "https://evil.example")
	expect(t, u.do(req), http.StatusForbidden, "cross-origin API post")

	if ts := u.transfers(c.a); len(ts) != 0 {
		t.Fatalf("a cross-origin request made a transfer: %+v", ts)
	}
	c.expectEvent(t, dynaguard.EventCrossOriginRefused, "")
	// The refused request did not spend the nonce: the real form still works.
	expectRedirect(t, u.post(c.a, "/transfers", form), "/transfers", "the genuine submission")
}

// After every flow, a dump of the whole table holds no password, session
// token, nonce, reset or verification token, TOTP secret or recovery code.
func TestIntegrationTableDumpHoldsNoSecret(t *testing.T) {
	t.Parallel()
	clock := ddbtest.NewClock(time.Now())
	c := newCluster(t, clusterOpts{clock: clock})
	acct := newAccount()
	var secrets []string
	keep := func(s ...string) { secrets = append(secrets, s...) }
	keepCookies := func(b *browser) {
		for _, ck := range b.jar.Cookies(b.origin()) {
			keep(ck.Value)
		}
	}

	u := c.browser()
	page := u.get(c.a, "/register")
	keep(nonceFor(t, page.body, "/register"))
	u.register(c.a, acct)
	keep(acct.password)
	keepCookies(u)

	verify := c.lastMessage(acct.email, "verify-email").Token
	keep(verify)
	expectRedirect(t, u.submit(c.b, c.b, "/email/verify?token="+url.QueryEscape(verify), "/email/verify", url.Values{"token": {verify}}),
		"/account", "verify email")

	secret, p, recovery := u.enrolTOTP(c.b, clock.Now())
	keep(recovery...)
	keep(totp.EncodeSecret(secret), hex.EncodeToString(secret), base64.StdEncoding.EncodeToString(secret), base64.RawURLEncoding.EncodeToString(secret))
	keepCookies(u)

	const apiBody = `{"to":"bob","amount":4200}`
	expect(t, u.api(c.a, http.MethodPost, "k-dump-1", apiBody), http.StatusCreated, "API transfer")
	keep("k-dump-1")
	keepCookies(u)

	anon := c.browser()
	anon.submit(c.a, c.a, "/password/reset", "/password/reset", url.Values{"email": {acct.email}})
	reset := c.lastMessage(acct.email, "password-reset").Token
	keep(reset)
	const pw2 = "quartz meadow falcon 64"
	expectRedirect(t, anon.submit(c.a, c.a, "/password/reset/confirm?token="+url.QueryEscape(reset), "/password/reset/confirm",
		url.Values{"token": {reset}, "password": {pw2}}), "/login", "reset")
	keep(pw2)

	clock.Advance(p.Defaults().Period)
	l := c.browser()
	expectRedirect(t, l.login(c.b, c.b, acct.email, pw2), "/login/totp", "login")
	keepCookies(l)
	expectRedirect(t, l.submit(c.b, c.b, "/login/totp", "/login/totp",
		url.Values{"code": {totp.Code(secret, totp.Step(clock.Now(), p), p)}}), "/account", "code")
	keepCookies(l)
	p2 := l.get(c.a, "/transfers/new")
	n := nonceFor(t, p2.body, "/transfers")
	keep(n)
	expectRedirect(t, l.post(c.a, "/transfers", url.Values{"to": {"carol"}, "amount": {"1.00"}, "nonce": {n}}), "/transfers", "form transfer")

	dump := ddbtest.Dump(t, c.tbl)
	if len(dump) < 1000 {
		t.Fatalf("the dump is suspiciously small:\n%s", dump)
	}
	for _, s := range secrets {
		if len(s) < 8 {
			t.Fatalf("secret %q is too short to search for", s)
		}
		if strings.Contains(dump, s) {
			t.Errorf("the table dump contains a secret (%d characters, starts %q)", len(s), s[:4])
		}
	}
	// Every stored hash against a dictionary of what the test sent: no
	// unkeyed hash of a body or secret — alone, or framed as the idempotency
	// fingerprint once was — appears, so none can be found by guessing.
	guesses := 0
	for _, s := range append([]string{apiBody}, secrets...) {
		for _, h := range unkeyedHashes(s) {
			guesses++
			if strings.Contains(dump, hex.EncodeToString(h)) {
				t.Errorf("the table dump holds an unkeyed hash of a value the test sent (starts %q)", s[:4])
			}
		}
	}
	t.Logf("checked %d secrets and %d hash guesses against a %d-byte dump of %d items", len(secrets), guesses, len(dump), len(ddbtest.Scan(t, c.tbl)))
	// The events of both instances hold none of them either, nor the
	// account's address or username (an event names the account by its
	// random ID).
	c.noSecretInEvents(t, append(secrets, acct.email, acct.username))
}

// unkeyedHashes is what an attacker with a dump would try for a guessed
// value v: SHA-256 of v, and the unkeyed request fingerprint of an API POST
// of v (length-prefixed method, path, query, content type and body).
func unkeyedHashes(v string) [][]byte {
	plain := sha256.Sum256([]byte(v))
	h := sha256.New()
	h.Write([]byte("dynaguard/idempotency/v1 request\x00"))
	for _, f := range []string{http.MethodPost, "/api/transfers", "", "application/json", v} {
		h.Write(binary.AppendUvarint(nil, uint64(len(f))))
		h.Write([]byte(f))
	}
	return [][]byte{plain[:], h.Sum(nil)}
}

// -dev over plain HTTP: cookies without Secure (and without __Host-, which
// requires it) so a browser on http://127.0.0.1 keeps them; the outbox is
// served as JSON.
func TestIntegrationDevModeOverPlainHTTP(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{dev: true})
	acct := newAccount()
	u := c.browser()

	for _, path := range []string{"/register", "/login", "/password/reset"} {
		r := u.get(c.a, path)
		expect(t, r, http.StatusOK, "GET "+path)
		if !strings.Contains(r.body, `<input type="hidden" name="nonce" value="`) {
			t.Errorf("GET %s has no hidden nonce input", path)
		}
	}
	expectRedirect(t, u.get(c.b, "/account"), "/login", "anonymous /account")
	u.register(c.b, acct)
	if u.cookie("session") == "" || u.cookie("dg-nonce") == "" {
		t.Fatalf("dev cookies missing: %v", u.jar.Cookies(u.origin()))
	}
	acc := u.get(c.a, "/account")
	expect(t, acc, http.StatusOK, "GET /account")
	if !strings.Contains(acc.body, acct.email) {
		t.Error("the account page does not show the email address")
	}
	for _, h := range []string{"Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy"} {
		if acc.Header.Get(h) == "" {
			t.Errorf("no %s header", h)
		}
	}
	if csp := acc.Header.Get("Content-Security-Policy"); strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("CSP %q", csp)
	}

	r := u.get(c.a, "/dev/outbox")
	expect(t, r, http.StatusOK, "GET /dev/outbox")
	var msgs []map[string]any
	if err := json.Unmarshal([]byte(r.body), &msgs); err != nil {
		t.Fatalf("outbox: %v\n%s", err, r.body)
	}
	found := false
	for _, m := range msgs {
		if m["to"] == acct.email && m["kind"] == "verify-email" && m["token"] != "" && m["token"] != nil {
			found = true
		}
	}
	if !found {
		t.Fatalf("no verify-email message with to, kind and token in the outbox: %s", r.body)
	}
}

// What each kind of request costs in DynamoDB calls, measured through a
// recorder around the table: the figures docs/ARCHITECTURE.md gives for the
// example app.
func TestIntegrationCallsPerRequest(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{record: true})
	u := c.browser()
	u.register(c.a, newAccount())
	u.get(c.a, "/account") // shows (and so clears) the welcome message

	measure := func(what string, gets, writes int, f func()) {
		t.Helper()
		c.rec.Reset()
		f()
		calls := c.rec.Calls()
		var ops []string
		for _, call := range calls {
			ops = append(ops, call.Op)
		}
		t.Logf("%-44s %d calls: %s", what, len(calls), strings.Join(ops, ", "))
		if g := c.rec.Count("GetItem"); g != gets || c.rec.Writes() != writes || len(calls) != gets+writes {
			t.Errorf("%s: %d GetItem and %d writes of %d calls, want %d and %d", what, g, c.rec.Writes(), len(calls), gets, writes)
		}
		for _, call := range calls {
			if call.Op == "GetItem" && !call.ConsistentRead {
				t.Errorf("%s: an eventually consistent GetItem", what)
			}
		}
	}
	measure("authenticated GET /account", 2, 0, func() { expect(t, u.get(c.a, "/account"), 200, "account") })
	var page response
	measure("GET /transfers/new (issues a nonce)", 2, 0, func() { page = u.get(c.a, "/transfers/new") })
	form := url.Values{"to": {"bob"}, "amount": {"1"}, "nonce": {nonceFor(t, page.body, "/transfers")}}
	// nonce PutItem + transfer UpdateItem + the session's commit (it holds the flash message)
	measure("POST /transfers (form)", 2, 3, func() { expectRedirect(t, u.post(c.a, "/transfers", form), "/transfers", "transfer") })
	// + the transfers GetItem; showing the flash message changes the session: 1 commit
	measure("GET /transfers (pops the flash message)", 3, 1, func() { expect(t, u.get(c.a, "/transfers"), 200, "transfers") })
	measure("GET /transfers", 3, 0, func() { expect(t, u.get(c.a, "/transfers"), 200, "transfers") })
	measure("replayed POST /transfers (refused)", 2, 1, func() { expect(t, u.post(c.a, "/transfers", form), 409, "replay") })
	body := `{"to":"carol","amount":500}`
	// idempotency claim PutItem + transfer UpdateItem + completion UpdateItem
	measure("POST /api/transfers", 2, 3, func() { expect(t, u.api(c.a, http.MethodPost, "k-calls", body), 201, "api") })
	measure("POST /api/transfers, replay (cached)", 2, 0, func() { expect(t, u.api(c.a, http.MethodPost, "k-calls", body), 201, "replay") })
	// the other instance has no cached copy: the claim attempt fails and returns the stored record
	measure("POST /api/transfers, replay (other instance)", 2, 1, func() { expect(t, u.api(c.b, http.MethodPost, "k-calls", body), 201, "replay") })
}

// End-to-end cost of the example app's hot paths over HTTP against DynamoDB
// Local (one instance, TLS, cheap argon2id): an authenticated page and an API
// POST with a fresh Idempotency-Key. Run with make bench.
func BenchmarkIntegrationAuthenticatedPage(b *testing.B) {
	if ddbtest.Endpoint() == "" {
		b.Skip("DYNAMODB_ENDPOINT is not set")
	}
	c := newCluster(b, clusterOpts{})
	u := c.browser()
	u.register(c.a, newAccount())
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if r := u.get(c.a, "/account"); r.StatusCode != http.StatusOK {
			b.Fatalf("status %d", r.StatusCode)
		}
	}
}

func BenchmarkIntegrationAPIPost(b *testing.B) {
	if ddbtest.Endpoint() == "" {
		b.Skip("DYNAMODB_ENDPOINT is not set")
	}
	c := newCluster(b, clusterOpts{})
	u := c.browser()
	u.register(c.a, newAccount())
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		i++
		// A new user every MaxTransfers posts: the demo keeps a bounded list.
		if i%app.MaxTransfers == 0 {
			b.StopTimer()
			u = c.browser()
			u.register(c.a, newAccount())
			b.StartTimer()
		}
		if r := u.api(c.a, http.MethodPost, fmt.Sprintf("bench-%d", i), `{"to":"bob","amount":1}`); r.StatusCode != http.StatusCreated {
			b.Fatalf("status %d: %s", r.StatusCode, r.body)
		}
	}
}
