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
//	409  the key's first request is still running (Retry-After)
//	503  DynamoDB failed; the request was not executed (Retry-After)
//
// A replay carries the stored status, the allowlisted headers
// (Config.ReplayHeaders — never Set-Cookie or other per-client headers) and
// the body, plus "Idempotent-Replayed: true". Keys are kept for
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
//     response whose secret has been dropped from the Keyring.
//   - If DynamoDB fails before the handler runs, the request is refused
//     with 503 and not executed. If storing the outcome fails afterwards,
//     the client still gets its response; the failure is logged, and the
//     key stays claimed until its lease lapses.
//
// # Cost
//
// The first request costs two writes: the claim (a conditional PutItem with
// ReturnValuesOnConditionCheckFailure=ALL_OLD) and the completion (an
// UpdateItem). A duplicate costs the one claim attempt, which fails and
// returns the stored record in the same round trip — no read. With
// Config.CacheBytes set, completed records are kept in process and a
// replay from the cache costs nothing. A handler running longer than
// Lease/3 adds one UpdateItem per Lease/3.
//
// # At rest
//
// Record keys are SHA-256 hashes of (scope, key); the fingerprint is a
// SHA-256 hash. Responses are sealed with AES-256-GCM when Config.Keyring is
// set; without it they are stored as the handler wrote them (compressed or
// not), so set it whenever responses may hold anything sensitive.
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
