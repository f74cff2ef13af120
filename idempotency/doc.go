// Package idempotency makes non-idempotent requests (POST, PATCH) safe to
// retry: a request that carries an Idempotency-Key runs at most once per
// client and key, across any number of instances sharing one DynamoDB
// table, and every duplicate gets the first response back.
//
// # The attacks it stops
//
//   - Duplicate execution. A client retries after a timeout, a proxy
//     retries after a reset, a user double-clicks, or an attacker replays a
//     captured request: without a guard, each copy charges, transfers or
//     creates again. Here the first copy claims the key with one
//     conditional write; every other copy — on any instance, at the same
//     instant or hours later — gets 409 while it runs and its stored
//     response afterwards.
//   - Key hijacking across clients. Keys are client-chosen, so a shared key
//     space lets one client read another's stored response (by guessing or
//     learning its key) or block its request (by claiming the key first).
//     Records are keyed by a hash of (client scope, key): the signed-in
//     user, else the session, else the application's Config.Scope. A
//     request that cannot be attributed to a client is refused.
//   - Wedged keys after crashes. A worker that dies mid-request must not
//     block its key for the whole retention. A claim holds a lease
//     (Config.Lease, renewed while the handler runs); once it lapses the
//     key is taken over by a retry of the same request. The late worker can
//     then neither overwrite nor delete the new owner's record: completion,
//     renewal and release are all conditional on the claim's owner token.
//   - Payload swaps. A key reused for a different request (method, path,
//     query, content type or body) is refused with 422 rather than
//     answered with another request's response.
//
// # Protocol
//
// It follows the IETF draft "The Idempotency-Key HTTP Header Field":
//
//	Idempotency-Key: "8e03978e-40d5-43e8-bc93-6894a57f9324"
//
// The key is a Structured Field String, or a bare value (see ParseKey).
// Answers, all RFC 9457 problem details (docs/PROBLEMS.md):
//
//	400  key missing on a route that requires one, or malformed
//	403  the request cannot be attributed to a client
//	413  body over Config.MaxBodyBytes (the body is fingerprinted)
//	422  key already used with a different request
//	409  the key's first request is still running, or took effect and its
//	     outcome is not stored yet (Retry-After)
//	503  DynamoDB failed; the request was not executed (Retry-After)
//
// A replay carries the stored status, the allowlisted headers
// (Config.ReplayHeaders — never Set-Cookie or other per-client headers) and
// the body, plus "Idempotent-Replayed: true" and "Cache-Control: no-store"
// (as do all of the guard's own answers). Keys are kept for
// Config.Retention (default 24 h) after completion; publish it to clients.
//
// # Outcomes
//
//   - 2xx, 3xx and 4xx responses are stored and replayed.
//   - 5xx, 408, 425 and 429, and panics, release the key: the request was
//     not processed, and a retry runs it again. Rules.StoreServerErrors, or
//     Final called by the handler once it has taken effect, stores them
//     instead (a panic as a 500 problem); such a request never runs again.
//   - A response body is compressed (gzip) when that makes it smaller. One
//     that still does not fit a DynamoDB item (400 KB) goes out to the first
//     client unharmed, and the key is completed without it: a replay then
//     answers the stored status and headers with a problem body of reason
//     "idempotency-response-not-kept" (and the replay marker), and never
//     runs the handler again. The same answer is given for a sealed
//     response that no longer authenticates (its record was altered in the
//     table).
//   - If DynamoDB fails before the handler runs, the request is refused
//     with 503 and not executed. If storing the outcome fails afterwards,
//     the client still gets its response; the completion is retried in the
//     background (bounded: at most 64 at once, backoff up to 5 s, for
//     Config.CompletionRetry), and duplicates get 409 until it lands.
//
// # Final outcomes
//
// Final marks the record at once with an owner-conditioned write: from then
// on the key is never taken over — not when the completion fails, not when
// the holder crashes. A duplicate gets 409 while the holder's lease is live
// and 409 "idempotency-outcome-unknown" after it, until the outcome is
// stored; the request is never executed a second time. A succeeded Do is
// final by nature: if its completion fails, the mark is written before Do
// returns. On a route with Rules.StoreServerErrors the claim itself carries
// the mark. A request that is not final and whose completion cannot be
// stored within its lease (plus MaxClockSkew) is taken over by a retry of
// the same request: a crashed worker must not wedge its key, and a request
// that never said it took effect is treated as not having done so.
//
// # Leases, clocks and what cannot be stopped
//
// A claim holds a lease (Config.Lease), renewed every Lease/3 while the
// handler runs. The holder tracks, on its monotonic clock, the deadline its
// last successful renewal secured; MaxClockSkew before that deadline, if no
// renewal has landed (DynamoDB throttling, or the instance cut off from
// it), the handler's context is canceled with cause ErrLeaseLost
// (context.Cause) and its outcome is not stored. Another instance takes a
// key over only when its own clock shows the lease lapsed MaxClockSkew ago.
// While clocks differ by less than MaxClockSkew the holder is therefore told
// to stop before anyone else may start.
//
// What the library cannot stop: work that ignores its context — a blocking
// call without a deadline, a side effect already sent — runs on after the
// cancellation. Give such work the request's context, and for side effects
// that are themselves conditional writes carry the claim's fencing token
// (Fence): it grows with every claim of a key, so the work of a holder that
// lost its lease can be refused where it lands.
//
// # Cost
//
// The first request costs two writes: the claim (a conditional PutItem with
// ReturnValuesOnConditionCheckFailure=ALL_OLD) and the completion (an
// UpdateItem). A duplicate costs the one claim attempt, which fails and
// returns the stored record in the same round trip — no read. With
// Config.CacheBytes set, completed records are kept in process and a
// replay from the cache costs nothing. A handler running longer than
// Lease/3 adds one UpdateItem per Lease/3. Final adds one UpdateItem (the
// mark; none on StoreServerErrors routes, whose claim carries it). A
// failed completion adds one UpdateItem per background retry, and for Do
// one more for the mark. The common path — claim, handler, completion —
// is unchanged: two writes.
//
// # At rest
//
// Record keys are SHA-256 hashes of (scope, key) — not keyed, so that a
// retry across a secret rotation finds its record; keys are client-chosen,
// not credentials. The fingerprint is an HMAC-SHA256 under a key derived
// for dynaguard.PurposeIdempotencyFingerprint, so a table dump does not let
// a low-entropy body (a password change, a small transfer) be recovered by
// guessing; during a rotation it is checked against every listed secret.
// Responses are sealed (internal/seal: AES-256-GCM under a per-record
// subkey, 192-bit random nonce) with associated data covering the record
// key, status, encoding, omitted-body length, expiry and fingerprint: a
// sealed response cannot be moved to another record, and none of those
// attributes can be altered in the table without the replay failing closed.
// Config.Keyring is required. After a secret is dropped, a retry of a
// request fingerprinted under it is refused as a different payload (422),
// never executed.
//
// # Beyond HTTP
//
// Guard.Do gives the same at-most-once guarantee, lease and stored result
// to work that is not an HTTP request, such as stream records and queue
// messages. DoJSON does it for a result of any type, and Once for work
// keyed by its own payload (an order ID rather than a delivery's ID). The
// sub-package lambdaevents turns it into AWS Lambda handlers for SQS and
// DynamoDB Streams, with partial batch failures and a validity window.
package idempotency
