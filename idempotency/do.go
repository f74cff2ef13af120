package idempotency

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
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
// If storing the result fails after fn has run, Do logs it and still
// returns the result with a nil error — the work is done — and a duplicate
// that arrives after the lease lapses runs fn again.
func (g *Guard) Do(ctx context.Context, key string, fingerprint []byte, fn func(context.Context) ([]byte, error)) (result []byte, replayed bool, err error) {
	if key == "" || len(key) > MaxTaskKeyLen {
		return nil, false, ErrInvalidKey
	}
	sum := sha256.Sum256(fingerprint)
	fp := sum[:]
	pk := recordKey(kindTask, "", key)
	now := g.clock.Now()
	if resp, cfp, ok := g.cache.get(pk, now); ok {
		g.taskEvent(ctx, cfp, fp)
		return taskResult(resp, cfp, fp)
	}
	owner := rand.Text()
	rec, err := g.store.claim(ctx, pk, fp, owner, now, g.lease, g.retention)
	if err != nil {
		g.storageFailure(ctx, err)
		return nil, false, err
	}
	if rec != nil {
		if !bytes.Equal(rec.fp, fp) {
			g.event(ctx, dynaguard.EventIdempotencyMismatch)
			return nil, false, ErrFingerprintMismatch
		}
		if rec.state == stateRunning {
			g.event(ctx, dynaguard.EventIdempotencyConflict)
			return nil, false, &InFlightError{LeaseExpires: time.UnixMilli(rec.leaseMS)}
		}
		resp, oerr := g.open(pk, rec)
		if oerr != nil {
			g.log.ErrorContext(ctx, "idempotency: stored result unreadable", "record", pk, "err", oerr)
		}
		g.cache.put(pk, rec.fp, resp, time.Unix(rec.ttl, 0), now)
		g.event(ctx, dynaguard.EventIdempotencyReplayed)
		return taskResult(resp, rec.fp, fp)
	}
	g.event(ctx, dynaguard.EventIdempotencyClaimed)
	return g.runTask(ctx, pk, owner, fp, fn)
}

// Statuses of a stored Do outcome: a result, or a failure made final.
const (
	taskOK     = 0
	taskFailed = 500
)

func taskResult(resp *response, stored, fp []byte) ([]byte, bool, error) {
	switch {
	case !bytes.Equal(stored, fp):
		return nil, false, ErrFingerprintMismatch
	case resp.omitted > 0 || resp.unreadable:
		return nil, true, ErrResultNotKept
	case resp.status == taskFailed:
		return nil, true, fmt.Errorf("%w: %s", ErrFailedFinal, resp.body)
	}
	return bytes.Clone(resp.body), true, nil
}

func (g *Guard) runTask(ctx context.Context, pk, owner string, fp []byte, fn func(context.Context) ([]byte, error)) (result []byte, replayed bool, err error) {
	fnCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	c := &claimState{g: g, pk: pk, owner: owner, cancel: cancel}
	fnCtx = context.WithValue(fnCtx, claimKey{}, c)
	finishCtx := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
	}
	c.start()
	done := false
	defer func() {
		if done {
			return
		}
		// fn panicked: free the key (or store the failure when final), and
		// let the panic go on.
		lost := c.stop()
		fctx, fcancel := finishCtx()
		defer fcancel()
		if lost {
			return
		}
		if c.final.Load() {
			g.finishTask(fctx, pk, owner, fp, taskFailed, []byte("panic"))
			return
		}
		g.release(fctx, pk, owner)
	}()
	result, err = fn(fnCtx)
	done = true

	lost := c.stop()
	if lost {
		return result, false, err
	}
	fctx, fcancel := finishCtx()
	defer fcancel()
	if err != nil {
		if c.final.Load() {
			g.finishTask(fctx, pk, owner, fp, taskFailed, []byte(err.Error()))
		} else {
			g.release(fctx, pk, owner)
		}
		return nil, false, err
	}
	g.finishTask(fctx, pk, owner, fp, taskOK, result)
	return result, false, nil
}

func (g *Guard) finishTask(ctx context.Context, pk, owner string, fp []byte, status int, body []byte) {
	var truncated int64
	if len(body) > maxCapture {
		truncated = int64(len(body))
	}
	g.finish(ctx, pk, owner, fp, status, nil, body, truncated)
}
