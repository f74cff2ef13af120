package app

import (
	"bytes"
	"encoding/base64"
	"encoding/gob"
	"errors"
	"html/template"
	"image/png"
	"net/http"
	"strings"
	"time"

	"github.com/boombuler/barcode"
	"github.com/boombuler/barcode/qr"

	"github.com/dynaguard/dynaguard/middleware"
	"github.com/dynaguard/dynaguard/sessionstore"
	"github.com/dynaguard/dynaguard/users"
)

// The account pages: all behind requireUser, so v.User is set.

func (a *App) account(w http.ResponseWriter, r *http.Request) {
	a.accountPage(w, r, a.newView(r, ""))
}

func (a *App) accountPage(w http.ResponseWriter, r *http.Request, v *view) {
	v.Title = "Your account"
	if v.Data == nil {
		v.Data = a.passkeysOf(r.Context(), v.User)
	}
	a.render(w, "account", v)
}

// sendVerification mails a new confirmation link to the account's address.
func (a *App) sendVerification(w http.ResponseWriter, r *http.Request) {
	u, _ := users.FromContext(r.Context())
	if err := a.users.RequestEmailVerification(r.Context(), u, middleware.ClientIP(r)); err != nil {
		v := a.newView(r, "")
		v.status, v.Alert = usersAlert(w, err)
		a.accountPage(w, r, v)
		return
	}
	a.setFlash(r, "ok", "We sent a new confirmation link to "+u.Email+".")
	redirect(w, r, "/account")
}

// ---- password ----

func (a *App) passwordGet(w http.ResponseWriter, r *http.Request) {
	a.passwordPage(w, r, a.newView(r, ""))
}

func (a *App) passwordPage(w http.ResponseWriter, r *http.Request, v *view) {
	v.Title = "Change your password"
	v.Narrow = true
	v.cache = formCache
	a.render(w, "password", v)
}

// passwordPost changes the password. The current one is checked like a
// login (and throttled like one); on success the credential version goes
// up, so every other session of the user fails its next request, on every
// instance, while this one continues under a new token.
func (a *App) passwordPost(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	u, _ := users.FromContext(ctx)
	proof := users.Proof{Password: r.PostFormValue("current"), Code: r.PostFormValue("code"), Passkey: []byte(r.PostFormValue("passkey"))}
	err := a.users.ChangePassword(ctx, a.sm, u, proof, r.PostFormValue("new"), middleware.Client(r))
	if err != nil {
		v := a.newView(r, "")
		v.status, v.Alert = usersAlert(w, err)
		proofErrors(v, err, "current")
		if errors.Is(err, users.ErrInvalidCredentials) && !errors.Is(err, users.ErrThrottled) {
			v.Alert = &alert{Title: "Wrong password", Detail: "The current password is not correct."}
		}
		var pe *users.PolicyError
		if errors.As(err, &pe) {
			v.Errors["new"] = policyMessage(pe)
		}
		a.passwordPage(w, r, v)
		return
	}
	a.setFlash(r, "ok", "Your password was changed. Every other session of your account was signed out.")
	redirect(w, r, "/account")
}

// ---- email ----

func (a *App) emailGet(w http.ResponseWriter, r *http.Request) {
	a.emailPage(w, r, a.newView(r, ""))
}

func (a *App) emailPage(w http.ResponseWriter, r *http.Request, v *view) {
	v.Title = "Change your email address"
	v.Narrow = true
	v.cache = formCache
	a.render(w, "email", v)
}

// emailPost asks to move the account to a new address. Whoever controls
// the address can reset the password, so it needs the password (and a code
// with two-step verification) in this very request — a session alone, even
// a fresh one, is not enough. The change stays pending until the link sent
// to the new address is opened; the current address is told, with a link
// that cancels it. The answer is the same whether or not the new address
// already has an account.
func (a *App) emailPost(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	u, _ := users.FromContext(ctx)
	email := r.PostFormValue("email")
	if err := a.users.RequestEmailChange(ctx, a.sm, u, email, proofOf(r), middleware.Client(r)); err != nil {
		v := a.newView(r, "")
		v.Form = keptInput(r)
		v.Form.Del("password")
		v.Form.Del("code")
		v.status, v.Alert = usersAlert(w, err)
		markFields(v, err)
		proofErrors(v, err, "password")
		a.emailPage(w, r, v)
		return
	}
	a.setFlash(r, "ok", "We sent a link to "+strings.TrimSpace(email)+". Your address changes when you open it; until then "+
		u.Email+" stays your address.")
	redirect(w, r, "/account")
}

// ---- sessions ----

type sessionsData struct {
	Sessions []sessionstore.Session
	Current  string
	// APIClients are the account's API clients (refresh-token families),
	// listed from the account the request already read: no extra call.
	APIClients []users.APIClient
}

func (a *App) sessionsGet(w http.ResponseWriter, r *http.Request) {
	a.sessionsPage(w, r, a.newView(r, ""))
}

// sessionsPage lists the user's live sessions: one Query of the owner index
// and one consistent BatchGetItem. A session is named by its ID — a keyed
// hash, never the cookie's token.
func (a *App) sessionsPage(w http.ResponseWriter, r *http.Request, v *view) {
	ctx := r.Context()
	v.Title = "Your sessions"
	list, err := a.store.List(ctx, v.User.ID)
	if err != nil {
		a.log.ErrorContext(ctx, "app: listing sessions failed", "err", err)
		unavailable(w, r)
		return
	}
	v.Data = sessionsData{Sessions: list, Current: a.store.ID(a.sm.Token(ctx)), APIClients: a.users.APIClients(v.User)}
	a.render(w, "sessions", v)
}

// revokeAll signs out every other session: the session epoch goes up, so
// they all fail their next request — including any the index has not
// caught up with — and the store tombstones the ones it can list.
func (a *App) revokeAll(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	u, _ := users.FromContext(ctx)
	if err := a.users.LogoutOthers(ctx, a.sm, u, middleware.Client(r)); err != nil {
		v := a.newView(r, "")
		v.status, v.Alert = usersAlert(w, err)
		a.sessionsPage(w, r, v)
		return
	}
	a.setFlash(r, "ok", "Every other session was signed out.")
	redirect(w, r, "/account/sessions")
}

// revokeOne ends one session, named by its ID.
func (a *App) revokeOne(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	u, _ := users.FromContext(ctx)
	err := a.store.Revoke(ctx, u.ID, r.PostFormValue("id"))
	switch {
	case errors.Is(err, sessionstore.ErrNotFound):
		a.setFlash(r, "info", "That session had already ended.")
	case err != nil:
		a.log.ErrorContext(ctx, "app: revoking a session failed", "err", err)
		unavailable(w, r)
		return
	default:
		a.setFlash(r, "ok", "The session was signed out.")
	}
	redirect(w, r, "/account/sessions")
}

// ---- TOTP ----

// pendingEnrollment is a started TOTP enrolment, kept in the session (which
// is sealed at rest) between the setup and its confirmation, so that
// reloading the page shows the same secret.
type pendingEnrollment struct {
	Secret  string
	URI     string
	Expires time.Time
}

func init() { gob.Register(pendingEnrollment{}) }

type totpData struct {
	Enrollment *pendingEnrollment
	QR         template.URL // data: URL of a PNG QR code of the otpauth URI
	Codes      []string     // recovery codes, shown once
}

func (a *App) totpGet(w http.ResponseWriter, r *http.Request) {
	a.totpPage(w, r, a.newView(r, ""))
}

func (a *App) totpPage(w http.ResponseWriter, r *http.Request, v *view) {
	ctx := r.Context()
	v.Title = "Two-step verification"
	d, _ := v.Data.(totpData)
	if !v.User.TOTPEnabled && d.Codes == nil {
		if e, ok := a.sm.Get(ctx, sessTOTPPending).(pendingEnrollment); ok && a.clock.Now().Before(e.Expires) {
			d.Enrollment = &e
			d.QR = qrDataURL(e.URI)
		}
	}
	v.Data = d
	a.render(w, "totp", v)
}

// qrDataURL renders the otpauth URI as a PNG QR code in a data: URL (the
// CSP allows data: images), or "" if it cannot.
func qrDataURL(uri string) template.URL {
	code, err := qr.Encode(uri, qr.M, qr.Auto)
	if err != nil {
		return ""
	}
	if code, err = barcode.Scale(code, 220, 220); err != nil {
		return ""
	}
	var b bytes.Buffer
	if err := png.Encode(&b, code); err != nil {
		return ""
	}
	return template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(b.Bytes()))
}

// proofOf is the step-up proof a form carries: the password, and a code
// when the account has two-step verification — or, from static/passkeys.js,
// a passkey assertion in "passkey", which is then the whole proof.
func proofOf(r *http.Request) users.Proof {
	return users.Proof{Password: r.PostFormValue("password"), Code: r.PostFormValue("code"), Passkey: []byte(r.PostFormValue("passkey"))}
}

// totpSetup starts an enrolment (it needs the password): a new secret,
// shown until confirmed.
func (a *App) totpSetup(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	u, _ := users.FromContext(ctx)
	e, err := a.users.BeginTOTP(ctx, a.sm, u, proofOf(r), middleware.Client(r))
	switch {
	case err != nil:
		v := a.newView(r, "")
		v.status, v.Alert = usersAlert(w, err)
		a.totpPage(w, r, v)
		return
	}
	a.sm.Put(ctx, sessTOTPPending, pendingEnrollment{Secret: e.Secret, URI: e.URI, Expires: e.Expires})
	redirect(w, r, "/account/totp")
}

// totpPost confirms the enrolment with a code from the app and the
// password, and shows the recovery codes, once.
func (a *App) totpPost(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	u, _ := users.FromContext(ctx)
	codes, err := a.users.ConfirmTOTP(ctx, a.sm, u, users.Proof{Password: r.PostFormValue("password")}, r.PostFormValue("code"), middleware.Client(r))
	switch {
	case errors.Is(err, users.ErrNoEnrollment):
		a.sm.Remove(ctx, sessTOTPPending)
		a.setFlash(r, "info", "The setup expired. Start it again.")
		redirect(w, r, "/account/totp")
		return
	case err != nil:
		v := a.newView(r, "")
		v.status, v.Alert = usersAlert(w, err)
		a.totpPage(w, r, v)
		return
	}
	a.sm.Remove(ctx, sessTOTPPending)
	a.showCodes(w, r, codes, "Two-step verification is on. From now on, logging in asks for a code from your app.")
}

func (a *App) showCodes(w http.ResponseWriter, r *http.Request, codes []string, msg string) {
	v := a.newView(r, "")
	if u, err := a.users.Get(r.Context(), v.User.ID); err == nil {
		v.User = u
	}
	v.Flash = &flash{Kind: "ok", Text: msg}
	v.Data = totpData{Codes: codes}
	a.totpPage(w, r, v)
}

// totpDisable turns the second factor off (needs the password and a code).
func (a *App) totpDisable(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	u, _ := users.FromContext(ctx)
	err := a.users.DisableTOTP(ctx, a.sm, u, proofOf(r), middleware.Client(r))
	switch {
	case err != nil && !errors.Is(err, users.ErrTOTPNotEnabled):
		v := a.newView(r, "")
		v.status, v.Alert = usersAlert(w, err)
		a.totpPage(w, r, v)
		return
	}
	a.setFlash(r, "ok", "Two-step verification is off.")
	redirect(w, r, "/account/totp")
}

// totpRecovery replaces the recovery codes (needs the password and a code).
func (a *App) totpRecovery(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	u, _ := users.FromContext(ctx)
	codes, err := a.users.RegenerateRecoveryCodes(ctx, a.sm, u, proofOf(r), middleware.Client(r))
	switch {
	case err != nil:
		v := a.newView(r, "")
		v.status, v.Alert = usersAlert(w, err)
		a.totpPage(w, r, v)
		return
	}
	a.showCodes(w, r, codes, "New recovery codes were made; the old ones no longer work.")
}
