package idempotency

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// ErrEncoding: DoJSON or Once could not encode a payload or a result as
// JSON, or decode a stored result. For a payload, nothing was run; for a
// result, fn has run and its outcome is stored as a final failure, so it
// is not run again.
var ErrEncoding = errors.New("idempotency: JSON encoding")

// DoJSON is [Guard.Do] for a result of any type: the result is stored as
// its JSON encoding, and every call — the first one included — returns it
// decoded from that encoding, so the first caller and every duplicate see
// the same value (fields that JSON does not carry are lost on all of them
// alike). Errors are those of Do, plus ErrEncoding.
//
// A result that cannot be encoded is a programming error discovered after
// fn has taken effect: the outcome is stored as a final failure (a later
// call gets ErrFailedFinal) rather than released to run fn again.
func DoJSON[R any](ctx context.Context, g *Guard, key string, fingerprint []byte, fn func(context.Context) (R, error)) (result R, replayed bool, err error) {
	stored, replayed, err := g.Do(ctx, key, fingerprint, func(ctx context.Context) ([]byte, error) {
		r, err := fn(ctx)
		if err != nil {
			return nil, err
		}
		b, err := json.Marshal(r)
		if err != nil {
			Final(ctx)
			return nil, fmt.Errorf("%w: result: %w", ErrEncoding, err)
		}
		return b, nil
	})
	if err != nil {
		return result, replayed, err
	}
	if err := json.Unmarshal(stored, &result); err != nil {
		return result, replayed, fmt.Errorf("%w: stored result: %w", ErrEncoding, err)
	}
	return result, replayed, nil
}

// Once returns fn made idempotent on its payload: the returned function
// runs fn at most once per key(payload) while the key's record lives
// (Config.Retention), across every Guard sharing the table, and answers
// duplicates with the first result. It is DoJSON with the key taken from
// the payload and the payload's JSON encoding as the fingerprint: the same
// key with a different payload gets ErrFingerprintMismatch, and fn does not
// run.
//
//	ship := idempotency.Once(guard, func(o Order) string { return "orders/" + o.ID }, shipOrder)
//	receipt, duplicate, err := ship(ctx, order)
//
// key should name the source as well as the item ("orders/" + ID) when
// several kinds of work share one table. An empty key, or one over
// MaxTaskKeyLen, gets ErrInvalidKey. A payload that cannot be encoded gets
// ErrEncoding, before anything is stored.
func Once[P, R any](g *Guard, key func(P) string, fn func(context.Context, P) (R, error)) func(context.Context, P) (R, bool, error) {
	if g == nil || key == nil || fn == nil {
		panic("idempotency: Once needs a Guard, a key function and fn")
	}
	return func(ctx context.Context, p P) (R, bool, error) {
		fp, err := json.Marshal(p)
		if err != nil {
			var zero R
			return zero, false, fmt.Errorf("%w: payload: %w", ErrEncoding, err)
		}
		return DoJSON(ctx, g, key(p), fp, func(ctx context.Context) (R, error) { return fn(ctx, p) })
	}
}

// Retention is how long a completed key is kept (Config.Retention): a
// duplicate that arrives later runs again. Consumers that refuse events
// older than a validity window keep that window within it.
func (g *Guard) Retention() time.Duration { return g.retention }
