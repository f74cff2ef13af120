// Package obs is where dynaguard's components send their security events
// and DynamoDB telemetry: an Emitter per component, built once from the
// application's dynaguard.Events, and a wrapper of the component's DynamoDB
// client that times and traces each call.
//
// The hot path is allocation-free when nothing listens: an event is passed
// by value, the slog handler is asked Enabled before any attribute is
// built, the counter's attribute sets are built once per component, and a
// DynamoDB call starts a span only inside a trace.
package obs

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/authctx"
)

// Scope is the instrumentation scope of dynaguard's meters and tracers.
const Scope = "github.com/dynaguard/dynaguard"

// Metric names.
const (
	MetricEvents   = "dynaguard.security.events"
	MetricDuration = "dynaguard.dynamodb.duration"
)

// Emitter sends one component's events. A nil *Emitter drops them.
type Emitter struct {
	component string
	log       *slog.Logger
	hook      func(context.Context, dynaguard.Event)
	clock     dynaguard.Clock
	counter   metric.Int64Counter
	opts      [][]metric.AddOption // by EventName: name, outcome, component
	meter     metric.Meter
	tracer    trace.Tracer
}

// New returns the Emitter of component for cfg (nil: the defaults). clock
// stamps the events (nil: the system clock); logger is the component's own
// Config.Logger, where events go when cfg names no Logger (nil:
// slog.Default()).
func New(cfg *dynaguard.Events, component string, clock dynaguard.Clock, logger *slog.Logger) *Emitter {
	var c dynaguard.Events
	if cfg != nil {
		c = *cfg
	}
	if c.Off {
		return nil
	}
	e := &Emitter{component: component, log: c.Logger, hook: c.Hook, clock: dynaguard.ClockOrSystem(clock)}
	if e.log == nil {
		e.log = logger
	}
	if e.log == nil {
		e.log = slog.Default()
	}
	mp, tp := c.MeterProvider, c.TracerProvider
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	e.meter = mp.Meter(Scope)
	e.tracer = tp.Tracer(Scope)
	// An instrument that cannot be made (a conflicting registration)
	// is still a usable no-op: the API returns one with the error.
	e.counter, _ = e.meter.Int64Counter(MetricEvents,
		metric.WithDescription("Security decisions taken by dynaguard, by event name and outcome."),
		metric.WithUnit("{event}"))
	names := dynaguard.EventNames()
	e.opts = make([][]metric.AddOption, len(names)+1)
	for _, n := range names {
		e.opts[n] = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(
			attribute.String("event.name", n.String()),
			attribute.String("event.outcome", n.Outcome().String()),
			attribute.String("dynaguard.component", component),
		))}
	}
	return e
}

// Emit sends ev: counted, logged when the logger is enabled at its level,
// and handed to the hook. Name is required; Outcome and Component are
// filled in, and Time, ClientAddr and RequestID when empty.
func (e *Emitter) Emit(ctx context.Context, ev dynaguard.Event) {
	if e == nil || ev.Name == 0 || int(ev.Name) >= len(e.opts) {
		return
	}
	e.counter.Add(ctx, 1, e.opts[ev.Name]...)
	level := levelOf(ev)
	logOn := e.log.Enabled(ctx, level)
	if !logOn && e.hook == nil {
		return
	}
	ev.Outcome = ev.Name.Outcome()
	if ev.Component == "" {
		ev.Component = e.component
	}
	if ev.Time.IsZero() {
		ev.Time = e.clock.Now()
	}
	if ev.ClientAddr == "" {
		if a := authctx.ClientIP(ctx); a.IsValid() {
			ev.ClientAddr = a.String()
		}
	}
	if ev.RequestID == "" {
		if sc := trace.SpanContextFromContext(ctx); sc.HasTraceID() {
			ev.RequestID = sc.TraceID().String()
		}
	}
	if logOn {
		e.log.LogAttrs(ctx, level, "security event",
			slog.String("event", ev.Name.String()),
			slog.String("outcome", ev.Outcome.String()),
			slog.String("reason", ev.Reason),
			slog.String("component", ev.Component),
			slog.String("user", ev.UserID),
			slog.String("client", ev.ClientAddr),
			slog.String("request", ev.RequestID),
		)
	}
	if e.hook != nil {
		e.hook(ctx, ev)
	}
}

// levelOf is the level ev is logged at: its event's, except for a refusal
// that anyone can cause at will, in any number, without holding anything —
// a garbled bearer token on every anonymous request. Those are logged at
// Debug, as request.shed is, so that a flood of them adds no log I/O; they
// are still counted and handed to the hook, where an alert belongs.
func levelOf(ev dynaguard.Event) slog.Level {
	if ev.Name == dynaguard.EventBearerRefused && ev.Reason == "malformed" {
		return slog.LevelDebug
	}
	return ev.Name.Level()
}

// since is the time elapsed since t, in seconds.
func since(t time.Time) float64 { return time.Since(t).Seconds() }

// StorageFailure emits storage.failure for err, a DynamoDB error that made
// the component fail closed, with a reason that names its kind, never its
// text.
func (e *Emitter) StorageFailure(ctx context.Context, userID string, err error) {
	if e == nil {
		return
	}
	e.Emit(ctx, dynaguard.Event{Name: dynaguard.EventStorageFailure, Reason: StorageReason(err), UserID: userID})
}

// StorageReason names the kind of a storage error: "unavailable",
// "throttled", "timeout", "canceled", "too_large" or "error".
func StorageReason(err error) string {
	switch {
	case errors.Is(err, dynaguard.ErrUnavailable):
		return "unavailable" // the fail-fast client's breaker is open
	case errors.Is(err, dynaguard.ErrThrottled):
		return "throttled"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, dynaguard.ErrItemTooLarge):
		return "too_large"
	}
	return "error"
}
