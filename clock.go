package dynaguard

import "time"

// Clock tells the time. Every expiry, lease and throttling window in
// dynaguard reads the time through a Clock so tests can move it by hand.
type Clock interface {
	Now() time.Time
}

// ClockFunc adapts a function to [Clock].
type ClockFunc func() time.Time

// Now calls f.
func (f ClockFunc) Now() time.Time { return f() }

// SystemClock is the wall clock.
var SystemClock Clock = ClockFunc(time.Now)

// ClockOrSystem returns c, or [SystemClock] when c is nil. Components call it
// when they fill in configuration defaults.
func ClockOrSystem(c Clock) Clock {
	if c == nil {
		return SystemClock
	}
	return c
}
