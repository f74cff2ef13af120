package nonce_test

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/alexedwards/scs/v2"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/ddbtest"
	"github.com/dynaguard/dynaguard/nonce"
)

// scsApp is an application on plain scs (no users package) with nonces
// bound to its sessions through SCSSession.
func scsApp(t *testing.T, session func(*scs.SessionManager) func(*http.Request) string, logs io.Writer) (*httptest.Server, *http.Client) {
	t.Helper()
	keys, err := dynaguard.NewKeyring(bytes.Repeat([]byte{3}, 32))
	if err != nil {
		t.Fatal(err)
	}
	sm := scs.New() // scs's own memory store: only the nonces are under test
	cfg := nonce.Config{Table: ddbtest.NewTable(t), Keys: keys, InsecureCookie: true,
		Logger: slog.New(slog.NewTextHandler(logs, nil))}
	if session != nil {
		cfg.Session = session(sm)
	}
	nonces, err := nonce.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		_ = sm.RenewToken(r.Context())
		sm.Put(r.Context(), "user", r.FormValue("user"))
	})
	mux.HandleFunc("GET /form", func(w http.ResponseWriter, r *http.Request) {
		tok, _ := nonce.Token(r, "/transfer")
		io.WriteString(w, tok)
	})
	mux.Handle("POST /transfer", nonces.Require("/transfer")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "sent by "+sm.GetString(r.Context(), "user"))
	})))
	srv := httptest.NewServer(sm.LoadAndSave(nonces.Handler(mux)))
	t.Cleanup(srv.Close)
	jar, _ := cookiejar.New(nil)
	return srv, &http.Client{Jar: jar}
}

func call(t *testing.T, c *http.Client, method, u string, form url.Values) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// With SCSSession, a token taken in one session is refused after a login
// as someone else in the same browser; with the default and no users
// package, it would be accepted (browser-bound only) — and a warning says so.
func TestSCSSessionBindsTokens(t *testing.T) {
	for _, tc := range []struct {
		name      string
		session   func(*scs.SessionManager) func(*http.Request) string
		afterSwap int
		warned    bool
	}{
		{"SCSSession", nonce.SCSSession, http.StatusForbidden, false},
		{"default without users", nil, http.StatusOK, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			srv, c := scsApp(t, tc.session, &logs)
			call(t, c, "POST", srv.URL+"/login", url.Values{"user": {"ann"}})
			resp, tok := call(t, c, "GET", srv.URL+"/form", nil)
			if n := len(resp.Header.Values("Vary")); n != 1 {
				t.Errorf("Vary sent %d times: %q", n, resp.Header.Values("Vary"))
			}
			// Same session: accepted once.
			if resp, body := call(t, c, "POST", srv.URL+"/transfer", url.Values{"nonce": {tok}}); resp.StatusCode != 200 || body != "sent by ann" {
				t.Fatalf("same session: %d %s", resp.StatusCode, body)
			}
			// A token of ann's session, used after mallory logs in here.
			_, tok = call(t, c, "GET", srv.URL+"/form", nil)
			call(t, c, "POST", srv.URL+"/login", url.Values{"user": {"mallory"}})
			if resp, body := call(t, c, "POST", srv.URL+"/transfer", url.Values{"nonce": {tok}}); resp.StatusCode != tc.afterSwap {
				t.Fatalf("token of the previous session: %d %s, want %d", resp.StatusCode, body, tc.afterSwap)
			}
			if got := strings.Count(logs.String(), "no session source"); got != map[bool]int{true: 1, false: 0}[tc.warned] {
				t.Fatalf("warnings: %d\n%s", got, logs.String())
			}
		})
	}
}

// Misuse outside LoadAndSave is a programming error, reported as such.
func TestSCSSessionOutsideLoadAndSave(t *testing.T) {
	f := nonce.SCSSession(scs.New())
	defer func() {
		if v := recover(); v == nil || !strings.Contains(v.(string), "LoadAndSave") {
			t.Fatalf("recovered %v", v)
		}
	}()
	f(httptest.NewRequest("GET", "/", nil))
}
