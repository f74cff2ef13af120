package users

import (
	"context"
	"slices"
	"time"

	"github.com/alexedwards/scs/v2"

	"github.com/dynaguard/dynaguard"
)

// Passkeys lists u's passkeys, oldest first. Cost: one BatchGetItem of the
// credentials the account item lists (no call when it lists none).
func (s *Users) Passkeys(ctx context.Context, u *User) ([]Passkey, error) {
	if u == nil {
		return nil, ErrNotFound
	}
	if len(u.passkeys) == 0 {
		return nil, nil
	}
	pks := make([]string, len(u.passkeys))
	for i, id := range u.passkeys {
		pks[i] = passkeyPK(id)
	}
	items, err := s.st.batchGet(ctx, pks...)
	if err != nil {
		return nil, err
	}
	out := make([]Passkey, 0, len(pks))
	for _, pk := range pks {
		if c, ok := decodeCredential(items[pk]); ok && c.uid == u.ID {
			out = append(out, c.passkey())
		}
	}
	slices.SortFunc(out, func(a, b Passkey) int { return a.Created.Compare(b.Created) })
	return out, nil
}

// RenamePasskey sets the label of u's passkey id (at most 64 bytes).
//
// It takes no Proof, on purpose: a label changes nothing about what can
// sign in — the credential, its key, its counter and its account stay as
// they are — and asking for a password to rename a passkey would train
// users to type it for trivia. The write is conditioned on the credential
// being u's. Cost: one conditional UpdateItem.
func (s *Users) RenamePasskey(ctx context.Context, u *User, id, name string) error {
	if u == nil {
		return ErrNotFound
	}
	if err := checkPasskeyName(name); err != nil {
		return err
	}
	if !validPasskeyID(id) || !slices.Contains(u.passkeys, id) {
		return ErrPasskeyNotFound
	}
	return s.st.renamePasskey(ctx, u.ID, passkeyPK(id), name)
}

// RemovePasskey removes u's passkey id. It needs a Proof (a copied session
// cookie must not be able to remove the owner's passkeys either); the
// passkey being removed may itself be the proof. One TransactWriteItems
// deletes the credential's item (on condition that it is u's), takes it
// off the account's list and raises the session epoch: every other session
// of u ends — one the passkey signed in may be a thief's — and the
// request's session continues on a new token. The Mailer gets a
// MessagePasskeyRemoved. Cost: the Proof's plus that transaction (2
// items) and the session store's RevokeAll. ErrConflict: the account's
// sessions changed meanwhile (try again).
func (s *Users) RemovePasskey(ctx context.Context, sm *scs.SessionManager, u *User, p Proof, id string, c Client) error {
	if u == nil {
		return ErrNotFound
	}
	if !validPasskeyID(id) || !slices.Contains(u.passkeys, id) {
		return ErrPasskeyNotFound
	}
	fresh, err := s.stepUp(ctx, u, p, c)
	if err != nil {
		return err
	}
	updated, err := s.st.removePasskey(ctx, fresh, passkeyPK(id))
	if err != nil {
		return err
	}
	s.log.InfoContext(ctx, "users: passkey removed", "user", u.ID, "passkey", id)
	s.event(ctx, dynaguard.EventPasskeyRemoved, "", u.ID, c.IP)
	s.notify(ctx, Message{Kind: MessagePasskeyRemoved, To: updated.Email, UserID: u.ID, IP: c.IP})
	// The write raised the session epoch: every session the passkey signed
	// in (a thief's among them) ends; this one continues on a new token.
	return s.factorsChanged(ctx, sm, updated, c, true)
}

func unixTime(sec int64) time.Time {
	if sec == 0 {
		return time.Time{}
	}
	return time.Unix(sec, 0)
}
