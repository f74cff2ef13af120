//go:build !race

// The race detector drops sync.Pool entries at random, so allocation counts
// are only meaningful without it (make test runs these separately).

package budget

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/dynaguard/dynaguard"
)

// Inside the stack's request budget the wrapper adds no allocation (the one
// counted is the stub's output).
func TestAllocationsWithRequestDeadline(t *testing.T) {
	tbl := Table(dynaguard.NewTable(&deadlineAPI{}, "t"), 0)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	in := &dynamodb.GetItemInput{}
	if n := testing.AllocsPerRun(100, func() { _, _ = tbl.Client.GetItem(ctx, in) }); n > 1 {
		t.Fatalf("%v allocations per call inside a request budget", n)
	}
}
