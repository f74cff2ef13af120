package idempotency

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/budget"
)

type claimKey struct{}

// claimState is one successful claim while its handler (or fn) runs: the
// record it owns, the lease renewal, the lease watchdog, and whether the
// outcome was marked final.
//
// The holder keeps, on its own monotonic clock, the deadline its last
// successful write secured: the time it sent that write plus Lease (the
// table's lease is the sender's wall clock plus Lease, and the write cannot
// have been applied before it was sent). A watchdog fires MaxClockSkew
// before that deadline: if no renewal has moved it by then, the handler's
// context is canceled with cause ErrLeaseLost and the outcome is not stored.
// Another instance takes the key over only MaxClockSkew after the lease
// lapsed by its own clock, so while clocks stay within the skew the holder
// has stopped (been told to stop) before anyone else starts.
type claimState struct {
	g     *Guard
	pk    string
	owner string
	fence int64
	final atomic.Bool // the outcome is stored, whatever it is
	// markOnFailure: a failed completion is followed by the final mark
	// (Do's outcomes, which are final by nature).
	markOnFailure bool
	cancel        context.CancelCauseFunc

	mu       sync.Mutex // held across a renewal or mark call, so stop waits for it
	timer    *time.Timer
	watchdog *time.Timer
	secured  time.Time // monotonic deadline of the lease last secured
	marked   bool      // the table holds the final mark
	stopped  bool
	lost     bool
}

// start runs the handler's lease renewal: every renewEvery, one UpdateItem
// conditioned on the owner token. Timers rather than a goroutine, so a
// handler that finishes within renewEvery costs nothing. sent is when the
// claim was sent.
func (c *claimState) start(sent time.Time) {
	c.mu.Lock()
	c.secured = sent.Add(c.g.lease)
	c.timer = time.AfterFunc(c.g.renewEvery, c.renew)
	c.watchdog = time.AfterFunc(time.Until(c.secured.Add(-c.g.skew)), c.expire)
	c.mu.Unlock()
}

// secure records a lease secured by a write sent at sent. Caller holds mu.
func (c *claimState) secure(sent time.Time) {
	if d := sent.Add(c.g.lease); d.After(c.secured) {
		c.secured = d
		c.watchdog.Reset(time.Until(d.Add(-c.g.skew)))
	}
}

// expire is the watchdog: the lease last secured is about to lapse.
func (c *claimState) expire() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped || time.Until(c.secured.Add(-c.g.skew)) > 0 {
		return // stopped, or a renewal moved the deadline meanwhile
	}
	c.loseLocked("idempotency: lease about to lapse after failed renewals; handler canceled and its outcome will not be stored")
}

// loseLocked gives the claim up: stop renewing and cancel the handler.
// Caller holds mu.
func (c *claimState) loseLocked(msg string) {
	c.lost = true
	c.stopped = true
	c.timer.Stop()
	c.watchdog.Stop()
	c.g.log.Error(msg, "record", c.pk)
	c.g.event(context.Background(), dynaguard.EventIdempotencyLeaseLost)
	c.cancel(ErrLeaseLost)
}

func (c *claimState) renew() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return
	}
	// Bounded, because stop waits for a renewal in progress before the
	// outcome can be stored, and by the lease still secured: a renewal that
	// lands after that is of no use to the watchdog.
	sent := time.Now()
	ctx, cancel := context.WithDeadline(context.Background(),
		earliest(sent.Add(min(max(c.g.renewEvery, time.Second), 5*time.Second)), c.secured.Add(-c.g.skew)))
	err := c.g.store.renew(ctx, c.pk, c.owner, c.g.clock.Now(), c.g.lease, c.g.retention)
	cancel()
	switch {
	case errors.Is(err, ErrLeaseLost):
		// Another worker took the key over: this one's lease had lapsed
		// (renewals failed, or the process stalled).
		c.loseLocked("idempotency: lease lost while the handler was running; the request may execute twice")
		return
	case err != nil:
		// Transient: the lease is renewed three times per Lease, so the
		// next attempt still comes before the watchdog fires.
		c.g.log.Warn("idempotency: lease renewal failed", "record", c.pk, "err", err)
	default:
		c.secure(sent)
	}
	c.timer.Reset(c.g.renewEvery)
}

// markAttempts bounds the writes of one Final call.
const markAttempts = 3

// markFinal records the final mark (see Final).
func (c *claimState) markFinal(ctx context.Context) error {
	c.final.Store(true)
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.marked:
		return nil
	case c.lost:
		return ErrLeaseLost
	}
	// Bounded by the request's budget (plus budget.Grace) and by the lease
	// still secured: a mark that lands after that protects nothing.
	mctx, mcancel := budget.Detach(ctx, finishTimeout)
	defer mcancel()
	var err error
	for attempt := range markAttempts {
		if attempt > 0 {
			t := time.NewTimer(time.Duration(50<<attempt) * time.Millisecond)
			select {
			case <-t.C:
			case <-mctx.Done():
				t.Stop()
			}
		}
		sent := time.Now()
		deadline := c.secured.Add(-c.g.skew)
		if !sent.Before(deadline) || mctx.Err() != nil {
			break
		}
		actx, cancel := context.WithDeadline(mctx, deadline)
		err = c.g.store.mark(actx, c.pk, c.owner, c.g.clock.Now(), c.g.lease, c.g.retention)
		cancel()
		switch {
		case err == nil:
			c.marked = true
			c.secure(sent)
			return nil
		case errors.Is(err, ErrLeaseLost):
			c.loseLocked("idempotency: lease lost before the outcome could be marked final")
			return ErrLeaseLost
		}
	}
	c.g.log.Error("idempotency: final mark not recorded; a takeover after the lease lapses is not excluded until the outcome is stored",
		"record", c.pk, "err", err)
	if err == nil {
		err = fmt.Errorf("%w: lease too close to lapsing", ErrUnavailable)
	}
	return err
}

// stop ends the renewal and the watchdog, waiting for a call in progress,
// and reports whether the lease is lost (taken over, or let lapse) and
// whether the final mark is in the table.
func (c *claimState) stop() (lost, marked bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopped = true
	if c.timer != nil {
		c.timer.Stop()
		c.watchdog.Stop()
	}
	return c.lost, c.marked
}

func earliest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
