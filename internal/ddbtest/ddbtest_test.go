package ddbtest_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/ddb"
	"github.com/dynaguard/dynaguard/internal/ddbtest"
)

func TestRecorderCountsAndFlags(t *testing.T) {
	tbl, rec := ddbtest.Record(ddbtest.NewTable(t))
	rec.Capacity = true
	ctx := context.Background()
	_, err := tbl.Client.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(tbl.Name),
		Item:                                map[string]types.AttributeValue{"pk": ddb.S("a"), "ttl": ddb.N(9999999999)},
		ConditionExpression:                 aws.String("attribute_not_exists(pk)"),
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld})
	if err != nil {
		t.Fatal(err)
	}
	in := &dynamodb.GetItemInput{TableName: aws.String(tbl.Name), Key: ddb.Key("a"), ConsistentRead: aws.Bool(true)}
	if _, err := tbl.Client.GetItem(ctx, in); err != nil {
		t.Fatal(err)
	}
	if in.ReturnConsumedCapacity != "" {
		t.Fatal("the recorder must not modify the caller's input")
	}
	calls := rec.Calls()
	if len(calls) != 2 || rec.Count("PutItem") != 1 || rec.Count("GetItem") != 1 || rec.Writes() != 1 || rec.Reads() != 1 {
		t.Fatalf("calls = %+v", calls)
	}
	if calls[0].Condition != "attribute_not_exists(pk)" || !calls[0].ReturnOnFail {
		t.Errorf("put flags not recorded: %+v", calls[0])
	}
	if !calls[1].ConsistentRead {
		t.Errorf("ConsistentRead not recorded: %+v", calls[1])
	}
	rcu, wcu := rec.CapacityUsed()
	if rcu != 1 || wcu != 1 {
		t.Errorf("capacity = %v RCU, %v WCU; want 1 and 1", rcu, wcu)
	}
	rec.Reset()
	if rec.Count("") != 0 {
		t.Fatal("Reset kept calls")
	}
}

func TestFaultsInjectChosenCalls(t *testing.T) {
	tbl, f := ddbtest.Inject(ddbtest.NewTable(t))
	ctx := context.Background()
	get := func() error {
		_, err := tbl.Client.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(tbl.Name), Key: ddb.Key("a")})
		return err
	}
	f.FailNth("GetItem", 2, ddbtest.Throttling)
	if err := get(); err != nil {
		t.Fatalf("1st call: %v", err)
	}
	if err := get(); !errors.Is(dynaguard.Classify(err), dynaguard.ErrThrottled) {
		t.Fatalf("2nd call: got %v, want throttling", err)
	}
	if err := get(); err != nil {
		t.Fatalf("3rd call: %v", err)
	}
	f.Fail("", ddbtest.InternalError)
	_, err := tbl.Client.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(tbl.Name),
		Item: map[string]types.AttributeValue{"pk": ddb.S("a")}})
	var ise *types.InternalServerError
	if !errors.As(err, &ise) {
		t.Fatalf("got %v, want InternalServerError", err)
	}
	f.Clear()
	f.Fail("Query", ddbtest.ConnReset)
	_, err = tbl.Client.Query(ctx, &dynamodb.QueryInput{TableName: aws.String(tbl.Name)})
	if err == nil || !strings.Contains(err.Error(), "connection reset") {
		t.Fatalf("got %v, want connection reset", err)
	}
	if f.Calls("GetItem") != 3 || f.Calls("") != 5 {
		t.Fatalf("calls: GetItem %d, all %d", f.Calls("GetItem"), f.Calls(""))
	}
	// Injected faults never reach the table.
	out, err := ddbtest.Client(t).GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(tbl.Name), Key: ddb.Key("a"), ConsistentRead: aws.Bool(true)})
	if err != nil || out.Item != nil {
		t.Fatalf("the failed put reached the table: %v %v", out.Item, err)
	}
}

func TestFaultsAreSafeForConcurrentUse(t *testing.T) {
	tbl, f := ddbtest.Inject(ddbtest.NewTable(t))
	f.Fail("GetItem", ddbtest.Timeout)
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := tbl.Client.GetItem(context.Background(), &dynamodb.GetItemInput{TableName: aws.String(tbl.Name), Key: ddb.Key("a")})
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("got %v", err)
			}
		}()
	}
	wg.Wait()
	if f.Calls("GetItem") != 20 {
		t.Fatalf("calls = %d", f.Calls("GetItem"))
	}
}

func TestClock(t *testing.T) {
	t0 := time.Unix(1000, 0)
	c := ddbtest.NewClock(t0)
	c.Advance(time.Minute)
	if !c.Now().Equal(t0.Add(time.Minute)) {
		t.Fatal("Advance")
	}
	var _ dynaguard.Clock = c
}
