package nonce_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"

	"github.com/alexedwards/scs/v2"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/ddbtest"
	"github.com/dynaguard/dynaguard/nonce"
)

// Single-use forms in an application on plain scs, on any router: tokens
// are bound to the browser and to the scs session, so a token taken before
// someone else logs in on the same browser is refused after it.
func ExampleSCSSession() {
	ctx := context.Background()
	secret := strings.Repeat("42", 32) // in production: os.Getenv("DYNAGUARD_SECRET")
	tbl := dynaguard.NewTable(ddbtest.ExampleClient(), ddbtest.ExampleTableName("nonce"))
	if err := tbl.Ensure(ctx); err != nil {
		fmt.Println(err)
		return
	}
	defer ddbtest.DropTable(tbl)
	keys, _ := dynaguard.ParseKeyring(secret)
	sm := scs.New() // the application's session manager, whatever its store

	nonces, err := nonce.New(nonce.Config{Table: tbl, Keys: keys, Session: nonce.SCSSession(sm),
		InsecureCookie: true}) // this test server is plain HTTP; never in production
	if err != nil {
		fmt.Println(err)
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		_ = sm.RenewToken(r.Context())
		sm.Put(r.Context(), "user", r.FormValue("user"))
	})
	mux.HandleFunc("GET /transfer", func(w http.ResponseWriter, r *http.Request) {
		tok, _ := nonce.Token(r, "transfer") // in a page: nonce.Field(r, "transfer") inside the <form>
		io.WriteString(w, tok)
	})
	mux.Handle("POST /transfer", nonces.Require("transfer")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "sent by "+sm.GetString(r.Context(), "user"))
	})))
	srv := httptest.NewServer(sm.LoadAndSave(nonces.Handler(mux)))
	defer srv.Close()

	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	send := func(method, path string, form url.Values) string {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
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

	send("POST", "/login", url.Values{"user": {"ann"}})
	tok := send("GET", "/transfer", nil)
	fmt.Println(send("POST", "/transfer", url.Values{"nonce": {tok}}))
	fmt.Println(send("POST", "/transfer", url.Values{"nonce": {tok}})) // the same form again

	tok = send("GET", "/transfer", nil)                 // a form left open by ann...
	send("POST", "/login", url.Values{"user": {"eve"}}) // ...then eve logs in on this browser
	fmt.Println(send("POST", "/transfer", url.Values{"nonce": {tok}}))
	// Output:
	// sent by ann
	// 409 Conflict
	// 403 Forbidden
}
