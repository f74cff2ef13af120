package idempotency

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/dynaguard/dynaguard"
)

// MaxTaskKeyLen is the longest key Do accepts, in bytes.
const MaxTaskKeyLen = 1024

// ErrFailedFinal: an earlier call's fn failed after it marked its outcome
// final (see Final), so fn is not run again. The error's text carries the
// earlier error's message.
var ErrFailedFinal = errors.New("idempotency: an earlier run failed after it was marked final")

// Do runs fn at most once per key while the key's record lives (the
// Retention), across every Guard that shares the table: the same claim,
// lease and completion as the HTTP middleware, for work that is not an
// HTTP request — stream records, queue messages, scheduled jobs.
//
// The first call claims the key and runs fn with a context that is
// canceled, with cause ErrLeaseLost, if the claim is lost. When fn returns
// a nil error its result is stored and returned; later calls return the
// stored result with replayed set, without running fn. When fn returns an
// error or panics, the key is released so that a later call runs fn again
// — unless fn called Final(ctx) first: then the failure is stored and later
// calls get an error matching ErrFailedFinal. To make a failure final
// without an error, return a result that describes it.
//
// fingerprint describes the work's payload (for example the message body,
// or its hash). A later call with the same key and a different fingerprint
// gets ErrFingerprintMismatch. Pass nil when the work has no payload to
// compare (nil and empty are the same fingerprint). Other
// errors: *InFlightError (ErrInFlight) while another caller runs fn,
// ErrUnavailable when DynamoDB fails before fn runs (fn is not run),
// ErrResultNotKept when the earlier result was too large to store, and
// ErrInvalidKey for an empty key or one over MaxTaskKeyLen bytes.
//
// Do keys live in their own namespace, apart from every HTTP client's, and
// are shared by all Do callers of the table: include the source (queue or
// stream name) in the key when keys of different sources could collide.
//
// A nil error from fn makes its outcome final: if storing the result fails,
// Do records the final mark (one owner-conditioned write, a few attempts
// within the lease) before it returns, so the key is never taken over, and
// retries the completion in the background (Config.CompletionRetry);
// duplicates get *InFlightError, then ErrOutcomeUnknown once the lease has
// lapsed, until it lands. Do still returns the result with a nil error —
// the work is done. Only if the mark cannot be written either (DynamoDB
// refuses every write for the record for the whole lease while a
// duplicate's claim gets through) can a duplicate run fn again; that is
// logged.
func (g *Guard) Do(ctx context.Context, key string, fingerprint []byte, fn func(context.Context) ([]byte, error)) (result []byte, replayed bool, err error) {
	if key == "" || len(key) > MaxTaskKeyLen {
		return nil, false, ErrInvalidKey
	}
	in := taskInput(fingerprint)
	fp := g.fps.sum(in, 0)
	pk := recordKey(kindTask, "", key)
	now := g.clock.Now()
	if resp, cfp, ok := g.cache.get(pk, now); ok {
		g.taskEvent(ctx, g.fps.matches(in, fp, cfp))
		return g.taskResult(resp, in, fp, cfp)
	}
	cr := claimReq{pk: pk, owner: rand.Text(), fp: fp, now: now, lease: g.lease, retention: g.retention, skew: g.skew}
	sent := time.Now()
	rec, over, err := g.store.claim(ctx, cr)
	if err == nil && g.rotatedTakeover(rec, in, fp, now) {
		cr.fp = rec.fp
		sent = time.Now()
		rec, over, err = g.store.claim(ctx, cr)
	}
	if err != nil {
		g.storageFailure(ctx, err)
		return nil, false, err
	}
	if rec != nil {
		switch {
		case !g.fps.matches(in, fp, rec.fp):
			g.event(ctx, dynaguard.EventIdempotencyMismatch)
			return nil, false, ErrFingerprintMismatch
		case rec.state == stateRunning && rec.final && g.lapsed(rec, now):
			g.outcomeUnknown(ctx)
			return nil, false, ErrOutcomeUnknown
		case rec.state == stateRunning:
			g.event(ctx, dynaguard.EventIdempotencyConflict)
			return nil, false, &InFlightError{LeaseExpires: time.UnixMilli(rec.leaseMS).Add(g.skew)}
		}
		resp, oerr := g.open(pk, rec)
		if oerr != nil {
			g.log.ErrorContext(ctx, "idempotency: stored result unreadable", "record", pk, "err", oerr)
		}
		g.cache.put(pk, rec.fp, resp, time.Unix(rec.ttl, 0), now)
		g.event(ctx, dynaguard.EventIdempotencyReplayed)
		return g.taskResult(resp, in, fp, rec.fp)
	}
	g.claimed(ctx, over)
	return g.runTask(ctx, cr, sent, fn)
}

// Statuses of a stored Do outcome: a result, or a failure made final.
const (
	taskOK     = 0
	taskFailed = 500
)

func (g *Guard) taskResult(resp *response, in fpInput, fp, stored []byte) ([]byte, bool, error) {
	switch {
	case !g.fps.matches(in, fp, stored):
		return nil, false, ErrFingerprintMismatch
	case resp.omitted > 0 || resp.unreadable:
		return nil, true, ErrResultNotKept
	case resp.status == taskFailed:
		return nil, true, fmt.Errorf("%w: %s", ErrFailedFinal, resp.body)
	}
	return bytes.Clone(resp.body), true, nil
}

func (g *Guard) runTask(ctx context.Context, cr claimReq, sent time.Time, fn func(context.Context) ([]byte, error)) (result []byte, replayed bool, err error) {
	pk, owner, fp := cr.pk, cr.owner, cr.fp
	fnCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	c := &claimState{g: g, pk: pk, owner: owner, fence: epochMillis(cr.now), cancel: cancel}
	fnCtx = context.WithValue(fnCtx, claimKey{}, c)
	finishCtx := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
	}
	c.start(sent)
	done := false
	defer func() {
		if done {
			return
		}
		// fn panicked: free the key (or store the failure when final), and
		// let the panic go on.
		lost, marked := c.stop()
		fctx, fcancel := finishCtx()
		defer fcancel()
		switch {
		case lost && !marked:
			return
		case c.final.Load():
			g.finishTask(fctx, c, fp, taskFailed, []byte("panic"))
		default:
			g.release(fctx, pk, owner)
		}
	}()
	result, err = fn(fnCtx)
	done = true

	lost, marked := c.stop()
	if lost && !marked {
		return result, false, err
	}
	fctx, fcancel := finishCtx()
	defer fcancel()
	if err != nil {
		if c.final.Load() {
			g.finishTask(fctx, c, fp, taskFailed, []byte(err.Error()))
		} else {
			g.release(fctx, pk, owner)
		}
		return nil, false, err
	}
	g.finishTask(fctx, c, fp, taskOK, result)
	return result, false, nil
}

func (g *Guard) finishTask(ctx context.Context, c *claimState, fp []byte, status int, body []byte) {
	var truncated int64
	if len(body) > maxCapture {
		truncated = int64(len(body))
	}
	c.markOnFailure = true // fn's outcome is final either way: mark it before Do returns
	g.finish(ctx, c, fp, status, nil, body, truncated)
}
