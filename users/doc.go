// Package users provides accounts, password hashing, throttled
// authentication, login sessions, password reset, email verification and a
// TOTP second factor for net/http applications that keep their state in
// DynamoDB, on top of scs and dynaguard's sessionstore.
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
//     account), and login names without an account are throttled and capped
//     exactly like real ones. RequestReset answers the same, and makes the
//     same calls and writes of the same size, for an address without an
//     account (a decoy token nobody holds).
//   - Missing authentication for a critical function (CWE-306), and a
//     stolen session used as the account. RequireUser guards pages. Every
//     operation that could hand the account over — RequestEmailChange,
//     ChangePassword, BeginTOTP, ConfirmTOTP, DisableTOTP,
//     RegenerateRecoveryCodes — takes a Proof (the password, plus a TOTP or
//     recovery code when the account has TOTP) and checks it in the same
//     request through the login's own throttled path; a session alone,
//     however recent, is refused (ErrProofRequired). A step-up renews the
//     session token. An email change stays pending until a link sent to the
//     new address is used, in the one transaction that claims the address;
//     the current address is told at once, with a link that cancels the
//     change and ends every session. Turning a factor on or off, new
//     recovery codes, a new password and a confirmed address end every other
//     session. LoadUser ends a login whose last credential check is older
//     than Config.AbsoluteLifetime, whatever renewals happened since
//     ("sign out other sessions" renews the token but keeps that time).
//   - Brute force and credential stuffing (CWE-307). Attempts are counted
//     with atomic, conditional DynamoDB writes before any password work, per
//     login name and client address (5 free, then 30 s doubling to 1 h),
//     per client address over all accounts (50 free, then the same) and
//     its wider ranges (IPv4 /24, IPv6 /56 and /48), and per account for
//     clients without its device cookie, whatever their address (10 free,
//     then a doubling delay; at 100, NIST's cap, unknown clients wait until
//     the window lapses or the password changes). A browser that logged in
//     before holds a device cookie (OWASP "Slow Down Online Guessing Attacks
//     with Device Cookies") and is counted on its own: no one else's
//     failures slow it, so guessing cannot lock the owner out. Failed
//     second-factor codes lock an account at 100 until a reset (exact: they
//     are counted on the account before their check). A limiter bounds
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
//   - Weak password recovery (CWE-640). Reset and verification tokens are
//     256 random bits, sent only through the application's Mailer to the
//     address stored on the account, stored only as SHA-256 (tok#), bound to
//     the account, its credential version and its email address, valid for
//     15 minutes (resets; configurable), and consumed by one conditional
//     DeleteItem that returns the record: of any number of concurrent uses,
//     on any number of instances, exactly one succeeds. A password or email
//     change kills every outstanding token. Issuing is limited per address
//     (3 an hour; silently, so the limit reveals nothing) and per client
//     address (30). A reset ends every session, unlocks the account, does
//     not log in, and notifies the owner. Tokens are bound to the exact
//     stored address and the account item's version, so any change of the
//     account kills them. A reset that is the first proof of possession of a
//     never-verified address also removes every second factor and pending
//     change set up before it (someone may have registered the address
//     first).
//   - Single-factor authentication (CWE-308) and replay of one-time codes
//     (CWE-294). TOTP (RFC 6238) with a 160-bit secret sealed with
//     AES-256-GCM at rest, enabled only after a code confirms it, ±1 step of
//     skew, and each time step accepted once: the step is recorded by a
//     conditional UpdateItem (tstep < step), so a code cannot complete two
//     logins, even two concurrent ones on two instances. A replayed code is
//     logged and reported to the Mailer. Between the password and the code
//     the session holds a short-lived pending state that is not a login;
//     codes — at login and when confirming an enrolment — are throttled
//     and counted like passwords; recovery codes (80 bits, hashed, single
//     use by one conditional write) replace lost devices. Setting TOTP up
//     or turning it off needs a Proof.
//   - Phishing and replay of authenticators (CWE-294, CWE-1390).
//     Passkeys (WebAuthn discoverable credentials, Config.Passkeys) sign in
//     with no login name, replace the code at the second step, and are a
//     whole step-up Proof — user verification is always required, so a
//     passkey is two factors. A response is accepted only from the
//     configured origins for the RP ID, and answers a challenge issued with
//     no write: a MACed token bound to its purpose, expiry, a short-lived
//     SameSite=Strict browser cookie and (but for sign-in) the session and
//     account. It is used by one conditional write, in the one transaction
//     that also advances the credential's signature counter: one response
//     is accepted at most once across instances, and a counter that goes
//     back marks the credential cloned (refused from then on; the owner is
//     told). Credential IDs are stored only as keyed hashes, each the
//     credential's uniqueness marker; the user handle is random. Adding or
//     removing a passkey needs a Proof. Failed assertions count like failed
//     passwords. protocol verification is go-webauthn/webauthn's.
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
//	accounts, _ := users.New(users.Config{Table: tbl, Keys: keys, Sessions: store, Mailer: mailer})
//	mux.Handle("GET /account", accounts.RequireUser(sm)(accountPage))
//	http.ListenAndServe(addr, sm.LoadAndSave(mux))
//
// A login handler calls Authenticate, then BeginLogin: that logs the user in,
// or — for an account with TOTP — records the pending second factor and
// returns pending = true; the code form's handler calls CompleteLogin.
// Login itself refuses accounts with TOTP, so no handler skips the second
// factor by mistake. Behind LoadUser (as in the middleware package's stack),
// Authenticate also reads and sets the device cookie that keeps the
// owner's browsers logging in while guessing from elsewhere is slowed;
// without it every attempt is an unknown client's — slower for the owner
// under attack, never weaker. Self-service sign-up calls Register (limited
// per address; quiet mode for taken addresses) rather than Create.
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
// BatchGetItem. A reset request: one BatchGetItem, one GetItem, one
// TransactWriteItems (the same for an address without an account). A reset:
// two GetItems, one DeleteItem (the consume), one UpdateItem, and the
// session store's RevokeAll. A verification: one DeleteItem and one
// UpdateItem. A second-factor code: one BatchGetItem, two conditional
// UpdateItems counting the attempt (per account and address, and on the
// account under the cap), one conditional UpdateItem using the step (or
// recovery code) and one DeleteItem, plus the session token's renewal; a
// wrong code: the same reads and counts, then one UpdateItem. A step-up
// Proof costs what a login costs (plus a code's calls for an account with
// TOTP); the operation then adds its own write: an email change request one
// TransactWriteItems, its confirmation two GetItems and one
// TransactWriteItems, a cancel one DeleteItem and one UpdateItem (the last
// two plus the session store's RevokeAll). The absolute lifetime costs no
// call. Passkeys: every Begin* costs nothing; a sign-in one BatchGetItem,
// one GetItem and one TransactWriteItems (the minimum: the credential names
// the account, the account binds the session, one atomic write uses the
// challenge and the counter); a second step or a passkey Proof one
// BatchGetItem and one TransactWriteItems; a registration its Proof and
// one TransactWriteItems. Every DynamoDB call of the package is in the dynamo*.go files.
//
// Every error is typed (see the Err* variables and the *Error types), and
// WriteError turns each into an RFC 9457 problem (docs/PROBLEMS.md).
package users
