package idempotency

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
)

// Ready values for Config.Scope. Keys are scoped so that one client can
// never replay or block another's; New refuses a Config without a Scope, so
// that a Guard nobody can attribute requests to is found at start-up rather
// than by every keyed request failing with 403.
//
// Whatever the Scope, the signed-in user, and else the session, recorded by
// users.LoadUser (which middleware.Stack runs) come first: Scope names the
// client of the requests that carry neither.

// UserOrSession is the Scope of a Guard behind users.LoadUser or
// middleware.Stack: keyed requests are attributed to the signed-in user, or
// else to the session, and refused (403, "idempotency-unattributed") when
// there is neither. It adds no source of its own, which also makes it the
// Scope of a Guard used only through Do (Do keys are not scoped).
func UserOrSession(*http.Request) (scope string, ok bool) { return "", false }

// MaxAPIKeyLen is the longest API key APIKeyHeader attributes a request to.
const MaxAPIKeyLen = 4096

// APIKeyHeader returns a Scope that attributes a request to the API key it
// carries in the named header (for example "X-API-Key", or "Authorization"
// for bearer tokens): each key has its own key space. The key is hashed
// (SHA-256) at once and only the hash is used — record keys hash it again
// with the Idempotency-Key — so it is never stored, cached or logged. A
// request without the header, with more than one, or with a value over
// MaxAPIKeyLen bytes is not attributed (403).
//
// The Guard does not check that the key is valid: put it behind the
// middleware that authenticates API keys, so that a refused request costs
// no claim. An unknown key only ever reaches its own, empty key space. API
// keys must be long random secrets: the hash is unkeyed.
func APIKeyHeader(name string) func(*http.Request) (scope string, ok bool) {
	name = http.CanonicalHeaderKey(name)
	return func(r *http.Request) (string, bool) {
		vals := r.Header[name]
		if len(vals) != 1 || vals[0] == "" || len(vals[0]) > MaxAPIKeyLen {
			return "", false
		}
		sum := sha256.Sum256([]byte(vals[0]))
		return "apikey\x00" + base64.RawURLEncoding.EncodeToString(sum[:]), true
	}
}
