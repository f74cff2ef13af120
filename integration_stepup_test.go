package dynaguard_test

import (
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/ddbtest"
	"github.com/dynaguard/dynaguard/internal/totp"
)

// The attacker who holds a copy of the session cookie — and nothing else:
// no password, no authenticator. Every test here plays it against the
// example app on two instances sharing one table.

// cloneFrom returns a browser holding a copy of b's cookies that connects
// from another loopback address (ip, e.g. "127.0.0.2"): a thief elsewhere
// with the session cookie, not the owner's own client.
func (b *browser) cloneFrom(ip string) *browser {
	b.t.Helper()
	o := b.clone()
	base, ok := http.DefaultTransport.(*http.Transport)
	if b.c.tls {
		base, ok = b.c.a.Client().Transport.(*http.Transport)
	}
	if !ok {
		b.t.Fatal("unexpected transport")
	}
	tr := base.Clone()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	tr.DialContext = d.DialContext
	o.hc.Transport = tr
	b.t.Cleanup(tr.CloseIdleConnections)
	return o
}

// messages returns how many messages of kind went to to.
func (c *cluster) messages(to, kind string) int {
	n := 0
	for _, m := range c.outbox.Messages() {
		if m.To == to && m.Kind == kind {
			n++
		}
	}
	return n
}

// followLink posts the token of an email link (confirm or cancel) from
// b, through the page the link opens.
func (b *browser) followLink(page, postTo *httptest.Server, path, token string) response {
	b.t.Helper()
	return b.submit(page, postTo, path+"?token="+url.QueryEscape(token), path, url.Values{"token": {token}})
}

// With a fresh copy of the owner's cookie, from another address, the
// thief can change nothing that hands over the account: the email address,
// the second factor (off, new recovery codes, a new enrolment) and the
// password each need the password (and code) in the same request. Each
// refusal is a 4xx with the form, and nothing is written or sent.
func TestIntegrationStolenCookieNeedsProof(t *testing.T) {
	t.Parallel()
	clock := ddbtest.NewClock(time.Now())
	c := newCluster(t, clusterOpts{clock: clock})

	// An account with TOTP, logged in a moment ago.
	acct := newAccount()
	owner := c.browser()
	owner.register(c.a, acct)
	owner.enrolTOTP(c.a, clock.Now())
	thief := owner.cloneFrom("127.0.0.2")
	if !thief.loggedIn(c.b) {
		t.Fatal("the copied cookie is not logged in")
	}
	newEmail := "thief-" + acct.email
	refused := []struct {
		name, page, action string
		fields             url.Values
	}{
		{"email change without proof", "/account/email", "/account/email", url.Values{"email": {newEmail}}},
		{"email change, wrong password", "/account/email", "/account/email", url.Values{"email": {newEmail}, "password": {"guess guess guess"}, "code": {"123456"}}},
		{"email change, password without code", "/account/email", "/account/email", url.Values{"email": {newEmail}, "password": {"guess guess guess"}}},
		{"second factor off", "/account/totp", "/account/totp/disable", nil},
		{"second factor off, wrong proof", "/account/totp", "/account/totp/disable", url.Values{"password": {"guess guess guess"}, "code": {"000000"}}},
		{"new recovery codes", "/account/totp", "/account/totp/recovery", nil},
		{"password change", "/account/password", "/account/password", url.Values{"new": {"a brand new passphrase 9"}}},
	}
	for _, tc := range refused {
		r := thief.submit(c.b, c.a, tc.page, tc.action, tc.fields)
		if r.StatusCode < 400 || r.StatusCode >= 500 || !strings.Contains(r.body, "<form") {
			t.Fatalf("%s: status %d, want a 4xx with the form\n%s", tc.name, r.StatusCode, r.body)
		}
	}
	for _, kind := range []string{"confirm-email-change", "password-reset"} {
		if n := c.messages(newEmail, kind); n != 0 {
			t.Fatalf("%d %s messages went to the thief's address", n, kind)
		}
	}
	for _, kind := range []string{"totp-disabled", "recovery-codes-regenerated", "password-changed", "email-change-requested"} {
		if n := c.messages(acct.email, kind); n != 0 {
			t.Fatalf("a refused step-up still sent %s", kind)
		}
	}
	page := owner.get(c.a, "/account")
	if !strings.Contains(page.body, `<span class="badge badge-ok">on</span>`) || strings.Contains(page.body, "pending-email") {
		t.Fatalf("the account changed:\n%s", page.body)
	}
	// The full takeover chain stops at its first step: with no address of
	// the thief's on the account, a reset link goes to the owner.
	anon := c.browser()
	anon.submit(c.a, c.a, "/password/reset", "/password/reset", url.Values{"email": {newEmail}})
	if n := c.messages(newEmail, "password-reset"); n != 0 {
		t.Fatal("a reset link went to the thief's address")
	}
	expect(t, c.browser().login(c.a, c.a, acct.email, acct.password), http.StatusSeeOther, "the owner's password still works")

	// A new enrolment on an account without a second factor needs the
	// password too: a thief cannot tie the account to their own app.
	plain := newAccount()
	victim := c.browser()
	victim.register(c.b, plain)
	thief2 := victim.cloneFrom("127.0.0.3")
	r := thief2.submit(c.a, c.b, "/account/totp", "/account/totp/setup", nil)
	expect(t, r, http.StatusUnauthorized, "TOTP setup without the password")
	if p := thief2.get(c.a, "/account/totp"); strings.Contains(p.body, `id="totp-uri"`) {
		t.Fatal("an enrolment started without the password")
	}
	// And the confirmation of one the owner started needs it again.
	expectRedirect(t, victim.submit(c.b, c.b, "/account/totp", "/account/totp/setup", url.Values{"password": {password}}), "/account/totp", "owner's setup")
	thief3 := victim.cloneFrom("127.0.0.4")
	p := thief3.get(c.a, "/account/totp")
	secret, params := parseOTPAuth(t, htmlAttr(t, p.body))
	code := totp.Code(secret, totp.Step(clock.Now(), params), params)
	expect(t, thief3.post(c.a, "/account/totp", url.Values{"code": {code}, "nonce": {nonceFor(t, p.body, "/account/totp")}}),
		http.StatusUnauthorized, "TOTP confirmation without the password")
	if n := c.messages(plain.email, "totp-enabled"); n != 0 {
		t.Fatal("TOTP was enabled without the password")
	}
}

// htmlAttr returns the otpauth URI shown on the TOTP page.
func htmlAttr(t *testing.T, body string) string {
	t.Helper()
	i := strings.Index(body, `id="totp-uri">`)
	if i < 0 {
		t.Fatalf("no otpauth URI on the page:\n%s", body)
	}
	rest := body[i+len(`id="totp-uri">`):]
	return strings.ReplaceAll(rest[:strings.Index(rest, "<")], "&amp;", "&")
}

// With the password, an email change is pending until the new address
// confirms: the account page shows both; the pending address neither logs
// in nor receives a reset; the current address is told, with a cancel link
// that works once, drops the change and ends every session.
func TestIntegrationEmailChangePendingAndCancel(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{})
	acct := newAccount()
	owner := c.browser()
	owner.register(c.a, acct)
	other := c.browser()
	expectRedirect(t, other.login(c.b, c.b, acct.username, acct.password), "/account", "second session")

	copied := owner.cloneFrom("127.0.0.2")
	newEmail := "new-" + acct.email
	r := owner.submit(c.a, c.b, "/account/email", "/account/email", url.Values{"email": {newEmail}, "password": {acct.password}})
	expectRedirect(t, r, "/account", "email change request")
	// The step-up renewed the session token: a copy taken before is dead.
	if copied.loggedIn(c.a) {
		t.Fatal("a cookie copied before the step-up still works")
	}
	if !owner.loggedIn(c.a) || !other.loggedIn(c.b) {
		t.Fatal("a pending change ended a session")
	}
	page := owner.get(c.b, "/account")
	if !strings.Contains(page.body, acct.email) || !strings.Contains(page.body, `id="pending-email">`+newEmail) {
		t.Fatalf("the account page does not show the current and the pending address:\n%s", page.body)
	}
	confirm := c.lastMessage(newEmail, "confirm-email-change")
	cancel := c.lastMessage(acct.email, "email-change-requested")
	if confirm.Token == "" || cancel.Token == "" || !strings.Contains(cancel.Body, newEmail) {
		t.Fatalf("messages: %+v %+v", confirm, cancel)
	}

	// The pending address is nobody's yet.
	expect(t, c.browser().login(c.a, c.a, newEmail, acct.password), http.StatusUnauthorized, "login with the pending address")
	c.browser().submit(c.b, c.b, "/password/reset", "/password/reset", url.Values{"email": {newEmail}})
	if n := c.messages(newEmail, "password-reset"); n != 0 {
		t.Fatal("the pending address received a reset link")
	}
	c.browser().submit(c.b, c.b, "/password/reset", "/password/reset", url.Values{"email": {acct.email}})
	c.lastMessage(acct.email, "password-reset")

	// Cancel, from whatever browser opens the mail: once.
	reader := c.browser()
	expectRedirect(t, reader.followLink(c.a, c.b, "/email/change/cancel", cancel.Token), "/login", "cancel")
	expect(t, reader.followLink(c.b, c.a, "/email/change/cancel", cancel.Token), http.StatusBadRequest, "cancel again")
	if owner.loggedIn(c.a) || other.loggedIn(c.b) {
		t.Fatal("a session survived the cancel")
	}
	// The change is gone: its confirmation link is dead.
	expect(t, c.browser().followLink(c.b, c.a, "/email/change/confirm", confirm.Token), http.StatusBadRequest, "confirm after cancel")
	expectRedirect(t, owner.login(c.a, c.a, acct.email, acct.password), "/account", "login with the current address")
	if strings.Contains(owner.get(c.a, "/account").body, "pending-email") {
		t.Fatal("the change is still pending")
	}

	// A new request replaces the pending one; confirming moves the
	// address (verified), tells the old one, and ends the other sessions.
	second := "second-" + acct.email
	expectRedirect(t, owner.submit(c.a, c.a, "/account/email", "/account/email", url.Values{"email": {newEmail}, "password": {acct.password}}), "/account", "request 1")
	first := c.lastMessage(newEmail, "confirm-email-change")
	expectRedirect(t, owner.submit(c.a, c.a, "/account/email", "/account/email", url.Values{"email": {second}, "password": {acct.password}}), "/account", "request 2")
	expect(t, c.browser().followLink(c.a, c.a, "/email/change/confirm", first.Token), http.StatusBadRequest, "replaced request")
	expectRedirect(t, other.login(c.b, c.b, acct.username, acct.password), "/account", "other session")
	expectRedirect(t, owner.followLink(c.b, c.a, "/email/change/confirm", c.lastMessage(second, "confirm-email-change").Token), "/account", "confirm")
	page = owner.get(c.a, "/account")
	if !strings.Contains(page.body, second) || !strings.Contains(page.body, "confirmed") {
		t.Fatalf("after confirmation:\n%s", page.body)
	}
	if other.loggedIn(c.b) {
		t.Fatal("another session survived the email change")
	}
	if m := c.lastMessage(acct.email, "email-changed"); !strings.Contains(m.Body, second) {
		t.Fatalf("notice: %+v", m)
	}
	expect(t, c.browser().login(c.a, c.a, acct.email, acct.password), http.StatusUnauthorized, "old address")
	expectRedirect(t, c.browser().login(c.b, c.b, second, acct.password), "/account", "new address")
}

// "Sign out other sessions" renews the session's token — and scs's own
// lifetime with it — but not the login: the session ends when its last
// credential check is older than the absolute lifetime (12 h in the
// example), however often it was renewed.
func TestIntegrationAbsoluteLifetimeAcrossLogoutOthers(t *testing.T) {
	t.Parallel()
	// scs stamps the session record's idle expiry with the real clock and
	// the store checks it with the app's clock, so the fake clock starts
	// 13 hours in the past: it can run 12 hours ahead without the store's
	// idle check ending the session first.
	clock := ddbtest.NewClock(time.Now().Add(-13 * time.Hour))
	c := newCluster(t, clusterOpts{clock: clock})
	acct := newAccount()
	owner := c.browser()
	owner.register(c.a, acct)
	thief := owner.cloneFrom("127.0.0.2")
	for i := range 5 {
		clock.Advance(2*time.Hour + 20*time.Minute)
		if !thief.loggedIn(c.b) {
			t.Fatalf("logged out after %d renewals", i)
		}
		expectRedirect(t, thief.submit(c.b, c.a, "/account/sessions", "/account/sessions/revoke-all", nil), "/account/sessions", "sign out others")
	}
	// 5 × 2 h 20 min = 11 h 40 min since the login; 21 minutes more is
	// past 12 h.
	clock.Advance(21 * time.Minute)
	if thief.loggedIn(c.a) {
		t.Fatal("a session renewed by sign-out-others outlived the absolute lifetime")
	}
	// A login (a credential check) starts a new lifetime.
	expectRedirect(t, owner.login(c.a, c.a, acct.email, acct.password), "/account", "login")
	if !owner.loggedIn(c.b) {
		t.Fatal("not logged in after a fresh login")
	}
}

// Someone registers the victim's address first and sets up TOTP. When the
// real owner recovers the account with a password reset — the first proof
// that anyone holds the address — every factor set up before is removed and
// every session ends: the intruder is out, and the owner logs in with the
// new password alone. The notice says so.
func TestIntegrationPreRegistrationHijackClearedByReset(t *testing.T) {
	t.Parallel()
	clock := ddbtest.NewClock(time.Now())
	c := newCluster(t, clusterOpts{clock: clock})
	victimAddr := newAccount()
	intruder := c.browser()
	intruder.register(c.a, victimAddr)
	intruder.enrolTOTP(c.a, clock.Now())
	clock.Advance(time.Minute)

	owner := c.browser()
	owner.submit(c.b, c.b, "/password/reset", "/password/reset", url.Values{"email": {victimAddr.email}})
	tok := c.lastMessage(victimAddr.email, "password-reset").Token
	newPassword := "the real owner is back 42"
	expectRedirect(t, owner.submit(c.b, c.a, "/password/reset/confirm?token="+url.QueryEscape(tok), "/password/reset/confirm",
		url.Values{"token": {tok}, "password": {newPassword}}), "/login", "reset")
	if intruder.loggedIn(c.b) {
		t.Fatal("the intruder's session survived the reset")
	}
	if m := c.lastMessage(victimAddr.email, "password-changed"); !strings.Contains(m.Body, "first time") {
		t.Fatalf("the notice does not say what was removed: %q", m.Body)
	}
	// No second factor any more: the password alone logs in.
	expectRedirect(t, owner.login(c.a, c.a, victimAddr.email, newPassword), "/account", "login without the intruder's TOTP")
	page := owner.get(c.a, "/account")
	if !strings.Contains(page.body, `<span class="badge badge-warn">off</span>`) || !strings.Contains(page.body, "confirmed") {
		t.Fatalf("after the reset:\n%s", page.body)
	}
}

// Links are bound to the exact stored address: an account that moves from
// ceo@fass.de to ceo@faß.de — another domain, though both normalise alike —
// keeps no link that was sent to the first.
func TestIntegrationTokensDieWithTheExactAddress(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{})
	acct := account{email: "ceo@fass.de", username: "ceo", password: password}
	owner := c.browser()
	owner.register(c.a, acct)
	verify := c.lastMessage("ceo@fass.de", "verify-email").Token
	c.browser().submit(c.a, c.a, "/password/reset", "/password/reset", url.Values{"email": {"ceo@fass.de"}})
	reset := c.lastMessage("ceo@fass.de", "password-reset").Token

	expectRedirect(t, owner.submit(c.a, c.b, "/account/email", "/account/email", url.Values{"email": {"ceo@faß.de"}, "password": {password}}), "/account", "change request")
	expectRedirect(t, owner.followLink(c.b, c.a, "/email/change/confirm", c.lastMessage("ceo@faß.de", "confirm-email-change").Token), "/account", "confirm")

	expect(t, c.browser().submit(c.b, c.b, "/email/verify?token="+url.QueryEscape(verify), "/email/verify", url.Values{"token": {verify}}),
		http.StatusBadRequest, "verification link of the old address")
	expect(t, c.browser().submit(c.a, c.a, "/password/reset/confirm?token="+url.QueryEscape(reset), "/password/reset/confirm",
		url.Values{"token": {reset}, "password": {"someone else's password 7"}}), http.StatusBadRequest, "reset link of the old address")
	expectRedirect(t, c.browser().login(c.a, c.a, "ceo@faß.de", password), "/account", "the password is unchanged")
}

// Two accounts ask for the same new address (the request says nothing
// about whether it is taken); many concurrent confirmations of both links,
// on both instances: exactly one account gets the address.
func TestIntegrationConcurrentEmailConfirmations(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{})
	target := "contested-" + newAccount().email
	var tokens []string
	for range 2 {
		acct := newAccount()
		b := c.browser()
		b.register(c.a, acct)
		expectRedirect(t, b.submit(c.a, c.b, "/account/email", "/account/email", url.Values{"email": {target}, "password": {acct.password}}), "/account", "request")
		tokens = append(tokens, c.lastMessage(target, "confirm-email-change").Token)
	}
	if tokens[0] == tokens[1] {
		t.Fatal("one token for two requests")
	}
	// Prepare the pages (each with its own nonce) first, then post at once.
	type attempt struct {
		b    *browser
		srv  *httptest.Server
		form url.Values
	}
	var attempts []attempt
	for i := range 12 {
		b := c.browser()
		srv := []*httptest.Server{c.a, c.b}[i%2]
		tok := tokens[(i/2)%2]
		p := b.get(srv, "/email/change/confirm?token="+url.QueryEscape(tok))
		attempts = append(attempts, attempt{b, srv, url.Values{"token": {tok}, "nonce": {nonceFor(t, p.body, "/email/change/confirm")}}})
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	for _, a := range attempts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := a.b.post(a.srv, "/email/change/confirm", a.form)
			mu.Lock()
			statuses[r.StatusCode]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if statuses[http.StatusSeeOther] != 1 || statuses[http.StatusSeeOther]+statuses[http.StatusBadRequest]+statuses[http.StatusConflict] != len(attempts) {
		t.Fatalf("statuses %v: want exactly one success, the rest 400 or 409", statuses)
	}
	owners := map[string]bool{}
	for _, it := range ddbtest.Scan(t, c.tbl) {
		if strings.HasPrefix(it[dynaguard.AttrPK], dynaguard.PrefixUser) && it["email"] == target {
			owners[it[dynaguard.AttrPK]] = true
		}
	}
	if len(owners) != 1 {
		t.Fatalf("%d accounts have the address", len(owners))
	}
}
