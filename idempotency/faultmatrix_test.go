package idempotency

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dynaguard/dynaguard/internal/ddb"
	"github.com/dynaguard/dynaguard/internal/ddbtest"
)

// The fault matrix: every DynamoDB call site of the package × every fault
// class, injected at that call on DynamoDB Local, with the invariant the
// site must keep. docs/SECURITY.md lists the outcomes.
//
//	claim     PutItem     fail closed: 503 / ErrUnavailable, nothing runs
//	renew     UpdateItem  the handler is canceled (ErrLeaseLost) before its
//	                      lease lapses and its outcome is not stored; a
//	                      takeover waits lease + skew: never two at once
//	mark      UpdateItem  Final reports the failure; the outcome is still
//	                      stored and replayed: one execution
//	complete  UpdateItem  (and its background retries) after Final: never
//	                      taken over; 409 until the retry lands: one execution
//	release   DeleteItem  the key stays claimed until lease + skew, then a
//	                      retry runs (the first was not processed)
//	Do        the claim, the completion (+ mark), the release: the same
func TestFaultMatrix(t *testing.T) {
	t.Parallel()
	sites := []struct {
		name string
		run  func(t *testing.T, f ddbtest.Fault)
	}{
		{"claim/PutItem", matrixClaim},
		{"renew/UpdateItem", matrixRenew},
		{"mark/UpdateItem", matrixMark},
		{"complete+retry/UpdateItem", matrixComplete},
		{"release/DeleteItem", matrixRelease},
		{"Do claim/PutItem", matrixDoClaim},
		{"Do complete+mark/UpdateItem", matrixDoComplete},
	}
	for _, site := range sites {
		for _, f := range ddbtest.AllFaults {
			t.Run(site.name+"/"+f.String(), func(t *testing.T) {
				t.Parallel()
				site.run(t, f)
			})
		}
	}
}

func faultEnv(t *testing.T) (*env, *ddbtest.Faults) {
	tbl, faults := ddbtest.Inject(ddbtest.NewTable(t))
	return &env{t: t, tbl: tbl, clock: ddbtest.NewClock(time.Now()), log: &logBuf{}}, faults
}

func matrixClaim(t *testing.T, f ddbtest.Fault) {
	e, faults := faultEnv(t)
	h := &counter{}
	g := e.guard(nil, nil).Handler(h)
	faults.Fail("PutItem", f)
	if w := serve(g, post("u1", "k", "{}")); w.Code != http.StatusServiceUnavailable || h.n.Load() != 0 {
		t.Fatalf("%d, runs %d: want 503 and no run", w.Code, h.n.Load())
	}
	faults.Clear()
	if w := serve(g, post("u1", "k", "{}")); w.Code != http.StatusCreated || h.n.Load() != 1 {
		t.Fatalf("after recovery: %d runs %d", w.Code, h.n.Load())
	}
}

func matrixRenew(t *testing.T, f ddbtest.Fault) {
	e, faults := faultEnv(t)
	const lease, skew = 1200 * time.Millisecond, 300 * time.Millisecond
	cfg := func(c *Config) { c.Lease = lease; c.MaxClockSkew = skew }
	g1, g2 := e.guard(nil, cfg), e.guard(nil, cfg)
	faults.Fail("UpdateItem", f)
	start := time.Now()
	var after time.Duration
	var cause error
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
			after, cause = time.Since(start), context.Cause(r.Context())
		case <-time.After(5 * time.Second):
		}
		w.WriteHeader(http.StatusCreated)
	})
	serve(g1.Handler(h), post("u1", "k", "{}"))
	// Due at lease - skew; a loaded machine may fire the timer late, but
	// never as late as the lease itself.
	if !errors.Is(cause, ErrLeaseLost) || after >= lease {
		t.Fatalf("canceled after %v (cause %v), want ErrLeaseLost at about %v, before %v", after, cause, lease-skew, lease)
	}
	faults.Clear()
	if st, _ := ddb.Str(e.item(pkFor("u1", "k")), attrState); st != stateRunning {
		t.Fatalf("outcome of the canceled handler stored: %q", st)
	}
	e.clock.Advance(lease)
	if w := serve(g2.Handler(&counter{}), post("u1", "k", "{}")); w.Code != http.StatusConflict {
		t.Fatalf("takeover before lease + skew: %d", w.Code)
	}
	e.clock.Advance(skew)
	if w := serve(g2.Handler(&counter{}), post("u1", "k", "{}")); w.Code != http.StatusCreated {
		t.Fatalf("takeover after lease + skew: %d", w.Code)
	}
}

func matrixMark(t *testing.T, f ddbtest.Fault) {
	e, faults := faultEnv(t)
	g := e.guard(nil, nil)
	var runs atomic.Int64
	var finalErr, cause error
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		runs.Add(1)
		faults.Fail("UpdateItem", f)
		finalErr = Final(r.Context())
		faults.Clear()
		cause = context.Cause(r.Context())
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, "done")
	})
	serve(g.Handler(h), post("u1", "k", "{}"))
	if f == ddbtest.ConditionFailed {
		// A refused mark means another owner: the handler is told to stop
		// and its outcome is not stored over the record.
		if !errors.Is(finalErr, ErrLeaseLost) || !errors.Is(cause, ErrLeaseLost) {
			t.Fatalf("Final %v, cause %v", finalErr, cause)
		}
		if st, _ := ddb.Str(e.item(pkFor("u1", "k")), attrState); st != stateRunning {
			t.Fatalf("state %q", st)
		}
		return
	}
	if !errors.Is(finalErr, ErrUnavailable) {
		t.Fatalf("Final = %v, want ErrUnavailable", finalErr)
	}
	w := serve(g.Handler(h), post("u1", "k", "{}"))
	if !replayed(w) || w.Body.String() != "done" || runs.Load() != 1 {
		t.Fatalf("replay %d %s runs %d", w.Code, w.Body, runs.Load())
	}
}

func matrixComplete(t *testing.T, f ddbtest.Fault) {
	e, faults := faultEnv(t)
	g := e.guard(nil, nil)
	var runs atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		runs.Add(1)
		if err := Final(r.Context()); err != nil {
			t.Errorf("Final: %v", err)
		}
		faults.Fail("UpdateItem", f) // the completion and every retry
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, "done")
	})
	serve(g.Handler(h), post("u1", "k", "{}"))
	e.clock.Advance(DefaultLease + DefaultMaxClockSkew + time.Second)
	w := serve(g.Handler(h), post("u1", "k", "{}"))
	if w.Code != http.StatusConflict || reason(t, w) != ReasonOutcomeUnknown {
		t.Fatalf("after the lease: %d %s", w.Code, w.Body)
	}
	faults.Clear()
	if f != ddbtest.ConditionFailed { // a refused completion is not retried
		waitFor(t, "the retried completion", func() bool {
			st, _ := ddb.Str(e.item(pkFor("u1", "k")), attrState)
			return st == stateDone
		})
		if w := serve(g.Handler(h), post("u1", "k", "{}")); !replayed(w) || w.Body.String() != "done" {
			t.Fatalf("replay %d %s", w.Code, w.Body)
		}
	}
	if runs.Load() != 1 {
		t.Fatalf("runs %d", runs.Load())
	}
}

func matrixRelease(t *testing.T, f ddbtest.Fault) {
	e, faults := faultEnv(t)
	g := e.guard(nil, nil)
	var runs atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if runs.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusCreated)
	})
	faults.Fail("DeleteItem", f)
	serve(g.Handler(h), post("u1", "k", "{}"))
	faults.Clear()
	if w := serve(g.Handler(h), post("u1", "k", "{}")); w.Code != http.StatusConflict || runs.Load() != 1 {
		t.Fatalf("within the lease: %d runs %d", w.Code, runs.Load())
	}
	e.clock.Advance(DefaultLease + DefaultMaxClockSkew)
	if w := serve(g.Handler(h), post("u1", "k", "{}")); w.Code != http.StatusCreated || runs.Load() != 2 {
		t.Fatalf("after lease + skew: %d runs %d", w.Code, runs.Load())
	}
}

func matrixDoClaim(t *testing.T, f ddbtest.Fault) {
	e, faults := faultEnv(t)
	g := e.guard(nil, nil)
	var runs atomic.Int64
	faults.Fail("PutItem", f)
	_, _, err := g.Do(t.Context(), "m", nil, func(context.Context) ([]byte, error) { runs.Add(1); return nil, nil })
	if !errors.Is(err, ErrUnavailable) || runs.Load() != 0 {
		t.Fatalf("%v runs %d", err, runs.Load())
	}
}

func matrixDoComplete(t *testing.T, f ddbtest.Fault) {
	e, faults := faultEnv(t)
	g := e.guard(nil, func(c *Config) { c.CompletionRetry = 300 * time.Millisecond })
	var runs atomic.Int64
	fn := func(context.Context) ([]byte, error) {
		runs.Add(1)
		faults.FailNth("UpdateItem", 1, f) // the completion; the mark after it lands
		return []byte("sent"), nil
	}
	if res, _, err := g.Do(t.Context(), "m", nil, fn); err != nil || string(res) != "sent" {
		t.Fatalf("first: %q %v", res, err)
	}
	faults.Fail("UpdateItem", ddbtest.Throttling) // every retry fails too
	g.retries.Wait()
	faults.Clear()
	e.clock.Advance(DefaultLease + DefaultMaxClockSkew + time.Second)
	if _, _, err := g.Do(t.Context(), "m", nil, fn); !errors.Is(err, ErrOutcomeUnknown) || runs.Load() != 1 {
		t.Fatalf("after the lease: %v runs %d", err, runs.Load())
	}
}
