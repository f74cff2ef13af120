package users_test

import (
	"net/http"

	"github.com/dynaguard/dynaguard/users"
)

// Self-service sign-up in quiet mode (Config.Signup.Quiet): a new address
// and a taken one get the same answer, and the owner of a taken one is
// told by email. Sign-ups are limited per client address and range before
// any work (429 with Retry-After).
func ExampleUsers_Register() {
	var accounts *users.Users // users.New(users.Config{..., Signup: users.SignupConfig{Quiet: true}})
	http.HandleFunc("POST /signup", func(w http.ResponseWriter, r *http.Request) {
		u, err := accounts.Register(r.Context(), users.NewUser{
			Email: r.FormValue("email"), Username: r.FormValue("username"), Password: r.FormValue("password"),
		}, clientIP(r))
		if err != nil {
			users.WriteError(w, r, err) // 422 with the failed rule, 409 for a taken username, 429, 503
			return
		}
		if u != nil {
			// A new account: send it a verification link — but do not
			// log it in, or the answer would differ from a taken
			// address's.
			_ = accounts.RequestEmailVerification(r.Context(), u, clientIP(r))
		}
		http.Redirect(w, r, "/login?signup=sent", http.StatusSeeOther) // "we sent you an email"
	})
}
