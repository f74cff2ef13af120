package sessionstore_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/alexedwards/scs/v2"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/ddbtest"
	"github.com/dynaguard/dynaguard/sessionstore"
)

// The store alone, as scs's backend: four lines of dynaguard (table,
// keyring, Ensure, NewManager); the rest is plain scs.
func ExampleNewManager() {
	ctx := context.Background()
	client := ddbtest.ExampleClient()  // in production: dynamodb.NewFromConfig(awsConfig)
	secret := strings.Repeat("42", 32) // in production: os.Getenv("DYNAGUARD_SECRET")

	tbl := dynaguard.NewTable(client, ddbtest.ExampleTableName("sessions"))
	if err := tbl.Ensure(ctx); err != nil { // creates or checks the table
		fmt.Println(err)
		return
	}
	defer ddbtest.DropTable(tbl)
	keys, err := dynaguard.ParseKeyring(secret)
	if err != nil {
		fmt.Println(err)
		return
	}
	sm, err := sessionstore.NewManager(sessionstore.Config{Table: tbl, Keys: keys})
	if err != nil {
		fmt.Println(err)
		return
	}

	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		_ = sm.RenewToken(r.Context())
		sm.Put(r.Context(), "user", "ann")
	})
	mux.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s", sm.GetString(r.Context(), "user"))
	})
	srv := httptest.NewServer(sm.LoadAndSave(mux))
	defer srv.Close()

	login, err := http.Post(srv.URL+"/login", "", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	login.Body.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/", nil)
	for _, c := range login.Cookies() {
		req.AddCookie(c)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.Status, string(body), sm.Codec == sessionstore.Codec{})
	// Output: 200 OK hello ann true
}

// An existing scs manager, configured as before, keeps its sessions in
// DynamoDB from now on.
func ExampleUse() {
	var tbl *dynaguard.Table    // dynaguard.NewTable(client, "myapp-auth")
	var keys *dynaguard.Keyring // dynaguard.ParseKeyring(os.Getenv("DYNAGUARD_SECRET"))
	sm := scs.New()             // already set up by the application
	store, err := sessionstore.Use(sm, sessionstore.Config{Table: tbl, Keys: keys})
	_, _ = store, err // store: for Bind, List, Revoke and users.Config.Sessions
}
