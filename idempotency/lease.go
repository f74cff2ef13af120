package idempotency

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dynaguard/dynaguard"
)

type claimKey struct{}

// claimState is one successful claim while its handler (or fn) runs: the
// record it owns, the lease renewal, and whether the outcome was marked
// final.
type claimState struct {
	g      *Guard
	pk     string
	owner  string
	final  atomic.Bool
	cancel context.CancelCauseFunc

	mu      sync.Mutex // held across a renewal call, so stop waits for it
	timer   *time.Timer
	stopped bool
	lost    bool
}

// start runs the handler's lease renewal: every renewEvery, one UpdateItem
// conditioned on the owner token. A timer rather than a goroutine, so a
// handler that finishes within renewEvery costs nothing.
func (c *claimState) start() {
	c.mu.Lock()
	c.timer = time.AfterFunc(c.g.renewEvery, c.renew)
	c.mu.Unlock()
}

func (c *claimState) renew() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return
	}
	// Bounded, because stop waits for a renewal in progress before the
	// outcome can be stored.
	ctx, cancel := context.WithTimeout(context.Background(), min(max(c.g.renewEvery, time.Second), 5*time.Second))
	err := c.g.store.renew(ctx, c.pk, c.owner, c.g.clock.Now(), c.g.lease, c.g.retention)
	cancel()
	switch {
	case errors.Is(err, ErrLeaseLost):
		// Another worker took the key over: this one's lease had lapsed
		// (renewals failed, or the process stalled). Stop the handler at
		// its next context check so the two overlap as little as possible.
		c.lost = true
		c.stopped = true
		c.g.log.Error("idempotency: lease lost while the handler was running; the request may execute twice",
			"record", c.pk)
		c.g.event(context.Background(), dynaguard.EventIdempotencyLeaseLost)
		c.cancel(ErrLeaseLost)
		return
	case err != nil:
		// Transient: the lease is renewed three times per Lease, so the
		// next attempt still comes before it lapses.
		c.g.log.Warn("idempotency: lease renewal failed", "record", c.pk, "err", err)
	}
	c.timer.Reset(c.g.renewEvery)
}

// stop ends the renewal, waiting for one in progress, and reports whether
// the lease is known to be lost.
func (c *claimState) stop() (lost bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopped = true
	if c.timer != nil {
		c.timer.Stop()
	}
	return c.lost
}
