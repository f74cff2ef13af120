package nonce

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/gorilla/securecookie"

	"github.com/dynaguard/dynaguard"
)

// The token format, recomputed from its description at the top of token.go
// with crypto/hmac and encoding/base64 alone: a reviewer can check the
// format here without reading the implementation.
func TestTokenFormat(t *testing.T) {
	m := fuzzManager(t)
	r, _ := prepared(m)
	tok, err := Token(r, "transfer")
	if err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(tok, "=+/") {
		t.Fatalf("token %q is not unpadded base64url", tok)
	}
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		t.Fatal(err)
	}
	payload, tag := raw[:len(raw)-32], raw[len(raw)-32:]

	mac := hmac.New(sha256.New, subkey(keyring(t, secretA).Keys(dynaguard.PurposeNonceHash)[0].Secret, "token-mac"))
	mac.Write([]byte("dynaguard/nonce/token/v1\x00"))
	mac.Write(payload)
	if !hmac.Equal(mac.Sum(nil), tag) {
		t.Fatal("the tag is not HMAC-SHA256(token key, label || payload)")
	}

	// version, id, expires, browser binding, session binding, purpose
	want := 1 + 16 + 8 + 16 + 1 + 16 + 1 + len("transfer")
	if len(payload) != want || payload[0] != 1 {
		t.Fatalf("payload %x: want %d bytes starting with version 1", payload, want)
	}
	if exp := int64(binary.BigEndian.Uint64(payload[17:25])); exp != m.clock.Now().Add(DefaultTTL).Unix() {
		t.Fatalf("expiry %d", exp)
	}
	if payload[41] != 16 || payload[58] != 8 || string(payload[59:]) != "transfer" {
		t.Fatalf("session or purpose fields misplaced: %x", payload)
	}
}

// The length bounds in token.go's comment hold, and every issued token lies
// within them.
func TestTokenLengthBounds(t *testing.T) {
	if minTokenLen != 102 || maxTokenLen != 462 {
		t.Fatalf("token lengths %d..%d, the format comment says 102..462", minTokenLen, maxTokenLen)
	}
	m := fuzzManager(t)
	r, _ := prepared(m)
	short, _ := m.issue(new([secretLen]byte), "", "p", t0)
	long, _ := Token(r, strings.Repeat("p", maxPurposeLen))
	if len(short) != minTokenLen || len(long) != maxTokenLen {
		t.Fatalf("shortest token %d, longest %d characters", len(short), len(long))
	}
}

// decode tells garbage (ErrMalformed) from a token of the right shape that
// no configured key signed (ErrBadSignature), and refuses every
// non-canonical spelling of a valid token.
func TestDecodeErrors(t *testing.T) {
	m := fuzzManager(t)
	other := fuzzManager(t)
	other.keys = newKeysets(keyring(t, bytes.Repeat([]byte{0xC3}, 32)))
	r, _ := prepared(m)
	// 100 bytes: the last character carries 4 unused bits.
	tok, _ := Token(r, "transfers")
	raw, _ := tokenEncoding.DecodeString(tok)
	payload := raw[:len(raw)-tagLen]
	if len(raw) != 100 {
		t.Fatalf("test setup: the token holds %d bytes", len(raw))
	}

	// A token of the previous format: a securecookie value over the same
	// payload with the same key.
	legacy, err := securecookie.New(subkey(keyring(t, secretA).Keys(dynaguard.PurposeNonceHash)[0].Secret, "token-mac"), nil).
		SetSerializer(securecookie.NopEncoder{}).Encode("dynaguard-nonce-token", payload)
	if err != nil {
		t.Fatal(err)
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	nonZeroBits := tok[:len(tok)-1] + string(alphabet[strings.IndexByte(alphabet, tok[len(tok)-1])|1])

	cases := []struct {
		name  string
		token string
		want  error
	}{
		{"empty", "", ErrMalformed},
		{"not base64", strings.Repeat("*", minTokenLen), ErrMalformed},
		{"too short", tok[:minTokenLen-1], ErrMalformed},
		{"too long", strings.Repeat("A", maxTokenLen+1), ErrMalformed},
		{"padded", tok + "=", ErrMalformed},
		{"standard alphabet", strings.NewReplacer("-", "+", "_", "/").Replace(tok) + "+", ErrMalformed},
		{"line break inside", tok[:50] + "\n" + tok[50:], ErrMalformed},
		{"payload only", tokenEncoding.EncodeToString(payload), ErrMalformed},
		{"signed, unknown version", signRaw(m, 0, append([]byte{2}, payload[1:]...)), ErrMalformed},
		{"signed, bad layout", signRaw(m, 0, payload[:len(payload)-1]), ErrMalformed},
		{"right shape, random", strings.Repeat("A", len(tok)), ErrBadSignature},
		{"tampered payload", tamper(t, tok), ErrBadSignature},
		{"tampered tag", tokenEncoding.EncodeToString(append(bytes.Clone(payload), make([]byte, tagLen)...)), ErrBadSignature},
		{"signed with another key", signRaw(other, 0, payload), ErrBadSignature},
		{"non-zero trailing bits", nonZeroBits, ErrMalformed},
		{"previous securecookie format", legacy, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := m.decode(c.token)
			switch {
			case c.want == nil && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrBadSignature):
				t.Fatalf("decode = %v, want a refusal", err)
			case c.want != nil && !errors.Is(err, c.want):
				t.Fatalf("decode = %v, want %v", err, c.want)
			}
		})
	}
	if c, key, err := m.decode(tok); err != nil || key != 0 || string(c.purpose()) != "transfers" {
		t.Fatalf("the valid token: %v, key %d", err, key)
	}
}
