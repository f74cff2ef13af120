package idempotency_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/idempotency"
)

// Wrap the whole API: POST and PATCH requests that carry an Idempotency-Key
// run once per client and key; the payments route requires a key.
func Example() {
	cfg, err := config.LoadDefaultConfig(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	keys, err := dynaguard.ParseKeyring(os.Getenv("DYNAGUARD_SECRET"))
	if err != nil {
		log.Fatal(err)
	}
	guard, err := idempotency.New(idempotency.Config{
		Table:      dynaguard.NewTable(dynamodb.NewFromConfig(cfg), "myapp-auth"),
		Keyring:    keys,                      // seal stored responses at rest
		Scope:      idempotency.UserOrSession, // keys belong to the user (users.LoadUser)
		CacheBytes: 8 << 20,                   // replays from this instance cost no DynamoDB call
	})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("POST /payments", guard.Require(http.HandlerFunc(createPayment)))
	mux.HandleFunc("POST /notes", createNote)
	// users.LoadUser (or the middleware package) must run before the guard,
	// so that keys are scoped to the signed-in user.
	log.Fatal(http.ListenAndServe(":8080", guard.Handler(mux)))
}

func createPayment(w http.ResponseWriter, r *http.Request) {
	// ... charge the card, passing it the claim's fencing token ...
	// The charge happened: from here on, even a failure must not lead to a
	// second charge on retry. Final records that in the table (one write)
	// before the response acknowledges the charge.
	if err := idempotency.Final(r.Context()); err != nil {
		// Rare (DynamoDB refused the mark, or the lease is lost): the
		// outcome is still stored as final when the handler returns.
		slog.WarnContext(r.Context(), "payment: final mark not recorded", "err", err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Location", "/payments/pay_123")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(map[string]string{"id": "pay_123"})
}

func createNote(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusCreated) }

// Per-route rules: store 5xx responses too, because this handler's side
// effects may have happened before it failed.
func ExampleGuard_With() {
	var guard *idempotency.Guard // from idempotency.New
	strict := guard.With(idempotency.Rules{RequireKey: true, StoreServerErrors: true})
	http.Handle("POST /transfers", strict(http.HandlerFunc(createPayment)))
}

// Process each queue message at most once, whichever consumer receives it
// and however often it is redelivered.
func ExampleGuard_Do() {
	var guard *idempotency.Guard // from idempotency.New
	handle := func(ctx context.Context, msgID string, body []byte) error {
		receipt, replayed, err := guard.Do(ctx, "orders-queue/"+msgID, body, func(ctx context.Context) ([]byte, error) {
			// ... the side effect; ctx is canceled if the claim is lost ...
			return []byte("shipment 8812"), nil
		})
		var inFlight *idempotency.InFlightError
		switch {
		case errors.As(err, &inFlight):
			// Another consumer is on it: redeliver after its lease.
			return fmt.Errorf("retry after %v: %w", time.Until(inFlight.LeaseExpires), err)
		case err != nil:
			return err
		}
		log.Printf("%s (duplicate delivery: %v)", receipt, replayed)
		return nil
	}
	_ = handle
}

func ExampleParseKey() {
	for _, v := range []string{
		`"8e03978e-40d5-43e8-bc93-6894a57f9324"`, // the draft's form
		`8e03978e-40d5-43e8-bc93-6894a57f9324`,   // bare, as many clients send it
		`"quote \" inside"`,
		`two words`,
	} {
		key, err := idempotency.ParseKey(v)
		fmt.Printf("%q %v\n", key, err)
	}
	// Output:
	// "8e03978e-40d5-43e8-bc93-6894a57f9324" <nil>
	// "8e03978e-40d5-43e8-bc93-6894a57f9324" <nil>
	// "quote \" inside" <nil>
	// "" idempotency: malformed Idempotency-Key
}

func ExampleFormatKey() {
	fmt.Println(idempotency.FormatKey(`order "42"`))
	// Output: "order \"42\""
}
