package dynaguard_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/dynaguard/dynaguard"
)

// eventLog captures the security events of both instances of a cluster
// (their Events.Hook), so that each attack test can say which event it
// must produce, and the table-dump test can search every event for
// secrets.
type eventLog struct {
	mu  sync.Mutex
	all []dynaguard.Event
}

func (l *eventLog) config() *dynaguard.Events {
	return &dynaguard.Events{Hook: func(_ context.Context, e dynaguard.Event) {
		l.mu.Lock()
		l.all = append(l.all, e)
		l.mu.Unlock()
	}}
}

func (l *eventLog) events() []dynaguard.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]dynaguard.Event(nil), l.all...)
}

// expectEvent fails t unless an event named name, with reason when reason
// is not "", was emitted; it returns the first such event.
func (c *cluster) expectEvent(t testing.TB, name dynaguard.EventName, reason string) dynaguard.Event {
	t.Helper()
	var seen []string
	for _, e := range c.events.events() {
		if e.Name == name && (reason == "" || e.Reason == reason) {
			if e.Outcome != name.Outcome() || e.Component == "" || e.Time.IsZero() {
				t.Errorf("event %s is incomplete: %+v", name, e)
			}
			return e
		}
		seen = append(seen, e.Name.String()+"/"+e.Reason)
	}
	t.Errorf("no %s event (reason %q); emitted: %s", name, reason, strings.Join(seen, " "))
	return dynaguard.Event{}
}

// noSecretInEvents fails t if any captured event holds one of secrets.
func (c *cluster) noSecretInEvents(t testing.TB, secrets []string) {
	t.Helper()
	evs := c.events.events()
	if len(evs) < 10 {
		t.Fatalf("only %d events captured", len(evs))
	}
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "%+v\n", e)
	}
	text := b.String()
	for _, s := range secrets {
		if strings.Contains(text, s) {
			t.Errorf("an event holds a secret or raw identifier (%d characters, starts %q)", len(s), s[:4])
		}
	}
	t.Logf("checked %d secrets and identifiers against %d events", len(secrets), len(evs))
}
