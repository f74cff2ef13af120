package users

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/alexedwards/scs/v2"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/ddb"
	"github.com/dynaguard/dynaguard/internal/totp"
)

// PendingLogin is a two-step login waiting for its second factor.
type PendingLogin struct {
	UserID string
	// Expires is when the password step must be repeated.
	Expires time.Time
}

// BeginLogin is what a login handler calls after Authenticate succeeded.
// For an account without a second factor it is Login, and pending is false.
// For an account with TOTP it renews the session token and records, for
// TOTPConfig.PendingTTL (default 5 min), that this session verified the
// password — bound, like a login, to the account's credential version and
// session epoch — and returns pending = true: show the code form, and call
// CompleteLogin with what the user types.
//
// A pending session is NOT logged in: LoadUser, RequireUser and
// FromContext see an anonymous session (or, during a re-authentication,
// the login it already had, unchanged). The state costs no DynamoDB call
// (the session's own commit writes it).
func (s *Users) BeginLogin(ctx context.Context, sm *scs.SessionManager, u *User, c Client) (pending bool, err error) {
	if u == nil || u.Disabled {
		return false, ErrInvalidCredentials
	}
	if !u.TOTPEnabled {
		return false, s.login(ctx, sm, u, c)
	}
	if err := sm.RenewToken(ctx); err != nil {
		return false, unavailable("renew session token", err)
	}
	cur, loggedIn := getLogin(ctx, sm, sessionAuth)
	switch {
	case loggedIn && cur.userID == u.ID:
		// A re-authentication: the session stays logged in (with its old
		// authentication time) under its new token, which must be bound
		// like the old one was.
		if err := s.sessions.Bind(ctx, sm.Token(ctx), u.ID, c.info()); err != nil {
			return false, fmt.Errorf("%w: bind session: %w", ErrUnavailable, err)
		}
	case sm.Exists(ctx, sessionAuth):
		// Another account's login does not survive a login attempt as
		// this one.
		sm.Remove(ctx, sessionAuth)
	}
	sm.Put(ctx, sessionPending, sessionLogin{userID: u.ID, at: s.now().Unix(), hash: authHash(s.authKeys[0], u)}.String())
	s.log.InfoContext(ctx, "users: password verified; second factor pending", "user", u.ID)
	return true, nil
}

// Pending returns the session's two-step login waiting for a second
// factor, if there is one and it has not expired. It reads the session
// only (no DynamoDB call).
func (s *Users) Pending(ctx context.Context, sm *scs.SessionManager) (PendingLogin, bool) {
	p, exp, ok := s.pending(ctx, sm)
	if !ok {
		return PendingLogin{}, false
	}
	return PendingLogin{UserID: p.userID, Expires: exp}, true
}

// pending is the session's live pending login and when it expires.
func (s *Users) pending(ctx context.Context, sm *scs.SessionManager) (sessionLogin, time.Time, bool) {
	p, ok := getLogin(ctx, sm, sessionPending)
	if !ok {
		return sessionLogin{}, time.Time{}, false
	}
	at := time.Unix(p.at, 0)
	exp := at.Add(s.totp.PendingTTL)
	now := s.now()
	if !now.Before(exp) || at.After(now.Add(time.Minute)) {
		return sessionLogin{}, time.Time{}, false
	}
	return p, exp, true
}

// CancelLogin drops the session's pending two-step login, if any.
func (s *Users) CancelLogin(ctx context.Context, sm *scs.SessionManager) {
	s.clearPending(ctx, sm)
}

func (s *Users) clearPending(ctx context.Context, sm *scs.SessionManager) {
	if sm.Exists(ctx, sessionPending) {
		sm.Remove(ctx, sessionPending)
	}
}

// CompleteLogin finishes the session's pending two-step login with a
// second factor: a six-digit TOTP code or a recovery code. On success the
// session is logged in exactly as by Login (token renewed, user recorded,
// session bound) and the account is returned.
//
// A code is checked like a password, with the same limits: a throttled
// attempt gets a *ThrottledError before any check (Throttle.PerAccount per
// account and client address, PerIP per address), and every attempt is
// counted before its code is checked — on the (account, address) counter,
// and on the account's consecutive failures, which an accepted code resets
// (a correct password alone does not, for an account with TOTP). Both
// counts are conditional writes, so Throttle.MaxFailures is exact here: of
// any burst of concurrent guesses, from any number of addresses and
// instances, at most MaxFailures codes are checked, and once the count is
// there even the right code is refused (Locked) until a reset or Unlock.
//
// A TOTP code is accepted for the current time step or one either side,
// and each step only once: the step is recorded with one conditional write
// (last step < this step), so the same code cannot complete two logins,
// even sent twice at once to two instances. A code that matches a step
// already used is a replay: it fails, is logged, and the Mailer gets a
// MessageCodeReplayed. A recovery code is consumed by one conditional
// write; the Mailer gets a MessageRecoveryCodeUsed.
//
// What it costs (strongly consistent reads): one BatchGetItem (the two
// counters and the account), two conditional UpdateItems (count the
// attempt on the (account, address) counter and on the account), the check
// in memory, then on success one conditional UpdateItem (the step, or the
// recovery code, resetting the account's count) and one DeleteItem (the
// attempt counter), and the session token's renewal; on failure one
// UpdateItem (the address's failure count).
//
// Errors: ErrInvalidCode, *ThrottledError, ErrNoPendingLogin (none,
// expired, or the account changed since the password step: password
// changed, logged out everywhere, disabled, TOTP removed — start over),
// ErrUnavailable. A storage error never completes the login.
func (s *Users) CompleteLogin(ctx context.Context, sm *scs.SessionManager, code string, c Client) (*User, error) {
	p, _, ok := s.pending(ctx, sm)
	if !ok {
		s.clearPending(ctx, sm)
		return nil, ErrNoPendingLogin
	}
	u, err := s.secondFactor(ctx, p.userID, p.hash, code, c.IP)
	s.factorEvent(ctx, p.userID, c.IP, &err)
	if errors.Is(err, ErrNoPendingLogin) {
		s.clearPending(ctx, sm)
	}
	if err != nil {
		return nil, err
	}
	if err := s.login(ctx, sm, u, c); err != nil {
		return nil, err
	}
	return u, nil
}

// secondFactor is the throttled check of a second-factor code for account
// uid, whose password step produced the session auth hash pendingHash.
//
// Every code check is paid for first, with two conditional writes: the
// attempt counter of (account, client address) — reserve, as for passwords
// — and the account's failure count, which must be under MaxFailures
// (countFactorAttempt). Neither is a read that a burst can race past: each
// check needs its own successful write, so concurrent guesses from any
// number of addresses and instances check at most MaxFailures codes. The
// client address's counter is the one part counted after the check (a
// success must not count against a shared address, and refunding it would
// cost every login a write); it is read before the attempt, so a burst from
// one address can pass PerIP by the attempts in flight — each of which
// still needed a pending login (the account's password), its own
// per-(account, address) reservation and its own place under the account's
// cap.
func (s *Users) secondFactor(ctx context.Context, uid, pendingHash, code string, ip netip.Addr) (*User, error) {
	now := s.now()
	k := s.keysFor("mfa\x00"+uid, ip, now)
	items, err := s.st.batchGet(ctx, k.pair, k.ip, userPK(uid))
	if err != nil {
		return nil, err
	}
	pair, pairExists, wait := s.factorCounters(items, k, now)
	if wait > 0 {
		return nil, s.throttled(wait)
	}
	it := items[userPK(uid)]
	if it == nil {
		return nil, ErrNoPendingLogin
	}
	u, err := decodeUser(it)
	if err != nil {
		return nil, errors.Join(ErrUnavailable, err)
	}
	if u.Disabled || !u.TOTPEnabled || !s.authHashValid(u, pendingHash) {
		return nil, ErrNoPendingLogin
	}
	maxFails := int64(s.throttle.MaxFailures)
	if u.fails >= maxFails {
		return nil, &ThrottledError{Locked: true}
	}
	if err := s.reservePair(ctx, k, pair, pairExists, now); err != nil {
		return nil, err
	}
	switch out, err := s.st.countFactorAttempt(ctx, u, maxFails); {
	case err != nil:
		return nil, err
	case out == factorStale:
		return nil, ErrNoPendingLogin
	case out == factorLocked:
		return nil, &ThrottledError{Locked: true}
	}
	outcome, err := s.checkCode(ctx, u, code, now, ip)
	if err != nil {
		return nil, err
	}
	switch outcome {
	case factorAccepted:
		if err := s.st.deleteItem(ctx, k.pair); err != nil {
			return nil, err
		}
		u.fails = 0
		return u, nil
	case factorStale:
		return nil, ErrNoPendingLogin
	case factorLocked:
		return nil, &ThrottledError{Locked: true}
	}
	// The account's failure is already counted (countFactorAttempt).
	if err := s.st.countIPFailure(ctx, k.ip, now, k.ipEnd); err != nil {
		return nil, err
	}
	return nil, ErrInvalidCode
}

// factorCounters decodes the second-factor attempt counters read for k:
// the (account, address) counter as read, whether it exists, and how long
// an attempt must still wait for it or the address's counter.
func (s *Users) factorCounters(items map[string]item, k throttleKeys, now time.Time) (pair counter, pairExists bool, wait time.Duration) {
	pairItem := items[k.pair]
	pairExists = pairItem != nil && !ddb.Expired(pairItem, now)
	var ipc counter
	if pairExists {
		pair = decodeCounter(pairItem)
	}
	if it := items[k.ip]; it != nil && !ddb.Expired(it, now) {
		ipc = decodeCounter(it)
	}
	return pair, pairExists, max(s.throttle.PerAccount.wait(pair, now), s.throttle.PerIP.wait(ipc, now))
}

// checkCode checks a TOTP or recovery code for u and, when it is good,
// makes the one conditional write that uses it.
func (s *Users) checkCode(ctx context.Context, u *User, code string, now time.Time, ip netip.Addr) (factorOutcome, error) {
	if c, err := totp.Normalize(code, totpParams); err == nil {
		secret, current, err := s.openSecret(u.ID, stateActive, u.totpSealed)
		if err != nil {
			// Sealed under a secret no longer in the keyring: fail closed;
			// recovery codes still work.
			s.log.ErrorContext(ctx, "users: the TOTP secret cannot be opened (was its DYNAGUARD_SECRET dropped?); the user needs a recovery code", "user", u.ID)
			return 0, errors.Join(ErrUnavailable, err)
		}
		if step, ok := totp.Match(secret, c, now, u.totpStep, totpParams); ok {
			var resealed []byte
			if !current {
				if resealed, err = s.sealSecret(u.ID, stateActive, secret); err != nil {
					return 0, err
				}
			}
			out, err := s.st.acceptStep(ctx, u, step, resealed, int64(s.throttle.MaxFailures))
			if err == nil && out == factorReplayed {
				s.replayed(ctx, u, ip)
			}
			return out, err
		}
		if _, used := totp.Match(secret, c, now, -1, totpParams); used {
			s.replayed(ctx, u, ip)
			return factorReplayed, nil
		}
		return factorRejected, nil
	}
	if c, ok := normalizeRecovery(code); ok {
		out, remaining, err := s.st.useRecoveryCode(ctx, u, recoveryHash(u.ID, c), int64(s.throttle.MaxFailures))
		if err == nil && out == factorAccepted {
			u.RecoveryCodes = remaining
			s.log.InfoContext(ctx, "users: recovery code used", "user", u.ID, "remaining", remaining)
			s.notify(ctx, Message{Kind: MessageRecoveryCodeUsed, To: u.Email, UserID: u.ID, IP: ip, Remaining: remaining})
		}
		return out, err
	}
	return factorRejected, nil
}

// replayed reports a TOTP code presented again after it was accepted:
// whoever sent it knows the password and has seen a code the user typed.
func (s *Users) replayed(ctx context.Context, u *User, ip netip.Addr) {
	addr := ""
	if ip.IsValid() {
		addr = ip.Unmap().String()
	}
	s.log.WarnContext(ctx, "users: a TOTP code that was already used was presented again", "user", u.ID, "ip", addr)
	s.event(ctx, dynaguard.EventSecondFactorReplayed, "", u.ID, ip)
	s.notify(ctx, Message{Kind: MessageCodeReplayed, To: u.Email, UserID: u.ID, IP: ip})
}
