// Package sessionstore is a session store for [github.com/alexedwards/scs/v2]
// that keeps sessions in DynamoDB, built so that the table is never the weak
// point of the application's authentication.
//
//	sm, err := sessionstore.NewManager(sessionstore.Config{Table: tbl, Keys: keys})
//	sm.IdleTimeout = 30 * time.Minute
//	http.ListenAndServe(addr, sm.LoadAndSave(mux))
//
// NewManager sets the Store and the deterministic [Codec] (with which
// unchanged sessions cost no write) on a new scs manager; [Use] sets both on
// an existing one and returns the Store.
//
// Store implements scs.Store and scs.CtxStore. A token that is missing,
// expired, deleted, malformed or tampered with is "not found" (found=false,
// err=nil), exactly as scs requires; a storage failure is an error, never
// "not found", so scs fails the request instead of quietly starting a new
// session.
//
// # The attacks it stops
//
// Session theft from a table dump or a backup. The table never holds a token.
// An item's key is sess#<base64url(HMAC-SHA256(k, token))>, with k derived
// from the application's secret (dynaguard.PurposeSessionID), so a dump, a
// backup, a DynamoDB stream or an over-broad read permission yields nothing
// that can be presented as a cookie. By default the session data is also
// sealed (see Encryption), so the dump does not reveal what the sessions hold
// either.
//
// Forged sessions by someone with write access to the table. Without the
// secret nobody can compute the key under which a chosen token would be
// found, so no session can be minted by writing an item. With encryption on
// (the default) an existing session's data cannot be changed either — for
// instance an administrator's user ID put into the attacker's own session —
// nor moved to another session, nor given a later expiry: such an item fails
// to authenticate and is treated as absent.
//
// Resurrection after logout. Delete — called by scs for Destroy and
// RenewToken — replaces the item with a tombstone in one write, and every
// commit is conditioned on "no live tombstone". A request that loaded the
// session before the logout and commits it afterwards therefore writes
// nothing; the session stays dead on every instance. Commit returns nil in
// that case, so that request still completes and its client simply finds no
// session on its next request. The tombstone lives Config.TombstoneTTL
// (default one hour): a request that takes longer than that between loading
// and committing a session could write it back.
//
// Stale sessions on other instances. Reads are strongly consistent by
// default: a logout, token renewal or revocation is visible to the very next
// request on any instance. (Config.EventuallyConsistent halves the read cost
// and opens a window of about a second in which a just-revoked token still
// works.)
//
// Expired sessions honoured because TTL lags. DynamoDB's TTL deletes expired
// items up to about two days late. Find compares the item's precise expiry
// (nanoseconds, attribute exp) and its ttl with the clock on every read, so
// an expired session is gone at its expiry even while its item remains. scs
// itself never checks the expiry of a loaded session: the store is the only
// check, and it is exact.
//
// Cost blow-up of sliding expiry. With an IdleTimeout, scs commits every
// request just to push the expiry forward, and every other DynamoDB store
// pays a write per request for it. This store skips the write when nothing
// but the expiry changed and the stored expiry is recent enough (the rule is
// stated exactly on [Config.TouchInterval]): a session making 100 read-only
// requests within a minute costs one write, not 100. The stored expiry never
// runs later than scs's, and never earlier by more than TouchInterval
// (default one minute) or a tenth of the idle timeout, whichever is less.
// For the data to compare equal, use [Codec]: scs's default GobCodec encodes
// the values map in random order.
//
// Session fixation. RenewToken (call it at login; the users package does)
// deletes the old token through the same tombstone, so a token planted
// before login is dead after it.
//
// # Calls per operation
//
//	Find (every request)          1 GetItem, strongly consistent
//	Commit, data changed          1 UpdateItem, conditional
//	Commit, only expiry slid      0 (within TouchInterval), else 1 UpdateItem
//	Delete (logout, RenewToken)   1 PutItem (the tombstone)
//	Bind                          0 — written by the request's own commit
//	List                          1 Query (keys only) + 1 BatchGetItem per 100 sessions
//	Revoke                        1 PutItem, conditional
//	RevokeAll                     1 Query + 1 PutItem per session
//
// A login — load, RenewToken, Bind, commit — is one GetItem and two writes,
// the same as without Bind. The tests measure every figure above with a call
// recorder against DynamoDB Local.
//
// # Item layout
//
// Sessions share the dynaguard table layout (see docs/ARCHITECTURE.md):
//
//	pk       S     "sess#" + ID: base64url(HMAC-SHA256(k, token)), 43 characters
//	ttl      N     expiry in epoch seconds, rounded up (DynamoDB's TTL)
//	exp      N     expiry in Unix nanoseconds, the exact one scs asked for
//	data     B     session data: sealed (see Encryption), or as scs encoded it
//	enc      S     ID of the key that sealed data (absent when plaintext)
//	ver      N     write counter
//	created  N     first write, Unix nanoseconds
//	seen     N     last write, Unix nanoseconds (List's LastSeen)
//	gsi1pk   S     "sessions#" + user ID, once bound (index gsi1)
//	gsi1sk   S     time of binding, fixed-width Unix nanoseconds
//	ua, ip   S     client information given to Bind
//
// A tombstone is pk, ttl (now + TombstoneTTL) and tomb=true — nothing else,
// so a deleted session also leaves the owner index at once.
//
// # Per-user sessions
//
// [Store.Bind] records which user a session belongs to; the users package
// calls it at login, after RenewToken, and the request's own commit writes the
// owner together with the data. [Store.List] shows a user's live sessions
// (created, last seen, expiry, user agent, IP) for a "your devices" page,
// [Store.Revoke] ends one of them and [Store.RevokeAll] ends all but the
// current one — through the keys-only index gsi1, never a Scan. A session is
// named by [Store.ID], the keyed hash: it can be shown, logged and posted back
// in a form without revealing the token. The index is updated asynchronously
// by DynamoDB, so a session bound in the last second or so may be missing
// from List and RevokeAll. An application that must end every session
// without exception also checks a per-user credential version on each
// request (the users package does).
//
// # Why there is no All / Iterate
//
// Store deliberately does not implement scs.IterableStore or
// scs.IterableCtxStore. scs's Iterate loads each session by the map key that
// All returns, as if it were a token; this store only knows keyed hashes of
// tokens, so an All method would make Iterate act on the wrong keys — or,
// worse, store hashes as new sessions. Listing every session would also need
// a Scan of the whole table. The per-user API covers what Iterate is used for
// (find a user's sessions, end them) with one Query.
//
// # Encryption
//
// Unless Config.Plaintext is set, the data is sealed with AES-256-GCM under a
// subkey derived per write from a 192-bit random nonce (so one key can seal
// any number of commits), with associated data binding it to the item's key
// and precise expiry. The key is dynaguard.PurposeSessionEncryption of the
// keyring. It costs about 2 µs and 40 bytes per write. What it does not stop:
// someone with write access can still delete a session, or restore an older
// sealed state of the same session (which carries its own, earlier expiry).
//
// # Rotating the secret
//
// The keyring's current secret hashes and seals every new write. A session
// created under a previous secret is still found — one extra GetItem per
// previous secret on a miss under the current one — and on that first read it
// is moved to its key under the current secret, re-sealed, in one
// TransactWriteItems of two items; afterwards it costs one GetItem again.
// During a rotation Delete writes one tombstone per secret (one
// BatchWriteItem). Drop a previous secret once every session created before
// the rotation has expired (scs's Lifetime).
//
// With several instances, roll a new secret out in two phases, each completed
// within TombstoneTTL: first add it everywhere as a previous secret
// ("old,new"), then make it current everywhere ("new,old"). While the second
// phase rolls, instances of the first phase read and write sessions where the
// others moved them (a tombstone left by a move says where the session went).
// An instance that does not know the new secret at all cannot, and its users
// would appear logged out.
//
// # Limits
//
// Commit refuses data larger than [MaxDataSize] (DynamoDB's 400 KiB item
// limit less a reserve for the other attributes) with [ErrTooLarge], before
// any write; nothing is ever truncated. ErrTooLarge also matches
// dynaguard.ErrItemTooLarge.
//
// Do not set the SessionManager's HashTokenInStore: the store already hashes
// tokens with a key, and with it scs would pass the store a hash of the token
// that Bind and ID never see.
package sessionstore
