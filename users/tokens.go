package users

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/ddb"
)

// TokenConfig configures the one-time tokens of password resets and email
// verification. Zero fields take the defaults.
type TokenConfig struct {
	// ResetTTL is how long a password reset link works. Default 15 min.
	ResetTTL time.Duration
	// VerifyTTL is how long an email verification link works. Default
	// 24 h.
	VerifyTTL time.Duration
	// PerAccount is how many links of one kind an email address (for
	// resets) or an account (for verification) can be sent per Window at
	// the request of one client address (IPv6: its Throttle.IPv6Prefix) —
	// so a stranger's requests never use up the owner's. Default 3.
	PerAccount int
	// PerAccountTotal caps the links of one kind an email address or
	// account can be sent per Window from all client addresses together,
	// so that many addresses cannot flood a mailbox. Default 10 (and at
	// least PerAccount).
	PerAccountTotal int
	// PerIP is how many links of one kind one client address (IPv6: its
	// Throttle.IPv6Prefix) can request per Window, whatever the address
	// asked for; looser than PerAccount because many people can share an
	// address. Default 30.
	PerIP int
	// Window is the length of the fixed, epoch-aligned counting window.
	// Default 1 h.
	Window time.Duration
	// EmailChangeTTL is how long an email change stays pending: its
	// confirmation link (to the new address) and its cancel link (to the
	// current one) work this long. Email change requests are limited like
	// links, per account (PerAccount) and per client address (PerIP).
	// Default 24 h.
	EmailChangeTTL time.Duration
}

func (c TokenConfig) withDefaults() TokenConfig {
	if c.ResetTTL <= 0 {
		c.ResetTTL = 15 * time.Minute
	}
	if c.VerifyTTL <= 0 {
		c.VerifyTTL = 24 * time.Hour
	}
	if c.PerAccount <= 0 {
		c.PerAccount = 3
	}
	if c.PerIP <= 0 {
		c.PerIP = 30
	}
	if c.PerAccountTotal <= 0 {
		c.PerAccountTotal = 10
	}
	c.PerAccountTotal = max(c.PerAccountTotal, c.PerAccount)
	if c.Window < time.Second {
		c.Window = time.Hour
	}
	if c.EmailChangeTTL <= 0 {
		c.EmailChangeTTL = 24 * time.Hour
	}
	return c
}

// Token purposes, stored with each token; a token is only ever consumed
// for its own purpose.
const (
	purposeReset  = "password-reset"
	purposeVerify = "verify-email"
	// An email change's confirmation link (to the new address) and its
	// cancel link (to the current one).
	purposeEmailChange = "email-change"
	purposeEmailCancel = "email-change-cancel"
)

// tokenBytes is the entropy of a one-time token: 256 bits.
const tokenBytes = 32

var tokenEncoding = base64.RawURLEncoding.Strict()

// newToken returns a fresh token (43 URL-safe characters) and the key of
// its item: the token's SHA-256. The table never holds the token itself,
// and 256 random bits make the hash impossible to invert, so no key is
// needed — which also means rotating DYNAGUARD_SECRET never kills a link
// in flight.
func newToken() (token, pk string) {
	var b [tokenBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return tokenEncoding.EncodeToString(b[:]), tokenKeyOf(b[:])
}

func tokenKeyOf(raw []byte) string {
	sum := sha256.Sum256(raw)
	return tokenPK(base64.RawURLEncoding.EncodeToString(sum[:]))
}

// tokenKey returns the item key of a presented token; ok is false for
// anything that is not a well-formed token (rejected without a DynamoDB
// call).
func tokenKey(token string) (pk string, ok bool) {
	if len(token) != tokenEncoding.EncodedLen(tokenBytes) {
		return "", false
	}
	raw, err := tokenEncoding.DecodeString(token)
	if err != nil || len(raw) != tokenBytes {
		return "", false
	}
	return tokenKeyOf(raw), true
}

// issueLimits returns the three counters an issue of purpose is counted
// on — the client address's, the (account, client address) pair's and the
// account's total — for the account (or email address) named by subject,
// and the end of their window.
func (s *Users) issueLimits(purpose, subject string, ip netip.Addr, now time.Time) (ipc, acct, total issueCounter, end time.Time) {
	secs := int64(s.tokens.Window / time.Second)
	index := now.Unix() / secs
	window := strconv.FormatInt(secs, 10) + "." + strconv.FormatInt(index, 10)
	end = time.Unix((index+1)*secs, 0)
	src := s.throttle.source(ip)
	prefix := dynaguard.PrefixThrottle + "tok#" + purpose + "#"
	ipc = issueCounter{pk: prefix + "ip#" + s.throttleID("tok", purpose, "ip", src) + "#" + window, max: s.tokens.PerIP}
	acct = issueCounter{pk: prefix + "acct#" + s.throttleID("tok", purpose, "acct", subject, src) + "#" + window, max: s.tokens.PerAccount}
	total = issueCounter{pk: prefix + "acct#" + s.throttleID("tok", purpose, "acct", subject) + "#" + window, max: s.tokens.PerAccountTotal}
	return ipc, acct, total, end
}

// counted returns the count of a live counter item (0 when absent or dead).
func counted(it item, now time.Time) int64 {
	if it == nil || ddb.Expired(it, now) {
		return 0
	}
	n, _ := ddb.Int(it, attrN)
	return n
}

func rateLimited(end, now time.Time) error {
	d := (end.Sub(now) + time.Second - 1).Truncate(time.Second)
	return &RateLimitedError{RetryAfter: max(d, time.Second)}
}

// decoyUserID names, for an email address without an account, a user item
// that never exists (user IDs are random), shaped like a real one: reading
// it costs what reading the account would.
func (s *Users) decoyUserID(emailKey string) string {
	m := hmac.New(sha256.New, s.keys.Key(dynaguard.PurposeThrottleKey).Secret)
	m.Write([]byte("reset decoy\x00" + emailKey))
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(m.Sum(nil)[:16]))
}

// RequestReset starts a password reset for the account with this email
// address: it sends the Mailer a MessagePasswordReset with a single-use
// token (256 random bits, stored only as its SHA-256, valid for
// TokenConfig.ResetTTL, bound to the account, to its current credential
// version, to the version of its item and to its email address exactly as
// stored) — to the address stored on the account, never to the one typed,
// and never to a pending new address (RequestEmailChange), which has no
// account until it is confirmed.
//
// It answers the same whether or not the address has an account, and does
// the same work:
//
//  1. one BatchGetItem (strongly consistent): the address's uniqueness
//     marker and the three issuing counters (per client address; per email
//     address and requesting client; per email address in all). Over the
//     per-client limit: *RateLimitedError (429), which says nothing about
//     the account. Over a per-account limit: nil, and nothing is sent —
//     the same for an address without an account, whose requests are
//     counted the same way. Because the per-account limit is kept per
//     requesting client, a stranger's requests never use up the owner's;
//     only PerAccountTotal, higher, is shared.
//  2. one GetItem: the account — or, without one, a user item that never
//     exists.
//  3. one TransactWriteItems: the three counters (each conditioned on its
//     limit) and the token's Put — without an account, the Put of a decoy
//     token of the same size that nobody holds (it expires unused). A
//     token is drawn and hashed either way.
//
// What differs: the size of the item read in step 2 (an account versus
// nothing) and the Mailer call — so the Mailer must queue, not deliver
// (see Mailer.Send). A disabled account is treated as absent. Errors: *IdentifierError for a malformed address (which
// no account can have), *RateLimitedError, ErrUnavailable, ErrNoMailer.
func (s *Users) RequestReset(ctx context.Context, email string, ip netip.Addr) (err error) {
	defer s.refusal(ctx, dynaguard.EventResetRefused, "", ip, &err)
	if s.mailer == nil {
		return ErrNoMailer
	}
	key, err := NormalizeEmail(email)
	if err != nil {
		return err
	}
	now := s.now()
	ipc, acct, total, end := s.issueLimits(purposeReset, "email\x00"+key, ip, now)
	marker := markerPK(kindEmail, key)
	items, err := s.st.batchGet(ctx, marker, ipc.pk, acct.pk, total.pk)
	if err != nil {
		return err
	}
	if counted(items[ipc.pk], now) >= int64(ipc.max) {
		return rateLimited(end, now)
	}
	if counted(items[acct.pk], now) >= int64(acct.max) || counted(items[total.pk], now) >= int64(total.max) {
		return nil // silently: the same for addresses with and without an account
	}
	uid, _ := ddb.Str(items[marker], attrUID)
	pk := userPK(s.decoyUserID(key))
	if uid != "" {
		pk = userPK(uid)
	}
	it, err := s.st.get(ctx, pk)
	if err != nil {
		return err
	}
	var u *User
	if uid != "" && it != nil {
		if u, err = decodeUser(it); err != nil {
			return errors.Join(ErrUnavailable, err)
		}
	}
	token, tpk := newToken()
	expires := now.Add(s.tokens.ResetTTL)
	real := u != nil && !u.Disabled
	// Without a (usable) account, a decoy: a token item of the same shape
	// and size for the never-existing user item read above, whose token is
	// dropped here — nobody can present it, and it expires like any other.
	// The address itself is not stored.
	rec := tokenRecord{uid: s.decoyUserID(key), purpose: purposeReset, email: strings.Repeat("-", len(strings.TrimSpace(email))), cv: 1, ver: 1}
	if real {
		rec = tokenRecord{uid: u.ID, purpose: purposeReset, email: u.Email, cv: u.credVersion, ver: u.version}
	}
	out, err := s.st.issueToken(ctx, ipc, acct, total, end, tpk, rec, now, expires)
	if err != nil {
		return err
	}
	switch out {
	case limitedIP:
		return rateLimited(end, now)
	case limitedAccount:
		return nil
	}
	if real {
		s.log.InfoContext(ctx, "users: password reset link issued", "user", u.ID)
		s.event(ctx, dynaguard.EventResetRequested, "", u.ID, ip)
		s.notify(ctx, Message{Kind: MessagePasswordReset, To: u.Email, UserID: u.ID, Token: token, Expires: expires, IP: ip})
	}
	return nil
}

// ResetPassword completes a password reset: it sets newPassword on the
// account the token was issued for and uses the token up. It does not log
// anyone in: the user logs in with the new password (and second factor, if
// enabled — a reset never bypasses it).
//
// The new password is checked against the policy before the token is used,
// so a refused password (a *PolicyError) leaves the link working for the
// next try. Then, in order:
//
//  1. one GetItem of the token and one GetItem of the account (both
//     strongly consistent): an unknown, expired or other-purpose token, or
//     an account that changed in any way since the token was issued (its
//     item version, password or exact email address; or it is disabled or
//     gone), is ErrInvalidToken — before any hashing.
//  2. the policy check and the new hash (in a hashing slot: ErrBusy).
//  3. one DeleteItem that consumes the token (condition: it exists, is
//     live at the time of this write — taken after the hashing, not
//     before — and is a reset token; the deleted item comes back). Of any
//     number of concurrent uses of one token, exactly one gets past here.
//  4. one UpdateItem that stores the hash on condition that the account's
//     credential version and email address are still the token's: a
//     concurrent password change wins, and the token dies with it. The
//     credential version goes up (every session of the account fails its
//     next request, and every other token issued for it dies), the failure
//     count is cleared (unlocking a locked account), and the email address
//     is marked verified.
//
// When the account's address had never been verified, the reset is the
// first proof that the account's holder holds the address — and an
// intruder may have registered it first (pre-registration hijack). Then
// the same write also removes every second factor (TOTP secret, recovery
// codes, an unconfirmed enrolment), its passkeys and any pending email
// change, and raises the session epoch; the Mailer's MessagePasswordChanged
// says so (Reclaimed). With passkeys, step 4 is one TransactWriteItems that
// also deletes their credential items, followed by one GetItem of the
// account.
//
// Otherwise a reset keeps the account's passkeys (like its second
// factor): the MessagePasswordChanged names them (Passkeys; one
// BatchGetItem, only when there are any), so that the owner sees one an
// intruder may have added and can remove it.
//
// Then every session of the account is revoked in the session store, and
// the Mailer gets a MessagePasswordChanged. A storage error never completes
// a reset: it returns ErrUnavailable (after step 3 the token is used up,
// and the user requests a new link).
func (s *Users) ResetPassword(ctx context.Context, token, newPassword string) (_ *User, err error) {
	defer s.refusal(ctx, dynaguard.EventResetRefused, "", netip.Addr{}, &err)
	now := s.now()
	pk, rec, err := s.readToken(ctx, token, purposeReset, now)
	if err != nil {
		return nil, err
	}
	u, err := s.st.getUser(ctx, rec.uid)
	if err != nil {
		return nil, err
	}
	if u == nil || u.Disabled || u.credVersion != rec.cv || u.version != rec.ver || u.Email != rec.email {
		return nil, ErrInvalidToken
	}
	if err := s.policy.CheckPassword(ctx, newPassword, u.Email, u.Username); err != nil {
		return nil, err
	}
	hash, pepper, err := s.hashPassword(ctx, newPassword)
	if err != nil {
		return nil, err
	}
	// The time is taken again for the consume: waiting for a hashing slot
	// (up to HashWait) and the hash itself take seconds under load, and a
	// token must not be usable that long after it expired.
	now = s.now()
	if rec, err = s.st.consumeToken(ctx, pk, purposeReset, now); err != nil {
		return nil, err
	}
	if rec.uid != u.ID {
		return nil, ErrInvalidToken // cannot happen: token items are never rewritten
	}
	reclaim := !u.EmailVerified
	updated, err := s.st.resetPassword(ctx, rec, hash, pepper, now, reclaim, u)
	if err != nil {
		return nil, err
	}
	s.event(ctx, dynaguard.EventResetUsed, "", updated.ID, noAddr)
	s.revokeAll(ctx, updated.ID, "")
	if reclaim {
		s.log.WarnContext(ctx, "users: password reset proved the address for the first time; second factors and pending changes removed, every session ended", "user", updated.ID)
		s.notify(ctx, Message{Kind: MessagePasswordChanged, To: updated.Email, UserID: updated.ID, Reclaimed: true})
		return updated, nil
	}
	s.log.InfoContext(ctx, "users: password reset", "user", updated.ID)
	s.notify(ctx, Message{Kind: MessagePasswordChanged, To: updated.Email, UserID: updated.ID,
		Passkeys: s.passkeyNames(ctx, updated)})
	return updated, nil
}

// RequestEmailVerification sends the Mailer a MessageVerifyEmail for u's
// current email address, with a single-use token valid for
// TokenConfig.VerifyTTL and bound to that exact address, to u's credential
// version and to the version of its item: any change of the account kills
// it. It does
// nothing for an address already verified. One TransactWriteItems (the two
// issuing counters and the token). Errors: *RateLimitedError (PerAccount
// links per account, PerIP per client address, per Window),
// ErrUnavailable, ErrNoMailer.
func (s *Users) RequestEmailVerification(ctx context.Context, u *User, ip netip.Addr) error {
	if s.mailer == nil {
		return ErrNoMailer
	}
	if u.EmailVerified {
		return nil
	}
	now := s.now()
	ipc, acct, total, end := s.issueLimits(purposeVerify, "id\x00"+u.ID, ip, now)
	token, tpk := newToken()
	expires := now.Add(s.tokens.VerifyTTL)
	rec := tokenRecord{uid: u.ID, purpose: purposeVerify, email: u.Email, cv: u.credVersion, ver: u.version}
	out, err := s.st.issueToken(ctx, ipc, acct, total, end, tpk, rec, now, expires)
	if err != nil {
		return err
	}
	if out != issued {
		return rateLimited(end, now)
	}
	s.notify(ctx, Message{Kind: MessageVerifyEmail, To: u.Email, UserID: u.ID, Token: token, Expires: expires, IP: ip})
	return nil
}

// VerifyEmail uses up a verification token and marks the email address it
// was sent to verified: one DeleteItem (the single-use consume) and one
// UpdateItem conditioned on the account still having that address and
// credential version. It returns the updated account, or ErrInvalidToken
// (unknown, expired, used, other purpose, address or password changed,
// account gone) or ErrUnavailable.
//
// Call it from a POST (a page behind the link with a "Verify" button), not
// from the GET of the link itself: mail security scanners open links, and
// would use the token up.
func (s *Users) VerifyEmail(ctx context.Context, token string) (*User, error) {
	pk, ok := tokenKey(token)
	if !ok {
		return nil, ErrInvalidToken
	}
	rec, err := s.st.consumeToken(ctx, pk, purposeVerify, s.now())
	if err != nil {
		return nil, err
	}
	u, err := s.st.markVerified(ctx, rec)
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "users: email address verified", "user", u.ID)
	return u, nil
}

// readToken reads the live one-time token of purpose that token names (one
// strongly consistent GetItem): its key and record, or ErrInvalidToken for
// a malformed, unknown, expired or other-purpose token. It only reads; the
// token is used up later by the one conditional write that consumes it.
func (s *Users) readToken(ctx context.Context, token, purpose string, now time.Time) (string, tokenRecord, error) {
	pk, ok := tokenKey(token)
	if !ok {
		return "", tokenRecord{}, ErrInvalidToken
	}
	it, err := s.st.get(ctx, pk)
	if err != nil {
		return "", tokenRecord{}, err
	}
	rec, ok := decodeToken(it)
	if !ok || rec.purpose != purpose || ddb.Expired(it, now) {
		return "", tokenRecord{}, ErrInvalidToken
	}
	return pk, rec, nil
}
