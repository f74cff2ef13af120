package users

import (
	"context"
	"errors"
	"strings"

	"github.com/dynaguard/dynaguard"
)

// NewUser is what Create needs.
type NewUser struct {
	Email    string
	Username string
	Password string
}

// Create validates and registers a new account. The email address and the
// username are each unique in their normalised form (NFKC, case folded),
// enforced by DynamoDB itself: the account and one marker item per
// identifier are written in one transaction, each on condition that it does
// not exist yet, so of any number of concurrent sign-ups with the same
// address — on any number of instances — exactly one succeeds.
//
// Errors: *IdentifierError (ErrInvalidIdentifier), *PolicyError
// (ErrPasswordPolicy), *TakenError (ErrEmailTaken / ErrUsernameTaken),
// ErrBusy, ErrUnavailable.
func (s *Users) Create(ctx context.Context, nu NewUser) (*User, error) {
	emailKey, err := NormalizeEmail(nu.Email)
	if err != nil {
		return nil, err
	}
	usernameKey, err := NormalizeUsername(nu.Username)
	if err != nil {
		return nil, err
	}
	if err := s.policy.CheckPassword(ctx, nu.Password, nu.Email, nu.Username); err != nil {
		return nil, err
	}
	hash, pepper, err := s.hashPassword(ctx, nu.Password)
	if err != nil {
		return nil, err
	}
	now := s.now()
	u := &User{
		Email:           strings.TrimSpace(nu.Email),
		Username:        strings.TrimSpace(nu.Username),
		Created:         now.Truncate(1e9),
		PasswordChanged: now.Truncate(1e9),
		emailKey:        emailKey,
		usernameKey:     usernameKey,
		hash:            hash,
		pepperID:        pepper,
		credVersion:     1,
		epoch:           1,
		version:         1,
	}
	for range 3 {
		u.ID = newUserID()
		if err = s.st.create(ctx, u); !errors.Is(err, ErrConflict) {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "users: account created", "user", u.ID)
	return u, nil
}

// Get reads an account by ID (strongly consistent). ErrNotFound when there
// is none.
func (s *Users) Get(ctx context.Context, id string) (*User, error) {
	u, err := s.st.getUser(ctx, id)
	if err != nil {
		return nil, err
	}
	if u == nil {
		return nil, ErrNotFound
	}
	return u, nil
}

// Lookup finds an account by email address or username (a login name with
// '@' is an email address): two strongly consistent reads, the uniqueness
// marker and then the account. It is for administration and for the
// account features built on this package; logging in uses Authenticate,
// which does not reveal whether an account exists.
func (s *Users) Lookup(ctx context.Context, login string) (*User, error) {
	kind, key := normalizeLogin(login)
	uid, err := s.st.markerUID(ctx, kind, key)
	if err != nil {
		return nil, err
	}
	if uid == "" {
		return nil, ErrNotFound
	}
	return s.Get(ctx, uid)
}

// ChangeUsername moves the account to a new username in one transaction
// (the new marker claimed, the old one released, the account updated on
// condition that it is still the version u was read at). A username is not
// a recovery channel, so it needs no proof; the email address does (see
// RequestEmailChange).
func (s *Users) ChangeUsername(ctx context.Context, u *User, username string) (*User, error) {
	key, err := NormalizeUsername(username)
	if err != nil {
		return nil, err
	}
	return s.st.changeIdentifier(ctx, u, kindUsername, strings.TrimSpace(username), key)
}

// Disable disables an account: it can no longer log in (its attempts fail
// exactly like a wrong password) and every one of its sessions ends — at
// once through the session epoch, which every request checks, and in the
// session store through RevokeAll.
func (s *Users) Disable(ctx context.Context, id string) error {
	if _, err := s.st.setDisabled(ctx, id, true); err != nil {
		return err
	}
	s.revokeAll(ctx, id, "")
	s.log.InfoContext(ctx, "users: account disabled", "user", id)
	return nil
}

// Enable re-enables a disabled account and clears its failure count.
func (s *Users) Enable(ctx context.Context, id string) error {
	if _, err := s.st.setDisabled(ctx, id, false); err != nil {
		return err
	}
	s.log.InfoContext(ctx, "users: account enabled", "user", id)
	return nil
}

// Unlock clears the consecutive-failure count of an account that reached
// Throttle.MaxFailures. Do it only after confirming the owner by other
// means; a password reset does it too.
func (s *Users) Unlock(ctx context.Context, id string) error {
	_, err := s.st.unlock(ctx, id)
	return err
}

// Delete deletes an account and releases its email address and username, in
// one transaction conditioned on u still being current (ErrConflict
// otherwise), then ends its sessions. The TOTP secret and the recovery
// codes live on the account item and go with it. Outstanding reset and
// verification tokens are keyed by their hash alone, so they cannot be
// found to delete; they die anyway — their account is gone (user IDs are
// random and never reused) — and DynamoDB's TTL removes them.
func (s *Users) Delete(ctx context.Context, u *User) error {
	if err := s.st.deleteUser(ctx, u); err != nil {
		return err
	}
	s.revokeAll(ctx, u.ID, "")
	s.log.InfoContext(ctx, "users: account deleted", "user", u.ID)
	return nil
}

// revokeAll ends a user's sessions in the session store. A failure is
// logged, not returned: the change that called it (a new password, a new
// epoch, a disabled account) already makes every such session fail its next
// check, and the records expire on their own.
func (s *Users) revokeAll(ctx context.Context, uid, keepID string) {
	n, err := s.sessions.RevokeAll(ctx, uid, keepID)
	if err != nil {
		s.log.WarnContext(ctx, "users: sessions not revoked in the store; they fail the session check instead", "user", uid, "err", err)
		return
	}
	if n > 0 {
		s.log.InfoContext(ctx, "users: sessions revoked", "user", uid, "count", n)
		s.event(ctx, dynaguard.EventSessionRevoked, "revoke_all", uid, noAddr)
	}
}
