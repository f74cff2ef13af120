package dynaguard_test

// Passkeys through the example app's routes, on two instances sharing one
// table, with a software authenticator (internal/webauthntest) in place of
// the browser's: adding one needs the step-up proof, a copied session
// cookie cannot add one, a signed-in passkey's assertion works once, Back +
// resubmit is refused, a cloned authenticator (its counter did not
// advance) is refused, marked and reported to the owner, a passkey can be
// the second step of a password login, and a removed passkey is refused.

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dynaguard/dynaguard/internal/ddbtest"
	"github.com/dynaguard/dynaguard/internal/totp"
	"github.com/dynaguard/dynaguard/internal/webauthntest"
	"github.com/dynaguard/dynaguard/users"
)

// passkeyConfig is the app's passkey configuration for a cluster whose
// servers listen (not yet started) on a and b: both origins, for the RP ID
// a browser would use — 127.0.0.1 over TLS (the software authenticator
// does not mind an address), localhost over plain HTTP (a browser offers
// passkeys to http://localhost only). Zero (off) without o.passkeys.
func passkeyConfig(o clusterOpts, a, b *httptest.Server) users.PasskeyConfig {
	if !o.passkeys {
		return users.PasskeyConfig{}
	}
	scheme, host := "https", "127.0.0.1"
	if o.dev {
		scheme, host = "http", "localhost"
	}
	var origins []string
	for _, s := range []*httptest.Server{a, b} {
		_, port, _ := strings.Cut(s.Listener.Addr().String(), "127.0.0.1:")
		origins = append(origins, scheme+"://"+host+":"+port)
	}
	return users.PasskeyConfig{RPID: host, RPName: "dynaguard integration", Origins: origins}
}

// authenticator returns a software authenticator whose client runs on
// srv's origin (the page a ceremony's answer is posted from).
func (c *cluster) authenticator(srv *httptest.Server) *webauthntest.Authenticator {
	return webauthntest.New("127.0.0.1", srv.URL)
}

// options GETs a ceremony's options as the page's script does.
func (b *browser) options(srv *httptest.Server, path string) []byte {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
	req.Header.Set("Accept", "application/json")
	r := b.do(req)
	expect(b.t, r, http.StatusOK, "GET "+path)
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		b.t.Fatalf("GET %s: Content-Type %q", path, ct)
	}
	if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
		b.t.Fatalf("GET %s: Cache-Control %q, want no-store", path, cc)
	}
	return []byte(r.body)
}

// addPasskey makes a passkey on auth for b's account (options from srv)
// and posts it from the account page with fields (the proof, a name).
func (b *browser) addPasskey(srv *httptest.Server, auth *webauthntest.Authenticator, fields url.Values) (response, *webauthntest.Credential) {
	b.t.Helper()
	return b.addPasskeyWith(srv, auth, webauthntest.Options{}, fields)
}

// addPasskeyWith is addPasskey with the authenticator's options o (o.Credential: register that one again).
func (b *browser) addPasskeyWith(srv *httptest.Server, auth *webauthntest.Authenticator, o webauthntest.Options, fields url.Values) (response, *webauthntest.Credential) {
	b.t.Helper()
	resp, cred, err := auth.Create(b.options(srv, "/account/passkeys/options"), o)
	if err != nil {
		b.t.Fatal(err)
	}
	f := url.Values{"credential": {string(resp)}}
	for k, v := range fields {
		f[k] = v
	}
	return b.submit(srv, srv, "/account", "/account/passkeys", f), cred
}

// passkeyAccount registers a new account on c.a through a new browser and
// adds a passkey to it on a software authenticator, with the password as
// the proof and fields (a name) besides; the browser stays signed in.
func (c *cluster) passkeyAccount(fields url.Values) (*browser, account, *webauthntest.Authenticator, *webauthntest.Credential) {
	c.t.Helper()
	u := c.browser()
	acct := newAccount()
	u.register(c.a, acct)
	auth := c.authenticator(c.a)
	f := url.Values{"password": {acct.password}}
	for k, v := range fields {
		f[k] = v
	}
	r, cred := u.addPasskey(c.a, auth, f)
	expectRedirect(c.t, r, "/account#passkeys", "add a passkey")
	return u, acct, auth, cred
}

// assertion answers the options at path (from srv) with cred.
func (b *browser) assertion(srv *httptest.Server, path string, auth *webauthntest.Authenticator, cred *webauthntest.Credential, o webauthntest.Options) string {
	b.t.Helper()
	resp, err := auth.Get(b.options(srv, path), cred, o)
	if err != nil {
		b.t.Fatal(err)
	}
	return string(resp)
}

// passkeyLogin signs in with cred: options from page's instance, the
// answer posted to postTo through the login page's passkey form.
func (b *browser) passkeyLogin(page, postTo *httptest.Server, auth *webauthntest.Authenticator, cred *webauthntest.Credential, o webauthntest.Options) (response, url.Values) {
	b.t.Helper()
	resp := b.assertion(page, "/login/passkey/options", auth, cred, o)
	p := b.get(page, "/login")
	form := url.Values{"credential": {resp}, "nonce": {nonceFor(b.t, p.body, "/login/passkey")}}
	return b.post(postTo, "/login/passkey", form), form
}

var passkeyRowRe = regexp.MustCompile(`(?s)<tr class="passkey[^"]*">.*?</tr>`)

// passkeyRows returns the rows of the account page's passkey table.
func (b *browser) passkeyRows(srv *httptest.Server) []string {
	b.t.Helper()
	r := b.get(srv, "/account")
	expect(b.t, r, http.StatusOK, "account page")
	return passkeyRowRe.FindAllString(r.body, -1)
}

var passkeyIDRe = regexp.MustCompile(`name="id" value="([^"]+)"`)

// Adding a passkey needs the step-up proof: without the password, or with a
// wrong one, nothing is added. A thief with a copy of the session cookie —
// and an authenticator of their own — cannot plant a passkey, which would
// be their way back in after every password change; and once the owner
// steps up, the copied cookie is dead.
func TestIntegrationPasskeyAddNeedsProof(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{passkeys: true})
	owner := c.browser()
	acct := newAccount()
	owner.register(c.a, acct)
	thief := owner.cloneFrom("127.0.0.2")

	r, _ := owner.addPasskey(c.a, c.authenticator(c.a), nil)
	expect(t, r, http.StatusUnauthorized, "add a passkey without the password")
	r, _ = owner.addPasskey(c.a, c.authenticator(c.a), url.Values{"password": {"not the password"}})
	expect(t, r, http.StatusUnauthorized, "add a passkey with a wrong password")
	if !strings.Contains(r.body, `field-error`) {
		t.Fatalf("the refused form does not mark the password field:\n%s", r.body)
	}
	r, _ = thief.addPasskey(c.b, c.authenticator(c.b), nil)
	expect(t, r, http.StatusUnauthorized, "the thief adds a passkey with the copied cookie")
	if rows := owner.passkeyRows(c.a); len(rows) != 0 || c.messages(acct.email, "passkey-added") != 0 {
		t.Fatalf("a refused passkey was added: %d rows, %d mails", len(rows), c.messages(acct.email, "passkey-added"))
	}

	// The form without a passkey answer (no JavaScript): a readable 400.
	r = owner.submit(c.a, c.a, "/account", "/account/passkeys", url.Values{"password": {acct.password}})
	expect(t, r, http.StatusBadRequest, "add with no passkey answer")
	// Garbage in the answer: refused as a passkey, never a 500.
	r = owner.submit(c.a, c.a, "/account", "/account/passkeys", url.Values{"password": {acct.password}, "credential": {`{"id":`}})
	expect(t, r, http.StatusUnauthorized, "add with a malformed passkey answer")

	r, cred := owner.addPasskey(c.a, c.authenticator(c.a), url.Values{"password": {acct.password}, "name": {"Laptop"}})
	expectRedirect(t, r, "/account#passkeys", "add a passkey with the password")
	rows := owner.passkeyRows(c.b)
	if len(rows) != 1 || !strings.Contains(rows[0], "Laptop") || strings.Contains(rows[0], "cloned") {
		t.Fatalf("the account page lists %d passkeys, want the one named Laptop: %q", len(rows), rows)
	}
	if c.messages(acct.email, "passkey-added") != 1 {
		t.Fatal("the owner was not told of the new passkey")
	}
	// The step-up moved the owner's session to a new token: the copy is dead.
	if thief.loggedIn(c.b) {
		t.Fatal("the copied cookie still works after the owner's step-up")
	}

	// The same credential again — on this account, or claimed by another
	// account (a credential hijack): 409, nothing changes.
	r, _ = owner.addPasskeyWith(c.b, c.authenticator(c.b), webauthntest.Options{Credential: cred}, url.Values{"password": {acct.password}})
	expect(t, r, http.StatusConflict, "the same credential registered again")
	other := c.browser()
	oacct := newAccount()
	other.register(c.a, oacct)
	r, _ = other.addPasskeyWith(c.a, c.authenticator(c.a), webauthntest.Options{Credential: cred}, url.Values{"password": {oacct.password}})
	expect(t, r, http.StatusConflict, "another account claims the credential")
	if !strings.Contains(r.body, "Passkey already registered") {
		t.Fatalf("the refusal does not say why:\n%s", r.body)
	}
	if rows := owner.passkeyRows(c.a); len(rows) != 1 {
		t.Fatalf("%d passkeys on the owner's account after the claims, want 1", len(rows))
	}
	if rows := other.passkeyRows(c.a); len(rows) != 0 {
		t.Fatalf("the other account holds %d passkeys, want none", len(rows))
	}
}

// The whole life of a passkey: sign in with it (options from one instance,
// the answer posted to the other), the same assertion again with a fresh
// form is refused, Back + resubmit is refused, a second sign-in with a new
// assertion works; renamed without proof; removed with proof — and then
// refused.
func TestIntegrationPasskeySignIn(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{passkeys: true})
	u, acct, auth, cred := c.passkeyAccount(nil)
	u.logout(c.a)

	// The login page offers it: a button, and the browser's autofill.
	page := u.get(c.a, "/login")
	for _, want := range []string{`autocomplete="username webauthn"`, `action="/login/passkey"`, `<script src="/static/passkeys.js" defer></script>`} {
		if !strings.Contains(page.body, want) {
			t.Fatalf("the login page lacks %s", want)
		}
	}

	r, form := u.passkeyLogin(c.a, c.b, auth, cred, webauthntest.Options{})
	expectRedirect(t, r, "/account", "sign in with the passkey")
	if !u.loggedIn(c.a) || !u.loggedIn(c.b) {
		t.Fatal("not logged in after the passkey sign-in")
	}
	// Back + resubmit: the same form again. Its nonce was bound to the
	// session before the login, which the login replaced: "your session
	// changed" (403) — and had it not, the nonce is spent (409), and so is
	// the assertion's challenge.
	r = u.post(c.a, "/login/passkey", form)
	expect(t, r, http.StatusForbidden, "Back + resubmit of the passkey sign-in")
	if !strings.Contains(r.body, "Your session changed") {
		t.Fatalf("Back + resubmit: not the login page's refusal:\n%s", r.body)
	}

	// The same assertion, replayed with a fresh form by someone who
	// captured it (another browser): refused by its challenge's marker.
	other := c.browser()
	p := other.get(c.b, "/login")
	replay := url.Values{"credential": form["credential"], "nonce": {nonceFor(t, p.body, "/login/passkey")}}
	r = other.post(c.b, "/login/passkey", replay)
	expect(t, r, http.StatusUnauthorized, "a replayed assertion")
	if other.loggedIn(c.a) {
		t.Fatal("the replayed assertion logged in")
	}
	// Even from the owner's own browser, where the challenge's cookie is.
	u.logout(c.a)
	p = u.get(c.a, "/login")
	replay.Set("nonce", nonceFor(t, p.body, "/login/passkey"))
	expect(t, u.post(c.a, "/login/passkey", replay), http.StatusUnauthorized, "the owner's browser replays the assertion")

	// A new assertion works.
	r, _ = u.passkeyLogin(c.b, c.a, auth, cred, webauthntest.Options{})
	expectRedirect(t, r, "/account", "a second passkey sign-in")

	// Rename (no proof), then remove (proof).
	rows := u.passkeyRows(c.a)
	if len(rows) != 1 || strings.Contains(rows[0], ">never<") {
		t.Fatalf("want one passkey with a last use, got %q", rows)
	}
	id := passkeyIDRe.FindStringSubmatch(rows[0])[1]
	expectRedirect(t, u.submit(c.a, c.b, "/account", "/account/passkeys/rename", url.Values{"id": {id}, "name": {"Phone"}}),
		"/account#passkeys", "rename")
	if rows = u.passkeyRows(c.b); !strings.Contains(rows[0], "Phone") {
		t.Fatalf("renamed passkey not shown: %q", rows)
	}
	// Bad input: a readable 4xx page, never a 500.
	for _, bad := range []struct {
		what   string
		fields url.Values
		status int
	}{
		{"rename an unknown passkey", url.Values{"id": {"nonsense"}, "name": {"x"}}, http.StatusNotFound},
		{"rename without an ID", url.Values{"name": {"x"}}, http.StatusNotFound},
		{"a name too long", url.Values{"id": {id}, "name": {strings.Repeat("n", 65)}}, http.StatusUnprocessableEntity},
		{"a name with a control character", url.Values{"id": {id}, "name": {"a\x00b"}}, http.StatusUnprocessableEntity},
		{"a name that is not UTF-8", url.Values{"id": {id}, "name": {"\xff"}}, http.StatusUnprocessableEntity},
	} {
		expect(t, u.submit(c.a, c.a, "/account", "/account/passkeys/rename", bad.fields), bad.status, bad.what)
	}
	expect(t, u.submit(c.a, c.a, "/account", "/account/passkeys/remove", url.Values{"id": {"nonsense"}, "password": {acct.password}}),
		http.StatusNotFound, "remove an unknown passkey")
	expect(t, u.submit(c.a, c.a, "/account", "/account/passkeys/remove", url.Values{"id": {id}}),
		http.StatusUnauthorized, "remove without proof")
	expectRedirect(t, u.submit(c.a, c.b, "/account", "/account/passkeys/remove", url.Values{"id": {id}, "password": {acct.password}}),
		"/account#passkeys", "remove with the password")
	if rows = u.passkeyRows(c.a); len(rows) != 0 {
		t.Fatalf("removed passkey still listed: %q", rows)
	}
	if c.messages(acct.email, "passkey-removed") != 1 {
		t.Fatal("the owner was not told of the removal")
	}
	u.logout(c.a)
	r, _ = u.passkeyLogin(c.a, c.b, auth, cred, webauthntest.Options{})
	expect(t, r, http.StatusUnauthorized, "sign in with a removed passkey")
	if u.loggedIn(c.a) {
		t.Fatal("a removed passkey signed in")
	}
}

// An assertion whose signature counter does not advance comes from a copy
// of the key (a genuine authenticator never goes back): it is refused, the
// passkey is marked cloned — refused from then on, even with a counter
// that advances — the owner is mailed, and the account page shows it.
func TestIntegrationPasskeyClonedCounter(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{passkeys: true})
	u, acct, auth, cred := c.passkeyAccount(url.Values{"name": {"Key"}})
	u.logout(c.a)
	r, _ := u.passkeyLogin(c.a, c.a, auth, cred, webauthntest.Options{Counter: webauthntest.Counter(7)})
	expectRedirect(t, r, "/account", "sign in (counter 7)")
	u.logout(c.a)

	// The clone replays the counter it was copied at.
	attacker := c.browser()
	r, _ = attacker.passkeyLogin(c.b, c.b, auth, cred, webauthntest.Options{Counter: webauthntest.Counter(7)})
	expect(t, r, http.StatusUnauthorized, "the clone's assertion (counter 7 again)")
	if c.messages(acct.email, "passkey-cloned") != 1 {
		t.Fatalf("the owner was not told of the clone: %+v", c.outbox.Messages())
	}
	if m := c.lastMessage(acct.email, "passkey-cloned"); !strings.Contains(m.Subject, "Security alert") || !strings.Contains(m.Body, `"Key"`) {
		t.Fatalf("the clone's notice: %+v", m)
	}
	// Now refused for everyone, the genuine authenticator included.
	r, _ = u.passkeyLogin(c.a, c.a, auth, cred, webauthntest.Options{Counter: webauthntest.Counter(9)})
	expect(t, r, http.StatusUnauthorized, "the cloned passkey, counter advancing")

	u.login(c.a, c.a, acct.email, acct.password)
	rows := u.passkeyRows(c.a)
	if len(rows) != 1 || !strings.Contains(rows[0], "cloned") {
		t.Fatalf("the account page does not mark the passkey cloned: %q", rows)
	}
}

// A passkey instead of the TOTP code on the second step of a password
// login; the second step offers it only to an account that has one; a
// passkey of another account is refused there.
func TestIntegrationPasskeySecondFactor(t *testing.T) {
	t.Parallel()
	now := time.Now()
	c := newCluster(t, clusterOpts{passkeys: true})
	u := c.browser()
	acct := newAccount()
	u.register(c.a, acct)
	secret, params, _ := u.enrolTOTP(c.a, now)

	// Adding the passkey: the proof is the password and a code.
	r, _ := u.addPasskey(c.a, c.authenticator(c.a), url.Values{"password": {acct.password}})
	expect(t, r, http.StatusUnauthorized, "add with TOTP on, without the code")
	auth := c.authenticator(c.a)
	code := totp.Code(secret, totp.Step(now, params)+1, params)
	r, cred := u.addPasskey(c.a, auth, url.Values{"password": {acct.password}, "code": {code}})
	expectRedirect(t, r, "/account#passkeys", "add with the password and a code")
	u.logout(c.a)

	// Another account with a passkey of its own, and TOTP off.
	mallory := c.browser()
	macct := newAccount()
	mallory.register(c.a, macct)
	mauth := c.authenticator(c.a)
	r, mcred := mallory.addPasskey(c.a, mauth, url.Values{"password": {macct.password}})
	expectRedirect(t, r, "/account#passkeys", "mallory adds a passkey")

	expectRedirect(t, u.login(c.a, c.b, acct.email, acct.password), "/login/totp", "password step")
	step := u.get(c.b, "/login/totp")
	if !strings.Contains(step.body, `action="/login/totp/passkey"`) {
		t.Fatalf("the second step does not offer the passkey:\n%s", step.body)
	}
	// Mallory's passkey, answering u's second-step challenge: refused.
	resp, err := mauth.Get(u.options(c.b, "/login/totp/passkey/options"), mcred, webauthntest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r = u.post(c.b, "/login/totp/passkey", url.Values{"credential": {string(resp)}, "nonce": {nonceFor(t, step.body, "/login/totp/passkey")}})
	expect(t, r, http.StatusUnauthorized, "another account's passkey on the second step")
	if u.loggedIn(c.a) {
		t.Fatal("logged in with another account's passkey")
	}
	// The account's own passkey.
	resp2 := u.assertion(c.b, "/login/totp/passkey/options", auth, cred, webauthntest.Options{})
	step = u.get(c.b, "/login/totp")
	r = u.post(c.a, "/login/totp/passkey", url.Values{"credential": {resp2}, "nonce": {nonceFor(t, step.body, "/login/totp/passkey")}})
	expectRedirect(t, r, "/account", "the passkey as the second step")
	if !u.loggedIn(c.b) {
		t.Fatal("not logged in after the passkey second step")
	}
	// The passkey as the whole step-up proof of the TOTP page's forms (a
	// user-verified passkey is two factors): new recovery codes.
	if !strings.Contains(u.get(c.a, "/account/totp").body, "data-passkey-proof") {
		t.Fatal("the TOTP page offers no passkey proof")
	}
	proof := u.assertion(c.a, "/account/passkeys/proof/options", auth, cred, webauthntest.Options{})
	r = u.submit(c.a, c.b, "/account/totp", "/account/totp/recovery", url.Values{"passkey": {proof}})
	expect(t, r, http.StatusOK, "new recovery codes with a passkey as proof")
	if !strings.Contains(r.body, `class="recovery-code"`) {
		t.Fatalf("no new recovery codes shown:\n%s", r.body)
	}
	// The same assertion again: refused.
	r = u.submit(c.a, c.b, "/account/totp", "/account/totp/recovery", url.Values{"passkey": {proof}})
	expect(t, r, http.StatusUnauthorized, "the proof's assertion replayed")

	// An account without a passkey is not offered one on the second step.
	plain := c.browser()
	pacct := newAccount()
	plain.register(c.a, pacct)
	plain.enrolTOTP(c.a, now)
	plain.logout(c.a)
	expectRedirect(t, plain.login(c.a, c.a, pacct.email, pacct.password), "/login/totp", "password step, no passkey")
	if strings.Contains(plain.get(c.a, "/login/totp").body, "/login/totp/passkey") {
		t.Fatal("the second step offers a passkey to an account without one")
	}
}

// A passkey as the step-up proof: the email change with a passkey
// assertion instead of the password; an assertion of a sign-in challenge
// (another purpose) is refused there.
func TestIntegrationPasskeyStepUp(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{passkeys: true})
	u, acct, auth, cred := c.passkeyAccount(nil)

	page := u.get(c.a, "/account/email")
	if !strings.Contains(page.body, "data-passkey-proof") {
		t.Fatal("the email page offers no passkey proof")
	}
	wrongPurpose := u.assertion(c.a, "/login/passkey/options", auth, cred, webauthntest.Options{})
	r := u.submit(c.a, c.a, "/account/email", "/account/email", url.Values{"email": {"new-" + acct.email}, "passkey": {wrongPurpose}})
	expect(t, r, http.StatusUnauthorized, "a sign-in assertion as step-up proof")
	if !strings.Contains(r.body, "Passkey not accepted") {
		t.Fatalf("the refused passkey proof is not explained as such:\n%s", r.body)
	}
	proof := u.assertion(c.a, "/account/passkeys/proof/options", auth, cred, webauthntest.Options{})
	r = u.submit(c.a, c.b, "/account/email", "/account/email", url.Values{"email": {"new-" + acct.email}, "passkey": {proof}})
	expectRedirect(t, r, "/account", "email change with a passkey as proof")
	if c.messages("new-"+acct.email, "confirm-email-change") != 1 {
		t.Fatalf("no confirmation link to the new address: %+v", c.outbox.Messages())
	}
}

// Options need what their ceremony needs: registration and step-up a
// logged-in session (401 problem+json for fetch otherwise), the second
// step a pending login. Sign-in options ask for user verification, for the
// RP ID. Garbage in place of a WebAuthn answer is a 4xx page, never a 500.
func TestIntegrationPasskeyOptionsAndBadInput(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{passkeys: true})
	anon := c.browser()
	for _, path := range []string{"/account/passkeys/options", "/account/passkeys/proof/options", "/login/totp/passkey/options"} {
		req, _ := http.NewRequest(http.MethodGet, c.a.URL+path, nil)
		req.Header.Set("Accept", "application/json")
		r := anon.do(req)
		if r.StatusCode < 400 || r.StatusCode >= 500 {
			t.Fatalf("GET %s without a login: %d, want a 4xx\n%s", path, r.StatusCode, r.body)
		}
		expectProblem(t, r, r.StatusCode, "GET "+path)
	}
	var opts struct {
		PublicKey struct {
			Challenge        string `json:"challenge"`
			RPID             string `json:"rpId"`
			UserVerification string `json:"userVerification"`
		} `json:"publicKey"`
	}
	if err := json.Unmarshal(anon.options(c.a, "/login/passkey/options"), &opts); err != nil {
		t.Fatal(err)
	}
	if opts.PublicKey.Challenge == "" || opts.PublicKey.RPID != "127.0.0.1" || opts.PublicKey.UserVerification != "required" {
		t.Fatalf("sign-in options: %+v", opts.PublicKey)
	}
	// Nothing for the garbage a form may carry: 401 pages, never a 500.
	for _, bad := range []string{"", "null", "{}", `{"id":"AA","type":"public-key","response":{}}`, strings.Repeat("x", 70<<10)} {
		p := anon.get(c.a, "/login")
		r := anon.post(c.b, "/login/passkey", url.Values{"credential": {bad}, "nonce": {nonceFor(t, p.body, "/login/passkey")}})
		if r.StatusCode != http.StatusBadRequest && r.StatusCode != http.StatusUnauthorized {
			t.Fatalf("a passkey answer of %d bytes: %d, want 400 or 401\n%s", len(bad), r.StatusCode, r.body)
		}
	}
}

// What a passkey sign-in costs in DynamoDB calls, through the recorder:
// the options nothing beyond the session's read; the answer one
// BatchGetItem (credential and address counters), one GetItem (the
// account), one TransactWriteItems (the challenge's marker and the
// counter), besides the form's nonce and the session's own writes.
func TestIntegrationPasskeyCalls(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{passkeys: true, record: true})
	u, _, auth, cred := c.passkeyAccount(nil)
	u.logout(c.a)
	u.get(c.a, "/") // shows (and so clears) the logout message

	ops := func() string {
		var s []string
		for _, call := range c.rec.Calls() {
			s = append(s, call.Op)
		}
		return strings.Join(s, ", ")
	}
	c.rec.Reset()
	opts := u.options(c.a, "/login/passkey/options")
	t.Logf("GET /login/passkey/options: %d calls: %s", len(c.rec.Calls()), ops())
	if c.rec.Writes() != 0 {
		t.Errorf("issuing a sign-in challenge wrote to the table: %s", ops())
	}
	resp, err := auth.Get(opts, cred, webauthntest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p := u.get(c.a, "/login")
	c.rec.Reset()
	r := u.post(c.a, "/login/passkey", url.Values{"credential": {string(resp)}, "nonce": {nonceFor(t, p.body, "/login/passkey")}})
	expectRedirect(t, r, "/account", "passkey sign-in")
	t.Logf("POST /login/passkey: %d calls: %s", len(c.rec.Calls()), ops())
	// The session's read and the form's nonce (GetItem, PutItem), the
	// passkey check (BatchGetItem, GetItem, TransactWriteItems), and the
	// login's new session token (the old token's tombstone and the new
	// one's commit) — as a password login, with the passkey check in place
	// of the password's.
	want := "GetItem, PutItem, BatchGetItem, GetItem, TransactWriteItems, PutItem, UpdateItem"
	if got := ops(); got != want {
		t.Errorf("POST /login/passkey: calls %s, want %s", got, want)
	}

	u.get(c.a, "/account") // the first page after the login (its session is settled)
	for _, m := range []struct{ what, path, want string }{
		// Session and account, then the account's passkeys in one batch.
		{"GET /account with a passkey", "/account", "GetItem, GetItem, BatchGetItem"},
		// Session and account; the challenge is written nowhere.
		{"GET /account/passkeys/options", "/account/passkeys/options", "GetItem, GetItem"},
		{"GET /account/passkeys/proof/options", "/account/passkeys/proof/options", "GetItem, GetItem"},
	} {
		c.rec.Reset()
		if strings.HasSuffix(m.path, "/options") {
			u.options(c.a, m.path)
		} else {
			expect(t, u.get(c.a, m.path), http.StatusOK, m.what)
		}
		t.Logf("%s: %s", m.what, ops())
		if got := ops(); got != m.want {
			t.Errorf("%s: calls %s, want %s", m.what, got, m.want)
		}
	}
}

// Refused passkey sign-ins are counted like failed passwords: past the
// client address's free failures the next attempt — passkey or password —
// is 429 with Retry-After, checked before any passkey or password work.
func TestIntegrationPasskeyFailuresThrottled(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{passkeys: true, throttle: users.Throttle{
		PerIP:  users.Limit{Free: 3, Delay: time.Minute, MaxDelay: time.Hour, Window: time.Hour},
		Ranges: []users.RangeLimit{},
	}})
	owner := c.browser()
	acct := newAccount()
	owner.register(c.a, acct)
	// A credential made for the account's options but never registered:
	// the server does not know it.
	auth := c.authenticator(c.a)
	if _, _, err := auth.Create(owner.options(c.a, "/account/passkeys/options"), webauthntest.Options{}); err != nil {
		t.Fatal(err)
	}

	attacker := c.browser()
	var last response
	for i := range 5 {
		last, _ = attacker.passkeyLogin(c.a, c.b, auth, nil, webauthntest.Options{})
		if last.StatusCode == http.StatusTooManyRequests {
			if i < 3 {
				t.Fatalf("throttled after %d failures, want after 3", i)
			}
			break
		}
		expect(t, last, http.StatusUnauthorized, fmt.Sprintf("unknown passkey, attempt %d", i+1))
	}
	expect(t, last, http.StatusTooManyRequests, "a passkey sign-in past the address's free failures")
	if last.Header.Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}
	// The same address's password login waits too: one count.
	hashed := c.hasher.verifies.Load()
	expect(t, attacker.login(c.a, c.a, acct.email, acct.password), http.StatusTooManyRequests, "password login from the throttled address")
	if c.hasher.verifies.Load() != hashed {
		t.Fatal("the throttled login hashed a password")
	}
}

// After the passkey flows through the app — add, sign in, the second
// proof — a dump of the table holds no credential ID (in any encoding, nor
// its unkeyed SHA-256), no challenge the app handed out, and no
// browser-binding cookie; the security events name none of them.
func TestIntegrationPasskeyTableDump(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{passkeys: true})
	u := c.browser()
	acct := newAccount()
	u.register(c.a, acct)
	auth := c.authenticator(c.a)
	var secrets []string
	challenge := func(opts []byte) []byte {
		ch, err := webauthntest.Challenge(opts)
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, base64.RawURLEncoding.EncodeToString(ch), hex.EncodeToString(ch))
		return opts
	}

	resp, cred, err := auth.Create(challenge(u.options(c.a, "/account/passkeys/options")), webauthntest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	expectRedirect(t, u.submit(c.a, c.a, "/account", "/account/passkeys", url.Values{"credential": {string(resp)}, "password": {acct.password}}),
		"/account#passkeys", "add a passkey")
	sum := sha256.Sum256(cred.ID)
	for _, b := range [][]byte{cred.ID, sum[:]} {
		secrets = append(secrets, hex.EncodeToString(b), base64.StdEncoding.EncodeToString(b), base64.RawURLEncoding.EncodeToString(b))
	}
	u.logout(c.a)

	resp, err = auth.Get(challenge(u.options(c.b, "/login/passkey/options")), cred, webauthntest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p := u.get(c.b, "/login")
	expectRedirect(t, u.post(c.a, "/login/passkey", url.Values{"credential": {string(resp)}, "nonce": {nonceFor(t, p.body, "/login/passkey")}}),
		"/account", "passkey sign-in")
	resp, err = auth.Get(challenge(u.options(c.a, "/account/passkeys/proof/options")), cred, webauthntest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	expectRedirect(t, u.submit(c.a, c.b, "/account/email", "/account/email", url.Values{"email": {"new-" + acct.email}, "passkey": {string(resp)}}),
		"/account", "email change with a passkey")
	bound := false
	for _, ck := range u.jar.Cookies(u.origin()) {
		if strings.Contains(ck.Name, "webauthn") {
			secrets, bound = append(secrets, ck.Value), true
		}
	}
	if !bound {
		t.Fatal("no browser-binding cookie in the jar")
	}

	dump := ddbtest.Dump(t, c.tbl)
	if !strings.Contains(dump, "pkey#") {
		t.Fatalf("no passkey item in the dump:\n%s", dump)
	}
	for _, s := range secrets {
		if len(s) < 16 {
			t.Fatalf("value %q is too short to search for", s)
		}
		if strings.Contains(dump, s) {
			t.Errorf("the table dump contains a passkey secret (%d characters, starts %q)", len(s), s[:6])
		}
	}
	c.noSecretInEvents(t, secrets)
}
