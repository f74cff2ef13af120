package idempotency_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/idempotency"
	"github.com/dynaguard/dynaguard/internal/ddbtest"
)

type Order struct {
	ID    string `json:"id"`
	Total int    `json:"total"`
}

type Shipment struct {
	Tracking string `json:"tracking"`
}

// Work keyed by the payload's own ID, with a typed result: a redelivered
// order is not shipped twice, and the duplicate gets the first shipment.
func ExampleOnce() {
	ctx := context.Background()
	tbl := dynaguard.NewTable(ddbtest.ExampleClient(), ddbtest.ExampleTableName("once"))
	if err := tbl.Ensure(ctx); err != nil {
		fmt.Println(err)
		return
	}
	defer ddbtest.DropTable(tbl)
	keys, err := dynaguard.ParseKeyring(strings.Repeat("42", 32)) // in production: os.Getenv("DYNAGUARD_SECRET")
	if err != nil {
		fmt.Println(err)
		return
	}
	guard, err := idempotency.New(idempotency.Config{Table: tbl, Keyring: keys, Scope: idempotency.UserOrSession})
	if err != nil {
		fmt.Println(err)
		return
	}

	shipped := 0
	ship := idempotency.Once(guard,
		func(o Order) string { return "orders/" + o.ID },
		func(ctx context.Context, o Order) (Shipment, error) {
			shipped++ // the side effect
			return Shipment{Tracking: "TRK-" + o.ID}, nil
		})

	for range 2 { // the same order, delivered twice
		s, duplicate, err := ship(ctx, Order{ID: "1042", Total: 1250})
		fmt.Println(s.Tracking, duplicate, err)
	}
	_, _, err = ship(ctx, Order{ID: "1042", Total: 9999}) // same ID, other content
	fmt.Println(err)
	fmt.Println("shipped:", shipped)
	// Output:
	// TRK-1042 false <nil>
	// TRK-1042 true <nil>
	// idempotency: key reused with a different payload
	// shipped: 1
}
