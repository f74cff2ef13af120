package app

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"unicode/utf8"

	jsonv2 "github.com/go-json-experiment/json"

	"github.com/dynaguard/dynaguard/middleware"
	"github.com/dynaguard/dynaguard/users"
)

// ---- API tokens ----
//
// API clients (a CLI, a mobile app) log in at POST /api/token and call the
// API with "Authorization: Bearer <access_token>"; the refresh token buys
// the next pair once (POST /api/token/refresh) and ends the client's
// family (POST /api/token/revoke). The three routes are exempt from the
// stack's logged-in check, nonce and Idempotency-Key (middleware.Config.Exempt):
// they authenticate each request themselves (a password, a refresh token),
// take JSON only (415 otherwise: a cross-site form cannot send
// application/json without a CORS preflight, which this app never grants),
// and repeating one is harmless — a repeated login is throttled like any,
// a repeated refresh is reuse (the family is revoked), a repeated revoke
// does nothing more.

// tokenPaths are the routes exempt from the stack's checks: these three
// exactly, not a subtree, so that a route added under /api/token/ later is
// guarded like any other.
var tokenPaths = []string{"/api/token", "/api/token/refresh", "/api/token/revoke"}

// maxTokenBody bounds a token request's body.
const maxTokenBody = 8 << 10

type tokenRequest struct {
	Login        *string `json:"login"`
	Password     *string `json:"password"`
	Code         *string `json:"code"`
	RefreshToken *string `json:"refresh_token"`
}

type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
}

// decodeToken reads one strict JSON object (the same decoder as the
// transfers) with the members allowed; a refused body has been answered.
func decodeTokenRequest(w http.ResponseWriter, r *http.Request, allowed ...string) (tokenRequest, bool) {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		badRequest(w, r, http.StatusUnsupportedMediaType, "token-content-type", "Send the request as JSON",
			"Use Content-Type: application/json.")
		return tokenRequest{}, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxTokenBody))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		badRequest(w, r, http.StatusRequestEntityTooLarge, "body-too-large", "Request body too large",
			"The body is larger than "+strconv.Itoa(maxTokenBody)+" bytes.")
		return tokenRequest{}, false
	case err != nil:
		// The client stopped sending, or sent a broken chunked body.
		badRequest(w, r, http.StatusBadRequest, "body-unreadable", "Request body unreadable",
			"The request body could not be read. Send it again.")
		return tokenRequest{}, false
	}
	var req tokenRequest
	msg := ""
	if !utf8.Valid(body) {
		msg = "The body is not valid UTF-8."
	} else if err := jsonv2.Unmarshal(body, &req, jsonv2.RejectUnknownMembers(true)); err != nil {
		msg = "The body must be exactly one JSON object with string members."
	}
	set := map[string]bool{"login": req.Login != nil, "password": req.Password != nil, "code": req.Code != nil, "refresh_token": req.RefreshToken != nil}
	n := 0
	for _, name := range allowed {
		if set[name] {
			n++
		}
	}
	count := 0
	for _, v := range set {
		if v {
			count++
		}
	}
	if msg == "" && count != n {
		msg = "Unexpected member in the body."
	}
	if msg != "" {
		badRequest(w, r, http.StatusBadRequest, "token-request-invalid", "The request is not valid", msg)
		return tokenRequest{}, false
	}
	return req, true
}

// decodeRefreshRequest reads the body of refresh and revoke: exactly
// {"refresh_token"}. Without it the request is malformed (400, RFC 6749
// §5.2 invalid_request), not a token that was refused; any well-formed
// body with an unknown token still gets revoke's 204.
func decodeRefreshRequest(w http.ResponseWriter, r *http.Request) (tokenRequest, bool) {
	req, ok := decodeTokenRequest(w, r, "refresh_token")
	if ok && req.RefreshToken == nil {
		badRequest(w, r, http.StatusBadRequest, "token-request-invalid", "The request is not valid", `"refresh_token" is required.`)
		return tokenRequest{}, false
	}
	return req, ok
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func writeTokens(w http.ResponseWriter, p *users.APITokens) {
	w.Header().Set("Pragma", "no-cache") // RFC 6749 §5.1, with writeJSON's Cache-Control: no-store
	writeJSON(w, http.StatusOK, tokenResponse{AccessToken: p.AccessToken, RefreshToken: p.RefreshToken,
		TokenType: "Bearer", ExpiresIn: int(p.ExpiresIn.Seconds())})
}

// apiToken is POST /api/token: {"login", "password"[, "code"]} → a pair.
func (a *App) apiToken(w http.ResponseWriter, r *http.Request) {
	req, ok := decodeTokenRequest(w, r, "login", "password", "code")
	if !ok {
		return
	}
	if req.Login == nil || req.Password == nil {
		badRequest(w, r, http.StatusBadRequest, "token-request-invalid", "The request is not valid", `Both "login" and "password" are required.`)
		return
	}
	p, err := a.users.IssueAPITokens(r.Context(), users.APILogin{Login: *req.Login, Password: *req.Password, Code: str(req.Code), Client: middleware.Client(r)})
	if err != nil {
		users.WriteError(w, r, err)
		return
	}
	writeTokens(w, p)
}

// apiTokenRefresh is POST /api/token/refresh: {"refresh_token"} → a new pair.
func (a *App) apiTokenRefresh(w http.ResponseWriter, r *http.Request) {
	req, ok := decodeRefreshRequest(w, r)
	if !ok {
		return
	}
	p, err := a.users.RefreshAPITokens(r.Context(), str(req.RefreshToken), middleware.Client(r))
	if err != nil {
		users.WriteError(w, r, err)
		return
	}
	writeTokens(w, p)
}

// apiTokenRevoke is POST /api/token/revoke: {"refresh_token"} → 204, for
// any token (RFC 7009 §2.2: no answer about tokens it did not issue).
func (a *App) apiTokenRevoke(w http.ResponseWriter, r *http.Request) {
	req, ok := decodeRefreshRequest(w, r)
	if !ok {
		return
	}
	if err := a.users.RevokeAPIToken(r.Context(), str(req.RefreshToken), middleware.Client(r)); err != nil {
		users.WriteError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

// revokeAPIClient is POST /account/sessions/revoke-api: signs out one API
// client of the account (form field "id", as on the session rows).
func (a *App) revokeAPIClient(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	u, _ := users.FromContext(ctx)
	if err := a.users.RevokeAPIClient(ctx, u, r.PostFormValue("id"), middleware.Client(r)); err != nil {
		if errors.Is(err, users.ErrUnavailable) {
			a.log.ErrorContext(ctx, "app: revoking an API client failed", "err", err)
		}
		unavailable(w, r)
		return
	}
	a.setFlash(r, "ok", "The API client was signed out.")
	redirect(w, r, "/account/sessions")
}
