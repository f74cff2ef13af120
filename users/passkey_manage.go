package users

import (
	"context"

	"github.com/alexedwards/scs/v2"
)

// Passkeys lists u's passkeys, oldest first. Cost: one BatchGetItem of the
// credentials the account item lists (none when it lists none).
func (s *Users) Passkeys(ctx context.Context, u *User) ([]Passkey, error) {
	return nil, ErrPasskeysDisabled
}

// RenamePasskey sets the label of u's passkey id (at most 64 bytes).
//
// It takes no Proof, on purpose: a label changes nothing about what can
// sign in — the credential, its key, its counter and its account stay as
// they are — and asking for a password to rename a passkey would train
// users to type it for trivia. The write is conditioned on the credential
// being u's. Cost: one conditional UpdateItem.
func (s *Users) RenamePasskey(ctx context.Context, u *User, id, name string) error {
	return ErrPasskeysDisabled
}

// RemovePasskey removes u's passkey id. It needs a Proof (a copied session
// cookie must not be able to remove the owner's passkeys either); the
// passkey being removed may itself be the proof. One TransactWriteItems
// deletes the credential's item (on condition that it is u's) and takes
// it off the account's list. The Mailer gets a MessagePasskeyRemoved.
// Cost: the Proof's plus that transaction (2 items).
func (s *Users) RemovePasskey(ctx context.Context, sm *scs.SessionManager, u *User, p Proof, id string, c Client) error {
	return ErrPasskeysDisabled
}
