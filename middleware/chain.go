package middleware

import "net/http"

// Middleware is the shape of every piece in this package: it wraps a
// handler, so it composes with net/http's ServeMux and any router that takes
// http.Handler (chi, gorilla/mux, ...).
type Middleware = func(http.Handler) http.Handler

// Chain composes middleware so that the first one is the outermost: a
// request passes through them in the order given, then reaches the handler.
// Nil entries are skipped, so optional pieces can be left out in place.
func Chain(mws ...Middleware) Middleware {
	return func(h http.Handler) http.Handler {
		for i := len(mws) - 1; i >= 0; i-- {
			if mws[i] != nil {
				h = mws[i](h)
			}
		}
		return h
	}
}
