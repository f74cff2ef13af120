package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/ddbtest"
	"github.com/dynaguard/dynaguard/nonce"
)

// Section 5 (the DynamoDB Local half): dynaguard's nonce against the
// seed-style nonce of seed.go — calls, capacity and latency of issuing and
// consuming one, and the race of two concurrent consumptions.

// nonceSide is one implementation under test, with its own recorder.
type nonceSide struct {
	Name   string
	issue  func(ctx context.Context) (func(ctx context.Context) (bool, error), error)
	rec    *ddbtest.Recorder
	tap    *tap
	LatMS  []float64 // issue + consume, per cycle
	Totals totals    // per cycle
	// Race: trials in which two concurrent consumptions of one nonce both,
	// neither, or exactly one succeeded.
	Trials, Both, None, One int
}

// dynaguardNonces returns a side on two nonce.Managers (two instances)
// sharing tbl: issue on the first, consume on either.
func dynaguardNonces(tbl *dynaguard.Table, rec *ddbtest.Recorder, tp *tap) (*nonceSide, error) {
	keys, err := newKeyring()
	if err != nil {
		return nil, err
	}
	a, err := nonce.New(nonce.Config{Table: tbl, Keys: keys, Logger: quiet})
	if err != nil {
		return nil, err
	}
	b, err := nonce.New(nonce.Config{Table: tbl, Keys: keys, Logger: quiet})
	if err != nil {
		return nil, err
	}
	var page *http.Request
	w := httptest.NewRecorder()
	a.Handler(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { page = r })).ServeHTTP(w, httptest.NewRequest("GET", "/form", nil))
	cookies := w.Result().Cookies()
	if page == nil || len(cookies) == 0 {
		return nil, fmt.Errorf("nonce: no prepared page or cookie")
	}
	managers := []*nonce.Manager{a, b}
	s := &nonceSide{Name: "dynaguard nonce (signed token, 1 conditional PutItem)", rec: rec, tap: tp}
	var turnMu sync.Mutex
	turn := 0
	s.issue = func(context.Context) (func(context.Context) (bool, error), error) {
		tok, err := nonce.Token(page, "/transfer")
		if err != nil {
			return nil, err
		}
		return func(context.Context) (bool, error) {
			r := httptest.NewRequest("POST", "/transfer", nil)
			r.Header.Set(nonce.DefaultHeaderName, tok)
			r.AddCookie(cookies[0])
			turnMu.Lock()
			m := managers[turn%2]
			turn++
			turnMu.Unlock()
			err := m.Consume(nil, r, "/transfer")
			if err == nil {
				return true, nil
			}
			if nonce.Status(err) == http.StatusConflict {
				return false, nil // already used
			}
			return false, err
		}, nil
	}
	return s, nil
}

func seedSide(tbl *dynaguard.Table, rec *ddbtest.Recorder, tp *tap) *nonceSide {
	s := &seedNonces{tbl: tbl, ttl: 5 * time.Minute}
	side := &nonceSide{Name: "seed-style nonce (PutItem; GetItem then DeleteItem)", rec: rec, tap: tp}
	side.issue = func(ctx context.Context) (func(context.Context) (bool, error), error) {
		n, err := s.Issue(ctx, "user-1")
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context) (bool, error) { return s.Consume(ctx, "user-1", n) }, nil
	}
	return side
}

// peerNonces measures both sides: cycles sequential issue+consume cycles
// (interleaved in blocks), then trials races.
func peerNonces(ctx context.Context, ts *tables, cycles, trials int) ([]*nonceSide, error) {
	mk := func(what string) (*dynaguard.Table, *ddbtest.Recorder, *tap, error) {
		m, err := newMeter(ctx, ts, what)
		if err != nil {
			return nil, nil, nil, err
		}
		return m.tbl, m.rec, m.tap, nil
	}
	t1, r1, p1, err := mk("nonce")
	if err != nil {
		return nil, err
	}
	ours, err := dynaguardNonces(t1, r1, p1)
	if err != nil {
		return nil, err
	}
	t2, r2, p2, err := mk("seed")
	if err != nil {
		return nil, err
	}
	sides := []*nonceSide{ours, seedSide(t2, r2, p2)}

	// Calls and capacity of one cycle, then latency over many.
	for _, s := range sides {
		s.rec.Reset()
		s.tap.reset()
		consume, err := s.issue(ctx)
		if err != nil {
			return nil, err
		}
		if ok, err := consume(ctx); !ok || err != nil {
			return nil, fmt.Errorf("%s: first consumption refused: %v", s.Name, err)
		}
		calls, err := join(s.rec.Calls(), s.tap.snapshot())
		if err != nil {
			return nil, err
		}
		s.Totals = sum(calls)
	}
	const block = 50
	for done := 0; done < cycles; done += block {
		for i, s := range sides {
			if (done/block)%2 == 1 {
				s = sides[1-i]
			}
			for range block {
				t0 := time.Now()
				consume, err := s.issue(ctx)
				if err != nil {
					return nil, err
				}
				if ok, err := consume(ctx); !ok || err != nil {
					return nil, fmt.Errorf("%s: consumption refused: %v", s.Name, err)
				}
				s.LatMS = append(s.LatMS, float64(time.Since(t0).Microseconds())/1000)
			}
		}
	}

	// The race: two consumptions of one nonce released at once.
	for _, s := range sides {
		for range trials {
			consume, err := s.issue(ctx)
			if err != nil {
				return nil, err
			}
			var wg sync.WaitGroup
			gate := make(chan struct{})
			results := make([]bool, 2)
			errs := make([]error, 2)
			for i := range 2 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-gate
					results[i], errs[i] = consume(ctx)
				}()
			}
			close(gate)
			wg.Wait()
			for _, e := range errs {
				if e != nil {
					return nil, fmt.Errorf("%s race: %w", s.Name, e)
				}
			}
			s.Trials++
			switch {
			case results[0] && results[1]:
				s.Both++
			case !results[0] && !results[1]:
				s.None++
			default:
				s.One++
			}
		}
	}
	return sides, nil
}
