package idempotency

import (
	"errors"
	"strings"
	"testing"
)

func TestParseKey(t *testing.T) {
	long := strings.Repeat("k", MaxKeyLen)
	cases := []struct {
		in, want string
		ok       bool
	}{
		{`"8e03978e-40d5-43e8-bc93-6894a57f9324"`, "8e03978e-40d5-43e8-bc93-6894a57f9324", true},
		{`8e03978e-40d5-43e8-bc93-6894a57f9324`, "8e03978e-40d5-43e8-bc93-6894a57f9324", true},
		{`  "abc"	`, "abc", true},
		{`"with space"`, "with space", true},
		{`"esc\"aped\\"`, `esc"aped\`, true},
		{`abc+/=`, "abc+/=", true},
		{`"` + long + `"`, long, true},
		{long, long, true},
		{`"` + strings.Repeat(`\"`, MaxKeyLen) + `"`, strings.Repeat(`"`, MaxKeyLen), true},
		{"", "", false},
		{"   ", "", false},
		{`""`, "", false},
		{`"`, "", false},
		{`"abc`, "", false},
		{`"abc"x`, "", false},
		{`"abc";p=1`, "", false},
		{`"a\b"`, "", false},
		{`"a\`, "", false},
		{`"tab	in"`, "", false},
		{"\"caf\u00e9\"", "", false},
		{"caf\u00e9", "", false},
		{`"` + long + `k"`, "", false},
		{long + "k", "", false},
		{`"` + strings.Repeat(`\"`, MaxKeyLen+1) + `"`, "", false},
		{`a b`, "", false},
		{`a,b`, "", false},
		{`a;b`, "", false},
		{`a"b`, "", false},
		{`a\b`, "", false},
		{"a\x00b", "", false},
		{"a\x7fb", "", false},
	}
	for _, c := range cases {
		got, err := ParseKey(c.in)
		if c.ok && (err != nil || got != c.want) {
			t.Errorf("ParseKey(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
		if !c.ok && (err == nil || !errors.Is(err, ErrMalformedKey)) {
			t.Errorf("ParseKey(%q) = %q, %v; want ErrMalformedKey", c.in, got, err)
		}
	}
}

func TestFormatKeyRoundTrip(t *testing.T) {
	for _, k := range []string{"a", `q"uote`, `back\slash`, "sp ace", strings.Repeat(`\`, MaxKeyLen)} {
		got, err := ParseKey(FormatKey(k))
		if err != nil || got != k {
			t.Errorf("ParseKey(FormatKey(%q)) = %q, %v", k, got, err)
		}
	}
}

// FuzzParseKey checks the parser's invariants on arbitrary input: it never
// panics, and whatever it accepts is a valid key that survives a round trip
// through the quoted form and parses the same again.
func FuzzParseKey(f *testing.F) {
	for _, s := range []string{`"abc"`, "abc", `"a\"b"`, `"a\\b"`, `""`, `"`, `"abc"x`, "\"\x00\"",
		`"` + strings.Repeat("x", 300) + `"`, strings.Repeat(`\"`, 200), "  tok  ", "a;b", `"a\`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		key, err := ParseKey(in)
		if err != nil {
			if key != "" || !errors.Is(err, ErrMalformedKey) {
				t.Fatalf("ParseKey(%q) = %q, %v", in, key, err)
			}
			return
		}
		if len(key) == 0 || len(key) > MaxKeyLen {
			t.Fatalf("ParseKey(%q) accepted a key of length %d", in, len(key))
		}
		for i := 0; i < len(key); i++ {
			if key[i] < 0x20 || key[i] > 0x7e {
				t.Fatalf("ParseKey(%q) accepted byte %#x", in, key[i])
			}
		}
		again, err := ParseKey(FormatKey(key))
		if err != nil || again != key {
			t.Fatalf("round trip of %q: %q, %v", key, again, err)
		}
		if again2, err := ParseKey(in); err != nil || again2 != key {
			t.Fatalf("ParseKey(%q) is not deterministic", in)
		}
	})
}
