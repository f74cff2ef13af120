package authctx

import (
	"context"
	"net/netip"
)

// Client is what middleware.RealIP resolved about the request's client:
// its address, and whether its own connection is HTTPS (the connection's
// TLS, or a trusted proxy's word).
type Client struct {
	IP    netip.Addr
	HTTPS bool
}

type clientKey struct{}

// WithClient records c for middleware.ClientIP and for the security events
// of every component.
func WithClient(ctx context.Context, c Client) context.Context {
	return context.WithValue(ctx, clientKey{}, c)
}

// ClientOf returns the Client WithClient recorded, and whether there is
// one.
func ClientOf(ctx context.Context) (Client, bool) {
	c, ok := ctx.Value(clientKey{}).(Client)
	return c, ok
}

// ClientIP returns the address WithClient recorded (the zero Addr when
// none is).
func ClientIP(ctx context.Context) netip.Addr {
	c, _ := ctx.Value(clientKey{}).(Client)
	return c.IP
}
