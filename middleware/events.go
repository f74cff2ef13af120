package middleware

import (
	"log/slog"
	"net/http"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/obs"
)

// refuseCrossOrigin makes co emit request.cross_origin_refused for each
// request it refuses, and answer as it does by default (403, the reason
// as text). The check runs again only for a refused request, so allowed
// requests pay nothing for the event.
func refuseCrossOrigin(co *http.CrossOriginProtection, ev *obs.Emitter) {
	if ev == nil {
		return
	}
	co.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ev.Emit(r.Context(), dynaguard.Event{Name: dynaguard.EventCrossOriginRefused})
		msg := "cross-origin request refused"
		if err := co.Check(r); err != nil {
			msg = err.Error()
		}
		http.Error(w, msg, http.StatusForbidden)
	}))
}

// withLogger returns ev with log as its Logger when ev names none, so
// that the stack's own events go where the stack logs.
func withLogger(ev *dynaguard.Events, log *slog.Logger) *dynaguard.Events {
	if ev != nil && ev.Logger != nil {
		return ev
	}
	var c dynaguard.Events
	if ev != nil {
		c = *ev
	}
	c.Logger = log
	return &c
}
