package idempotency

import (
	"context"
	"errors"
	"time"

	"github.com/dynaguard/dynaguard"
)

// maxPendingCompletions bounds the completions retried in the background at
// once (one goroutine each). Beyond it a failed completion is only logged:
// its record stays running, and — unless it is marked final — is taken over
// once its lease lapses.
const maxPendingCompletions = 64

// retryLater retries a failed completion in the background: one
// owner-conditioned UpdateItem per attempt, backoff from 100 ms doubling to
// 5 s, each attempt bounded to 5 s, for at most Config.CompletionRetry. It
// stops when the write lands, when the claim is found lost, or when the
// time is up.
func (g *Guard) retryLater(pk, owner string, fp []byte, st stored, resp *response) {
	select {
	case g.pending <- struct{}{}:
	default:
		g.log.Error("idempotency: completion failed and the background retries are full; the outcome is not stored",
			"record", pk, "pending", maxPendingCompletions)
		return
	}
	g.retries.Add(1)
	go func() {
		defer func() {
			<-g.pending
			g.retries.Done()
		}()
		deadline := time.Now().Add(g.retryFor)
		for attempt := 1; ; attempt++ {
			wait := min(100*time.Millisecond<<min(attempt-1, 6), 5*time.Second)
			if time.Now().Add(wait).After(deadline) {
				g.log.Error("idempotency: completion retries given up; the outcome is not stored", "record", pk, "attempts", attempt-1)
				return
			}
			time.Sleep(wait)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := g.store.complete(ctx, pk, owner, st)
			cancel()
			switch {
			case err == nil:
				g.log.Info("idempotency: completion stored after a retry", "record", pk, "attempts", attempt)
				g.cacheOutcome(pk, fp, st, resp)
				return
			case errors.Is(err, ErrLeaseLost):
				g.log.Error("idempotency: completion retry refused, another owner holds the key", "record", pk)
				return
			case errors.Is(err, dynaguard.ErrItemTooLarge):
				g.log.Error("idempotency: completion retry refused as too large", "record", pk)
				return
			}
		}
	}()
}
