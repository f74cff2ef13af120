package middleware

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
)

// Beyond MaxInFlight, requests are refused at once with 503 + Retry-After;
// a freed slot serves again.
func TestBoundShedsBeyondMaxInFlight(t *testing.T) {
	release := make(chan struct{})
	var started sync.WaitGroup
	h := Bound(BoundConfig{MaxInFlight: 2})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started.Done()
		<-release
	}))
	var done sync.WaitGroup
	for range 2 {
		started.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
		}()
	}
	started.Wait()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" ||
		!strings.HasPrefix(w.Header().Get("Content-Type"), "application/problem+json") || !strings.Contains(w.Body.String(), "overloaded") {
		t.Fatalf("third request: %d %v %s", w.Code, w.Header(), w.Body)
	}
	close(release)
	done.Wait()
	started.Add(1)
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
	if w.Code != http.StatusOK {
		t.Fatalf("after the slots freed: %d", w.Code)
	}
}

// The request's context carries the budget's deadline.
func TestBoundSetsTheBudget(t *testing.T) {
	for _, tc := range []struct {
		budget, want time.Duration
	}{{0, DefaultBudget}, {500 * time.Millisecond, 500 * time.Millisecond}} {
		var got time.Duration
		h := Bound(BoundConfig{Budget: tc.budget})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			dl, ok := r.Context().Deadline()
			if !ok {
				t.Fatal("no deadline")
			}
			got = time.Until(dl)
		}))
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
		if got > tc.want || got < tc.want-time.Second/2 {
			t.Errorf("budget %v: deadline in %v, want about %v", tc.budget, got, tc.want)
		}
	}
}

// A handler is not started once the budget is spent: 503 storage-timeout,
// and nothing at all for a client that left.
func TestBudgetGate(t *testing.T) {
	ran := false
	h := budgetGate(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { ran = true }))
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/", nil).WithContext(ctx))
	if ran || w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" || !strings.Contains(w.Body.String(), "storage-timeout") {
		t.Fatalf("spent budget: ran=%v %d %s", ran, w.Code, w.Body)
	}
	gone, cancelGone := context.WithCancel(context.Background())
	cancelGone()
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/", nil).WithContext(gone))
	if ran {
		t.Fatal("handler ran for a client that left")
	}
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/", nil))
	if !ran {
		t.Fatal("handler did not run within the budget")
	}
}

// A session manager with scs's default ErrorFunc (500) answers a store
// failure 503 + Retry-After inside the stack; an application's own
// ErrorFunc is kept.
func TestAdoptSessionErrors(t *testing.T) {
	sm := scs.New()
	adoptSessionErrors(sm, slog.New(slog.DiscardHandler))
	w := httptest.NewRecorder()
	sm.ErrorFunc(w, httptest.NewRequest(http.MethodGet, "/", nil), errors.New("boom"))
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" || strings.Contains(w.Body.String(), "boom") {
		t.Fatalf("default ErrorFunc: %d %v %s", w.Code, w.Header(), w.Body)
	}
	own := scs.New()
	called := false
	own.ErrorFunc = func(http.ResponseWriter, *http.Request, error) { called = true }
	adoptSessionErrors(own, slog.New(slog.DiscardHandler))
	own.ErrorFunc(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil), errors.New("x"))
	if !called {
		t.Fatal("the application's ErrorFunc was replaced")
	}
}
