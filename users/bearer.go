package users

import (
	"errors"
	"net/http"
	"strings"

	"github.com/alexedwards/scs/v2"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/authctx"
	"github.com/dynaguard/dynaguard/internal/obs"
	"github.com/dynaguard/dynaguard/internal/problem"
)

// bearerToken returns the token of an "Authorization: Bearer" header (RFC
// 6750 §2.1; the scheme is case-insensitive). ok is true whenever the
// request names the Bearer scheme, even with an empty or malformed token,
// so that such a request is refused rather than treated as anonymous.
func bearerToken(r *http.Request) (string, bool) {
	h := r.Header.Values("Authorization")
	if len(h) == 0 {
		return "", false
	}
	for _, v := range h {
		scheme, tok, _ := strings.Cut(v, " ")
		if strings.EqualFold(scheme, "Bearer") {
			if len(h) > 1 {
				return "", true // several Authorization headers: refused
			}
			return strings.TrimSpace(tok), true
		}
	}
	return "", false
}

// LoadUser and RequireUser take a bearer access token of this package
// ("Authorization: Bearer dga_…") in place of the session. A request that
// carries the session cookie and any bearer token is refused (400): which
// identity should act is not guessed. A Bearer value without that prefix
// is not theirs: LoadUser leaves the request as it would be without it (an
// application's own route — a webhook behind middleware.Config.Exempt —
// may check it), and RequireUser refuses it with 401 invalid_token.
//
// loadBearer is LoadUser for a request with a bearer access token: the
// token's MAC and expiry are checked in memory, then the account is read —
// the one strongly consistent GetItem every authenticated request makes —
// and compared with the token: not disabled, same credential version and
// session epoch, and the token's family still listed. A refused token gets
// 401 with WWW-Authenticate: Bearer error="invalid_token" (RFC 6750 §3). No session is created or written:
// the request's identity names no session, and nothing is put in it.
func (s *Users) loadBearer(w http.ResponseWriter, r *http.Request, tok string) (*http.Request, bool) {
	ctx := r.Context()
	ip := authctx.ClientIP(ctx)
	now := s.now()
	c, why := s.verifyAccess(tok, now)
	if why != "" {
		s.event(ctx, dynaguard.EventBearerRefused, why, "", ip)
		writeInvalidBearer(w, r)
		return nil, false
	}
	u, err := s.st.getUser(ctx, c.uid)
	if err != nil {
		s.log.ErrorContext(ctx, "users: loading a bearer token's user failed", "err", err)
		s.event(ctx, dynaguard.EventStorageFailure, obs.StorageReason(err), c.uid, ip)
		WriteError(w, r, err)
		return nil, false
	}
	switch {
	case u == nil || u.Disabled || u.credVersion != c.cv || u.epoch != c.se:
		why = "credentials_changed"
	case !u.lists(c.fid, now):
		why = "revoked"
	}
	if why != "" {
		s.event(ctx, dynaguard.EventBearerRefused, why, c.uid, ip)
		writeInvalidBearer(w, r)
		return nil, false
	}
	l := &loaded{u: u, authAt: c.at, sessions: s.sessions, bearer: true}
	return r.WithContext(authctx.With(ctx, l)), true
}

var probInvalidBearer = problem.Problem{Reason: "invalid-token", Status: http.StatusUnauthorized,
	Title:  "Access token invalid",
	Detail: "The access token is malformed, expired or revoked. Refresh it, or log in again."}

var probAmbiguous = problem.Problem{Reason: "ambiguous-identity", Status: http.StatusBadRequest,
	Title:  "Two identities in one request",
	Detail: "The request carries both a session cookie and a bearer token. Send one of them."}

func writeInvalidBearer(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
	w.Header().Set("Cache-Control", "no-store")
	problem.Write(w, r, probInvalidBearer)
}

func writeAmbiguous(w http.ResponseWriter, r *http.Request) {
	problem.Write(w, r, probAmbiguous)
}

// writeAPITokenProblem answers the errors of API tokens (WriteError calls
// it first); false for any other error.
func writeAPITokenProblem(w http.ResponseWriter, r *http.Request, err error) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, ErrRefreshReused):
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		problem.Write(w, r, problem.Problem{Reason: "refresh-token-reused", Status: http.StatusUnauthorized,
			Title:  "Refresh token already used",
			Detail: "This refresh token was already used. Every token of this client is now revoked; log in again."})
	case errors.Is(err, ErrInvalidAPIToken):
		writeInvalidBearer(w, r)
	case errors.Is(err, ErrRefreshRotated):
		problem.Write(w, r, problem.Problem{Reason: "refresh-token-rotated", Status: http.StatusConflict,
			Title:  "Refresh already done",
			Detail: "A concurrent request has just rotated this refresh token. Use the tokens that request received."})
	default:
		return false
	}
	return true
}

// hasSessionCookie reports whether r carries sm's session cookie.
func (s *Users) hasSessionCookie(r *http.Request, sm *scs.SessionManager) bool {
	if sm == nil {
		return false
	}
	_, err := r.Cookie(sm.Cookie.Name)
	return err == nil
}
