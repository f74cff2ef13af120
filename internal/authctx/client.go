package authctx

import (
	"context"
	"net/netip"
)

type clientKey struct{}

// WithClientIP records the client's address as middleware.RealIP resolved
// it, for middleware.ClientIP and for the security events of every
// component.
func WithClientIP(ctx context.Context, ip netip.Addr) context.Context {
	return context.WithValue(ctx, clientKey{}, ip)
}

// ClientIP returns the address WithClientIP recorded (the zero Addr when
// none is).
func ClientIP(ctx context.Context) netip.Addr {
	ip, _ := ctx.Value(clientKey{}).(netip.Addr)
	return ip
}

// HasClientIP reports whether WithClientIP recorded an address in ctx.
func HasClientIP(ctx context.Context) (netip.Addr, bool) {
	ip, ok := ctx.Value(clientKey{}).(netip.Addr)
	return ip, ok
}
