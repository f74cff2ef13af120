package users

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/netip"
	"strconv"

	"github.com/alexedwards/scs/v2"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/sessionstore"
)

// Session keys. The values are not secret: a user ID, a time and a keyed
// hash that is useless without the server's key.
const (
	sessionUserID   = "dynaguard.user"
	sessionAuthAt   = "dynaguard.auth_at"
	sessionAuthHash = "dynaguard.auth_hash"

	// The "password verified, second factor pending" state of a two-step
	// login (BeginLogin). None of these is read by LoadUser: a pending
	// session is not logged in.
	sessionPendingUser = "dynaguard.mfa_user"
	sessionPendingAt   = "dynaguard.mfa_at"
	sessionPendingHash = "dynaguard.mfa_hash"
)

// Client describes the client of a request, as the application resolved
// it; it is recorded with the session for "your sessions" lists.
type Client struct {
	IP        netip.Addr
	UserAgent string
}

func (c Client) info() sessionstore.ClientInfo {
	info := sessionstore.ClientInfo{UserAgent: c.UserAgent}
	if c.IP.IsValid() {
		info.IP = c.IP.Unmap().String()
	}
	return info
}

// authHash binds a session to the account's credential version and session
// epoch: HMAC-SHA256 under PurposeSessionAuth of (user ID, cv, se). A
// password change (cv) or "log out everywhere" / disable (se) changes it,
// and every session that holds the old one fails its next check — at
// once, on every instance, with no list of sessions to walk. The hash of a
// rehash-on-login upgrade is deliberately not part of it: upgrading the
// hash does not change the password and must not end sessions.
func authHash(key dynaguard.DerivedKey, u *User) string {
	m := hmac.New(sha256.New, key.Secret)
	m.Write([]byte("dynaguard session auth v1\x00" + u.ID + "\x00" +
		strconv.FormatInt(u.credVersion, 10) + "\x00" + strconv.FormatInt(u.epoch, 10)))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// authHashValid checks a session's auth hash against every key of the
// keyring, so rotating the secret does not log everyone out.
func (s *Users) authHashValid(u *User, got string) bool {
	if got == "" {
		return false
	}
	for _, k := range s.keys.Keys(dynaguard.PurposeSessionAuth) {
		if hmac.Equal([]byte(authHash(k, u)), []byte(got)) {
			return true
		}
	}
	return false
}

// Login starts an authenticated session for u, the account Authenticate
// returned, in the request's scs session (the handler must run inside
// sm.LoadAndSave). It renews the session token first, so a token planted
// before the login (session fixation, CWE-384) is worthless after it; then
// it records the user ID, the time of authentication and the session auth
// hash, and binds the session to the user in the session store (the binding
// is written with the session at the end of the request).
//
// Calling Login again in a logged-in session (re-authentication) renews the
// token and refreshes the authentication time.
//
// Login refuses an account with TOTP enabled (ErrSecondFactorRequired), so
// that a login page written before the second factor existed cannot skip
// it: use BeginLogin, which calls Login for accounts without one.
func (s *Users) Login(ctx context.Context, sm *scs.SessionManager, u *User, c Client) error {
	if u != nil && u.TOTPEnabled {
		return ErrSecondFactorRequired
	}
	return s.login(ctx, sm, u, c)
}

// login is Login without the second-factor check.
func (s *Users) login(ctx context.Context, sm *scs.SessionManager, u *User, c Client) error {
	if u == nil || u.Disabled {
		return ErrInvalidCredentials
	}
	if err := sm.RenewToken(ctx); err != nil {
		return unavailable("renew session token", err)
	}
	if err := s.bind(ctx, sm, u, c); err != nil {
		return err
	}
	s.log.InfoContext(ctx, "users: logged in", "user", u.ID)
	return nil
}

// bind records u in the (already renewed) session and binds it; a pending
// two-step login ends.
func (s *Users) bind(ctx context.Context, sm *scs.SessionManager, u *User, c Client) error {
	s.clearPending(ctx, sm)
	sm.Put(ctx, sessionUserID, u.ID)
	sm.Put(ctx, sessionAuthAt, s.now().Unix())
	sm.Put(ctx, sessionAuthHash, authHash(s.keys.Key(dynaguard.PurposeSessionAuth), u))
	if err := s.sessions.Bind(ctx, sm.Token(ctx), u.ID, c.info()); err != nil {
		sm.Remove(ctx, sessionUserID)
		sm.Remove(ctx, sessionAuthAt)
		sm.Remove(ctx, sessionAuthHash)
		return fmt.Errorf("%w: bind session: %w", ErrUnavailable, err)
	}
	return nil
}

// Logout ends the request's session on the server (scs Destroy: the session
// store deletes it, and it cannot be resurrected by a request still in
// flight), not just in the browser.
func (s *Users) Logout(ctx context.Context, sm *scs.SessionManager) error {
	if err := sm.Destroy(ctx); err != nil {
		return unavailable("destroy session", err)
	}
	return nil
}

// ChangePassword replaces u's password. The current password is required
// and checked like a login (throttled per account and client address,
// counted towards MaxFailures; a wrong one returns ErrInvalidCredentials);
// the new one must pass the policy. The credential version goes up, so
// every other session of the user fails its next check, and the session
// store ends them too; the current session stays logged in with a new token.
// The Mailer gets a MessagePasswordChanged.
//
// The write is conditioned on the credential version the current password
// was verified against: of two concurrent changes, one wins and the other
// gets ErrConflict.
func (s *Users) ChangePassword(ctx context.Context, sm *scs.SessionManager, u *User, current, next string, c Client) error {
	fresh, err := s.attempt(ctx, target{uid: u.ID}, current, c.IP)
	if err != nil {
		return err
	}
	if err := s.policy.CheckPassword(ctx, next, fresh.Email, fresh.Username); err != nil {
		return err
	}
	hash, pepper, err := s.hashPassword(ctx, next)
	if err != nil {
		return err
	}
	updated, err := s.st.setPassword(ctx, fresh, hash, pepper, s.now())
	if err != nil {
		return err
	}
	s.log.InfoContext(ctx, "users: password changed", "user", u.ID)
	s.notify(ctx, Message{Kind: MessagePasswordChanged, To: updated.Email, UserID: updated.ID, IP: c.IP})
	return s.keepCurrent(ctx, sm, updated, c)
}

// keepCurrent moves the request's session to a new token bound to u's new
// credential version or epoch, and ends every other session of u.
func (s *Users) keepCurrent(ctx context.Context, sm *scs.SessionManager, u *User, c Client) error {
	if err := sm.RenewToken(ctx); err != nil {
		return unavailable("renew session token", err)
	}
	if err := s.bind(ctx, sm, u, c); err != nil {
		return err
	}
	s.revokeAll(ctx, u.ID, s.sessions.ID(sm.Token(ctx)))
	return nil
}

// LogoutEverywhere ends every session of u, this one included: the session
// epoch goes up (every session fails its next check), the session store
// ends them, and the request's session is destroyed. sm may be nil when
// there is no current session (an administrator acting on an account).
func (s *Users) LogoutEverywhere(ctx context.Context, sm *scs.SessionManager, u *User) error {
	if _, err := s.st.bumpEpoch(ctx, u.ID); err != nil {
		return err
	}
	s.revokeAll(ctx, u.ID, "")
	if sm != nil {
		return s.Logout(ctx, sm)
	}
	return nil
}

// LogoutOthers ends every session of u except the current one ("sign out
// of all other devices"): the epoch goes up, and the current session moves
// to a new token bound to the new epoch.
func (s *Users) LogoutOthers(ctx context.Context, sm *scs.SessionManager, u *User, c Client) error {
	updated, err := s.st.bumpEpoch(ctx, u.ID)
	if err != nil {
		return err
	}
	return s.keepCurrent(ctx, sm, updated, c)
}
