package users

import (
	"context"

	"github.com/alexedwards/scs/v2"
)

// BeginPasskeyLogin starts a passkey sign-in with no login name (a
// discoverable credential; also what the browser's autofill offers with
// autocomplete="username webauthn" and mediation "conditional"). It returns
// the options for navigator.credentials.get() as JSON ({"publicKey":
// {...}}, the form PublicKeyCredential.parseRequestOptionsFromJSON takes),
// with user verification required and no list of credentials.
//
// Like every challenge of this package it costs no DynamoDB call: a MACed
// token holding its purpose and expiry, bound to this browser by a cookie
// this call sets (a sign-in has no session to bind to yet). The request
// must pass through LoadUser (ErrNoBrowserBinding otherwise).
func (s *Users) BeginPasskeyLogin(ctx context.Context, sm *scs.SessionManager) ([]byte, error) {
	return nil, ErrPasskeysDisabled
}

// FinishPasskeyLogin checks a passkey sign-in (response: the JSON of the
// browser's PublicKeyCredential, as toJSON() gives it) and logs the session
// in exactly as Login does — new session token, session bound to the
// account's credentials, the device cookie, Config.AbsoluteLifetime from
// now, events. The credential ID finds the passkey and the user handle must
// be its account's. An account with TOTP is logged in too: a user-verified
// passkey is already two factors.
//
// Refused (ErrInvalidPasskey, and ErrInvalidCredentials so a login form
// treats it as any failed login): a challenge that is not this browser's
// live sign-in challenge, or was used; a wrong origin or RP ID; no user
// verification; a bad signature; an unknown, removed or cloned credential;
// a signature counter that did not advance (the credential is then marked
// cloned, the owner notified). Failures are counted by the login throttle
// as failed passwords are: against the client address and its ranges, and
// — for a known credential — the account's unknown-client count, or the
// device's own counter when the browser holds the account's device cookie.
// An unknown credential counts against the address only. A throttled
// attempt gets a *ThrottledError before any check.
//
// Cost, the minimum: one BatchGetItem (the credential and the address
// counters), one GetItem (the account, whose key the credential names),
// one TransactWriteItems (the challenge's single-use marker and the
// credential's counter, conditioned on it advancing: one response is
// accepted at most once, across instances).
func (s *Users) FinishPasskeyLogin(ctx context.Context, sm *scs.SessionManager, response []byte, c Client) (*User, error) {
	return nil, ErrPasskeysDisabled
}

// BeginPasskeySecondFactor starts a passkey as the second step of the
// session's pending login (BeginLogin returned pending), instead of a TOTP
// code. Options as BeginPasskeyLogin's; the challenge is bound to this
// browser, this session and the pending account. ErrNoPendingLogin without
// a live pending login. No DynamoDB call.
func (s *Users) BeginPasskeySecondFactor(ctx context.Context, sm *scs.SessionManager) ([]byte, error) {
	return nil, ErrPasskeysDisabled
}

// CompleteLoginWithPasskey finishes the session's pending login with a
// passkey of the pending account, as CompleteLogin does with a code: on
// success the session is logged in exactly as by Login. Refusals and
// throttling are FinishPasskeyLogin's; a passkey of another account is
// refused. Cost: one BatchGetItem (credential, account, address
// counters), one TransactWriteItems (challenge marker, counter).
func (s *Users) CompleteLoginWithPasskey(ctx context.Context, sm *scs.SessionManager, response []byte, c Client) (*User, error) {
	return nil, ErrPasskeysDisabled
}

// BeginPasskeyProof starts a passkey assertion to be used as a step-up
// Proof (Proof.Passkey) by u, the session's user, for any operation that
// takes a Proof. Options as BeginPasskeyLogin's; the challenge is bound to
// this browser, this session and u. No DynamoDB call.
func (s *Users) BeginPasskeyProof(ctx context.Context, sm *scs.SessionManager, u *User) ([]byte, error) {
	return nil, ErrPasskeysDisabled
}
