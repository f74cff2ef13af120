package middleware_test

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/dynaguard/dynaguard/middleware"
	"github.com/dynaguard/dynaguard/users"
)

// Bearer access tokens through the stack: accepted on API routes (no
// session, no nonce, the Idempotency-Key rules kept), refused on pages,
// left alone on exempt routes (no check, no read: the route checks what it
// needs), and a request to any other route that also carries the
// session cookie is refused.
func TestStackBearer(t *testing.T) {
	t.Parallel()
	a := newApp(t, func(c *middleware.Config) { c.Exempt = []string{"/hooks/"} })
	if _, err := a.users.Create(t.Context(), users.NewUser{Email: "bearer@example.com", Username: "bearer", Password: "purple monkey dishwasher"}); err != nil {
		t.Fatal(err)
	}
	p, err := a.users.IssueAPITokens(t.Context(), users.APILogin{Login: "bearer", Password: "purple monkey dishwasher",
		Client: users.Client{IP: netip.MustParseAddr("192.0.2.1")}})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/items", a.items)
	mux.HandleFunc("GET /me", a.me)
	mux.HandleFunc("POST /hooks/x", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusAccepted) })
	h := a.stack.Handler(mux)
	bearer := "Bearer " + p.AccessToken
	for _, tc := range []struct {
		name, method, path string
		hdr                map[string]string
		want               int
		reason             string
	}{
		{"API POST with a key", "POST", "/api/items", map[string]string{"Authorization": bearer, "Idempotency-Key": `"k1"`}, 201, ""},
		{"API POST without a key", "POST", "/api/items", map[string]string{"Authorization": bearer}, 400, "idempotency-key-missing"},
		{"API POST with a forged token", "POST", "/api/items", map[string]string{"Authorization": "Bearer dga_AAAA", "Idempotency-Key": `"k2"`}, 401, "invalid-token"},
		{"API POST with a foreign bearer token", "POST", "/api/items", map[string]string{"Authorization": "Bearer xyz", "Idempotency-Key": `"k3"`}, 401, "invalid-token"},
		{"a foreign bearer token and the session cookie", "POST", "/api/items", map[string]string{"Authorization": "Bearer xyz", "Idempotency-Key": `"k5"`, "Cookie": a.sm.Cookie.Name + "=abc"}, 400, "ambiguous-identity"},
		{"API POST with the session cookie too", "POST", "/api/items", map[string]string{"Authorization": bearer, "Idempotency-Key": `"k4"`, "Cookie": a.sm.Cookie.Name + "=abc"}, 400, "ambiguous-identity"},
		{"a page", "GET", "/me", map[string]string{"Authorization": bearer}, 400, "bearer-not-accepted"},
		{"an exempt route with its own bearer scheme", "POST", "/hooks/x", map[string]string{"Authorization": "Bearer webhook-secret"}, 202, ""},
		{"an exempt route with a garbled access token", "POST", "/hooks/x", map[string]string{"Authorization": "Bearer dga_AAAA"}, 202, ""},
		{"an exempt route with a valid access token", "POST", "/hooks/x", map[string]string{"Authorization": bearer}, 202, ""},
		{"an exempt route with an access token and the session cookie", "POST", "/hooks/x", map[string]string{"Authorization": bearer, "Cookie": a.sm.Cookie.Name + "=abc"}, 202, ""},
	} {
		r := httptest.NewRequest(tc.method, tc.path, strings.NewReader(`{}`))
		r.Header.Set("Content-Type", "application/json")
		for k, v := range tc.hdr {
			r.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		a.rec.Reset()
		h.ServeHTTP(w, r)
		if w.Code != tc.want || !strings.Contains(w.Body.String(), tc.reason) {
			t.Errorf("%s: %d %s, want %d %s", tc.name, w.Code, w.Body, tc.want, tc.reason)
		}
		if sc := w.Header().Get("Set-Cookie"); sc != "" {
			t.Errorf("%s: Set-Cookie %q: a bearer request must not create a session", tc.name, sc)
		}
		if tc.want == 401 && w.Header().Get("WWW-Authenticate") != `Bearer error="invalid_token"` {
			t.Errorf("%s: WWW-Authenticate %q", tc.name, w.Header().Get("WWW-Authenticate"))
		}
		if strings.HasPrefix(tc.path, "/hooks/") {
			// The header is the route's own business: no bearer check,
			// no account read for it (the unknown cookie reads one session).
			if got := a.rec.Count("GetItem"); got > 0 && tc.hdr["Cookie"] == "" {
				t.Errorf("%s: %d GetItem, want none", tc.name, got)
			}
		}
		if tc.name == "API POST with a key" {
			// The account's read, then the key's claim and completion: no session read or write.
			if got := a.rec.Count("GetItem"); got != 1 {
				t.Errorf("%s: %d GetItem, want 1 (the account)", tc.name, got)
			}
		}
	}
}
