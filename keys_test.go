package dynaguard_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/dynaguard/dynaguard"
)

func TestKeyringDerivesIndependentKeys(t *testing.T) {
	cur := bytes.Repeat([]byte{1}, 32)
	prev := bytes.Repeat([]byte{2}, 32)
	k, err := dynaguard.NewKeyring(cur, prev)
	if err != nil {
		t.Fatal(err)
	}
	a := k.Keys(dynaguard.PurposeSessionID)
	b := k.Keys(dynaguard.PurposeNonceHash)
	if len(a) != 2 || len(a[0].Secret) != 32 {
		t.Fatalf("got %d keys of %d bytes", len(a), len(a[0].Secret))
	}
	if bytes.Equal(a[0].Secret, b[0].Secret) || bytes.Equal(a[0].Secret, a[1].Secret) {
		t.Fatal("keys for different purposes or secrets must differ")
	}
	if bytes.Equal(a[0].Secret, cur) {
		t.Fatal("a derived key must not be the secret itself")
	}
	if a[0].ID == a[1].ID || a[0].ID == "" {
		t.Fatalf("key IDs must differ: %q %q", a[0].ID, a[1].ID)
	}
	if !bytes.Equal(k.Key(dynaguard.PurposeSessionID).Secret, a[0].Secret) {
		t.Fatal("Key must be the current key")
	}
	// Deterministic: the same secret gives the same key after a restart.
	k2, _ := dynaguard.NewKeyring(cur)
	if !bytes.Equal(k2.Key(dynaguard.PurposeSessionID).Secret, a[0].Secret) {
		t.Fatal("derivation is not deterministic")
	}
	// Rotation: the old current key is still derivable as a previous key.
	k3, _ := dynaguard.NewKeyring(prev, cur)
	if !bytes.Equal(k3.Keys(dynaguard.PurposeSessionID)[1].Secret, a[0].Secret) {
		t.Fatal("a previous secret must derive the keys it derived as current")
	}
}

func TestKeyringRejectsShortSecrets(t *testing.T) {
	if _, err := dynaguard.NewKeyring(make([]byte, 31)); !errors.Is(err, dynaguard.ErrSecretTooShort) {
		t.Fatalf("got %v", err)
	}
	if _, err := dynaguard.NewKeyring(make([]byte, 32), make([]byte, 8)); !errors.Is(err, dynaguard.ErrSecretTooShort) {
		t.Fatalf("previous secret: got %v", err)
	}
}

func TestParseKeyring(t *testing.T) {
	h := strings.Repeat("ab", 32)
	k, err := dynaguard.ParseKeyring(" " + h + " , " + strings.Repeat("cd", 32))
	if err != nil {
		t.Fatal(err)
	}
	if len(k.Keys(dynaguard.PurposeTokenHash)) != 2 {
		t.Fatal("want two keys")
	}
	if _, err := dynaguard.ParseKeyring("zz"); err == nil {
		t.Fatal("non-hex accepted")
	}
	if _, err := dynaguard.ParseKeyring(strings.Repeat("ab", 16)); !errors.Is(err, dynaguard.ErrSecretTooShort) {
		t.Fatalf("16 bytes: got %v", err)
	}
}

// Keys are derived once per purpose and shared; each caller gets its own
// slice, and concurrent first uses agree.
func TestKeyringCachesDerivedKeys(t *testing.T) {
	k, err := dynaguard.NewKeyring(bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan []dynaguard.DerivedKey)
	for range 8 {
		go func() { done <- k.Keys(dynaguard.PurposeThrottleKey) }()
	}
	first := <-done
	for range 7 {
		if got := <-done; got[0].ID != first[0].ID || got[1].ID != first[1].ID {
			t.Fatal("concurrent derivations disagree")
		}
	}
	a := k.Keys(dynaguard.PurposeThrottleKey)
	a[0] = dynaguard.DerivedKey{}
	if b := k.Keys(dynaguard.PurposeThrottleKey); b[0].ID != first[0].ID || k.Key(dynaguard.PurposeThrottleKey).ID != first[0].ID {
		t.Fatal("changing a returned slice changed the keyring")
	}
	if n := testing.AllocsPerRun(100, func() { _ = k.Key(dynaguard.PurposeThrottleKey) }); n != 0 {
		t.Errorf("Key allocates %v times after the first derivation", n)
	}
}

// A missing or bad DYNAGUARD_SECRET says what the variable takes and how to
// make a value, and still matches ErrSecretTooShort where it is too short.
func TestParseKeyringErrorsSayHowToMakeASecret(t *testing.T) {
	for _, in := range []string{"", "  ", "zz", strings.Repeat("ab", 16), strings.Repeat("ab", 32) + ",abcd"} {
		_, err := dynaguard.ParseKeyring(in)
		if err == nil {
			t.Fatalf("ParseKeyring(%q) accepted", in)
		}
		for _, want := range []string{"DYNAGUARD_SECRET", "dynaguard secret", "openssl rand -hex 32"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("ParseKeyring(%q): %q lacks %q", in, err, want)
			}
		}
		if in != "zz" && !errors.Is(err, dynaguard.ErrSecretTooShort) {
			t.Errorf("ParseKeyring(%q): %v is not ErrSecretTooShort", in, err)
		}
	}
}
