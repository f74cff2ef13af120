package users

import "time"

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
