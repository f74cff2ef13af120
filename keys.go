package dynaguard

import (
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// MinSecretLen is the shortest secret a [Keyring] accepts, in bytes.
const MinSecretLen = 32

// Purpose names what a derived key is for. Keys derived for different
// purposes are independent: knowing one says nothing about another.
type Purpose string

// The purposes dynaguard's components derive keys for.
const (
	PurposeSessionID         Purpose = "session-id"         // HMAC of session tokens into table keys
	PurposeSessionEncryption Purpose = "session-encryption" // AEAD of session data at rest
	PurposeNonceHash         Purpose = "nonce-hash"         // MAC keys of nonce tokens, the browser cookie (securecookie) and token bindings
	PurposeNonceBlock        Purpose = "nonce-block"        // securecookie encryption key of the browser cookie
	PurposeTokenHash         Purpose = "token-hash"         // keyed hashes of one-time tokens
	PurposePasswordPepper    Purpose = "password-pepper"    // HMAC pepper applied before password hashing
	PurposeIdempotencySeal   Purpose = "idempotency-seal"   // AEAD of stored idempotent responses at rest
	PurposeSessionAuth       Purpose = "session-auth"       // HMAC binding a login session to the user's credential version and session epoch
	PurposeThrottleKey       Purpose = "throttle-key"       // keyed hashes of login identifiers and client addresses in throttling counters
	PurposeTOTPSeal          Purpose = "totp-seal"          // AEAD of TOTP secrets at rest

	PurposeIdempotencyFingerprint Purpose = "idempotency-fingerprint" // HMAC fingerprints of idempotent requests and Do payloads
)

// ErrSecretTooShort is returned for a secret shorter than MinSecretLen.
var ErrSecretTooShort = errors.New("dynaguard: secret must be at least 32 bytes")

// Keyring turns the application's secrets — the current one first, previous
// ones kept while data made with them may still be presented — into
// independent per-purpose keys with HKDF-SHA256. One setting (for example
// DYNAGUARD_SECRET) thus keys every component, and rotating it rotates all of
// them: new material is made with the current secret, and material made with
// a previous one is still accepted until that secret is dropped.
type Keyring struct {
	secrets [][]byte
	// derived caches Keys per purpose: components look keys up at request
	// time (users checks a session's auth hash on every request), and HKDF
	// twice per secret each time was a measurable share of a request.
	derived sync.Map // Purpose → []DerivedKey
}

// NewKeyring returns a Keyring for the current secret and any previous ones.
// Each must be at least MinSecretLen bytes of high-entropy randomness.
func NewKeyring(current []byte, previous ...[]byte) (*Keyring, error) {
	all := append([][]byte{current}, previous...)
	k := &Keyring{secrets: make([][]byte, len(all))}
	for i, s := range all {
		if len(s) < MinSecretLen {
			return nil, fmt.Errorf("%w (secret %d has %d)", ErrSecretTooShort, i, len(s))
		}
		k.secrets[i] = append([]byte(nil), s...)
	}
	return k, nil
}

// howToMakeSecret ends the errors of ParseKeyring, whose input is usually
// the DYNAGUARD_SECRET variable.
const howToMakeSecret = "DYNAGUARD_SECRET takes hex secrets of at least 32 bytes, current first, comma-separated; " +
	"make one with `dynaguard secret` (go run github.com/dynaguard/dynaguard/cmd/dynaguard@latest secret) or `openssl rand -hex 32`"

// ParseKeyring reads hex secrets separated by commas, current first — the
// format of DYNAGUARD_SECRET. Its errors say how to make a secret.
func ParseKeyring(hexSecrets string) (*Keyring, error) {
	if strings.TrimSpace(hexSecrets) == "" {
		return nil, fmt.Errorf("%w: no secret given (is DYNAGUARD_SECRET set?). %s", ErrSecretTooShort, howToMakeSecret)
	}
	parts := strings.Split(strings.TrimSpace(hexSecrets), ",")
	secrets := make([][]byte, 0, len(parts))
	for i, p := range parts {
		b, err := hex.DecodeString(strings.TrimSpace(p))
		if err != nil {
			return nil, fmt.Errorf("dynaguard: secret %d is not hex: %w. %s", i, err, howToMakeSecret)
		}
		secrets = append(secrets, b)
	}
	k, err := NewKeyring(secrets[0], secrets[1:]...)
	if err != nil {
		return nil, fmt.Errorf("%w. %s", err, howToMakeSecret)
	}
	return k, nil
}

// DerivedKey is a 32-byte key for one purpose, from one secret of the
// keyring. ID names it without revealing it (for example the pepper version
// stored beside a password hash).
type DerivedKey struct {
	ID     string
	Secret []byte
}

// Keys returns the keys for purpose, the current one first. Each purpose's
// keys are derived once and then shared: the returned slice is the
// caller's, but the key bytes (DerivedKey.Secret) must not be modified.
func (k *Keyring) Keys(purpose Purpose) []DerivedKey {
	return slices.Clone(k.keys(purpose))
}

// Key returns the current key for purpose (see Keys).
func (k *Keyring) Key(purpose Purpose) DerivedKey {
	return k.keys(purpose)[0]
}

func (k *Keyring) keys(purpose Purpose) []DerivedKey {
	if v, ok := k.derived.Load(purpose); ok {
		return v.([]DerivedKey)
	}
	out := make([]DerivedKey, len(k.secrets))
	for i, s := range k.secrets {
		out[i] = derive(s, purpose)
	}
	v, _ := k.derived.LoadOrStore(purpose, out)
	return v.([]DerivedKey)
}

var keyringSalt = []byte("dynaguard keyring v1")

func derive(secret []byte, purpose Purpose) DerivedKey {
	key, err := hkdf.Key(sha256.New, secret, keyringSalt, "dynaguard/"+string(purpose), 32)
	if err != nil {
		// Only possible for an output length over 255*32 bytes.
		panic(err)
	}
	idk, _ := hkdf.Key(sha256.New, key, nil, "dynaguard/key-id", 6)
	return DerivedKey{ID: base64.RawURLEncoding.EncodeToString(idk), Secret: key}
}
