package nonce

import (
	"crypto/hmac"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/authctx"
	"github.com/dynaguard/dynaguard/internal/budget"
	"github.com/dynaguard/dynaguard/internal/obs"
)

// Defaults of [Config].
const (
	DefaultTTL          = 4 * time.Hour
	DefaultFieldName    = "nonce"
	DefaultHeaderName   = "X-Nonce"
	DefaultCookieName   = "__Host-dg-nonce"
	InsecureCookieName  = "dg-nonce" // the default name when Config.InsecureCookie is set
	DefaultCookieMaxAge = 30 * 24 * time.Hour
	DefaultMaxBodyBytes = 10 << 20
	DefaultMaxClockSkew = 5 * time.Minute
	DefaultRecordMargin = time.Hour
)

// Config configures a [Manager]. Table and Keys are required; every other
// field has a safe default.
type Config struct {
	// Table is where consumptions are recorded (one item per used nonce,
	// under dynaguard.PrefixNonce). Required.
	Table *dynaguard.Table

	// Budget bounds each DynamoDB call this component makes when the
	// request's context has no earlier deadline (middleware.Stack sets one
	// for the whole request from its own Budget). A call past it fails
	// closed: 503 with Retry-After. Default 3 s.
	Budget time.Duration

	// Keys signs tokens and the browser cookie, with the keys derived for
	// dynaguard.PurposeNonceHash and dynaguard.PurposeNonceBlock. Tokens are
	// issued with the current secret and accepted with any listed one, so
	// rotating the application secret keeps outstanding forms working until
	// the previous secret is dropped. Required.
	Keys *dynaguard.Keyring

	// TTL is how long an issued token may be submitted. Default 4 hours:
	// long enough for a form left open over lunch. An expired form gets
	// ErrExpired, which an ErrorHandler can answer by re-rendering the form
	// with the user's input and a fresh token.
	TTL time.Duration

	// FieldName is the form field that carries the token. Default "nonce".
	FieldName string
	// HeaderName is the request header that carries the token for fetch and
	// XHR requests. It is read first; the body is not parsed when it is
	// present. Default "X-Nonce".
	HeaderName string

	// CookieName names the browser cookie. Default "__Host-dg-nonce": the
	// __Host- prefix makes browsers refuse it unless it is Secure, host-only
	// and Path=/, so a sibling subdomain cannot plant its own.
	CookieName string
	// CookieMaxAge is the browser cookie's lifetime. The cookie is re-set
	// with the same secret once half of it has passed, so a browser that
	// keeps visiting keeps its identity. It must be at least twice TTL.
	// Default 30 days.
	CookieMaxAge time.Duration
	// InsecureCookie drops the Secure attribute and the __Host- prefix (the
	// default name becomes "dg-nonce") so that the cookie works over plain
	// HTTP. Chrome and Firefox treat http://localhost and loopback addresses
	// as secure origins and keep a Secure cookie there, but Safari, other
	// clients and any other host (a LAN address, a dev domain) drop it, and
	// then every submission fails with ErrWrongBrowser.
	//
	// FOR LOCAL DEVELOPMENT ONLY (http://127.0.0.1). Over plain HTTP anyone
	// on the network path can read the browser secret and the tokens, and a
	// sibling subdomain can overwrite the cookie. Never set it in
	// production; New logs a warning when it is set.
	InsecureCookie bool

	// MaxBodyBytes caps the body of every request Require and Consume
	// check (http.MaxBytesReader), whether the token comes in the form or
	// in the header; a larger body gets ErrBodyTooLarge (413), or fails the
	// handler's read. Default 10 MiB. A multipart form is parsed in memory
	// within this limit: no part is written to a temporary file.
	MaxBodyBytes int64

	// MaxClockSkew is the largest difference between the clocks of the
	// instances that share the table. A token dated further in the future
	// than this (issued by an instance whose clock runs fast) is refused
	// with ErrNotYetValid. Default DefaultMaxClockSkew (5 minutes).
	MaxClockSkew time.Duration
	// RecordMargin is how long a consumption record outlives its token:
	// an instance whose clock runs behind still accepts the token that
	// long after its expiry, and only the record stops a replay then.
	// DynamoDB deletes expired items at some point after their ttl, never
	// before, so the record must outlive the token by at least the skew.
	// Default DefaultRecordMargin (1 hour); it must be at least
	// MaxClockSkew.
	RecordMargin time.Duration

	// Session returns the current session's ID, or "" when there is none.
	// Tokens issued inside a session are accepted only in that session.
	// Default: the session that users.LoadUser records (dynaguard's
	// middleware package runs it; a keyed hash of the session token, never
	// the token). With scs alone, set it to SCSSession(sm). When neither
	// is there, tokens are bound to the browser only, and the first token
	// issued so logs a warning.
	Session func(r *http.Request) string

	// ErrorHandler answers a refused submission; err matches one of the
	// Err* sentinels. The request's form has been parsed (r.PostForm holds
	// the user's input) and Token and Field work on r, so the handler can
	// re-render the form with a fresh token. Default: DefaultErrorHandler.
	ErrorHandler func(w http.ResponseWriter, r *http.Request, err error)

	// Clock tells the time. Default: the system clock.
	Clock dynaguard.Clock
	// Logger receives one record per refused submission (never a token or
	// the cookie). Default: slog.Default().
	Logger *slog.Logger
	// Events receives a nonce.consumed or nonce.refused event per
	// submission, and times the consuming write (see dynaguard.Events).
	// Default: the zero Events.
	Events *dynaguard.Events
}

// Manager issues nonce tokens and consumes them. It is safe for concurrent
// use; any number of Managers (instances of the application) may share one
// table.
type Manager struct {
	table        *dynaguard.Table
	tableName    *string // the PutItem TableName, shared by every request (see putNames)
	keys         []keyset
	ttl          time.Duration
	fieldName    string
	headerName   string
	cookieName   string
	cookieMaxAge time.Duration
	insecure     bool
	maxBody      int64
	maxSkew      time.Duration
	margin       time.Duration
	session      func(*http.Request) string
	onError      func(http.ResponseWriter, *http.Request, error)
	clock        dynaguard.Clock
	log          *slog.Logger
	ev           *obs.Emitter
	verified     cookieCache // browser cookies already verified and decrypted
	unbound      sync.Once   // the warning that no session source is there
}

// New returns a Manager for cfg. It makes no DynamoDB call.
func New(cfg Config) (*Manager, error) {
	if cfg.Table == nil || cfg.Table.Client == nil || cfg.Table.Name == "" {
		return nil, errors.New("nonce: Config.Table is required")
	}
	if cfg.Keys == nil {
		return nil, errors.New("nonce: Config.Keys is required")
	}
	ev := obs.New(cfg.Events, "nonce", cfg.Clock, cfg.Logger)
	m := &Manager{
		table:        ev.Table(budget.Table(cfg.Table, cfg.Budget)),
		ev:           ev,
		tableName:    aws.String(cfg.Table.Name),
		ttl:          or(cfg.TTL, DefaultTTL),
		fieldName:    or(cfg.FieldName, DefaultFieldName),
		headerName:   or(cfg.HeaderName, DefaultHeaderName),
		cookieName:   cfg.CookieName,
		cookieMaxAge: or(cfg.CookieMaxAge, DefaultCookieMaxAge),
		insecure:     cfg.InsecureCookie,
		maxBody:      or(cfg.MaxBodyBytes, DefaultMaxBodyBytes),
		maxSkew:      or(cfg.MaxClockSkew, DefaultMaxClockSkew),
		margin:       or(cfg.RecordMargin, DefaultRecordMargin),
		session:      cfg.Session,
		onError:      cfg.ErrorHandler,
		clock:        dynaguard.ClockOrSystem(cfg.Clock),
		log:          cfg.Logger,
	}
	if m.cookieName == "" {
		m.cookieName = DefaultCookieName
		if m.insecure {
			m.cookieName = InsecureCookieName
		}
	}
	switch {
	case m.ttl < 0 || m.cookieMaxAge < 0 || m.maxBody < 0:
		return nil, errors.New("nonce: TTL, CookieMaxAge and MaxBodyBytes must not be negative")
	case m.maxSkew < 0 || m.margin < m.maxSkew:
		return nil, fmt.Errorf("nonce: RecordMargin (%v) must be at least MaxClockSkew (%v)", m.margin, m.maxSkew)
	case m.cookieMaxAge < 2*m.ttl:
		return nil, fmt.Errorf("nonce: CookieMaxAge (%v) must be at least twice TTL (%v)", m.cookieMaxAge, m.ttl)
	case m.insecure && (strings.HasPrefix(m.cookieName, "__Host-") || strings.HasPrefix(m.cookieName, "__Secure-")):
		return nil, fmt.Errorf("nonce: cookie %q needs the Secure attribute, which InsecureCookie drops", m.cookieName)
	}
	if err := (&http.Cookie{Name: m.cookieName, Value: "x"}).Valid(); err != nil {
		return nil, fmt.Errorf("nonce: CookieName: %w", err)
	}
	if m.session == nil {
		m.session = m.loadedSession
	}
	if m.onError == nil {
		m.onError = DefaultErrorHandler
	}
	if m.log == nil {
		m.log = slog.Default()
	}
	m.keys = newKeysets(cfg.Keys)
	if m.insecure {
		m.log.Warn("nonce: InsecureCookie is set: the browser cookie is not Secure and travels over plain HTTP; use it only for local development")
	}
	return m, nil
}

func or[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Handler makes every request ready to issue tokens: it reads the browser's
// nonce cookie, sets it when it is missing or invalid, and records the
// browser secret in the request context, where [Token] and [Field] find it.
// It never calls DynamoDB and never refuses a request. Put it around the
// whole router (or at least every page that renders a protected form); it
// works with any router.
//
// It makes every response vary on Cookie (adding "Vary: Cookie" unless an
// outer middleware, such as scs's LoadAndSave, already did): a page that
// embeds a token is specific to one browser and must not be served from a
// shared cache to another. Serve static assets outside it if a shared cache
// should keep them.
func (m *Manager) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r2 := m.prepare(w, r)
		defer removeMultipart(r, r2)
		next.ServeHTTP(w, r2)
	})
}

// removeMultipart deletes the temporary files of a multipart form parsed on
// r2, a copy of r made by this package. net/http removes only the files of
// the request it created itself, and a form parsed on a copy is invisible
// to it.
func removeMultipart(r, r2 *http.Request) {
	if r2 != r && r2.MultipartForm != nil && r2.MultipartForm != r.MultipartForm {
		_ = r2.MultipartForm.RemoveAll()
	}
}

// Require returns middleware that consumes a token issued for purpose on
// every request with an unsafe method, before next runs. Safe methods (GET,
// HEAD, OPTIONS) pass through unchecked, so one route can both render its
// form and receive it; every other method — TRACE and CONNECT included —
// needs a token. The body of every unsafe request is limited to
// Config.MaxBodyBytes, whichever way the token arrives. A refused request is answered by
// Config.ErrorHandler and never reaches next.
//
// Require also does what Handler does, so a route that re-renders its form
// (a validation error, or the ErrorHandler) can issue a fresh token.
//
// It panics if purpose is empty or longer than 255 bytes: that is a
// programming error, caught when routes are set up.
func (m *Manager) Require(purpose string) func(http.Handler) http.Handler {
	if err := checkPurpose(purpose); err != nil {
		panic(fmt.Sprintf("nonce: Require(%q): %v", purpose, err))
	}
	return m.protect(func(*http.Request) string { return purpose })
}

// RequirePath is Require with the request's escaped path
// (r.URL.EscapedPath) as the purpose, for one middleware in front of a
// whole router: a form that posts to /login renders Field(r, "/login"), and
// its token is refused anywhere else. The escaped path, not the decoded
// one, so that "/a%2Fb/delete" and "/a/b/delete" — which a router may send
// to different handlers — never share a token; a form that posts to a path
// with escaped characters names it escaped. A request whose path could
// never be a purpose (empty, or over 255 bytes) is refused as
// ErrWrongPurpose.
func (m *Manager) RequirePath(next http.Handler) http.Handler {
	return m.protect(func(r *http.Request) string { return r.URL.EscapedPath() })(next)
}

func (m *Manager) protect(purposeOf func(*http.Request) string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r0 *http.Request) {
			r := m.prepare(w, r0)
			defer removeMultipart(r0, r)
			if safeMethod(r.Method) {
				next.ServeHTTP(w, r)
				return
			}
			if err := m.Consume(w, r, purposeOf(r)); err != nil {
				m.onError(w, r, err)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// safeMethod lists the methods that never need a token. TRACE is not one of
// them: it is "safe" in RFC 9110's sense, but a server that answers it
// echoes the request (cookies included) and nothing in this package may be
// skipped on the strength of a method an application rarely means to serve.
func safeMethod(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return true
	}
	return false
}

// Consume verifies the request's token for purpose and records its use. It
// is what Require runs, for handlers that decide themselves (for example
// when the purpose depends on the request); unlike Require it checks every
// method and writes nothing to w on failure.
//
// The token is taken from Config.HeaderName, or else from Config.FieldName
// in a form body (application/x-www-form-urlencoded or multipart/form-data,
// read through http.MaxBytesReader), never from the URL. The signature,
// purpose, browser, session and expiry are checked in memory first, so a
// bad token costs no DynamoDB call; then one conditional PutItem records the
// consumption. It returns nil only when this call recorded it: at most one
// submission of a token ever succeeds, across any number of instances.
// Every error matches one of the Err* sentinels.
//
// The body is limited to Config.MaxBodyBytes whether or not it is parsed
// here: a token in the header does not lift the limit on the body the
// handler reads next (a larger declared body is refused at once with
// ErrBodyTooLarge, before the token is used; a larger streamed one fails the
// handler's read with *http.MaxBytesError).
//
// w is used only by http.MaxBytesReader (to close the connection after an
// oversized body) and may be nil.
func (m *Manager) Consume(w http.ResponseWriter, r *http.Request, purpose string) error {
	if err := m.limitBody(w, r); err != nil {
		return m.refuse(r, purpose, err, nil)
	}
	token, err := m.tokenFrom(w, r)
	if err != nil {
		return m.refuse(r, purpose, err, nil)
	}
	c, key, err := m.decode(token)
	if err != nil {
		return m.refuse(r, purpose, err, nil)
	}
	if string(c.purpose()) != purpose {
		return m.refuse(r, purpose, ErrWrongPurpose, nil)
	}
	secret, err := m.browserSecret(r)
	if err != nil {
		return m.refuse(r, purpose, ErrWrongBrowser, err)
	}
	ks := &m.keys[key] // the key that signed the token also keyed its bindings
	if b := ks.bind.bytes(labelBrowser, secret[:]); !hmac.Equal(b[:], c.browser[:]) {
		return m.refuse(r, purpose, ErrWrongBrowser, nil)
	}
	// A token issued without a session is bound to the browser only and is
	// accepted whatever the session is now. One issued inside a session is
	// accepted only in that session.
	if c.hasSession {
		sid := m.session(r)
		if sid == "" {
			return m.refuse(r, purpose, ErrWrongSession, errNoSession)
		}
		if b := ks.bind.string(labelSession, sid); !hmac.Equal(b[:], c.session[:]) {
			return m.refuse(r, purpose, ErrWrongSession, nil)
		}
	}
	expires := time.Unix(c.expires, 0)
	now := m.clock.Now()
	if !now.Before(expires) {
		return m.refuse(r, purpose, ErrExpired, nil)
	}
	// A token is issued TTL before it expires. One whose issue time lies
	// further ahead than MaxClockSkew was issued by an instance whose clock
	// runs fast: refused, so that no token outlives the consumption record
	// that Consume writes (see recordTTL).
	if expires.Sub(now) > m.ttl+m.maxSkew {
		return m.refuse(r, purpose, ErrNotYetValid, nil)
	}
	if err := m.consume(r.Context(), &c.id, expires.Add(m.margin)); err != nil {
		if errors.Is(err, ErrAlreadyUsed) {
			return m.refuse(r, purpose, ErrAlreadyUsed, nil)
		}
		return m.refuse(r, purpose, ErrStorage, err)
	}
	m.ev.Emit(r.Context(), dynaguard.Event{Name: dynaguard.EventNonceConsumed, UserID: userOf(r)})
	return nil
}

var errNoSession = errors.New("the request has no session")

// userOf is the logged-in user's ID for events, "" when nobody is.
func userOf(r *http.Request) string {
	u, _ := authctx.User(r.Context())
	return u
}

// refuse logs a refusal and returns it as an *Error.
func (m *Manager) refuse(r *http.Request, purpose string, kind, cause error) error {
	err := reject(kind, purpose, cause)
	if kind == ErrStorage {
		m.ev.StorageFailure(r.Context(), userOf(r), cause)
	} else {
		m.ev.Emit(r.Context(), dynaguard.Event{Name: dynaguard.EventNonceRefused, Reason: Reason(kind), UserID: userOf(r)})
	}
	level := slog.LevelWarn
	switch kind {
	case ErrStorage:
		level = slog.LevelError
	case ErrAlreadyUsed, ErrExpired, ErrWrongSession, ErrBodyTooLarge, ErrBadForm:
		// Double clicks, stale tabs and logins in another tab are routine;
		// missing, forged, altered or misbound tokens are worth a warning.
		level = slog.LevelInfo
	}
	attrs := []slog.Attr{
		slog.String("reason", Reason(kind)),
		slog.String("purpose", purpose),
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
	}
	if cause != nil {
		attrs = append(attrs, slog.String("err", cause.Error()))
	}
	m.log.LogAttrs(r.Context(), level, "nonce: submission refused", attrs...)
	return err
}

// tokenFrom finds the submitted token. The header wins, so a JSON body sent
// by fetch is never parsed as a form.
func (m *Manager) tokenFrom(w http.ResponseWriter, r *http.Request) (string, error) {
	if t := r.Header.Get(m.headerName); t != "" {
		return t, nil
	}
	if r.PostForm == nil {
		if err := m.parseForm(w, r); err != nil {
			return "", err
		}
	}
	if t := r.PostForm.Get(m.fieldName); t != "" {
		return t, nil
	}
	return "", ErrMissing
}

// parseForm parses a form body under the size limit, leaving r.PostForm and
// r.Form (and r.MultipartForm) populated for the handler — or for the
// ErrorHandler, which can re-render the form with the user's input.
func (m *Manager) parseForm(w http.ResponseWriter, r *http.Request) error {
	mt := formMediaType(r.Header.Get("Content-Type"))
	if r.Body == nil || mt == "" {
		return ErrMissing
	}
	var err error
	if mt == mediaMultipart {
		// The whole body is at most maxBody (limitBody), so with maxBody as
		// the memory budget every file part stays in memory: nothing is
		// written to temporary files on the strength of an unchecked token.
		err = r.ParseMultipartForm(m.maxBody)
	} else {
		err = r.ParseForm()
	}
	if err == nil {
		return nil
	}
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) || errors.Is(err, multipart.ErrMessageTooLarge) ||
		err.Error() == "http: POST too large" { // net/http's own 10 MB cap on url-encoded bodies
		return ErrBodyTooLarge
	}
	return ErrBadForm
}

// limitBody bounds the request body to maxBody: a declared length over it
// is refused at once, and any body is read through http.MaxBytesReader.
func (m *Manager) limitBody(w http.ResponseWriter, r *http.Request) error {
	if r.ContentLength > m.maxBody {
		return ErrBodyTooLarge
	}
	if r.Body != nil && r.Body != http.NoBody {
		// Directly a MaxBytesReader (not wrapped), so that ParseForm takes
		// its limit instead of adding net/http's own 10 MB cap.
		r.Body = http.MaxBytesReader(w, r.Body, m.maxBody)
	}
	return nil
}

const (
	mediaURLEncoded = "application/x-www-form-urlencoded"
	mediaMultipart  = "multipart/form-data"
)

// formMediaType returns mediaURLEncoded or mediaMultipart when the
// Content-Type header value ct names one of them, and "" otherwise. It
// answers exactly as the media type of mime.ParseMediaType(ct) would — the
// media type net/http's ParseForm and ParseMultipartForm go by — without
// building the parameter map mime.ParseMediaType returns: the part before
// the first ';', trimmed of white space, lowercased rune by rune with
// unicode.ToLower (as strings.ToLower does, so that "İ", U+0130, counts as
// "i"). mime.ParseMediaType refuses the whole value (returns "") in one more
// case, a parameter given twice with different values; that needs two
// parameters, so only a value with two '=' after the media type is handed to
// it.
func formMediaType(ct string) string {
	base, params, _ := strings.Cut(ct, ";")
	base = strings.TrimSpace(base)
	mt := ""
	switch {
	case lowerEquals(base, mediaURLEncoded):
		mt = mediaURLEncoded
	case lowerEquals(base, mediaMultipart):
		mt = mediaMultipart
	default:
		return ""
	}
	if strings.Count(params, "=") > 1 {
		if full, _, _ := mime.ParseMediaType(ct); full != mt {
			return ""
		}
	}
	return mt
}

// lowerEquals reports whether strings.ToLower(s) == lower, for an ASCII
// lower.
func lowerEquals(s, lower string) bool {
	i := 0
	for _, r := range s { // invalid UTF-8 gives utf8.RuneError, never ASCII
		if i == len(lower) || unicode.ToLower(r) != rune(lower[i]) {
			return false
		}
		i++
	}
	return i == len(lower)
}

// Token issues a token for purpose, bound to the requesting browser and, if
// there is one, to the current session. Put it where script can send it back
// in Config.HeaderName (a <meta> tag, a JSON response). Every call returns a
// new token: issue one per rendered form. It makes no DynamoDB call.
//
// r must have passed through [Manager.Handler] or [Manager.Require];
// otherwise Token returns ErrNotPrepared.
func Token(r *http.Request, purpose string) (string, error) {
	st := stateFrom(r.Context())
	if st == nil {
		return "", ErrNotPrepared
	}
	m := st.m
	return m.issue(&st.secret, m.session(r), purpose, m.clock.Now())
}

// Field issues a token for purpose, like [Token], as a hidden form field:
//
//	<input type="hidden" name="nonce" value="...">
//
// Call it once per rendered form, in the handler, and pass the result to the
// template (or wrap it in a template function bound to r); html/template
// inserts a template.HTML value as it is.
func Field(r *http.Request, purpose string) (template.HTML, error) {
	t, err := Token(r, purpose)
	if err != nil {
		return "", err
	}
	name := stateFrom(r.Context()).m.fieldName
	return template.HTML(`<input type="hidden" name="` + template.HTMLEscapeString(name) +
		`" value="` + template.HTMLEscapeString(t) + `">`), nil
}
