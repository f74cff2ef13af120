// Package app is dynaguard's example web application: every flow of the
// suite — sign-up, login with an optional TOTP second factor, logout,
// password change and reset, email change and verification, session
// management, single-use forms and an idempotent JSON API — wired the way
// a real application should wire it, server-rendered with html/template
// and no inline script, so that a strict Content-Security-Policy holds.
//
// The command in ../ (go run ./example -dev) serves it; the repository's
// integration tests run two instances of it against one table.
//
// # Request flow
//
//	/static/...   embedded CSS and JS: security headers only, no session
//	everything    middleware.Stack: Recover → SecurityHeaders → Bound → RealIP →
//	else          CrossOriginProtection → scs (sessionstore) → users.LoadUser
//	                → /api/...: Idempotency-Key required on POST
//	                → pages:    single-use nonce on every POST (purpose = path)
//	              → the app's ServeMux
//
// A form that fails its nonce check is rendered again by the nonce
// manager's ErrorHandler (formError), with the user's input and a message.
package app

import (
	"crypto/rand"
	"encoding/base32"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/alexedwards/scs/v2"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/idempotency"
	"github.com/dynaguard/dynaguard/middleware"
	"github.com/dynaguard/dynaguard/nonce"
	"github.com/dynaguard/dynaguard/sessionstore"
	"github.com/dynaguard/dynaguard/users"
)

// Config configures the app. Table and Keys are required.
type Config struct {
	// Table holds everything: sessions, nonces, idempotency records,
	// accounts and the app's own transfers (prefix "app#").
	Table *dynaguard.Table
	// Keys is the application secret (dynaguard.ParseKeyring of
	// DYNAGUARD_SECRET). Every instance must use the same one.
	Keys *dynaguard.Keyring

	// Dev is development mode: cookies without the Secure attribute (so
	// they work on http://127.0.0.1), and the outbox at /dev/outbox and
	// /dev/mail. Never in production.
	Dev bool
	// Mailer sends reset and verification links. Default in Dev: a new
	// Outbox; otherwise required.
	Mailer Mailer
	// BaseURL is the absolute origin put in links sent by email
	// ("https://app.example.com"). It is configured, never taken from the
	// request's Host header, which an attacker chooses (password-reset
	// poisoning). Empty: links are relative paths (development).
	BaseURL string

	// Hasher hashes passwords. Default users.DefaultArgon2id; tests use
	// cheap parameters.
	Hasher users.Hasher
	// Throttle limits login attempts (users' defaults when zero).
	Throttle users.Throttle
	// Signup limits sign-ups per client address (users' defaults when
	// zero). The app always uses the quiet mode: a taken email address is
	// answered like a new one, and its owner is told by email.
	Signup users.SignupConfig
	// ClientIP names the trusted proxies in front of the app (none by
	// default: the client is the connection's address).
	ClientIP middleware.ClientIPConfig

	Clock  dynaguard.Clock
	Logger *slog.Logger
	// Events is where every component sends its security events and
	// telemetry (default: the zero dynaguard.Events — the Logger above,
	// OpenTelemetry's global providers). In Dev, the events are also kept
	// for the Security page at /dev/security.
	Events *dynaguard.Events

	// Budget and MaxInFlight bound each request (middleware.Config):
	// defaults 3 s and 300.
	Budget      time.Duration
	MaxInFlight int
	// Passkeys configures passkeys (users.PasskeyConfig). With no RPID it
	// is derived from BaseURL: the RP ID is BaseURL's host and BaseURL the
	// one origin; in Dev a loopback address becomes localhost (browsers
	// offer passkeys to http://localhost, never to an IP address). Without
	// either, passkeys are off and their buttons are not shown.
	Passkeys users.PasskeyConfig
	// IdempotencyLease is how long a claimed Idempotency-Key whose
	// request stopped answering blocks retries (idempotency.Config.Lease);
	// default idempotency.DefaultLease.
	IdempotencyLease time.Duration
}

func signupConfig(c users.SignupConfig) users.SignupConfig {
	c.Quiet = true
	return c
}

// Session keys of the app's own values.
const (
	sessFlashKind   = "app.flash.kind"
	sessFlashText   = "app.flash.text"
	sessTOTPPending = "app.totp.pending" // enrolment secret shown but not confirmed yet
)

// Durations of the example's policy.
const (
	idleTimeout     = 30 * time.Minute
	sessionLifetime = 12 * time.Hour
)

// App is the example application.
type App struct {
	cfg       Config
	dev       bool
	sm        *scs.SessionManager
	store     *sessionstore.Store
	users     *users.Users
	nonces    *nonce.Manager
	guard     *idempotency.Guard
	transfers transferStore
	mailer    Mailer
	outbox    *Outbox      // nil unless Mailer is an *Outbox
	security  *securityLog // Dev only: the events for /dev/security
	events    *dynaguard.Events
	pages     map[string]*template.Template
	forms     map[string]formPage // POST path → the page that renders its form
	clock     dynaguard.Clock
	log       *slog.Logger

	// passkeysOn: passkeys are configured (Config.Passkeys or BaseURL).
	passkeysOn bool
}

// New returns the app's handler: the whole dynaguard stack around its routes.
func New(cfg Config) (http.Handler, error) {
	a, err := newApp(cfg)
	if err != nil {
		return nil, err
	}
	return a.handler()
}

func newApp(cfg Config) (*App, error) {
	if cfg.Table == nil || cfg.Keys == nil {
		return nil, errors.New("app: Config.Table and Config.Keys are required")
	}
	a := &App{
		cfg:       cfg,
		dev:       cfg.Dev,
		transfers: transferStore{tbl: cfg.Table},
		mailer:    cfg.Mailer,
		clock:     dynaguard.ClockOrSystem(cfg.Clock),
		log:       cfg.Logger,
	}
	if a.log == nil {
		a.log = slog.Default()
	}
	if a.mailer == nil {
		if !cfg.Dev {
			return nil, errors.New("app: Config.Mailer is required outside development mode")
		}
		a.mailer = &Outbox{}
	}
	a.outbox, _ = a.mailer.(*Outbox)
	a.events = a.eventsConfig()
	a.cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")

	var err error
	if a.pages, err = parsePages(); err != nil {
		return nil, err
	}
	a.store, err = sessionstore.New(sessionstore.Config{Table: cfg.Table, Keys: cfg.Keys, Clock: cfg.Clock, Logger: a.log, Budget: cfg.Budget, Events: a.events})
	if err != nil {
		return nil, err
	}
	a.sm = scs.New()
	a.sm.Store = a.store
	a.sm.Codec = sessionstore.Codec{} // unchanged sessions then cost no write
	a.sm.IdleTimeout = idleTimeout
	a.sm.Lifetime = sessionLifetime
	a.sm.Cookie.HttpOnly = true
	a.sm.Cookie.SameSite = http.SameSiteLaxMode
	a.sm.Cookie.Path = "/"
	if cfg.Dev {
		// Plain HTTP on localhost: a Secure cookie (and so the __Host-
		// prefix) would be dropped by some browsers.
		a.sm.Cookie.Name = "session"
		a.sm.Cookie.Secure = false
	} else {
		// __Host-: the browser accepts it only if Secure, host-only and
		// Path=/, so a sibling subdomain cannot plant a session (fixation).
		a.sm.Cookie.Name = "__Host-session"
		a.sm.Cookie.Secure = true
	}
	a.sm.ErrorFunc = func(w http.ResponseWriter, r *http.Request, err error) {
		a.log.ErrorContext(r.Context(), "app: session storage failed", "err", err)
		unavailable(w, r)
	}

	a.users, err = users.New(users.Config{
		Table:    cfg.Table,
		Keys:     cfg.Keys,
		Sessions: a.store,
		Hasher:   cfg.Hasher,
		Throttle: cfg.Throttle,
		// The device cookie follows the session cookie: __Host- and
		// Secure except in development over plain HTTP.
		DeviceCookie: users.DeviceCookieConfig{Insecure: cfg.Dev},
		Signup:       signupConfig(cfg.Signup),
		Mailer:       a.usersMailer(),
		TOTP:         users.TOTPConfig{Issuer: "dynaguard example"},
		Clock:        cfg.Clock,
		Logger:       a.log,
		Events:       a.events,
		// A login lasts at most as long as the session: renewals
		// ("sign out other sessions") never extend it.
		AbsoluteLifetime: sessionLifetime,
		Budget:           cfg.Budget,
		Passkeys:         passkeyConfig(cfg),
	})
	if err != nil {
		return nil, err
	}
	a.passkeysOn = a.passkeysEnabled(passkeyConfig(cfg))
	a.nonces, err = nonce.New(nonce.Config{
		Table:          cfg.Table,
		Keys:           cfg.Keys,
		InsecureCookie: cfg.Dev,
		ErrorHandler:   a.formError,
		Clock:          cfg.Clock,
		Logger:         a.log,
		Events:         a.events,
		Budget:         cfg.Budget,
	})
	if err != nil {
		return nil, err
	}
	a.guard, err = idempotency.New(idempotency.Config{
		Table:      cfg.Table,
		Keyring:    cfg.Keys,                  // stored responses are sealed at rest
		Scope:      idempotency.UserOrSession, // behind users.LoadUser (the middleware stack)
		CacheBytes: 4 << 20,
		Lease:      cfg.IdempotencyLease,
		Clock:      cfg.Clock,
		Logger:     a.log,
		Events:     a.events,
		Budget:     cfg.Budget,
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// handler assembles the routes and the stack.
func (a *App) handler() (http.Handler, error) {
	csp, err := contentSecurityPolicy()
	if err != nil {
		return nil, err
	}
	headers := middleware.HeadersConfig{ContentSecurityPolicy: csp}
	if !a.cfg.Dev {
		// Outside development the app is served over HTTPS (its cookies
		// are Secure): tell browsers never to try plain HTTP. Behind a
		// TLS-terminating proxy, list the proxy in ClientIP so that its
		// X-Forwarded-Proto counts.
		headers.HSTS = 365 * 24 * time.Hour
	}
	stack, err := middleware.New(middleware.Config{
		Sessions:    a.sm,
		Users:       a.users,
		Nonces:      a.nonces,
		Idempotency: a.guard,
		Headers:     headers,
		ClientIP:    a.cfg.ClientIP,
		Logger:      a.log,
		Events:      a.events,
		Budget:      a.cfg.Budget,
		MaxInFlight: a.cfg.MaxInFlight,
		Exempt:      tokenPaths, // they check a password or a refresh token themselves (apitoken.go)
	})
	if err != nil {
		return nil, err
	}

	mux := http.NewServeMux()
	a.routes(mux)

	// Static assets are served outside the stack: they need no session,
	// so they cost no DynamoDB read.
	root := http.NewServeMux()
	static := staticHandler()
	root.Handle("GET /static/", middleware.Chain(middleware.RealIP(a.cfg.ClientIP), middleware.SecurityHeaders(headers))(static))
	// Browsers ask for /favicon.ico on pages without an icon link (the
	// shared error page).
	root.Handle("GET /favicon.ico", middleware.Chain(middleware.RealIP(a.cfg.ClientIP), middleware.SecurityHeaders(headers))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r2 := r.Clone(r.Context())
		r2.URL.Path = "/static/favicon.svg"
		static.ServeHTTP(w, r2)
	})))
	root.Handle("/", stack.Handler(mux))
	return root, nil
}

// routes registers every page and API route. Each POST is checked by the
// stack before it gets here; formPage registers the page that renders a
// POST route's form again when its nonce is refused.
func (a *App) routes(mux *http.ServeMux) {
	a.forms = map[string]formPage{}
	page := func(path string, fp formPage) { a.forms[path] = fp }

	mux.HandleFunc("GET /{$}", a.home)

	mux.HandleFunc("GET /register", a.registerGet)
	mux.HandleFunc("POST /register", a.registerPost)
	page("/register", formPage{render: a.registerPage})

	mux.HandleFunc("GET /login", a.loginGet)
	mux.HandleFunc("POST /login", a.loginPost)
	page("/login", formPage{render: a.loginPage})

	mux.HandleFunc("GET /login/totp", a.loginTOTPGet)
	mux.HandleFunc("POST /login/totp", a.loginTOTPPost)
	page("/login/totp", formPage{render: a.loginTOTPPage})
	mux.HandleFunc("POST /login/totp/cancel", a.loginCancel)
	page("/login/totp/cancel", formPage{render: a.loginPage})

	mux.HandleFunc("GET /logout", a.logoutGet)
	mux.HandleFunc("POST /logout", a.logoutPost)
	page("/logout", formPage{render: a.logoutPage})

	mux.Handle("GET /account", a.requireUser(a.account))
	mux.Handle("POST /account/verify", a.requireUser(a.sendVerification))
	page("/account/verify", formPage{render: a.accountPage, user: true})

	mux.Handle("GET /account/password", a.requireUser(a.passwordGet))
	mux.Handle("POST /account/password", a.requireUser(a.passwordPost))
	page("/account/password", formPage{render: a.passwordPage, user: true})

	mux.Handle("GET /account/email", a.requireUser(a.emailGet))
	mux.Handle("POST /account/email", a.requireUser(a.emailPost))
	page("/account/email", formPage{render: a.emailPage, user: true})

	mux.Handle("GET /account/sessions", a.requireUser(a.sessionsGet))
	mux.Handle("POST /account/sessions/revoke-all", a.requireUser(a.revokeAll))
	mux.Handle("POST /account/sessions/revoke", a.requireUser(a.revokeOne))
	mux.Handle("POST /account/sessions/revoke-api", a.requireUser(a.revokeAPIClient))
	page("/account/sessions/revoke-api", formPage{render: a.sessionsPage, user: true})
	page("/account/sessions/revoke-all", formPage{render: a.sessionsPage, user: true})
	page("/account/sessions/revoke", formPage{render: a.sessionsPage, user: true})

	mux.Handle("GET /account/totp", a.requireUser(a.totpGet))
	mux.Handle("POST /account/totp/setup", a.requireUser(a.totpSetup))
	mux.Handle("POST /account/totp", a.requireUser(a.totpPost))
	mux.Handle("POST /account/totp/disable", a.requireUser(a.totpDisable))
	mux.Handle("POST /account/totp/recovery", a.requireUser(a.totpRecovery))
	page("/account/totp/setup", formPage{render: a.totpPage, user: true})
	page("/account/totp", formPage{render: a.totpPage, user: true})
	page("/account/totp/disable", formPage{render: a.totpPage, user: true})
	page("/account/totp/recovery", formPage{render: a.totpPage, user: true})

	mux.HandleFunc("GET /password/reset", a.resetGet)
	mux.HandleFunc("POST /password/reset", a.resetPost)
	page("/password/reset", formPage{render: a.resetPage})
	mux.HandleFunc("GET /password/reset/confirm", a.resetConfirmGet)
	mux.HandleFunc("POST /password/reset/confirm", a.resetConfirmPost)
	page("/password/reset/confirm", formPage{render: a.resetConfirmPage})

	mux.HandleFunc("GET /email/verify", a.verifyGet)
	mux.HandleFunc("POST /email/verify", a.verifyPost)
	// The links of an email change: confirm (sent to the new address) and
	// cancel (sent to the current one). Like the other links, the GET
	// shows a button and the POST acts.
	mux.HandleFunc("GET /email/change/confirm", a.emailConfirmGet)
	mux.HandleFunc("POST /email/change/confirm", a.emailConfirmPost)
	mux.HandleFunc("GET /email/change/cancel", a.emailCancelGet)
	mux.HandleFunc("POST /email/change/cancel", a.emailCancelPost)
	page("/email/verify", formPage{render: a.verifyPage})

	mux.Handle("GET /transfers", a.requireUser(a.transfersGet))
	mux.Handle("GET /transfers/new", a.requireUser(a.transferNewGet))
	mux.Handle("POST /transfers", a.requireUser(a.transferPost))
	page("/transfers", formPage{render: a.transferNewPage, user: true})

	mux.Handle("GET /api/transfers", a.requireAPIUser(a.apiTransfersList))
	mux.Handle("POST /api/transfers", a.requireAPIUser(a.apiTransfersCreate))
	mux.HandleFunc("POST /api/token", a.apiToken)
	mux.HandleFunc("POST /api/token/refresh", a.apiTokenRefresh)
	mux.HandleFunc("POST /api/token/revoke", a.apiTokenRevoke)

	a.passkeyRoutes(mux, page)

	if a.dev && a.outbox != nil {
		mux.HandleFunc("GET /dev/outbox", a.devOutbox)
		mux.HandleFunc("GET /dev/mail", a.devMail)
	}
	if a.security != nil {
		mux.HandleFunc("GET /dev/security", a.devSecurity)
	}
	mux.HandleFunc("/", a.notFound)
}

// requireUser lets logged-in users through and sends everyone else to the
// login page (303), with the requested page in "next" for a GET.
func (a *App) requireUser(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := users.FromContext(r.Context()); !ok {
			to := "/login"
			if r.Method == http.MethodGet {
				to += "?next=" + url.QueryEscape(r.URL.RequestURI())
			}
			redirect(w, r, to)
			return
		}
		next(w, r)
	})
}

// newID returns a random 80-bit identifier (16 base32 characters).
func newID() string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	return strings.ToLower(base32.StdEncoding.EncodeToString(b[:]))
}
