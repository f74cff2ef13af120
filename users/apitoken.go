package users

import (
	"context"
	"errors"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/obs"
)

// API clients — a mobile app, a CLI, a single-page app on another origin —
// cannot hold a browser session. They log in once with the password (and
// the code) and get two tokens:
//
//   - an access token: short-lived (APITokenConfig.AccessLifetime, 10 min),
//     signed and self-contained, sent as "Authorization: Bearer". Checking
//     it costs the one strongly consistent GetItem of the account that
//     every authenticated request already makes, and it carries what that
//     read is compared with: the account's credential version and session
//     epoch, and its family's ID, which must still be listed on the
//     account. A password change or reset, "log out everywhere", a factor
//     change, a disabled account or the family's revocation therefore end
//     it at once, on every instance.
//   - a refresh token: 256 random bits (plus the family's own 128-bit
//     secret), stored only as keyed hashes, that buys a new pair. It is
//     single use: a refresh moves the family to the next generation with
//     one conditional write, and a token of an earlier generation that
//     comes back means that two parties hold the family's tokens — the
//     client and whoever copied them. The whole family is revoked (RFC 9700
//     §4.14.2, refresh token rotation with reuse detection): both lose
//     access, and the owner is told.
//
// A family is one client install. Its item (apif#<id>) holds the current
// token's keyed hash and generation, and dies by its idle and absolute
// lifetimes (checked in every write's condition, and by TTL). The account
// lists its live families (a bounded map, MaxClients entries of a few dozen
// bytes), so that revoking one is felt by its access tokens at once and the
// sessions page lists API clients without another read.

// purposeAPIAccess keys the MAC of access tokens; purposeAPIRefreshMAC
// the MAC of refresh tokens; purposeAPIRefresh the keyed hashes of refresh
// tokens and family secrets. All are this package's own purposes: no other
// key of the keyring can make a token or derive a stored hash.
const (
	purposeAPIAccess     dynaguard.Purpose = "api-access"
	purposeAPIRefreshMAC dynaguard.Purpose = "api-refresh-token"
	purposeAPIRefresh    dynaguard.Purpose = "api-refresh"
)

// APITokenConfig configures bearer access tokens and refresh-token families
// for API clients (IssueAPITokens). Every field has a safe default.
type APITokenConfig struct {
	// AccessLifetime is how long an access token is accepted. It bounds
	// nothing that matters for revocation — every revocation ends access
	// tokens at once — only how often a client refreshes. Default 10 min.
	AccessLifetime time.Duration
	// IdleLifetime ends a family that is not refreshed for this long.
	// Default 7 days.
	IdleLifetime time.Duration
	// AbsoluteLifetime ends a family this long after its login, however
	// often it was refreshed: the client must log in again with the
	// password (and code). Default 30 days (NIST SP 800-63B's limit for
	// reauthentication at AAL1; set 24 h for AAL2).
	AbsoluteLifetime time.Duration
	// GraceWindow, when set, is how long after a rotation the token just
	// rotated is answered with ErrRefreshRotated — "a concurrent request
	// already rotated it; use what that request got" — instead of revoking
	// the family. It never issues a second pair (there is never more than
	// one valid branch); it only spares a client whose two threads raced
	// the same refresh. Whoever replays a stolen token within the window
	// gets nothing and is not detected; after it, the replay revokes the
	// family. Default 0: every reuse revokes (RFC 9700's rule; Auth0's
	// default "reuse interval" is 0 too). A few seconds is a reasonable
	// value for clients that cannot serialise their refreshes.
	GraceWindow time.Duration
	// MaxClients bounds the families of one account. They are listed on
	// the account item (up to about 120 bytes each), which every request
	// reads: the default keeps the largest possible account item under
	// 4 KB, one read unit. A login over it first drops the account's dead
	// entries, then evicts its oldest client (api_token.revoked, reason
	// evicted). Default 10; at most 50.
	MaxClients int
}

func (c APITokenConfig) withDefaults() APITokenConfig {
	if c.AccessLifetime <= 0 {
		c.AccessLifetime = 10 * time.Minute
	}
	if c.IdleLifetime <= 0 {
		c.IdleLifetime = 7 * 24 * time.Hour
	}
	if c.AbsoluteLifetime <= 0 {
		c.AbsoluteLifetime = 30 * 24 * time.Hour
	}
	if c.IdleLifetime > c.AbsoluteLifetime {
		c.IdleLifetime = c.AbsoluteLifetime
	}
	if c.GraceWindow < 0 {
		c.GraceWindow = 0
	}
	if c.GraceWindow > time.Minute {
		c.GraceWindow = time.Minute
	}
	if c.AccessLifetime > c.IdleLifetime {
		c.AccessLifetime = c.IdleLifetime // an access token never outlives its family's idle end
	}
	if c.MaxClients <= 0 {
		c.MaxClients = 10
	}
	if c.MaxClients > 50 {
		c.MaxClients = 50
	}
	return c
}

// Errors of API tokens. Each matches ErrInvalidAPIToken except
// ErrRefreshRotated, which refuses nothing for good.
var (
	// ErrInvalidAPIToken: an access or refresh token is malformed, forged,
	// expired, of a revoked family, or no longer valid because the
	// password, the session epoch or the account's state changed. Every
	// case is this one error (401, WWW-Authenticate: Bearer
	// error="invalid_token"), so the answer says nothing about which.
	ErrInvalidAPIToken = errors.New("users: invalid, expired or revoked API token")
	// ErrRefreshReused: a refresh token that was already rotated was
	// presented; its family is now revoked. It matches ErrInvalidAPIToken.
	ErrRefreshReused error = &reusedError{}
	// ErrRefreshRotated: the refresh token was rotated a moment ago by a
	// concurrent request, within APITokenConfig.GraceWindow. Nothing was
	// issued or revoked; the client should use the pair the other request
	// got (409).
	ErrRefreshRotated = errors.New("users: refresh token already rotated by a concurrent request")
)

type reusedError struct{}

func (*reusedError) Error() string {
	return "users: refresh token reused; its family is revoked"
}

// Is makes errors.Is(ErrRefreshReused, ErrInvalidAPIToken) true.
func (*reusedError) Is(target error) bool { return target == ErrInvalidAPIToken }

// APILogin is a token login: the login name and password, the code for an
// account with a second factor (a TOTP code or a recovery code, checked in
// the same request), and the client as the application resolved it.
type APILogin struct {
	Login    string
	Password string
	Code     string
	Client   Client
}

// APITokens is a token pair.
type APITokens struct {
	// AccessToken goes in "Authorization: Bearer"; RefreshToken buys the
	// next pair (once). Both are credentials: never log them.
	AccessToken  string
	RefreshToken string
	// ExpiresIn is the access token's lifetime: AccessLifetime, or less
	// when the family's absolute lifetime ends sooner.
	ExpiresIn time.Duration
	// ClientID names the family (for the sessions page); it is not secret
	// and authorises nothing on its own.
	ClientID string
}

// APIClient is one live API client (a refresh-token family) of an account.
type APIClient struct {
	ID      string
	Name    string // the User-Agent at login, shortened
	Created time.Time
}

// maxClientName bounds the stored User-Agent of a client.
const maxClientName = 64

// listRetries bounds the attempts of a token login to add its family to
// an account whose client list concurrent logins keep changing.
const listRetries = 3

// IssueAPITokens logs an API client in: the password is checked exactly as
// by Authenticate — the same throttle counters, the same one verification
// in a hashing slot, the same equal work for unknown, wrong and disabled —
// except that API clients have no device cookie, so the unknown-client
// limits (Throttle.UnknownClients) always apply. For an account with TOTP
// the code is checked in the same request through CompleteLogin's path
// (its counters, the account's failure cap, the step used once); without
// a code the answer is ErrSecondFactorRequired, after the password was
// counted like any attempt.
//
// It then creates a refresh-token family and lists it on the account in
// one TransactWriteItems, conditioned on the credential version and
// session epoch the password was checked against and on the account still
// being enabled: a login that raced a password change fails (ErrConflict)
// rather than issue tokens for a password that is no longer the account's.
//
// Cost: a login's calls (see Authenticate; for TOTP, a code's too) plus
// that one TransactWriteItems (a Put of the family, an Update of the
// account: 2 × (1 + the account's size in KB) write units).
func (s *Users) IssueAPITokens(ctx context.Context, l APILogin) (_ *APITokens, err error) {
	ip := l.Client.IP
	kind, key, legacy := normalizeLoginLegacy(l.Login)
	u, err := s.attempt(ctx, target{kind: kind, key: key, legacy: legacy, noDevice: true}, l.Password, ip)
	s.refusal(ctx, dynaguard.EventLoginFailed, "", ip, &err)
	if err != nil {
		return nil, err
	}
	if u.TOTPEnabled {
		if l.Code == "" {
			return nil, ErrSecondFactorRequired
		}
		done, err := s.secondFactor(ctx, u.ID, authHash(s.authKeys[0], u), l.Code, ip)
		s.factorEvent(ctx, u.ID, ip, &err)
		if errors.Is(err, ErrNoPendingLogin) {
			// The account changed between the password and the code.
			return nil, ErrConflict
		}
		if err != nil {
			return nil, err
		}
		u = done
	}
	now := s.now()
	f := newFamily(u, clientName(l.Client.UserAgent), now)
	evicted, err := s.st.createFamily(ctx, u, u, f, s.keys.Key(purposeAPIRefresh), now, s.apiTokens)
	for range listRetries {
		if !errors.Is(err, ErrConflict) {
			break
		}
		// Another login of the account changed its client list at the
		// same moment (the first two logins both creating it, or two at
		// the limit evicting the same client). Again with the list as it
		// is now — still on condition of the credential version and
		// epoch the password was checked against (a GetItem and a
		// TransactWriteItems more, on this rare path only). A conflict
		// that outlasts the retries is answered ErrConflict; an account
		// whose password changed meanwhile fails every retry the same way.
		fresh, gerr := s.st.getUser(ctx, u.ID)
		if gerr != nil {
			return nil, gerr
		}
		if fresh == nil {
			return nil, ErrInvalidCredentials
		}
		if fresh.credVersion != u.credVersion || fresh.epoch != u.epoch || fresh.Disabled {
			return nil, ErrConflict
		}
		evicted, err = s.st.createFamily(ctx, u, fresh, f, s.keys.Key(purposeAPIRefresh), now, s.apiTokens)
	}
	if err != nil {
		return nil, err
	}
	for _, id := range evicted {
		s.event(ctx, dynaguard.EventAPITokenRevoked, "evicted", u.ID, ip)
		s.log.InfoContext(ctx, "users: API client evicted for a new one", "user", u.ID, "client", id)
	}
	s.event(ctx, dynaguard.EventLoginSucceeded, "api", u.ID, ip)
	s.event(ctx, dynaguard.EventAPITokenIssued, "", u.ID, ip)
	s.log.InfoContext(ctx, "users: API client logged in", "user", u.ID, "client", f.id)
	return s.pair(f, now), nil
}

// pair makes the token pair of family f at its current generation.
func (s *Users) pair(f *family, now time.Time) *APITokens {
	return &APITokens{
		AccessToken:  s.accessToken(f, now),
		RefreshToken: s.refreshToken(f),
		ExpiresIn:    s.accessExpiry(f, now).Sub(now),
		ClientID:     f.id,
	}
}

// RefreshAPITokens exchanges a refresh token for a new pair, with ONE
// TransactWriteItems: a ConditionCheck that the account still lists the
// family, with the credential version and session epoch it was issued
// under, and is not disabled; and an Update that moves the family from the
// presented token's hash to the new one (generation + 1) only if the
// presented hash is the current one and the family is live (idle and
// absolute lifetimes). Capacity: 2 × (the account's size in KB, rounded up)
// + 2 write units; no read.
//
// When the write is refused, DynamoDB returns the family as it was
// (ReturnValuesOnConditionCheckFailure), which says why in the same round
// trip:
//
//   - the token names no live family, or not with the family's own secret
//     (someone who saw a client ID in an access token cannot name it): ErrInvalidAPIToken;
//   - the token is the one rotated last, within GraceWindow: ErrRefreshRotated
//     (nothing issued, nothing revoked);
//   - any other token of the family — an earlier generation: ErrRefreshReused,
//     after the family is revoked (one more TransactWriteItems: its item
//     deleted and its entry removed from the account, which ends its access
//     tokens at once), api_token.reused, and MessageAPITokenReused to the owner;
//   - the account changed (password, epoch, disabled, family signed out):
//     ErrInvalidAPIToken.
//
// A token this keyring did not make (its MAC, purposeAPIRefreshMAC) is
// refused in memory, with no call: forging one for a chosen account costs
// that account nothing. A storage error issues nothing (ErrUnavailable).
func (s *Users) RefreshAPITokens(ctx context.Context, refreshToken string, c Client) (*APITokens, error) {
	t, ok := s.parseRefresh(refreshToken)
	if !ok {
		s.event(ctx, dynaguard.EventBearerRefused, "malformed", "", c.IP)
		return nil, ErrInvalidAPIToken
	}
	now := s.now()
	f, why, err := s.st.rotateFamily(ctx, t, s.keys.Keys(purposeAPIRefresh), s.apiTokens, now)
	switch {
	case err != nil:
		// t.uid is the token's claim, not yet checked: the event names no account.
		s.event(ctx, dynaguard.EventStorageFailure, obs.StorageReason(err), "", c.IP)
		return nil, err
	case why == rotated:
		s.event(ctx, dynaguard.EventAPITokenRefreshed, "", t.uid, c.IP)
		return s.pair(f, now), nil
	case why == inGrace:
		s.event(ctx, dynaguard.EventBearerRefused, "rotated", t.uid, c.IP)
		return nil, ErrRefreshRotated
	case why == reused:
		err := s.st.revokeFamily(ctx, t.uid, t.id, nil, true)
		if errors.Is(err, errNoFamily) {
			// A concurrent presentation of an old token revoked it first;
			// that one told the owner.
			return nil, ErrRefreshReused
		}
		if err != nil {
			// The family is not revoked: nothing was issued either. The
			// reuse is logged; the next presentation tries again.
			s.log.ErrorContext(ctx, "users: refresh token reused; revoking its family failed", "user", t.uid, "client", t.id, "err", err)
			s.event(ctx, dynaguard.EventStorageFailure, obs.StorageReason(err), t.uid, c.IP)
			return nil, err
		}
		s.log.WarnContext(ctx, "users: refresh token reused; family revoked", "user", t.uid, "client", t.id)
		s.event(ctx, dynaguard.EventAPITokenReused, "reuse", t.uid, c.IP)
		if u, err := s.st.getUser(ctx, t.uid); err == nil && u != nil {
			s.notify(ctx, Message{Kind: MessageAPITokenReused, To: u.Email, UserID: u.ID, IP: c.IP})
		}
		return nil, ErrRefreshReused
	case why == expired:
		// The family's own secret matched: the user ID is the family's.
		s.event(ctx, dynaguard.EventBearerRefused, why.String(), t.uid, c.IP)
		return nil, ErrInvalidAPIToken
	default:
		// Revoked, or refused by the account's check — which may have run
		// before the family's secret was: the user ID is only a claim.
		s.event(ctx, dynaguard.EventBearerRefused, why.String(), "", c.IP)
		return nil, ErrInvalidAPIToken
	}
}

// RevokeAPIToken ends the family of refreshToken — the client's logout:
// every token of the family stops working at once. It needs a token of the
// family (any generation: its secret is the family's), so a client ID
// alone revokes nothing. It returns nil for an unknown, forged or already
// revoked token too, so that it answers nothing about tokens it did not
// issue (answer 204 in every case); only a storage error is an error.
// A token this keyring did not make costs no call. Otherwise: one TransactWriteItems (the family's Delete on condition of its
// secret, the account entry's removal).
func (s *Users) RevokeAPIToken(ctx context.Context, refreshToken string, c Client) error {
	t, ok := s.parseRefresh(refreshToken)
	if !ok {
		return nil
	}
	keys := s.keys.Keys(purposeAPIRefresh)
	secrets := make([][]byte, len(keys))
	for i, k := range keys {
		secrets[i] = familyHash(k, t.fid[:], t.fs[:])
	}
	err := s.st.revokeFamily(ctx, t.uid, t.id, secrets, true)
	if errors.Is(err, errNoFamily) {
		return nil
	}
	if err != nil {
		return err
	}
	s.event(ctx, dynaguard.EventAPITokenRevoked, "logout", t.uid, c.IP)
	return nil
}

// APIClients lists u's live API clients, oldest first, from the account as
// read (no DynamoDB call): the families still listed with the account's
// current credential version and session epoch.
func (s *Users) APIClients(u *User) []APIClient {
	if u == nil {
		return nil
	}
	var out []APIClient
	for _, e := range u.entries() {
		if e.liveAt(u, s.now()) {
			out = append(out, APIClient{ID: e.id, Name: e.name, Created: time.Unix(e.created, 0)})
		}
	}
	return out
}

// RevokeAPIClient signs out u's API client id (from APIClients) — the
// sessions page's button: the family's item is deleted and its entry
// removed from the account in one TransactWriteItems, so its access tokens
// stop at once. Revoking a client that is already gone is not an error.
func (s *Users) RevokeAPIClient(ctx context.Context, u *User, id string, c Client) error {
	if u == nil || !validFamilyID(id) {
		return nil
	}
	err := s.st.revokeFamily(ctx, u.ID, id, nil, false)
	if errors.Is(err, errNoFamily) {
		return nil
	}
	if err != nil {
		return err
	}
	s.event(ctx, dynaguard.EventAPITokenRevoked, "user", u.ID, c.IP)
	return nil
}

// IsBearer reports whether the request's user was authenticated by a
// bearer access token rather than a session.
func IsBearer(ctx context.Context) bool {
	l, ok := loadedFrom(ctx)
	return ok && l.bearer
}

// clientName is the name a family is listed under: the User-Agent,
// shortened on a character boundary, without control characters (C0, DEL,
// C1) and without the invisible and bidi formatting characters that the
// identifier checks refuse (invisible): the name is shown to the owner on
// the sessions page, where a right-to-left override could make one client
// pass for another.
func clientName(ua string) string {
	ua = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || invisible(r) {
			return -1
		}
		return r
	}, ua)
	if len(ua) > maxClientName {
		cut := maxClientName
		for cut > 0 && !utf8.RuneStart(ua[cut]) {
			cut--
		}
		ua = ua[:cut]
	}
	if ua == "" {
		return "API client"
	}
	return ua
}
