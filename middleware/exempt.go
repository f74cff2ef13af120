package middleware

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/alexedwards/scs/v2"

	"github.com/dynaguard/dynaguard/internal/authctx"
)

// checkConfig refuses the combinations of components that would leave an
// unsafe request unguarded, and settles which branch serves which routes:
//
//	Nonces and Idempotency   pages get nonces, APIPrefix gets keys (the full stack)
//	Idempotency nil          every route is a page (APIPrefix and PublicAPI refused)
//	Nonces nil               every route is an API route (APIPrefix must be "/" or unset)
//	both nil                 refused: nothing would guard unsafe requests
//	Users nil                API routes need PublicAPI; the stack names the session itself
//	Sessions nil             only without Users
func checkConfig(cfg *Config) error {
	switch {
	case cfg.Nonces == nil && cfg.Idempotency == nil:
		return errors.New("middleware: Config.Nonces or Config.Idempotency is required: without either, " +
			"nothing guards unsafe requests against forgery and replay")
	case cfg.Idempotency == nil && (cfg.APIPrefix != "" || cfg.PublicAPI):
		return errors.New("middleware: Config.APIPrefix and PublicAPI need Config.Idempotency: " +
			"API routes are guarded by Idempotency-Key; without it every route gets nonces")
	case cfg.Nonces == nil && cfg.APIPrefix != "" && cfg.APIPrefix != "/":
		return fmt.Errorf("middleware: Config.Nonces is required when APIPrefix is %q: unsafe requests "+
			"outside it would have no guard; for an API-only service leave APIPrefix unset (every route "+
			"is then an API route)", cfg.APIPrefix)
	case cfg.Users == nil && cfg.Idempotency != nil && !cfg.PublicAPI:
		return errors.New("middleware: Config.Users is required for API routes that need a logged-in user; " +
			"set PublicAPI (with an idempotency Scope that attributes anonymous clients) to serve them without one")
	case cfg.Sessions == nil && cfg.Users != nil:
		return errors.New("middleware: Config.Sessions is required with Config.Users")
	}
	if cfg.Nonces == nil {
		cfg.APIPrefix = "/"
	}
	if cfg.Idempotency == nil {
		cfg.APIPrefix = "/api/" // unused: both branches are the nonce branch
	}
	for _, p := range cfg.Exempt {
		if err := checkExemptPath(p); err != nil {
			return err
		}
	}
	return nil
}

// checkExemptPath accepts an exact path or a subtree ending in "/", in the
// escaped form requests carry, without anything that could make it match
// a request that a router serves under another path.
func checkExemptPath(p string) error {
	bad := ""
	switch {
	case !strings.HasPrefix(p, "/"):
		bad = "does not start with /"
	case p == "/":
		bad = "would exempt every route"
	case strings.ContainsAny(p, "?#%\\") || strings.Contains(p, "//"):
		bad = "contains ?, #, %, \\ or //"
	case hasDotSegment(p):
		bad = "has a . or .. segment"
	}
	if bad != "" {
		return fmt.Errorf("middleware: Config.Exempt entry %q %s", p, bad)
	}
	return nil
}

func hasDotSegment(p string) bool {
	for _, seg := range strings.Split(p, "/") {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

// exempter decides once per request whether the route is exempt; nil when
// the Config exempts nothing.
func exempter(cfg Config) func(*http.Request) bool {
	if len(cfg.Exempt) == 0 && cfg.ExemptFunc == nil {
		return nil
	}
	paths := append([]string(nil), cfg.Exempt...)
	fn := cfg.ExemptFunc
	return func(r *http.Request) bool {
		// A path a router might clean, redirect or decode into another
		// route is never exempt: the guard then applies, and at worst a
		// legitimate caller with an odd path is refused.
		if !strings.HasPrefix(r.URL.Path, "/") || strings.Contains(r.URL.Path, "//") || hasDotSegment(r.URL.Path) {
			return false
		}
		ep := r.URL.EscapedPath()
		for _, p := range paths {
			if ep == p || (strings.HasSuffix(p, "/") && strings.HasPrefix(ep, p)) {
				return true
			}
		}
		return fn != nil && fn(r)
	}
}

type exemptKey struct{}

// crossOriginExcept is the cross-origin check for every request but the
// exempt ones, which it marks for Handler (the decision is made once).
func crossOriginExcept(co *http.CrossOriginProtection, exempt func(*http.Request) bool) Middleware {
	if exempt == nil {
		return co.Handler
	}
	return func(next http.Handler) http.Handler {
		checked := co.Handler(next)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if exempt(r) {
				next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), exemptKey{}, true)))
				return
			}
			checked.ServeHTTP(w, r)
		})
	}
}

// isExempt reports whether crossOriginExcept marked r as exempt.
func isExempt(r *http.Request) bool {
	v, _ := r.Context().Value(exemptKey{}).(bool)
	return v
}

// sessionsOf returns LoadAndSave, or nil without a session manager.
func sessionsOf(cfg Config) Middleware {
	if cfg.Sessions == nil {
		return nil
	}
	return cfg.Sessions.LoadAndSave
}

// identityOf returns users.LoadUser, or — with scs but without the users
// package — a middleware that names the request's session for nonce and
// idempotency, so that tokens are bound to the session and keys scoped by
// it, as they are with LoadUser.
func identityOf(cfg Config) Middleware {
	switch {
	case cfg.Users != nil:
		load := cfg.Users.LoadUser(cfg.Sessions)
		return func(next http.Handler) http.Handler {
			h := load(next)
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if isExempt(r) {
					// An exempt route gets "Authorization: Bearer"
					// untouched and unchecked (bearerOnAPIOnly): a
					// client that sends its stale access token with
					// every call can still refresh, log in and log
					// out, and no account is read for the header.
					r = r.WithContext(authctx.SkipBearer(r.Context()))
				}
				h.ServeHTTP(w, r)
			})
		}
	case cfg.Sessions != nil:
		return sessionIdentity(cfg.Sessions)
	}
	return nil
}

// sessionIdentity records, as the request's identity, a function naming its
// scs session by a hash of the token, never the token: the store's own ID
// (sessionstore's keyed hash) when the store has one, else SHA-256. It is
// asked each time, because a login renews the token during the request. No
// user is recorded: without the users package, nobody is "signed in" as far
// as dynaguard can tell. It costs no DynamoDB call.
func sessionIdentity(sm *scs.SessionManager) Middleware {
	idOf := func(tok string) string {
		sum := sha256.Sum256([]byte(tok))
		return base64.RawURLEncoding.EncodeToString(sum[:])
	}
	if st, ok := sm.Store.(interface{ ID(token string) string }); ok {
		idOf = st.ID
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx := r.Context()
			name := func() string {
				if tok := sm.Token(ctx); tok != "" {
					return idOf(tok)
				}
				return ""
			}
			next.ServeHTTP(w, r.WithContext(authctx.WithSession(ctx, name)))
		})
	}
}
