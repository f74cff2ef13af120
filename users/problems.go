package users

import (
	"errors"
	"math"
	"net/http"
	"strconv"

	"github.com/dynaguard/dynaguard/internal/problem"
)

// WriteError answers a request with the problem that matches an error of
// this package (RFC 9457 problem+json for API clients, a readable page for
// browsers; see docs/PROBLEMS.md): 401 for a failed login, 429 with
// Retry-After for a throttled one, 422 for a refused identifier or
// password, 409 for a taken identifier or a concurrent change, 400 for an
// invalid or expired link, 401 for a refused second-factor code, 503 with
// Retry-After when the hashing limiter or the table could not serve it.
// The messages never say whether an account exists.
func WriteError(w http.ResponseWriter, r *http.Request, err error) {
	var (
		te    *ThrottledError
		pe    *PolicyError
		ie    *IdentifierError
		tk    *TakenError
		rl    *RateLimitedError
		p     problem.Problem
		retry int
	)
	if writeAPITokenProblem(w, r, err) {
		return
	}
	switch {
	case errors.As(err, &te) && te.Locked:
		p = problem.Problem{Reason: "login-locked", Status: http.StatusTooManyRequests,
			Title:  "Too many failed logins",
			Detail: "This login is locked after too many failed attempts. Reset your password to unlock it."}
	case errors.As(err, &te):
		retry = int(math.Ceil(te.RetryAfter.Seconds()))
		p = problem.Problem{Reason: "login-throttled", Status: http.StatusTooManyRequests,
			Title:  "Too many failed logins",
			Detail: "Wait before trying again.", Extra: map[string]any{"retry_after": retry}}
	case errors.As(err, &rl):
		retry = int(math.Ceil(rl.RetryAfter.Seconds()))
		p = problem.Problem{Reason: "token-rate-limited", Status: http.StatusTooManyRequests,
			Title:  "Too many requests",
			Detail: "Too many links, sign-ups or email changes were requested. Wait before trying again.", Extra: map[string]any{"retry_after": retry}}
	case errors.Is(err, ErrProofRequired):
		p = problem.Problem{Reason: "proof-required", Status: http.StatusUnauthorized,
			Title:  "Please confirm it is you",
			Detail: "This change needs your current password, and a code from your authenticator app if you use one. Nothing was changed."}
	case errors.Is(err, ErrPasskeyTaken):
		p = problem.Problem{Reason: "passkey-taken", Status: http.StatusConflict,
			Title: "Passkey already registered", Detail: "This passkey is already registered. Nothing was changed."}
	case errors.Is(err, ErrInvalidPasskey):
		p = problem.Problem{Reason: "passkey-refused", Status: http.StatusUnauthorized,
			Title: "Passkey not accepted", Detail: "The passkey could not be checked, was removed, or this request was already used. Try again."}
	case errors.Is(err, ErrTooManyPasskeys):
		p = problem.Problem{Reason: "passkey-limit", Status: http.StatusConflict,
			Title: "Too many passkeys", Detail: "This account has as many passkeys as it may have. Remove one first."}
	case errors.Is(err, ErrPasskeyNotFound):
		p = problem.Problem{Reason: "passkey-not-found", Status: http.StatusNotFound, Title: "No such passkey"}
	case errors.Is(err, ErrPasskeysDisabled):
		p = problem.Problem{Reason: "passkeys-disabled", Status: http.StatusNotFound,
			Title: "Passkeys are not available", Detail: "This site does not offer passkeys."}
	case errors.Is(err, ErrInvalidToken):
		p = problem.Problem{Reason: "token-invalid", Status: http.StatusBadRequest,
			Title:  "Link invalid or expired",
			Detail: "This link is invalid, has expired or was already used. Request a new one."}
	case errors.Is(err, ErrInvalidCode):
		p = problem.Problem{Reason: "second-factor-failed", Status: http.StatusUnauthorized,
			Title:  "Code not accepted",
			Detail: "The code is not correct or was already used. Enter the current code from your authenticator app, or a recovery code."}
	case errors.Is(err, ErrNoPendingLogin):
		p = problem.Problem{Reason: "second-factor-expired", Status: http.StatusUnauthorized,
			Title: "Please log in again", Detail: "The login waiting for your code has expired or is no longer valid. Enter your password again."}
	case errors.Is(err, ErrSecondFactorRequired):
		p = problem.Problem{Reason: "second-factor-required", Status: http.StatusUnauthorized,
			Title: "Code required", Detail: "This account requires a code from an authenticator app to log in."}
	case errors.Is(err, ErrReauthRequired):
		p = problem.Problem{Reason: "reauthentication-required", Status: http.StatusUnauthorized,
			Title: "Please confirm your password", Detail: "This action needs a recent login. Log in again, then retry."}
	case errors.Is(err, ErrTOTPEnabled):
		p = problem.Problem{Reason: "totp-already-enabled", Status: http.StatusConflict,
			Title: "Already enabled", Detail: "Two-factor authentication is already enabled. Disable it first to set up another app."}
	case errors.Is(err, ErrTOTPNotEnabled):
		p = problem.Problem{Reason: "totp-not-enabled", Status: http.StatusConflict,
			Title: "Not enabled", Detail: "Two-factor authentication is not enabled for this account."}
	case errors.Is(err, ErrNoEnrollment):
		p = problem.Problem{Reason: "totp-enrollment-expired", Status: http.StatusConflict,
			Title: "Set-up expired", Detail: "The two-factor set-up has expired or was restarted elsewhere. Start again."}
	case errors.Is(err, ErrInvalidCredentials):
		p = problem.Problem{Reason: "login-failed", Status: http.StatusUnauthorized,
			Title: "Login failed", Detail: "The login name or the password is not correct."}
	case errors.Is(err, ErrBusy):
		retry = 2
		p = problem.Problem{Reason: "login-busy", Status: http.StatusServiceUnavailable,
			Title: "Too busy", Detail: "Too many logins are in progress. Try again in a moment."}
	case errors.As(err, &pe) && pe.Rule == RuleUnverified:
		retry = 5
		p = problem.Problem{Reason: "breach-check-unavailable", Status: http.StatusServiceUnavailable,
			Title: "Password check unavailable", Detail: pe.Error()}
	case errors.As(err, &pe):
		p = problem.Problem{Reason: "password-policy", Status: http.StatusUnprocessableEntity,
			Title: "Choose another password", Detail: pe.Error(), Extra: map[string]any{"rule": string(pe.Rule)}}
		if pe.Limit > 0 {
			p.Extra["limit"] = pe.Limit
		}
	case errors.As(err, &ie):
		p = problem.Problem{Reason: "invalid-" + ie.Field, Status: http.StatusUnprocessableEntity,
			Title: "Invalid " + ie.Field, Detail: ie.Reason}
	case errors.As(err, &tk):
		reason := "email-taken"
		if !tk.Email {
			reason = "username-taken"
		}
		p = problem.Problem{Reason: reason, Status: http.StatusConflict, Title: "Already registered",
			Detail: tk.Error()[len("users: "):], Extra: map[string]any{"email_taken": tk.Email, "username_taken": tk.Username}}
	case errors.Is(err, ErrConflict):
		p = problem.Problem{Reason: "account-changed", Status: http.StatusConflict,
			Title: "Account changed", Detail: "The account was changed at the same time. Reload and try again."}
	case errors.Is(err, ErrNotFound):
		p = problem.Problem{Reason: "account-not-found", Status: http.StatusNotFound, Title: "No such account"}
	case errors.Is(err, ErrUnavailable):
		retry = 1
		p = problem.Problem{Reason: "account-storage-unavailable", Status: http.StatusServiceUnavailable,
			Title: "Temporarily unavailable", Detail: "Accounts cannot be reached right now. Try again in a moment."}
	default:
		p = problem.Problem{Status: http.StatusInternalServerError, Title: "Internal error"}
	}
	if retry > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(retry))
	}
	problem.Write(w, r, p)
}
