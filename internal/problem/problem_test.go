package problem

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestWantsHTML(t *testing.T) {
	cases := []struct {
		accept, mode string
		want         bool
	}{
		{"", "", false},
		{"*/*", "", false},
		{"application/json", "", false},
		{"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "", true},
		{"application/problem+json, text/html;q=0.5", "", false},
		{"text/html;q=0.9, application/json;q=0.1", "", true},
		{"text/html;q=0", "", false},
		{"", "navigate", true},
		{"a/b/c;;", "", false},
	}
	for _, c := range cases {
		r := httptest.NewRequest("POST", "/", nil)
		if c.accept != "" {
			r.Header.Set("Accept", c.accept)
		}
		if c.mode != "" {
			r.Header.Set("Sec-Fetch-Mode", c.mode)
		}
		if got := WantsHTML(r); got != c.want {
			t.Errorf("Accept %q mode %q: got %v, want %v", c.accept, c.mode, got, c.want)
		}
	}
}

func TestWriteJSON(t *testing.T) {
	w := httptest.NewRecorder()
	r := httptest.NewRequest("POST", "/", nil)
	w.Header().Set("Retry-After", "3")
	Write(w, r, Problem{Reason: "nonce-used", Status: 409, Title: "Already submitted", Detail: "d", Extra: map[string]any{"retry_after": 3}})
	if w.Code != 409 || w.Header().Get("Content-Type") != "application/problem+json" || w.Header().Get("Retry-After") != "3" {
		t.Fatalf("code %d headers %v", w.Code, w.Header())
	}
	var m map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	if m["type"] != TypeBase+"nonce-used" || m["status"] != float64(409) || m["title"] != "Already submitted" || m["reason"] != "nonce-used" || m["retry_after"] != float64(3) {
		t.Fatalf("body %v", m)
	}
}

func TestWriteHTMLEscapes(t *testing.T) {
	w := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Accept", "text/html")
	Write(w, r, Problem{Status: http.StatusForbidden, Detail: "<script>x</script>"})
	body := w.Body.String()
	if w.Code != 403 || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("code %d ct %q", w.Code, w.Header().Get("Content-Type"))
	}
	if strings.Contains(body, "<script>x") || !strings.Contains(body, "Forbidden") {
		t.Fatalf("body not escaped or titled: %s", body)
	}
}
