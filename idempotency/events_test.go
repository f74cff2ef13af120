package idempotency

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dynaguard/dynaguard"
)

// Each decision about a key is one event, for the key's user: claimed,
// conflict while it runs, a takeover after its lease lapsed, lease lost
// for the stalled worker, replayed, and mismatch for another payload.
func TestEvents(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var mu sync.Mutex
	var got []string
	g := e.guard(nil, func(c *Config) {
		c.Events = &dynaguard.Events{Hook: func(_ context.Context, ev dynaguard.Event) {
			mu.Lock()
			got = append(got, ev.Name.String()+"/"+ev.UserID)
			mu.Unlock()
		}}
	})
	g.renewEvery = time.Hour // renewed by hand below
	b := newBlocker(http.StatusCreated, "late")
	done := make(chan struct{})
	go func() { serve(g.Handler(b), post("u1", "k", "{}")); close(done) }()
	c := <-b.started
	if w := serve(g.Handler(&counter{}), post("u1", "k", "{}")); w.Code != http.StatusConflict {
		t.Fatalf("while running: %d", w.Code)
	}
	e.clock.Advance(DefaultLease + DefaultMaxClockSkew)
	if w := serve(g.Handler(&counter{}), post("u1", "k", "{}")); w.Code != http.StatusCreated {
		t.Fatalf("takeover: %d", w.Code)
	}
	c.renew()
	close(b.release)
	<-done
	if w := serve(g.Handler(&counter{}), post("u1", "k", "{}")); !replayed(w) {
		t.Fatalf("replay: %d", w.Code)
	}
	if w := serve(g.Handler(&counter{}), post("u1", "k", `{"a":1}`)); w.Code != http.StatusUnprocessableEntity {
		t.Fatalf("mismatch: %d", w.Code)
	}
	mu.Lock()
	defer mu.Unlock()
	want := "idempotency.claimed/u1 idempotency.conflict/u1 idempotency.taken_over/u1 idempotency.lease_lost/ idempotency.replayed/u1 idempotency.mismatch/u1"
	if s := strings.Join(got, " "); s != want {
		t.Fatalf("events\n%s\nwant\n%s", s, want)
	}
}
