package dynaguard_test

// Passkeys in a real browser: headless Chromium with a virtual
// authenticator (the DevTools protocol's WebAuthn domain: CTAP2, internal
// transport, resident keys, user verification that succeeds) adds a
// passkey from the account page, logs out, signs in with "Sign in with a
// passkey", and then presses Back and sends the sign-in again — refused;
// then it changes the email address with a passkey as the proof, signs in
// through the login name's autofill, and — with two-step verification on —
// answers the code step with the passkey.
// It drives static/passkeys.js under the app's Content-Security-Policy, so
// a script the policy blocks, or a WebAuthn JSON the browser rejects,
// fails it. Like browser_test.go it runs whenever Chromium is installed.

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

	"github.com/dynaguard/dynaguard/internal/totp"
)

// withoutJSONHelpers removes the WebAuthn JSON helpers (parse…FromJSON,
// toJSON) from a page, as in browsers that predate them.
const withoutJSONHelpers = `delete PublicKeyCredential.parseCreationOptionsFromJSON;
delete PublicKeyCredential.parseRequestOptionsFromJSON;
delete PublicKeyCredential.prototype.toJSON;`

// noConditionalMediation tells a page that autofill (conditional
// mediation) is not available.
const noConditionalMediation = `PublicKeyCredential.isConditionalMediationAvailable = () => Promise.resolve(false);`

// virtualAuthenticator turns the tab's WebAuthn domain on and adds a
// platform authenticator that holds passkeys and verifies its user.
func (tb *tab) virtualAuthenticator() webauthn.AuthenticatorID {
	tb.t.Helper()
	id, err := chromedp.Run(tb.ctx, func(ctx context.Context, t *chromedp.Target) (webauthn.AuthenticatorID, error) {
		if _, err := cdp.Call(ctx, t, webauthn.Enable, webauthn.EnableParams{}); err != nil {
			return "", err
		}
		res, err := cdp.Call(ctx, t, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{
			Options: &webauthn.VirtualAuthenticatorOptions{
				Protocol:                    webauthn.AuthenticatorProtocolCtap2,
				Ctap2version:                webauthn.Ctap2versionCtap21,
				Transport:                   webauthn.AuthenticatorTransportInternal,
				HasResidentKey:              true,
				HasUserVerification:         true,
				IsUserVerified:              true,
				AutomaticPresenceSimulation: true,
			},
		})
		return res.AuthenticatorID, err
	})
	if err != nil {
		tb.t.Fatalf("adding a virtual authenticator: %v", err)
	}
	return id
}

// credentials lists the passkeys the virtual authenticator holds.
func (tb *tab) credentials(id webauthn.AuthenticatorID) []*webauthn.Credential {
	tb.t.Helper()
	res, err := chromedp.Run(tb.ctx, func(ctx context.Context, t *chromedp.Target) (webauthn.GetCredentialsResult, error) {
		return cdp.Call(ctx, t, webauthn.GetCredentials, webauthn.GetCredentialsParams{AuthenticatorID: id})
	})
	if err != nil {
		tb.t.Fatalf("listing the virtual authenticator's credentials: %v", err)
	}
	return res.Credentials
}

// onNewDocument runs script at the start of every document the tab loads
// from now on, until removeOnNewDocument.
func (tb *tab) onNewDocument(script string) page.ScriptIdentifier {
	tb.t.Helper()
	res, err := chromedp.Run(tb.ctx, func(ctx context.Context, t *chromedp.Target) (page.AddScriptToEvaluateOnNewDocumentResult, error) {
		return cdp.Call(ctx, t, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: script})
	})
	if err != nil {
		tb.t.Fatalf("adding a script to new documents: %v", err)
	}
	return res.Identifier
}

func (tb *tab) removeOnNewDocument(id page.ScriptIdentifier) {
	tb.t.Helper()
	if _, err := chromedp.Run(tb.ctx, func(ctx context.Context, t *chromedp.Target) (cdp.Empty, error) {
		return cdp.Call(ctx, t, page.RemoveScriptToEvaluateOnNewDocument, page.RemoveScriptToEvaluateOnNewDocumentParams{Identifier: id})
	}); err != nil {
		tb.t.Fatalf("removing a script of new documents: %v", err)
	}
}

// waitShown waits until static/passkeys.js has shown the element (it
// un-hides the passkey forms once it finds the WebAuthn API). It polls the
// page rather than use chromedp's node queries, which do not see a page
// restored from the back/forward cache.
func (tb *tab) waitShown(sel string) {
	tb.t.Helper()
	expr := fmt.Sprintf(`(e => !!e && e.offsetParent !== null)(document.querySelector(%q))`, sel)
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if ok, err := chromedp.Run(tb.ctx, chromedp.Evaluate[bool](expr)); err == nil && ok {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	tb.t.Fatalf("%s is not shown on %s", sel, tb.eval("location.pathname"))
}

func TestBrowserPasskeys(t *testing.T) {
	chromium := requireChromium(t)
	// Plain HTTP as `make run` serves it, at http://localhost: a secure
	// context, and a valid RP ID (an IP address is none).
	c := newCluster(t, clusterOpts{dev: true, passkeys: true})
	_, port, _ := strings.Cut(c.a.Listener.Addr().String(), "127.0.0.1:")
	base := "http://localhost:" + port

	dir, err := os.MkdirTemp("", "dynaguard-passkey-screenshots-")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots: %s", dir)
	sh := &shots{dir: dir}
	ctx := startChromium(t, chromium, 90*time.Second)
	tb := newTab(t, ctx, base, sh)
	tb.open("/")
	authID := tb.virtualAuthenticator()

	// Sign up and log in with the password.
	acct := newAccount()
	tb.open("/register")
	tb.fill("#email", acct.email, "#username", acct.username, "#password", acct.password)
	tb.submit("main form button[type=submit]", "/login")
	tb.fill("#login", acct.email, "#password", acct.password)
	tb.submit("main form button[type=submit]", "/account")

	// Add a passkey from the account page: its name and the password —
	// as a browser without the WebAuthn JSON helpers would (Chromium has
	// them; the script's own base64url encoding runs instead).
	noHelpers := tb.onNewDocument(withoutJSONHelpers)
	tb.open("/account")
	if got := tb.eval(`typeof PublicKeyCredential.parseCreationOptionsFromJSON + " " + typeof PublicKeyCredential.prototype.toJSON`); got != "undefined undefined" {
		t.Fatalf("the WebAuthn JSON helpers are still there: %s", got)
	}
	tb.waitShown("#passkey-add")
	tb.fill("#passkey-name", "Headless Chromium", "#passkey-password", acct.password)
	tb.submit("#passkey-add button[type=submit]", "/account")
	tb.expectStatus(200)
	if got := tb.text(".msg"); !strings.Contains(got, "was added") {
		t.Fatalf("no confirmation after adding the passkey: %q (%s)", got, tb.text("main"))
	}
	if got := tb.text("table.passkeys"); !strings.Contains(got, "Headless Chromium") {
		t.Fatalf("the account page does not list the new passkey: %q", got)
	}
	if creds := tb.credentials(authID); len(creds) != 1 || !creds[0].IsResidentCredential || creds[0].RpID != "localhost" {
		t.Fatalf("the authenticator holds %d credentials, want one resident credential for localhost: %+v", len(creds), creds)
	}
	tb.shot("account-passkey-added")
	tb.removeOnNewDocument(noHelpers)

	// Log out, then sign in with the passkey: no login name, no password.
	// The virtual authenticator answers the page's autofill request
	// (conditional mediation) at once, as if the user had picked the
	// passkey from the login name's suggestions; to press the button
	// instead, the page is told autofill is not available — until the
	// autofill sign-in at the end.
	tb.submit("header form button[type=submit]", "/")
	noAutofill := tb.onNewDocument(noConditionalMediation)
	tb.open("/login")
	if ac := tb.eval(`document.querySelector("#login").getAttribute("autocomplete")`); ac != "username webauthn" {
		t.Fatalf("the login name's autocomplete is %q", ac)
	}
	tb.waitShown("#passkey-login")
	tb.shot("login-with-passkey")
	tb.submit("#passkey-login button[type=submit]", "/account")
	tb.expectStatus(200)
	if got := tb.text("header .who"); !strings.Contains(got, acct.username) {
		t.Fatalf("not signed in after the passkey sign-in: %q", got)
	}
	if got := tb.text("table.passkeys"); strings.Contains(got, "never") {
		t.Fatalf("the passkey's last use is not shown: %q", got)
	}
	tb.shot("account-after-passkey-sign-in")

	// Back to the login page, and the passkey sign-in again: the form's
	// nonce belongs to the session before the login, and is spent —
	// refused, with the login page and a message.
	tb.eval(`window.__dgOld = true, history.back(), "ok"`)
	tb.waitPage("/login", false)
	tb.waitShown("#passkey-login")
	tb.submit("#passkey-login button[type=submit]", "/login/passkey")
	t.Logf("Back + resubmit: %d, %q", tb.status.Load(), tb.text(".msg-error strong"))
	if s := tb.status.Load(); s != 403 && s != 409 {
		t.Fatalf("Back + resubmit of the passkey sign-in answered %d, want a refusal (403 or 409)", s)
	}
	if got := tb.text(".msg-error strong"); got == "" {
		t.Fatal("the refused resubmission shows no message")
	}
	tb.shot("passkey-sign-in-resubmitted")

	// A passkey as the step-up proof: change the email address with
	// "Confirm with a passkey instead" — no password typed.
	tb.open("/account/email")
	tb.fill("#email", "new-"+acct.email)
	tb.waitShown("[data-passkey-proof]")
	tb.submit("[data-passkey-proof]", "/account")
	tb.expectStatus(200)
	if got := tb.text("#pending-email"); !strings.Contains(got, "new-"+acct.email) {
		t.Fatalf("the email change with a passkey as proof is not pending: %q", got)
	}

	// Autofill: log out, open the login page, and the passkey the user
	// picks from the suggestions signs in (again without the JSON helpers,
	// so that the script's own encoding of an assertion is checked too).
	tb.removeOnNewDocument(noAutofill)
	tb.onNewDocument(withoutJSONHelpers)
	tb.open("/account")
	tb.submit("header form button[type=submit]", "/")
	// (Not chromedp.Navigate: the page goes on to /account by itself,
	// perhaps before the login page's load event that Navigate waits for.)
	tb.eval(`window.__dgOld = true, location.assign("/login"), "ok"`)
	tb.waitPage("/account", true)
	tb.expectStatus(200)
	if got := tb.text("header .who"); !strings.Contains(got, acct.username) {
		t.Fatalf("not signed in through autofill: %q", got)
	}
	tb.shot("account-after-autofill-sign-in")

	// The second step: turn two-step verification on, log in with the
	// password (autofill off again, or the passkey would sign in at once),
	// and answer the code step with "Use a passkey instead".
	tb.open("/account/totp")
	tb.fill("#setup-password", acct.password)
	tb.submit(`form[action="/account/totp/setup"] button[type=submit]`, "/account/totp")
	secret, p := parseOTPAuth(t, tb.text("#totp-uri"))
	tb.fill("#code", totp.Code(secret, totp.Step(time.Now(), p), p), "#password", acct.password)
	tb.submit(`form[action="/account/totp"] button[type=submit]`, "/account/totp")
	tb.expectStatus(200)
	tb.submit("header form button[type=submit]", "/")
	tb.onNewDocument(noConditionalMediation)
	tb.open("/login")
	tb.fill("#login", acct.username, "#password", acct.password)
	tb.submit("main form button[type=submit]", "/login/totp")
	tb.waitShown("#passkey-second")
	tb.shot("login-code-step-with-passkey")
	tb.submit("#passkey-second button[type=submit]", "/account")
	tb.expectStatus(200)
	if got := tb.text("header .who"); !strings.Contains(got, acct.username) {
		t.Fatalf("not signed in after the passkey second step: %q", got)
	}

	if errs := tb.consoleErrors(); len(errs) > 0 {
		t.Errorf("the browser reported errors (a CSP violation is one):\n%s", strings.Join(errs, "\n"))
	}
}
