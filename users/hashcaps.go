package users

import (
	"fmt"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// Cost caps on stored hashes. A stored hash carries its own parameters, so
// whoever can write one account item (a bad import, a restored backup, a
// compromised administration tool) chooses how much memory and time the
// next login for it takes — an argon2 hash with m = 1 GiB and t = 64 holds
// a hashing slot for minutes. A hash over these caps is never verified: the
// check reads only the encoded parameters, allocates nothing of their size
// and takes microseconds. The caps sit well above any configuration that
// OWASP or the hash authors recommend (argon2id 19–64 MiB and 1–3 passes,
// bcrypt 10–12, PBKDF2-SHA256 600,000 iterations).
const (
	maxArgonMemory      = 256 << 10 // KiB (256 MiB)
	maxArgonTime        = 10        // passes
	maxArgonWork        = 1 << 20   // memory × passes, in KiB·passes (1 GiB·pass: 256 MiB × 4, 100 MiB × 10)
	maxPBKDF2Iterations = 2_000_000
	maxBcryptCost       = 14
	maxKeyLen           = 64 // bytes of derived key
)

// HashCostError is a stored password hash whose parameters ask for more
// work than the caps allow. It matches ErrUnsupportedHash. The hash is
// never verified: the account cannot log in until its password is set
// again (a reset), and the refusal is logged.
type HashCostError struct {
	Param string // "argon2 memory (KiB)", "argon2 passes", "argon2 memory × passes", "PBKDF2 iterations", "bcrypt cost", "key length"
	Value uint64
	Max   uint64
}

func (e *HashCostError) Error() string {
	return fmt.Sprintf("users: stored password hash over the cost cap: %s %d > %d", e.Param, e.Value, e.Max)
}

// Is makes errors.Is(err, ErrUnsupportedHash) true.
func (e *HashCostError) Is(target error) bool { return target == ErrUnsupportedHash }

// argonCost checks argon2 memory (KiB) and passes against the caps.
func argonCost(m, t uint64) error {
	switch {
	case m > maxArgonMemory:
		return &HashCostError{Param: "argon2 memory (KiB)", Value: m, Max: maxArgonMemory}
	case t > maxArgonTime:
		return &HashCostError{Param: "argon2 passes", Value: t, Max: maxArgonTime}
	case m*t > maxArgonWork:
		return &HashCostError{Param: "argon2 memory × passes", Value: m * t, Max: maxArgonWork}
	}
	return nil
}

// checkHashCost parses the parameters of an encoded hash of any scheme this
// package knows (argon2 PHC, Django argon2 and PBKDF2, bcrypt) and returns
// a *HashCostError when they are over the caps, ErrUnsupportedHash when they
// do not parse, and nil otherwise — including for a scheme it does not
// know, whose Hasher must bound its own work. It runs before any Hasher
// sees the hash, whichever Hasher claims it.
func checkHashCost(encoded string) error {
	switch {
	case strings.HasPrefix(encoded, "$argon2"):
		_, err := parsePHC(encoded)
		return err
	case strings.HasPrefix(encoded, djangoArgon2Prefix+"argon2"):
		_, err := parsePHC(strings.TrimPrefix(encoded, "argon2"))
		return err
	case strings.HasPrefix(encoded, djangoPBKDF2Prefix):
		_, _, _, err := parseDjangoPBKDF2(encoded)
		return err
	case strings.HasPrefix(encoded, "$2a$"), strings.HasPrefix(encoded, "$2b$"), strings.HasPrefix(encoded, "$2y$"):
		c, err := bcrypt.Cost([]byte(encoded))
		if err != nil {
			return fmt.Errorf("%w: %w", ErrUnsupportedHash, err)
		}
		if c > maxBcryptCost {
			return &HashCostError{Param: "bcrypt cost", Value: uint64(c), Max: maxBcryptCost}
		}
	}
	return nil
}
