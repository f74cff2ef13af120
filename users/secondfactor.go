package users

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/alexedwards/scs/v2"

	"github.com/dynaguard/dynaguard"
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
	switch uid := sm.GetString(ctx, sessionUserID); {
	case uid == u.ID:
		// A re-authentication: the session stays logged in (with its old
		// authentication time) under its new token, which must be bound
		// like the old one was.
		if err := s.sessions.Bind(ctx, sm.Token(ctx), u.ID, c.info()); err != nil {
			return false, fmt.Errorf("%w: bind session: %w", ErrUnavailable, err)
		}
	case uid != "":
		// Another account's login does not survive a login attempt as
		// this one.
		sm.Remove(ctx, sessionUserID)
		sm.Remove(ctx, sessionAuthAt)
		sm.Remove(ctx, sessionAuthHash)
	}
	sm.Put(ctx, sessionPendingUser, u.ID)
	sm.Put(ctx, sessionPendingAt, s.now().Unix())
	sm.Put(ctx, sessionPendingHash, authHash(s.keys.Key(dynaguard.PurposeSessionAuth), u))
	s.log.InfoContext(ctx, "users: password verified; second factor pending", "user", u.ID)
	return true, nil
}

// Pending returns the session's two-step login waiting for a second
// factor, if there is one and it has not expired. It reads the session
// only (no DynamoDB call).
func (s *Users) Pending(ctx context.Context, sm *scs.SessionManager) (PendingLogin, bool) {
	uid := sm.GetString(ctx, sessionPendingUser)
	if uid == "" {
		return PendingLogin{}, false
	}
	at := time.Unix(sm.GetInt64(ctx, sessionPendingAt), 0)
	exp := at.Add(s.totp.PendingTTL)
	now := s.now()
	if !now.Before(exp) || at.After(now.Add(time.Minute)) {
		return PendingLogin{}, false
	}
	return PendingLogin{UserID: uid, Expires: exp}, true
}

// CancelLogin drops the session's pending two-step login, if any.
func (s *Users) CancelLogin(ctx context.Context, sm *scs.SessionManager) {
	s.clearPending(ctx, sm)
}

func (s *Users) clearPending(ctx context.Context, sm *scs.SessionManager) {
	if sm.Exists(ctx, sessionPendingUser) {
		sm.Remove(ctx, sessionPendingUser)
		sm.Remove(ctx, sessionPendingAt)
		sm.Remove(ctx, sessionPendingHash)
	}
}

// CompleteLogin finishes the session's pending two-step login with a
// second factor: a six-digit TOTP code or a recovery code. On success the
// session is logged in exactly as by Login (token renewed, user recorded,
// session bound) and the account is returned.
//
// A code is checked like a password: the attempt is counted before the
// check (Throttle.PerAccount per account and client address, PerIP per
// address — the same counters and limits as passwords), every failure adds
// to the account's consecutive failures (Throttle.MaxFailures locks it;
// a correct password alone does not reset the count for an account with
// TOTP), and a throttled attempt gets a *ThrottledError before any check.
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
// counters and the account), one conditional UpdateItem (count the
// attempt), the check in memory, then on success one conditional
// UpdateItem (the step, or the recovery code) and one DeleteItem (the
// attempt counter), and the session token's renewal; on failure two
// UpdateItems (the account's and the address's failure counts).
//
// Errors: ErrInvalidCode, *ThrottledError, ErrNoPendingLogin (none,
// expired, or the account changed since the password step: password
// changed, logged out everywhere, disabled, TOTP removed — start over),
// ErrUnavailable. A storage error never completes the login.
func (s *Users) CompleteLogin(ctx context.Context, sm *scs.SessionManager, code string, c Client) (*User, error) {
	p, ok := s.Pending(ctx, sm)
	if !ok {
		s.clearPending(ctx, sm)
		return nil, ErrNoPendingLogin
	}
	u, err := s.secondFactor(ctx, p.UserID, sm.GetString(ctx, sessionPendingHash), code, c.IP)
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
func (s *Users) secondFactor(ctx context.Context, uid, pendingHash, code string, ip netip.Addr) (*User, error) {
	now := s.now()
	k := s.keysFor("mfa\x00"+uid, ip, now)
	items, err := s.st.batchGet(ctx, k.pair, k.ip, userPK(uid))
	if err != nil {
		return nil, err
	}
	pairItem := items[k.pair]
	pairExists := pairItem != nil && !dynaguard.Expired(pairItem, now)
	var pair, ipc counter
	if pairExists {
		pair = decodeCounter(pairItem)
	}
	if it := items[k.ip]; it != nil && !dynaguard.Expired(it, now) {
		ipc = decodeCounter(it)
	}
	if wait := max(s.throttle.PerAccount.wait(pair, now), s.throttle.PerIP.wait(ipc, now)); wait > 0 {
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
	if u.fails >= int64(s.throttle.MaxFailures) {
		return nil, &ThrottledError{Locked: true}
	}
	ok, cur, err := s.st.reserve(ctx, k.pair, pair, pairExists, s.throttle.PerAccount, now, k.pairEnd)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, s.throttled(s.throttle.PerAccount.wait(cur, now))
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
	}
	if err := s.st.countAccountFailure(ctx, u.ID); err != nil {
		return nil, err
	}
	if err := s.st.countIPFailure(ctx, k.ip, now, k.ipEnd); err != nil {
		return nil, err
	}
	return nil, ErrInvalidCode
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
			out, err := s.st.acceptStep(ctx, u, step, resealed)
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
		out, remaining, err := s.st.useRecoveryCode(ctx, u, recoveryHash(u.ID, c))
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
	s.notify(ctx, Message{Kind: MessageCodeReplayed, To: u.Email, UserID: u.ID, IP: ip})
}
