// Package middleware composes dynaguard into one chain that wraps any
// handler or router.
//
// The pieces are plain func(http.Handler) http.Handler values:
//
//   - Recover: a panic becomes a 500 problem response and a log line; the
//     client never sees a stack trace.
//   - SecurityHeaders: nosniff, Referrer-Policy, CSP frame-ancestors
//     (clickjacking of login forms), optional HSTS.
//   - RealIP / ClientIP: the client's address for throttling. Forwarding
//     headers are believed only from proxies the app names, so an attacker
//     cannot pick a fresh address per request to dodge per-IP limits.
//
// Chain puts them in order, outermost first.
package middleware
