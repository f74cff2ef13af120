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
// signed, and must give back exactly what it signed: a token it accepts is
// the one canonical encoding of its claims under the key that signed it.
func FuzzDecode(f *testing.F) {
	m := fuzzManager(f)
	r, _ := prepared(m)
	valid, _ := Token(r, "transfer")
	long, _ := Token(r, strings.Repeat("p", maxPurposeLen))
	if _, _, err := m.decode(long); err != nil {
		f.Fatalf("a token with the longest purpose does not decode: %v", err)
	}
	raw, _ := tokenEncoding.DecodeString(valid)
	flipped := bytes.Clone(raw)
	flipped[len(flipped)-1] ^= 1
	for _, s := range []string{
		valid, long, valid[:len(valid)-1], valid + "A", valid + "==", strings.ToUpper(valid), "", "=", "nonce",
		valid[:10] + "\n" + valid[10:], valid[:10] + "+" + valid[11:],
		tokenEncoding.EncodeToString(flipped),
		tokenEncoding.EncodeToString(raw[:len(raw)-tagLen]),
		signRaw(m, 0, []byte{2}),
		signRaw(m, 1, make([]byte, minPayloadLen)),
		signRaw(m, 0, raw[:len(raw)-tagLen-1]),
		base64.URLEncoding.EncodeToString([]byte("1|2|3")),
		strings.Repeat("A", minTokenLen), strings.Repeat("A", maxTokenLen), strings.Repeat("A", maxTokenLen+1),
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
		if key < 0 || key >= len(m.keys) || len(c.purpose()) == 0 {
			t.Fatalf("decode(%q) accepted %+v with key %d", s, c, key)
		}
		if again := signRaw(m, key, c.appendPayload(nil)); again != s {
			t.Fatalf("decode(%q) accepted a token that is not the canonical %q", s, again)
		}
	})
}

// FuzzParseClaims feeds arbitrary payloads to the layout parser, which the
// MAC otherwise shields from the fuzzer: it must never panic, and whatever
// it accepts must re-encode to the same bytes (one payload, one meaning).
func FuzzParseClaims(f *testing.F) {
	c := claims{expires: 1_800_000_000}
	c.setPurpose("transfer")
	c.id[0], c.browser[0] = 1, 2
	f.Add(c.appendPayload(nil))
	c.hasSession, c.session[0] = true, 3
	f.Add(c.appendPayload(nil))
	c.setPurpose(strings.Repeat("p", maxPurposeLen))
	f.Add(c.appendPayload(nil))
	f.Add([]byte{})
	f.Add([]byte{tokenVersion})
	f.Add(make([]byte, minPayloadLen))
	f.Add(append([]byte{2}, make([]byte, 60)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := parseClaims(b)
		if err != nil {
			return
		}
		if got := c.appendPayload(nil); !bytes.Equal(got, b) {
			t.Fatalf("parse/marshal differ:\n in %x\nout %x", b, got)
		}
	})
}
