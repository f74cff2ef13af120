package middleware

import (
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/alexedwards/scs/v2"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/idempotency"
	"github.com/dynaguard/dynaguard/internal/obs"
	"github.com/dynaguard/dynaguard/internal/problem"
	"github.com/dynaguard/dynaguard/nonce"
	"github.com/dynaguard/dynaguard/users"
)

// Config configures the ready-made Stack. The full stack has Sessions,
// Users, Nonces and Idempotency; components can be left out where that is
// safe, and New refuses the combinations that are not:
//
//	without Idempotency  every route is a page: unsafe requests need a nonce
//	without Nonces       every route is an API route (an API-only service)
//	without Users        API routes need PublicAPI; nonces are bound to, and
//	                     keys scoped by, the scs session, named by the stack
//	without Sessions     also without Users: nonces bind to the browser only
//
// The rest have safe defaults.
type Config struct {
	// Sessions is the scs session manager. Its Store should be a
	// *sessionstore.Store and its Codec sessionstore.Codec{} (the codec
	// is what lets unchanged sessions skip their write). If it kept scs's
	// default ErrorFunc (500), New sets one that answers 503 with
	// Retry-After, like every other storage failure.
	Sessions *scs.SessionManager
	// Users loads the logged-in user on every request.
	Users *users.Users
	// Nonces guards every unsafe request outside APIPrefix with a
	// single-use nonce whose purpose is the escaped request path. Its
	// Config.ErrorHandler answers refused forms (re-render them there).
	Nonces *nonce.Manager
	// Idempotency guards API routes; keys are required on POST and PATCH.
	Idempotency *idempotency.Guard
	// APIPrefix is the path prefix of API routes; default "/api/" ("/"
	// without Nonces).
	APIPrefix string
	// PublicAPI lets requests without a logged-in user reach API routes.
	// By default they are refused with 401 problem+json before an
	// idempotency key is claimed: an anonymous client must learn that it
	// is not logged in, not that its key cannot be scoped. With PublicAPI
	// the idempotency guard scopes keys by session, or by its own Scope.
	PublicAPI bool
	// Exempt lists the routes that authenticate their requests another
	// way — a webhook checked by its signature, an OAuth callback checked
	// by its state parameter — so that the stack does not refuse callers
	// that can carry no nonce or Idempotency-Key. Each entry is an exact
	// path ("/oauth/callback") or, ending in "/", a subtree
	// ("/webhooks/"), compared with the request's escaped path.
	//
	// Security: an exempt request skips http.CrossOriginProtection, the
	// nonce, the Idempotency-Key and the API routes' logged-in check. Any
	// web page can make a browser send it (a cross-site form post), and a
	// captured one can be replayed: the handler must authenticate each
	// request itself (a signature over the body with a timestamp, a
	// single-use state value) and make repeated ones harmless. Session
	// cookies with SameSite=Lax (scs's default) are not sent on
	// cross-site posts. Recover, SecurityHeaders, RealIP, the session and
	// users.LoadUser still run — LoadUser for the session only: an
	// "Authorization: Bearer" header reaches the handler untouched and
	// unchecked, so that a stale access token sent along cannot stop a
	// token endpoint from refreshing it; nonce.Token and nonce.Field do not (wrap
	// such a handler in Nonces.Handler if it renders a protected form). A
	// path with a "." or ".." segment or "//" is never exempt, so that no
	// router can clean it into another route.
	Exempt []string
	// ExemptFunc exempts, in addition to Exempt, the requests for which
	// it returns true — with the same consequences. It is called once per
	// request whose path is clean, before the session is loaded; it must
	// be cheap, and decide on the request line and headers only.
	ExemptFunc func(*http.Request) bool
	// Headers configures SecurityHeaders.
	Headers HeadersConfig
	// ClientIP configures RealIP (which proxies to believe).
	ClientIP ClientIPConfig
	// CrossOrigin refuses cross-origin unsafe requests (Sec-Fetch-Site /
	// Origin checks). Default http.NewCrossOriginProtection().
	CrossOrigin *http.CrossOriginProtection
	Logger      *slog.Logger
	// Events receives request.cross_origin_refused for each request the
	// default cross-origin check refuses (a CrossOrigin of the
	// application's own keeps its deny handler, and emits nothing). The
	// components emit their own events through their own Config.Events.
	Events *dynaguard.Events

	// MaxBodyBytes limits the body of every request with an unsafe method
	// (anything but GET, HEAD and OPTIONS) on API routes: a larger declared
	// body is refused with 413 before any DynamoDB call, a larger streamed
	// one fails the handler's read (http.MaxBytesReader). Keyed POST and
	// PATCH bodies are limited further by the idempotency Guard's own
	// MaxBodyBytes, and every other route's by the Nonces'. Default
	// nonce.DefaultMaxBodyBytes (10 MiB).
	MaxBodyBytes int64

	// Budget is the time each request may spend on DynamoDB work (see
	// Bound); default DefaultBudget (3 s). MaxInFlight bounds the requests
	// served at once; default 100 × Budget in seconds.
	Budget      time.Duration
	MaxInFlight int
}

// Stack is the documented order of dynaguard's middleware, ready to wrap a
// whole router.
type Stack struct {
	outer Middleware // Recover … users.LoadUser
	api   Middleware // idempotency keys, for routes under the API prefix
	pages Middleware // single-use nonces, for every other route
	pfx   string
	max   int64 // MaxBodyBytes of unsafe API requests
	// exempt: some routes are exempt (Config.Exempt, ExemptFunc); the
	// cross-origin check marks them.
	exempt bool
}

// New checks cfg and returns the stack.
func New(cfg Config) (*Stack, error) {
	if err := checkConfig(&cfg); err != nil {
		return nil, err
	}
	if cfg.APIPrefix == "" {
		cfg.APIPrefix = "/api/"
	}
	if cfg.CrossOrigin == nil {
		cfg.CrossOrigin = http.NewCrossOriginProtection()
		refuseCrossOrigin(cfg.CrossOrigin, obs.New(cfg.Events, "middleware", nil, cfg.Logger))
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = nonce.DefaultMaxBodyBytes
	}
	if cfg.MaxBodyBytes < 0 {
		return nil, errors.New("middleware: Config.MaxBodyBytes is negative")
	}
	exempt := exempter(cfg)
	adoptSessionErrors(cfg.Sessions, cfg.Logger)
	st := &Stack{
		outer: Chain(
			Recover(cfg.Logger),
			RealIP(cfg.ClientIP), // before SecurityHeaders, which asks it whether the client uses HTTPS
			SecurityHeaders(cfg.Headers),
			refuseMethods,
			Bound(BoundConfig{Budget: cfg.Budget, MaxInFlight: cfg.MaxInFlight, Events: withLogger(cfg.Events, cfg.Logger)}),
			crossOriginExcept(cfg.CrossOrigin, exempt),
			bearerOnAPIOnly(cfg.APIPrefix),
			sessionsOf(cfg),
			identityOf(cfg),
		),
		exempt: exempt != nil,
		pfx:    cfg.APIPrefix,
		max:    cfg.MaxBodyBytes,
	}
	// A component left out hands its routes to the other (checkConfig).
	switch {
	case cfg.Nonces == nil:
		st.api = apiChain(cfg)
		st.pages = st.api
	case cfg.Idempotency == nil:
		st.pages = cfg.Nonces.RequirePath
		st.api = st.pages
	default:
		st.api, st.pages = apiChain(cfg), cfg.Nonces.RequirePath
	}
	return st, nil
}

func apiChain(cfg Config) Middleware {
	if cfg.PublicAPI {
		return cfg.Idempotency.Require
	}
	return Chain(cfg.Users.RequireUser(cfg.Sessions), cfg.Idempotency.Require)
}

// Handler wraps next — a ServeMux, a chi or gorilla/mux router, or any
// handler — in the stack:
//
//	Recover                     a panic becomes a 500 page, never a stack trace
//	RealIP                      the client address and scheme, from trusted proxies only
//	SecurityHeaders             nosniff, Referrer-Policy, frame-ancestors, HSTS
//	                            TRACE and CONNECT refused (405)
//	Bound                       503 beyond MaxInFlight; the request's DynamoDB budget
//	http.CrossOriginProtection  cross-site unsafe requests refused before any work
//	scs LoadAndSave             the session: 1 consistent GetItem, 0–1 write
//	users.LoadUser              the user: 1 consistent GetItem; stale sessions end;
//	                            or, on API routes, a bearer access token instead of
//	                            the session (400 on pages, 400 with a session cookie)
//	  API routes (APIPrefix, matched on the escaped path; an encoded
//	  "/" or other escape inside the prefix is refused with 400; unsafe
//	  bodies limited to MaxBodyBytes):
//	                            a logged-in user (401 otherwise, unless PublicAPI),
//	                            then Idempotency-Key required on POST and PATCH
//	  every other route:        single-use nonce on unsafe methods, purpose =
//	                            escaped path, body limited to the Nonces' MaxBodyBytes
//	  Exempt routes:            neither, and no cross-origin check (see Config.Exempt)
//	next                        not started once the budget is spent (503)
//
// Cheap refusals come first: a cross-origin request never touches
// DynamoDB, and a forged nonce is refused in memory before its one write.
// The session is loaded before the user, and both before the nonce and the
// idempotency key, because those are bound to (or scoped by) who is asking.
func (s *Stack) Handler(next http.Handler) http.Handler {
	next = budgetGate(next)
	apiH, pages := s.api(next), s.pages(next)
	return s.outer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.exempt && isExempt(r) {
			next.ServeHTTP(w, r)
			return
		}
		// The branch is chosen on the escaped path, the form routers
		// match segments on. A path whose decoded form enters the API
		// prefix while its escaped form does not ("/api%2Facme/delete")
		// would take the page branch here and could still reach a route
		// of either kind: it is refused, not guessed at.
		api := strings.HasPrefix(r.URL.EscapedPath(), s.pfx)
		if api != strings.HasPrefix(r.URL.Path, s.pfx) {
			problem.Write(w, r, probAmbiguousPath)
			return
		}
		if api {
			if !safeMethod(r.Method) {
				if r.ContentLength > s.max {
					problem.Write(w, r, probBodyTooLarge)
					return
				}
				if r.Body != nil && r.Body != http.NoBody {
					r.Body = http.MaxBytesReader(w, r.Body, s.max)
				}
			}
			apiH.ServeHTTP(w, r)
			return
		}
		pages.ServeHTTP(w, r)
	}))
}

var probAmbiguousPath = problem.Problem{Reason: "path-ambiguous", Status: http.StatusBadRequest,
	Title:  "Ambiguous request path",
	Detail: "The request path encodes a character (such as \"/\") that changes which part of the site it addresses. Send the path without it."}

var probBodyTooLarge = problem.Problem{Reason: "body-too-large", Status: http.StatusRequestEntityTooLarge,
	Title:  "Request body too large",
	Detail: "The request body exceeds the size this API accepts."}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

var probMethodRefused = problem.Problem{Reason: "method-not-allowed", Status: http.StatusMethodNotAllowed,
	Title:  "Method not allowed",
	Detail: "TRACE and CONNECT are not served."}

// refuseMethods answers TRACE and CONNECT with 405 before anything else runs:
// TRACE echoes the request (cookies included) and counts as "safe", so a
// check that skips safe methods would wave it through; CONNECT has no place
// in an application. Neither reaches a handler, a nonce or a key.
func refuseMethods(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodTrace || r.Method == http.MethodConnect {
			w.Header().Set("Allow", "GET, HEAD, OPTIONS, POST, PUT, PATCH, DELETE")
			problem.Write(w, r, probMethodRefused)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Client describes the request's client for users.Login and friends: the
// address RealIP resolved and the User-Agent.
func Client(r *http.Request) users.Client {
	return users.Client{IP: ClientIP(r), UserAgent: r.UserAgent()}
}
