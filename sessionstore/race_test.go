package sessionstore_test

import (
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dynaguard/dynaguard/internal/ddbtest"
	"github.com/dynaguard/dynaguard/sessionstore"
)

// Delete wins: many goroutines on two store instances keep committing a
// session (each as a request that loaded it before the logout), while it is
// deleted. Afterwards it is never found again, on either instance, whatever
// the interleaving.
func TestDeleteWinsRace(t *testing.T) {
	tbl := ddbtest.NewTable(t)
	a := newStore(t, tbl)
	b := newStore(t, tbl)
	exp := time.Now().Add(time.Hour)
	for round := range 5 {
		tok := newToken(t)
		mustCommit(t, a, tok, []byte("start"), exp)
		mustFind(t, a, tok)
		mustFind(t, b, tok)

		const writers = 16
		var (
			wg      sync.WaitGroup
			started sync.WaitGroup
			deleted = make(chan struct{})
			errs    atomic.Int32
		)
		started.Add(writers)
		for w := range writers {
			st := a
			if w%2 == 1 {
				st = b
			}
			wg.Go(func() {
				for i := range 12 {
					if i == 2 {
						started.Done()
					}
					data := fmt.Appendf(nil, "w%d-%d", w, i)
					if err := st.CommitCtx(ctx, tok, data, exp.Add(time.Duration(i)*time.Second)); err != nil {
						errs.Add(1)
						t.Errorf("commit: %v", err)
					}
					if i == 6 {
						<-deleted // keep committing after the delete too
					}
				}
			})
		}
		started.Wait()
		if err := b.Delete(tok); err != nil {
			t.Fatal(err)
		}
		close(deleted)
		wg.Wait()
		if errs.Load() > 0 {
			t.Fatalf("round %d: %d commits failed", round, errs.Load())
		}
		mustNotFind(t, a, tok)
		mustNotFind(t, b, tok)
		if item := rawItem(t, tbl, a, tok); item[sessionstore.AttrData] != nil {
			t.Fatalf("round %d: data written after the delete: %v", round, item)
		}
	}
}

// Logout against concurrent requests through scs on two instances: once the
// logout response is out, the session never comes back.
func TestLogoutRaceThroughSessionManager(t *testing.T) {
	tbl := ddbtest.NewTable(t)
	a := newStore(t, tbl)
	b := newStore(t, tbl)
	ha := app(manager(a, idle(time.Hour)), a)
	hb := app(manager(b, idle(time.Hour)), b)
	user := newBrowser(t, ha)
	user.must("/login?user=u")
	tok := user.token()

	var wg sync.WaitGroup
	for i := range 12 {
		h := ha
		if i%2 == 1 {
			h = hb
		}
		wg.Go(func() {
			tab := newBrowser(t, h)
			tab.cookie = tok
			for j := range 8 {
				if code, _ := tab.do(fmt.Sprintf("/put?k=n&v=%d-%d", i, j)); code != http.StatusOK {
					t.Errorf("status %d", code)
				}
			}
		})
	}
	logout := newBrowser(t, hb)
	logout.cookie = tok
	logout.must("/logout")
	wg.Wait()
	mustNotFind(t, a, tok)
	mustNotFind(t, b, tok)
	late := newBrowser(t, ha)
	late.cookie = tok
	if got := late.must("/get?k=user"); got != "" {
		t.Fatalf("session resurrected: user=%q", got)
	}
}

// Concurrent requests of one session on two instances: no error, no data
// race (run with -race), every request sees the session.
func TestConcurrentRequestsOnTwoInstances(t *testing.T) {
	tbl := ddbtest.NewTable(t)
	a := newStore(t, tbl)
	b := newStore(t, tbl)
	ha := app(manager(a, idle(time.Hour)), a)
	hb := app(manager(b, idle(time.Hour)), b)
	first := newBrowser(t, ha)
	first.must("/login?user=u")
	tok := first.token()
	var wg sync.WaitGroup
	for i := range 16 {
		h := ha
		if i%2 == 1 {
			h = hb
		}
		wg.Go(func() {
			tab := newBrowser(t, h)
			tab.cookie = tok
			for j := range 10 {
				path := "/get?k=user"
				if j%3 == 0 {
					path = fmt.Sprintf("/put?k=t%d&v=%d", i, j)
				}
				code, body := tab.do(path)
				if code != http.StatusOK || (path == "/get?k=user" && body != "u") {
					t.Errorf("%s: %d %q", path, code, body)
				}
			}
		})
	}
	wg.Wait()
}
