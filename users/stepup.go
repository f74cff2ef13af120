package users

import (
	"context"
	"errors"
	"fmt"

	"github.com/alexedwards/scs/v2"

	"github.com/dynaguard/dynaguard"
)

// Proof is what a sensitive operation needs from the user in the same
// request, whatever the session: the password, plus — when the account has
// a second factor — a current TOTP code or an unused recovery code; or a
// user-verified passkey assertion alone. A session cookie alone, however
// recent its login, is never enough: whoever copied the cookie holds the
// session, not the account.
type Proof struct {
	// Password is the account's current password.
	Password string
	// Code is a six-digit TOTP code or a recovery code. It is required
	// when the account has TOTP enabled, and ignored otherwise.
	Code string
	// Passkey is a WebAuthn assertion (the JSON of the browser's
	// PublicKeyCredential, as PublicKeyCredential.toJSON() gives it) made
	// for a challenge of BeginPasskeyProof, in this session, by one of the
	// account's passkeys. A user-verified passkey is two factors: when
	// Passkey is set it is the whole proof, and Password and Code are
	// ignored.
	Passkey []byte
}

// ErrProofRequired matches every refusal of a sensitive operation for want
// of a valid Proof: missing, a wrong password, a missing or wrong code, or
// a proof attempt refused by the login throttle. The error also matches the
// specific cause (ErrInvalidCredentials, ErrInvalidCode, ErrThrottled) so a
// form can say which field was wrong.
var ErrProofRequired = errors.New("users: this action needs your password (and second factor)")

// proofRefused wraps a refused proof so that it matches ErrProofRequired as
// well as its cause.
func proofRefused(cause error) error {
	return fmt.Errorf("%w: %w", ErrProofRequired, cause)
}

// stepUp checks p for the account u (the session's user) exactly like a
// login: the password through the login path (attempt: the throttle
// counters of (account, client address) and of the client address, the
// account's failure cap, one verification — a dummy one when the stored
// hash is unusable — in a hashing slot), then, for an account with TOTP,
// the code through the second-factor path (secondFactor: its own (account,
// address) counter, the account's failure count raised before the check,
// the step or recovery code used by one conditional write). Whatever
// throttling or equal-work rule those paths get, a step-up gets too.
//
// A passkey (p.Passkey) is checked instead, when set, through the same
// path as a passkey at the second step of a login: the step-up challenge
// of this session and browser, one of u's passkeys, the login throttle's
// counters, the challenge used and the counter advanced by one
// transaction (one BatchGetItem, one TransactWriteItems).
//
// It returns the account as read during the check. Cost: that of a login
// (one BatchGetItem, one GetItem, one conditional UpdateItem, one
// DeleteItem, plus one UpdateItem when a failure count is reset), plus for
// an account with TOTP that of a second-factor code (one BatchGetItem, two
// conditional UpdateItems, one conditional UpdateItem, one DeleteItem). A
// refused proof costs what a failed login (or code) costs.
func (s *Users) stepUp(ctx context.Context, u *User, p Proof, c Client) (_ *User, err error) {
	defer s.refusal(ctx, dynaguard.EventStepUpRefused, idOf(u), c.IP, &err)
	if u == nil {
		return nil, ErrNotFound
	}
	if s.reauthAge > 0 {
		if cur, ok := FromContext(ctx); !ok || cur.ID != u.ID || !s.Recent(ctx, s.reauthAge) {
			return nil, ErrReauthRequired
		}
	}
	if len(p.Passkey) > 0 {
		// A user-verified passkey is two factors: the whole proof.
		fresh, err := s.passkeyProof(ctx, u, p.Passkey, c)
		if errors.Is(err, ErrInvalidPasskey) {
			return nil, proofRefused(err)
		}
		return fresh, err
	}
	if p.Password == "" {
		return nil, proofRefused(ErrInvalidCredentials)
	}
	fresh, err := s.attempt(ctx, target{uid: u.ID}, p.Password, c.IP)
	switch {
	case errors.Is(err, ErrInvalidCredentials):
		return nil, proofRefused(err)
	case err != nil:
		return nil, err
	case fresh.ID != u.ID:
		return nil, proofRefused(ErrInvalidCredentials)
	case !fresh.TOTPEnabled:
		return fresh, nil
	case p.Code == "":
		return nil, proofRefused(ErrInvalidCode)
	}
	done, err := s.secondFactor(ctx, fresh.ID, authHash(s.authKeys[0], fresh), p.Code, c.IP)
	switch {
	case errors.Is(err, ErrNoPendingLogin):
		// The account changed between the password and the code (a
		// concurrent password change, logout everywhere, TOTP removed).
		return nil, ErrConflict
	case errors.Is(err, ErrInvalidCode), errors.Is(err, ErrThrottled):
		return nil, proofRefused(err)
	case err != nil:
		return nil, err
	}
	return done, nil
}

// steppedUp records a successful step-up in the request's session, when it
// is u's login: the session moves to a new token (scs deletes the old one
// from the store, so a copy of the cookie taken before the step-up stops
// working) and the time of the last credential check becomes now — what
// Recent, RequireRecentAuth and Config.AbsoluteLifetime measure. A session
// that is not u's login is left as it was. No DynamoDB call beyond the
// session store's delete of the old token; the binding is written with the
// session's own commit.
func (s *Users) steppedUp(ctx context.Context, sm *scs.SessionManager, u *User, c Client) error {
	if cur, ok := getLogin(ctx, sm, sessionAuth); !ok || cur.userID != u.ID {
		return nil
	}
	if err := sm.RenewToken(ctx); err != nil {
		return unavailable("renew session token", err)
	}
	return s.bind(ctx, sm, u, c, s.now().Unix())
}

// factorsChanged finishes a change of the account's factors or address
// (second factor on or off, new recovery codes, a new password, a
// confirmed email address) whose write also raised the session epoch or
// the credential version: the request's session, when it is u's login,
// continues under a new token bound to the new state with a credential
// check of now (stepped is true when this request checked one) or of the
// time it already had; every other session of u ends.
func (s *Users) factorsChanged(ctx context.Context, sm *scs.SessionManager, u *User, c Client, stepped bool) error {
	cur, _ := getLogin(ctx, sm, sessionAuth)
	at := cur.at
	if stepped {
		at = s.now().Unix()
	}
	return s.keepCurrent(ctx, sm, u, c, at)
}
