package users_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/netip"
	"os"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/sessionstore"
	"github.com/dynaguard/dynaguard/users"
)

// clientIP is the connection's address. Behind a proxy, resolve it with
// the middleware package's trusted-proxy configuration instead.
func clientIP(r *http.Request) netip.Addr {
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	a, _ := netip.ParseAddr(host)
	return a
}

// A complete wiring: sign-up, login, logout, a page that needs a user and a
// sensitive action that needs a recent password.
func Example() {
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		log.Fatal(err)
	}
	tbl := dynaguard.NewTable(dynamodb.NewFromConfig(cfg), "myapp-auth")
	if err := tbl.Ensure(ctx); err != nil {
		log.Fatal(err)
	}
	keys, err := dynaguard.ParseKeyring(os.Getenv("DYNAGUARD_SECRET"))
	if err != nil {
		log.Fatal(err)
	}
	store, err := sessionstore.New(sessionstore.Config{Table: tbl, Keys: keys})
	if err != nil {
		log.Fatal(err)
	}
	sm := scs.New()
	sm.Store, sm.Codec = store, sessionstore.Codec{}
	sm.IdleTimeout, sm.Lifetime = 30*time.Minute, 12*time.Hour
	sm.Cookie.Secure = true

	accounts, err := users.New(users.Config{
		Table:    tbl,
		Keys:     keys,
		Sessions: store,
		Policy:   users.Policy{Breach: &users.RangeClient{}},
	})
	if err != nil {
		log.Fatal(err)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("POST /signup", func(w http.ResponseWriter, r *http.Request) {
		u, err := accounts.Create(r.Context(), users.NewUser{
			Email: r.FormValue("email"), Username: r.FormValue("username"), Password: r.FormValue("password"),
		})
		if err == nil {
			err = accounts.Login(r.Context(), sm, u, users.Client{IP: clientIP(r), UserAgent: r.UserAgent()})
		}
		if err != nil {
			users.WriteError(w, r, err) // 422 with the failed rule, 409 when taken, ...
			return
		}
		http.Redirect(w, r, "/account", http.StatusSeeOther)
	})
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		c := users.Client{IP: clientIP(r), UserAgent: r.UserAgent()}
		u, err := accounts.Authenticate(r.Context(), users.Credentials{
			Login: r.FormValue("login"), Password: r.FormValue("password"), IP: c.IP,
		})
		pending := false
		if err == nil {
			pending, err = accounts.BeginLogin(r.Context(), sm, u, c) // Login, or a pending second factor
		}
		if err != nil {
			users.WriteError(w, r, err) // 401, or 429 with Retry-After, or 503
			return
		}
		if pending {
			http.Redirect(w, r, "/login/code", http.StatusSeeOther) // the form that posts the code
			return
		}
		http.Redirect(w, r, users.SafeNext(r.FormValue("next")), http.StatusSeeOther)
	})
	mux.HandleFunc("POST /login/code", func(w http.ResponseWriter, r *http.Request) {
		c := users.Client{IP: clientIP(r), UserAgent: r.UserAgent()}
		if _, err := accounts.CompleteLogin(r.Context(), sm, r.FormValue("code"), c); err != nil {
			users.WriteError(w, r, err) // 401 second-factor-failed / second-factor-expired, 429, 503
			return
		}
		http.Redirect(w, r, "/account", http.StatusSeeOther)
	})
	mux.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) {
		if err := accounts.Logout(r.Context(), sm); err != nil {
			users.WriteError(w, r, err)
			return
		}
		http.Redirect(w, r, "/", http.StatusSeeOther)
	})
	mux.Handle("GET /account", accounts.RequireUser(sm)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, _ := users.FromContext(r.Context())
		fmt.Fprintf(w, "hello %s", u.Username)
	})))
	mux.Handle("POST /account/email", accounts.RequireUser(sm)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, _ := users.FromContext(r.Context())
		proof := users.Proof{Password: r.FormValue("password"), Code: r.FormValue("code")}
		c := users.Client{IP: clientIP(r), UserAgent: r.UserAgent()}
		if err := accounts.RequestEmailChange(r.Context(), sm, u, r.FormValue("email"), proof, c); err != nil {
			users.WriteError(w, r, err) // 401 with a wrong proof: nothing changed
			return
		}
		http.Redirect(w, r, "/account", http.StatusSeeOther) // pending until the new address confirms
	})))
	// LoadUser around every route: it loads the user, and hands
	// Authenticate the browser's device cookie (and sets a new one).
	log.Fatal(http.ListenAndServe(":8080", sm.LoadAndSave(accounts.LoadUser(sm)(mux))))
}

// Changing the password ends every other session of the user; this one
// continues under a new token.
func ExampleUsers_ChangePassword() {
	var (
		accounts *users.Users
		sm       *scs.SessionManager
	)
	handler := accounts.RequireUser(sm)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, _ := users.FromContext(r.Context())
		proof := users.Proof{Password: r.FormValue("current"), Code: r.FormValue("code")}
		err := accounts.ChangePassword(r.Context(), sm, u, proof, r.FormValue("new"),
			users.Client{IP: clientIP(r), UserAgent: r.UserAgent()})
		if err != nil {
			users.WriteError(w, r, err)
			return
		}
		fmt.Fprintln(w, "password changed; you were signed out everywhere else")
	}))
	_ = handler
}

// Each password rule names itself in the error, so the form can say exactly
// what to change.
func ExamplePolicy_CheckPassword() {
	p := users.Policy{MinLength: 8}
	for _, pw := range []string{"hunter2", "P@ssw0rd", "alice2024!", "correct horse battery staple"} {
		err := p.CheckPassword(context.Background(), pw, "alice@example.com", "alice")
		var pe *users.PolicyError
		switch {
		case errors.As(err, &pe):
			fmt.Printf("%-30q %s: %v\n", pw, pe.Rule, pe)
		default:
			fmt.Printf("%-30q ok\n", pw)
		}
	}
	// Output:
	// "hunter2"                      too-short: the password must have at least 8 characters
	// "P@ssw0rd"                     common: this is one of the most common passwords; choose another
	// "alice2024!"                   contains-account: the password must not be built from your email address or username
	// "correct horse battery staple" ok
}

// Email addresses and usernames are unique under NFKC and Unicode case
// folding; the form the user typed is kept for display.
func ExampleNormalizeEmail() {
	for _, e := range []string{"Alice@Example.COM", "ａｌｉｃｅ@example.com", "STRAẞE@example.de"} {
		n, err := users.NormalizeEmail(e)
		fmt.Println(n, err)
	}
	_, err := users.NormalizeUsername("pаypal") // Cyrillic "а"
	fmt.Println(err)
	// Output:
	// alice@example.com <nil>
	// alice@example.com <nil>
	// strasse@example.de <nil>
	// users: invalid username: a username cannot mix letters from different alphabets
}

// A throttled login says when to retry; WriteError turns it into a 429 with
// Retry-After.
func ExampleThrottledError() {
	var err error = &users.ThrottledError{RetryAfter: 2 * time.Minute}
	var te *users.ThrottledError
	fmt.Println(errors.Is(err, users.ErrInvalidCredentials), errors.As(err, &te), te.RetryAfter)
	// Output: true true 2m0s
}

// The password reset flow: a form that asks for the address, the link in
// the message, and the form behind the link. The answer to the first form
// is the same whether or not the address has an account.
func ExampleUsers_RequestReset() {
	var (
		tbl  *dynaguard.Table
		keys *dynaguard.Keyring
		sm   *scs.SessionManager
	)
	store, _ := sessionstore.New(sessionstore.Config{Table: tbl, Keys: keys})
	outbox := make(chan users.Message, 1024) // a worker delivers these; Send must not block
	accounts, err := users.New(users.Config{
		Table: tbl, Keys: keys, Sessions: store,
		Mailer: users.MailerFunc(func(ctx context.Context, m users.Message) error {
			select {
			case outbox <- m:
				return nil
			default:
				return errors.New("outbox full")
			}
		}),
	})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /forgot", func(w http.ResponseWriter, r *http.Request) {
		if err := accounts.RequestReset(r.Context(), r.FormValue("email"), clientIP(r)); err != nil {
			users.WriteError(w, r, err) // 422 malformed address, 429 from this client address, 503
			return
		}
		fmt.Fprintln(w, "If an account uses this address, a link to reset its password is on its way.")
	})
	// The message's link: https://example.com/reset?token=<m.Token>; the
	// page shows a form that posts the token and the new password.
	mux.HandleFunc("POST /reset", func(w http.ResponseWriter, r *http.Request) {
		if _, err := accounts.ResetPassword(r.Context(), r.FormValue("token"), r.FormValue("password")); err != nil {
			users.WriteError(w, r, err) // 400 token-invalid, 422 password-policy (the link still works)
			return
		}
		http.Redirect(w, r, "/login?reset=1", http.StatusSeeOther) // no automatic login
	})
	_ = sm
}

// Turning on TOTP: the password, a QR code of the URI, a code (and the
// password again) to confirm, and the recovery codes shown once.
func ExampleUsers_BeginTOTP() {
	var (
		accounts *users.Users
		sm       *scs.SessionManager
	)
	mux := http.NewServeMux()
	mux.Handle("POST /account/totp", accounts.RequireUser(sm)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, _ := users.FromContext(r.Context())
		c := users.Client{IP: clientIP(r), UserAgent: r.UserAgent()}
		en, err := accounts.BeginTOTP(r.Context(), sm, u, users.Proof{Password: r.FormValue("password")}, c)
		if err != nil {
			users.WriteError(w, r, err)
			return
		}
		fmt.Fprintf(w, "scan %s (or type %s), then enter the code before %s", en.URI, en.Secret, en.Expires.Format(time.Kitchen))
	})))
	mux.Handle("POST /account/totp/confirm", accounts.RequireUser(sm)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, _ := users.FromContext(r.Context())
		c := users.Client{IP: clientIP(r), UserAgent: r.UserAgent()}
		codes, err := accounts.ConfirmTOTP(r.Context(), sm, u, users.Proof{Password: r.FormValue("password")}, r.FormValue("code"), c)
		if err != nil {
			// 401 second-factor-failed or proof-required,
			// 429 login-throttled, 409 totp-enrollment-expired
			users.WriteError(w, r, err)
			return
		}
		fmt.Fprintln(w, "Two-factor authentication is on. Keep these recovery codes; they are shown only once:")
		for _, c := range codes {
			fmt.Fprintln(w, c)
		}
	})))
}

// A Message prints and logs without its token.
func ExampleMessage() {
	m := users.Message{Kind: users.MessagePasswordReset, To: "ada@example.com", UserID: "u1", Token: "do-not-print-me"}
	fmt.Println(m)
	// Output: users.Message{password-reset to="ada@example.com" user=u1 token=[redacted]}
}

// Changing the email address: the request needs the password (and a code
// with TOTP) in the same form; the change waits for the link sent to the
// new address; the current address gets a link that cancels it. Both links
// open a page with a button, whose POST calls the library.
func ExampleUsers_RequestEmailChange() {
	var (
		accounts *users.Users
		sm       *scs.SessionManager
	)
	client := func(r *http.Request) users.Client { return users.Client{IP: clientIP(r), UserAgent: r.UserAgent()} }
	mux := http.NewServeMux()
	mux.Handle("POST /account/email", accounts.RequireUser(sm)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, _ := users.FromContext(r.Context())
		proof := users.Proof{Password: r.FormValue("password"), Code: r.FormValue("code")}
		if err := accounts.RequestEmailChange(r.Context(), sm, u, r.FormValue("email"), proof, client(r)); err != nil {
			users.WriteError(w, r, err) // 401 proof-required: nothing changed
			return
		}
		fmt.Fprintln(w, "Open the link we sent to the new address; until then your address stays as it is.")
	})))
	mux.HandleFunc("POST /email/change/confirm", func(w http.ResponseWriter, r *http.Request) {
		u, err := accounts.ConfirmEmailChange(r.Context(), sm, r.FormValue("token"), client(r))
		if err != nil {
			users.WriteError(w, r, err) // 400 token-invalid, 409 email-taken
			return
		}
		fmt.Fprintf(w, "Your address is now %s; every other session was signed out.\n", u.Email)
	})
	mux.HandleFunc("POST /email/change/cancel", func(w http.ResponseWriter, r *http.Request) {
		if _, err := accounts.CancelEmailChange(r.Context(), r.FormValue("token")); err != nil {
			users.WriteError(w, r, err)
			return
		}
		fmt.Fprintln(w, "Cancelled, and every session signed out. Log in and change your password.")
	})
	_ = mux
}
