// Package users provides accounts, password hashing, throttled
// authentication and login sessions for net/http applications that keep
// their state in DynamoDB, on top of scs and dynaguard's sessionstore.
//
// # What it stops
//
//   - Improper authentication (CWE-287). Every read on the login and
//     request path is strongly consistent, so a password that was just
//     changed stops working at once on every instance. Passwords are hashed
//     with argon2id (OWASP parameters, PHC format) after NFKC normalisation,
//     optionally with a rotatable pepper; legacy hashes (bcrypt, Django
//     pbkdf2_sha256 and argon2) are verified and upgraded at the next login.
//     Email addresses and usernames are unique in DynamoDB itself — one
//     transaction writes the account and a marker per identifier — under
//     their NFKC, case-folded form, so "ALICE@example.com" and
//     "ａｌｉｃｅ@example.com" are the same account.
//   - Account enumeration. An unknown login name, a wrong password, a
//     disabled account and a throttled attempt all return
//     ErrInvalidCredentials; the first three make the same DynamoDB calls
//     and exactly one password verification (a dummy one for an unknown
//     account), and login names without an account are throttled and locked
//     exactly like real ones.
//   - Missing authentication for a critical function (CWE-306).
//     RequireUser guards pages; RequireRecentAuth asks for the password
//     again before sensitive actions.
//   - Brute force and credential stuffing (CWE-307). Attempts are counted
//     with atomic, conditional DynamoDB writes before any password work, per
//     login name and client address (5 free, then 30 s doubling to 1 h),
//     per client address over all accounts (50 free, then the same), and
//     per account: 100 consecutive failures lock it until a password reset.
//     An attacker's failures slow down the attacker's address only, so one
//     address cannot keep the owner out (see Throttle). A limiter bounds
//     concurrent hashing, so a login flood gets 503s instead of exhausting
//     memory.
//   - Session fixation (CWE-384). Login renews the session token.
//   - Weak passwords (CWE-521). The Policy follows NIST SP 800-63B and
//     ASVS 5.0: length (8 by default, 15 when the password is the only
//     factor; at least 64 accepted), no composition rules, refusal of
//     common and easily guessed passwords (zxcvbn), of passwords built from
//     the user's own email address or username, and optionally of breached
//     ones (a k-anonymity range client: 5 hex characters of a SHA-1 leave
//     the process).
//   - Insufficient session expiration (CWE-613). Logout destroys the
//     session on the server. Each session carries an HMAC of the account's
//     credential version and session epoch; a password change, "log out
//     everywhere" or disabling the account changes it, so every other
//     session fails its next request — and the session store ends them too.
//
// # Wiring
//
// Users needs a *dynaguard.Table, a *dynaguard.Keyring and the session
// store that scs uses. Handlers that log users in run inside
// scs.SessionManager.LoadAndSave; pages that need a user sit behind
// RequireUser (or LoadUser, when a user is optional):
//
//	store, _ := sessionstore.New(sessionstore.Config{Table: tbl, Keys: keys})
//	sm := scs.New()
//	sm.Store, sm.Codec = store, sessionstore.Codec{}
//	accounts, _ := users.New(users.Config{Table: tbl, Keys: keys, Sessions: store})
//	mux.Handle("GET /account", accounts.RequireUser(sm)(accountPage))
//	http.ListenAndServe(addr, sm.LoadAndSave(mux))
//
// The client address is the application's to resolve (the connection's
// address unless it trusts a proxy — see the middleware package); users
// never reads X-Forwarded-For.
//
// # Costs
//
// An authenticated request: one strongly consistent GetItem of the account
// (plus the session store's own read), no write. A login: one BatchGetItem,
// one GetItem, one conditional UpdateItem and one DeleteItem, plus one
// UpdateItem when a failure count must be reset or a hash upgraded. A
// failed login: the same reads, then three UpdateItems. A throttled one: one
// BatchGetItem. Every DynamoDB call of the package is in dynamo.go.
//
// Every error is typed (see the Err* variables and the *Error types), and
// WriteError turns each into an RFC 9457 problem (docs/PROBLEMS.md).
package users
