package middleware_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/idempotency"
	"github.com/dynaguard/dynaguard/internal/ddbtest"
	"github.com/dynaguard/dynaguard/middleware"
	"github.com/dynaguard/dynaguard/nonce"
	"github.com/dynaguard/dynaguard/sessionstore"
	"github.com/dynaguard/dynaguard/users"
)

// The whole suite around a router, with a webhook that authenticates its
// requests by signature and is therefore exempt: forms need a single-use
// nonce, API routes a signed-in user and an Idempotency-Key, the webhook
// neither.
func ExampleStack_Handler() {
	ctx := context.Background()
	client := ddbtest.ExampleClient()  // in production: dynamodb.NewFromConfig(awsConfig)
	secret := strings.Repeat("42", 32) // in production: os.Getenv("DYNAGUARD_SECRET")
	tbl := dynaguard.NewTable(client, ddbtest.ExampleTableName("stack"))
	if err := tbl.Ensure(ctx); err != nil {
		fmt.Println(err)
		return
	}
	defer ddbtest.DropTable(tbl)
	keys, _ := dynaguard.ParseKeyring(secret)

	sm, _ := sessionstore.NewManager(sessionstore.Config{Table: tbl, Keys: keys})
	accounts, _ := users.New(users.Config{Table: tbl, Keys: keys, Sessions: sm.Store.(*sessionstore.Store)})
	nonces, _ := nonce.New(nonce.Config{Table: tbl, Keys: keys, InsecureCookie: true}) // plain HTTP: this test server
	guard, _ := idempotency.New(idempotency.Config{Table: tbl, Keyring: keys, Scope: idempotency.UserOrSession})
	stack, err := middleware.New(middleware.Config{
		Sessions: sm, Users: accounts, Nonces: nonces, Idempotency: guard,
		Exempt: []string{"/webhooks/"}, // each handler checks the sender's signature itself
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	router := http.NewServeMux()
	router.HandleFunc("GET /transfer", func(w http.ResponseWriter, r *http.Request) {
		tok, _ := nonce.Token(r, "/transfer") // in a page: nonce.Field inside the <form>
		io.WriteString(w, tok)
	})
	router.HandleFunc("POST /transfer", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "sent") })
	router.HandleFunc("POST /webhooks/payments", func(w http.ResponseWriter, r *http.Request) {
		// verify the provider's signature header over the body here
		io.WriteString(w, "webhook accepted")
	})
	router.HandleFunc("POST /api/items", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusCreated) })
	srv := httptest.NewServer(stack.Handler(router))
	defer srv.Close()

	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	send := func(method, path string, form url.Values, header ...string) string {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := browser.Do(req)
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 400 {
			return resp.Status
		}
		return string(body)
	}

	fmt.Println(send("POST", "/transfer", nil)) // no nonce
	tok := send("GET", "/transfer", nil)
	fmt.Println(send("POST", "/transfer", url.Values{"nonce": {tok}}))
	fmt.Println(send("POST", "/transfer", url.Values{"nonce": {tok}})) // the same form again
	fmt.Println(send("POST", "/webhooks/payments", nil, "Sec-Fetch-Site", "cross-site"))
	fmt.Println(send("POST", "/api/items", nil, "Idempotency-Key", `"k1"`)) // nobody signed in
	// Output:
	// 403 Forbidden
	// sent
	// 409 Conflict
	// webhook accepted
	// 401 Unauthorized
}
