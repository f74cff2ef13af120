package users

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"

	"github.com/dynaguard/dynaguard/sessionstore"
)

// deviceApp is a login page behind LoadUser (which hands Authenticate the
// device cookie), over plain HTTP (so the cookie is Insecure).
func deviceApp(e *env) *app {
	a := &app{e: e, u: e.users}
	a.sm = scs.New()
	a.sm.Store = e.store
	a.sm.Codec = sessionstore.Codec{}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		addr := netip.MustParseAddr(r.Header.Get("X-Test-IP"))
		u, err := a.u.Authenticate(r.Context(), Credentials{Login: r.FormValue("login"), Password: r.FormValue("password"), IP: addr})
		if err == nil {
			err = a.u.Login(r.Context(), a.sm, u, Client{IP: addr})
		}
		if err != nil {
			WriteError(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) {
		if err := a.u.Logout(r.Context(), a.sm); err != nil {
			WriteError(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	a.srv = httptest.NewServer(a.sm.LoadAndSave(a.u.LoadUser(a.sm)(mux)))
	e.t.Cleanup(a.srv.Close)
	return a
}

func insecureDevice(c *Config) { c.DeviceCookie.Insecure = true }

func (b *browser) deviceCookie() string {
	u, _ := url.Parse(b.a.srv.URL)
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == "dg-device" {
			return c.Value
		}
	}
	return ""
}

// OWASP's device cookies: the owner's browser, known from an earlier
// login, logs in at once with the right password after 120 attempts from
// 30 other addresses, while an unknown browser — even the owner's, from a
// new address — is slowed down, before any hashing. The cookie survives
// logout, and costs a login no extra call.
func TestDeviceCookieKeepsTheOwnerIn(t *testing.T) {
	t.Parallel()
	e := newEnv(t, insecureDevice)
	e.create("dora@example.com", "dora")
	a := deviceApp(e)
	owner := a.browser("192.0.2.10")
	if code := owner.login("dora", goodPassword); code != http.StatusNoContent {
		t.Fatalf("first login: %d", code)
	}
	if owner.deviceCookie() == "" {
		t.Fatal("no device cookie after a login")
	}
	if code := owner.post("/logout", nil); code != http.StatusNoContent || owner.deviceCookie() == "" {
		t.Fatalf("logout: %d; device cookie kept: %v", code, owner.deviceCookie() != "")
	}
	fails, throttled := 0, 0
	for i := range 120 {
		b := a.browser(fmt.Sprintf("198.51.100.%d", i%30+1))
		resp, _ := b.do("POST", "/login", url.Values{"login": {"dora@example.com"}, "password": {"guess " + fmt.Sprint(i)}})
		switch {
		case resp.StatusCode == http.StatusUnauthorized:
			fails++
		case resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") != "":
			throttled++
		default:
			t.Fatalf("attempt %d: %d", i, resp.StatusCode)
		}
	}
	if fails != 10 || throttled != 110 {
		t.Fatalf("%d failures, %d throttled; want 10 and 110", fails, throttled)
	}
	e.rec.Reset()
	e.hasher.reset()
	if code := owner.login("dora", goodPassword); code != http.StatusNoContent {
		t.Fatalf("the owner's known browser: %d", code)
	}
	if got := ops(e.rec.Calls()); !strings.HasPrefix(got, "BatchGetItem,GetItem,UpdateItem,DeleteItem") {
		t.Fatalf("calls of a login with a device cookie: %s", got)
	}
	stranger := a.browser("203.0.113.5")
	resp, _ := stranger.do("POST", "/login", url.Values{"login": {"dora"}, "password": {goodPassword}})
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("an unknown browser: %d", resp.StatusCode)
	}
	if n := e.hasher.verifies.Load(); n != 1 {
		t.Fatalf("%d verifications; the throttled attempt must not hash", n)
	}
}

// A device's failures are its own: a small lockout, which neither moves
// the account's unknown-client count nor is moved by it.
func TestDeviceHasItsOwnLockout(t *testing.T) {
	t.Parallel()
	e := newEnv(t, insecureDevice)
	eve := e.create("eve@example.com", "eve")
	a := deviceApp(e)
	b := a.browser("192.0.2.20")
	if code := b.login("eve", goodPassword); code != http.StatusNoContent {
		t.Fatal(code)
	}
	for i := range 5 {
		if code := b.login("eve", "wrong"); code != http.StatusUnauthorized {
			t.Fatalf("device failure %d: %d", i+1, code)
		}
	}
	resp, _ := b.do("POST", "/login", url.Values{"login": {"eve"}, "password": {goodPassword}})
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "60" {
		t.Fatalf("6th device attempt: %d %s", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if n := mustGet(t, e, eve.ID).ConsecutiveFailures(); n != 0 {
		t.Fatalf("the device's failures moved the account's count: %d", n)
	}
	// Unknown clients are not slowed by the device's failures.
	if code := a.browser("192.0.2.21").login("eve", goodPassword); code != http.StatusNoContent {
		t.Fatalf("an unknown client: %d", code)
	}
	e.clock.Advance(time.Minute)
	if code := b.login("eve", goodPassword); code != http.StatusNoContent {
		t.Fatalf("the device after its delay: %d", code)
	}
}

// Only a cookie this server issued for this account makes a known device:
// a forged, truncated or other account's cookie is an unknown client.
func TestDeviceCookieBoundToAccount(t *testing.T) {
	t.Parallel()
	e := newEnv(t, insecureDevice, func(c *Config) { c.Throttle.UnknownClients.Free = 1 })
	fay := e.create("fay@example.com", "fay")
	gus := e.create("gus@example.com", "gus")
	if d := e.users.parseDevice(e.users.newDeviceCookie(fay.ID)); !d.isFor(fay.ID) || d.isFor(gus.ID) {
		t.Fatal("a device cookie must name its account and no other")
	}
	other := keyring(t, secretB)
	cfg := e.cfg
	cfg.Keys = other
	u2, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	valid := e.users.newDeviceCookie(fay.ID)
	for _, c := range []struct {
		name, value string
		known       bool
	}{
		{"valid", valid, true},
		{"other account", e.users.newDeviceCookie(gus.ID), false},
		{"other secret", u2.newDeviceCookie(fay.ID), false},
		{"flipped bit", valid[:10] + string(valid[10]^1) + valid[11:], false},
		{"truncated", valid[:len(valid)-1], false},
		{"empty", "", false},
	} {
		d := e.users.parseDevice(c.value)
		if got := d.isFor(fay.ID); got != c.known {
			t.Errorf("%s: known = %v", c.name, got)
		}
	}
	// A rotated secret keeps devices known.
	rotated := e.cfg
	rotated.Keys = keyring(t, secretB, secretA)
	u3, err := New(rotated)
	if err != nil {
		t.Fatal(err)
	}
	if !u3.parseDevice(valid).isFor(fay.ID) {
		t.Fatal("a previous secret no longer checks a device cookie")
	}
}

// The cookie's attributes: __Host- and Secure outside development,
// HttpOnly, Path=/, long-lived.
func TestDeviceCookieAttributes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	w := httptest.NewRecorder()
	e.users.issueDevice(&deviceRequest{w: w}, nil, "uid1")
	c := w.Result().Cookies()
	if len(c) != 1 || c[0].Name != "__Host-dg-device" || !c[0].Secure || !c[0].HttpOnly || c[0].Path != "/" ||
		c[0].MaxAge != 400*24*3600 || c[0].Domain != "" {
		t.Fatalf("cookie: %+v", c)
	}
	if !e.users.parseDevice(c[0].Value).isFor("uid1") {
		t.Fatal("issued cookie does not verify")
	}
	cfg := e.cfg
	cfg.DeviceCookie = DeviceCookieConfig{Insecure: true, Name: "__Host-x"}
	if _, err := New(cfg); err == nil {
		t.Fatal("an insecure __Host- cookie was accepted")
	}
}

// Address aggregation: every IPv6 /64 of one /48 in a different /56 fails
// a few times; at the /48's limit, the whole /48 is slowed down — a fresh
// /64 in it included — while another /48 is not. IPv4 /24s likewise.
func TestAddressRangesAggregate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) {
		c.Throttle.Ranges = []RangeLimit{
			{IPv4Bits: 24, IPv6Bits: 56, Limit: Limit{Free: 10}},
			{IPv6Bits: 48, Limit: Limit{Free: 40}},
		}
	})
	e.create("hal@example.com", "hal")
	for i := range 20 {
		for j := range 2 {
			a := fmt.Sprintf("2001:db8:7:%x00::%d", i, j+1)
			if _, err := e.auth(fmt.Sprintf("nobody%d-%d", i, j), "wrong", a); err != ErrInvalidCredentials {
				t.Fatalf("/64 %d attempt %d: %v", i, j, err)
			}
		}
	}
	if _, err := e.auth("hal", goodPassword, "2001:db8:7:ff00::1"); retryAfter(t, err) != 30*time.Second {
		t.Fatalf("a fresh /64 of the /48 after its 40 failures: %v", err)
	}
	if _, err := e.auth("hal", goodPassword, "2001:db8:8::1"); err != nil {
		t.Fatalf("another /48: %v", err)
	}
	for i := range 10 {
		if _, err := e.auth(fmt.Sprintf("v4-%d", i), "wrong", fmt.Sprintf("203.0.113.%d", i+1)); err != ErrInvalidCredentials {
			t.Fatal(err)
		}
	}
	if _, err := e.auth("hal", goodPassword, "203.0.113.200"); retryAfter(t, err) != 30*time.Second {
		t.Fatalf("the /24 after 10 failures: %v", err)
	}
	// A new window forgets the ranges.
	e.clock.Advance(24 * time.Hour)
	if _, err := e.auth("hal", goodPassword, "203.0.113.201"); err != nil {
		t.Fatalf("next window: %v", err)
	}
	if _, err := New(Config{Table: e.tbl, Keys: e.keys, Sessions: e.store, Throttle: Throttle{Ranges: make([]RangeLimit, 5)}}); err == nil {
		t.Fatal("5 ranges were accepted")
	}
}

// What a failed login costs, without a device cookie: the one batch read
// and the one reservation as before, then the failure counted on the
// account, the address and its ranges at once.
func TestFailedLoginCalls(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.create("ida@example.com", "ida")
	for _, c := range []struct {
		addr string
		want string
	}{
		{"192.0.2.1", "BatchGetItem,GetItem,UpdateItem,UpdateItem,UpdateItem,UpdateItem"},              // account, address, /24
		{"2001:db8::1", "BatchGetItem,GetItem,UpdateItem,UpdateItem,UpdateItem,UpdateItem,UpdateItem"}, // account, /64, /56, /48
	} {
		e.rec.Reset()
		if _, err := e.auth("ida", "wrong", c.addr); err != ErrInvalidCredentials {
			t.Fatal(err)
		}
		if got := ops(e.rec.Calls()); got != c.want {
			t.Errorf("%s: %s; want %s", c.addr, got, c.want)
		}
	}
}
