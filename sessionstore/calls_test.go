package sessionstore_test

import (
	"strings"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"

	"github.com/dynaguard/dynaguard/internal/ddbtest"
	"github.com/dynaguard/dynaguard/sessionstore"
)

// Calls per request, measured with the recorder through scs's LoadAndSave.
func TestCallsPerRequest(t *testing.T) {
	tbl, rec := ddbtest.Record(ddbtest.NewTable(t))
	st := newStore(t, tbl)
	b := newBrowser(t, app(manager(st), st)) // no IdleTimeout
	b.must("/put?k=a&v=1")

	t.Run("load, read-only", func(t *testing.T) {
		rec.Reset()
		b.must("/get?k=a")
		calls := rec.Calls()
		if len(calls) != 1 || calls[0].Op != "GetItem" || !calls[0].ConsistentRead {
			t.Fatalf("calls = %+v, want one strongly consistent GetItem", calls)
		}
	})
	t.Run("modified", func(t *testing.T) {
		rec.Reset()
		b.must("/put?k=a&v=2")
		calls := rec.Calls()
		if len(calls) != 2 || calls[1].Op != "UpdateItem" || rec.Writes() != 1 {
			t.Fatalf("calls = %+v, want GetItem + one UpdateItem", calls)
		}
		if !strings.Contains(calls[1].Condition, "attribute_not_exists(#tomb)") {
			t.Errorf("the commit is not conditioned on the tombstone: %q", calls[1].Condition)
		}
	})
	t.Run("login with Bind", func(t *testing.T) {
		rec.Reset()
		b.must("/login?user=carol")
		// Delete of the old token (RenewToken) + one commit carrying data and
		// owner: Bind adds no write.
		if rec.Count("GetItem") != 1 || rec.Count("PutItem") != 1 || rec.Count("UpdateItem") != 1 || rec.Writes() != 2 {
			t.Fatalf("calls = %+v", rec.Calls())
		}
		if !strings.Contains(rec.Calls()[2].Update, "#gsi1pk = :owner") {
			t.Fatalf("the commit did not carry the owner: %q", rec.Calls()[2].Update)
		}
	})
	t.Run("login without Bind", func(t *testing.T) {
		other := newBrowser(t, app(manager(st), nil))
		other.must("/put?k=a&v=1")
		rec.Reset()
		other.must("/login?user=dave")
		if rec.Writes() != 2 {
			t.Fatalf("calls = %+v", rec.Calls())
		}
	})
	t.Run("logout", func(t *testing.T) {
		rec.Reset()
		b.must("/logout")
		calls := rec.Calls()
		if len(calls) != 2 || calls[0].Op != "GetItem" || calls[1].Op != "PutItem" {
			t.Fatalf("calls = %+v, want GetItem + one PutItem (the tombstone)", calls)
		}
	})
	t.Run("Delete", func(t *testing.T) {
		tok := newToken(t)
		mustCommit(t, st, tok, []byte("x"), time.Now().Add(time.Hour))
		rec.Reset()
		if err := st.Delete(tok); err != nil {
			t.Fatal(err)
		}
		if rec.Count("") != 1 || rec.Writes() != 1 {
			t.Fatalf("Delete calls = %+v, want one write", rec.Calls())
		}
	})
}

// The headline figure: under an IdleTimeout scs commits every request, and a
// session making 100 read-only requests within a minute costs at most 2
// writes (here: the one that created it, and none after).
func TestReadOnlyRequestsUnderIdleTimeoutSkipWrites(t *testing.T) {
	tbl, rec := ddbtest.Record(ddbtest.NewTable(t))
	st := newStore(t, tbl)
	b := newBrowser(t, app(manager(st, idle(30*time.Minute)), st))
	b.must("/put?k=a&v=1")
	b.must("/put?k=b&v=2")
	rec.Reset()
	b.must("/put?k=c&v=3") // a session holding several values
	start := time.Now()
	for range 100 {
		if got := b.must("/get?k=b"); got != "2" {
			t.Fatalf("got %q", got)
		}
	}
	if time.Since(start) > time.Minute {
		t.Skip("100 requests took over a minute; the figure is per minute")
	}
	if g := rec.Count("GetItem"); g != 101 {
		t.Errorf("%d GetItem for 101 requests", g)
	}
	if w := rec.Writes(); w > 2 {
		t.Fatalf("101 requests (1 modifying, 100 read-only) cost %d writes, want at most 2", w)
	}
	t.Logf("101 requests: %d GetItem, %d writes", rec.Count("GetItem"), rec.Writes())
}

// Why Codec exists: scs's default GobCodec encodes the values map in random
// order, so a session with several values looks changed on most commits.
func TestGobCodecDefeatsTheSkipRule(t *testing.T) {
	tbl, rec := ddbtest.Record(ddbtest.NewTable(t))
	st := newStore(t, tbl)
	b := newBrowser(t, app(manager(st, idle(30*time.Minute), func(sm *scs.SessionManager) { sm.Codec = scs.GobCodec{} }), st))
	for _, kv := range []string{"a&v=1", "b&v=2", "c&v=3", "d&v=4", "e&v=5", "f&v=6"} {
		b.must("/put?k=" + kv)
	}
	rec.Reset()
	for range 100 {
		b.must("/get?k=a")
	}
	if w := rec.Writes(); w < 20 {
		t.Fatalf("GobCodec: %d writes for 100 read-only requests; expected most to write", w)
	} else {
		t.Logf("GobCodec: %d writes for 100 read-only requests (sessionstore.Codec: 0)", w)
	}
}

func TestEventuallyConsistentOption(t *testing.T) {
	tbl, rec := ddbtest.Record(ddbtest.NewTable(t))
	st := newStore(t, tbl, func(c *sessionstore.Config) { c.EventuallyConsistent = true })
	tok := newToken(t)
	mustCommit(t, st, tok, []byte("x"), time.Now().Add(time.Hour))
	rec.Reset()
	mustFind(t, st, tok)
	if c := rec.Calls(); len(c) != 1 || c[0].ConsistentRead {
		t.Fatalf("calls = %+v, want one eventually consistent GetItem", c)
	}
}
