package middleware

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/obs"
)

type events struct {
	mu  sync.Mutex
	got []dynaguard.Event
}

func (e *events) config() *dynaguard.Events {
	return &dynaguard.Events{Hook: func(_ context.Context, ev dynaguard.Event) {
		e.mu.Lock()
		e.got = append(e.got, ev)
		e.mu.Unlock()
	}}
}

func (e *events) names() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, ev := range e.got {
		out = append(out, ev.Name.String()+"/"+ev.Reason+"/"+ev.ClientAddr)
	}
	return out
}

// The stack's own cross-origin check emits an event for each request it
// refuses, with the client's address, and answers as net/http does.
func TestCrossOriginRefusalEmits(t *testing.T) {
	rec := &events{}
	co := http.NewCrossOriginProtection()
	refuseCrossOrigin(co, obs.New(rec.config(), "middleware", nil, nil))
	h := RealIP(ClientIPConfig{})(co.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})))

	ok := httptest.NewRequest(http.MethodPost, "/transfer", nil)
	ok.Header.Set("Sec-Fetch-Site", "same-origin")
	h.ServeHTTP(httptest.NewRecorder(), ok)
	bad := httptest.NewRequest(http.MethodPost, "/transfer", nil)
	bad.Header.Set("Sec-Fetch-Site", "cross-site")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, bad)
	if w.Code != http.StatusForbidden || w.Body.String() != "cross-origin request detected from Sec-Fetch-Site header\n" {
		t.Fatalf("refusal: %d %q", w.Code, w.Body)
	}
	if got := rec.names(); len(got) != 1 || got[0] != "request.cross_origin_refused//192.0.2.1" {
		t.Fatalf("events %v, want one cross-origin refusal from 192.0.2.1", got)
	}
}

// A shed request emits request.shed.
func TestShedEmits(t *testing.T) {
	rec := &events{}
	release := make(chan struct{})
	started := make(chan struct{})
	h := Bound(BoundConfig{MaxInFlight: 1, Events: rec.config()})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
	}))
	done := make(chan struct{})
	go func() {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
		close(done)
	}()
	<-started
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	close(release)
	<-done
	if got := rec.names(); len(got) != 1 || got[0] != "request.shed/overloaded/" {
		t.Fatalf("events %v, want one request.shed", got)
	}
}
