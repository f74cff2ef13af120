package dynaguard_test

import (
	"net/http"
	"strings"
	"testing"
)

// Outside development mode the example sends HSTS on its HTTPS responses;
// in development mode (plain HTTP) it does not.
func TestIntegrationHSTSOutsideDev(t *testing.T) {
	t.Parallel()
	for _, dev := range []bool{false, true} {
		c := newCluster(t, clusterOpts{dev: dev})
		r := c.browser().get(c.a, "/login")
		if got := r.Header.Get("Strict-Transport-Security") != ""; got == dev {
			t.Errorf("dev=%v: HSTS sent %v", dev, got)
		}
	}
}

// An encoded "/" that moves a path into the API prefix, and TRACE, are
// refused before any route or control runs; an API replay is never cached.
func TestIntegrationPathAndMethodTricks(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{})
	u := c.browser()
	u.register(c.a, newAccount())
	req, _ := http.NewRequest(http.MethodPost, c.a.URL+"/api%2Ftransfers", strings.NewReader(`{"to":"bob","amount":1}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", `"k-slash"`)
	if r := u.do(req); r.StatusCode != http.StatusBadRequest {
		t.Fatalf("POST /api%%2Ftransfers: %d %s", r.StatusCode, r.body)
	}
	req, _ = http.NewRequest(http.MethodTrace, c.a.URL+"/account", nil)
	if r := u.do(req); r.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("TRACE: %d", r.StatusCode)
	}
	expect(t, u.api(c.a, http.MethodPost, "k-replay", `{"to":"bob","amount":100}`), http.StatusCreated, "API transfer")
	r := u.api(c.a, http.MethodPost, "k-replay", `{"to":"bob","amount":100}`)
	if r.Header.Get("Idempotent-Replayed") != "true" || r.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("replay headers: %v", r.Header)
	}
}
