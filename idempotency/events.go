package idempotency

import (
	"context"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/authctx"
)

// event emits one decision about a key, for the request's user if any.
func (g *Guard) event(ctx context.Context, name dynaguard.EventName) {
	u, _ := authctx.User(ctx)
	g.ev.Emit(ctx, dynaguard.Event{Name: name, UserID: u})
}

// storageFailure emits storage.failure for a call that made the Guard
// refuse the request.
func (g *Guard) storageFailure(ctx context.Context, err error) {
	u, _ := authctx.User(ctx)
	g.ev.StorageFailure(ctx, u, err)
}

// taskEvent emits the outcome of a Do call answered from the cache.
func (g *Guard) taskEvent(ctx context.Context, matches bool) {
	if matches {
		g.event(ctx, dynaguard.EventIdempotencyReplayed)
	} else {
		g.event(ctx, dynaguard.EventIdempotencyMismatch)
	}
}

// claimed emits the claim of a key: idempotency.taken_over when it
// replaced a claim whose lease had lapsed (its worker crashed or stalled:
// the request runs again), idempotency.claimed otherwise.
func (g *Guard) claimed(ctx context.Context, tookOver bool) {
	if tookOver {
		g.event(ctx, dynaguard.EventIdempotencyTakenOver)
		return
	}
	g.event(ctx, dynaguard.EventIdempotencyClaimed)
}

// outcomeUnknown emits idempotency.conflict for a duplicate of a request
// marked final whose lease lapsed before its outcome was stored: it is
// never run again, and cannot be answered yet.
func (g *Guard) outcomeUnknown(ctx context.Context) {
	u, _ := authctx.User(ctx)
	g.ev.Emit(ctx, dynaguard.Event{Name: dynaguard.EventIdempotencyConflict, Reason: "outcome_unknown", UserID: u})
}
