package users

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/dynaguard/dynaguard/internal/ddbtest"
	"github.com/dynaguard/dynaguard/sessionstore"
)

func TestLoginRenewsTokenAndBindsSession(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := newApp(e)
	zoe := e.create("zoe@example.com", "zoe")
	b := a.browser("192.0.2.1")
	// A token planted before the login (session fixation) ...
	planted := "Zm9yY2VkLWJ5LWFuLWF0dGFja2VyLXRva2VuLWZpeGVkIQ"
	u, _ := url.Parse(a.srv.URL)
	b.c.Jar.SetCookies(u, []*http.Cookie{{Name: a.sm.Cookie.Name, Value: planted, Path: "/"}})
	if code := b.login("zoe", goodPassword); code != http.StatusNoContent {
		t.Fatalf("login: %d", code)
	}
	token := b.sessionToken()
	if token == "" || token == planted {
		t.Fatalf("token not renewed at login: %q", token)
	}
	// ... is worthless after it.
	attacker := a.browser("203.0.113.1")
	attacker.c.Jar.SetCookies(u, []*http.Cookie{{Name: a.sm.Cookie.Name, Value: planted, Path: "/"}})
	if code, body := attacker.get("/public"); code != 200 || body != "anonymous" {
		t.Fatalf("planted token: %d %s", code, body)
	}
	if code, body := b.get("/me"); code != 200 || body != zoe.ID {
		t.Fatalf("/me: %d %s", code, body)
	}
	// The session is bound to the user in the store.
	sessions, err := e.store.List(ctx, zoe.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(sessions) != 1 || sessions[0].ID != e.store.ID(token) || sessions[0].IP != "192.0.2.1" {
		t.Fatalf("sessions: %+v", sessions)
	}
	// Logout is server-side: replaying the cookie afterwards is anonymous.
	if code := b.post("/logout", nil); code != http.StatusNoContent {
		t.Fatalf("logout: %d", code)
	}
	replay := a.browser("192.0.2.1")
	replay.c.Jar.SetCookies(u, []*http.Cookie{{Name: a.sm.Cookie.Name, Value: token, Path: "/"}})
	if code, body := replay.get("/public"); body != "anonymous" {
		t.Fatalf("replayed token after logout: %d %s", code, body)
	}
}

// An authenticated GET costs exactly two strongly consistent reads (the
// session and the account), one read unit each, and no write.
func TestCallsPerAuthenticatedRequest(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := newApp(e)
	e.create("abe@example.com", "abe")
	b := a.browser("192.0.2.1")
	e.rec.Reset()
	if code := b.login("abe", goodPassword); code != http.StatusNoContent {
		t.Fatalf("login: %d", code)
	}
	// A login request: the four calls of Authenticate and the session's
	// first write (which carries the binding).
	if got := ops(e.rec.Calls()); got != "BatchGetItem,GetItem,UpdateItem,DeleteItem,UpdateItem" {
		t.Fatalf("calls per login request: %s", got)
	}
	e.rec.Capacity = true
	for i := range 3 {
		e.rec.Reset()
		if code, _ := b.get("/me"); code != 200 {
			t.Fatalf("/me: %d", code)
		}
		calls := e.rec.Calls()
		if got := ops(calls); got != "GetItem,GetItem" || e.rec.Writes() != 0 {
			t.Fatalf("request %d: calls %s", i, got)
		}
		for _, c := range calls {
			if !c.ConsistentRead {
				t.Fatalf("request %d: eventually consistent read %+v", i, c)
			}
		}
		if rcu, _ := e.rec.CapacityUsed(); rcu != 2 {
			t.Fatalf("request %d: %v read units, want 2", i, rcu)
		}
	}
}

// A changed password stops working at once, on every instance; the
// user's other sessions are rejected at their next request; the session
// that made the change stays logged in, under a new token.
func TestStaleCredentials(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := newApp(e)
	other := e.instance()
	a2 := newAppFor(e, other, other.sessions.(*sessionstore.Store))
	bea := e.create("bea@example.com", "bea")
	b1, b2, b3 := a.browser("192.0.2.1"), a.browser("192.0.2.2"), a2.browser("192.0.2.3")
	for _, b := range []*browser{b1, b2, b3} {
		if code := b.login("bea", goodPassword); code != http.StatusNoContent {
			t.Fatalf("login: %d", code)
		}
	}
	before := b1.sessionToken()
	const newPassword = "violet elephant trampoline"
	if code := b1.post("/password", url.Values{"current": {goodPassword}, "new": {newPassword}}); code != http.StatusNoContent {
		t.Fatalf("change password: %d", code)
	}
	for _, u := range []*Users{e.users, other} {
		if _, err := u.Authenticate(ctx, Credentials{Login: "bea", Password: goodPassword, IP: ip("192.0.2.9")}); err != ErrInvalidCredentials {
			t.Fatalf("old password right after the change: %v", err)
		}
		if _, err := u.Authenticate(ctx, Credentials{Login: "bea", Password: newPassword, IP: ip("192.0.2.9")}); err != nil {
			t.Fatalf("new password: %v", err)
		}
	}
	if code, body := b1.get("/me"); code != 200 || body != bea.ID {
		t.Fatalf("the changing session was logged out: %d %s", code, body)
	}
	if b1.sessionToken() == before {
		t.Fatal("the changing session kept its token")
	}
	for i, b := range []*browser{b2, b3} {
		if code, _ := b.get("/me"); code != http.StatusUnauthorized {
			t.Fatalf("other session %d still logged in: %d", i, code)
		}
	}
	// Wrong current password: refused like a failed login, and counted.
	before2, _ := e.users.Get(ctx, bea.ID)
	if code := b1.post("/password", url.Values{"current": {"nope"}, "new": {"another fine passphrase"}}); code != http.StatusUnauthorized {
		t.Fatalf("wrong current password: %d", code)
	}
	u, _ := e.users.Get(ctx, bea.ID)
	if u.ConsecutiveFailures() != before2.ConsecutiveFailures()+1 {
		t.Fatalf("failures = %d, want the one wrong current password", u.ConsecutiveFailures())
	}
	// Weak new password: refused with the rule.
	resp, body := b1.do("POST", "/password", url.Values{"current": {newPassword}, "new": {"password1"}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, `"rule":"common"`) {
		t.Fatalf("weak new password: %d %s", resp.StatusCode, body)
	}
	if _, err := e.users.Authenticate(ctx, Credentials{Login: "bea", Password: newPassword, IP: ip("192.0.2.9")}); err != nil {
		t.Fatalf("a refused change altered the password: %v", err)
	}
}

func TestLogoutEverywhereAndOthers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := newApp(e)
	e.create("cy@example.com", "cy")
	b1, b2, b3 := a.browser("192.0.2.1"), a.browser("192.0.2.2"), a.browser("192.0.2.3")
	for _, b := range []*browser{b1, b2, b3} {
		b.login("cy", goodPassword)
	}
	if code := b1.post("/logout-others", nil); code != http.StatusNoContent {
		t.Fatalf("logout-others: %d", code)
	}
	want := map[*browser]int{b1: 200, b2: 401, b3: 401}
	for b, code := range want {
		if got, _ := b.get("/me"); got != code {
			t.Fatalf("after logout-others: %s got %d, want %d", b.ip, got, code)
		}
	}
	b2.login("cy", goodPassword)
	if code := b2.post("/logout-everywhere", nil); code != http.StatusNoContent {
		t.Fatalf("logout-everywhere: %d", code)
	}
	for _, b := range []*browser{b1, b2} {
		if got, _ := b.get("/me"); got != 401 {
			t.Fatalf("after logout-everywhere: %s got %d", b.ip, got)
		}
	}
}

// Only a checked credential makes a login recent. "Sign out other
// sessions" renews the token but checks nothing, so a session whose login
// is old stays old — otherwise one POST would turn a stolen session into a
// fresh login for RequireRecentAuth, TOTP set-up and email changes. A
// password change checks the password and refreshes the time — except for
// an account with TOTP, where the password alone is not a full login.
func TestOnlyACheckedCredentialRefreshesAuthTime(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := newApp(e)
	e.create("gil@example.com", "gil")
	b1, b2 := a.browser("192.0.2.1"), a.browser("192.0.2.2")
	for _, b := range []*browser{b1, b2} {
		if code := b.login("gil", goodPassword); code != http.StatusNoContent {
			t.Fatalf("login: %d", code)
		}
	}
	e.clock.Advance(11 * time.Minute)
	if code, _ := b1.get("/sensitive"); code != http.StatusUnauthorized {
		t.Fatalf("an 11-minute-old login is recent: %d", code)
	}
	if code := b1.post("/logout-others", nil); code != http.StatusNoContent {
		t.Fatalf("logout-others: %d", code)
	}
	if code, _ := b1.get("/me"); code != 200 {
		t.Fatalf("the session that signed the others out: %d", code)
	}
	if code, _ := b2.get("/me"); code != http.StatusUnauthorized {
		t.Fatalf("the other session survived: %d", code)
	}
	if code, _ := b1.get("/sensitive"); code != http.StatusUnauthorized {
		t.Fatalf("logout-others made an old login recent: %d", code)
	}
	if code := b1.post("/password", url.Values{"current": {goodPassword}, "new": {"violet elephant trampoline"}}); code != http.StatusNoContent {
		t.Fatalf("change password: %d", code)
	}
	if code, _ := b1.get("/sensitive"); code != 200 {
		t.Fatalf("a password just checked did not make the login recent: %d", code)
	}

	// The same, call by call, with the session's recorded time.
	gus := e.create("gus@example.com", "gus")
	sm := newSM(e.store)
	sctx, _ := sm.Load(ctx, "")
	c := Client{IP: ip("192.0.2.3")}
	if err := e.users.Login(sctx, sm, gus, c); err != nil {
		t.Fatal(err)
	}
	loggedIn := loginOf(sctx, sm).at
	if loggedIn != e.clock.Now().Unix() {
		t.Fatalf("login time %d, want %d", loggedIn, e.clock.Now().Unix())
	}
	e.clock.Advance(time.Hour)
	if err := e.users.LogoutOthers(sctx, sm, mustGet(t, e, gus.ID), c); err != nil {
		t.Fatal(err)
	}
	if got := loginOf(sctx, sm).at; got != loggedIn || loginOf(sctx, sm).userID != gus.ID {
		t.Fatalf("after LogoutOthers: auth time %d (want %d), user %q", got, loggedIn, loginOf(sctx, sm).userID)
	}
	if err := e.users.ChangePassword(sctx, sm, mustGet(t, e, gus.ID), pw, "violet elephant trampoline", c); err != nil {
		t.Fatal(err)
	}
	if got := loginOf(sctx, sm).at; got != e.clock.Now().Unix() {
		t.Fatalf("after ChangePassword: auth time %d, want now (%d)", got, e.clock.Now().Unix())
	}

	// With TOTP, the password alone is no proof; password and code are, and
	// make the check recent.
	hal := e.create("hal@example.com", "hal")
	secret, _ := e.enable(hal)
	tctx := e.pending(e.users, sm, hal)
	if _, err := e.users.CompleteLogin(tctx, sm, e.code(secret, 0), c); err != nil {
		t.Fatal(err)
	}
	full := loginOf(tctx, sm).at
	e.clock.Advance(time.Hour)
	if err := e.users.ChangePassword(tctx, sm, mustGet(t, e, hal.ID), pw, "violet elephant trampoline", c); !errors.Is(err, ErrProofRequired) {
		t.Fatalf("TOTP account, password alone: %v", err)
	}
	if got := loginOf(tctx, sm).at; got != full {
		t.Fatalf("a refused proof moved the auth time: %d (want %d)", got, full)
	}
	e.clock.Advance(30 * time.Second)
	if err := e.users.ChangePassword(tctx, sm, mustGet(t, e, hal.ID), Proof{Password: goodPassword, Code: e.code(secret, 0)}, "violet elephant trampoline", c); err != nil {
		t.Fatal(err)
	}
	if got := loginOf(tctx, sm).at; got != e.clock.Now().Unix() || loginOf(tctx, sm).userID != hal.ID {
		t.Fatalf("TOTP account after ChangePassword: auth time %d (want now), user %q", got, loginOf(tctx, sm).userID)
	}

	// A session that is not the account's login is never logged in as it.
	anon, _ := sm.Load(ctx, "")
	if err := e.users.LogoutOthers(anon, sm, mustGet(t, e, gus.ID), c); err != nil {
		t.Fatal(err)
	}
	if err := e.users.ChangePassword(anon, sm, mustGet(t, e, hal.ID), Proof{Password: "violet elephant trampoline", Code: e.code(secret, 1)}, goodPassword, c); err != nil {
		t.Fatal(err)
	}
	if uid := loginOf(anon, sm).userID; uid != "" {
		t.Fatalf("an anonymous session was logged in as %s", uid)
	}
	if left, err := e.store.List(ctx, gus.ID); err != nil || len(left) != 0 {
		t.Fatalf("gus's sessions after LogoutOthers from another session: %d %v", len(left), err)
	}
	// Without a session manager (an administrator acting on the account)
	// there is no current session to keep: every session ends.
	if err := e.users.LogoutOthers(ctx, nil, mustGet(t, e, gus.ID), c); err != nil {
		t.Fatal(err)
	}
}

func TestDisableEndsSessions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := newApp(e)
	dee := e.create("dee@example.com", "dee")
	b := a.browser("192.0.2.1")
	b.login("dee", goodPassword)
	if err := e.users.Disable(ctx, dee.ID); err != nil {
		t.Fatal(err)
	}
	if code, _ := b.get("/me"); code != 401 {
		t.Fatalf("disabled user's session: %d", code)
	}
	resp, body := b.do("POST", "/login", url.Values{"login": {"dee"}, "password": {goodPassword}})
	wrong, wbody := b.do("POST", "/login", url.Values{"login": {"dee"}, "password": {"wrong"}})
	if resp.StatusCode != 401 || resp.StatusCode != wrong.StatusCode || body != wbody {
		t.Fatalf("disabled login %d %s vs wrong password %d %s", resp.StatusCode, body, wrong.StatusCode, wbody)
	}
	if err := e.users.Enable(ctx, dee.ID); err != nil {
		t.Fatal(err)
	}
	if code := b.login("dee", goodPassword); code != http.StatusNoContent {
		t.Fatalf("login after enable: %d", code)
	}
	if err := e.users.Disable(ctx, "no-such-user"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("disable unknown: %v", err)
	}
}

func TestRequireUserResponses(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := newApp(e)
	e.create("eve@example.com", "eve")
	api := a.browser("192.0.2.1")
	resp, body := api.do("GET", "/me?x=1", nil)
	var p map[string]any
	_ = json.Unmarshal([]byte(body), &p)
	if resp.StatusCode != 401 || resp.Header.Get("Content-Type") != "application/problem+json" || p["reason"] != "authentication-required" {
		t.Fatalf("API client: %d %s", resp.StatusCode, body)
	}
	web := a.browser("192.0.2.2")
	web.html = true
	resp, _ = web.do("GET", "/me?x=1", nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login?next=%2Fme%3Fx%3D1" {
		t.Fatalf("browser: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	// Recent authentication.
	web.login("eve", goodPassword)
	if code, _ := web.get("/sensitive"); code != 200 {
		t.Fatalf("fresh login: %d", code)
	}
	e.clock.Advance(11 * time.Minute)
	resp, _ = web.do("GET", "/sensitive", nil)
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Location"), "reauth=1") {
		t.Fatalf("stale login, browser: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	web.html = false
	resp, body = web.do("GET", "/sensitive", nil)
	if resp.StatusCode != 401 || !strings.Contains(body, "reauthentication-required") {
		t.Fatalf("stale login, API: %d %s", resp.StatusCode, body)
	}
	if code, _ := web.get("/me"); code != 200 {
		t.Fatal("an old login is still a login for ordinary pages")
	}
	web.login("eve", goodPassword)
	if code, _ := web.get("/sensitive"); code != 200 {
		t.Fatalf("after re-authentication: %d", code)
	}
}

// If the account cannot be read, the request is refused (503) — neither let
// through as the user nor quietly downgraded to anonymous.
func TestLoadUserFailsClosed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := newApp(e)
	e.create("fay@example.com", "fay")
	b := a.browser("192.0.2.1")
	b.login("fay", goodPassword)
	for _, fault := range ddbtest.StorageFaults {
		e.faults.FailNth("GetItem", 2, fault) // 1: the session, 2: the account
		resp, body := b.do("GET", "/public", nil)
		e.faults.Clear()
		if resp.StatusCode != 503 || strings.Contains(body, "anonymous") {
			t.Fatalf("%v: %d %s", fault, resp.StatusCode, body)
		}
	}
	if code, _ := b.get("/me"); code != 200 {
		t.Fatal("the session did not survive the outage")
	}
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"/account":              "/account",
		"/a?b=c#d":              "/a?b=c#d",
		"":                      "/",
		"https://evil.example/": "/",
		"//evil.example/":       "/",
		"/\\evil.example":       "/",
		"javascript:alert(1)":   "/",
		"/ok\r\nSet-Cookie: x":  "/",
		"account":               "/",
	} {
		if got := SafeNext(in); got != want {
			t.Errorf("SafeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestWriteError(t *testing.T) {
	cases := []struct {
		err    error
		status int
		reason string
		retry  bool
	}{
		{ErrInvalidCredentials, 401, "login-failed", false},
		{&ThrottledError{RetryAfter: 90 * time.Second}, 429, "login-throttled", true},
		{&ThrottledError{Locked: true}, 429, "login-locked", false},
		{ErrBusy, 503, "login-busy", true},
		{unavailable("GetItem", errors.New("boom")), 503, "account-storage-unavailable", true},
		{&PolicyError{Rule: RuleTooShort, Limit: 8}, 422, "password-policy", false},
		{&PolicyError{Rule: RuleUnverified, Err: ErrBreachCheckUnavailable}, 503, "breach-check-unavailable", true},
		{&IdentifierError{Field: "email", Reason: "x"}, 422, "invalid-email", false},
		{&TakenError{Email: true}, 409, "email-taken", false},
		{&TakenError{Username: true}, 409, "username-taken", false},
		{ErrConflict, 409, "account-changed", false},
		{ErrNotFound, 404, "account-not-found", false},
	}
	for _, c := range cases {
		w := httptest.NewRecorder()
		WriteError(w, httptest.NewRequest("POST", "/", nil), c.err)
		var p map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
			t.Fatalf("%v: %v", c.err, err)
		}
		if w.Code != c.status || p["reason"] != c.reason || (w.Header().Get("Retry-After") != "") != c.retry {
			t.Errorf("%v: %d %v Retry-After %q", c.err, w.Code, p["reason"], w.Header().Get("Retry-After"))
		}
		if strings.Contains(w.Body.String(), "boom") {
			t.Errorf("internal error text leaked: %s", w.Body)
		}
	}
	w := httptest.NewRecorder()
	WriteError(w, httptest.NewRequest("POST", "/", nil), &ThrottledError{RetryAfter: 90 * time.Second})
	if w.Header().Get("Retry-After") != "90" {
		t.Errorf("Retry-After = %q", w.Header().Get("Retry-After"))
	}
}
