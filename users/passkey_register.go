package users

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/alexedwards/scs/v2"
	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/protocol/webauthncose"

	"github.com/dynaguard/dynaguard"
)

// credentialParams are the key types a passkey may have: ES256 (every
// platform authenticator and security key), EdDSA, RS256 (Windows Hello).
var credentialParams = []protocol.CredentialParameter{
	{Type: protocol.PublicKeyCredentialType, Algorithm: webauthncose.AlgES256},
	{Type: protocol.PublicKeyCredentialType, Algorithm: webauthncose.AlgEdDSA},
	{Type: protocol.PublicKeyCredentialType, Algorithm: webauthncose.AlgRS256},
}

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
// The options list no credentials to exclude: the table keeps no
// credential ID in the clear to list. An authenticator that already holds
// a passkey of this account replaces it (same user handle); the old one
// stays listed until removed, and registering the same credential twice
// is refused (ErrPasskeyTaken).
//
// The request must pass through LoadUser or RequireUser
// (ErrNoBrowserBinding otherwise).
func (s *Users) BeginPasskeyRegistration(ctx context.Context, sm *scs.SessionManager, u *User) ([]byte, error) {
	switch {
	case !s.passkeys.enabled():
		return nil, ErrPasskeysDisabled
	case u == nil:
		return nil, ErrNotFound
	case len(u.passkeys) >= s.passkeys.MaxPerAccount:
		return nil, ErrTooManyPasskeys
	case s.sessionID(ctx) == "":
		return nil, ErrNoBrowserBinding
	}
	handle := u.handle
	if len(handle) != handleLen {
		handle = make([]byte, handleLen)
		_, _ = rand.Read(handle)
	}
	ch, err := s.issue(ctx, ceremonyRegister, u.ID, handle)
	if err != nil {
		return nil, err
	}
	raw, _ := b64u.DecodeString(ch)
	name := u.Email
	if name == "" {
		name = u.Username
	}
	return json.Marshal(protocol.CredentialCreation{Response: protocol.PublicKeyCredentialCreationOptions{
		RelyingParty: protocol.RelyingPartyEntity{ID: s.passkeys.RPID, CredentialEntity: protocol.CredentialEntity{Name: s.passkeys.RPName}},
		User: protocol.UserEntity{ID: protocol.URLEncodedBase64(handle), DisplayName: u.Username,
			CredentialEntity: protocol.CredentialEntity{Name: name}},
		Challenge:  raw,
		Parameters: credentialParams,
		Timeout:    int(s.passkeys.Timeout.Milliseconds()),
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			RequireResidentKey: protocol.ResidentKeyRequired(),
			ResidentKey:        protocol.ResidentKeyRequirementRequired,
			UserVerification:   protocol.VerificationRequired,
		},
		Attestation: protocol.PreferNoAttestation,
		// credProps: the browser says whether the credential is
		// discoverable; one that is not cannot sign in without a name.
		Extensions: protocol.AuthenticationExtensions{CredProps: true},
	}})
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
// standard format whose signature checks out). It is checked before the
// Proof, so that a broken response costs no password work.
//
// One TransactWriteItems makes it so: the challenge's single-use marker
// (attribute_not_exists), the credential's item — keyed by a keyed hash of
// the credential ID, and itself the uniqueness marker, claimed with
// attribute_not_exists so no credential can belong to two accounts — and
// the account's list of credentials (under PasskeyConfig.MaxPerAccount)
// and user handle, on condition that the account's credentials did not
// change since the Proof. Cost: the Proof's, plus that one transaction (3
// items, one more per previous secret of the keyring). The session moves
// to a new token (as after every step-up), and the Mailer gets a
// MessagePasskeyAdded.
//
// Errors: ErrProofRequired (and its cause), ErrInvalidPasskey,
// ErrPasskeyTaken, ErrTooManyPasskeys, ErrConflict, ErrUnavailable.
func (s *Users) FinishPasskeyRegistration(ctx context.Context, sm *scs.SessionManager, u *User, p Proof, response []byte, name string, c Client) (*Passkey, error) {
	if !s.passkeys.enabled() {
		return nil, ErrPasskeysDisabled
	}
	if u == nil {
		return nil, ErrNotFound
	}
	if err := checkPasskeyName(name); err != nil {
		return nil, err
	}
	pcc, ch, cred, err := s.openRegistration(ctx, u, response)
	if err != nil {
		s.passkeyEvent(ctx, u.ID, c.IP, err)
		return nil, err
	}
	cred.name = name
	fresh, err := s.stepUp(ctx, u, p, c)
	if err != nil {
		return nil, err
	}
	pks := s.credentialPKs(pcc.Response.AttestationObject.AuthData.AttData.CredentialID)
	cred.pk = pks[0]
	cred.created = s.now().Unix()
	err = s.st.registerPasskey(ctx, ch.markerPK(), ch.expires.Add(markerMargin), fresh, cred, ch.handle, pks[1:], s.passkeys.MaxPerAccount)
	if errors.Is(err, errChallengeUsed) {
		s.event(ctx, dynaguard.EventPasskeyChallengeReplayed, ceremonyRegister.String(), u.ID, c.IP)
		return nil, refuse("replayed")
	}
	if err != nil {
		s.passkeyEvent(ctx, u.ID, c.IP, err)
		return nil, err
	}
	s.log.InfoContext(ctx, "users: passkey registered", "user", u.ID, "passkey", passkeyID(cred.pk))
	s.event(ctx, dynaguard.EventPasskeyRegistered, "", u.ID, c.IP)
	s.notify(ctx, Message{Kind: MessagePasskeyAdded, To: fresh.Email, UserID: u.ID, IP: c.IP, PasskeyName: name})
	pk := cred.passkey()
	return &pk, s.steppedUp(ctx, sm, fresh, c)
}

// openRegistration parses a registration response for u, opens its
// challenge and verifies it: no storage.
func (s *Users) openRegistration(ctx context.Context, u *User, response []byte) (*protocol.ParsedCredentialCreationData, challenge, credential, error) {
	browser, ok := s.browserBinding(ctx, false)
	if !ok {
		return nil, challenge{}, credential{}, ErrNoBrowserBinding
	}
	if len(response) == 0 || len(response) > maxPasskeyResponse {
		return nil, challenge{}, credential{}, refuse("malformed")
	}
	pcc, err := protocol.ParseCredentialCreationResponseBytes(response)
	if err != nil {
		return nil, challenge{}, credential{}, refuse("malformed")
	}
	ch, ok := s.openChallenge(pcc.Response.CollectedClientData.Challenge, ceremonyRegister,
		binding{browser: browser, session: s.sessionID(ctx), user: u.ID})
	if !ok {
		return nil, challenge{}, credential{}, refuse("challenge")
	}
	cred, err := s.verifyRegistration(pcc, ch)
	return pcc, ch, cred, err
}

// verifyRegistration checks an attestation response against challenge ch
// and returns the credential it creates (without its key and name).
func (s *Users) verifyRegistration(pcc *protocol.ParsedCredentialCreationData, ch challenge) (credential, error) {
	r := pcc.Response
	ad := r.AttestationObject.AuthData
	rp := sha256.Sum256([]byte(s.passkeys.RPID))
	switch {
	case !slices.Contains(s.passkeys.Origins, r.CollectedClientData.Origin):
		return credential{}, refuse("origin")
	case !bytes.Equal(ad.RPIDHash, rp[:]):
		return credential{}, refuse("rp_id")
	case !ad.Flags.UserPresent(), !ad.Flags.UserVerified():
		return credential{}, refuse("user_verification")
	case len(ad.AttData.CredentialID) == 0 || len(ad.AttData.CredentialID) > 1023:
		return credential{}, refuse("malformed")
	}
	// A credential the browser reports as not discoverable (credProps.rk
	// false) could not sign in without a login name; a browser that does
	// not report it is trusted to have honoured residentKey "required".
	if cp := pcc.ClientExtensionResults.CredProps; cp != nil && cp.RK != nil && !*cp.RK {
		return credential{}, refuse("not_discoverable")
	}
	if _, err := pcc.Verify(ch.raw, s.passkeys.RPID, s.passkeys.Origins, nil, nil, protocol.TopOriginExplicitVerificationMode,
		false, true, true, nil, credentialParams, protocol.AttestationPolicy{}, protocol.SignaturePolicy{}); err != nil {
		return credential{}, refuse("attestation")
	}
	c := credential{
		pub:     ad.AttData.CredentialPublicKey,
		aaguid:  ad.AttData.AAGUID,
		counter: ad.Counter,
		be:      ad.Flags.HasBackupEligible(),
		bs:      ad.Flags.HasBackupState(),
	}
	for _, t := range r.Transports {
		if len(c.transports) < 8 && len(t) > 0 && len(t) <= 32 && !slices.Contains(c.transports, string(t)) {
			c.transports = append(c.transports, string(t))
		}
	}
	return c, nil
}

// checkPasskeyName refuses a label that is too long, not UTF-8, or holds
// control characters.
func checkPasskeyName(name string) error {
	if len(name) > maxPasskeyName || !utf8.ValidString(name) || strings.IndexFunc(name, unicode.IsControl) >= 0 {
		return &IdentifierError{Field: "passkey-name", Reason: fmt.Sprintf("a passkey's name is at most %d bytes of printable text", maxPasskeyName)}
	}
	return nil
}

// passkey is c as Passkeys shows it.
func (c credential) passkey() Passkey {
	p := Passkey{
		ID:             passkeyID(c.pk),
		Name:           c.name,
		Transports:     c.transports,
		BackupEligible: c.be,
		BackedUp:       c.bs,
		Cloned:         c.cloned,
		Created:        unixTime(c.created),
		LastUsed:       unixTime(c.lastUsed),
	}
	if len(c.aaguid) == 16 {
		a := c.aaguid
		p.AAGUID = fmt.Sprintf("%x-%x-%x-%x-%x", a[0:4], a[4:6], a[6:8], a[8:10], a[10:16])
	}
	return p
}
