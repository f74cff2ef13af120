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
			ip := peer(r)
			if ip.IsValid() && trusted(ip) {
				ip = fromForwarded(r.Header.Values(header), ip, trusted)
			}
			next.ServeHTTP(w, r.WithContext(authctx.WithClientIP(r.Context(), ip)))
		})
	}
}

// ClientIP returns the client's address: the one RealIP resolved, or the
// connection's peer address when RealIP is not in the chain. It is the
// zero Addr when neither is known.
func ClientIP(r *http.Request) netip.Addr {
	if ip, ok := authctx.HasClientIP(r.Context()); ok {
		return ip
	}
	return peer(r)
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
