// Package seal is the authenticated encryption dynaguard uses for data at
// rest (session data, stored idempotent responses): AES-256-GCM under a fresh
// subkey per message.
//
//	nonce   = 24 random bytes
//	subkey  = HMAC-SHA256(key, label || nonce[:12])
//	data    = nonce || AES-256-GCM(subkey).Seal(iv = nonce[12:], plaintext, ad)
//
// A 192-bit random nonce keeps the chance of a nonce reuse negligible however
// many messages one key seals (plain GCM with 96-bit random nonces must stop
// at about 2^32 messages per key). The label separates the users of one key;
// the associated data, chosen by the caller, binds a ciphertext to the
// record it belongs to and to every stored field that gives it meaning.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"hash"
	"sync"

	"github.com/dynaguard/dynaguard"
)

// Sizes of the format.
const (
	NonceLen = 24
	Overhead = NonceLen + 16 // nonce and GCM tag
)

// ErrOpen is returned for data that does not authenticate: altered, sealed
// under another key or label, or opened with different associated data.
var ErrOpen = errors.New("seal: data failed authentication")

// AD appends a message's associated data to dst and returns it.
type AD func(dst []byte) []byte

// Key is one derived key. ID is stored beside the data so that the right key
// is found after a rotation.
type Key struct {
	ID     string
	secret []byte
	label  []byte
	// states pools the keyed HMAC that derives per-message subkeys, so
	// opening costs no HMAC key setup, and the associated data buffer.
	states *sync.Pool
}

type state struct {
	mac hash.Hash
	sum [sha256.Size]byte
	ad  []byte
}

// Keys returns the keys for label, in the order given (current first).
func Keys(keys []dynaguard.DerivedKey, label string) []Key {
	out := make([]Key, len(keys))
	for i, k := range keys {
		secret := k.Secret
		out[i] = Key{ID: k.ID, secret: secret, label: []byte(label), states: &sync.Pool{New: func() any {
			return &state{mac: hmac.New(sha256.New, secret)}
		}}}
	}
	return out
}

// Find returns the key of keys whose ID is id.
func Find(keys []Key, id string) (Key, bool) {
	for _, k := range keys {
		if k.ID == id {
			return k, true
		}
	}
	return Key{}, false
}

// prepare takes a pooled state and returns the AEAD under the subkey of
// nonce, with the state's ad filled by ad. The caller returns the state with
// done.
func (k Key) prepare(nonce []byte, ad AD) (cipher.AEAD, *state, error) {
	st := k.states.Get().(*state)
	st.mac.Reset()
	st.mac.Write(k.label)
	st.mac.Write(nonce[:12])
	var sub [sha256.Size]byte
	copy(sub[:], st.mac.Sum(st.sum[:0]))
	st.ad = ad(st.ad[:0])
	block, err := aes.NewCipher(sub[:])
	if err != nil {
		k.done(st)
		return nil, nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		k.done(st)
		return nil, nil, err
	}
	return aead, st, nil
}

func (k Key) done(st *state) {
	if cap(st.ad) <= 1024 {
		k.states.Put(st)
	}
}

// Seal encrypts plaintext with the associated data ad.
func (k Key) Seal(plaintext []byte, ad AD) ([]byte, error) {
	out := make([]byte, NonceLen, NonceLen+len(plaintext)+16)
	rand.Read(out) // never fails (crypto/rand panics instead)
	aead, st, err := k.prepare(out, ad)
	if err != nil {
		return nil, err
	}
	defer k.done(st)
	return aead.Seal(out, out[12:NonceLen], plaintext, st.ad), nil
}

// Open decrypts data sealed by Seal under the same key, label and
// associated data; anything else is ErrOpen.
func (k Key) Open(data []byte, ad AD) ([]byte, error) {
	if len(data) < Overhead {
		return nil, ErrOpen
	}
	aead, st, err := k.prepare(data, ad)
	if err != nil {
		return nil, err
	}
	defer k.done(st)
	out, err := aead.Open(nil, data[12:NonceLen], data[NonceLen:], st.ad)
	if err != nil {
		return nil, ErrOpen
	}
	return out, nil
}
