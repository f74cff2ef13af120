package app

import (
	"context"
	"net/http"
	"sync"

	"github.com/dynaguard/dynaguard"
)

// securityRing is how many recent events the dev Security page keeps.
const securityRing = 200

// securityLog keeps the security events of this instance for the dev
// Security page: the most recent ones in a fixed ring, and a count per
// event name (the catalogue bounds the map). Production applications send
// the same events to their SIEM through dynaguard.Events.Hook, and the
// counters to their metrics system through OpenTelemetry.
type securityLog struct {
	mu     sync.Mutex
	ring   [securityRing]dynaguard.Event
	next   int // where the next event goes
	total  int
	counts map[dynaguard.EventName]int
}

func newSecurityLog() *securityLog {
	return &securityLog{counts: map[dynaguard.EventName]int{}}
}

// record is the Events hook: it never blocks for long and never allocates
// more than the ring holds.
func (s *securityLog) record(_ context.Context, e dynaguard.Event) {
	s.mu.Lock()
	s.ring[s.next] = e
	s.next = (s.next + 1) % securityRing
	s.total++
	s.counts[e.Name]++
	s.mu.Unlock()
}

// recent returns the kept events, newest first.
func (s *securityLog) recent() []dynaguard.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := min(s.total, securityRing)
	out := make([]dynaguard.Event, 0, n)
	for i := 1; i <= n; i++ {
		out = append(out, s.ring[(s.next-i+securityRing)%securityRing])
	}
	return out
}

// eventsConfig is the components' Events: the application's, with the
// Security page's recorder added to its hook in Dev.
func (a *App) eventsConfig() *dynaguard.Events {
	var ev dynaguard.Events
	if a.cfg.Events != nil {
		ev = *a.cfg.Events
	}
	if !a.dev || ev.Off {
		return &ev
	}
	a.security = newSecurityLog()
	next := ev.Hook
	ev.Hook = func(ctx context.Context, e dynaguard.Event) {
		a.security.record(ctx, e)
		if next != nil {
			next(ctx, e)
		}
	}
	return &ev
}

// securityBar is one bar of the chart: an event name and its count.
type securityBar struct {
	Name    string
	Count   int
	Failure bool
	Y       int // top of the bar, in the SVG's units
	Width   int // bar length, in the SVG's units
	TextY   int
}

// securityPage is the data of the Security page.
type securityPage struct {
	Events      []dynaguard.Event
	Bars        []securityBar
	Total       int
	ChartHeight int
}

// Layout of the chart (SVG units): one row per event name seen.
const (
	chartRow   = 22
	chartBarW  = 300
	chartLabel = 230
)

func (s *securityLog) page() securityPage {
	p := securityPage{Events: s.recent()}
	s.mu.Lock()
	p.Total = s.total
	most := 1
	for _, c := range s.counts {
		most = max(most, c)
	}
	for _, n := range dynaguard.EventNames() { // catalogue order
		c := s.counts[n]
		if c == 0 {
			continue
		}
		y := len(p.Bars) * chartRow
		p.Bars = append(p.Bars, securityBar{Name: n.String(), Count: c, Failure: n.Outcome() == dynaguard.OutcomeFailure,
			Y: y + 4, Width: max(2, c*chartBarW/most), TextY: y + 16})
	}
	s.mu.Unlock()
	p.ChartHeight = max(len(p.Bars)*chartRow, chartRow)
	return p
}

// devSecurity shows this instance's recent security events and their
// counts, with a bar chart drawn as SVG on the server (the CSP allows no
// inline script).
func (a *App) devSecurity(w http.ResponseWriter, r *http.Request) {
	v := a.newView(r, "Security events")
	v.Data = a.security.page()
	a.render(w, "security", v)
}

// eventTime formats an event's time for the page.
func eventTime(e dynaguard.Event) string {
	return e.Time.UTC().Format("15:04:05.000")
}
