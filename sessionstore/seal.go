package sessionstore

import (
	"strconv"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/seal"
)

// Session data at rest is sealed with internal/seal (AES-256-GCM under a
// fresh subkey per write, 192-bit random nonces):
//
//	subkey  = HMAC-SHA256(key, "dynaguard/session-seal/v1" || nonce[:12])
//	ad      = "dynaguard/session/v1" || 0x00 || pk || 0x00 || exp (decimal Unix ns)
//
// The associated data binds the ciphertext to the item's key and precise
// expiry: ciphertext copied to another session, or an exp attribute pushed
// later by someone with write access to the table, fails to open, and the
// session is treated as absent.
const (
	nonceLen     = seal.NonceLen
	sealOverhead = seal.Overhead
)

var (
	subkeyLabel = []byte("dynaguard/session-seal/v1")
	adLabel     = "dynaguard/session/v1\x00"
)

// sealKey is one key of PurposeSessionEncryption.
type sealKey struct {
	seal.Key
	id  string
	key []byte // the derived key, for tests that check the format
}

func sealKeys(keys []dynaguard.DerivedKey) []sealKey {
	sk := seal.Keys(keys, string(subkeyLabel))
	out := make([]sealKey, len(keys))
	for i, k := range keys {
		out[i] = sealKey{Key: sk[i], id: k.ID, key: k.Secret}
	}
	return out
}

// seal encrypts plaintext for the item pk expiring at exp (Unix ns).
func (k sealKey) seal(pk string, exp int64, plaintext []byte) ([]byte, error) {
	return k.Seal(plaintext, func(ad []byte) []byte { return sealAD(ad, pk, exp) })
}

// open decrypts data sealed by seal for the same pk and exp.
func (k sealKey) open(pk string, exp int64, data []byte) ([]byte, error) {
	return k.Open(data, func(ad []byte) []byte { return sealAD(ad, pk, exp) })
}

// sealAD appends the associated data for the item pk expiring at exp to ad.
func sealAD(ad []byte, pk string, exp int64) []byte {
	ad = append(ad, adLabel...)
	ad = append(ad, pk...)
	ad = append(ad, 0)
	return strconv.AppendInt(ad, exp, 10)
}
