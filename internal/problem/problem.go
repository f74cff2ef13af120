// Package problem writes error responses the same way for every dynaguard
// package: RFC 9457 problem+json for API clients and a small readable HTML
// page for browsers, chosen by content negotiation. It never includes a
// stack trace or an internal error message; callers put only what the client
// may know into Title and Detail.
package problem

import (
	"encoding/json"
	"html/template"
	"mime"
	"net/http"
	"strconv"
	"strings"
)

// TypeBase prefixes every problem type: each reason is documented under its
// name in docs/PROBLEMS.md.
const TypeBase = "https://github.com/dynaguard/dynaguard/blob/main/docs/PROBLEMS.md#"

// Problem is an RFC 9457 problem detail.
type Problem struct {
	// Reason is the short machine name of the problem ("nonce-used",
	// "idempotency-key-missing", ...); the type URI is TypeBase+Reason.
	Reason string
	Status int
	Title  string
	Detail string
	// Extra holds extension members (for example "retry_after").
	Extra map[string]any
}

// Type returns the problem's type URI.
func (p Problem) Type() string {
	if p.Reason == "" {
		return "about:blank"
	}
	return TypeBase + p.Reason
}

// MarshalJSON renders the problem+json document.
func (p Problem) MarshalJSON() ([]byte, error) {
	m := make(map[string]any, 5+len(p.Extra))
	for k, v := range p.Extra {
		m[k] = v
	}
	m["type"] = p.Type()
	m["status"] = p.Status
	m["title"] = p.Title
	if p.Detail != "" {
		m["detail"] = p.Detail
	}
	if p.Reason != "" {
		m["reason"] = p.Reason
	}
	return json.Marshal(m)
}

// Write answers r with p: an HTML page when the client is a browser asking
// for a document, problem+json otherwise. Headers set by the caller (for
// example Retry-After) are kept.
func Write(w http.ResponseWriter, r *http.Request, p Problem) {
	if p.Status == 0 {
		p.Status = http.StatusBadRequest
	}
	if p.Title == "" {
		p.Title = http.StatusText(p.Status)
	}
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Del("Content-Length")
	if WantsHTML(r) {
		h.Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(p.Status)
		_ = page.Execute(w, p)
		return
	}
	b, err := json.Marshal(p)
	if err != nil {
		b = []byte(`{"type":"about:blank","status":` + strconv.Itoa(p.Status) + `}`)
	}
	h.Set("Content-Type", "application/problem+json")
	w.WriteHeader(p.Status)
	_, _ = w.Write(append(b, '\n'))
}

// WantsHTML reports whether the client prefers an HTML page to JSON: a
// browser navigation (Sec-Fetch-Mode: navigate, or Sec-Fetch-Dest: document)
// or an Accept header that ranks text/html above every JSON type. A request
// with no Accept header, or one from fetch/XHR, gets JSON.
func WantsHTML(r *http.Request) bool {
	if r.Header.Get("Sec-Fetch-Mode") == "navigate" || r.Header.Get("Sec-Fetch-Dest") == "document" {
		return true
	}
	var htmlQ, jsonQ float64 = -1, -1
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		q := 1.0
		if s, ok := params["q"]; ok {
			if f, err := strconv.ParseFloat(s, 64); err == nil {
				q = f
			}
		}
		switch {
		case mt == "text/html" || mt == "application/xhtml+xml":
			htmlQ = max(htmlQ, q)
		case mt == "application/json" || mt == "application/problem+json" || strings.HasSuffix(mt, "+json"):
			jsonQ = max(jsonQ, q)
		}
	}
	return htmlQ > 0 && htmlQ > jsonQ
}

var page = template.Must(template.New("problem").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
body{font:16px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
main{max-width:34rem;margin:12vh auto;padding:2rem 2.25rem;background:#fff;border-radius:12px;box-shadow:0 1px 3px rgba(0,0,0,.08)}
h1{font-size:1.35rem;margin:0 0 .75rem}
p{margin:.5rem 0}
.code{color:#6b7385;font-size:.85rem}
a{color:#2457c5}
</style>
</head>
<body>
<main>
<h1>{{.Title}}</h1>
{{if .Detail}}<p>{{.Detail}}</p>{{end}}
<p class="code">Error {{.Status}}{{if .Reason}} · {{.Reason}}{{end}}</p>
<p><a href="/">Back to the start page</a></p>
</main>
</body>
</html>
`))
