package middleware

import (
	"net/http"
	"strconv"
	"time"
)

// HeadersConfig configures SecurityHeaders. The zero value is safe.
type HeadersConfig struct {
	// FrameAncestors is the CSP frame-ancestors source list; default
	// "'none'" (no framing: stops clickjacking of login and account forms).
	FrameAncestors string
	// ReferrerPolicy; default "same-origin", so one-time tokens in URLs
	// (password reset links) never leak to other sites in Referer.
	ReferrerPolicy string
	// ContentSecurityPolicy, when set, is sent as is and FrameAncestors is
	// appended to it unless it already names frame-ancestors.
	ContentSecurityPolicy string
	// HSTS, when positive, sends Strict-Transport-Security with this
	// max-age on HTTPS requests: those whose connection is TLS, or — when
	// RealIP runs first, as in Stack — whose trusted proxy reports
	// X-Forwarded-Proto: https (or Forwarded: proto=https). Behind a
	// TLS-terminating load balancer, list it in ClientIPConfig's
	// TrustedProxies. Off by default: turn it on once the whole site is
	// served over HTTPS.
	HSTS                  time.Duration
	HSTSIncludeSubdomains bool
}

// SecurityHeaders sets response headers that close common browser-side
// holes: X-Content-Type-Options: nosniff, a Referrer-Policy, CSP
// frame-ancestors (with X-Frame-Options for old browsers), and optional HSTS.
// Headers a handler sets itself win, since these are set first. Put RealIP
// before it when a TLS-terminating proxy stands in front of the app, so that
// HSTS goes out on requests the proxy received over HTTPS.
func SecurityHeaders(cfg HeadersConfig) Middleware {
	fa := cfg.FrameAncestors
	if fa == "" {
		fa = "'none'"
	}
	rp := cfg.ReferrerPolicy
	if rp == "" {
		rp = "same-origin"
	}
	csp := "frame-ancestors " + fa
	if cfg.ContentSecurityPolicy != "" {
		csp = cfg.ContentSecurityPolicy
		if !containsDirective(csp, "frame-ancestors") {
			csp += "; frame-ancestors " + fa
		}
	}
	xfo := ""
	switch fa {
	case "'none'":
		xfo = "DENY"
	case "'self'":
		xfo = "SAMEORIGIN"
	}
	hsts := ""
	if cfg.HSTS > 0 {
		hsts = "max-age=" + strconv.FormatInt(int64(cfg.HSTS/time.Second), 10)
		if cfg.HSTSIncludeSubdomains {
			hsts += "; includeSubDomains"
		}
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// One backing array for every value (Header.Set would allocate
			// a slice per header); each header gets its own full slice
			// expression, so an Add to one of them reallocates rather
			// than writes into its neighbour.
			vals := make([]string, 0, 5)
			set := func(h http.Header, key, v string) {
				vals = append(vals, v)
				n := len(vals)
				h[key] = vals[n-1 : n : n]
			}
			h := w.Header()
			set(h, "X-Content-Type-Options", "nosniff")
			set(h, "Referrer-Policy", rp)
			set(h, "Content-Security-Policy", csp)
			if xfo != "" {
				set(h, "X-Frame-Options", xfo)
			}
			if hsts != "" && clientHTTPS(r) {
				set(h, "Strict-Transport-Security", hsts)
			}
			next.ServeHTTP(w, r)
		})
	}
}

func containsDirective(csp, name string) bool {
	for i := 0; i+len(name) <= len(csp); i++ {
		if csp[i:i+len(name)] == name && (i == 0 || csp[i-1] == ' ' || csp[i-1] == ';') {
			return true
		}
	}
	return false
}
