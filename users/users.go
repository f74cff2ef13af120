package users

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/budget"
	"github.com/dynaguard/dynaguard/internal/obs"
	"github.com/dynaguard/dynaguard/sessionstore"
)

// SessionRegistry is what users needs from the session store: naming a
// session without its token, binding a session to the user who logged in,
// and ending a user's sessions. *sessionstore.Store implements it.
type SessionRegistry interface {
	// ID returns the non-secret ID of the session with this token.
	ID(token string) string
	// Bind records that the session with this token belongs to userID; it
	// takes effect in the same write as the session's next commit.
	Bind(ctx context.Context, token, userID string, info sessionstore.ClientInfo) error
	// RevokeAll ends every session of userID except keepID ("" for none)
	// and returns how many it ended.
	RevokeAll(ctx context.Context, userID, keepID string) (int, error)
}

// Config configures [New]. Table, Keys and Sessions are required; every
// other field has a safe default.
type Config struct {
	// Table holds the accounts, uniqueness markers and throttling counters.
	Table *dynaguard.Table

	// Budget bounds each DynamoDB call this component makes when the
	// request's context has no earlier deadline (middleware.Stack sets one
	// for the whole request from its own Budget). A call past it fails
	// closed: 503 with Retry-After. Default 3 s.
	Budget time.Duration

	// Keys derives the session binding key (PurposeSessionAuth), the keys
	// of throttling counters (PurposeThrottleKey), the device cookie's key
	// (a purpose of this package's own) and, with Pepper, the password
	// pepper (PurposePasswordPepper).
	Keys *dynaguard.Keyring
	// Sessions binds login sessions to users and ends them.
	Sessions SessionRegistry

	// Hasher makes new password hashes. Default DefaultArgon2id.
	Hasher Hasher
	// Legacy hashers verify hashes that Hasher did not make (imported from
	// another system, or made with an older configuration); such a hash is
	// replaced by one from Hasher at the user's next successful login.
	// Default: Bcrypt{}, DjangoPBKDF2{}, DjangoArgon2{}. Set to an empty,
	// non-nil slice to accept only Hasher's own hashes.
	Legacy []Hasher
	// Pepper mixes a secret from Keys into every new password hash
	// (HMAC-SHA256 keyed with PurposePasswordPepper), so a copy of the table
	// alone is not enough to attack the hashes offline. The key's ID is
	// stored with each hash: after a secret rotation, hashes made with the
	// previous secret still verify and are re-peppered at the next login.
	// Keep a previous secret in the keyring for as long as any account may
	// still have a hash made with it — an account whose pepper secret is
	// gone can no longer log in and needs a password reset.
	Pepper bool
	// Policy is the password policy for new passwords.
	Policy Policy
	// Throttle limits login attempts.
	Throttle Throttle

	// HashConcurrency caps the password hash operations running at once in
	// this process; argon2id holds its memory (19 MiB by default) for the
	// whole operation, so this is what bounds memory under a login flood.
	// Default runtime.GOMAXPROCS(0).
	HashConcurrency int
	// HashWait is how long a login waits for a free hashing slot before it
	// fails with ErrBusy. Default 2 s.
	HashWait time.Duration

	// Mailer delivers password reset and email verification links and the
	// security notices of this package (password changed, second factor
	// enabled, a replayed code, ...). RequestReset and
	// RequestEmailVerification need it (ErrNoMailer otherwise).
	Mailer Mailer
	// Tokens configures password reset and email verification tokens.
	Tokens TokenConfig
	// TOTP configures the TOTP second factor.
	TOTP TOTPConfig
	// Passkeys configures passkeys (WebAuthn): off unless its RPID and
	// Origins are set.
	Passkeys PasskeyConfig
	// ReauthAge, when set, is an extra check on every operation that takes
	// a Proof (password and email changes, TOTP on and off, new recovery
	// codes): the session must also have checked a credential within
	// ReauthAge (see AuthTime), or the operation fails with
	// ErrReauthRequired before the proof is looked at. The Proof is the
	// check that counts; this one only narrows the window further. Default
	// 0: no extra check.
	ReauthAge time.Duration

	// LoginURL is where RequireUser sends browsers that are not logged in
	// (303 See Other, with the requested path in the "next" parameter).
	// Default "/login".
	LoginURL string

	Clock  dynaguard.Clock
	Logger *slog.Logger
	// Events receives a security event for every decision: logins,
	// second factors, step-ups, sessions, resets and email changes (see
	// docs/EVENTS.md and dynaguard.Events). Default: the zero Events.
	Events *dynaguard.Events

	// ---- a stolen session is not the account

	// AbsoluteLifetime is how long a login lasts after its last credential
	// check (a login, or a step-up with a Proof): LoadUser ends a session
	// whose check is older, whatever renewals happened since — LogoutOthers,
	// a token renewal, scs's own Lifetime starting over. A copied session
	// cookie that keeps itself alive therefore still dies. Default 24 h
	// (NIST SP 800-63B's reauthentication limit at AAL2); keep it no longer
	// than the session manager's Lifetime.
	AbsoluteLifetime time.Duration

	// ---- online guessing and enumeration (see Throttle)

	// DeviceCookie configures the device cookie that keeps an account's
	// own browsers logging in while guessing from elsewhere is slowed.
	DeviceCookie DeviceCookieConfig
	// Signup limits sign-ups per client address, and chooses what a
	// sign-up with a taken email address answers.
	Signup SignupConfig

	// APITokens configures bearer access tokens and refresh-token
	// families for API clients (IssueAPITokens).
	APITokens APITokenConfig
}

// Users manages accounts, passwords, login throttling and login sessions.
// It is safe for concurrent use.
type Users struct {
	st       *store
	keys     *dynaguard.Keyring
	authKeys []dynaguard.DerivedKey // PurposeSessionAuth, current first: read on every authenticated request
	sessions SessionRegistry
	hasher   Hasher
	legacy   []Hasher
	pepper   bool
	policy   Policy
	throttle Throttle
	limiter  *limiter
	loginURL string
	clock    dynaguard.Clock
	log      *slog.Logger
	ev       *obs.Emitter

	mailer    Mailer
	tokens    TokenConfig
	totp      TOTPConfig
	passkeys  PasskeyConfig
	reauthAge time.Duration
	lifetime  time.Duration

	dummyHash string // a hash of a random password, verified for unknown accounts

	device DeviceCookieConfig
	signup SignupConfig

	apiTokens   APITokenConfig
	accessKeys  []dynaguard.DerivedKey // purposeAPIAccess, current first: read on every bearer request
	refreshKeys []dynaguard.DerivedKey // purposeAPIRefreshMAC, current first
}

// New returns a Users for cfg. It makes no DynamoDB call; it hashes one
// random password (the target of the dummy verification that unknown
// accounts get, so that it costs exactly what a real one costs).
func New(cfg Config) (*Users, error) {
	switch {
	case cfg.Table == nil || cfg.Table.Client == nil || cfg.Table.Name == "":
		return nil, errors.New("users: Config.Table is required")
	case cfg.Keys == nil:
		return nil, errors.New("users: Config.Keys is required")
	case cfg.Sessions == nil:
		return nil, errors.New("users: Config.Sessions is required (a *sessionstore.Store)")
	}
	if err := cfg.Throttle.validate(); err != nil {
		return nil, err
	}
	if err := cfg.DeviceCookie.withDefaults().validate(); err != nil {
		return nil, err
	}
	if err := cfg.Passkeys.validate(); err != nil {
		return nil, err
	}
	ev := obs.New(cfg.Events, "users", cfg.Clock, cfg.Logger)
	u := &Users{
		ev:       ev,
		st:       newStore(ev.Table(budget.Table(cfg.Table, cfg.Budget))),
		keys:     cfg.Keys,
		authKeys: cfg.Keys.Keys(dynaguard.PurposeSessionAuth),
		sessions: cfg.Sessions,
		hasher:   cfg.Hasher,
		legacy:   cfg.Legacy,
		pepper:   cfg.Pepper,
		policy:   cfg.Policy.withDefaults(),
		throttle: cfg.Throttle.withDefaults(),
		loginURL: cfg.LoginURL,
		clock:    dynaguard.ClockOrSystem(cfg.Clock),
		log:      cfg.Logger,

		mailer:    cfg.Mailer,
		tokens:    cfg.Tokens.withDefaults(),
		totp:      cfg.TOTP.withDefaults(),
		passkeys:  cfg.Passkeys.withDefaults(),
		reauthAge: cfg.ReauthAge,

		device: cfg.DeviceCookie.withDefaults(),
		signup: cfg.Signup.withDefaults(),

		apiTokens:   cfg.APITokens.withDefaults(),
		accessKeys:  cfg.Keys.Keys(purposeAPIAccess),
		refreshKeys: cfg.Keys.Keys(purposeAPIRefreshMAC),
	}
	// Tokens carry the key ID in a fixed-size field.
	for _, k := range slices.Concat(u.accessKeys, u.refreshKeys) {
		if len(k.ID) != kidLen {
			return nil, errors.New("users: a keyring key ID is not 8 bytes")
		}
	}
	u.lifetime = cfg.AbsoluteLifetime
	if u.lifetime <= 0 {
		u.lifetime = 24 * time.Hour
	}
	if u.hasher == nil {
		u.hasher = DefaultArgon2id
	}
	if u.legacy == nil {
		u.legacy = []Hasher{Bcrypt{}, DjangoPBKDF2{}, DjangoArgon2{}}
	}
	if u.loginURL == "" {
		u.loginURL = "/login"
	}
	if u.log == nil {
		u.log = slog.Default()
	}
	n := cfg.HashConcurrency
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	wait := cfg.HashWait
	if wait <= 0 {
		wait = 2 * time.Second
	}
	u.limiter = newLimiter(n, wait)
	var pw [32]byte
	_, _ = rand.Read(pw[:])
	h, err := u.hasher.Hash([]byte(base32.StdEncoding.EncodeToString(pw[:])))
	if err != nil {
		return nil, fmt.Errorf("users: hasher: %w", err)
	}
	if err := checkHashCost(h); err != nil {
		return nil, fmt.Errorf("users: Config.Hasher makes hashes that would be refused: %w", err)
	}
	u.dummyHash = h
	return u, nil
}

// User is an account. Values returned by this package are snapshots: treat
// them as read-only, and re-read (Get) after a change.
type User struct {
	ID       string
	Email    string // as the user typed it; unique under its normalised form
	Username string // as the user typed it; unique under its normalised form
	Disabled bool
	Created  time.Time
	// PasswordChanged is when the current password was set.
	PasswordChanged time.Time
	// EmailVerified: the owner proved control of Email (VerifyEmail, a
	// completed password reset, or a confirmed email change).
	EmailVerified bool
	// PendingEmail is the address a requested email change would move to
	// ("" for none), until PendingEmailExpires. It is not the account's
	// address: it does not log in, receives no reset link and no notice,
	// and is not reserved, until ConfirmEmailChange.
	PendingEmail        string
	PendingEmailExpires time.Time
	// TOTPEnabled: a confirmed TOTP second factor is required at login.
	TOTPEnabled bool
	// RecoveryCodes is the number of unused recovery codes.
	RecoveryCodes int
	// Passkeys is the number of registered passkeys (see Users.Passkeys).
	Passkeys int

	emailKey     string // normalised email (the uniqueness marker's key)
	usernameKey  string // normalised username
	hash         string // encoded password hash
	pepperID     string // DerivedKey.ID of the pepper the hash was made with; "" for none
	credVersion  int64  // bumped by every password change; sessions and one-time tokens bind to it
	epoch        int64  // bumped to end every session ("log out everywhere", disable)
	version      int64  // bumped by every change of the item; optimistic concurrency
	fails        int64  // consecutive failed second-factor codes since the last accepted one
	unknownFails int64  // failed unknown-client passwords counted under the current credential version

	totpSealed  []byte   // sealed TOTP secret (nil: none)
	totpStep    int64    // last accepted TOTP time step (-1: none)
	totpPending []byte   // sealed secret of an unconfirmed enrolment (nil: none)
	pendingExp  int64    // Unix seconds when the unconfirmed enrolment lapses
	recovery    []string // hashes of the unused recovery codes

	handle   []byte   // WebAuthn user handle: 32 random bytes, set at the first passkey registration
	passkeys []string // IDs (credential hashes) of the registered passkeys

	pendingKey string // normalised PendingEmail
	pendingID  string // names the pending change for its cancel link

	apic map[string]types.AttributeValue // API client families listed on the account (apitoken.go)
}

// ConsecutiveFailures returns, as of when u was read, the failed password
// attempts of clients without the account's device cookie still counted
// against it (see Throttle.UnknownClients; the count lapses a window after
// the last failure, or with a password change) plus the failed
// second-factor codes since the last accepted one.
func (u *User) ConsecutiveFailures() int { return int(u.fails + u.unknownFails) }

// Errors. Every error of this package matches one of these with errors.Is;
// WriteError turns them into the matching HTTP problem.
var (
	// ErrInvalidCredentials: the login failed. Unknown account, wrong
	// password, disabled account and throttled attempt all match it, so
	// the caller cannot tell them apart by accident; a throttled attempt is
	// also a *ThrottledError, which says when to retry.
	ErrInvalidCredentials = errors.New("users: invalid login or password")
	// ErrThrottled matches every *ThrottledError.
	ErrThrottled = errors.New("users: too many failed login attempts")
	// ErrBusy: no password hashing slot became free within HashWait. The
	// request was not processed; answer 503 with Retry-After.
	ErrBusy = errors.New("users: too many logins in progress")
	// ErrUnavailable: the table could not be read or written. Nothing was
	// let through; the request may be retried.
	ErrUnavailable = errors.New("users: account storage unavailable")
	// ErrEmailTaken and ErrUsernameTaken: another account has this email
	// address / username (compared in normalised form).
	ErrEmailTaken    = errors.New("users: email address already registered")
	ErrUsernameTaken = errors.New("users: username already taken")
	// ErrNotFound: no account with this ID (or login name, for Lookup).
	ErrNotFound = errors.New("users: no such account")
	// ErrConflict: the account changed since it was read (a concurrent
	// update); re-read it and try again.
	ErrConflict = errors.New("users: account changed concurrently")

	// ErrInvalidToken: a password reset or email verification token is
	// unknown, expired, already used, of the other kind, or no longer valid
	// because the password or the email address changed since it was
	// issued (or the account is gone). Every case is this one error, so the
	// answer says nothing about which.
	ErrInvalidToken = errors.New("users: invalid or expired link")
	// ErrNoMailer: RequestReset or RequestEmailVerification without
	// Config.Mailer.
	ErrNoMailer = errors.New("users: Config.Mailer is required to send links")
	// ErrRateLimited matches every *RateLimitedError.
	ErrRateLimited = errors.New("users: too many requests")

	// ErrInvalidCode: a second-factor code (TOTP or recovery code) is
	// wrong, malformed, or was already used.
	ErrInvalidCode = errors.New("users: invalid code")
	// ErrNoPendingLogin: CompleteLogin without a live "password verified"
	// state — none, expired, or invalidated because the password changed,
	// the user logged out everywhere, the account was disabled or its TOTP
	// removed meanwhile. The user starts over with the password.
	ErrNoPendingLogin = errors.New("users: no login waiting for a second factor")
	// ErrSecondFactorRequired: Login was called for an account with TOTP
	// enabled; use BeginLogin and CompleteLogin.
	ErrSecondFactorRequired = errors.New("users: this account requires a second factor; use BeginLogin")
	// ErrReauthRequired: the action needs a credential check more recent
	// than Config.ReauthAge in this session (only when ReauthAge is set).
	ErrReauthRequired = errors.New("users: a recent login is required")
	// ErrTOTPEnabled: TOTP is already enabled (disable it first).
	ErrTOTPEnabled = errors.New("users: TOTP is already enabled")
	// ErrTOTPNotEnabled: the account has no TOTP second factor.
	ErrTOTPNotEnabled = errors.New("users: TOTP is not enabled")
	// ErrNoEnrollment: ConfirmTOTP without a started enrolment, or after it
	// lapsed (TOTPConfig.EnrollTTL) or was replaced by a newer one.
	ErrNoEnrollment = errors.New("users: no TOTP enrolment in progress")
)

// RateLimitedError is a request refused because too many links were
// requested (TokenConfig). It matches ErrRateLimited.
type RateLimitedError struct {
	RetryAfter time.Duration
}

func (e *RateLimitedError) Error() string {
	return fmt.Sprintf("users: too many requests; retry in %s", e.RetryAfter)
}

// Is makes errors.Is(err, ErrRateLimited) true.
func (e *RateLimitedError) Is(target error) bool { return target == ErrRateLimited }

// ThrottledError is a login attempt refused before any password work
// because of earlier failures. It matches ErrInvalidCredentials and
// ErrThrottled.
type ThrottledError struct {
	// RetryAfter is how long to wait before the next attempt can be made
	// (zero when Locked).
	RetryAfter time.Duration
	// Locked: the account reached Throttle.MaxFailures consecutive failed
	// second-factor codes and cannot log in until its password is reset or
	// it is unlocked (Unlock). Failed passwords never lock an account:
	// at the cap, unknown clients get a RetryAfter as long as what is left
	// of the window, and known devices are not affected.
	Locked bool
}

func (e *ThrottledError) Error() string {
	if e.Locked {
		return "users: too many failed second-factor codes; the password must be reset"
	}
	return fmt.Sprintf("users: too many failed login attempts; retry in %s", e.RetryAfter)
}

// Is makes errors.Is(err, ErrThrottled) and errors.Is(err,
// ErrInvalidCredentials) true.
func (e *ThrottledError) Is(target error) bool {
	return target == ErrThrottled || target == ErrInvalidCredentials
}

// TakenError is a refused Create, ConfirmEmailChange or ChangeUsername: the email
// address, the username, or both belong to another account. It matches
// ErrEmailTaken and/or ErrUsernameTaken.
type TakenError struct {
	Email, Username bool
}

func (e *TakenError) Error() string {
	switch {
	case e.Email && e.Username:
		return "users: email address and username are already registered"
	case e.Email:
		return ErrEmailTaken.Error()
	default:
		return ErrUsernameTaken.Error()
	}
}

// Is matches ErrEmailTaken and ErrUsernameTaken as applicable.
func (e *TakenError) Is(target error) bool {
	return (target == ErrEmailTaken && e.Email) || (target == ErrUsernameTaken && e.Username)
}

func unavailable(op string, err error) error {
	return fmt.Errorf("%w: %s: %w", ErrUnavailable, op, dynaguard.Classify(err))
}

// newUserID returns a random 128-bit ID in lowercase base32 (26 characters).
func newUserID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}

func (s *Users) now() time.Time { return s.clock.Now() }
