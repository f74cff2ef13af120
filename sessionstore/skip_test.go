package sessionstore_test

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/dynaguard/dynaguard/internal/ddb"
	"github.com/dynaguard/dynaguard/internal/ddbtest"
	"github.com/dynaguard/dynaguard/sessionstore"
)

// The skip rule, commit by commit.
func TestSkipRule(t *testing.T) {
	tbl, rec := ddbtest.Record(ddbtest.NewTable(t))
	clock := ddbtest.NewClock(time.Now())
	st := newStore(t, tbl, withClock(clock))
	tok := newToken(t)
	data := []byte("unchanged")
	e0 := clock.Now().Add(30 * time.Minute)
	mustCommit(t, st, tok, data, e0)

	steps := []struct {
		name  string
		data  []byte
		exp   time.Time
		write bool
	}{
		{"same expiry", data, e0, false},
		{"30 s later", data, e0.Add(30 * time.Second), false},
		{"exactly TouchInterval later", data, e0.Add(time.Minute), false},
		{"TouchInterval + 1 ns later", data, e0.Add(time.Minute + 1), true},
		{"earlier than stored", data, e0, true},
		{"data changed", []byte("changed"), e0, true},
		{"back to the first data", data, e0, true},
		{"again, unchanged", data, e0, false},
	}
	for _, s := range steps {
		rec.Reset()
		mustCommit(t, st, tok, s.data, s.exp)
		if got := rec.Writes() == 1; got != s.write {
			t.Fatalf("%s: wrote=%v, want %v", s.name, got, s.write)
		}
		if got := mustFind(t, st, tok); string(got) != string(s.data) {
			t.Fatalf("%s: stored %q", s.name, got)
		}
	}

	t.Run("capped at a tenth of the remaining lifetime", func(t *testing.T) {
		tok := newToken(t)
		now := clock.Now()
		e := now.Add(5 * time.Minute) // a 5-minute idle timeout: the cap is about 30 s, not 1 min
		mustCommit(t, st, tok, data, e)
		rec.Reset()
		mustCommit(t, st, tok, data, e.Add(29*time.Second)) // (5m29s)/10 ≥ 29 s
		if rec.Writes() != 0 {
			t.Fatal("29 s of lag should be skipped")
		}
		mustCommit(t, st, tok, data, e.Add(40*time.Second))
		if rec.Writes() != 1 {
			t.Fatal("40 s of lag on a 5-minute lifetime should be written")
		}
	})
	t.Run("never skips once the stored expiry has passed", func(t *testing.T) {
		tok := newToken(t)
		e := clock.Now().Add(time.Second)
		mustCommit(t, st, tok, data, e)
		clock.Set(e)
		rec.Reset()
		mustCommit(t, st, tok, data, e.Add(time.Second))
		if rec.Writes() != 1 {
			t.Fatal("skipped a commit of an expired session")
		}
	})
}

func TestSkipRuleDisabled(t *testing.T) {
	for name, mod := range map[string]func(*sessionstore.Config){
		"TouchInterval < 0": func(c *sessionstore.Config) { c.TouchInterval = -1 },
		"CacheSize < 0":     func(c *sessionstore.Config) { c.CacheSize = -1 },
	} {
		t.Run(name, func(t *testing.T) {
			tbl, rec := ddbtest.Record(ddbtest.NewTable(t))
			st := newStore(t, tbl, mod)
			tok := newToken(t)
			exp := time.Now().Add(time.Hour)
			for range 3 {
				mustCommit(t, st, tok, []byte("x"), exp)
			}
			if rec.Writes() != 3 {
				t.Fatalf("%d writes, want 3", rec.Writes())
			}
		})
	}
}

// The cache is bounded; an evicted session is simply written.
func TestSkipCacheEviction(t *testing.T) {
	tbl, rec := ddbtest.Record(ddbtest.NewTable(t))
	st := newStore(t, tbl, func(c *sessionstore.Config) { c.CacheSize = 2 })
	exp := time.Now().Add(time.Hour)
	toks := []string{newToken(t), newToken(t), newToken(t)}
	for _, tok := range toks {
		mustCommit(t, st, tok, []byte("x"), exp)
	}
	if n := st.CachedSessions(); n != 2 {
		t.Fatalf("cache holds %d sessions, want 2", n)
	}
	rec.Reset()
	mustCommit(t, st, toks[2], []byte("x"), exp) // most recent: skipped
	mustCommit(t, st, toks[0], []byte("x"), exp) // evicted: written
	if rec.Writes() != 1 {
		t.Fatalf("%d writes, want 1", rec.Writes())
	}
}

// The documented bound, checked on the stored item after every commit of a
// random walk of expiries, clock moves and data changes:
//
//	S ≤ E ≤ S + min(TouchInterval, (E − now)/10)
func TestSkipBoundHolds(t *testing.T) {
	tbl := ddbtest.NewTable(t)
	clock := ddbtest.NewClock(time.Now())
	st := newStore(t, tbl, withClock(clock))
	rng := rand.New(rand.NewPCG(1, 2))
	tok := newToken(t)
	idleTimeout := 10 * time.Minute
	version := 0
	skipped := 0
	for i := range 150 {
		clock.Advance(time.Duration(rng.Int64N(int64(40 * time.Second))))
		if rng.IntN(10) == 0 {
			version++
		}
		e := clock.Now().Add(idleTimeout - time.Duration(rng.Int64N(int64(5*time.Second))))
		before := rawItem(t, tbl, st, tok)
		mustCommit(t, st, tok, fmt.Appendf(nil, "v%d", version), e)
		item := rawItem(t, tbl, st, tok)
		if maps.Equal(ddbtest.Flatten(before), ddbtest.Flatten(item)) {
			skipped++
		}
		s, _ := ddb.Int(item, sessionstore.AttrExp)
		stored := time.Unix(0, s)
		limit := min(sessionstore.DefaultTouchInterval, e.Sub(clock.Now())/10)
		if stored.After(e) || e.Sub(stored) > limit {
			t.Fatalf("commit %d: stored expiry %v, scs expiry %v, allowed lag %v", i, stored, e, limit)
		}
		if got := mustFind(t, st, tok); string(got) != fmt.Sprintf("v%d", version) {
			t.Fatalf("commit %d: stored %q", i, got)
		}
	}
	if skipped == 0 {
		t.Fatal("the walk never exercised a skipped commit")
	}
	t.Logf("%d of 150 commits skipped", skipped)
}
