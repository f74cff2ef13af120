package idempotency

import (
	"context"
	"crypto/rand"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dynaguard/dynaguard/internal/ddbtest"
)

// Concurrent callers of one key through two Guards: fn runs once, and every
// caller ends up with its result.
func TestDoExactlyOnceAcrossInstances(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	guards := []*Guard{e.guard(nil, contended), e.guard(nil, contended)}
	var runs, inFlight atomic.Int64
	fn := func(ctx context.Context) ([]byte, error) {
		runs.Add(1)
		time.Sleep(20 * time.Millisecond)
		return []byte("charged 12.50"), nil
	}
	const n = 100
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for {
				res, _, err := guards[i%2].Do(context.Background(), "queue/orders/msg-1", []byte("payload"), fn)
				var ife *InFlightError
				if errors.As(err, &ife) {
					inFlight.Add(1)
					if !errors.Is(err, ErrInFlight) || ife.LeaseExpires.IsZero() {
						t.Errorf("in-flight error: %v", err)
					}
					time.Sleep(5 * time.Millisecond)
					continue
				}
				if err != nil || string(res) != "charged 12.50" {
					t.Errorf("Do = %q, %v", res, err)
				}
				return
			}
		}()
	}
	close(start)
	wg.Wait()
	if runs.Load() != 1 {
		t.Fatalf("fn ran %d times", runs.Load())
	}
	t.Logf("%d in-flight answers", inFlight.Load())
}

func TestDoStoredResultAndErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	g := e.guard(nil, nil)
	ctx := context.Background()
	var runs atomic.Int64
	ok := func(context.Context) ([]byte, error) { runs.Add(1); return []byte("result"), nil }

	res, replayed, err := g.Do(ctx, "k", []byte("p"), ok)
	if err != nil || replayed || string(res) != "result" {
		t.Fatalf("first: %q %v %v", res, replayed, err)
	}
	res[0] = 'X' // the caller's copy; the stored result is unaffected
	res, replayed, err = g.Do(ctx, "k", []byte("p"), ok)
	if err != nil || !replayed || string(res) != "result" || runs.Load() != 1 {
		t.Fatalf("second: %q %v %v runs=%d", res, replayed, err, runs.Load())
	}
	if _, _, err := g.Do(ctx, "k", []byte("other"), ok); !errors.Is(err, ErrFingerprintMismatch) {
		t.Fatalf("mismatch: %v", err)
	}
	if _, _, err := g.Do(ctx, "", nil, ok); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("empty key: %v", err)
	}
	if _, _, err := g.Do(ctx, strings.Repeat("k", MaxTaskKeyLen+1), nil, ok); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("long key: %v", err)
	}

	// An error releases the key: the next call runs fn again.
	boom := errors.New("downstream down")
	_, _, err = g.Do(ctx, "k2", nil, func(context.Context) ([]byte, error) { return nil, boom })
	if !errors.Is(err, boom) {
		t.Fatalf("fn error not returned: %v", err)
	}
	if res, replayed, err := g.Do(ctx, "k2", nil, ok); err != nil || replayed || string(res) != "result" {
		t.Fatalf("after a released failure: %q %v %v", res, replayed, err)
	}

	// A panic releases the key too.
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("panic swallowed")
			}
		}()
		_, _, _ = g.Do(ctx, "k3", nil, func(context.Context) ([]byte, error) { panic("boom") })
	}()
	if _, replayed, err := g.Do(ctx, "k3", nil, ok); err != nil || replayed {
		t.Fatalf("after a panic: %v %v", replayed, err)
	}

	// Final then failure: stored, never run again.
	runs.Store(0)
	final := func(ctx context.Context) ([]byte, error) {
		runs.Add(1)
		Final(ctx)
		return nil, errors.New("ledger write failed after the charge")
	}
	if _, _, err := g.Do(ctx, "k4", nil, final); err == nil || errors.Is(err, ErrFailedFinal) {
		t.Fatalf("first final failure returns fn's own error: %v", err)
	}
	_, replayed, err = g.Do(ctx, "k4", nil, ok)
	if !errors.Is(err, ErrFailedFinal) || !replayed || !strings.Contains(err.Error(), "ledger write failed") || runs.Load() != 1 {
		t.Fatalf("stored final failure: %v %v runs=%d", err, replayed, runs.Load())
	}
}

func TestDoInFlight(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	g := e.guard(nil, nil)
	started, release := make(chan struct{}), make(chan struct{})
	go func() {
		_, _, _ = g.Do(context.Background(), "k", nil, func(context.Context) ([]byte, error) {
			close(started)
			<-release
			return []byte("done"), nil
		})
	}()
	<-started
	_, _, err := g.Do(context.Background(), "k", nil, func(context.Context) ([]byte, error) {
		t.Error("fn ran while the key was in flight")
		return nil, nil
	})
	var ife *InFlightError
	if !errors.As(err, &ife) || !errors.Is(err, ErrInFlight) {
		t.Fatalf("got %v, want *InFlightError", err)
	}
	if want := e.clock.Now().Add(DefaultLease + DefaultMaxClockSkew); ife.LeaseExpires.Sub(want).Abs() > time.Millisecond {
		t.Fatalf("lease expires %v, want %v", ife.LeaseExpires, want)
	}
	close(release)
	waitFor(t, "completion", func() bool {
		res, _, err := g.Do(context.Background(), "k", nil, nil)
		return err == nil && string(res) == "done"
	})
}

func TestDoLargeResultNotKept(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	g := e.guard(nil, nil)
	big := make([]byte, 500<<10)
	_, _ = rand.Read(big)
	res, _, err := g.Do(context.Background(), "k", nil, func(context.Context) ([]byte, error) { return big, nil })
	if err != nil || len(res) != len(big) {
		t.Fatalf("first: %d bytes, %v", len(res), err)
	}
	_, replayed, err := g.Do(context.Background(), "k", nil, func(context.Context) ([]byte, error) {
		t.Error("fn ran again")
		return nil, nil
	})
	if !errors.Is(err, ErrResultNotKept) || !replayed {
		t.Fatalf("second: %v %v", replayed, err)
	}
}

func TestDoStorageFaultDoesNotRun(t *testing.T) {
	t.Parallel()
	tbl, faults := ddbtest.Inject(ddbtest.NewTable(t))
	e := &env{t: t, tbl: tbl, clock: ddbtest.NewClock(time.Now()), log: &logBuf{}}
	g := e.guard(nil, nil)
	for _, f := range ddbtest.StorageFaults {
		faults.Clear()
		faults.Fail("PutItem", f)
		_, _, err := g.Do(context.Background(), "k", nil, func(context.Context) ([]byte, error) {
			t.Errorf("%v: fn ran", f)
			return nil, nil
		})
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("%v: %v", f, err)
		}
	}
	// A failed completion still returns the result.
	faults.Clear()
	faults.Fail("UpdateItem", ddbtest.Throttling)
	res, _, err := g.Do(context.Background(), "k", nil, func(context.Context) ([]byte, error) { return []byte("r"), nil })
	if err != nil || string(res) != "r" || !strings.Contains(e.log.String(), "completion failed") {
		t.Fatalf("failed completion: %q %v", res, err)
	}
}

// Do records and HTTP records never meet, even under the same key string.
func TestDoNamespaceIsSeparate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	g := e.guard(nil, func(c *Config) {
		c.Scope = func(*http.Request) (string, bool) { return "", true }
	})
	_, _, err := g.Do(context.Background(), "k", nil, func(context.Context) ([]byte, error) { return []byte("task"), nil })
	if err != nil {
		t.Fatal(err)
	}
	h := &counter{}
	if w := serve(g.Handler(h), post("", "k", "{}")); w.Code != 201 || replayed(w) {
		t.Fatalf("HTTP request under a Do key: %d", w.Code)
	}
}
