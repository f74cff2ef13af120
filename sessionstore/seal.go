package sessionstore

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"hash"
	"strconv"
	"sync"

	"github.com/dynaguard/dynaguard"
)

// Session data at rest is sealed with AES-256-GCM under a fresh subkey per
// write:
//
//	nonce   = 24 random bytes
//	subkey  = HMAC-SHA256(key, "dynaguard/session-seal/v1" || nonce[:12])
//	data    = nonce || AES-256-GCM(subkey).Seal(iv = nonce[12:], plaintext, ad)
//	ad      = "dynaguard/session/v1" || 0x00 || pk || 0x00 || exp (decimal Unix ns)
//
// A 192-bit random nonce keeps the chance of a nonce reuse negligible however
// many commits one key seals (plain GCM with 96-bit random nonces must stop
// at about 2^32 messages per key). The associated data binds the ciphertext
// to the item's key and precise expiry: ciphertext copied to another session,
// or an exp attribute pushed later by someone with write access to the table,
// fails to open, and the session is treated as absent.
const (
	nonceLen     = 24
	sealOverhead = nonceLen + 16 // nonce and GCM tag
)

var (
	subkeyLabel = []byte("dynaguard/session-seal/v1")
	adLabel     = "dynaguard/session/v1\x00"
)

// errOpen is returned for data that does not authenticate. It never leaves
// the package: such a session is reported as absent.
var errOpen = errors.New("sessionstore: session data failed authentication")

// sealKey is one key of PurposeSessionEncryption. ID is stored beside the
// data so that the right key is found after a rotation.
type sealKey struct {
	id  string
	key []byte
	// macs pools the keyed HMAC that derives per-write subkeys, so reading
	// a session costs no HMAC key setup (every session load opens one).
	macs *sync.Pool
}

type subkeyMAC struct {
	mac hash.Hash
	sum [sha256.Size]byte
	ad  []byte // the associated data, built here rather than in a fresh slice
}

func sealKeys(keys []dynaguard.DerivedKey) []sealKey {
	out := make([]sealKey, len(keys))
	for i, k := range keys {
		secret := k.Secret
		out[i] = sealKey{id: k.ID, key: secret, macs: &sync.Pool{New: func() any {
			return &subkeyMAC{mac: hmac.New(sha256.New, secret)}
		}}}
	}
	return out
}

// prepare takes a pooled state and returns the AEAD under the subkey of
// nonce, with the state's ad set for the item pk expiring at exp. The caller
// returns the state with done.
func (k sealKey) prepare(nonce []byte, pk string, exp int64) (cipher.AEAD, *subkeyMAC, error) {
	m := k.macs.Get().(*subkeyMAC)
	m.mac.Reset()
	m.mac.Write(subkeyLabel)
	m.mac.Write(nonce[:12])
	var sub [sha256.Size]byte
	copy(sub[:], m.mac.Sum(m.sum[:0]))
	m.ad = sealAD(m.ad[:0], pk, exp)
	block, err := aes.NewCipher(sub[:])
	if err != nil {
		k.done(m)
		return nil, nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		k.done(m)
		return nil, nil, err
	}
	return aead, m, nil
}

func (k sealKey) done(m *subkeyMAC) {
	if cap(m.ad) <= 1024 {
		k.macs.Put(m)
	}
}

// seal encrypts plaintext for the item pk expiring at exp (Unix ns).
func (k sealKey) seal(pk string, exp int64, plaintext []byte) ([]byte, error) {
	out := make([]byte, nonceLen, nonceLen+len(plaintext)+16)
	rand.Read(out) // never fails (crypto/rand panics instead)
	aead, m, err := k.prepare(out, pk, exp)
	if err != nil {
		return nil, err
	}
	defer k.done(m)
	return aead.Seal(out, out[12:nonceLen], plaintext, m.ad), nil
}

// open decrypts data sealed by seal for the same pk and exp.
func (k sealKey) open(pk string, exp int64, data []byte) ([]byte, error) {
	if len(data) < sealOverhead {
		return nil, errOpen
	}
	aead, m, err := k.prepare(data, pk, exp)
	if err != nil {
		return nil, err
	}
	defer k.done(m)
	out, err := aead.Open(nil, data[12:nonceLen], data[nonceLen:], m.ad)
	if err != nil {
		return nil, errOpen
	}
	return out, nil
}

// sealAD appends the associated data for the item pk expiring at exp to ad.
func sealAD(ad []byte, pk string, exp int64) []byte {
	ad = append(ad, adLabel...)
	ad = append(ad, pk...)
	ad = append(ad, 0)
	return strconv.AppendInt(ad, exp, 10)
}
