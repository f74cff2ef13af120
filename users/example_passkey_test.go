package users_test

import (
	"io"
	"log"
	"net/http"

	"github.com/alexedwards/scs/v2"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/sessionstore"
	"github.com/dynaguard/dynaguard/users"
)

// Passkeys: sign-in without a login name, and adding a passkey with the
// password as proof. Each ceremony is a begin (the options, as JSON, for
// navigator.credentials.get() or .create(); no DynamoDB call) and a finish
// (the browser's PublicKeyCredential.toJSON(), as the request body). The
// handlers must sit behind LoadUser (or RequireUser), which lets users set
// and read the cookie a challenge is bound to.
func ExampleUsers_FinishPasskeyLogin() {
	var (
		tbl   *dynaguard.Table
		keys  *dynaguard.Keyring
		store *sessionstore.Store
		sm    *scs.SessionManager
	)
	accounts, err := users.New(users.Config{Table: tbl, Keys: keys, Sessions: store,
		Passkeys: users.PasskeyConfig{RPID: "example.com", RPName: "Example", Origins: []string{"https://example.com"}}})
	if err != nil {
		log.Fatal(err)
	}
	client := func(r *http.Request) users.Client { return users.Client{IP: clientIP(r), UserAgent: r.UserAgent()} }
	options := func(w http.ResponseWriter, r *http.Request, opts []byte, err error) {
		if err != nil {
			users.WriteError(w, r, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(opts)
	}
	body := func(w http.ResponseWriter, r *http.Request) []byte {
		b, _ := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
		return b
	}

	mux := http.NewServeMux()
	mux.HandleFunc("POST /passkey/login/options", func(w http.ResponseWriter, r *http.Request) {
		opts, err := accounts.BeginPasskeyLogin(r.Context(), sm)
		options(w, r, opts, err)
	})
	mux.HandleFunc("POST /passkey/login", func(w http.ResponseWriter, r *http.Request) {
		if _, err := accounts.FinishPasskeyLogin(r.Context(), sm, body(w, r), client(r)); err != nil {
			users.WriteError(w, r, err) // 401 passkey-refused, 429 with Retry-After, 503 ...
			return
		}
		w.WriteHeader(http.StatusNoContent) // the script then navigates to the account page
	})

	account := http.NewServeMux()
	account.HandleFunc("POST /account/passkeys/options", func(w http.ResponseWriter, r *http.Request) {
		u, _ := users.FromContext(r.Context())
		opts, err := accounts.BeginPasskeyRegistration(r.Context(), sm, u)
		options(w, r, opts, err)
	})
	account.HandleFunc("POST /account/passkeys", func(w http.ResponseWriter, r *http.Request) {
		u, _ := users.FromContext(r.Context())
		proof := users.Proof{Password: r.Header.Get("X-Password")} // or Proof{Passkey: ...} from BeginPasskeyProof
		pk, err := accounts.FinishPasskeyRegistration(r.Context(), sm, u, proof, body(w, r), r.URL.Query().Get("name"), client(r))
		if err != nil {
			users.WriteError(w, r, err) // proof-required, passkey-refused, passkey-taken, passkey-limit, ...
			return
		}
		io.WriteString(w, pk.ID)
	})
	mux.Handle("/account/", accounts.RequireUser(sm)(account))
	http.ListenAndServe(":8080", sm.LoadAndSave(accounts.LoadUser(sm)(mux)))
}
