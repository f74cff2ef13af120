// Package totp implements RFC 6238 time-based one-time passwords (over the
// RFC 4226 HOTP construction) with one addition the usual libraries lack:
// verification reports WHICH time step matched and only considers steps
// after the last one accepted, so a caller can record that step with one
// conditional write and a code can never be used twice.
package totp

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"hash"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Algorithm is the HMAC hash. Authenticator apps universally support SHA1;
// the others exist for RFC completeness.
type Algorithm int

const (
	SHA1 Algorithm = iota
	SHA256
	SHA512
)

func (a Algorithm) String() string {
	switch a {
	case SHA256:
		return "SHA256"
	case SHA512:
		return "SHA512"
	}
	return "SHA1"
}

func (a Algorithm) hash() func() hash.Hash {
	switch a {
	case SHA256:
		return sha256.New
	case SHA512:
		return sha512.New
	}
	return sha1.New
}

// Params are the code parameters shared by enrolment and verification.
type Params struct {
	Digits    int           // default 6
	Period    time.Duration // default 30 s
	Algorithm Algorithm     // default SHA1
	// Skew is how many steps before and after the current one are
	// accepted, for clock drift and typing time; default 1 (RFC 6238 §5.2).
	Skew int
}

// Defaults returns p with zero fields set to their defaults.
func (p Params) Defaults() Params {
	if p.Digits == 0 {
		p.Digits = 6
	}
	if p.Period == 0 {
		p.Period = 30 * time.Second
	}
	if p.Skew == 0 {
		p.Skew = 1
	}
	return p
}

// SecretSize is the size of generated secrets: 160 bits, RFC 4226's
// recommendation and the HMAC-SHA1 block it keys.
const SecretSize = 20

// NewSecret returns a fresh random secret of SecretSize bytes.
func NewSecret() ([]byte, error) {
	s := make([]byte, SecretSize)
	if _, err := rand.Read(s); err != nil {
		return nil, err
	}
	return s, nil
}

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// EncodeSecret renders a secret the way authenticator apps expect it typed
// in: unpadded base32.
func EncodeSecret(secret []byte) string { return b32.EncodeToString(secret) }

// DecodeSecret parses EncodeSecret's output (spaces and case ignored).
func DecodeSecret(s string) ([]byte, error) {
	s = strings.ToUpper(strings.ReplaceAll(s, " ", ""))
	return b32.DecodeString(strings.TrimRight(s, "="))
}

// Step returns the time step that t falls in.
func Step(t time.Time, p Params) int64 {
	p = p.Defaults()
	return t.Unix() / int64(p.Period/time.Second)
}

// Code returns the code for a time step.
func Code(secret []byte, step int64, p Params) string {
	p = p.Defaults()
	mac := hmac.New(p.Algorithm.hash(), secret)
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], uint64(step))
	mac.Write(msg[:])
	sum := mac.Sum(nil)
	off := sum[len(sum)-1] & 0x0f
	bin := binary.BigEndian.Uint32(sum[off:off+4]) & 0x7fffffff
	mod := uint32(1)
	for i := 0; i < p.Digits; i++ {
		mod *= 10
	}
	s := strconv.FormatUint(uint64(bin%mod), 10)
	return strings.Repeat("0", p.Digits-len(s)) + s
}

// ErrFormat is returned for input that is not a code of the right length.
var ErrFormat = errors.New("totp: a code is a number of the configured length")

// Normalize strips the spaces and dashes people type into codes and checks
// the result is exactly p.Digits digits.
func Normalize(code string, p Params) (string, error) {
	p = p.Defaults()
	code = strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' || r == '\t' {
			return -1
		}
		return r
	}, code)
	if len(code) != p.Digits {
		return "", ErrFormat
	}
	for i := 0; i < len(code); i++ {
		if code[i] < '0' || code[i] > '9' {
			return "", ErrFormat
		}
	}
	return code, nil
}

// Match checks code against every step within p.Skew of now that is later
// than after (the last step the caller accepted; pass -1 for none). It
// returns the matching step. All candidate steps are computed and compared
// in constant time, so timing does not tell which step matched.
//
// Match alone does not stop replay: the caller must record the returned
// step atomically (for example with a conditional write "last step < step")
// and refuse the code when that write loses.
func Match(secret []byte, code string, now time.Time, after int64, p Params) (step int64, ok bool) {
	p = p.Defaults()
	code, err := Normalize(code, p)
	if err != nil {
		return 0, false
	}
	cur := Step(now, p)
	found := int64(-1)
	for s := cur - int64(p.Skew); s <= cur+int64(p.Skew); s++ {
		eq := subtle.ConstantTimeCompare([]byte(Code(secret, s, p)), []byte(code)) == 1
		if eq && s > after && found < 0 {
			found = s
		}
	}
	return found, found >= 0
}

// URI returns the otpauth:// URI that authenticator apps import (usually
// from a QR code), in the de-facto Key URI format.
func URI(secret []byte, issuer, account string, p Params) string {
	p = p.Defaults()
	label := url.PathEscape(issuer) + ":" + url.PathEscape(account)
	if issuer == "" {
		label = url.PathEscape(account)
	}
	q := url.Values{}
	q.Set("secret", EncodeSecret(secret))
	if issuer != "" {
		q.Set("issuer", issuer)
	}
	q.Set("algorithm", p.Algorithm.String())
	q.Set("digits", strconv.Itoa(p.Digits))
	q.Set("period", strconv.Itoa(int(p.Period/time.Second)))
	return "otpauth://totp/" + label + "?" + q.Encode()
}
