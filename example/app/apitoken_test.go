package app

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

// Input → outcome: the bodies of refresh and revoke.
func TestDecodeRefreshRequest(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		body   io.Reader
		status int // 0: accepted
		reason string
	}{
		{"token", strings.NewReader(`{"refresh_token": "dgr_x"}`), 0, ""},
		{"empty token", strings.NewReader(`{"refresh_token": ""}`), 0, ""},
		{"no token", strings.NewReader(`{}`), 400, "token-request-invalid"},
		{"other member", strings.NewReader(`{"login": "a"}`), 400, "token-request-invalid"},
		{"not an object", strings.NewReader(`[]`), 400, "token-request-invalid"},
		{"too large", strings.NewReader(`{"refresh_token": "` + strings.Repeat("a", maxTokenBody) + `"}`), 413, "body-too-large"},
		{"unreadable", io.MultiReader(strings.NewReader(`{"refresh_`), failingReader{}), 400, "body-unreadable"},
	} {
		r := httptest.NewRequest(http.MethodPost, "/api/token/refresh", tc.body)
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Accept", "application/json")
		w := httptest.NewRecorder()
		_, ok := decodeRefreshRequest(w, r)
		switch {
		case tc.status == 0 && !ok:
			t.Errorf("%s: refused: %d %s", tc.name, w.Code, w.Body)
		case tc.status != 0 && (ok || w.Code != tc.status || !strings.Contains(w.Body.String(), tc.reason)):
			t.Errorf("%s: %v %d %s, want %d %s", tc.name, ok, w.Code, w.Body, tc.status, tc.reason)
		}
	}
}
