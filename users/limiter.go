package users

import (
	"context"
	"fmt"
	"time"
)

// limiter caps concurrent password hash operations. Memory-hard hashes hold
// their memory for the whole computation, so an unbounded number of
// concurrent logins is an unbounded amount of memory: 500 concurrent
// argon2id verifications at 19 MiB are 9.5 GiB. With the limiter, excess
// logins wait (briefly) for a slot instead, and fail with ErrBusy when none
// frees up in time — a 503 the client can retry — rather than taking the
// process down.
type limiter struct {
	slots chan struct{}
	wait  time.Duration
}

func newLimiter(n int, wait time.Duration) *limiter {
	return &limiter{slots: make(chan struct{}, n), wait: wait}
}

// acquire takes a slot, waiting at most l.wait (ErrBusy after that, or when
// ctx ends first). The caller must call the returned function exactly once.
func (l *limiter) acquire(ctx context.Context) (release func(), err error) {
	select {
	case l.slots <- struct{}{}:
		return l.release, nil
	default:
	}
	t := time.NewTimer(l.wait)
	defer t.Stop()
	select {
	case l.slots <- struct{}{}:
		return l.release, nil
	case <-t.C:
		return nil, ErrBusy
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %w", ErrBusy, ctx.Err())
	}
}

func (l *limiter) release() { <-l.slots }
