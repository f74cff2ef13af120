package app

import (
	"context"
	"fmt"
	"testing"

	"github.com/dynaguard/dynaguard"
)

// The ring keeps the newest securityRing events, newest first, and the
// counts of all of them; the chart has a bar per name seen.
func TestSecurityLogIsBounded(t *testing.T) {
	s := newSecurityLog()
	for i := range securityRing + 50 {
		name := dynaguard.EventNonceConsumed
		if i%10 == 0 {
			name = dynaguard.EventNonceRefused
		}
		s.record(context.Background(), dynaguard.Event{Name: name, UserID: fmt.Sprint(i)})
	}
	p := s.page()
	if len(p.Events) != securityRing || p.Total != securityRing+50 {
		t.Fatalf("%d events kept of %d, want %d", len(p.Events), p.Total, securityRing)
	}
	if p.Events[0].UserID != fmt.Sprint(securityRing+49) || p.Events[securityRing-1].UserID != "50" {
		t.Errorf("not newest first: first %s, last %s", p.Events[0].UserID, p.Events[securityRing-1].UserID)
	}
	if len(p.Bars) != 2 || p.Bars[0].Name != "nonce.consumed" || p.Bars[0].Count != 225 || p.Bars[1].Count != 25 || !p.Bars[1].Failure {
		t.Errorf("bars = %+v", p.Bars)
	}
	if p.Bars[0].Width != chartBarW || p.Bars[1].Width != 25*chartBarW/225 {
		t.Errorf("bar widths %d and %d", p.Bars[0].Width, p.Bars[1].Width)
	}
}
