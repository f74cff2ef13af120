package users

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// Sign-ups are limited per client address and per wider range, before any
// other work; a new window starts over.
func TestRegisterLimitedPerAddress(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) {
		c.Signup.PerIP = Limit{Free: 3}
		c.Signup.Ranges = []RangeLimit{{IPv4Bits: 24, IPv6Bits: 48, Limit: Limit{Free: 5}}}
	})
	e.clock.Set(time.Unix(1_800_000_000/3600*3600, 0))
	reg := func(i int, addr string) error {
		_, err := e.users.Register(ctx, NewUser{Email: fmt.Sprintf("r%d@example.com", i), Username: fmt.Sprintf("r%d", i), Password: goodPassword}, ip(addr))
		return err
	}
	n := 0
	for _, c := range []struct {
		addr    string
		limited bool
	}{
		{"192.0.2.1", false}, {"192.0.2.1", false}, {"192.0.2.1", false},
		{"192.0.2.1", true},  // the address's 4th
		{"192.0.2.2", false}, // the /24's 5th (the refused one above counted too)
		{"192.0.2.3", true},  // the /24's 6th
		{"198.51.100.1", false},
		{"2001:db8:1::1", false}, {"2001:db8:1:1::1", false}, {"2001:db8:1:2::1", false}, {"2001:db8:1:3::1", false}, {"2001:db8:1:4::1", false},
		{"2001:db8:1:5::1", true}, // the /48's 6th
	} {
		e.hasher.reset()
		n++
		err := reg(n, c.addr)
		var rl *RateLimitedError
		if got := errors.As(err, &rl); got != c.limited || (err != nil && !got) {
			t.Fatalf("%s: %v; limited want %v", c.addr, err, c.limited)
		}
		if c.limited && (e.hasher.hashes.Load() != 0 || rl.RetryAfter != time.Hour) {
			t.Fatalf("%s: refused after hashing, or retry after %v", c.addr, rl.RetryAfter)
		}
	}
	e.clock.Advance(time.Hour)
	if err := reg(99, "192.0.2.1"); err != nil {
		t.Fatalf("next window: %v", err)
	}
}

// Quiet mode: a taken email address is answered like a new one and its
// owner is told; a taken username is still said.
func TestRegisterQuiet(t *testing.T) {
	t.Parallel()
	for _, quiet := range []bool{false, true} {
		e := newEnv(t, func(c *Config) { c.Signup.Quiet = quiet })
		owner := e.create("kim@example.com", "kim")
		for _, c := range []struct {
			email, username string
			want            error // for quiet; nil means (nil, nil)
			loud            error
		}{
			{"KIM@example.com", "kim2", nil, ErrEmailTaken},
			{"kim@example.com", "kim", ErrUsernameTaken, ErrEmailTaken},
			{"other@example.com", "KIM", ErrUsernameTaken, ErrUsernameTaken},
		} {
			before := e.mail.count(MessageSignupExisting)
			u, err := e.users.Register(ctx, NewUser{Email: c.email, Username: c.username, Password: goodPassword}, ip("192.0.2.9"))
			want := c.loud
			if quiet {
				want = c.want
			}
			if u != nil || (want == nil && err != nil) || (want != nil && !errors.Is(err, want)) {
				t.Fatalf("quiet %v, %s/%s: %v, %v; want %v", quiet, c.email, c.username, u, err, want)
			}
			if quiet && errors.Is(err, ErrEmailTaken) {
				t.Fatalf("quiet mode said the email is taken: %v", err)
			}
			told := e.mail.count(MessageSignupExisting) - before
			if wantTold := quiet && want == nil; (told == 1) != wantTold {
				t.Fatalf("quiet %v, %s: %d notices", quiet, c.email, told)
			}
			if told == 1 && e.mail.last(MessageSignupExisting).To != owner.Email {
				t.Fatal("the notice went elsewhere")
			}
		}
		u, err := e.users.Register(ctx, NewUser{Email: "new@example.com", Username: "newbie", Password: goodPassword}, ip("192.0.2.9"))
		if err != nil || u == nil {
			t.Fatalf("a new account: %v, %v", u, err)
		}
	}
}

// Email change requests from one client address are limited (10 an hour
// by default), whatever the accounts, in the request's own transaction;
// the next window lets them through again.
func TestEmailChangeLimited(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.Tokens.PerAccount, c.Tokens.PerAccountTotal, c.Tokens.PerIP = 100, 100, 100 })
	e.clock.Set(time.Unix(1_800_000_000/3600*3600, 0))
	e.create("taken@example.com", "taken")
	u := e.create("lee@example.com", "lee")
	c := Client{IP: ip("192.0.2.77")}
	for i := range 10 {
		if err := e.users.RequestEmailChange(ctx, nil, mustGet(t, e, u.ID), "taken@example.com", pw, c); err != nil {
			t.Fatalf("attempt %d: %v", i+1, err)
		}
	}
	sent := e.mail.count(MessageConfirmEmailChange)
	if err := e.users.RequestEmailChange(ctx, nil, mustGet(t, e, u.ID), "taken@example.com", pw, c); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("11th attempt: %v", err)
	}
	if e.mail.count(MessageConfirmEmailChange) != sent {
		t.Fatal("a refused request sent mail")
	}
	// Another address is not affected; nor is the next window.
	if err := e.users.RequestEmailChange(ctx, nil, mustGet(t, e, u.ID), "lee2@example.com", pw, Client{IP: ip("198.51.100.77")}); err != nil {
		t.Fatalf("another address: %v", err)
	}
	e.clock.Advance(time.Hour)
	if err := e.users.RequestEmailChange(ctx, nil, mustGet(t, e, u.ID), "lee3@example.com", pw, c); err != nil {
		t.Fatalf("next window: %v", err)
	}
}

// What a sign-up costs: one conditional UpdateItem per address counter,
// sent at once, then Create's one transaction.
func TestRegisterCalls(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for i, c := range []struct{ addr, want string }{
		{"192.0.2.1", "UpdateItem,UpdateItem,TransactWriteItems"},              // address, /24
		{"2001:db8::1", "UpdateItem,UpdateItem,UpdateItem,TransactWriteItems"}, // /64, /56, /48
	} {
		e.rec.Reset()
		if _, err := e.users.Register(ctx, NewUser{Email: fmt.Sprintf("c%d@example.com", i), Username: fmt.Sprintf("c%d", i), Password: goodPassword}, ip(c.addr)); err != nil {
			t.Fatal(err)
		}
		if got := ops(e.rec.Calls()); got != c.want {
			t.Errorf("%s: %s; want %s", c.addr, got, c.want)
		}
	}
}
