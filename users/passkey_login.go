package users

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/alexedwards/scs/v2"
	"github.com/go-webauthn/webauthn/protocol"

	"github.com/dynaguard/dynaguard"
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
	ch, err := s.issue(ctx, ceremonyLogin, "", nil)
	if err != nil {
		return nil, err
	}
	return s.requestOptions(ch)
}

// requestOptions are the options of navigator.credentials.get() for
// challenge ch.
func (s *Users) requestOptions(ch string) ([]byte, error) {
	raw, _ := b64u.DecodeString(ch)
	return json.Marshal(protocol.CredentialAssertion{Response: protocol.PublicKeyCredentialRequestOptions{
		Challenge:        raw,
		Timeout:          int(s.passkeys.Timeout.Milliseconds()),
		RelyingPartyID:   s.passkeys.RPID,
		UserVerification: protocol.VerificationRequired,
	}})
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
// counters), one GetItem (the account, whose key only the credential
// names), one TransactWriteItems (the challenge's single-use marker and
// the credential's counter, conditioned on it advancing: one response is
// accepted at most once, across instances). A refusal after the reads
// adds the failure counts (sent at once, as for a wrong password).
func (s *Users) FinishPasskeyLogin(ctx context.Context, sm *scs.SessionManager, response []byte, c Client) (_ *User, err error) {
	var uid string
	defer func() {
		if err != nil {
			s.passkeyEvent(ctx, uid, c.IP, err)
			s.refusal(ctx, dynaguard.EventLoginFailed, uid, c.IP, &err)
		}
	}()
	a, err := s.openAssertion(ctx, response, ceremonyLogin, "")
	if err != nil {
		return nil, loginRefused(err)
	}
	now := s.now()
	pc, keys := s.passkeyClient(ctx, c.IP, now)
	items, err := s.st.batchGet(ctx, append(keys, a.pks...)...)
	if err != nil {
		return nil, err
	}
	cred, found := a.credentialIn(items)
	if !found {
		if w := s.passkeyWait(pc, items, nil, "", now); w > 0 {
			return nil, s.throttled(w)
		}
		if err := s.countPasskeyFailure(ctx, pc, nil, "", now); err != nil {
			return nil, err
		}
		return nil, loginRefused(refuse("unknown_credential"))
	}
	uid = cred.uid
	// The client's own counters (address, ranges, or the account's device
	// cookie) are in hand already: a client they throttle is refused
	// before the account is read. The account's unknown-client count
	// needs the account, and is checked after its read.
	if w := s.passkeyWait(pc, items, nil, uid, now); w > 0 {
		return nil, s.throttled(w)
	}
	acct, err := s.st.get(ctx, userPK(uid))
	if err != nil {
		return nil, err
	}
	if w := s.passkeyWait(pc, items, acct, uid, now); w > 0 {
		return nil, s.throttled(w)
	}
	var u *User
	if acct != nil {
		if u, err = decodeUser(acct); err != nil {
			return nil, errors.Join(ErrUnavailable, err)
		}
	}
	if err := s.verifyAssertion(a, cred, u); err != nil {
		if cerr := s.countPasskeyFailure(ctx, pc, acct, uid, now); cerr != nil {
			return nil, cerr
		}
		return nil, loginRefused(err)
	}
	if err := s.acceptAssertion(ctx, a, cred, u, c.IP, now); err != nil {
		return nil, loginRefused(err)
	}
	if err := s.loginWith(ctx, sm, u, c, "passkey"); err != nil {
		return nil, err
	}
	s.deviceTrusted(ctx, pc.dr, pc.dev, u.ID, c.IP)
	s.issueDevice(pc.dr, pc.dev, u.ID)
	return u, nil
}

// loginRefused makes a refused passkey also match ErrInvalidCredentials.
func loginRefused(err error) error {
	if errors.Is(err, ErrInvalidPasskey) {
		return fmt.Errorf("%w: %w", ErrInvalidCredentials, err)
	}
	return err
}

// BeginPasskeySecondFactor starts a passkey as the second step of the
// session's pending login (BeginLogin returned pending), instead of a TOTP
// code. Options as BeginPasskeyLogin's; the challenge is bound to this
// browser, this session and the pending account. ErrNoPendingLogin without
// a live pending login. No DynamoDB call.
func (s *Users) BeginPasskeySecondFactor(ctx context.Context, sm *scs.SessionManager) ([]byte, error) {
	if !s.passkeys.enabled() {
		return nil, ErrPasskeysDisabled
	}
	p, _, ok := s.pending(ctx, sm)
	if !ok {
		return nil, ErrNoPendingLogin
	}
	ch, err := s.issue(ctx, ceremonySecondFactor, p.userID, nil)
	if err != nil {
		return nil, err
	}
	return s.requestOptions(ch)
}

// CompleteLoginWithPasskey finishes the session's pending login with a
// passkey of the pending account, as CompleteLogin does with a code: on
// success the session is logged in exactly as by Login. Refusals and
// throttling are FinishPasskeyLogin's; a passkey of another account is
// refused, and so is the pending login when the account changed since the
// password step (ErrNoPendingLogin, as for a code). An accepted passkey
// does not reset the count of failed codes (only an accepted code does).
// Cost: one BatchGetItem (credential, account, address counters), one
// TransactWriteItems (challenge marker, counter).
func (s *Users) CompleteLoginWithPasskey(ctx context.Context, sm *scs.SessionManager, response []byte, c Client) (*User, error) {
	p, _, ok := s.pending(ctx, sm)
	if !ok {
		s.clearPending(ctx, sm)
		return nil, ErrNoPendingLogin
	}
	a, err := s.openAssertion(ctx, response, ceremonySecondFactor, p.userID)
	if err != nil {
		s.passkeyEvent(ctx, p.userID, c.IP, err)
		s.factorEvent(ctx, p.userID, c.IP, &err)
		return nil, err
	}
	u, err := s.checkAssertion(ctx, a, p.userID, c.IP, func(u *User) error {
		if u == nil || u.Disabled || !s.authHashValid(u, p.hash) {
			return ErrNoPendingLogin
		}
		return nil
	})
	// The second factor's event is about the assertion only, as
	// CompleteLogin's is about the code: a failure of the login after it
	// (the session's renewal) has its own event, not a second one here.
	s.factorEvent(ctx, p.userID, c.IP, &err)
	if errors.Is(err, ErrNoPendingLogin) {
		s.clearPending(ctx, sm)
	}
	if err != nil {
		return nil, err
	}
	if err := s.loginWith(ctx, sm, u, c, "passkey"); err != nil {
		return nil, err
	}
	return u, nil
}

// BeginPasskeyProof starts a passkey assertion to be used as a step-up
// Proof (Proof.Passkey) by u, the session's user, for any operation that
// takes a Proof. Options as BeginPasskeyLogin's; the challenge is bound to
// this browser, this session and u. No DynamoDB call.
func (s *Users) BeginPasskeyProof(ctx context.Context, sm *scs.SessionManager, u *User) ([]byte, error) {
	if !s.passkeys.enabled() {
		return nil, ErrPasskeysDisabled
	}
	if u == nil {
		return nil, ErrNotFound
	}
	if s.sessionID(ctx) == "" {
		return nil, ErrNoBrowserBinding
	}
	ch, err := s.issue(ctx, ceremonyStepUp, u.ID, nil)
	if err != nil {
		return nil, err
	}
	return s.requestOptions(ch)
}

// passkeyProof checks Proof.Passkey for u: the assertion of a step-up
// challenge of this session by one of u's passkeys. One BatchGetItem, one
// TransactWriteItems.
func (s *Users) passkeyProof(ctx context.Context, u *User, response []byte, c Client) (*User, error) {
	a, err := s.openAssertion(ctx, response, ceremonyStepUp, u.ID)
	if err != nil {
		s.passkeyEvent(ctx, u.ID, c.IP, err)
		return nil, err
	}
	return s.checkAssertion(ctx, a, u.ID, c.IP, func(u *User) error {
		if u == nil || u.Disabled {
			return refuse("unknown_credential")
		}
		return nil
	})
}
