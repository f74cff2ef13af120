package middleware_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/dynaguard/dynaguard/middleware"
)

// A path whose decoded form enters the API prefix but whose escaped form does
// not used to take the API branch (no nonce) and then reach a page route that
// matched the escaped segments. It is refused before any branch runs.
func TestStackEncodedSlashInAPIPrefix(t *testing.T) {
	a := newApp(t)
	var deletes int
	mux := http.NewServeMux()
	mux.HandleFunc("POST /{org}/delete", func(w http.ResponseWriter, r *http.Request) { deletes++ })
	mux.HandleFunc("GET /form", a.form)
	srv := httptest.NewTLSServer(a.stack.Handler(mux))
	defer srv.Close()
	c := &client{t: t, base: srv.URL, c: srv.Client()}
	for _, path := range []string{"/api%2Facme/delete", "/api%2facme/delete"} {
		resp, body := c.do("POST", path, strings.NewReader(`{}`), map[string]string{
			"Content-Type": "application/json", "Idempotency-Key": `"k"`, "Accept": "application/json"})
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "path-ambiguous") {
			t.Fatalf("POST %s: %d %s", path, resp.StatusCode, body)
		}
	}
	// The same page route under a plain path still needs its nonce, and the
	// nonce's purpose is the escaped path.
	resp, _ := c.do("POST", "/acme%2Fx/delete", strings.NewReader(""), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("page POST without nonce: %d", resp.StatusCode)
	}
	if deletes != 0 {
		t.Fatalf("the page handler ran %d times", deletes)
	}
}

func TestStackRefusesTraceAndConnect(t *testing.T) {
	a := newApp(t)
	ran := 0
	h := a.stack.Handler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { ran++ }))
	for _, m := range []string{http.MethodTrace, http.MethodConnect} {
		for _, path := range []string{"/submit", "/api/items"} {
			w := httptest.NewRecorder()
			r := httptest.NewRequest(m, path, nil)
			h.ServeHTTP(w, r)
			if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Cache-Control") != "no-store" {
				t.Errorf("%s %s: %d", m, path, w.Code)
			}
		}
	}
	if ran != 0 {
		t.Fatalf("handler ran %d times", ran)
	}
}

// Behind a TLS-terminating proxy the connection is plain HTTP: HSTS goes out
// when a trusted proxy says the client used HTTPS, never on a client's own
// say-so.
func TestStackHSTSBehindProxy(t *testing.T) {
	for _, tc := range []struct {
		name    string
		trusted bool
		hdr     map[string]string
		want    bool
	}{
		{"trusted X-Forwarded-Proto https", true, map[string]string{"X-Forwarded-Proto": "https"}, true},
		{"trusted X-Forwarded-Proto list, nearest https", true, map[string]string{"X-Forwarded-Proto": "http, https"}, true},
		{"trusted X-Forwarded-Proto http", true, map[string]string{"X-Forwarded-Proto": "http"}, false},
		{"trusted Forwarded proto=https", true, map[string]string{"Forwarded": `for=192.0.2.1;proto="https"`}, true},
		{"trusted, no header", true, nil, false},
		{"untrusted X-Forwarded-Proto https", false, map[string]string{"X-Forwarded-Proto": "https"}, false},
		{"untrusted Forwarded proto=https", false, map[string]string{"Forwarded": "proto=https"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newApp(t, func(c *middleware.Config) {
				c.Headers.HSTS = 365 * 24 * time.Hour
				if tc.trusted {
					c.ClientIP.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
				}
			})
			h := a.stack.Handler(http.NotFoundHandler())
			r := httptest.NewRequest("GET", "/x", nil) // RemoteAddr 192.0.2.1
			for k, v := range tc.hdr {
				r.Header.Set(k, v)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if got := w.Header().Get("Strict-Transport-Security") != ""; got != tc.want {
				t.Fatalf("HSTS sent: %v, want %v", got, tc.want)
			}
		})
	}
}

// Every unsafe API request's body is limited, keyed or not (PUT and DELETE
// are not fingerprinted by the idempotency guard).
func TestStackLimitsAPIBodies(t *testing.T) {
	a := newApp(t, func(c *middleware.Config) { c.MaxBodyBytes = 1 << 10 })
	ran := 0
	h := a.stack.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ran++
		_, _ = io.ReadAll(r.Body)
	}))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("PUT", "/api/items/1", strings.NewReader(strings.Repeat("x", 2<<10))))
	if w.Code != http.StatusRequestEntityTooLarge || ran != 0 {
		t.Fatalf("declared oversized PUT: %d, ran %d", w.Code, ran)
	}
}
