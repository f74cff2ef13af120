package middleware

import (
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/dynaguard/dynaguard/internal/authctx"
)

// ClientIPConfig configures RealIP.
type ClientIPConfig struct {
	// TrustedProxies are the networks of the reverse proxies and load
	// balancers in front of the app. Empty (the default) trusts none: the
	// client is the connection's address and forwarding headers are
	// ignored, because any client can send them.
	TrustedProxies []netip.Prefix
	// Header is the forwarding header the trusted proxies append to;
	// default "X-Forwarded-For".
	Header string
}

// RealIP resolves the client's address once per request and stores it for
// ClientIP. The address is the connection's peer unless that peer is a
// trusted proxy; then the forwarding header is read from the right,
// skipping trusted proxies, and the first address not in TrustedProxies is
// the client. Entries a client put further left are never believed.
//
// It also resolves the client's scheme, for SecurityHeaders' HSTS: HTTPS
// when the connection itself is TLS, or when the peer is a trusted proxy
// whose X-Forwarded-Proto (or, without it, the last Forwarded element's
// proto=) says "https". Your proxies must set or overwrite that header (ALB,
// CloudFront and the usual nginx configuration do); from any other peer it
// is ignored.
func RealIP(cfg ClientIPConfig) Middleware {
	header := cfg.Header
	if header == "" {
		header = "X-Forwarded-For"
	}
	trusted := func(a netip.Addr) bool {
		for _, p := range cfg.TrustedProxies {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c := authctx.Client{IP: peer(r), HTTPS: r.TLS != nil}
			if c.IP.IsValid() && trusted(c.IP) {
				c.HTTPS = c.HTTPS || forwardedHTTPS(r.Header)
				c.IP = fromForwarded(r.Header.Values(header), c.IP, trusted)
			}
			next.ServeHTTP(w, r.WithContext(authctx.WithClient(r.Context(), c)))
		})
	}
}

// ClientIP returns the client's address: the one RealIP resolved, or the
// connection's peer address when RealIP is not in the chain. It is the
// zero Addr when neither is known.
func ClientIP(r *http.Request) netip.Addr {
	if c, ok := authctx.ClientOf(r.Context()); ok {
		return c.IP
	}
	return peer(r)
}

// clientHTTPS reports whether the client's connection is HTTPS: the
// request's own TLS, or what RealIP resolved from a trusted proxy.
func clientHTTPS(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	c, ok := authctx.ClientOf(r.Context())
	return ok && c.HTTPS
}

// forwardedHTTPS reads the scheme a trusted proxy reports: the last
// X-Forwarded-Proto value (the nearest proxy's), or else the proto of the
// last Forwarded element.
func forwardedHTTPS(h http.Header) bool {
	if vs := h.Values("X-Forwarded-Proto"); len(vs) > 0 {
		last := vs[len(vs)-1]
		if i := strings.LastIndexByte(last, ','); i >= 0 {
			last = last[i+1:]
		}
		return strings.EqualFold(strings.TrimSpace(last), "https")
	}
	vs := h.Values("Forwarded")
	if len(vs) == 0 {
		return false
	}
	elems := strings.Split(vs[len(vs)-1], ",")
	for _, pair := range strings.Split(elems[len(elems)-1], ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if ok && strings.EqualFold(k, "proto") {
			return strings.EqualFold(strings.Trim(v, `"`), "https")
		}
	}
	return false
}

func peer(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

func fromForwarded(values []string, proxy netip.Addr, trusted func(netip.Addr) bool) netip.Addr {
	var hops []string
	for _, v := range values {
		hops = append(hops, strings.Split(v, ",")...)
	}
	client := proxy
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			// Garbage left of a trusted hop: the last good address stands.
			return client
		}
		client = a.Unmap()
		if !trusted(client) {
			return client
		}
	}
	return client
}
