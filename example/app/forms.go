package app

import (
	"errors"
	"math"
	"net/http"
	"net/url"
	"strconv"

	"github.com/dynaguard/dynaguard/internal/problem"
	"github.com/dynaguard/dynaguard/nonce"
	"github.com/dynaguard/dynaguard/users"
)

// formPage renders the page that holds a POST route's form, with v's
// status, alert and input.
type formPage struct {
	render func(w http.ResponseWriter, r *http.Request, v *view)
	user   bool // the page is for logged-in users only
}

// secretFields are never written back into a re-rendered form.
var secretFields = map[string]bool{
	"password": true, "current": true, "new": true, "code": true, "nonce": true,
	// WebAuthn responses: single use, and large.
	"credential": true, "passkey": true,
}

// keptInput is the user's input minus secrets, for re-rendering a form.
func keptInput(r *http.Request) url.Values {
	out := url.Values{}
	for k, vs := range r.PostForm {
		if !secretFields[k] && len(vs) > 0 {
			out.Set(k, vs[0])
		}
	}
	return out
}

// formError is the nonce manager's ErrorHandler: a form whose nonce was
// refused is rendered again — with a fresh nonce, what the user typed
// (never passwords, codes or tokens) and a message that says what happened
// and that nothing was done. A double submission (Back, then submit again)
// gets 409 and "This form was already submitted".
func (a *App) formError(w http.ResponseWriter, r *http.Request, err error) {
	fp, ok := a.forms[r.URL.Path]
	if !ok || errors.Is(err, nonce.ErrBodyTooLarge) || errors.Is(err, nonce.ErrBadForm) {
		nonce.DefaultErrorHandler(w, r, err)
		return
	}
	if _, in := users.FromContext(r.Context()); fp.user && !in {
		// The session ended (logout, revocation) since the form was
		// rendered: the form is of no use any more.
		a.setFlash(r, "info", "Your session has ended. Please log in again.")
		redirect(w, r, "/login")
		return
	}
	v := a.newView(r, "")
	v.status = nonce.Status(err)
	v.Form = keptInput(r)
	v.Alert = nonceAlert(err)
	if errors.Is(err, nonce.ErrStorage) {
		w.Header().Set("Retry-After", "1")
	}
	fp.render(w, r, v)
}

func nonceAlert(err error) *alert {
	switch {
	case errors.Is(err, nonce.ErrAlreadyUsed):
		return &alert{Title: "This form was already submitted",
			Detail: "Each form can be sent only once, and this one already was — nothing was done a second time. " +
				"If you really mean to do it again, check the form below and submit it."}
	case errors.Is(err, nonce.ErrExpired):
		return &alert{Title: "This form has expired",
			Detail: "It was open for too long, so it was not processed. Check the form below and submit it again."}
	case errors.Is(err, nonce.ErrWrongSession):
		return &alert{Title: "Your session changed",
			Detail: "You logged in or out since this form was opened, so it was not processed. Check the form below and submit it again."}
	case errors.Is(err, nonce.ErrWrongBrowser):
		return &alert{Title: "This form could not be verified",
			Detail: "It was opened in another browser, or this browser's cookies were cleared or are blocked. " +
				"Allow cookies for this site and submit the form below."}
	case errors.Is(err, nonce.ErrStorage):
		return &alert{Title: "Please try again in a moment",
			Detail: "The form could not be verified right now, so it was not processed."}
	default:
		return &alert{Title: "This form could not be verified",
			Detail: "It was not processed. Check the form below and submit it again."}
	}
}

// usersAlert turns an error of the users package into a page status and
// message, setting Retry-After where one applies. Messages never say
// whether an account exists.
func usersAlert(w http.ResponseWriter, err error) (int, *alert) {
	var (
		te *users.ThrottledError
		pe *users.PolicyError
		ie *users.IdentifierError
		tk *users.TakenError
		rl *users.RateLimitedError
	)
	switch {
	case errors.As(err, &te) && te.Locked:
		return http.StatusTooManyRequests, &alert{Title: "Too many failed attempts",
			Detail: "This login is locked after too many failed attempts. Reset the password to unlock it."}
	case errors.As(err, &te):
		secs := max(1, int(math.Ceil(te.RetryAfter.Seconds())))
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		return http.StatusTooManyRequests, &alert{Title: "Too many failed attempts",
			Detail: "Wait " + plural(secs, "second") + " before trying again."}
	case errors.As(err, &rl):
		secs := max(1, int(math.Ceil(rl.RetryAfter.Seconds())))
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		return http.StatusTooManyRequests, &alert{Title: "Too many requests",
			Detail: "Wait " + plural(secs, "second") + " before trying again."}
	case errors.Is(err, users.ErrInvalidPasskey):
		return http.StatusUnauthorized, &alert{Title: "Passkey not accepted",
			Detail: "The passkey could not be checked, was removed, or this request was already used. Nothing was changed; try again."}
	case errors.Is(err, users.ErrProofRequired) && errors.Is(err, users.ErrInvalidCode):
		return http.StatusUnauthorized, &alert{Title: "Code needed",
			Detail: "Enter the current code from your authenticator app, or a recovery code. Nothing was changed."}
	case errors.Is(err, users.ErrProofRequired):
		return http.StatusUnauthorized, &alert{Title: "Wrong password",
			Detail: "Enter your current password to confirm it is you. Nothing was changed."}
	case errors.Is(err, users.ErrInvalidToken):
		return http.StatusBadRequest, &alert{Title: "This link is not valid any more",
			Detail: "It was already used, it expired, or the account changed since it was sent. Ask for a new one."}
	case errors.Is(err, users.ErrInvalidCode):
		return http.StatusUnauthorized, &alert{Title: "Wrong code",
			Detail: "The code is not correct, or it was already used. Wait for the next code from your app and try again."}
	case errors.Is(err, users.ErrNoPendingLogin):
		return http.StatusUnauthorized, &alert{Title: "Your login timed out", Detail: "Enter your password again."}
	case errors.Is(err, users.ErrReauthRequired):
		return http.StatusUnauthorized, &alert{Title: "Please log in again", Detail: "This action needs a recent login."}
	case errors.Is(err, users.ErrTOTPEnabled):
		return http.StatusConflict, &alert{Title: "Already on", Detail: "Two-step verification is already on."}
	case errors.Is(err, users.ErrTOTPNotEnabled):
		return http.StatusConflict, &alert{Title: "Not on", Detail: "Two-step verification is not on."}
	case errors.Is(err, users.ErrNoEnrollment):
		return http.StatusConflict, &alert{Title: "The setup expired", Detail: "Start the setup again."}
	case errors.Is(err, users.ErrInvalidCredentials):
		return http.StatusUnauthorized, &alert{Title: "Login failed", Detail: "The login name or the password is not correct."}
	case errors.Is(err, users.ErrBusy):
		w.Header().Set("Retry-After", "2")
		return http.StatusServiceUnavailable, &alert{Title: "Too busy", Detail: "Too many logins are in progress. Try again in a moment."}
	case errors.As(err, &pe) && pe.Rule == users.RuleUnverified:
		w.Header().Set("Retry-After", "5")
		return http.StatusServiceUnavailable, &alert{Title: "Password check unavailable", Detail: "Try again in a moment."}
	case errors.As(err, &pe):
		return http.StatusUnprocessableEntity, &alert{Title: "Choose another password", Detail: policyMessage(pe)}
	case errors.As(err, &ie):
		return http.StatusUnprocessableEntity, &alert{Title: "Check the " + ie.Field, Detail: capitalize(ie.Reason) + "."}
	case errors.As(err, &tk) && tk.Email && tk.Username:
		return http.StatusConflict, &alert{Title: "Already registered", Detail: "This email address and this username are already registered. Log in instead, or reset your password."}
	case errors.As(err, &tk) && tk.Email:
		return http.StatusConflict, &alert{Title: "Already registered", Detail: "This email address is already registered. Log in instead, or reset your password."}
	case errors.As(err, &tk):
		return http.StatusConflict, &alert{Title: "Username taken", Detail: "This username is already taken. Choose another one."}
	case errors.Is(err, users.ErrConflict):
		return http.StatusConflict, &alert{Title: "Account changed", Detail: "The account was changed at the same time. Reload and try again."}
	case errors.Is(err, users.ErrUnavailable):
		w.Header().Set("Retry-After", "1")
		return http.StatusServiceUnavailable, &alert{Title: "Temporarily unavailable", Detail: "Try again in a moment."}
	default:
		return http.StatusInternalServerError, &alert{Title: "Something went wrong", Detail: "Try again in a moment."}
	}
}

func policyMessage(pe *users.PolicyError) string { return capitalize(pe.Error()) + "." }

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return strconv.Itoa(n) + " " + unit + "s"
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	b := []byte(s)
	if b[0] >= 'a' && b[0] <= 'z' {
		b[0] -= 'a' - 'A'
	}
	return string(b)
}

// unavailable answers a storage failure: nothing was done.
func unavailable(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Retry-After", "1")
	problem.Write(w, r, problem.Problem{Reason: "app-storage-unavailable", Status: http.StatusServiceUnavailable,
		Title: "Please try again in a moment", Detail: "The request could not be completed right now, so nothing was changed."})
}

func (a *App) notFound(w http.ResponseWriter, r *http.Request) {
	problem.Write(w, r, problem.Problem{Status: http.StatusNotFound, Title: "Page not found",
		Detail: "There is no page at this address."})
}
