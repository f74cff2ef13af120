package middleware

import (
	"context"
	"log/slog"
	"net/http"
	"reflect"
	"time"

	"github.com/alexedwards/scs/v2"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/budget"
	"github.com/dynaguard/dynaguard/internal/obs"
	"github.com/dynaguard/dynaguard/internal/problem"
)

// DefaultBudget is the time each request may spend on DynamoDB work when
// BoundConfig.Budget (or Config.Budget) is zero.
const DefaultBudget = budget.Default

// shedRate is the request rate per instance that the default in-flight
// limit is sized for: a request holds its slot at most about one Budget,
// so sustaining shedRate requests/s through a whole stall takes
// shedRate × Budget slots (300 for 3 s).
const shedRate = 100

// BoundConfig configures Bound.
type BoundConfig struct {
	// Budget is the time each request may spend on DynamoDB work, from the
	// moment it enters Bound: the request's context gets this deadline, so
	// the session read, the user read, the nonce or idempotency write and
	// the handler's own calls share it. Past it, the component whose call
	// ran out answers 503 with Retry-After and nothing after it runs.
	// Default DefaultBudget (3 s). Give the server's WriteTimeout a few
	// seconds more, so that the 503 is always written.
	Budget time.Duration
	// MaxInFlight is the number of requests served at once; the next one
	// is answered 503 with Retry-After at once, before any work. Default
	// 100 × Budget in seconds (300 for 3 s), at least 16.
	MaxInFlight int
	// Events receives request.shed for each request answered 503 because
	// MaxInFlight requests were in flight (see dynaguard.Events).
	Events *dynaguard.Events
}

// Bound returns middleware that sheds load beyond cfg.MaxInFlight requests
// in flight and gives every request cfg.Budget for its DynamoDB work. It
// costs no DynamoDB call. While DynamoDB stalls, every request holds its
// slot for at most Budget, so goroutines, sockets and memory stay bounded
// by MaxInFlight instead of growing with the arrival rate; the shed answer
// takes microseconds.
//
// The budget is a deadline on the request's context: a handler that must
// work longer than that on something else detaches with
// context.WithoutCancel and bounds that work itself.
func Bound(cfg BoundConfig) Middleware {
	d := budget.Or(cfg.Budget)
	n := cfg.MaxInFlight
	if n <= 0 {
		n = max(16, int(shedRate*d/time.Second))
	}
	slots := make(chan struct{}, n)
	ev := obs.New(cfg.Events, "middleware", nil, nil)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case slots <- struct{}{}:
			default:
				ev.Emit(r.Context(), dynaguard.Event{Name: dynaguard.EventRequestShed, Reason: "overloaded"})
				w.Header().Set("Retry-After", "1")
				problem.Write(w, r, problem.Problem{Reason: "overloaded", Status: http.StatusServiceUnavailable,
					Title: "Please try again in a moment", Detail: "The server is busy. Nothing was done."})
				return
			}
			defer func() { <-slots }()
			ctx, cancel := context.WithTimeout(r.Context(), d)
			defer cancel()
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
}

// budgetGate refuses to start the protected handler when the request's
// budget ran out during the checks before it: a check that completed just
// in time must not hand a dead context to a handler that would then fail
// halfway through.
func budgetGate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.Context().Err(); err != nil {
			if err == context.DeadlineExceeded {
				writeBudgetExceeded(w, r)
			}
			// Canceled: the client left; nobody reads an answer.
			return
		}
		next.ServeHTTP(w, r)
	})
}

func writeBudgetExceeded(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Retry-After", "1")
	problem.Write(w, r, problem.Problem{Reason: "storage-timeout", Status: http.StatusServiceUnavailable,
		Title: "Please try again in a moment", Detail: "The request could not be completed in time, so nothing was done."})
}

// defaultSessionErrors is scs's own ErrorFunc, which answers 500 in plain
// text; compared by code pointer, as functions cannot be compared.
var defaultSessionErrors = reflect.ValueOf(scs.New().ErrorFunc).Pointer()

// adoptSessionErrors makes a session manager that kept scs's default
// ErrorFunc answer a session store failure (DynamoDB down, or the request's
// budget spent) as every other component does: 503 with Retry-After, as
// problem+json or the HTML page, the error only in the log. An ErrorFunc
// the application set itself is kept.
func adoptSessionErrors(sm *scs.SessionManager, log *slog.Logger) {
	if sm == nil { // a stack without sessions (Config.Sessions left out)
		return
	}
	if sm.ErrorFunc != nil && reflect.ValueOf(sm.ErrorFunc).Pointer() != defaultSessionErrors {
		return
	}
	sm.ErrorFunc = func(w http.ResponseWriter, r *http.Request, err error) {
		log.ErrorContext(r.Context(), "middleware: session storage failed", "err", err)
		w.Header().Set("Retry-After", "1")
		problem.Write(w, r, problem.Problem{Reason: "session-storage-unavailable", Status: http.StatusServiceUnavailable,
			Title: "Please try again in a moment", Detail: "The session could not be read or saved right now. Nothing was done."})
	}
}
