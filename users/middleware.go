package users

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/alexedwards/scs/v2"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/authctx"
	"github.com/dynaguard/dynaguard/internal/obs"
	"github.com/dynaguard/dynaguard/internal/problem"
)

// loaded is what LoadUser found for a request (u == nil: not logged in). It
// is also the request's authctx.Identity, which nonce and idempotency read:
// one context value carries both.
type loaded struct {
	u      *User
	authAt time.Time
	// sm and sessionCtx name the current session on demand (SessionID);
	// sessionCtx holds scs's session data, whose token changes when a login
	// renews it.
	sm         *scs.SessionManager
	sessionCtx context.Context
	sessions   SessionRegistry
	// req and w are the request and where its response goes, for the
	// device cookie a login reads and sets (deviceOf, device.go).
	req *http.Request
	w   http.ResponseWriter
	// bearer: the user was authenticated by an access token, not by the
	// session (sm is then nil: no session is named, read or written).
	bearer bool
}

func (l *loaded) UserID() string {
	if l.u == nil {
		return ""
	}
	return l.u.ID
}

func (l *loaded) SessionID() string {
	if l.sm == nil {
		return ""
	}
	if t := l.sm.Token(l.sessionCtx); t != "" {
		return l.sessions.ID(t)
	}
	return ""
}

func loadedFrom(ctx context.Context) (*loaded, bool) {
	l, ok := authctx.From(ctx).(*loaded)
	return l, ok
}

// FromContext returns the logged-in user that LoadUser or RequireUser put in
// the request's context.
func FromContext(ctx context.Context) (*User, bool) {
	l, ok := loadedFrom(ctx)
	if !ok || l.u == nil {
		return nil, false
	}
	return l.u, true
}

// AuthTime returns when the logged-in user last authenticated in this
// session — the password, and for an account with TOTP the code too (zero
// when nobody is logged in). Only a checked credential moves it: a login
// (Login, CompleteLogin) or an operation that took a Proof. LogoutOthers
// and the other token renewals keep it; Config.AbsoluteLifetime counts
// from it.
func AuthTime(ctx context.Context) time.Time {
	l, ok := loadedFrom(ctx)
	if !ok || l.u == nil {
		return time.Time{}
	}
	return l.authAt
}

// LoadUser returns middleware that loads the logged-in user, if any, and
// puts it in the request context (FromContext; also authctx, so nonce and
// idempotency can bind to the user and session). It must run inside
// sm.LoadAndSave.
//
// It costs one strongly consistent GetItem of the account per request with
// a logged-in session, and no write: together with the session's own read,
// an authenticated GET is two reads. The session is rejected — destroyed on
// the server and the request treated as anonymous — when the account is
// gone or disabled, or when the session's auth hash no longer matches the
// account's credential version and session epoch (the password changed, or
// the user logged out everywhere), or when its last credential check (the
// login, or a step-up with a Proof) is older than Config.AbsoluteLifetime —
// renewals that checked no credential (LogoutOthers, RenewToken) do not
// move that time. If the account cannot be read the
// request is answered 503: it is never let through as the user, nor quietly
// downgraded to anonymous.
//
// A request with "Authorization: Bearer" and an access token of
// IssueAPITokens is authenticated by the token instead (see loadBearer in
// bearer.go): the same one GetItem, no session read or written, 401 with
// WWW-Authenticate for a refused token, 400 when the session cookie comes
// with it. On a route exempt from middleware.Stack (the token endpoints)
// the header is left to the handler: no bearer check, no call.
func (s *Users) LoadUser(sm *scs.SessionManager) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r, ok := s.load(w, r, sm)
			if ok {
				next.ServeHTTP(w, r)
			}
		})
	}
}

// load runs LoadUser's work once per request; ok is false when it answered
// the request itself.
func (s *Users) load(w http.ResponseWriter, r *http.Request, sm *scs.SessionManager) (*http.Request, bool) {
	ctx := r.Context()
	if _, done := loadedFrom(ctx); done {
		return r, true
	}
	if tok, ok := bearerToken(r); ok && !authctx.BearerSkipped(ctx) {
		if s.hasSessionCookie(r, sm) {
			s.event(ctx, dynaguard.EventBearerRefused, "ambiguous", "", authctx.ClientIP(ctx))
			writeAmbiguous(w, r)
			return nil, false
		}
		if strings.HasPrefix(tok, accessPrefix) {
			return s.loadBearer(w, r, tok)
		}
	}
	l := &loaded{sm: sm, sessionCtx: ctx, sessions: s.sessions, req: r, w: w}
	if lg, ok := getLogin(ctx, sm, sessionAuth); ok {
		uid := lg.userID
		u, err := s.st.getUser(ctx, uid)
		if err != nil {
			s.log.ErrorContext(ctx, "users: loading the session's user failed", "err", err)
			s.event(ctx, dynaguard.EventStorageFailure, obs.StorageReason(err), uid, noAddr)
			WriteError(w, r, err)
			return nil, false
		}
		expired := s.now().Sub(time.Unix(lg.at, 0)) > s.lifetime
		switch {
		case u == nil, u.Disabled, !s.authHashValid(u, lg.hash), expired:
			if expired {
				s.log.InfoContext(ctx, "users: session ended: its last credential check is older than the absolute lifetime", "user", uid)
				s.event(ctx, dynaguard.EventSessionExpiredAbsolute, "", uid, noAddr)
			} else {
				s.log.InfoContext(ctx, "users: session rejected: account gone, disabled, or credentials changed since login", "user", uid)
				s.event(ctx, dynaguard.EventSessionRefusedAfterLogout, "credentials_changed", uid, noAddr)
			}
			if err := sm.Destroy(ctx); err != nil {
				WriteError(w, r, unavailable("destroy session", err))
				return nil, false
			}
		default:
			l.u = u
			l.authAt = time.Unix(lg.at, 0)
		}
	}
	return r.WithContext(authctx.With(ctx, l)), true
}

// RequireUser returns middleware that lets only logged-in users through
// (loading the user like LoadUser, unless LoadUser already ran). Others
// get a 303 redirect to Config.LoginURL when they are a browser navigating
// (with the requested path in "next" for GET and HEAD), or a 401
// problem+json otherwise.
func (s *Users) RequireUser(sm *scs.SessionManager) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r, ok := s.load(w, r, sm)
			if !ok {
				return
			}
			if _, in := FromContext(r.Context()); !in {
				if _, bearer := bearerToken(r); bearer {
					// A bearer token that is not one of ours (LoadUser
					// leaves those to the application's other routes).
					writeInvalidBearer(w, r)
					return
				}
				s.deny(w, r, false)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// RequireRecentAuth returns middleware for an application's own sensitive
// pages (deleting the account, showing billing details): the user must be
// logged in and have checked a credential within maxAge in this session.
// It is no substitute for a Proof, which the operations of this package that
// could hand the account over take themselves: whoever holds a copy of a
// recent session passes it. Others are answered like RequireUser's, with "reauth=1" in the
// login URL, or a 401 problem "reauthentication-required". After the user
// re-enters their password (Authenticate), Login refreshes the time (with
// TOTP, CompleteLogin does, once the code is entered too).
func (s *Users) RequireRecentAuth(sm *scs.SessionManager, maxAge time.Duration) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r, ok := s.load(w, r, sm)
			if !ok {
				return
			}
			if _, in := FromContext(r.Context()); !in {
				s.deny(w, r, false)
				return
			}
			if !s.Recent(r.Context(), maxAge) {
				s.deny(w, r, true)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// Recent reports whether the logged-in user authenticated within maxAge.
func (s *Users) Recent(ctx context.Context, maxAge time.Duration) bool {
	at := AuthTime(ctx)
	if at.IsZero() {
		return false
	}
	age := s.now().Sub(at)
	return age >= -time.Minute && age <= maxAge
}

func (s *Users) deny(w http.ResponseWriter, r *http.Request, reauth bool) {
	if problem.WantsHTML(r) {
		q := url.Values{}
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			q.Set("next", r.URL.RequestURI())
		}
		if reauth {
			q.Set("reauth", "1")
		}
		target := s.loginURL
		if len(q) > 0 {
			sep := "?"
			if strings.Contains(target, "?") {
				sep = "&"
			}
			target += sep + q.Encode()
		}
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, target, http.StatusSeeOther)
		return
	}
	if reauth {
		problem.Write(w, r, problem.Problem{Reason: "reauthentication-required", Status: http.StatusUnauthorized,
			Title: "Please confirm your password", Detail: "This action needs a recent login. Enter your password again, then retry."})
		return
	}
	problem.Write(w, r, problem.Problem{Reason: "authentication-required", Status: http.StatusUnauthorized,
		Title: "Please log in", Detail: "This page needs a logged-in user."})
}

// SafeNext returns next if it is a path on this site ("/..."), and "/"
// otherwise — use it when redirecting after login to the "next" parameter
// RequireUser adds, so it cannot send users to another site.
func SafeNext(next string) string {
	if next == "" || next[0] != '/' || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") ||
		strings.ContainsAny(next, "\\\r\n\t") {
		return "/"
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		return "/"
	}
	return next
}
