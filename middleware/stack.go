package middleware

import (
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/alexedwards/scs/v2"

	"github.com/dynaguard/dynaguard/idempotency"
	"github.com/dynaguard/dynaguard/nonce"
	"github.com/dynaguard/dynaguard/users"
)

// Config configures the ready-made Stack. Sessions, Users, Nonces and
// Idempotency are required; the rest have safe defaults.
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
	// single-use nonce whose purpose is the request path. Its
	// Config.ErrorHandler answers refused forms (re-render them there).
	Nonces *nonce.Manager
	// Idempotency guards API routes; keys are required on POST and PATCH.
	Idempotency *idempotency.Guard
	// APIPrefix is the path prefix of API routes; default "/api/".
	APIPrefix string
	// PublicAPI lets requests without a logged-in user reach API routes.
	// By default they are refused with 401 problem+json before an
	// idempotency key is claimed: an anonymous client must learn that it
	// is not logged in, not that its key cannot be scoped. With PublicAPI
	// the idempotency guard scopes keys by session, or by its own Scope.
	PublicAPI bool
	// Headers configures SecurityHeaders.
	Headers HeadersConfig
	// ClientIP configures RealIP (which proxies to believe).
	ClientIP ClientIPConfig
	// CrossOrigin refuses cross-origin unsafe requests (Sec-Fetch-Site /
	// Origin checks). Default http.NewCrossOriginProtection().
	CrossOrigin *http.CrossOriginProtection
	Logger      *slog.Logger

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
}

// New checks cfg and returns the stack.
func New(cfg Config) (*Stack, error) {
	switch {
	case cfg.Sessions == nil:
		return nil, errors.New("middleware: Config.Sessions is required")
	case cfg.Users == nil:
		return nil, errors.New("middleware: Config.Users is required")
	case cfg.Nonces == nil:
		return nil, errors.New("middleware: Config.Nonces is required")
	case cfg.Idempotency == nil:
		return nil, errors.New("middleware: Config.Idempotency is required")
	}
	if cfg.APIPrefix == "" {
		cfg.APIPrefix = "/api/"
	}
	if cfg.CrossOrigin == nil {
		cfg.CrossOrigin = http.NewCrossOriginProtection()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	adoptSessionErrors(cfg.Sessions, cfg.Logger)
	return &Stack{
		outer: Chain(
			Recover(cfg.Logger),
			SecurityHeaders(cfg.Headers),
			Bound(BoundConfig{Budget: cfg.Budget, MaxInFlight: cfg.MaxInFlight}),
			RealIP(cfg.ClientIP),
			cfg.CrossOrigin.Handler,
			cfg.Sessions.LoadAndSave,
			cfg.Users.LoadUser(cfg.Sessions),
		),
		api:   apiChain(cfg),
		pages: cfg.Nonces.RequirePath,
		pfx:   cfg.APIPrefix,
	}, nil
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
//	SecurityHeaders             nosniff, Referrer-Policy, frame-ancestors, HSTS
//	Bound                       503 beyond MaxInFlight; the request's DynamoDB budget
//	RealIP                      the client address, from trusted proxies only
//	http.CrossOriginProtection  cross-site unsafe requests refused before any work
//	scs LoadAndSave             the session: 1 consistent GetItem, 0–1 write
//	users.LoadUser              the user: 1 consistent GetItem; stale sessions end
//	  API routes (APIPrefix):   a logged-in user (401 otherwise, unless PublicAPI),
//	                            then Idempotency-Key required on POST and PATCH
//	  every other route:        single-use nonce on unsafe methods, purpose = path
//	next                        not started once the budget is spent (503)
//
// Cheap refusals come first: a cross-origin request never touches
// DynamoDB, and a forged nonce is refused in memory before its one write.
// The session is loaded before the user, and both before the nonce and the
// idempotency key, because those are bound to (or scoped by) who is asking.
func (s *Stack) Handler(next http.Handler) http.Handler {
	next = budgetGate(next)
	api, pages := s.api(next), s.pages(next)
	return s.outer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, s.pfx) {
			api.ServeHTTP(w, r)
			return
		}
		pages.ServeHTTP(w, r)
	}))
}

// Client describes the request's client for users.Login and friends: the
// address RealIP resolved and the User-Agent.
func Client(r *http.Request) users.Client {
	return users.Client{IP: ClientIP(r), UserAgent: r.UserAgent()}
}
