package nonce

import (
	"bytes"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash"
	"sync"
	"time"

	"github.com/gorilla/securecookie"

	"github.com/dynaguard/dynaguard"
)

// A token is a gorilla/securecookie value (HMAC-SHA256 over a timestamp and
// the payload) whose payload is this package's own fixed binary layout:
//
//	version   1 byte  (tokenVersion)
//	id       16 bytes random (128 bits); the consumption record is keyed by its hash
//	expires   8 bytes big-endian Unix seconds
//	browser  16 bytes HMAC(bind key, browser secret), truncated
//	session   1 byte  0, or 16 followed by 16 bytes HMAC(bind key, session ID), truncated
//	purpose   1 byte  length n (1..255), then n bytes
//
// Tokens are signed, not encrypted: nothing in them is secret (the ID is
// useless without the browser cookie and is worthless once consumed; the
// bindings are keyed hashes), and leaving out encryption keeps them short
// and cheap to verify. The browser secret itself never appears in a token.
const (
	tokenVersion  = 1
	idLen         = 16
	bindLen       = 16
	maxPurposeLen = 255
	minPayloadLen = 1 + idLen + 8 + bindLen + 1 + 1 + 1
	maxPayloadLen = 1 + idLen + 8 + bindLen + 1 + bindLen + 1 + maxPurposeLen
	// maxTokenLen bounds what is decoded at all: the longest token this
	// package can issue is about 620 characters.
	maxTokenLen = 1024
	// tokenName is securecookie's "cookie name" for tokens: it is covered by
	// the MAC, so a browser cookie value can never pass as a token.
	tokenName = "dynaguard-nonce-token"
)

// keyset is what one secret of the keyring yields for this package. Each
// key is independent (HKDF from the keyring's per-purpose key), so the token
// MAC, the browser cookie MAC and the binding hashes never share a key.
type keyset struct {
	token  *securecookie.SecureCookie // signs tokens
	cookie *securecookie.SecureCookie // signs and encrypts the browser cookie
	bind   *binder                    // keys the browser and session binding hashes
}

func newKeysets(keys *dynaguard.Keyring) []keyset {
	hashKeys := keys.Keys(dynaguard.PurposeNonceHash)
	blockKeys := keys.Keys(dynaguard.PurposeNonceBlock)
	out := make([]keyset, len(hashKeys))
	for i := range hashKeys {
		h := hashKeys[i].Secret
		out[i] = keyset{
			token:  codec(subkey(h, "token-mac"), nil),
			cookie: codec(subkey(h, "browser-cookie-mac"), blockKeys[i].Secret),
			bind:   newBinder(subkey(h, "binding")),
		}
	}
	return out
}

func subkey(key []byte, label string) []byte {
	k, err := hkdf.Key(sha256.New, key, nil, "dynaguard/nonce/"+label, 32)
	if err != nil {
		panic(err) // only for an output length over 255*32 bytes
	}
	return k
}

func codec(hashKey, blockKey []byte) *securecookie.SecureCookie {
	// MaxAge(0): securecookie's own age check reads the wall clock; expiry is
	// checked on the payload with Config.Clock instead, so there is exactly
	// one expiry rule and tests can move the clock.
	return securecookie.New(hashKey, blockKey).
		MaxAge(0).
		MaxLength(maxTokenLen).
		SetSerializer(securecookie.NopEncoder{})
}

// claims is a decoded token.
type claims struct {
	id         [idLen]byte
	expires    int64 // Unix seconds
	browser    [bindLen]byte
	hasSession bool
	session    [bindLen]byte
	purpose    string
}

func (c *claims) marshal() []byte {
	n := 1 + idLen + 8 + bindLen + 1 + 1 + len(c.purpose)
	if c.hasSession {
		n += bindLen
	}
	b := make([]byte, 0, n)
	b = append(b, tokenVersion)
	b = append(b, c.id[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(c.expires))
	b = append(b, c.browser[:]...)
	if c.hasSession {
		b = append(b, bindLen)
		b = append(b, c.session[:]...)
	} else {
		b = append(b, 0)
	}
	b = append(b, byte(len(c.purpose)))
	b = append(b, c.purpose...)
	return b
}

var errLayout = errors.New("unknown token layout")

// parseClaims reads a payload whose MAC has been verified. It still checks
// every length: a payload signed by a future version must be refused, not
// misread.
func parseClaims(b []byte) (*claims, error) {
	if len(b) < minPayloadLen || len(b) > maxPayloadLen || b[0] != tokenVersion {
		return nil, errLayout
	}
	c := &claims{}
	b = b[1:]
	copy(c.id[:], b)
	b = b[idLen:]
	c.expires = int64(binary.BigEndian.Uint64(b))
	b = b[8:]
	copy(c.browser[:], b)
	b = b[bindLen:]
	switch b[0] {
	case 0:
		b = b[1:]
	case bindLen:
		if len(b) < 1+bindLen+1 {
			return nil, errLayout
		}
		c.hasSession = true
		copy(c.session[:], b[1:])
		b = b[1+bindLen:]
	default:
		return nil, errLayout
	}
	n := int(b[0])
	if n == 0 || len(b) != 1+n {
		return nil, errLayout
	}
	c.purpose = string(b[1:])
	return c, nil
}

// binder computes the truncated HMAC that ties a token to a browser secret
// or a session ID, under one key; the label keeps the two kinds apart. The
// keyed HMAC state is pooled, so a request's bindings cost neither the
// HMAC key setup nor an allocation.
type binder struct{ pool sync.Pool }

type bindState struct {
	mac hash.Hash
	buf []byte
	sum [sha256.Size]byte
}

func newBinder(key []byte) *binder {
	b := &binder{}
	b.pool.New = func() any { return &bindState{mac: hmac.New(sha256.New, key), buf: make([]byte, 0, 64)} }
	return b
}

func (b *binder) finish(st *bindState) (out [bindLen]byte) {
	st.mac.Reset()
	st.mac.Write(st.buf)
	copy(out[:], st.mac.Sum(st.sum[:0]))
	if cap(st.buf) <= 1024 {
		b.pool.Put(st)
	}
	return out
}

// bytes returns the binding of value under label.
func (b *binder) bytes(label byte, value []byte) [bindLen]byte {
	st := b.pool.Get().(*bindState)
	st.buf = append(append(st.buf[:0], label), value...)
	return b.finish(st)
}

// string is bytes for a string value.
func (b *binder) string(label byte, value string) [bindLen]byte {
	st := b.pool.Get().(*bindState)
	st.buf = append(append(st.buf[:0], label), value...)
	return b.finish(st)
}

const (
	labelBrowser = 'b'
	labelSession = 's'
)

// issue makes a signed token with the current key.
func (m *Manager) issue(secret *[secretLen]byte, session, purpose string, now time.Time) (string, error) {
	if err := checkPurpose(purpose); err != nil {
		return "", err
	}
	ks := &m.keys[0]
	c := claims{expires: now.Add(m.ttl).Unix(), purpose: purpose}
	_, _ = rand.Read(c.id[:]) // crypto/rand.Read never fails (it crashes the program instead)
	c.browser = ks.bind.bytes(labelBrowser, secret[:])
	if session != "" {
		c.hasSession = true
		c.session = ks.bind.string(labelSession, session)
	}
	return ks.token.Encode(tokenName, c.marshal())
}

// decode checks a token's signature with every configured key, current
// first, and returns its claims and the index of the key that signed it.
// It makes no storage call.
func (m *Manager) decode(token string) (*claims, int, error) {
	if len(token) == 0 || len(token) > maxTokenLen {
		return nil, 0, ErrMalformed
	}
	for i := range m.keys {
		var payload []byte
		if err := m.keys[i].token.Decode(tokenName, token, &payload); err != nil {
			continue
		}
		c, err := parseClaims(payload)
		if err != nil {
			return nil, 0, ErrMalformed
		}
		return c, i, nil
	}
	if shapedLikeToken(token) {
		return nil, 0, ErrBadSignature
	}
	return nil, 0, ErrMalformed
}

// shapedLikeToken tells a forged or re-keyed token (ErrBadSignature) from
// garbage (ErrMalformed): it checks securecookie's outer layout —
// base64url("<timestamp>|<base64url payload>|<32-byte MAC>") — without
// checking the MAC. It runs only on the failure path.
func shapedLikeToken(token string) bool {
	raw, err := base64.URLEncoding.DecodeString(token)
	if err != nil {
		return false
	}
	parts := bytes.SplitN(raw, []byte("|"), 3)
	if len(parts) != 3 || len(parts[0]) == 0 || len(parts[2]) != sha256.Size {
		return false
	}
	for _, d := range parts[0] {
		if d < '0' || d > '9' {
			return false
		}
	}
	payload, err := base64.URLEncoding.DecodeString(string(parts[1]))
	return err == nil && len(payload) >= minPayloadLen && len(payload) <= maxPayloadLen
}

func checkPurpose(purpose string) error {
	if len(purpose) == 0 || len(purpose) > maxPurposeLen {
		return errBadPurpose
	}
	return nil
}

var errBadPurpose = errors.New("nonce: purpose must be 1 to 255 bytes")
