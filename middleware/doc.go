// Package middleware composes dynaguard into one chain that wraps any
// handler or router.
//
// The pieces are plain func(http.Handler) http.Handler values:
//
//   - Recover: a panic becomes a 500 problem response and a log line; the
//     client never sees a stack trace.
//   - SecurityHeaders: nosniff, Referrer-Policy, CSP frame-ancestors
//     (clickjacking of login forms), optional HSTS — sent when the client's
//     connection is HTTPS, by its own TLS or by a trusted proxy's
//     X-Forwarded-Proto / Forwarded proto= (put RealIP first).
//   - RealIP / ClientIP: the client's address for throttling, and its
//     scheme for HSTS. Forwarding headers are believed only from proxies the
//     app names, so an attacker cannot pick a fresh address per request to
//     dodge per-IP limits.
//   - Bound: at most MaxInFlight requests at once (503 + Retry-After at
//     once beyond), and a deadline of Budget (3 s) for each request's
//     DynamoDB work, so a DynamoDB that stalls costs bounded goroutines,
//     sockets and waiting, and every request is answered.
//
// Chain puts them in order, outermost first.
//
// # The ready-made stack
//
// Stack (see New and Stack.Handler) is the documented order of the whole
// suite: Recover → RealIP → SecurityHeaders → TRACE and CONNECT refused →
// Bound → http.CrossOriginProtection → scs LoadAndSave (sessionstore) →
// users.LoadUser → a single-use nonce on every unsafe request outside the
// API prefix (purpose = the escaped request path), or an Idempotency-Key on
// API routes → the application's router. The branch is chosen on the escaped
// path; a path whose escapes move it into or out of the API prefix
// ("/api%2Fx") is refused with 400, so no router can be steered past the
// nonce. It is tested around net/http's ServeMux, go-chi/chi and
// gorilla/mux.
//
// Routes that authenticate their requests another way (a webhook's
// signature, an OAuth callback's state) are exempted by Config.Exempt or
// Config.ExemptFunc; components can be left out where that is safe, and New
// refuses the combinations that would leave unsafe requests unguarded (see
// Config).
//
// Every refusal, from any package, is answered the same way: an RFC 9457
// problem+json document for API clients and a readable HTML page for
// browsers, chosen by content negotiation, never with internal details.
package middleware
