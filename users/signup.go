package users

import (
	"context"
	"errors"
	"net/netip"
	"time"
)

// SignupConfig limits sign-ups and says what a taken email address is told.
type SignupConfig struct {
	// PerIP limits sign-up attempts (and email changes) from one client
	// address: Free attempts per Window, then 429 until the window ends.
	// Default Free 10, Window 1 h.
	PerIP Limit
	// Ranges limit them per wider address range, like Throttle.Ranges.
	// Nil means the IPv4 /24 and IPv6 /56 with Free 30, and the IPv6 /48
	// with Free 60 (Window 1 h). An empty, non-nil slice counts no range.
	Ranges []RangeLimit
	// Quiet makes Register answer a taken email address exactly like a new
	// one, and tell the address's owner by email instead (see Register).
	Quiet bool
}

func (c SignupConfig) withDefaults() SignupConfig {
	if c.PerIP.Window <= 0 {
		c.PerIP.Window = time.Hour
	}
	c.PerIP = c.PerIP.withDefaults(10)
	if c.Ranges == nil {
		c.Ranges = []RangeLimit{
			{IPv4Bits: 24, IPv6Bits: 56, Limit: Limit{Free: 30, Window: time.Hour}},
			{IPv6Bits: 48, Limit: Limit{Free: 60, Window: time.Hour}},
		}
	}
	ranges := make([]RangeLimit, len(c.Ranges))
	for i, r := range c.Ranges {
		if r.Window <= 0 {
			r.Window = time.Hour
		}
		r.Limit = r.Limit.withDefaults(30)
		ranges[i] = r
	}
	c.Ranges = ranges
	return c
}

// Register is self-service sign-up: Create, behind a limit per client
// address and its wider ranges (SignupConfig), counted before any other
// work — so probing which addresses and usernames are taken, and making
// the server hash passwords, costs an attacker its addresses.
//
// In quiet mode (SignupConfig.Quiet), an email address that already has an
// account is not an error: Register returns (nil, nil) — there is no
// account to log in — and sends the owner a MessageSignupExisting. A new
// account is returned as by Create. The caller must answer both alike — and
// so must not log the new account in — for example "we sent you an
// email; follow it, then log in" (the example app does this). A taken
// username is still a *TakenError (usernames are public), and so is a
// sign-up whose username and email are both taken (as a taken username
// only). The work is the same either way: the password is hashed, and the
// transaction that would create the account is tried.
//
// Calls: one conditional UpdateItem per counter (the address and, by
// default, one or two ranges), at once; then Create's (one
// TransactWriteItems); for a quiet refusal, two GetItems (the owner).
//
// Errors: *RateLimitedError (ErrRateLimited), and Create's.
func (s *Users) Register(ctx context.Context, nu NewUser, ip netip.Addr) (*User, error) {
	if err := s.limitRequests(ctx, s.addressCounters(actionSignup, ip, s.signup.PerIP, s.signup.Ranges, s.now())); err != nil {
		return nil, err
	}
	u, err := s.Create(ctx, nu)
	var te *TakenError
	if !s.signup.Quiet || !errors.As(err, &te) || !te.Email {
		return u, err
	}
	if te.Username {
		return nil, &TakenError{Username: true}
	}
	key, _ := NormalizeEmail(nu.Email) // Create accepted it
	uid, err := s.st.markerUID(ctx, kindEmail, key)
	if err != nil {
		return nil, err
	}
	owner, err := s.st.getUser(ctx, uid)
	if err != nil {
		return nil, err
	}
	if owner != nil {
		s.log.InfoContext(ctx, "users: sign-up with a registered email address answered quietly", "user", owner.ID)
		s.notify(ctx, Message{Kind: MessageSignupExisting, To: owner.Email, UserID: owner.ID, IP: ip})
	}
	return nil, nil
}
