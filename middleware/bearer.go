package middleware

import (
	"net/http"
	"strings"

	"github.com/dynaguard/dynaguard/internal/problem"
)

// bearerOnAPIOnly refuses "Authorization: Bearer" on every route outside
// the API prefix (400), before the session is loaded: pages are for
// browsers, which never send a bearer token on their own; a page answered
// to a bearer token would be a page rendered for a client that holds no
// session and no nonce, and a form on it could not be posted. On API
// routes users.LoadUser takes the token in place of the session (one
// strongly consistent GetItem, no session read or written); exempt routes
// get the header untouched, for their own checks.
func bearerOnAPIOnly(pfx string) Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !isExempt(r) && !strings.HasPrefix(r.URL.EscapedPath(), pfx) && hasBearer(r) {
				problem.Write(w, r, probBearerOffAPI)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

func hasBearer(r *http.Request) bool {
	for _, v := range r.Header.Values("Authorization") {
		if scheme, _, _ := strings.Cut(v, " "); strings.EqualFold(scheme, "Bearer") {
			return true
		}
	}
	return false
}

var probBearerOffAPI = problem.Problem{Reason: "bearer-not-accepted", Status: http.StatusBadRequest,
	Title:  "Bearer token on a page",
	Detail: "Access tokens are accepted on API routes only. Call the API, or use the site in a browser without the token."}
