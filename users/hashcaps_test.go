package users

import (
	"errors"
	"testing"
)

// Stored hashes over the cost caps are refused by their parameters alone.
func TestHashCostCaps(t *testing.T) {
	t.Parallel()
	const salt, key32 = "c29tZXNhbHQ", "nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4"
	key65 := b64.EncodeToString(make([]byte, 65))
	for _, c := range []struct {
		encoded string
		param   string // "" for within the caps; "-" for malformed
	}{
		{"$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$" + key32, ""},
		{"$argon2id$v=19$m=262144,t=4,p=1$" + salt + "$" + key32, ""},
		{"$argon2id$v=19$m=102400,t=10,p=1$" + salt + "$" + key32, ""},
		{"$argon2id$v=19$m=1048576,t=64,p=1$" + salt + "$" + key32, "argon2 memory (KiB)"},
		{"$argon2id$v=19$m=262145,t=1,p=1$" + salt + "$" + key32, "argon2 memory (KiB)"},
		{"$argon2i$v=19$m=1024,t=11,p=1$" + salt + "$" + key32, "argon2 passes"},
		{"$argon2id$v=19$m=262144,t=5,p=1$" + salt + "$" + key32, "argon2 memory × passes"},
		{"$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$" + key65, "key length"},
		{"argon2$argon2id$v=19$m=1048576,t=2,p=1$" + salt + "$" + key32, "argon2 memory (KiB)"},
		{"argon2$argon2id$v=19$m=512,t=2,p=1$" + salt + "$" + key32, ""},
		{"pbkdf2_sha256$600000$salt$" + "nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4=", ""},
		{"pbkdf2_sha256$2000000$salt$" + "nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4=", ""},
		{"pbkdf2_sha256$10000000$salt$" + "nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4=", "PBKDF2 iterations"},
		{"pbkdf2_sha256$1000$salt$" + key65 + "=", "-"},
		{"$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW", ""},
		{"$2b$14$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW", ""},
		{"$2b$15$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW", "bcrypt cost"},
		{"$2a$31$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW", "bcrypt cost"},
		{"$2b$xx$short", "-"},
		{"custom$whatever", ""},
	} {
		err := checkHashCost(c.encoded)
		var hc *HashCostError
		switch c.param {
		case "":
			if err != nil {
				t.Errorf("%s: %v; want within the caps", c.encoded, err)
			}
		case "-":
			if !errors.Is(err, ErrUnsupportedHash) {
				t.Errorf("%s: %v; want ErrUnsupportedHash", c.encoded, err)
			}
		default:
			if !errors.As(err, &hc) || hc.Param != c.param || !errors.Is(err, ErrUnsupportedHash) {
				t.Errorf("%s: %v; want a *HashCostError on %s", c.encoded, err, c.param)
			}
		}
	}
}

// A planted hash over the caps never reaches a hasher: the login fails
// like a wrong password, and neither the account's hasher nor the dummy
// verification runs.
func TestPlantedHugeHashNeverVerified(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	vic := e.create("vic@example.com", "vic")
	for _, h := range []string{
		"$argon2id$v=19$m=1048576,t=64,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
		"pbkdf2_sha256$10000000$salt$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4=",
		"$2b$31$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
	} {
		setHash(t, e, vic.ID, h)
		e.hasher.reset()
		if _, err := e.auth("vic", goodPassword, "192.0.2.70"); err != ErrInvalidCredentials {
			t.Fatalf("%s: %v", h, err)
		}
		if n := e.hasher.verifies.Load(); n != 0 {
			t.Fatalf("%s: %d verifications; want none", h, n)
		}
	}
}

// A configured hasher whose own hashes would be over the caps is refused
// when Users is built.
func TestHasherOverCapsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cfg := e.cfg
	cfg.Hasher = Argon2id{Memory: 8, Time: 11, Threads: 1}
	if _, err := New(cfg); !errors.Is(err, ErrUnsupportedHash) {
		t.Fatalf("New = %v", err)
	}
}
