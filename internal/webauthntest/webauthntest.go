// Package webauthntest is a software WebAuthn authenticator and client for
// tests: it answers the options that package users hands a browser
// (navigator.credentials.create() and .get()) with the JSON a browser's
// PublicKeyCredential.toJSON() would send back, from P-256 keys it keeps in
// memory as resident (discoverable) credentials.
//
// It can also misbehave on purpose, as an attacker's or a broken client
// would: sign for another origin or RP ID, leave out user verification or
// presence, set the signature counter, claim backup flags, answer another
// challenge. Nothing here is for production use: keys live in memory and
// there is no user to verify.
//
//	a := webauthntest.New("example.com", "https://example.com")
//	resp, cred, err := a.Create(optionsJSON, webauthntest.Options{})   // registration
//	resp, err = a.Get(requestJSON, cred, webauthntest.Options{})       // assertion
package webauthntest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/fxamacker/cbor/v2"
)

// Authenticator flags (WebAuthn §6.1).
const (
	flagUP = 0x01
	flagUV = 0x04
	flagBE = 0x08
	flagBS = 0x10
	flagAT = 0x40
)

var b64 = base64.RawURLEncoding

// Authenticator is a software authenticator plus the browser around it. Its
// zero value is not usable; call New. It is safe for concurrent use.
type Authenticator struct {
	// RPID is the relying party ID it signs for (the rpIdHash in every
	// authenticator data), and Origin the origin its client data names,
	// unless Options override them for one ceremony.
	RPID   string
	Origin string
	// AAGUID is the model it reports at registration (zero by default,
	// as "none" attestation usually does).
	AAGUID [16]byte

	mu    sync.Mutex
	creds []*Credential
}

// Credential is a resident credential the authenticator made. Its fields
// may be read and, between ceremonies, changed by a test (Counter, to
// replay an old counter as a cloned key would).
type Credential struct {
	ID         []byte
	UserHandle []byte
	RPID       string
	Key        *ecdsa.PrivateKey
	// Counter is the signature counter of the last ceremony; each Get
	// advances it by one unless the credential is CounterLess or Options
	// set a counter.
	Counter     uint32
	CounterLess bool
}

// New returns an authenticator for rpID whose client runs on origin.
func New(rpID, origin string) *Authenticator {
	return &Authenticator{RPID: rpID, Origin: origin}
}

// Options changes one ceremony. The zero value is a well-behaved, user
// verified ceremony for the authenticator's RPID and Origin.
type Options struct {
	// Origin and RPID, when set, replace the authenticator's for this
	// ceremony: the client data names Origin, the authenticator data hashes
	// RPID (a phishing page relaying the ceremony, a misconfigured client).
	Origin, RPID string
	// Challenge, when set, replaces the options' challenge in the client
	// data (an answer to another challenge).
	Challenge []byte
	// NoUV and NoUP clear the user-verified and user-present flags.
	NoUV, NoUP bool
	// BackupEligible and BackedUp set the BE and BS flags.
	BackupEligible, BackedUp bool
	// Counter, when set, is the signature counter of this assertion (and
	// becomes the credential's).
	Counter *uint32
	// CounterLess (Create) makes a credential whose counter stays 0.
	CounterLess bool
	// Packed (Create) sends "packed" self attestation instead of "none".
	Packed bool
	// UserHandle (Get), when set, replaces the credential's user handle in
	// the response.
	UserHandle []byte
	// NotDiscoverable (Create) reports the credential as not client-side
	// discoverable (credProps.rk = false), as a security key that cannot
	// store resident keys would.
	NotDiscoverable bool
	// Credential (Create), when set, is registered again instead of a new
	// one (its ID and key, the options' user handle): an attempt to claim a
	// credential that is already registered.
	Credential *Credential
}

// Counter returns a pointer to n, for Options.Counter.
func Counter(n uint32) *uint32 { return &n }

type creationOptions struct {
	PublicKey struct {
		Challenge string `json:"challenge"`
		RP        struct {
			ID string `json:"id"`
		} `json:"rp"`
		User struct {
			ID string `json:"id"`
		} `json:"user"`
	} `json:"publicKey"`
}

type requestOptions struct {
	PublicKey struct {
		Challenge string `json:"challenge"`
		RPID      string `json:"rpId"`
	} `json:"publicKey"`
}

// Create answers the options of navigator.credentials.create() (the JSON
// that users.BeginPasskeyRegistration returns) with a new resident
// credential: the response JSON and the credential.
func (a *Authenticator) Create(options []byte, o Options) ([]byte, *Credential, error) {
	var opts creationOptions
	if err := json.Unmarshal(options, &opts); err != nil {
		return nil, nil, fmt.Errorf("webauthntest: creation options: %w", err)
	}
	challenge, err := b64.DecodeString(opts.PublicKey.Challenge)
	if err != nil {
		return nil, nil, fmt.Errorf("webauthntest: challenge: %w", err)
	}
	handle, err := b64.DecodeString(opts.PublicKey.User.ID)
	if err != nil || len(handle) == 0 {
		return nil, nil, errors.New("webauthntest: options without a user.id")
	}
	rpID := opts.PublicKey.RP.ID
	if rpID == "" {
		rpID = a.RPID
	}
	var c *Credential
	if o.Credential != nil {
		c = &Credential{ID: o.Credential.ID, UserHandle: handle, RPID: rpID, Key: o.Credential.Key, CounterLess: o.CounterLess}
	} else {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		c = &Credential{ID: make([]byte, 32), UserHandle: handle, RPID: rpID, Key: key, CounterLess: o.CounterLess}
		_, _ = rand.Read(c.ID)
	}
	key := c.Key

	cdj := a.clientData("webauthn.create", challenge, o)
	authData := a.authData(o, rpID, flagAT, 0)
	cose, err := coseKey(&key.PublicKey)
	if err != nil {
		return nil, nil, err
	}
	authData = append(authData, a.AAGUID[:]...)
	authData = binary.BigEndian.AppendUint16(authData, uint16(len(c.ID)))
	authData = append(authData, c.ID...)
	authData = append(authData, cose...)

	att := map[string]any{"fmt": "none", "attStmt": map[string]any{}, "authData": authData}
	if o.Packed {
		sig, err := sign(key, authData, cdj)
		if err != nil {
			return nil, nil, err
		}
		att["fmt"] = "packed"
		att["attStmt"] = map[string]any{"alg": -7, "sig": sig}
	}
	attObj, err := encMode.Marshal(att)
	if err != nil {
		return nil, nil, err
	}
	resp, err := json.Marshal(map[string]any{
		"id":                      b64.EncodeToString(c.ID),
		"rawId":                   b64.EncodeToString(c.ID),
		"type":                    "public-key",
		"authenticatorAttachment": "platform",
		"clientExtensionResults":  map[string]any{"credProps": map[string]any{"rk": !o.NotDiscoverable}},
		"response": map[string]any{
			"clientDataJSON":    b64.EncodeToString(cdj),
			"attestationObject": b64.EncodeToString(attObj),
			"transports":        []string{"internal", "hybrid"},
		},
	})
	if err != nil {
		return nil, nil, err
	}
	a.mu.Lock()
	a.creds = append(a.creds, c)
	a.mu.Unlock()
	return resp, c, nil
}

// Get answers the options of navigator.credentials.get() (the JSON of
// users.BeginPasskeyLogin and its siblings) with an assertion by c, or —
// when c is nil — by the most recently created credential for the RP ID
// (as a user picking the newest passkey would).
func (a *Authenticator) Get(options []byte, c *Credential, o Options) ([]byte, error) {
	var opts requestOptions
	if err := json.Unmarshal(options, &opts); err != nil {
		return nil, fmt.Errorf("webauthntest: request options: %w", err)
	}
	challenge, err := b64.DecodeString(opts.PublicKey.Challenge)
	if err != nil {
		return nil, fmt.Errorf("webauthntest: challenge: %w", err)
	}
	rpID := opts.PublicKey.RPID
	if rpID == "" {
		rpID = a.RPID
	}
	a.mu.Lock()
	if c == nil {
		for i := len(a.creds) - 1; i >= 0; i-- {
			if a.creds[i].RPID == rpID {
				c = a.creds[i]
				break
			}
		}
	}
	if c == nil {
		a.mu.Unlock()
		return nil, errors.New("webauthntest: no credential for " + rpID)
	}
	switch {
	case o.Counter != nil:
		c.Counter = *o.Counter
	case !c.CounterLess:
		c.Counter++
	}
	counter, handle := c.Counter, c.UserHandle
	a.mu.Unlock()
	if o.UserHandle != nil {
		handle = o.UserHandle
	}
	cdj := a.clientData("webauthn.get", challenge, o)
	authData := a.authData(o, rpID, 0, counter)
	sig, err := sign(c.Key, authData, cdj)
	if err != nil {
		return nil, err
	}
	return json.Marshal(map[string]any{
		"id":                      b64.EncodeToString(c.ID),
		"rawId":                   b64.EncodeToString(c.ID),
		"type":                    "public-key",
		"authenticatorAttachment": "platform",
		"clientExtensionResults":  map[string]any{},
		"response": map[string]any{
			"clientDataJSON":    b64.EncodeToString(cdj),
			"authenticatorData": b64.EncodeToString(authData),
			"signature":         b64.EncodeToString(sig),
			"userHandle":        b64.EncodeToString(handle),
		},
	})
}

// Challenge returns the challenge of options (creation or request) as
// sent, decoded.
func Challenge(options []byte) ([]byte, error) {
	var opts requestOptions
	if err := json.Unmarshal(options, &opts); err != nil {
		return nil, err
	}
	return b64.DecodeString(opts.PublicKey.Challenge)
}

func (a *Authenticator) clientData(typ string, challenge []byte, o Options) []byte {
	origin := a.Origin
	if o.Origin != "" {
		origin = o.Origin
	}
	if o.Challenge != nil {
		challenge = o.Challenge
	}
	cd, _ := json.Marshal(map[string]any{
		"type":        typ,
		"challenge":   b64.EncodeToString(challenge),
		"origin":      origin,
		"crossOrigin": false,
	})
	return cd
}

func (a *Authenticator) authData(o Options, rpID string, extra byte, counter uint32) []byte {
	if o.RPID != "" {
		rpID = o.RPID
	}
	h := sha256.Sum256([]byte(rpID))
	flags := extra | flagUP | flagUV
	if o.NoUP {
		flags &^= flagUP
	}
	if o.NoUV {
		flags &^= flagUV
	}
	if o.BackupEligible {
		flags |= flagBE
	}
	if o.BackedUp {
		flags |= flagBS
	}
	out := append(h[:], flags)
	return binary.BigEndian.AppendUint32(out, counter)
}

func sign(key *ecdsa.PrivateKey, authData, clientDataJSON []byte) ([]byte, error) {
	cdh := sha256.Sum256(clientDataJSON)
	digest := sha256.Sum256(append(append([]byte(nil), authData...), cdh[:]...))
	return ecdsa.SignASN1(rand.Reader, key, digest[:])
}

var encMode, _ = cbor.CTAP2EncOptions().EncMode()

// coseKey encodes a P-256 public key as a COSE_Key (EC2, ES256).
func coseKey(pub *ecdsa.PublicKey) ([]byte, error) {
	raw, err := pub.Bytes() // 0x04 || X || Y
	if err != nil {
		return nil, err
	}
	return encMode.Marshal(map[int]any{1: 2, 3: -7, -1: 1, -2: raw[1:33], -3: raw[33:65]})
}
