package app

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/dynaguard/dynaguard/middleware"
	"github.com/dynaguard/dynaguard/users"
)

// Sign-up, login (with the TOTP step), logout, password reset and email
// verification. Every POST here has passed the stack's single-use nonce
// check before it arrives, so a handler runs at most once per rendered form.

func (a *App) home(w http.ResponseWriter, r *http.Request) {
	v := a.newView(r, "dynaguard example")
	a.render(w, "home", v)
}

// ---- sign-up ----

func (a *App) registerGet(w http.ResponseWriter, r *http.Request) {
	a.registerPage(w, r, a.newView(r, ""))
}

func (a *App) registerPage(w http.ResponseWriter, r *http.Request, v *view) {
	v.Title = "Create an account"
	v.Narrow = true
	v.cache = formCache
	a.render(w, "register", v)
}

// registerPost signs up in the users package's quiet mode: a new address
// and one that already has an account get the same answer — 303 to the
// login page with the same message, and an email to the address (a
// verification link for a new account, a notice for an existing one) — so
// the form does not tell who has an account. A new account is therefore
// not logged in here: its owner logs in next, like everyone. Sign-ups are
// limited per client address before any work (429).
func (a *App) registerPost(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	v := a.newView(r, "")
	v.Form = keptInput(r)
	c := middleware.Client(r)
	email := r.PostFormValue("email")
	u, err := a.users.Register(ctx, users.NewUser{
		Email:    email,
		Username: r.PostFormValue("username"),
		Password: r.PostFormValue("password"),
	}, c.IP)
	if err != nil {
		v.status, v.Alert = usersAlert(w, err)
		markFields(v, err)
		a.registerPage(w, r, v)
		return
	}
	if u != nil {
		if err := a.users.RequestEmailVerification(ctx, u, c.IP); err != nil {
			a.log.WarnContext(ctx, "app: sending the verification link failed", "user", u.ID, "err", err)
		}
	}
	msg := "We sent a message to " + strings.TrimSpace(email) + ". Follow it to confirm your address, then log in here."
	if a.dev {
		msg += " (See the dev outbox.)"
	}
	a.setFlash(r, "ok", msg)
	redirect(w, r, "/login")
}

// markFields points the form at the field an error is about.
func markFields(v *view, err error) {
	var (
		ie *users.IdentifierError
		pe *users.PolicyError
		tk *users.TakenError
	)
	switch {
	case errors.As(err, &ie):
		v.Errors[ie.Field] = capitalize(ie.Reason) + "."
	case errors.As(err, &pe):
		v.Errors["password"] = policyMessage(pe)
	case errors.As(err, &tk):
		if tk.Email {
			v.Errors["email"] = "Already registered."
		}
		if tk.Username {
			v.Errors["username"] = "Already taken."
		}
	}
}

// ---- login ----

func (a *App) loginGet(w http.ResponseWriter, r *http.Request) {
	v := a.newView(r, "")
	if r.URL.Query().Get("reauth") == "1" {
		v.Alert = &alert{Title: "Please confirm it's you", Detail: "This action needs a recent login. Enter your password again to continue."}
	}
	a.loginPage(w, r, v)
}

func (a *App) loginPage(w http.ResponseWriter, r *http.Request, v *view) {
	v.Title = "Log in"
	v.Narrow = true
	v.cache = formCache
	a.render(w, "login", v)
}

// loginPost checks the password. Every failure — unknown login, wrong
// password, disabled account — is the same 401; a throttled attempt is 429
// with Retry-After and costs no password hashing.
func (a *App) loginPost(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	v := a.newView(r, "")
	v.Form = keptInput(r)
	c := middleware.Client(r)
	u, err := a.users.Authenticate(ctx, users.Credentials{
		Login: r.PostFormValue("login"), Password: r.PostFormValue("password"), IP: c.IP,
	})
	pending := false
	if err == nil {
		// Renews the session token (no fixation); with a second factor
		// the session is not logged in until the code is accepted.
		pending, err = a.users.BeginLogin(ctx, a.sm, u, c)
	}
	if err != nil {
		v.status, v.Alert = usersAlert(w, err)
		a.loginPage(w, r, v)
		return
	}
	next := v.Next()
	if pending {
		// The second step offers the account's passkey, if it has one.
		a.sm.Put(ctx, sessPendingPasskey, a.passkeysOn && u.Passkeys > 0)
		to := "/login/totp"
		if next != "" {
			to += "?next=" + url.QueryEscape(next)
		}
		redirect(w, r, to)
		return
	}
	redirect(w, r, orDefault(next, "/account"))
}

func orDefault(s, def string) string {
	if s == "" || s == "/" {
		return def
	}
	return s
}

func (a *App) loginTOTPGet(w http.ResponseWriter, r *http.Request) {
	if _, ok := a.users.Pending(r.Context(), a.sm); !ok {
		a.setFlash(r, "info", "Enter your login name and password first.")
		redirect(w, r, "/login")
		return
	}
	a.loginTOTPPage(w, r, a.newView(r, ""))
}

func (a *App) loginTOTPPage(w http.ResponseWriter, r *http.Request, v *view) {
	v.Title = "Two-step verification"
	v.Narrow = true
	v.Data = secondStep{Passkey: a.passkeysOn && a.sm.GetBool(r.Context(), sessPendingPasskey)}
	a.render(w, "login_totp", v)
}

// loginTOTPPost completes a two-step login with a code from the
// authenticator app or a recovery code. A code is accepted once: the same
// code sent again — here or on another instance — is refused.
func (a *App) loginTOTPPost(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	v := a.newView(r, "")
	v.Form = keptInput(r)
	_, err := a.users.CompleteLogin(ctx, a.sm, r.PostFormValue("code"), middleware.Client(r))
	switch {
	case err == nil:
		redirect(w, r, orDefault(v.Next(), "/account"))
	case errors.Is(err, users.ErrNoPendingLogin):
		a.setFlash(r, "info", "Your login timed out. Enter your password again.")
		redirect(w, r, "/login")
	default:
		v.status, v.Alert = usersAlert(w, err)
		a.loginTOTPPage(w, r, v)
	}
}

// secondStep is what the second step of a login offers besides a code.
type secondStep struct{ Passkey bool }

func (a *App) loginCancel(w http.ResponseWriter, r *http.Request) {
	a.users.CancelLogin(r.Context(), a.sm)
	redirect(w, r, "/login")
}

// ---- logout ----

func (a *App) logoutGet(w http.ResponseWriter, r *http.Request) {
	a.logoutPage(w, r, a.newView(r, ""))
}

func (a *App) logoutPage(w http.ResponseWriter, r *http.Request, v *view) {
	v.Title = "Log out"
	v.Narrow = true
	a.render(w, "logout", v)
}

// logoutPost destroys the session on the server: the old cookie is dead on
// every instance, even for a request that is still running with it.
func (a *App) logoutPost(w http.ResponseWriter, r *http.Request) {
	if err := a.users.Logout(r.Context(), a.sm); err != nil {
		a.log.ErrorContext(r.Context(), "app: logout failed", "err", err)
		unavailable(w, r)
		return
	}
	a.setFlash(r, "ok", "You are logged out.")
	redirect(w, r, "/")
}

// ---- password reset ----

func (a *App) resetGet(w http.ResponseWriter, r *http.Request) {
	a.resetPage(w, r, a.newView(r, ""))
}

func (a *App) resetPage(w http.ResponseWriter, r *http.Request, v *view) {
	v.Title = "Reset your password"
	v.Narrow = true
	v.cache = formCache
	a.render(w, "reset", v)
}

// resetPost answers 200 with the same page whether or not an account has
// the address: the link goes only to the account's own address.
func (a *App) resetPost(w http.ResponseWriter, r *http.Request) {
	v := a.newView(r, "")
	err := a.users.RequestReset(r.Context(), r.PostFormValue("email"), middleware.ClientIP(r))
	if err != nil {
		v.Form = keptInput(r)
		v.status, v.Alert = usersAlert(w, err)
		a.resetPage(w, r, v)
		return
	}
	v.Data = resetSent{Email: r.PostFormValue("email")}
	a.resetPage(w, r, v)
}

type resetSent struct{ Email string }

func (a *App) resetConfirmGet(w http.ResponseWriter, r *http.Request) {
	v := a.newView(r, "")
	v.Form.Set("token", r.URL.Query().Get("token"))
	a.resetConfirmPage(w, r, v)
}

func (a *App) resetConfirmPage(w http.ResponseWriter, r *http.Request, v *view) {
	v.Title = "Choose a new password"
	v.Narrow = true
	// The page holds the token: never cache it.
	a.render(w, "reset_confirm", v)
}

// resetConfirmPost sets the new password with a one-time token. The token
// is consumed by one conditional write, so it works once; it also dies when
// the password changes by any other way. Every session of the account ends,
// and the user logs in with the new password.
func (a *App) resetConfirmPost(w http.ResponseWriter, r *http.Request) {
	v := a.newView(r, "")
	v.Form = keptInput(r)
	_, err := a.users.ResetPassword(r.Context(), r.PostFormValue("token"), r.PostFormValue("password"))
	if err != nil {
		v.status, v.Alert = usersAlert(w, err)
		markFields(v, err)
		if errors.Is(err, users.ErrInvalidToken) {
			v.Form.Del("token")
		}
		a.resetConfirmPage(w, r, v)
		return
	}
	a.setFlash(r, "ok", "Your password was changed and every session of your account was signed out. Log in with the new password.")
	redirect(w, r, "/login")
}

// ---- email verification ----

// verifyGet shows a button rather than verifying at once: a GET must not
// change anything, and mail scanners and link previews fetch links.
func (a *App) verifyGet(w http.ResponseWriter, r *http.Request) {
	v := a.newView(r, "")
	v.Form.Set("token", r.URL.Query().Get("token"))
	a.verifyPage(w, r, v)
}

func (a *App) verifyPage(w http.ResponseWriter, r *http.Request, v *view) {
	v.Title = "Confirm your email address"
	v.Narrow = true
	a.render(w, "verify", v)
}

func (a *App) verifyPost(w http.ResponseWriter, r *http.Request) {
	v := a.newView(r, "")
	u, err := a.users.VerifyEmail(r.Context(), r.PostFormValue("token"))
	if err != nil {
		v.status, v.Alert = usersAlert(w, err)
		a.verifyPage(w, r, v)
		return
	}
	a.setFlash(r, "ok", "Thank you — "+u.Email+" is confirmed.")
	if v.User != nil {
		redirect(w, r, "/account")
		return
	}
	redirect(w, r, "/")
}

// ---- email change links ----

// emailLink is what the page behind an email-change link shows.
type emailLink struct {
	Action, Lead, Button string
}

func (a *App) emailLinkPage(w http.ResponseWriter, r *http.Request, v *view, title string, d emailLink) {
	v.Title = title
	v.Narrow = true
	v.Data = d
	a.render(w, "email_link", v)
}

var (
	confirmLink = emailLink{Action: "/email/change/confirm", Lead: "Press the button to make this your account's email address.",
		Button: "Confirm my new email address"}
	cancelLink = emailLink{Action: "/email/change/cancel", Lead: "Press the button to cancel the change of your email address. " +
		"Every session of your account will be signed out; then log in and change your password.", Button: "Cancel the change"}
)

// emailConfirmGet shows a button rather than confirming at once (mail
// scanners fetch links).
func (a *App) emailConfirmGet(w http.ResponseWriter, r *http.Request) {
	v := a.newView(r, "")
	v.Form.Set("token", r.URL.Query().Get("token"))
	a.emailLinkPage(w, r, v, "Confirm your new email address", confirmLink)
}

// emailConfirmPost moves the account to the new address: every other
// session ends; this one, if it is the account's, continues.
func (a *App) emailConfirmPost(w http.ResponseWriter, r *http.Request) {
	v := a.newView(r, "")
	u, err := a.users.ConfirmEmailChange(r.Context(), a.sm, r.PostFormValue("token"), middleware.Client(r))
	if err != nil {
		v.status, v.Alert = usersAlert(w, err)
		if errors.Is(err, users.ErrEmailTaken) {
			v.Alert = &alert{Title: "Address already in use", Detail: "Another account uses this address, so it cannot be moved to it."}
		}
		a.emailLinkPage(w, r, v, "Confirm your new email address", confirmLink)
		return
	}
	a.setFlash(r, "ok", "Your email address is now "+u.Email+". Every other session was signed out.")
	if v.User != nil && v.User.ID == u.ID {
		redirect(w, r, "/account")
		return
	}
	redirect(w, r, "/login")
}

func (a *App) emailCancelGet(w http.ResponseWriter, r *http.Request) {
	v := a.newView(r, "")
	v.Form.Set("token", r.URL.Query().Get("token"))
	a.emailLinkPage(w, r, v, "Cancel the email change", cancelLink)
}

// emailCancelPost drops the pending change and ends every session of the
// account, this one included.
func (a *App) emailCancelPost(w http.ResponseWriter, r *http.Request) {
	v := a.newView(r, "")
	if _, err := a.users.CancelEmailChange(r.Context(), r.PostFormValue("token")); err != nil {
		v.status, v.Alert = usersAlert(w, err)
		a.emailLinkPage(w, r, v, "Cancel the email change", cancelLink)
		return
	}
	a.setFlash(r, "ok", "The change was cancelled and every session signed out. Log in and change your password.")
	redirect(w, r, "/login")
}
