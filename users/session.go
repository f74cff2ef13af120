package users

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"hash"
	"net/netip"
	"strconv"
	"strings"
	"sync"

	"github.com/alexedwards/scs/v2"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/sessionstore"
)

// Session keys. Each holds one sessionLogin, so a login is written, read
// and removed as a whole, and loading it costs a request one lookup. The
// values are not secret: a user ID, a time and a keyed hash that is
// useless without the server's key.
const (
	sessionAuth = "dynaguard.auth" // the session's login
	// The "password verified, second factor pending" state of a two-step
	// login (BeginLogin). LoadUser never reads it: a pending session is not
	// logged in.
	sessionPending = "dynaguard.mfa"
)

// sessionLogin is what a session records about a login, or under
// sessionPending about a password step: who, when it was authenticated
// (Unix seconds) and the session auth hash. It is stored as the string
// "<at> <hash> <userID>" — the user ID last, so that it may hold any
// character.
type sessionLogin struct {
	userID string
	at     int64
	hash   string
}

func (l sessionLogin) String() string {
	return strconv.FormatInt(l.at, 10) + " " + l.hash + " " + l.userID
}

// getLogin reads the login recorded under key; ok is false when there is
// none, it does not parse, or there is no session manager (sm == nil: an
// administrator acting on an account).
func getLogin(ctx context.Context, sm *scs.SessionManager, key string) (l sessionLogin, ok bool) {
	if sm == nil {
		return sessionLogin{}, false
	}
	at, rest, ok1 := strings.Cut(sm.GetString(ctx, key), " ")
	hash, uid, ok2 := strings.Cut(rest, " ")
	n, err := strconv.ParseInt(at, 10, 64)
	if !ok1 || !ok2 || err != nil || uid == "" {
		return sessionLogin{}, false
	}
	return sessionLogin{userID: uid, at: n, hash: hash}, true
}

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
	sum := authSum(key, u)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// authMACs pools keyed HMAC states per session-auth key: the hash is checked
// on every authenticated request, and a fresh hmac.New there cost its key
// setup (two SHA-256 blocks) and most of LoadUser's allocations. Keys never
// change for the life of a process's keyring, so the map stays small.
var authMACs sync.Map // string(key.Secret) → *sync.Pool of *authState

type authState struct {
	mac hash.Hash
	buf []byte
	sum [sha256.Size]byte
}

// authSum is the binary auth hash of u's session under key:
// HMAC-SHA256(key, "dynaguard session auth v1" 0x00 ID 0x00 cv 0x00 epoch).
func authSum(key dynaguard.DerivedKey, u *User) [sha256.Size]byte {
	p, ok := authMACs.Load(string(key.Secret))
	if !ok {
		secret := key.Secret
		p, _ = authMACs.LoadOrStore(string(secret), &sync.Pool{New: func() any {
			return &authState{mac: hmac.New(sha256.New, secret), buf: make([]byte, 0, 128)}
		}})
	}
	pool := p.(*sync.Pool)
	st := pool.Get().(*authState)
	st.buf = append(st.buf[:0], "dynaguard session auth v1\x00"...)
	st.buf = append(st.buf, u.ID...)
	st.buf = append(st.buf, 0)
	st.buf = strconv.AppendInt(st.buf, u.credVersion, 10)
	st.buf = append(st.buf, 0)
	st.buf = strconv.AppendInt(st.buf, u.epoch, 10)
	st.mac.Reset()
	st.mac.Write(st.buf)
	st.mac.Sum(st.sum[:0])
	sum := st.sum
	if cap(st.buf) <= 4096 {
		pool.Put(st)
	}
	return sum
}

// authHashValid checks a session's auth hash against every key of the
// keyring, so rotating the secret does not log everyone out. The
// comparison is constant-time and allocates nothing.
func (s *Users) authHashValid(u *User, got string) bool {
	if len(got) != base64.RawURLEncoding.EncodedLen(sha256.Size) {
		return false
	}
	var want [43]byte
	for _, k := range s.authKeys {
		sum := authSum(k, u)
		base64.RawURLEncoding.Encode(want[:], sum[:])
		var diff byte
		for i := range want {
			diff |= want[i] ^ got[i]
		}
		if subtle.ConstantTimeByteEq(diff, 0) == 1 {
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
	return s.loginWith(ctx, sm, u, c, "")
}

// loginWith is login, with how the user signed in ("passkey"; "" for a
// password) as the reason of login.succeeded.
func (s *Users) loginWith(ctx context.Context, sm *scs.SessionManager, u *User, c Client, how string) error {
	if u == nil || u.Disabled {
		return ErrInvalidCredentials
	}
	if err := sm.RenewToken(ctx); err != nil {
		return unavailable("renew session token", err)
	}
	if err := s.bind(ctx, sm, u, c, s.now().Unix()); err != nil {
		return err
	}
	s.log.InfoContext(ctx, "users: logged in", "user", u.ID)
	s.event(ctx, dynaguard.EventLoginSucceeded, how, u.ID, c.IP)
	s.event(ctx, dynaguard.EventSessionCreated, "login", u.ID, c.IP)
	return nil
}

// bind records u in the (already renewed) session and binds it; a pending
// two-step login ends. authAt (Unix seconds) is when the user last proved
// every factor of the account in this session — what Recent and
// RequireRecentAuth measure. It is the caller's to say, because only the
// caller knows whether a credential was checked: a login passes now, while
// a token renewal that checked nothing (LogoutOthers) passes the time the
// session already had, so that renewing a stolen session never makes its
// login look recent.
func (s *Users) bind(ctx context.Context, sm *scs.SessionManager, u *User, c Client, authAt int64) error {
	s.clearPending(ctx, sm)
	sm.Put(ctx, sessionAuth, sessionLogin{userID: u.ID, at: authAt, hash: authHash(s.authKeys[0], u)}.String())
	if err := s.sessions.Bind(ctx, sm.Token(ctx), u.ID, c.info()); err != nil {
		sm.Remove(ctx, sessionAuth)
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

// ChangePassword replaces u's password. It needs a Proof — the current
// password and, when the account has TOTP, a current code — checked like a
// login in this request (throttled per account and client address, counted
// towards MaxFailures; a wrong one matches ErrProofRequired and
// ErrInvalidCredentials or ErrInvalidCode); the new password must pass the
// policy. The credential version goes up, so every other session of the
// user fails its next check, and the session store ends them too; the
// current session stays logged in with a new token and a fresh credential
// check. A session that is not u's own login is never logged in by it: the
// password changes, every session of u ends, and the request's session is
// left as it was. The Mailer gets a MessagePasswordChanged.
//
// The write is conditioned on the credential version the current password
// was verified against: of two concurrent changes, one wins and the other
// gets ErrConflict.
//
// Cost: the step-up (see Proof), the new hash, one UpdateItem and the
// session store's RevokeAll; with a Mailer, one BatchGetItem more when
// the account has passkeys (their names, for the notice).
func (s *Users) ChangePassword(ctx context.Context, sm *scs.SessionManager, u *User, p Proof, next string, c Client) error {
	fresh, err := s.stepUp(ctx, u, p, c)
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
	s.notify(ctx, Message{Kind: MessagePasswordChanged, To: updated.Email, UserID: updated.ID, IP: c.IP,
		Passkeys: s.passkeyNames(ctx, updated)})
	return s.factorsChanged(ctx, sm, updated, c, true)
}

// keepCurrent moves the request's session, when it is u's login, to a new
// token bound to u's new credential version or epoch, with authAt as its
// authentication time, and ends every other session of u. A session that
// is not logged in as u is left alone — never logged in as u — and every
// session of u ends.
func (s *Users) keepCurrent(ctx context.Context, sm *scs.SessionManager, u *User, c Client, authAt int64) error {
	if cur, ok := getLogin(ctx, sm, sessionAuth); !ok || cur.userID != u.ID {
		s.revokeAll(ctx, u.ID, "")
		return nil
	}
	if err := sm.RenewToken(ctx); err != nil {
		return unavailable("renew session token", err)
	}
	if err := s.bind(ctx, sm, u, c, authAt); err != nil {
		return err
	}
	s.event(ctx, dynaguard.EventSessionRenewed, "factors_changed", u.ID, c.IP)
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
// to a new token bound to the new epoch. No credential is checked, so the
// session keeps its authentication time: signing out other devices does
// not make an old login "recent" (RequireRecentAuth, Recent). If the
// request's session is not u's login, every session of u ends and the
// request's session is left as it was.
func (s *Users) LogoutOthers(ctx context.Context, sm *scs.SessionManager, u *User, c Client) error {
	updated, err := s.st.bumpEpoch(ctx, u.ID)
	if err != nil {
		return err
	}
	cur, _ := getLogin(ctx, sm, sessionAuth)
	return s.keepCurrent(ctx, sm, updated, c, cur.at)
}
