package sessionstore_test

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/dynaguard/dynaguard/internal/ddbtest"
)

// A full login flow over a real HTTP server: anonymous session, login with
// RenewToken + Bind, logged-in requests, logout with Destroy.
func TestSessionManagerFlowOverHTTP(t *testing.T) {
	tbl := ddbtest.NewTable(t)
	st := newStore(t, tbl)
	sm := manager(st)
	srv := httptest.NewServer(app(sm, st))
	defer srv.Close()
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar}
	u, _ := url.Parse(srv.URL)
	get := func(path string) string {
		t.Helper()
		resp, err := client.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
		}
		return string(body)
	}
	cookie := func() string {
		for _, c := range jar.Cookies(u) {
			if c.Name == "session" {
				return c.Value
			}
		}
		return ""
	}

	get("/put?k=cart&v=3+apples")
	anon := cookie()
	if anon == "" {
		t.Fatal("no session cookie")
	}
	get("/login?user=alice")
	authed := cookie()
	if authed == "" || authed == anon {
		t.Fatal("RenewToken did not issue a new token")
	}
	if got := get("/get?k=cart"); got != "3 apples" {
		t.Fatalf("data lost across RenewToken: %q", got)
	}
	if got := get("/get?k=user"); got != "alice" {
		t.Fatalf("user = %q", got)
	}
	// The pre-login token is dead (session fixation).
	mustNotFind(t, st, anon)
	sessions, err := st.List(ctx, "alice")
	if err != nil || len(sessions) != 1 || sessions[0].ID != st.ID(authed) {
		t.Fatalf("List = %+v, %v", sessions, err)
	}
	if s := sessions[0]; s.IP != "127.0.0.1" || !strings.HasPrefix(s.UserAgent, "Go-http-client") {
		t.Errorf("client info = %+v", s.ClientInfo)
	}

	get("/logout")
	if cookie() != "" {
		t.Fatal("logout did not clear the cookie")
	}
	mustNotFind(t, st, authed)
	if sessions, _ := st.List(ctx, "alice"); len(sessions) != 0 {
		t.Fatalf("List after logout = %+v", sessions)
	}
}

// A replayed cookie after logout or RenewToken gets a fresh, empty session.
func TestReplayedCookieAfterRenewAndDestroy(t *testing.T) {
	tbl := ddbtest.NewTable(t)
	st := newStore(t, tbl)
	h := app(manager(st), st)
	b := newBrowser(t, h)
	b.must("/put?k=v&v=secret")
	before := b.token()
	b.must("/login?user=bob")
	after := b.token()

	thief := newBrowser(t, h)
	thief.cookie = before
	if got := thief.must("/get?k=v"); got != "" {
		t.Fatalf("pre-login token still works: %q", got)
	}
	b.must("/logout")
	thief.cookie = after
	if got := thief.must("/get?k=user"); got != "" {
		t.Fatalf("token still works after logout: %q", got)
	}
	if got := b.must("/get?k=user"); got != "" {
		t.Fatalf("session survived logout: %q", got)
	}
}

// IdleTimeout: a session unused for longer than the idle timeout is gone,
// although its item is still in the table. The store's Find is the only
// expiry check scs has.
func TestIdleTimeout(t *testing.T) {
	tbl := ddbtest.NewTable(t)
	clock := ddbtest.NewClock(time.Now())
	st := newStore(t, tbl, withClock(clock))
	b := newBrowser(t, app(manager(st, idle(30*time.Minute)), st))
	b.must("/put?k=v=&v=x")
	tok := b.token()
	clock.Advance(29 * time.Minute)
	if got := b.must("/get?k=v="); got != "x" {
		t.Fatalf("session lost before its idle timeout: %q", got)
	}
	clock.Advance(2 * time.Minute)
	if got := b.must("/get?k=v="); got != "" {
		t.Fatalf("session outlived its idle timeout: %q", got)
	}
	if rawItem(t, tbl, st, tok) == nil {
		t.Fatal("the test needs the expired item to still be in the table")
	}
}

// IdleTimeout slides with activity — also when most commits are skipped —
// and the session still ends after an idle period. scs reads the wall clock,
// so the sliding part needs real time: requests every 800 ms for 4 s
// against a 3 s idle timeout (room for slow requests on a loaded machine:
// only a gap of 3 s between two requests would end the session).
func TestIdleTimeoutSlidesWithActivity(t *testing.T) {
	t.Parallel()
	tbl, rec := ddbtest.Record(ddbtest.NewTable(t))
	clock := &realOffsetClock{}
	st := newStore(t, tbl, withClock(clock))
	b := newBrowser(t, app(manager(st, idle(3*time.Second)), st))
	b.must("/put?k=v&v=x")
	for range 5 {
		time.Sleep(800 * time.Millisecond)
		if got := b.must("/get?k=v"); got != "x" {
			t.Fatalf("active session expired: %q", got)
		}
	}
	if w := rec.Writes(); w < 2 {
		t.Fatalf("%d writes: the expiry did not slide", w)
	}
	clock.Advance(3100 * time.Millisecond)
	if got := b.must("/get?k=v"); got != "" {
		t.Fatalf("session outlived its idle timeout: %q", got)
	}
}

// Lifetime is absolute: activity and writes do not extend it.
func TestAbsoluteLifetime(t *testing.T) {
	tbl := ddbtest.NewTable(t)
	clock := ddbtest.NewClock(time.Now())
	st := newStore(t, tbl, withClock(clock))
	b := newBrowser(t, app(manager(st, lifetime(time.Hour)), st))
	b.must("/put?k=n&v=0")
	for i, step := range []time.Duration{10 * time.Minute, 20 * time.Minute, 29 * time.Minute} {
		clock.Advance(step)
		if got := b.must("/get?k=n"); got != string(rune('0'+i)) {
			t.Fatalf("after %v: %q", step, got)
		}
		b.must("/put?k=n&v=" + string(rune('1'+i)))
	}
	clock.Advance(2 * time.Minute) // 61 minutes after creation
	if got := b.must("/get?k=n"); got != "" {
		t.Fatalf("session outlived its lifetime: %q", got)
	}
}

// A storage failure fails the request; scs never silently starts a new
// session (which would log the user out, or worse, hide a logout).
func TestSessionManagerFailsClosed(t *testing.T) {
	base := ddbtest.NewTable(t)
	tbl, faults := ddbtest.Inject(base)
	st := newStore(t, tbl)
	sm := manager(st, idle(time.Hour))
	sm.ErrorFunc = func(w http.ResponseWriter, r *http.Request, err error) {
		http.Error(w, "storage unavailable", http.StatusServiceUnavailable)
	}
	ran, calls := 0, 0
	h := sm.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ran++
		calls++
		sm.Put(r.Context(), "n", calls) // new data: the commit must write
	}))
	b := newBrowser(t, h)
	b.must("/")
	tok := b.token()
	for _, f := range ddbtest.StorageFaults {
		t.Run("load/"+f.String(), func(t *testing.T) {
			faults.Clear()
			faults.Fail("GetItem", f)
			ran = 0
			if code, _ := b.do("/"); code != http.StatusServiceUnavailable || ran != 0 {
				t.Fatalf("status %d, handler ran %d times", code, ran)
			}
			if b.token() != tok {
				t.Fatal("a new session was issued on a storage failure")
			}
		})
		t.Run("commit/"+f.String(), func(t *testing.T) {
			faults.Clear()
			faults.Fail("UpdateItem", f)
			if code, _ := b.do("/"); code != http.StatusServiceUnavailable {
				t.Fatalf("status %d", code)
			}
		})
	}
	faults.Clear()
	b.must("/")
}
