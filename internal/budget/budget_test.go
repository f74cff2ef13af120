package budget

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/dynaguard/dynaguard"
)

// deadlineAPI records the deadline of each call's context.
type deadlineAPI struct {
	dynaguard.API
	dl    time.Time
	hasDL bool
	ctx   context.Context
}

func (a *deadlineAPI) GetItem(ctx context.Context, _ *dynamodb.GetItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	a.dl, a.hasDL = ctx.Deadline()
	a.ctx = ctx
	return &dynamodb.GetItemOutput{}, nil
}

func TestTableBoundsEachCall(t *testing.T) {
	api := &deadlineAPI{}
	tbl := Table(dynaguard.NewTable(api, "t"), 2*time.Second)
	if Table(tbl, 2*time.Second) != tbl {
		t.Fatal("wrapping twice")
	}
	// Outside a request budget: now + the component's budget.
	_, _ = tbl.Client.GetItem(context.Background(), &dynamodb.GetItemInput{})
	if left := time.Until(api.dl); !api.hasDL || left > 2*time.Second || left < time.Second {
		t.Fatalf("no request budget: deadline in %v", left)
	}
	// Inside an earlier request deadline: the caller's context itself, no
	// new context.
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, _ = tbl.Client.GetItem(ctx, &dynamodb.GetItemInput{})
	if api.ctx != ctx {
		t.Fatal("a context with an earlier deadline was wrapped")
	}
	// A later caller deadline is shortened to the budget.
	late, cancelLate := context.WithTimeout(context.Background(), time.Minute)
	defer cancelLate()
	_, _ = tbl.Client.GetItem(late, &dynamodb.GetItemInput{})
	if left := time.Until(api.dl); left > 2*time.Second {
		t.Fatalf("late caller deadline kept: %v", left)
	}
}

func TestDetach(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	cancel() // the client left, or the deadline passed
	d, dcancel := Detach(ctx, 10*time.Second)
	defer dcancel()
	if d.Err() != nil {
		t.Fatal("detached context ended with its parent")
	}
	if dl, _ := d.Deadline(); time.Until(dl) > time.Second+Grace {
		t.Fatalf("detached deadline in %v, want the request's + Grace", time.Until(dl))
	}
	d2, cancel2 := Detach(context.Background(), 50*time.Millisecond)
	defer cancel2()
	if dl, ok := d2.Deadline(); !ok || time.Until(dl) > 50*time.Millisecond {
		t.Fatal("no request deadline: want max")
	}
}
