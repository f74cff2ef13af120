package idempotency_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/idempotency"
	"github.com/dynaguard/dynaguard/internal/ddbtest"
)

// Idempotency alone, in front of an API whose clients send an API key: six
// lines of dynaguard (table, Ensure, keyring, New with its Scope, Handler).
// Keys are scoped per API key, which is hashed and never stored.
func Example_apiKeys() {
	ctx := context.Background()
	client := ddbtest.ExampleClient()  // in production: dynamodb.NewFromConfig(awsConfig)
	secret := strings.Repeat("42", 32) // in production: os.Getenv("DYNAGUARD_SECRET")

	tbl := dynaguard.NewTable(client, ddbtest.ExampleTableName("idem"))
	if err := tbl.Ensure(ctx); err != nil {
		fmt.Println(err)
		return
	}
	defer ddbtest.DropTable(tbl)
	keys, err := dynaguard.ParseKeyring(secret)
	if err != nil {
		fmt.Println(err)
		return
	}
	guard, err := idempotency.New(idempotency.Config{Table: tbl, Keyring: keys,
		Scope: idempotency.APIKeyHeader("X-API-Key")})
	if err != nil {
		fmt.Println(err)
		return
	}

	var charges atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("POST /charges", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, "charge %d", charges.Add(1))
	})
	srv := httptest.NewServer(guard.Handler(mux))
	defer srv.Close()

	post := func(apiKey string) {
		req, _ := http.NewRequest("POST", srv.URL+"/charges", strings.NewReader(`{"amount":100}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", `"order-42"`)
		if apiKey != "" {
			req.Header.Set("X-API-Key", apiKey)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusCreated {
			body = []byte(resp.Header.Get("Content-Type"))
		}
		fmt.Printf("%d replayed=%q %s\n", resp.StatusCode, resp.Header.Get("Idempotent-Replayed"), body)
	}
	post("key-of-client-a") // runs
	post("key-of-client-a") // a retry: the stored response, not a second charge
	post("key-of-client-b") // another client's "order-42": its own key space
	post("")                // no API key: nobody to attribute the key to
	fmt.Println("charges:", charges.Load())
	// Output:
	// 201 replayed="" charge 1
	// 201 replayed="true" charge 1
	// 201 replayed="" charge 2
	// 403 replayed="" application/problem+json
	// charges: 2
}

// A Scope of the application's own: here the tenant that an earlier
// authentication middleware put in the request's context.
func ExampleConfig_scope() {
	type tenantKey struct{}
	var tbl *dynaguard.Table    // dynaguard.NewTable(client, "myapp-auth")
	var keys *dynaguard.Keyring // dynaguard.ParseKeyring(os.Getenv("DYNAGUARD_SECRET"))
	guard, err := idempotency.New(idempotency.Config{
		Table:   tbl,
		Keyring: keys,
		Scope: func(r *http.Request) (string, bool) {
			tenant, ok := r.Context().Value(tenantKey{}).(string)
			return tenant, ok && tenant != ""
		},
	})
	_, _ = guard, err
}
