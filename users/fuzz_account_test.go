package users

import (
	"strings"
	"testing"
)

// Typed recovery codes: never a panic; anything accepted is exactly one
// canonical code; every generated code is accepted as shown.
func FuzzNormalizeRecovery(f *testing.F) {
	codes, _ := newRecoveryCodes("u", 3)
	for _, c := range codes {
		f.Add(c)
	}
	f.Add("ABCD EFGH JKMN PQRS")
	f.Add("iloo-1100-xxxx-yyyy")
	f.Add(strings.Repeat("-", 100))
	f.Add("ａｂｃｄ-efgh-jkmn-pqrs")
	f.Fuzz(func(t *testing.T, in string) {
		n, ok := normalizeRecovery(in)
		if !ok {
			return
		}
		if len(n) != recoveryLen {
			t.Fatalf("%q → %q", in, n)
		}
		for _, r := range n {
			if !strings.ContainsRune(recoveryAlphabet, r) {
				t.Fatalf("%q → %q", in, n)
			}
		}
		if again, ok := normalizeRecovery(n); !ok || again != n {
			t.Fatalf("not idempotent: %q → %q → %q", in, n, again)
		}
	})
}

// Presented tokens: never a panic; accepted only in the one canonical
// encoding of 32 bytes.
func FuzzTokenKey(f *testing.F) {
	tok, _ := newToken()
	f.Add(tok)
	f.Add(tok[:42] + "_")
	f.Add("")
	f.Add(strings.Repeat("A", 43))
	f.Fuzz(func(t *testing.T, in string) {
		pk, ok := tokenKey(in)
		if !ok {
			return
		}
		raw, err := tokenEncoding.DecodeString(in)
		if err != nil || len(raw) != tokenBytes || tokenEncoding.EncodeToString(raw) != in || pk != tokenKeyOf(raw) {
			t.Fatalf("accepted %q", in)
		}
	})
}
