package users

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"strings"
	"time"

	"github.com/alexedwards/scs/v2"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/totp"
)

// TOTPConfig configures the TOTP second factor (RFC 6238: HMAC-SHA1, six
// digits, 30-second steps — what every authenticator app supports — and
// one step of clock skew either way). Zero fields take the defaults.
type TOTPConfig struct {
	// Issuer names the application in authenticator apps (the otpauth
	// issuer). Set it; without it apps show only the email address.
	Issuer string
	// EnrollTTL is how long an enrolment started with BeginTOTP can be
	// confirmed. Default 10 min.
	EnrollTTL time.Duration
	// PendingTTL is how long the "password verified, second factor
	// pending" state of a two-step login lasts. Default 5 min.
	PendingTTL time.Duration
	// RecoveryCodes is the number of recovery codes in a set. Default 10.
	RecoveryCodes int
}

func (c TOTPConfig) withDefaults() TOTPConfig {
	if c.EnrollTTL <= 0 {
		c.EnrollTTL = 10 * time.Minute
	}
	if c.PendingTTL <= 0 {
		c.PendingTTL = 5 * time.Minute
	}
	if c.RecoveryCodes <= 0 {
		c.RecoveryCodes = 10
	}
	return c
}

// totpParams are the code parameters: the defaults of internal/totp (SHA1,
// 6 digits, 30 s, ±1 step).
var totpParams = totp.Params{}.Defaults()

// Enrollment is a started TOTP enrolment: show URI as a QR code (and
// Secret for typing in by hand), then ask for a code and call ConfirmTOTP
// before Expires.
type Enrollment struct {
	// Secret is the shared secret in base32, as authenticator apps take it
	// typed in.
	Secret string
	// URI is the otpauth://totp/ URI that authenticator apps import from a
	// QR code.
	URI string
	// Expires is when the enrolment lapses unconfirmed.
	Expires time.Time
}

// ---- sealing the secret at rest

// The TOTP secret is stored sealed with AES-256-GCM under the keyring's
// PurposeTOTPSeal key:
//
//	sealed = len(keyID) || keyID || nonce (12 random bytes) || ciphertext || tag
//	ad     = "dynaguard/totp/v1" || 0x00 || state || 0x00 || user ID
//
// The associated data binds it to its account and state ("pending" while
// unconfirmed, "active" once enabled): a sealed secret copied onto another
// account, or a pending one promoted by editing the table, fails to open.
// Random 96-bit nonces are safe here because one key seals only one secret
// per enrolment. The key ID finds the right key after a secret rotation;
// a secret sealed with a previous key is resealed with the current one at
// its next successful use.
const (
	stateActive  = "active"
	statePending = "pending"
)

var errSealed = errors.New("users: TOTP secret cannot be opened")

func totpAD(uid, state string) []byte {
	return []byte("dynaguard/totp/v1\x00" + state + "\x00" + uid)
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func (s *Users) sealSecret(uid, state string, secret []byte) ([]byte, error) {
	k := s.keys.Key(dynaguard.PurposeTOTPSeal)
	aead, err := newGCM(k.Secret)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, 1+len(k.ID)+aead.NonceSize()+len(secret)+aead.Overhead())
	out = append(out, byte(len(k.ID)))
	out = append(out, k.ID...)
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	out = append(out, nonce...)
	return aead.Seal(out, nonce, secret, totpAD(uid, state)), nil
}

// openSecret opens a sealed secret; current reports whether it was sealed
// with the current key.
func (s *Users) openSecret(uid, state string, sealed []byte) (secret []byte, current bool, err error) {
	if len(sealed) < 1 || len(sealed) < 1+int(sealed[0]) {
		return nil, false, errSealed
	}
	id, rest := string(sealed[1:1+int(sealed[0])]), sealed[1+int(sealed[0]):]
	for i, k := range s.keys.Keys(dynaguard.PurposeTOTPSeal) {
		if k.ID != id {
			continue
		}
		aead, err := newGCM(k.Secret)
		if err != nil {
			return nil, false, err
		}
		if len(rest) < aead.NonceSize()+aead.Overhead() {
			return nil, false, errSealed
		}
		secret, err := aead.Open(nil, rest[:aead.NonceSize()], rest[aead.NonceSize():], totpAD(uid, state))
		if err != nil {
			return nil, false, errSealed
		}
		return secret, i == 0, nil
	}
	return nil, false, errSealed
}

// ---- recovery codes

// Recovery codes are 80 random bits each, written as 16 characters of
// Crockford's base32 in groups of four ("7kq2-m9xd-…"): no I, L, O or U, and
// when typed, case, spaces and dashes are ignored and I/L/O read as 1/1/0.
// They are stored as SHA-256 of (user ID, code): with 80 bits per code and
// the user ID as salt, a copy of the table is no help in finding one.
const (
	recoveryAlphabet = "0123456789abcdefghjkmnpqrstvwxyz"
	recoveryBytes    = 10 // 80 bits → 16 characters
	recoveryLen      = 16
)

var recoveryEncoding = base32.NewEncoding(recoveryAlphabet).WithPadding(base32.NoPadding)

// newRecoveryCodes returns n fresh codes for display and their hashes for
// storage.
func newRecoveryCodes(uid string, n int) (codes, hashes []string) {
	seen := map[string]bool{}
	for len(codes) < n {
		var b [recoveryBytes]byte
		if _, err := rand.Read(b[:]); err != nil {
			panic(err)
		}
		c := recoveryEncoding.EncodeToString(b[:])
		if seen[c] {
			continue
		}
		seen[c] = true
		codes = append(codes, c[0:4]+"-"+c[4:8]+"-"+c[8:12]+"-"+c[12:16])
		hashes = append(hashes, recoveryHash(uid, c))
	}
	return codes, hashes
}

func recoveryHash(uid, normalized string) string {
	sum := sha256.Sum256([]byte("dynaguard recovery code v1\x00" + uid + "\x00" + normalized))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// normalizeRecovery returns the canonical form of a typed recovery code.
func normalizeRecovery(code string) (string, bool) {
	var b strings.Builder
	for _, r := range strings.ToLower(code) {
		switch r {
		case ' ', '-', '\t':
			continue
		case 'i', 'l':
			r = '1'
		case 'o':
			r = '0'
		}
		if !strings.ContainsRune(recoveryAlphabet, r) {
			return "", false
		}
		b.WriteRune(r)
		if b.Len() > recoveryLen {
			return "", false
		}
	}
	if b.Len() != recoveryLen {
		return "", false
	}
	return b.String(), true
}

// ---- enrolment and management

// BeginTOTP starts a TOTP enrolment for u, the session's user: a fresh
// 160-bit secret, stored sealed on the account as pending (an earlier
// unconfirmed enrolment is replaced). Nothing changes at login until
// ConfirmTOTP.
//
// It needs a Proof (the password: the account has no second factor yet),
// checked like a login (see Proof): a session alone cannot tie the account
// to an authenticator of its holder's choosing. A session that is u's
// login moves to a new token with a fresh credential check. Errors: any
// refused proof (ErrProofRequired), ErrTOTPEnabled, ErrBusy,
// ErrUnavailable.
//
// Cost: the step-up (that of a login), then one UpdateItem.
func (s *Users) BeginTOTP(ctx context.Context, sm *scs.SessionManager, u *User, p Proof, c Client) (*Enrollment, error) {
	if u == nil {
		return nil, ErrNotFound
	}
	if u.TOTPEnabled {
		return nil, ErrTOTPEnabled
	}
	fresh, err := s.stepUp(ctx, u, p, c)
	if err != nil {
		return nil, err
	}
	if fresh.TOTPEnabled {
		return nil, ErrTOTPEnabled
	}
	secret, err := totp.NewSecret()
	if err != nil {
		return nil, err
	}
	sealed, err := s.sealSecret(u.ID, statePending, secret)
	if err != nil {
		return nil, err
	}
	lapses := s.now().Add(s.totp.EnrollTTL).Truncate(time.Second)
	if err := s.st.beginTOTP(ctx, u.ID, sealed, lapses); err != nil {
		return nil, err
	}
	if err := s.steppedUp(ctx, sm, fresh, c); err != nil {
		return nil, err
	}
	return &Enrollment{
		Secret:  totp.EncodeSecret(secret),
		URI:     totp.URI(secret, s.totp.Issuer, fresh.Email, totpParams),
		Expires: lapses,
	}, nil
}

// ConfirmTOTP completes the enrolment BeginTOTP started, with code from the
// authenticator app (proving it holds the secret) and a Proof (the
// password) checked again in this request: TOTP is enabled, and the
// returned recovery codes — show them once; they are stored only as hashes
// — replace any earlier set. The confirming code's time step counts as
// used. Turning a second factor on ends every other session of the account
// (the session epoch goes up in the same write); the request's session,
// when it is u's login, continues under a new token. The Mailer gets a
// MessageTOTPEnabled.
//
// The enrolment code is a code: it is throttled and counted exactly like
// CompleteLogin's attempts, on the same counters (Throttle.PerAccount per
// account and client address, PerIP per address), and counted on the
// account's consecutive failures before it is checked, under
// Throttle.MaxFailures. A throttled attempt gets a *ThrottledError before
// any check; a confirmed enrolment clears the failure count.
//
// What it costs: the step-up (that of a login), then one BatchGetItem
// (strongly consistent: the two counters and the account), two conditional
// UpdateItems (count the attempt on the (account, address) counter and on
// the account), then on success one UpdateItem — conditioned on the
// enrolment being the one the code was checked against — one DeleteItem
// (the counter) and the session store's RevokeAll; on failure one
// UpdateItem (the address's failure count).
//
// Errors: ErrProofRequired (and its cause), ErrInvalidCode,
// *ThrottledError, ErrNoEnrollment (none, lapsed, or replaced by a newer
// BeginTOTP), ErrTOTPEnabled, ErrNotFound, ErrBusy, ErrUnavailable.
func (s *Users) ConfirmTOTP(ctx context.Context, sm *scs.SessionManager, u *User, p Proof, code string, c Client) (recoveryCodes []string, err error) {
	if u == nil {
		return nil, ErrNotFound
	}
	if u.TOTPEnabled {
		return nil, ErrTOTPEnabled
	}
	if _, err := s.stepUp(ctx, u, p, c); err != nil {
		return nil, err
	}
	now := s.now()
	k := s.keysFor("mfa\x00"+u.ID, c.IP, now)
	items, err := s.st.batchGet(ctx, k.pair, k.ip, userPK(u.ID))
	if err != nil {
		return nil, err
	}
	pair, pairExists, wait := s.factorCounters(items, k, now)
	if wait > 0 {
		return nil, s.throttled(wait)
	}
	var fresh *User
	if it := items[userPK(u.ID)]; it != nil {
		if fresh, err = decodeUser(it); err != nil {
			return nil, errors.Join(ErrUnavailable, err)
		}
	}
	maxFails := int64(s.throttle.MaxFailures)
	switch {
	case fresh == nil:
		return nil, ErrNotFound
	case fresh.TOTPEnabled:
		return nil, ErrTOTPEnabled
	case fresh.totpPending == nil || now.Unix() >= fresh.pendingExp:
		return nil, ErrNoEnrollment
	case fresh.fails >= maxFails:
		return nil, &ThrottledError{Locked: true}
	}
	if err := s.reservePair(ctx, k, pair, pairExists, now); err != nil {
		return nil, err
	}
	if err := s.st.countEnrolAttempt(ctx, fresh, maxFails); err != nil {
		return nil, err
	}
	secret, _, err := s.openSecret(u.ID, statePending, fresh.totpPending)
	if err != nil {
		s.log.WarnContext(ctx, "users: pending TOTP secret cannot be opened; the enrolment must start again", "user", u.ID)
		return nil, ErrNoEnrollment
	}
	step, ok := totp.Match(secret, code, now, -1, totpParams)
	if !ok {
		// The account's failure is already counted (countEnrolAttempt).
		if err := s.st.countIPFailure(ctx, k.ip, now, k.ipEnd); err != nil {
			return nil, err
		}
		return nil, ErrInvalidCode
	}
	sealed, err := s.sealSecret(u.ID, stateActive, secret)
	if err != nil {
		return nil, err
	}
	codes, hashes := newRecoveryCodes(u.ID, s.totp.RecoveryCodes)
	updated, err := s.st.confirmTOTP(ctx, fresh, sealed, step, hashes, now, maxFails)
	if err != nil {
		return nil, err
	}
	if err := s.st.deleteItem(ctx, k.pair); err != nil {
		// TOTP is on; only the counter was not cleared, and it expires
		// with its window.
		s.log.WarnContext(ctx, "users: second-factor attempt counter not cleared after TOTP was enabled", "user", u.ID, "err", err)
	}
	s.log.InfoContext(ctx, "users: TOTP enabled", "user", u.ID)
	s.notify(ctx, Message{Kind: MessageTOTPEnabled, To: updated.Email, UserID: u.ID, IP: c.IP})
	s.keepCodes(ctx, sm, updated, c)
	return codes, nil
}

// DisableTOTP turns the second factor off: the secret, its last step and
// the recovery codes are removed, and the session epoch goes up, in one
// UpdateItem. It needs a Proof — password and a current TOTP or recovery
// code — checked like a login in this request. Every other session of the
// account ends; the request's session, when it is u's login, continues
// under a new token. The Mailer gets a MessageTOTPDisabled.
// ErrTOTPNotEnabled when it is off.
//
// Cost: the step-up (a login and a second-factor code), one UpdateItem and
// the session store's RevokeAll.
func (s *Users) DisableTOTP(ctx context.Context, sm *scs.SessionManager, u *User, p Proof, c Client) error {
	if u == nil {
		return ErrNotFound
	}
	if !u.TOTPEnabled {
		return ErrTOTPNotEnabled
	}
	if _, err := s.stepUp(ctx, u, p, c); err != nil {
		return err
	}
	updated, err := s.st.disableTOTP(ctx, u.ID)
	if err != nil {
		return err
	}
	s.log.InfoContext(ctx, "users: TOTP disabled", "user", u.ID)
	s.notify(ctx, Message{Kind: MessageTOTPDisabled, To: updated.Email, UserID: u.ID, IP: c.IP})
	return s.factorsChanged(ctx, sm, updated, c, true)
}

// RemoveTOTP turns the second factor of account id off without a proof:
// for administrators, once they have confirmed the owner's identity by
// other means (lost device and recovery codes). Every session of the
// account ends.
func (s *Users) RemoveTOTP(ctx context.Context, id string) error {
	u, err := s.st.disableTOTP(ctx, id)
	if err != nil {
		return err
	}
	s.revokeAll(ctx, id, "")
	s.log.InfoContext(ctx, "users: TOTP disabled", "user", id)
	s.notify(ctx, Message{Kind: MessageTOTPDisabled, To: u.Email, UserID: id})
	return nil
}

// RegenerateRecoveryCodes replaces u's recovery codes with a new set and
// returns them; show them once. One UpdateItem replaces the set (the old
// codes stop working at the moment the new ones start) and raises the
// session epoch: every other session ends, the request's session, when it
// is u's login, continues under a new token. It needs a Proof (password and
// a current TOTP or recovery code) and TOTP enabled (ErrTOTPNotEnabled).
// The Mailer gets a MessageRecoveryCodesRegenerated.
//
// Cost: the step-up (a login and a second-factor code), one UpdateItem and
// the session store's RevokeAll.
func (s *Users) RegenerateRecoveryCodes(ctx context.Context, sm *scs.SessionManager, u *User, p Proof, c Client) ([]string, error) {
	if u == nil {
		return nil, ErrNotFound
	}
	if !u.TOTPEnabled {
		return nil, ErrTOTPNotEnabled
	}
	if _, err := s.stepUp(ctx, u, p, c); err != nil {
		return nil, err
	}
	codes, hashes := newRecoveryCodes(u.ID, s.totp.RecoveryCodes)
	updated, err := s.st.setRecoveryCodes(ctx, u.ID, hashes)
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "users: recovery codes replaced", "user", u.ID)
	s.notify(ctx, Message{Kind: MessageRecoveryCodesRegenerated, To: updated.Email, UserID: u.ID, IP: c.IP})
	s.keepCodes(ctx, sm, updated, c)
	return codes, nil
}

// keepCodes moves the session to the new factors after a change that made
// recovery codes, which are shown once: a failure to renew the session is
// logged rather than returned, so the codes are not lost. The change itself
// already ended every session bound to the old epoch, this one included —
// the user logs in again with the new factor.
func (s *Users) keepCodes(ctx context.Context, sm *scs.SessionManager, u *User, c Client) {
	if err := s.factorsChanged(ctx, sm, u, c, true); err != nil {
		s.log.WarnContext(ctx, "users: the session could not move to the new factors; it ends at its next request", "user", u.ID, "err", err)
	}
}
