package users

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// Hasher makes and checks password hashes of one scheme. The encoded form
// carries the scheme and its parameters, so a stored hash can always be
// verified with the parameters it was made with, and upgraded when they
// are no longer the current ones.
//
// Implementations must be safe for concurrent use. They never see the
// password as typed: users normalises it (NFKC) and, with a pepper, replaces
// it by an HMAC first — except for hashers that implement [RawInput].
type Hasher interface {
	// Identify reports whether encoded is a hash of this scheme.
	Identify(encoded string) bool
	// Hash returns the encoded hash of password with a fresh salt.
	Hash(password []byte) (string, error)
	// Verify reports whether password matches encoded, in time that does
	// not depend on where they differ. An error means encoded is malformed
	// or unsupported, never that the password is wrong.
	Verify(password []byte, encoded string) (bool, error)
	// NeedsRehash reports whether encoded was made with other parameters
	// than this hasher's current ones.
	NeedsRehash(encoded string) bool
}

// RawInput is implemented by hashers of hashes made by other systems that
// hashed the password exactly as typed (Django does not normalise). users
// verifies those with the password as typed, then rehashes it normalised
// with the current hasher.
type RawInput interface {
	RawInput() bool
}

// ErrUnsupportedHash is returned by Verify for an encoded hash whose scheme,
// version or parameters the hasher does not support.
var ErrUnsupportedHash = errors.New("users: unsupported or malformed password hash")

// Argon2id hashes with argon2id (RFC 9106) into the PHC string format
// $argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<hash>.
// The zero value uses the OWASP parameters of [DefaultArgon2id].
type Argon2id struct {
	Memory  uint32 // KiB; 0 means 19456 (19 MiB)
	Time    uint32 // passes; 0 means 2
	Threads uint8  // lanes; 0 means 1
	SaltLen int    // bytes; 0 means 16
	KeyLen  uint32 // bytes; 0 means 32
}

// DefaultArgon2id is the default hasher: argon2id with m=19 MiB, t=2, p=1,
// the first of OWASP's equivalent argon2id configurations.
var DefaultArgon2id = Argon2id{Memory: 19 * 1024, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}

func (a Argon2id) params() Argon2id {
	d := DefaultArgon2id
	if a.Memory != 0 {
		d.Memory = a.Memory
	}
	if a.Time != 0 {
		d.Time = a.Time
	}
	if a.Threads != 0 {
		d.Threads = a.Threads
	}
	if a.SaltLen != 0 {
		d.SaltLen = a.SaltLen
	}
	if a.KeyLen != 0 {
		d.KeyLen = a.KeyLen
	}
	return d
}

// Identify reports whether encoded is an argon2id or argon2i PHC string.
func (a Argon2id) Identify(encoded string) bool {
	return strings.HasPrefix(encoded, "$argon2id$") || strings.HasPrefix(encoded, "$argon2i$")
}

// Hash returns the PHC string of password with a fresh random salt.
func (a Argon2id) Hash(password []byte) (string, error) {
	p := a.params()
	salt := make([]byte, p.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey(password, salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	return encodePHC("argon2id", phcParams{m: p.Memory, t: p.Time, p: p.Threads}, salt, key), nil
}

// Verify checks password against an argon2id (or argon2i) PHC string of
// version 19, with the parameters stored in it.
func (a Argon2id) Verify(password []byte, encoded string) (bool, error) {
	h, err := parsePHC(encoded)
	if err != nil {
		return false, err
	}
	var key []byte
	switch h.alg {
	case "argon2id":
		key = argon2.IDKey(password, h.salt, h.t, h.m, h.p, uint32(len(h.key)))
	case "argon2i":
		key = argon2.Key(password, h.salt, h.t, h.m, h.p, uint32(len(h.key)))
	default:
		return false, ErrUnsupportedHash
	}
	return subtle.ConstantTimeCompare(key, h.key) == 1, nil
}

// NeedsRehash reports whether encoded is not argon2id with this hasher's
// parameters.
func (a Argon2id) NeedsRehash(encoded string) bool {
	h, err := parsePHC(encoded)
	if err != nil {
		return true
	}
	p := a.params()
	return h.alg != "argon2id" || h.m != p.Memory || h.t != p.Time || h.p != p.Threads ||
		uint32(len(h.key)) != p.KeyLen || len(h.salt) < p.SaltLen
}

type phcParams struct {
	m, t uint32
	p    uint8
}

type phcHash struct {
	alg string
	phcParams
	salt, key []byte
}

var b64 = base64.RawStdEncoding

func encodePHC(alg string, p phcParams, salt, key []byte) string {
	return fmt.Sprintf("$%s$v=19$m=%d,t=%d,p=%d$%s$%s", alg, p.m, p.t, p.p, b64.EncodeToString(salt), b64.EncodeToString(key))
}

// Bounds on what a stored hash may ask for (see hashcaps.go): the cost caps
// are in maxArgonMemory, maxArgonTime, maxArgonWork, maxPBKDF2Iterations,
// maxBcryptCost and maxKeyLen; these two are only format sanity.
const (
	minSaltLen = 8
	minKeyLen  = 16
)

// parsePHC parses $argon2{id,i}$v=19$m=..,t=..,p=..$salt$hash strictly:
// only version 19 (the one golang.org/x/crypto implements), parameters in
// that order, unpadded standard base64.
func parsePHC(s string) (phcHash, error) {
	var h phcHash
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" {
		return h, ErrUnsupportedHash
	}
	h.alg = parts[1]
	if h.alg != "argon2id" && h.alg != "argon2i" {
		return h, ErrUnsupportedHash
	}
	if parts[2] != "v=19" {
		return h, fmt.Errorf("%w: argon2 version %q (only v=19 is supported)", ErrUnsupportedHash, parts[2])
	}
	kv := strings.Split(parts[3], ",")
	if len(kv) != 3 {
		return h, ErrUnsupportedHash
	}
	var vals [3]uint64
	for i, name := range []string{"m=", "t=", "p="} {
		v, ok := strings.CutPrefix(kv[i], name)
		if !ok {
			return h, ErrUnsupportedHash
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || n == 0 || (v != "0" && v[0] == '0') {
			return h, ErrUnsupportedHash
		}
		vals[i] = n
	}
	if vals[2] > 255 || vals[0] < 8*vals[2] {
		return h, fmt.Errorf("%w: argon2 parameters out of range", ErrUnsupportedHash)
	}
	if err := argonCost(vals[0], vals[1]); err != nil {
		return h, err
	}
	h.m, h.t, h.p = uint32(vals[0]), uint32(vals[1]), uint8(vals[2])
	var err error
	if h.salt, err = b64.Strict().DecodeString(parts[4]); err != nil || len(h.salt) < minSaltLen {
		return h, ErrUnsupportedHash
	}
	if h.key, err = b64.Strict().DecodeString(parts[5]); err != nil || len(h.key) < minKeyLen {
		return h, ErrUnsupportedHash
	}
	if len(h.key) > maxKeyLen {
		return h, &HashCostError{Param: "key length", Value: uint64(len(h.key)), Max: maxKeyLen}
	}
	return h, nil
}

// Bcrypt hashes with bcrypt. bcrypt reads at most 72 bytes of input; longer
// passwords are refused when hashing and never match when verifying — they
// are never silently truncated, so two passwords that share their first 72
// bytes are never the same password. (With a pepper, bcrypt hashes a 44-byte
// HMAC of the password and the limit does not apply.)
type Bcrypt struct {
	Cost int // 0 means 12 (OWASP asks for at least 10)
}

// BcryptMaxInput is the longest input bcrypt reads, in bytes.
const BcryptMaxInput = 72

func (b Bcrypt) cost() int {
	if b.Cost == 0 {
		return 12
	}
	return b.Cost
}

// Identify reports whether encoded is a modular-crypt bcrypt hash.
func (b Bcrypt) Identify(encoded string) bool {
	return strings.HasPrefix(encoded, "$2a$") || strings.HasPrefix(encoded, "$2b$") || strings.HasPrefix(encoded, "$2y$")
}

// Hash returns the bcrypt hash of password, or a *PolicyError (RuleTooLong)
// for a password over 72 bytes.
func (b Bcrypt) Hash(password []byte) (string, error) {
	if len(password) > BcryptMaxInput {
		return "", &PolicyError{Rule: RuleTooLong, Limit: BcryptMaxInput, Bytes: true}
	}
	h, err := bcrypt.GenerateFromPassword(password, b.cost())
	if err != nil {
		return "", err
	}
	return string(h), nil
}

// Verify checks password against a bcrypt hash. A password over 72 bytes
// never matches.
func (b Bcrypt) Verify(password []byte, encoded string) (bool, error) {
	if len(password) > BcryptMaxInput {
		return false, nil
	}
	if err := checkHashCost(encoded); err != nil {
		return false, err
	}
	err := bcrypt.CompareHashAndPassword([]byte(encoded), password)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, bcrypt.ErrMismatchedHashAndPassword):
		return false, nil
	default:
		return false, fmt.Errorf("%w: %w", ErrUnsupportedHash, err)
	}
}

// NeedsRehash reports whether encoded has another cost than b's.
func (b Bcrypt) NeedsRehash(encoded string) bool {
	c, err := bcrypt.Cost([]byte(encoded))
	return err != nil || c != b.cost()
}

// DjangoPBKDF2 reads and writes Django's default hashes,
// pbkdf2_sha256$<iterations>$<salt>$<base64 hash>, so that users of a
// Django application keep their passwords when it moves to Go. It is meant
// as a legacy hasher: users verifies with it and rehashes with the current
// hasher at the next login.
type DjangoPBKDF2 struct {
	Iterations int // for Hash; 0 means 600000 (OWASP)
}

const djangoPBKDF2Prefix = "pbkdf2_sha256$"

// RawInput reports true: Django hashes the password as typed.
func (DjangoPBKDF2) RawInput() bool { return true }

// Identify reports whether encoded is a Django pbkdf2_sha256 hash.
func (DjangoPBKDF2) Identify(encoded string) bool {
	return strings.HasPrefix(encoded, djangoPBKDF2Prefix)
}

// Hash returns a Django pbkdf2_sha256 hash of password.
func (d DjangoPBKDF2) Hash(password []byte) (string, error) {
	it := d.Iterations
	if it == 0 {
		it = 600_000
	}
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	// Django salts are alphanumeric strings; so are these.
	s := base64.RawURLEncoding.EncodeToString(salt)
	s = strings.NewReplacer("-", "a", "_", "b").Replace(s)
	key, err := pbkdf2.Key(sha256.New, string(password), []byte(s), it, sha256.Size)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s%d$%s$%s", djangoPBKDF2Prefix, it, s, base64.StdEncoding.EncodeToString(key)), nil
}

// Verify checks password against a Django pbkdf2_sha256 hash.
func (DjangoPBKDF2) Verify(password []byte, encoded string) (bool, error) {
	it, salt, want, err := parseDjangoPBKDF2(encoded)
	if err != nil {
		return false, err
	}
	key, err := pbkdf2.Key(sha256.New, string(password), []byte(salt), it, len(want))
	if err != nil {
		return false, fmt.Errorf("%w: %w", ErrUnsupportedHash, err)
	}
	return subtle.ConstantTimeCompare(key, want) == 1, nil
}

// NeedsRehash reports whether encoded has fewer iterations than d makes.
func (d DjangoPBKDF2) NeedsRehash(encoded string) bool {
	it, _, _, err := parseDjangoPBKDF2(encoded)
	want := d.Iterations
	if want == 0 {
		want = 600_000
	}
	return err != nil || it != want
}

func parseDjangoPBKDF2(encoded string) (iterations int, salt string, key []byte, err error) {
	rest, ok := strings.CutPrefix(encoded, djangoPBKDF2Prefix)
	if !ok {
		return 0, "", nil, ErrUnsupportedHash
	}
	parts := strings.Split(rest, "$")
	if len(parts) != 3 || parts[1] == "" {
		return 0, "", nil, ErrUnsupportedHash
	}
	it, err := strconv.Atoi(parts[0])
	if err != nil || it < 1 {
		return 0, "", nil, ErrUnsupportedHash
	}
	if it > maxPBKDF2Iterations {
		return 0, "", nil, &HashCostError{Param: "PBKDF2 iterations", Value: uint64(it), Max: maxPBKDF2Iterations}
	}
	key, err = base64.StdEncoding.Strict().DecodeString(parts[2])
	if err != nil || len(key) < minKeyLen {
		return 0, "", nil, ErrUnsupportedHash
	}
	if len(key) > maxKeyLen {
		return 0, "", nil, &HashCostError{Param: "key length", Value: uint64(len(key)), Max: maxKeyLen}
	}
	return it, parts[1], key, nil
}

// DjangoArgon2 reads Django's Argon2PasswordHasher hashes: "argon2" followed
// by an argon2 PHC string ("argon2$argon2id$v=19$m=...,t=...,p=...$salt$hash";
// older Django versions wrote argon2i). Only version 19 is supported. It is a
// legacy hasher: Hash writes the same format, with [DefaultArgon2id]'s
// parameters unless Params is set.
type DjangoArgon2 struct {
	Params Argon2id
}

const djangoArgon2Prefix = "argon2$"

// RawInput reports true: Django hashes the password as typed.
func (DjangoArgon2) RawInput() bool { return true }

// Identify reports whether encoded is a Django argon2 hash.
func (DjangoArgon2) Identify(encoded string) bool {
	return strings.HasPrefix(encoded, djangoArgon2Prefix+"argon2")
}

// Hash returns a Django argon2 hash of password.
func (d DjangoArgon2) Hash(password []byte) (string, error) {
	h, err := d.Params.Hash(password)
	if err != nil {
		return "", err
	}
	return "argon2" + h, nil
}

// Verify checks password against a Django argon2 hash.
func (d DjangoArgon2) Verify(password []byte, encoded string) (bool, error) {
	rest, ok := strings.CutPrefix(encoded, "argon2")
	if !ok || !strings.HasPrefix(rest, "$argon2") {
		return false, ErrUnsupportedHash
	}
	return d.Params.Verify(password, rest)
}

// NeedsRehash reports whether encoded differs from d's parameters.
func (d DjangoArgon2) NeedsRehash(encoded string) bool {
	rest, ok := strings.CutPrefix(encoded, "argon2")
	return !ok || d.Params.NeedsRehash(rest)
}

var (
	_ Hasher = Argon2id{}
	_ Hasher = Bcrypt{}
	_ Hasher = DjangoPBKDF2{}
	_ Hasher = DjangoArgon2{}
)
