package tablehealth

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// One outage starts one watcher, which probes until the table answers,
// re-creating it only when a re-creator was registered.
func TestWatcher(t *testing.T) {
	for _, recreate := range []bool{false, true} {
		key := new(int)
		tr := For(key, "t")
		if For(key, "t") != tr {
			t.Fatal("two trackers for one table")
		}
		var probes, creates atomic.Int32
		if recreate {
			tr.SetRecreate(func(context.Context) error { creates.Add(1); return nil })
		}
		probe := func(context.Context) error {
			if probes.Add(1) < 2 {
				return errors.New("missing")
			}
			return nil
		}
		for range 10 {
			tr.ReportMissing(probe)
		}
		if !tr.Missing() {
			t.Fatal("not missing after a report")
		}
		deadline := time.Now().Add(5 * time.Second)
		for tr.Missing() && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if tr.Missing() {
			t.Fatalf("recreate=%v: still missing", recreate)
		}
		switch {
		case recreate && (creates.Load() != 1 || probes.Load() != 0):
			t.Fatalf("recreate: %d creates, %d probes", creates.Load(), probes.Load())
		case !recreate && (creates.Load() != 0 || probes.Load() != 2):
			t.Fatalf("probe only: %d creates, %d probes", creates.Load(), probes.Load())
		}
	}
}

// A request that reaches the table clears the state at once; the watcher
// then ends.
func TestFoundClears(t *testing.T) {
	tr := For(new(int), "t")
	tr.ReportMissing(func(context.Context) error { return errors.New("missing") })
	tr.Found()
	if tr.Missing() {
		t.Fatal("still missing after Found")
	}
	time.Sleep(400 * time.Millisecond)
	tr.mu.Lock()
	watching := tr.watching
	tr.mu.Unlock()
	if watching {
		t.Fatal("watcher still running after the table answered")
	}
}
