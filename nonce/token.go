package nonce

import (
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

// A token is the unpadded base64url encoding (RFC 4648 §5) of
//
//	payload || HMAC-SHA256(token key, "dynaguard/nonce/token/v1\x00" || payload)
//
// with the full 32-byte tag, compared in constant time. The token key is
// derived from the keyring and used for nothing else; the label in front of
// the MAC input ties every tag to this format and version as well. The
// payload is a fixed binary layout:
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
//
// The encoding is canonical: decoding is strict (the unused low bits of the
// last character must be zero) and nothing is skipped, so one payload has
// exactly one token string. A token is between 102 and 462 characters long.
const (
	tokenVersion  = 1
	idLen         = 16
	bindLen       = 16
	tagLen        = sha256.Size
	maxPurposeLen = 255
	minPayloadLen = 1 + idLen + 8 + bindLen + 1 + 1 + 1
	maxPayloadLen = 1 + idLen + 8 + bindLen + 1 + bindLen + 1 + maxPurposeLen
	minRawLen     = minPayloadLen + tagLen
	maxRawLen     = maxPayloadLen + tagLen
	// minTokenLen and maxTokenLen are the encoded lengths of the shortest and
	// the longest token this package issues. Nothing outside them is decoded
	// at all, which also bounds the stack buffer decoding uses.
	minTokenLen = (minRawLen*8 + 5) / 6
	maxTokenLen = (maxRawLen*8 + 5) / 6
)

// tokenLabel is the domain label in front of every token MAC input.
const tokenLabel = "dynaguard/nonce/token/v1\x00"

// tokenEncoding is the token's text encoding: base64url without padding,
// refusing non-zero trailing bits.
var tokenEncoding = base64.RawURLEncoding.Strict()

// maxCookieLen bounds the browser cookie value securecookie will decode; the
// cookie this package sets is about 160 characters.
const maxCookieLen = 1024

// keyset is what one secret of the keyring yields for this package. Each
// key is independent (HKDF from the keyring's per-purpose key), so the token
// MAC, the browser cookie MAC and the binding hashes never share a key.
type keyset struct {
	token  *tokenMAC                  // signs tokens
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
			token:  newTokenMAC(subkey(h, "token-mac")),
			cookie: cookieCodec(subkey(h, "browser-cookie-mac"), blockKeys[i].Secret),
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

func cookieCodec(hashKey, blockKey []byte) *securecookie.SecureCookie {
	// MaxAge(0): securecookie's own age check reads the wall clock; expiry is
	// checked on the payload with Config.Clock instead, so there is exactly
	// one expiry rule and tests can move the clock. It also makes decoding a
	// pure function of the value, which the cache of verified cookies relies
	// on.
	return securecookie.New(hashKey, blockKey).
		MaxAge(0).
		MaxLength(maxCookieLen).
		SetSerializer(securecookie.NopEncoder{})
}

// tokenMAC computes the token tag under one key. The keyed HMAC state is
// pooled, as in binder, so signing and verifying cost neither the HMAC key
// setup nor an allocation.
type tokenMAC struct{ pool sync.Pool }

type macState struct {
	mac hash.Hash
	// buf holds tokenLabel || payload: the payload is copied here, into
	// memory of the pool, so that the callers' buffers stay on the stack
	// (anything handed to hash.Hash.Write escapes).
	buf [len(tokenLabel) + maxPayloadLen]byte
	sum [sha256.Size]byte
}

func newTokenMAC(key []byte) *tokenMAC {
	t := &tokenMAC{}
	t.pool.New = func() any {
		st := &macState{mac: hmac.New(sha256.New, key)}
		copy(st.buf[:], tokenLabel)
		return st
	}
	return t
}

// tag returns HMAC-SHA256(key, tokenLabel || payload); payload is at most
// maxPayloadLen bytes.
func (t *tokenMAC) tag(payload []byte) (out [tagLen]byte) {
	st := t.pool.Get().(*macState)
	n := len(tokenLabel) + copy(st.buf[len(tokenLabel):], payload)
	st.mac.Reset()
	st.mac.Write(st.buf[:n])
	copy(out[:], st.mac.Sum(st.sum[:0]))
	t.pool.Put(st)
	return out
}

// verify reports whether tag is payload's tag, in constant time.
func (t *tokenMAC) verify(payload, tag []byte) bool {
	want := t.tag(payload)
	return hmac.Equal(want[:], tag)
}

// claims is a decoded token. It is a plain value (the purpose is held in a
// fixed array) so that decoding a token allocates nothing.
type claims struct {
	id         [idLen]byte
	expires    int64 // Unix seconds
	browser    [bindLen]byte
	hasSession bool
	session    [bindLen]byte
	purposeLen uint8
	purposeBuf [maxPurposeLen]byte
}

// purpose returns the purpose the token was issued for (a view into c).
func (c *claims) purpose() []byte { return c.purposeBuf[:c.purposeLen] }

// setPurpose records p, which checkPurpose has accepted.
func (c *claims) setPurpose(p string) { c.purposeLen = uint8(copy(c.purposeBuf[:], p)) }

// appendPayload appends the token payload of c to dst.
func (c *claims) appendPayload(dst []byte) []byte {
	b := append(dst, tokenVersion)
	b = append(b, c.id[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(c.expires))
	b = append(b, c.browser[:]...)
	if c.hasSession {
		b = append(b, bindLen)
		b = append(b, c.session[:]...)
	} else {
		b = append(b, 0)
	}
	b = append(b, c.purposeLen)
	return append(b, c.purpose()...)
}

var errLayout = errors.New("unknown token layout")

// parseClaims reads a payload whose MAC has been verified. It still checks
// every length: a payload signed by a future version must be refused, not
// misread.
func parseClaims(b []byte) (c claims, err error) {
	if len(b) < minPayloadLen || len(b) > maxPayloadLen || b[0] != tokenVersion {
		return claims{}, errLayout
	}
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
			return claims{}, errLayout
		}
		c.hasSession = true
		copy(c.session[:], b[1:])
		b = b[1+bindLen:]
	default:
		return claims{}, errLayout
	}
	n := int(b[0])
	if n == 0 || len(b) != 1+n {
		return claims{}, errLayout
	}
	c.purposeLen = uint8(copy(c.purposeBuf[:], b[1:]))
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
	c := claims{expires: now.Add(m.ttl).Unix()}
	c.setPurpose(purpose)
	_, _ = rand.Read(c.id[:]) // crypto/rand.Read never fails (it crashes the program instead)
	c.browser = ks.bind.bytes(labelBrowser, secret[:])
	if session != "" {
		c.hasSession = true
		c.session = ks.bind.string(labelSession, session)
	}
	var raw [maxRawLen]byte
	b := c.appendPayload(raw[:0])
	tag := ks.token.tag(b)
	b = append(b, tag[:]...)
	var enc [maxTokenLen]byte
	tokenEncoding.Encode(enc[:], b)
	return string(enc[:tokenEncoding.EncodedLen(len(b))]), nil
}

// decode checks a token's signature with every configured key, current
// first, and returns its claims and the index of the key that signed it.
// It makes no storage call and no allocation.
//
// Anything that is not canonical base64url of a payload and a tag of
// possible lengths is ErrMalformed; the right shape with a tag no
// configured key produced is ErrBadSignature (altered, forged, or signed
// with a dropped key); a tag that verifies over a payload whose layout is
// unknown is ErrMalformed again.
func (m *Manager) decode(token string) (claims, int, error) {
	// The length check comes first: it bounds the decoding below to raw.
	if len(token) < minTokenLen || len(token) > maxTokenLen {
		return claims{}, 0, ErrMalformed
	}
	var raw [maxRawLen]byte
	n, err := tokenEncoding.Decode(raw[:], []byte(token))
	// Decode skips CR and LF; requiring the exact encoded length refuses
	// them, so no two strings decode to one token.
	if err != nil || n < minRawLen || tokenEncoding.EncodedLen(n) != len(token) {
		return claims{}, 0, ErrMalformed
	}
	payload, tag := raw[:n-tagLen], raw[n-tagLen:n]
	for i := range m.keys {
		if !m.keys[i].token.verify(payload, tag) {
			continue
		}
		c, err := parseClaims(payload)
		if err != nil {
			return claims{}, 0, ErrMalformed
		}
		return c, i, nil
	}
	return claims{}, 0, ErrBadSignature
}

func checkPurpose(purpose string) error {
	if len(purpose) == 0 || len(purpose) > maxPurposeLen {
		return errBadPurpose
	}
	return nil
}

var errBadPurpose = errors.New("nonce: purpose must be 1 to 255 bytes")
