package idempotency

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/dynaguard/dynaguard"
)

// New refuses a Guard that nothing could attribute requests to, and says
// what to use instead.
func TestNewRequiresScope(t *testing.T) {
	tbl := dynaguard.NewTable(stubAPI{}, "t")
	_, err := New(Config{Table: tbl, Keyring: testKeys})
	if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "UserOrSession") {
		t.Fatalf("no Scope: %v", err)
	}
	if _, err := New(Config{Table: tbl, Keyring: testKeys, Scope: UserOrSession}); err != nil {
		t.Fatal(err)
	}
}

func TestAPIKeyHeader(t *testing.T) {
	scope := APIKeyHeader("x-api-key")
	a, _ := scope(req("X-Api-Key", "secret-a"))
	for _, tc := range []struct {
		name  string
		vals  []string
		ok    bool
		sameA bool
	}{
		{"same key", []string{"secret-a"}, true, true},
		{"other key", []string{"secret-b"}, true, false},
		{"missing", nil, false, false},
		{"empty", []string{""}, false, false},
		{"two values", []string{"secret-a", "secret-b"}, false, false},
		{"oversized", []string{strings.Repeat("k", MaxAPIKeyLen+1)}, false, false},
	} {
		r := req("X-API-Key", tc.vals...)
		s, ok := scope(r)
		if ok != tc.ok || (s == a) != tc.sameA {
			t.Errorf("%s: scope %q ok=%v", tc.name, s, ok)
		}
		if strings.Contains(s, "secret") {
			t.Errorf("%s: the raw key is in the scope %q", tc.name, s)
		}
	}
	if s, ok := UserOrSession(req("X-API-Key", "secret-a")); ok || s != "" {
		t.Fatal("UserOrSession attributed a request by itself")
	}
}

func req(header string, vals ...string) *http.Request {
	r := httptest.NewRequest("POST", "/", nil)
	for _, v := range vals {
		r.Header.Add(header, v)
	}
	return r
}
