package app

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/dynaguard/dynaguard/middleware"
	"github.com/dynaguard/dynaguard/users"
)

// Passkeys: sign-in with a passkey (a button, and the browser's autofill),
// a passkey instead of the code on the second step, a passkey as the
// step-up proof of a sensitive form, and the Passkeys section of the
// account page.
//
// Each ceremony is two requests. The options come from a GET that writes
// nothing — the challenge is a MACed token bound to the browser, session
// and account, and package users sets the short-lived cookie it is bound
// to — so it needs no nonce, and fetch cannot read it from another origin.
// The browser's answer then goes back as an ordinary form post
// (static/passkeys.js puts it in a hidden field and submits the form), with
// the form's single-use nonce like every other form: a refusal is a
// readable page, Back and submit again is refused like any form sent
// twice, and the WebAuthn response itself is accepted at most once (the
// challenge's marker). The ceremonies need JavaScript (the WebAuthn API has
// no form equivalent); without it the passkey buttons stay hidden, and
// renaming and removing a passkey still work.

// passkeyConfig is Config.Passkeys, or — when it names no RP ID — the one
// BaseURL implies: its host as the RP ID and BaseURL as the one origin. In
// development a loopback address becomes localhost: browsers offer passkeys
// to http://localhost (a secure context) but never to an IP address, which
// is no valid RP ID. Without either, passkeys are off.
func passkeyConfig(cfg Config) users.PasskeyConfig {
	p := cfg.Passkeys
	if cfg.Dev {
		p.Insecure = true // cookies over plain HTTP, as the session's
	}
	if p.RPID != "" || len(p.Origins) > 0 || cfg.BaseURL == "" {
		return p
	}
	u, err := url.Parse(strings.TrimRight(cfg.BaseURL, "/"))
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return p
	}
	host := strings.ToLower(u.Hostname())
	if host == "" {
		return p // "http://:8080": no host to name
	}
	if ip := net.ParseIP(host); ip != nil {
		if !cfg.Dev || !ip.IsLoopback() {
			return p // off: no RP ID for an address
		}
		host = "localhost"
	}
	origin := u.Scheme + "://" + host
	if port := u.Port(); port != "" {
		origin += ":" + port
	}
	p.RPID, p.Origins = host, []string{origin}
	if p.RPName == "" {
		p.RPName = "dynaguard example"
	}
	return p
}

// passkeysEnabled reports whether p turns passkeys on, and logs where
// they work: in development the app may listen on 127.0.0.1 while a
// browser offers passkeys only at localhost.
func (a *App) passkeysEnabled(p users.PasskeyConfig) bool {
	if p.RPID == "" {
		a.log.Info("app: passkeys are off (no Config.Passkeys, and no base URL with a host name)")
		return false
	}
	a.log.Info("app: passkeys on", "rp_id", p.RPID, "open", strings.Join(p.Origins, " "))
	return true
}

// passkeyRoutes registers the passkey routes (page registers the page a
// form is rendered on again when its nonce is refused).
func (a *App) passkeyRoutes(mux *http.ServeMux, page func(string, formPage)) {
	if !a.passkeysOn {
		return
	}
	mux.HandleFunc("GET /login/passkey/options", a.passkeyLoginOptions)
	mux.HandleFunc("POST /login/passkey", a.passkeyLogin)
	page("/login/passkey", formPage{render: a.loginPage})

	mux.HandleFunc("GET /login/totp/passkey/options", a.passkeySecondFactorOptions)
	mux.HandleFunc("POST /login/totp/passkey", a.passkeySecondFactor)
	page("/login/totp/passkey", formPage{render: a.loginTOTPPage})

	mux.Handle("GET /account/passkeys/options", a.requireAPIUser(a.passkeyCreateOptions))
	mux.Handle("GET /account/passkeys/proof/options", a.requireAPIUser(a.passkeyProofOptions))
	mux.Handle("POST /account/passkeys", a.requireUser(a.passkeyAdd))
	mux.Handle("POST /account/passkeys/rename", a.requireUser(a.passkeyRename))
	mux.Handle("POST /account/passkeys/remove", a.requireUser(a.passkeyRemove))
	page("/account/passkeys", formPage{render: a.accountPage, user: true})
	page("/account/passkeys/rename", formPage{render: a.accountPage, user: true})
	page("/account/passkeys/remove", formPage{render: a.accountPage, user: true})
}

// Session key: the pending two-step login's account has a passkey, so the
// second step offers it (known from the password step's read: no call).
const sessPendingPasskey = "app.login.passkey"

// ---- options (GET, JSON) ----

// writeOptions answers a ceremony's options, or its error as problem+json.
func writeOptions(w http.ResponseWriter, r *http.Request, opts []byte, err error) {
	w.Header().Set("Cache-Control", "no-store")
	if err != nil {
		users.WriteError(w, r, passkeyProblem(err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(opts)
}

// passkeyProblem maps the one error users.WriteError does not know,
// ErrNoBrowserBinding — never expected, every route is behind
// users.LoadUser — to a refusal that changed nothing (503).
func passkeyProblem(err error) error {
	if errors.Is(err, users.ErrNoBrowserBinding) {
		return errors.Join(users.ErrUnavailable, err)
	}
	return err
}

func (a *App) passkeyLoginOptions(w http.ResponseWriter, r *http.Request) {
	opts, err := a.users.BeginPasskeyLogin(r.Context(), a.sm)
	writeOptions(w, r, opts, err)
}

func (a *App) passkeySecondFactorOptions(w http.ResponseWriter, r *http.Request) {
	opts, err := a.users.BeginPasskeySecondFactor(r.Context(), a.sm)
	writeOptions(w, r, opts, err)
}

func (a *App) passkeyCreateOptions(w http.ResponseWriter, r *http.Request) {
	u, _ := users.FromContext(r.Context())
	opts, err := a.users.BeginPasskeyRegistration(r.Context(), a.sm, u)
	writeOptions(w, r, opts, err)
}

func (a *App) passkeyProofOptions(w http.ResponseWriter, r *http.Request) {
	u, _ := users.FromContext(r.Context())
	opts, err := a.users.BeginPasskeyProof(r.Context(), a.sm, u)
	writeOptions(w, r, opts, err)
}

// ---- sign-in ----

// passkeyResponse is the browser's WebAuthn response a form carries in
// field, or false (with the page's status and alert) when there is none:
// the form was sent without JavaScript.
func passkeyResponse(r *http.Request, field string, v *view) ([]byte, bool) {
	resp := r.PostFormValue(field)
	if resp == "" {
		v.status = http.StatusBadRequest
		v.Alert = &alert{Title: "No passkey was sent",
			Detail: "Using a passkey needs JavaScript in this browser. Nothing was changed."}
		return nil, false
	}
	return []byte(resp), true
}

// passkeyLogin signs in with a discoverable passkey: no login name, no
// password. Refusals are a 401 page, throttled attempts 429, as for a
// password.
func (a *App) passkeyLogin(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	v := a.newView(r, "")
	v.Form = keptInput(r)
	resp, ok := passkeyResponse(r, "credential", v)
	if !ok {
		a.loginPage(w, r, v)
		return
	}
	if _, err := a.users.FinishPasskeyLogin(ctx, a.sm, resp, middleware.Client(r)); err != nil {
		v.status, v.Alert = passkeyAlert(w, err)
		a.loginPage(w, r, v)
		return
	}
	redirect(w, r, orDefault(v.Next(), "/account"))
}

// passkeySecondFactor finishes a two-step login with a passkey of the
// account instead of a code.
func (a *App) passkeySecondFactor(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	v := a.newView(r, "")
	v.Form = keptInput(r)
	resp, ok := passkeyResponse(r, "credential", v)
	if !ok {
		a.loginTOTPPage(w, r, v)
		return
	}
	_, err := a.users.CompleteLoginWithPasskey(ctx, a.sm, resp, middleware.Client(r))
	switch {
	case err == nil:
		a.sm.Remove(ctx, sessPendingPasskey)
		redirect(w, r, orDefault(v.Next(), "/account"))
	case errors.Is(err, users.ErrNoPendingLogin):
		a.setFlash(r, "info", "Your login timed out. Enter your password again.")
		redirect(w, r, "/login")
	default:
		v.status, v.Alert = passkeyAlert(w, err)
		a.loginTOTPPage(w, r, v)
	}
}

// ---- the account's passkeys ----

// passkeysData is the Passkeys section of the account page.
type passkeysData struct {
	List []users.Passkey
	// Unavailable: the list could not be read; the rest of the page works.
	Unavailable bool
}

// passkeysOf lists u's passkeys for the account page: one BatchGetItem,
// and no call at all for an account without passkeys.
func (a *App) passkeysOf(ctx context.Context, u *users.User) passkeysData {
	if !a.passkeysOn || u == nil || u.Passkeys == 0 {
		return passkeysData{}
	}
	list, err := a.users.Passkeys(ctx, u)
	if err != nil {
		a.log.WarnContext(ctx, "app: listing passkeys failed", "user", u.ID, "err", err)
		return passkeysData{Unavailable: true}
	}
	return passkeysData{List: list}
}

// passkeyAdd registers the passkey the browser just made. It needs the
// step-up proof (password, and code with TOTP on), so that a copied
// session cookie cannot plant the thief's own passkey on the account.
func (a *App) passkeyAdd(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	u, _ := users.FromContext(ctx)
	v := a.newView(r, "")
	v.Form = keptInput(r)
	resp, ok := passkeyResponse(r, "credential", v)
	if !ok {
		a.accountPage(w, r, v)
		return
	}
	name := strings.TrimSpace(r.PostFormValue("name"))
	pk, err := a.users.FinishPasskeyRegistration(ctx, a.sm, u, proofOf(r), resp, name, middleware.Client(r))
	if err != nil {
		v.status, v.Alert = passkeyAlert(w, err)
		proofErrors(v, err, "password")
		a.accountPage(w, r, v)
		return
	}
	label := "A passkey"
	if pk != nil && pk.Name != "" {
		label = "The passkey " + pk.Name
	}
	a.setFlash(r, "ok", label+" was added. You can now sign in with it.")
	redirect(w, r, "/account#passkeys")
}

// passkeyRename relabels a passkey. A label changes nothing about who can
// sign in, so it needs no proof (users.RenamePasskey).
func (a *App) passkeyRename(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	u, _ := users.FromContext(ctx)
	err := a.users.RenamePasskey(ctx, u, r.PostFormValue("id"), strings.TrimSpace(r.PostFormValue("name")))
	if err != nil {
		v := a.newView(r, "")
		v.status, v.Alert = passkeyAlert(w, err)
		a.accountPage(w, r, v)
		return
	}
	a.setFlash(r, "ok", "The passkey was renamed.")
	redirect(w, r, "/account#passkeys")
}

// passkeyRemove removes a passkey; it needs the step-up proof — the
// password (and code), or a passkey of the account.
func (a *App) passkeyRemove(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	u, _ := users.FromContext(ctx)
	err := a.users.RemovePasskey(ctx, a.sm, u, proofOf(r), r.PostFormValue("id"), middleware.Client(r))
	if err != nil {
		v := a.newView(r, "")
		v.status, v.Alert = passkeyAlert(w, err)
		a.accountPage(w, r, v)
		return
	}
	a.setFlash(r, "ok", "The passkey was removed. It can no longer sign in to this account.")
	redirect(w, r, "/account#passkeys")
}

// named is ` "name"` for a passkey's label in a message, or nothing.
func named(name string) string {
	if name == "" {
		return ""
	}
	return ` "` + name + `"`
}

// proofErrors marks the proof fields of a refused step-up.
func proofErrors(v *view, err error, passwordField string) {
	switch {
	case errors.Is(err, users.ErrThrottled), errors.Is(err, users.ErrInvalidPasskey):
	case errors.Is(err, users.ErrInvalidCredentials):
		v.Errors[passwordField] = "Not correct."
	case errors.Is(err, users.ErrInvalidCode):
		v.Errors["code"] = "Not correct, or already used."
	}
}

// passkeyAlert is usersAlert with the errors only passkey pages meet. (A
// refused passkey — usersAlert's — never says which check failed: that is
// in the security event and the log.)
func passkeyAlert(w http.ResponseWriter, err error) (int, *alert) {
	switch {
	case errors.Is(err, users.ErrPasskeyTaken): // before usersAlert's ErrInvalidPasskey, which it matches too
		return http.StatusConflict, &alert{Title: "Passkey already registered",
			Detail: "This passkey is already registered. Nothing was changed."}
	case errors.Is(err, users.ErrTooManyPasskeys):
		return http.StatusConflict, &alert{Title: "Too many passkeys",
			Detail: "This account has as many passkeys as it may have. Remove one first."}
	case errors.Is(err, users.ErrPasskeyNotFound):
		return http.StatusNotFound, &alert{Title: "No such passkey",
			Detail: "That passkey is not on your account (any more). Nothing was changed."}
	case errors.Is(err, users.ErrPasskeysDisabled):
		return http.StatusNotFound, &alert{Title: "Passkeys are not available", Detail: "This site does not offer passkeys."}
	}
	return usersAlert(w, passkeyProblem(err))
}
