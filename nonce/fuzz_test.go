package nonce

import (
	"bytes"
	"encoding/base64"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func fuzzManager(t testing.TB) *Manager {
	m, err := New(Config{Table: stubTable(), Keys: keyring(t, secretA, secretB), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// FuzzDecode feeds arbitrary strings to the token decoder. It must never
// panic, must refuse everything it did not sign as malformed or badly
// signed, and must give back exactly what it signed.
func FuzzDecode(f *testing.F) {
	m := fuzzManager(f)
	r, _ := prepared(m)
	valid, _ := Token(r, "transfer")
	long, _ := Token(r, strings.Repeat("p", maxPurposeLen))
	if _, _, err := m.decode(long); err != nil {
		f.Fatalf("a token with the longest purpose does not decode: %v", err)
	}
	raw, _ := base64.URLEncoding.DecodeString(valid)
	for _, s := range []string{
		valid, long, valid[:len(valid)-1], valid + "A", strings.ToUpper(valid), "", "=", "|||", "nonce",
		base64.URLEncoding.EncodeToString([]byte("1|2|3")),
		base64.URLEncoding.EncodeToString([]byte("1|" + base64.URLEncoding.EncodeToString(make([]byte, minPayloadLen)) + "|" + strings.Repeat("m", 32))),
		base64.URLEncoding.EncodeToString(bytes.Replace(raw, []byte("|"), []byte("||"), 1)),
		strings.Repeat("A", maxTokenLen), strings.Repeat("A", maxTokenLen+4),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, key, err := m.decode(s)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrBadSignature) {
				t.Fatalf("decode(%q) = %v, want ErrMalformed or ErrBadSignature", s, err)
			}
			return
		}
		if key < 0 || key >= len(m.keys) || c.purpose == "" || len(c.purpose) > maxPurposeLen {
			t.Fatalf("decode(%q) accepted %+v with key %d", s, c, key)
		}
	})
}

// FuzzParseClaims feeds arbitrary payloads to the layout parser, which the
// MAC otherwise shields from the fuzzer: it must never panic, and whatever
// it accepts must re-encode to the same bytes (one payload, one meaning).
func FuzzParseClaims(f *testing.F) {
	c := claims{expires: 1_800_000_000, purpose: "transfer"}
	c.id[0], c.browser[0] = 1, 2
	f.Add(c.marshal())
	c.hasSession, c.session[0] = true, 3
	f.Add(c.marshal())
	c.purpose = strings.Repeat("p", maxPurposeLen)
	f.Add(c.marshal())
	f.Add([]byte{})
	f.Add([]byte{tokenVersion})
	f.Add(make([]byte, minPayloadLen))
	f.Add(append([]byte{2}, make([]byte, 60)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := parseClaims(b)
		if err != nil {
			return
		}
		if got := c.marshal(); !bytes.Equal(got, b) {
			t.Fatalf("parse/marshal differ:\n in %x\nout %x", b, got)
		}
	})
}
