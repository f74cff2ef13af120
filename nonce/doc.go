// Package nonce stops form replay and double submission with single-use
// tokens that cost nothing to issue and exactly one conditional DynamoDB
// write to consume.
//
// # The attack
//
// A form submitted twice runs its action twice: a double click on "Pay", a
// Back-button resubmission of a transfer, a retried request after a flaky
// network, or an attacker replaying a captured submission. A reusable CSRF
// token (gorilla/csrf, nosurf) does not help — it is deliberately valid for
// the whole session — and [http.CrossOriginProtection] only stops
// cross-origin requests, not the same browser sending the same form again.
// This package complements both: every rendered form carries its own token,
// and each token is accepted once.
//
// Because a token is also bound to the browser that received it (through an
// HttpOnly cookie a cross-site page can neither read nor set) and to its
// session, it is a CSRF token as well; keep http.CrossOriginProtection in
// front of it anyway, as defence in depth that costs no storage call.
//
// # How it works
//
// Issuing ([Token], [Field]) makes no DynamoDB call. A token is a short
// base64url string (102 to 462 characters): a fixed binary payload followed
// by its HMAC-SHA256 under a key derived from the application's
// [dynaguard.Keyring]. The payload holds:
//
//   - a random 128-bit ID,
//   - the purpose it was issued for (a name of the form, such as "transfer"),
//   - its expiry (Config.TTL, default 4 hours),
//   - a keyed hash of a random per-browser secret, kept in an HttpOnly,
//     Secure, SameSite=Lax, __Host- cookie that [Manager.Handler] sets when
//     it is missing,
//   - when a session exists, a keyed hash of the session's ID.
//
// The browser cookie is a gorilla/securecookie value (AES-256-CTR, then
// HMAC-SHA256). Each Manager verifies and decrypts a browser's cookie once
// and then finds it in a bounded cache of verified values; its expiry is
// still checked on every request.
//
// Consuming ([Manager.Require], [Manager.Consume]) first checks all of that
// in memory — a bad token costs no storage call, and checking allocates
// nothing — and then records the consumption with one conditional PutItem:
//
//	pk  = "nonce#" + base64url(SHA-256("dynaguard/nonce/record\x00" || ID))
//	ttl = the token's expiry + Config.RecordMargin (default 1 h)
//	condition: attribute_not_exists(pk)
//
// DynamoDB applies conditional writes to an item one at a time, so of any
// number of concurrent submissions of one token, on any number of
// instances, exactly one succeeds; the others get [ErrAlreadyUsed]. There is
// no read before the write: a read-then-write (or get-then-delete) lets two
// concurrent submissions both see "unused". If the write fails for any other
// reason — throttling, a DynamoDB error, a timeout — the request is refused
// with [ErrStorage] (503) and the protected handler does not run.
//
// # Clocks and the TTL sweep
//
// Every instance checks a token's expiry with its own clock, and DynamoDB
// may delete the record once its ttl has passed. The record therefore
// outlives the token by Config.RecordMargin (at least Config.MaxClockSkew,
// default 5 minutes): an instance whose clock runs behind still accepts a
// token a little after its expiry, and its record is still there to refuse
// the replay. A token dated further in the future than MaxClockSkew — issued
// by an instance whose clock runs fast, and so able to outlive its record —
// is refused with [ErrNotYetValid]. The margin costs storage only: one small
// item per consumed token for an hour longer.
//
// # Methods and bodies
//
// GET, HEAD and OPTIONS need no token; every other method does, TRACE and
// CONNECT included. The body of every request that needs one is read
// through http.MaxBytesReader (Config.MaxBodyBytes) whether the token comes
// in a form field or in the X-Nonce header, and a body declared larger is
// refused (413) before the token is spent. A multipart form is parsed in
// memory within that limit: nothing is written to temporary files.
//
// # Several tabs and the Back button
//
// Tokens are independent: each rendered form gets its own, any number may be
// outstanding, and using one never invalidates another, so a user can work
// in several tabs. Going Back to a submitted form and sending it again
// yields [ErrAlreadyUsed] ("this form was already submitted", 409) instead
// of a second payment; reloading the page renders a fresh token.
//
// # Sessions and login
//
// A token issued inside a session is accepted only in that session (by
// default the session ID recorded by dynaguard's middleware package in
// internal/authctx; see Config.Session). A token issued without a session is
// bound to the browser only. Because a login renews the session ID (as it
// must, against session fixation), forms rendered before a login — in
// other tabs — are refused after it with [ErrWrongSession]; the login form
// itself is consumed before the renewal, and so is a logout form. The
// same holds after a logout.
//
// # Errors
//
// Every refusal matches one sentinel: [ErrMissing], [ErrMalformed],
// [ErrBadSignature], [ErrExpired], [ErrWrongPurpose], [ErrWrongBrowser],
// [ErrWrongSession], [ErrAlreadyUsed], [ErrStorage], [ErrBodyTooLarge],
// [ErrBadForm]. [DefaultErrorHandler] answers with a readable HTML page for
// browsers and problem+json for API clients (reasons in docs/PROBLEMS.md).
// Config.ErrorHandler can instead re-render the form: the request's form is
// parsed, so r.PostForm holds what the user typed, and [Field] issues a new
// token.
//
// # Key rotation
//
// Tokens and the browser cookie are signed with the current secret of the
// keyring and accepted with any listed one; a cookie read with a previous
// secret is re-set with the current one. Rotate by listing the new secret
// first and keeping the old one for at least Config.TTL.
//
// # What a handler must know
//
// The token is consumed before the protected handler runs. If the handler
// then fails (a validation error, a downstream outage), the token is spent:
// re-render the form with a fresh [Field] rather than asking the user to
// resubmit the same page. After a 503 for a timeout the write may still have
// landed, so the same token may then be reported as already used; the
// ErrorHandler can avoid that too by re-rendering with a fresh token.
//
// For operations that must run exactly once whatever the client does —
// payments called by API clients, webhooks — use the idempotency package,
// which also returns the first result to a retry.
package nonce
