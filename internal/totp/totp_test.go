package totp

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

// RFC 6238 Appendix B: 8-digit codes, 30 s steps, the ASCII seeds below.
func TestRFC6238Vectors(t *testing.T) {
	seeds := map[Algorithm][]byte{
		SHA1:   []byte("12345678901234567890"),
		SHA256: []byte("12345678901234567890123456789012"),
		SHA512: []byte("1234567890123456789012345678901234567890123456789012345678901234"),
	}
	vectors := []struct {
		unix int64
		want map[Algorithm]string
	}{
		{59, map[Algorithm]string{SHA1: "94287082", SHA256: "46119246", SHA512: "90693936"}},
		{1111111109, map[Algorithm]string{SHA1: "07081804", SHA256: "68084774", SHA512: "25091201"}},
		{1111111111, map[Algorithm]string{SHA1: "14050471", SHA256: "67062674", SHA512: "99943326"}},
		{1234567890, map[Algorithm]string{SHA1: "89005924", SHA256: "91819424", SHA512: "93441116"}},
		{2000000000, map[Algorithm]string{SHA1: "69279037", SHA256: "90698825", SHA512: "38618901"}},
		{20000000000, map[Algorithm]string{SHA1: "65353130", SHA256: "77737706", SHA512: "47863826"}},
	}
	for _, v := range vectors {
		for alg, want := range v.want {
			p := Params{Digits: 8, Algorithm: alg}
			step := Step(time.Unix(v.unix, 0), p)
			if got := Code(seeds[alg], step, p); got != want {
				t.Errorf("%s at %d: got %s, want %s", alg, v.unix, got, want)
			}
			if s, ok := Match(seeds[alg], want, time.Unix(v.unix, 0), -1, p); !ok || s != step {
				t.Errorf("%s at %d: Match = %d %v", alg, v.unix, s, ok)
			}
		}
	}
}

func TestMatchSkewAndAfter(t *testing.T) {
	secret := []byte("12345678901234567890")
	p := Params{}
	now := time.Unix(1_700_000_000, 0)
	cur := Step(now, p)
	for _, d := range []int64{-1, 0, 1} {
		if s, ok := Match(secret, Code(secret, cur+d, p), now, -1, p); !ok || s != cur+d {
			t.Errorf("skew %d: got %d %v", d, s, ok)
		}
	}
	for _, d := range []int64{-2, 2} {
		if _, ok := Match(secret, Code(secret, cur+d, p), now, -1, p); ok {
			t.Errorf("skew %d accepted", d)
		}
	}
	// A step at or before the last accepted one never matches again.
	code := Code(secret, cur, p)
	if _, ok := Match(secret, code, now, cur, p); ok {
		t.Error("replayed step accepted")
	}
	if _, ok := Match(secret, Code(secret, cur-1, p), now, cur, p); ok {
		t.Error("older step accepted after a newer one")
	}
	if s, ok := Match(secret, Code(secret, cur+1, p), now, cur, p); !ok || s != cur+1 {
		t.Error("a later step must still match")
	}
}

func TestNormalize(t *testing.T) {
	p := Params{}
	for in, want := range map[string]string{"123 456": "123456", "123-456": "123456", "123456": "123456"} {
		if got, err := Normalize(in, p); err != nil || got != want {
			t.Errorf("%q: %q %v", in, got, err)
		}
	}
	for _, in := range []string{"", "12345", "1234567", "12345a", "１２３４５６"} {
		if _, err := Normalize(in, p); err != ErrFormat {
			t.Errorf("%q accepted", in)
		}
	}
}

func TestSecretAndURI(t *testing.T) {
	s, err := NewSecret()
	if err != nil || len(s) != SecretSize {
		t.Fatal(len(s), err)
	}
	back, err := DecodeSecret(strings.ToLower(EncodeSecret(s)))
	if err != nil || string(back) != string(s) {
		t.Fatal("secret round trip")
	}
	u, err := url.Parse(URI(s, "Example Co", "alice@example.com", Params{}))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if u.Scheme != "otpauth" || u.Host != "totp" || q.Get("secret") != EncodeSecret(s) || q.Get("issuer") != "Example Co" ||
		q.Get("digits") != "6" || q.Get("period") != "30" || q.Get("algorithm") != "SHA1" {
		t.Fatalf("uri %s", u)
	}
	if u.Path != "/Example Co:alice@example.com" {
		t.Fatalf("label %q", u.Path)
	}
}

func BenchmarkMatch(b *testing.B) {
	secret := []byte("12345678901234567890")
	now := time.Unix(1_700_000_000, 0)
	code := Code(secret, Step(now, Params{}), Params{})
	for b.Loop() {
		Match(secret, code, now, -1, Params{})
	}
}
