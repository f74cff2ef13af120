package idempotency

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type order struct {
	ID     string `json:"id"`
	Amount int    `json:"amount"`
}

type receipt struct {
	Shipment string `json:"shipment"`
	Amount   int    `json:"amount"`
	internal string // not in JSON: lost for the first caller and the duplicates alike
}

// Once keyed on the payload: concurrent deliveries of one order through two
// Guards run the work once; everyone gets the same typed result.
func TestOnceAcrossInstances(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var runs atomic.Int64
	ship := func(g *Guard) func(context.Context, order) (receipt, bool, error) {
		return Once(g, func(o order) string { return "orders/" + o.ID }, func(ctx context.Context, o order) (receipt, error) {
			runs.Add(1)
			time.Sleep(10 * time.Millisecond)
			return receipt{Shipment: "s-" + o.ID, Amount: o.Amount, internal: "x"}, nil
		})
	}
	fns := []func(context.Context, order) (receipt, bool, error){ship(e.guard(nil, nil)), ship(e.guard(nil, nil))}
	var wg sync.WaitGroup
	var fresh atomic.Int64
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				r, replayed, err := fns[i%2](context.Background(), order{ID: "42", Amount: 1250})
				if errors.Is(err, ErrInFlight) {
					time.Sleep(2 * time.Millisecond)
					continue
				}
				if err != nil || r != (receipt{Shipment: "s-42", Amount: 1250}) {
					t.Errorf("got %+v %v", r, err)
				}
				if !replayed {
					fresh.Add(1)
				}
				return
			}
		}()
	}
	wg.Wait()
	if runs.Load() != 1 || fresh.Load() != 1 {
		t.Fatalf("runs %d, fresh answers %d; want 1 and 1", runs.Load(), fresh.Load())
	}
	// The same key with another payload is refused without running.
	if _, _, err := fns[0](context.Background(), order{ID: "42", Amount: 9999}); !errors.Is(err, ErrFingerprintMismatch) {
		t.Fatalf("changed payload: %v", err)
	}
	byID := Once(e.guard(nil, nil), func(o order) string { return o.ID }, func(context.Context, order) (int, error) { runs.Add(1); return 0, nil })
	if _, _, err := byID(context.Background(), order{ID: ""}); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("empty key: %v", err)
	}
	if runs.Load() != 1 {
		t.Fatalf("runs %d", runs.Load())
	}
}

func TestDoJSONEncodingFailures(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	g := e.guard(nil, nil)
	ctx := context.Background()

	// A payload that cannot be encoded: nothing is claimed or run.
	calls := 0
	bad := Once(g, func(chan int) string { return "k" }, func(context.Context, chan int) (int, error) { calls++; return 1, nil })
	if _, _, err := bad(ctx, make(chan int)); !errors.Is(err, ErrEncoding) || calls != 0 {
		t.Fatalf("unencodable payload: %v, calls %d", err, calls)
	}
	// A result that cannot be encoded: fn has run, so its outcome is final.
	fn := func(context.Context) (chan int, error) { calls++; return make(chan int), nil }
	if _, _, err := DoJSON(ctx, g, "res", nil, fn); !errors.Is(err, ErrEncoding) {
		t.Fatalf("unencodable result: %v", err)
	}
	if _, replayed, err := DoJSON(ctx, g, "res", nil, fn); !errors.Is(err, ErrFailedFinal) || !replayed || calls != 1 {
		t.Fatalf("after an unencodable result: %v replayed=%v calls=%d", err, replayed, calls)
	}
	// A stored result of another shape is an error, never a zero value
	// taken for a result.
	if _, _, err := g.Do(ctx, "shape", nil, func(context.Context) ([]byte, error) { return []byte(`"text"`), nil }); err != nil {
		t.Fatal(err)
	}
	if _, _, err := DoJSON(ctx, g, "shape", nil, func(context.Context) (receipt, error) { return receipt{}, nil }); !errors.Is(err, ErrEncoding) {
		t.Fatalf("stored result of another type: %v", err)
	}
	if g.Retention() != DefaultRetention {
		t.Fatalf("Retention %v", g.Retention())
	}
}
