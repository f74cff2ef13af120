package middleware_test

import (
	"log"
	"net/http"
	"os"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/idempotency"
	"github.com/dynaguard/dynaguard/middleware"
	"github.com/dynaguard/dynaguard/nonce"
	"github.com/dynaguard/dynaguard/sessionstore"
	"github.com/dynaguard/dynaguard/users"
)

// The whole suite around an existing router: one table, one secret.
func Example() {
	var client *dynamodb.Client // from config.LoadDefaultConfig
	tbl := dynaguard.NewTable(client, "myapp-auth")
	keys, err := dynaguard.ParseKeyring(os.Getenv("DYNAGUARD_SECRET"))
	if err != nil {
		log.Fatal(err)
	}

	store, _ := sessionstore.New(sessionstore.Config{Table: tbl, Keys: keys})
	sm := scs.New()
	sm.Store = store
	sm.Codec = sessionstore.Codec{} // lets unchanged sessions skip their write
	sm.IdleTimeout = 30 * time.Minute
	sm.Cookie.Name = "__Host-session"

	accounts, _ := users.New(users.Config{Table: tbl, Keys: keys, Sessions: store})
	nonces, _ := nonce.New(nonce.Config{Table: tbl, Keys: keys})
	keysGuard, _ := idempotency.New(idempotency.Config{Table: tbl, Keyring: keys, Scope: idempotency.UserOrSession})

	stack, err := middleware.New(middleware.Config{
		Sessions: sm, Users: accounts, Nonces: nonces, Idempotency: keysGuard,
	})
	if err != nil {
		log.Fatal(err)
	}

	router := http.NewServeMux()
	router.HandleFunc("GET /login", func(w http.ResponseWriter, r *http.Request) {
		field, _ := nonce.Field(r, "/login") // purpose = the path the form posts to
		_ = field                            // render it inside the <form>
	})
	router.Handle("GET /account", accounts.RequireUser(sm)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})))

	log.Fatal(http.ListenAndServe(":8080", stack.Handler(router)))
}
