package users

import (
	"errors"
	"strings"
	"testing"
)

func TestNormalizeEmailSameAccount(t *testing.T) {
	// Every form in a group must normalise to the same key.
	groups := [][]string{
		{"alice@example.com", "Alice@Example.com", "ALICE@EXAMPLE.COM", "  alice@example.com  ",
			"ａｌｉｃｅ@ｅｘａｍｐｌｅ.ｃｏｍ", // fullwidth (NFKC)
		},
		{"strasse@example.de", "STRASSE@example.de", "straße@example.de", "STRAẞE@example.de"}, // ß folds to ss
		{"ﬁle@example.com", "file@example.com", "FILE@example.com"},                            // ligature (NFKC)
		{"o\u0308la@example.com", "öla@example.com", "ÖLA@example.com"},                        // composed / decomposed
	}
	for _, g := range groups {
		want, err := NormalizeEmail(g[0])
		if err != nil {
			t.Fatalf("%q: %v", g[0], err)
		}
		for _, e := range g[1:] {
			got, err := NormalizeEmail(e)
			if err != nil {
				t.Errorf("%q: %v", e, err)
				continue
			}
			if got != want {
				t.Errorf("%q → %q, want %q (as %q)", e, got, want, g[0])
			}
		}
	}
	a, _ := NormalizeEmail("alice+tag@example.com")
	b, _ := NormalizeEmail("a.lice@example.com")
	c, _ := NormalizeEmail("alice@example.com")
	if a == c || b == c {
		t.Error("tags and dots are provider-specific: they must stay distinct addresses")
	}
}

func TestNormalizeEmailRejects(t *testing.T) {
	bad := []string{
		"", "   ", "alice", "alice@", "@example.com", "alice@example", "alice@@example.com",
		"Alice <alice@example.com>", "alice@example.com (comment)", "al ice@example.com",
		"alice@.example.com", "alice@example..com", "alice@example.com.",
		"al\x00ice@example.com", "alice\n@example.com", "\xff@example.com",
		strings.Repeat("a", 65) + "@example.com",
		"a@" + strings.Repeat("b", 250) + ".com",
		"ﷺ@example.com", // NFKC expands it into words with spaces
	}
	for _, e := range bad {
		_, err := NormalizeEmail(e)
		var ie *IdentifierError
		if !errors.As(err, &ie) || ie.Field != "email" || !errors.Is(err, ErrInvalidIdentifier) || ie.Reason == "" {
			t.Errorf("%q: got %v, want an email IdentifierError", e, err)
		}
	}
	if _, err := NormalizeEmail("jörg@bücher.example"); err != nil {
		t.Errorf("internationalised address refused: %v", err)
	}
}

func TestNormalizeUsername(t *testing.T) {
	same := [][]string{
		{"alice", "Alice", "ALICE", "ａｌｉｃｅ", " alice "},
		{"jörg", "JÖRG", "jo\u0308rg"},
		{"straße", "STRASSE", "strasse"},
		{"δημήτρης", "ΔΗΜΉΤΡΗΣ"},
		{"田中", "田中"},
	}
	for _, g := range same {
		want, err := NormalizeUsername(g[0])
		if err != nil {
			t.Fatalf("%q: %v", g[0], err)
		}
		for _, u := range g[1:] {
			if got, err := NormalizeUsername(u); err != nil || got != want {
				t.Errorf("%q → %q, %v; want %q", u, got, err, want)
			}
		}
	}
	ok := []string{"a", "bob_smith", "bob.smith-2", "9lives", "たなか太郎", "김철수", "иван", strings.Repeat("x", MaxUsernameRunes)}
	for _, u := range ok {
		if _, err := NormalizeUsername(u); err != nil {
			t.Errorf("%q refused: %v", u, err)
		}
	}
	bad := []string{
		"", "   ", "alice@example.com", "al ice", "_alice", ".alice", "-alice", "alice!", "al\u200bice", // zero-width space
		"al\u202eice", // right-to-left override
		"pаypal",      // Cyrillic а among Latin letters
		"ad\tmin",     // tab
		"\xffalice",
		"alice💥",
		strings.Repeat("x", MaxUsernameRunes+1),
	}
	for _, u := range bad {
		_, err := NormalizeUsername(u)
		var ie *IdentifierError
		if !errors.As(err, &ie) || ie.Field != "username" || ie.Reason == "" {
			t.Errorf("%q: got %v, want a username IdentifierError", u, err)
		}
	}
}

func TestNormalizeLoginMatchesRegistration(t *testing.T) {
	e, _ := NormalizeEmail("Alice@Example.com")
	if k, n := normalizeLogin(" ALICE@example.COM "); k != kindEmail || n != e {
		t.Errorf("login by email: %s %q, want %q", k, n, e)
	}
	u, _ := NormalizeUsername("Jörg")
	if k, n := normalizeLogin("JÖRG"); k != kindUsername || n != u {
		t.Errorf("login by username: %s %q, want %q", k, n, u)
	}
	// Garbage normalises to something that matches no account, without panicking.
	for _, s := range []string{"\xff\xfe", strings.Repeat("ﷺ", 5000), ""} {
		_, n := normalizeLogin(s)
		if len(n) > maxNormBytes {
			t.Errorf("normalised login of %d bytes", len(n))
		}
	}
}

func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"alice@example.com", "ＡＬＩＣＥ", "straße", "\xff", "a@b.c", "ﷺ"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if n, err := NormalizeEmail(s); err == nil {
			if n2, err := NormalizeEmail(n); err != nil || n2 != n {
				t.Errorf("email normalisation not idempotent: %q → %q → %q (%v)", s, n, n2, err)
			}
			if len(n) > maxNormBytes {
				t.Errorf("normalised email too long: %d", len(n))
			}
		}
		if n, err := NormalizeUsername(s); err == nil {
			if n2, err := NormalizeUsername(n); err != nil || n2 != n {
				t.Errorf("username normalisation not idempotent: %q → %q → %q (%v)", s, n, n2, err)
			}
		}
		normalizeLogin(s)
	})
}
