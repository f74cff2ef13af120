// Package tablehealth notices a missing table and watches for its return.
//
// When a DynamoDB call fails with ResourceNotFoundException, the caller
// reports it here. The first report logs once and starts one background
// watcher per table; later reports cost an atomic load. The watcher probes
// the table with backoff (250 ms doubling to 5 s, each probe bounded by
// 2 s) until it answers, re-creating it first where the application
// configured that (dynaguard.Table.Ensure registers a re-creator), then
// logs the recovery and ends. Requests are never held back in the
// meantime: each keeps going to DynamoDB, fails closed while the table is
// gone and succeeds as soon as it exists again, so no state can outlive
// the outage.
//
// It does not import the root package, so that package can register its
// re-creator here.
package tablehealth

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Probe timing.
const (
	firstDelay   = 250 * time.Millisecond
	maxDelay     = 5 * time.Second
	probeTimeout = 2 * time.Second
)

// Tracker is the health of one table. The zero value is not usable; get
// one with For.
type Tracker struct {
	name     string
	missing  atomic.Bool
	mu       sync.Mutex
	recreate func(context.Context) error // set by Ensure; nil: never re-create
	watching bool                        // a watcher runs (at most one per table)
}

// registry holds one Tracker per table value (the *dynaguard.Table an
// application shares between components). It grows by one small entry per
// table value ever used, which an application creates a handful of.
var registry sync.Map

// For returns the Tracker of the table identified by key (its pointer).
func For(key any, name string) *Tracker {
	if t, ok := registry.Load(key); ok {
		return t.(*Tracker)
	}
	t, _ := registry.LoadOrStore(key, &Tracker{name: name})
	return t.(*Tracker)
}

// SetRecreate registers how to create the table again when it goes
// missing. Only dynaguard.Table.Ensure calls it: an application that did
// not ask for its table to be created never has it created behind its back.
func (t *Tracker) SetRecreate(fn func(context.Context) error) {
	t.mu.Lock()
	t.recreate = fn
	t.mu.Unlock()
}

// Missing reports whether the table is known to be missing right now.
func (t *Tracker) Missing() bool { return t.missing.Load() }

// Found clears the missing state after a call that reached the table.
func (t *Tracker) Found() {
	if t.missing.Load() {
		// The watcher logs the recovery; a request that got there first
		// only clears the flag.
		t.missing.Store(false)
	}
}

// ReportMissing records that a call found no table. probe reaches the table
// with one cheap call and returns nil once it exists. Only the first report
// of an outage logs and starts the watcher.
func (t *Tracker) ReportMissing(probe func(context.Context) error) {
	if !t.missing.CompareAndSwap(false, true) {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	slog.Error("dynaguard: table not found; requests that need it answer 503 until it exists again",
		"table", t.name, "recreate", t.recreate != nil)
	if !t.watching {
		t.watching = true
		go t.watch(probe)
	}
}

func (t *Tracker) watch(probe func(context.Context) error) {
	delay := firstDelay
	for {
		time.Sleep(delay)
		if t.done() {
			return
		}
		t.mu.Lock()
		recreate := t.recreate
		t.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
		var err error
		if recreate != nil {
			err = recreate(ctx)
		} else {
			err = probe(ctx)
		}
		cancel()
		if err == nil {
			t.missing.Store(false)
			if t.done() {
				return
			}
		}
		delay = min(delay*2, maxDelay)
	}
}

// done ends the watcher once the table answers again (a probe, or a request
// through Found), logging the recovery.
func (t *Tracker) done() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.missing.Load() {
		return false
	}
	t.watching = false
	slog.Info("dynaguard: table is back; serving again", "table", t.name)
	return true
}
