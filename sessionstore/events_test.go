package sessionstore_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/ddbtest"
	"github.com/dynaguard/dynaguard/sessionstore"
)

// Each decision of the store is one event: a deleted session, its token
// presented or committed again, a session past its deadline.
func TestEvents(t *testing.T) {
	t.Parallel()
	tbl := ddbtest.NewTable(t)
	clock := ddbtest.NewClock(time.Now())
	var mu sync.Mutex
	var got []string
	ev := &dynaguard.Events{Hook: func(_ context.Context, e dynaguard.Event) {
		mu.Lock()
		got = append(got, e.Name.String()+"/"+e.Reason+"/"+e.Component)
		mu.Unlock()
	}}
	st := newStore(t, tbl, withClock(clock), func(c *sessionstore.Config) { c.Events = ev })

	gone, old := newToken(t), newToken(t)
	mustCommit(t, st, gone, []byte("a"), clock.Now().Add(time.Hour))
	mustCommit(t, st, old, []byte("b"), clock.Now().Add(time.Minute))
	if err := st.DeleteCtx(ctx, gone); err != nil {
		t.Fatal(err)
	}
	mustNotFind(t, st, gone)                                         // a copied cookie after logout
	mustCommit(t, st, gone, []byte("c"), clock.Now().Add(time.Hour)) // a request still in flight
	clock.Advance(2 * time.Minute)
	mustNotFind(t, st, old)
	mustNotFind(t, st, newToken(t)) // unknown: nothing to say

	want := []string{
		"session.revoked/delete/sessionstore",
		"session.refused_after_logout/deleted/sessionstore",
		"session.refused_after_logout/commit/sessionstore",
		"session.expired_idle/deadline/sessionstore",
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != len(want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("events %v, want %v", got, want)
		}
	}
}
