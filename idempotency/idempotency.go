package idempotency

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/budget"
	"github.com/dynaguard/dynaguard/internal/obs"
)

// Errors. Storage failures wrap the classified DynamoDB error, so
// errors.Is(err, dynaguard.ErrThrottled) and the like also work.
var (
	// ErrUnavailable: DynamoDB failed (throttling, 5xx, timeout) or returned
	// a record this package cannot interpret. The request was not executed.
	ErrUnavailable = errors.New("idempotency: storage unavailable")
	// ErrInFlight: another caller holds the key and its lease is live.
	// errors.As yields an *InFlightError.
	ErrInFlight = errors.New("idempotency: a request with this key is in flight")
	// ErrFingerprintMismatch: the key was used before with a different
	// payload (fingerprint). The new work was not executed.
	ErrFingerprintMismatch = errors.New("idempotency: key reused with a different payload")
	// ErrLeaseLost: the claim's lease is lost — a renewal found the key
	// taken over, or renewals failed until the lease the last successful
	// one secured was about to lapse (MaxClockSkew before it). It is the
	// cause (context.Cause) of the handler's (or fn's) context
	// cancellation; the outcome is then not stored. It is also logged when
	// a late completion or release is refused.
	ErrLeaseLost = errors.New("idempotency: lease lost")
	// ErrOutcomeUnknown: the key's first run was marked final (it took
	// effect) but its holder's lease lapsed before its outcome was stored —
	// the completion is still being retried, or was given up. The work is
	// never run again under this key; the HTTP middleware answers 409 with
	// reason "idempotency-outcome-unknown".
	ErrOutcomeUnknown = errors.New("idempotency: first run took effect but its outcome is not recorded")
	// ErrNotClaimed: Final was called with a context that holds no claimed
	// key.
	ErrNotClaimed = errors.New("idempotency: context holds no claimed key")
	// ErrResultNotKept: Do's earlier result was not stored (too large for a
	// DynamoDB item) or can no longer be read (sealed with a secret that is
	// no longer configured). fn is not run again.
	ErrResultNotKept = errors.New("idempotency: stored result not available")
	// ErrInvalidKey: Do was called with an empty or oversized key.
	ErrInvalidKey = errors.New("idempotency: invalid key")
	// ErrInvalidConfig: New was given a Config it cannot use safely.
	ErrInvalidConfig = errors.New("idempotency: invalid config")
)

// InFlightError is ErrInFlight with the holder's lease expiry: if the holder
// has crashed, the key can be taken over from then on.
type InFlightError struct {
	LeaseExpires time.Time
}

func (e *InFlightError) Error() string {
	return "idempotency: a request with this key is in flight (lease until " + e.LeaseExpires.UTC().Format(time.RFC3339Nano) + ")"
}

// Is makes errors.Is(err, ErrInFlight) true.
func (e *InFlightError) Is(target error) bool { return target == ErrInFlight }

// Defaults.
const (
	DefaultRetention    = 24 * time.Hour
	DefaultLease        = 30 * time.Second
	DefaultMaxBodyBytes = 1 << 20

	DefaultMaxClockSkew    = 5 * time.Second // or Lease/4 when that is shorter
	DefaultCompletionRetry = 5 * time.Minute
)

// DefaultReplayHeaders are the response headers stored and replayed when
// Config.ReplayHeaders is nil: those that describe the representation or
// the created resource and are the same for every client. Anything else —
// Set-Cookie above all, but also caching, CORS and security headers, which
// the application's other middleware sets again on the replay — is neither
// stored nor replayed.
var DefaultReplayHeaders = []string{
	"Content-Type", "Content-Encoding", "Content-Language", "Content-Location", "Content-Disposition",
	"Location", "ETag", "Last-Modified", "Link", "Preference-Applied",
}

// neverReplayed are headers that carry per-client or per-connection state.
// New refuses a ReplayHeaders list that names one.
var neverReplayed = map[string]bool{
	"Set-Cookie": true, "Set-Cookie2": true, "Authorization": true, "Proxy-Authorization": true,
	"Www-Authenticate": true, "Proxy-Authenticate": true, "Authentication-Info": true, "Clear-Site-Data": true,
	"Connection": true, "Keep-Alive": true, "Transfer-Encoding": true, "Te": true, "Trailer": true,
	"Upgrade": true, "Content-Length": true, HeaderReplayed: true,
}

// Config configures a Guard. Table, Keyring and Scope are required.
type Config struct {
	// Table holds the records (prefix "idem#"). Required.
	Table *dynaguard.Table

	// Budget bounds each DynamoDB call this component makes when the
	// request's context has no earlier deadline (middleware.Stack sets one
	// for the whole request from its own Budget). A call past it fails
	// closed: 503 with Retry-After. Default 3 s.
	Budget time.Duration

	// Keyring keys the request fingerprints (HMAC under
	// dynaguard.PurposeIdempotencyFingerprint, so a table dump does not
	// give away low-entropy request bodies to guessing) and seals every
	// stored response (dynaguard.PurposeIdempotencySeal), so a dump or
	// backup does not reveal response bodies either — which may hold
	// anything a POST returns, API keys and links included. Required.
	// Fingerprints and responses made with a previous secret are matched
	// and replayed while it stays in the keyring; after that a retry of such
	// a request is refused as a different payload (422), never executed.
	Keyring *dynaguard.Keyring

	// Retention is how long a completed key is kept and replayed after its
	// completion; a claimed key is kept at least this long from the claim.
	// Default DefaultRetention (24 h). Publish it to your clients: a key
	// reused after it is a new request.
	Retention time.Duration

	// Lease is how long a claim holds a key without renewal: the longest a
	// crashed worker can block its key. A running handler renews it every
	// Lease/3, so handlers may run longer than Lease. Default
	// DefaultLease (30 s). It must be more than three times MaxClockSkew.
	Lease time.Duration

	// Rules are the per-request rules of Handler. Require and With apply
	// other rules per route.
	Rules Rules

	// MaxBodyBytes limits the request body of a request that carries a
	// key: the body is read in full to fingerprint it, and a larger one is
	// refused with 413. Default DefaultMaxBodyBytes (1 MiB).
	MaxBodyBytes int64

	// Scope attributes a request to a client when neither a user nor a
	// session is in its context (internal/authctx, set by users.LoadUser
	// and the middleware package). Keys are scoped: one client can never
	// replay or block another's. A request it does not attribute (ok false)
	// is refused (403). Required, so that a Guard that could attribute
	// nothing fails in New: UserOrSession behind users.LoadUser or
	// middleware.Stack (and for a Guard used only through Do),
	// APIKeyHeader for API clients, or the application's own function (an
	// API client ID from a verified token, or a constant to share one key
	// space among all anonymous clients).
	Scope func(*http.Request) (scope string, ok bool)

	// ReplayHeaders lists the response headers stored and replayed.
	// Default DefaultReplayHeaders. New refuses per-client headers
	// (Set-Cookie, authentication, hop-by-hop).
	ReplayHeaders []string

	// CacheBytes is the budget of an in-process cache of completed
	// records, so that a replay costs no DynamoDB call. 0 disables it. A
	// cached record expires with the stored one; the fingerprint is still
	// checked on every hit.
	CacheBytes int

	// Lease safety and completion (see the package documentation).

	// MaxClockSkew is the largest difference between the clocks of the
	// instances sharing the table. A holder stops its handler (context
	// canceled, cause ErrLeaseLost) MaxClockSkew before the lease its last
	// successful renewal secured would lapse, and another instance takes a
	// key over only MaxClockSkew after its lease lapsed, so the two never
	// both believe they hold it while clocks stay within the skew. Default
	// DefaultMaxClockSkew (5 s), or Lease/4 when that is shorter; it must
	// be under Lease/3.
	MaxClockSkew time.Duration
	// CompletionRetry is how long a completion write that failed after the
	// handler (or fn) ran is retried in the background, with backoff from
	// 100 ms to 5 s. Until it lands, duplicates get 409. At most
	// maxPendingCompletions retries run at once; beyond that a failure is
	// only logged. Default DefaultCompletionRetry (5 minutes).
	CompletionRetry time.Duration

	Clock  dynaguard.Clock // default dynaguard.SystemClock
	Logger *slog.Logger    // default slog.Default()
	// Events receives one event per keyed request or Do call (claimed,
	// taken over, replayed, conflict, mismatch, lease lost, storage
	// failure) and times the Guard's DynamoDB calls; see dynaguard.Events.
	Events *dynaguard.Events
}

// Rules are the per-request rules of a route.
type Rules struct {
	// Methods the key applies to. Default POST and PATCH; other methods
	// pass through untouched, key or not.
	Methods []string
	// RequireKey refuses requests without an Idempotency-Key with 400.
	// Without it such requests pass through untouched, which lets one
	// Guard wrap a whole router that also serves browser forms.
	RequireKey bool
	// StoreServerErrors stores and replays 5xx responses (and a panic, as
	// a 500) like any other, for routes whose handlers may have taken
	// effect before failing. By default they release the key so the client
	// may retry; a handler can decide per request with Final.
	StoreServerErrors bool
}

// Guard runs each keyed request at most once per client and key while its
// record lives, across every instance that shares the table, and replays
// the stored response to duplicates. Do gives the same guarantee to
// non-HTTP work. A Guard is safe for concurrent use.
type Guard struct {
	store      store
	sealer     *sealer
	fps        *fingerprinter
	skew       time.Duration
	retryFor   time.Duration
	pending    chan struct{} // one slot per background completion retry
	retries    sync.WaitGroup
	cache      *cache
	retention  time.Duration
	lease      time.Duration
	renewEvery time.Duration
	rules      rules
	maxBody    int64
	scope      func(*http.Request) (string, bool)
	replay     map[string]bool
	budget     int // most a stored response may take (storeBudget; raised by a test)
	clock      dynaguard.Clock
	log        *slog.Logger
	ev         *obs.Emitter
}

type rules struct {
	methods           map[string]bool
	requireKey        bool
	storeServerErrors bool
}

// New returns a Guard. It makes no call.
func New(cfg Config) (*Guard, error) {
	if cfg.Table == nil || cfg.Table.Client == nil || cfg.Table.Name == "" {
		return nil, fmt.Errorf("%w: Table is required", ErrInvalidConfig)
	}
	if cfg.Keyring == nil {
		return nil, fmt.Errorf("%w: Keyring is required (it keys fingerprints and seals stored responses)", ErrInvalidConfig)
	}
	ev := obs.New(cfg.Events, "idempotency", cfg.Clock, cfg.Logger)
	g := &Guard{
		ev:        ev,
		store:     newStore(ev.Table(budget.Table(cfg.Table, cfg.Budget))),
		retention: cfg.Retention,
		lease:     cfg.Lease,
		maxBody:   cfg.MaxBodyBytes,
		budget:    storeBudget,
		scope:     cfg.Scope,
		skew:      cfg.MaxClockSkew,
		retryFor:  cfg.CompletionRetry,
		pending:   make(chan struct{}, maxPendingCompletions),
		clock:     dynaguard.ClockOrSystem(cfg.Clock),
		log:       cfg.Logger,
	}
	if g.retention == 0 {
		g.retention = DefaultRetention
	}
	if g.lease == 0 {
		g.lease = DefaultLease
	}
	if g.maxBody == 0 {
		g.maxBody = DefaultMaxBodyBytes
	}
	if g.log == nil {
		g.log = slog.Default()
	}
	if g.skew == 0 {
		g.skew = min(DefaultMaxClockSkew, g.lease/4)
	}
	if g.retryFor == 0 {
		g.retryFor = DefaultCompletionRetry
	}
	switch {
	case g.retention < time.Second:
		return nil, fmt.Errorf("%w: Retention %v is under one second", ErrInvalidConfig, g.retention)
	case g.lease < 10*time.Millisecond:
		return nil, fmt.Errorf("%w: Lease %v is under 10ms", ErrInvalidConfig, g.lease)
	case g.lease >= g.retention:
		return nil, fmt.Errorf("%w: Lease %v must be shorter than Retention %v", ErrInvalidConfig, g.lease, g.retention)
	case g.maxBody < 0:
		return nil, fmt.Errorf("%w: MaxBodyBytes is negative", ErrInvalidConfig)
	case cfg.CacheBytes < 0:
		return nil, fmt.Errorf("%w: CacheBytes is negative", ErrInvalidConfig)
	case g.skew < 0 || 3*g.skew >= g.lease:
		return nil, fmt.Errorf("%w: MaxClockSkew %v must be under a third of Lease %v", ErrInvalidConfig, g.skew, g.lease)
	case g.retryFor < 0:
		return nil, fmt.Errorf("%w: CompletionRetry is negative", ErrInvalidConfig)
	}
	if cfg.Scope == nil {
		return nil, fmt.Errorf("%w: Scope is required: nothing would attribute keyed requests to a client, "+
			"and every one would be refused; use idempotency.UserOrSession behind users.LoadUser or "+
			"middleware.Stack (or for Do only), idempotency.APIKeyHeader, or a function of your own", ErrInvalidConfig)
	}
	g.renewEvery = g.lease / 3
	g.rules = compileRules(cfg.Rules)
	hdrs := cfg.ReplayHeaders
	if hdrs == nil {
		hdrs = DefaultReplayHeaders
	}
	g.replay = make(map[string]bool, len(hdrs))
	for _, h := range hdrs {
		c := http.CanonicalHeaderKey(strings.TrimSpace(h))
		if neverReplayed[c] {
			return nil, fmt.Errorf("%w: ReplayHeaders must not include %s: it is per client or per connection", ErrInvalidConfig, c)
		}
		g.replay[c] = true
	}
	g.sealer = newSealer(cfg.Keyring)
	g.fps = newFingerprinter(cfg.Keyring)
	if cfg.CacheBytes > 0 {
		g.cache = newCache(cfg.CacheBytes)
	}
	return g, nil
}

func compileRules(r Rules) rules {
	methods := r.Methods
	if methods == nil {
		methods = []string{http.MethodPost, http.MethodPatch}
	}
	c := rules{methods: make(map[string]bool, len(methods)), requireKey: r.RequireKey, storeServerErrors: r.StoreServerErrors}
	for _, m := range methods {
		c.methods[strings.ToUpper(strings.TrimSpace(m))] = true
	}
	return c
}

// Handler applies the Config's Rules to next.
func (g *Guard) Handler(next http.Handler) http.Handler {
	return &handler{g: g, rules: g.rules, next: next}
}

// Require is Handler with RequireKey set: a request without a key is
// refused with 400.
func (g *Guard) Require(next http.Handler) http.Handler {
	r := g.rules
	r.requireKey = true
	return &handler{g: g, rules: r, next: next}
}

// With returns a middleware applying r — exactly r, not merged with the
// Config's Rules (nil Methods still means POST and PATCH) — for one route.
func (g *Guard) With(r Rules) func(http.Handler) http.Handler {
	c := compileRules(r)
	return func(next http.Handler) http.Handler {
		return &handler{g: g, rules: c, next: next}
	}
}

// Final marks the outcome of the keyed request (or Do call) whose context
// is ctx as final: whatever the handler answers from now on — a 5xx, or a
// panic, stored as a 500 — is stored and replayed, and the request is never
// executed again under its key. Call it once the handler has done
// something that must not be repeated, before anything acknowledges it
// (before the response is written) and before any step that might still
// fail.
//
// The mark is recorded in the table at once, by one UpdateItem conditioned
// on the claim's owner (which also renews the lease): from then on the
// record is never taken over — not after a failed completion, not after
// the holder crashes — and duplicates get 409 until the outcome is stored
// (ErrOutcomeUnknown once the holder's lease has lapsed without it). On a
// route with Rules.StoreServerErrors the claim itself carries the mark and
// Final costs nothing.
//
// It returns nil when the mark is recorded; ErrNotClaimed when ctx holds no
// key; ErrLeaseLost when the claim is lost (the handler's context is then
// canceled); and an error matching ErrUnavailable when the write failed
// (after a few attempts within the lease): the outcome will still be stored
// as final when the handler returns, but until then a takeover after the
// lease lapses is not excluded, so a handler that can still back out
// should.
func Final(ctx context.Context) error {
	c, ok := ctx.Value(claimKey{}).(*claimState)
	if !ok {
		return ErrNotClaimed
	}
	return c.markFinal(ctx)
}

// Fence returns the fencing token of the claim ctx runs under, and false
// when ctx holds no claimed key. Every claim of a key — the first, and each
// takeover after a lapsed lease — gets a larger token than the claim before
// it: the token is the claim time in Unix milliseconds, and a claim only
// succeeds where the stored lease (at least the previous token) or the
// record's expiry (later still) is at or below the claimer's time, so the
// claim's own condition keeps the tokens increasing whatever the clocks. A handler whose side effect is a conditional write of its own can
// carry the token and refuse a smaller one ("fence < :token"), so that a
// holder that lost its lease and still runs cannot overwrite its
// successor's work — the one overlap the middleware cannot stop itself.
func Fence(ctx context.Context) (int64, bool) {
	c, ok := ctx.Value(claimKey{}).(*claimState)
	if !ok {
		return 0, false
	}
	return c.fence, true
}
