package app

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"regexp"

	"github.com/dynaguard/dynaguard/internal/problem"
)

// contentSecurityPolicy is the app's CSP: scripts and styles only from the
// app's own origin (no inline script anywhere, so an injected <script> does
// not run), forms post only to the app, no framing (the stack adds
// frame-ancestors 'none').
//
// The one exception is the shared error page of dynaguard's packages
// (internal/problem), which carries its own small <style> block so that it
// looks right in any application. Rather than allow every inline style, the
// policy allows exactly that block, by its SHA-256 hash, computed here from
// the page itself so that it can never drift.
func contentSecurityPolicy() (string, error) {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("Accept", "text/html")
	problem.Write(rec, req, problem.Problem{Status: http.StatusNotFound})
	m := regexp.MustCompile(`(?s)<style>(.*?)</style>`).FindStringSubmatch(rec.Body.String())
	styleSrc := "'self'"
	if m != nil {
		sum := sha256.Sum256([]byte(m[1]))
		styleSrc += " 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	} else if rec.Body.Len() == 0 {
		return "", errors.New("app: the error page renders nothing")
	}
	return "default-src 'none'; script-src 'self'; style-src " + styleSrc +
		"; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'", nil
}
