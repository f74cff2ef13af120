package dynaguard_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/ddb"
	"github.com/dynaguard/dynaguard/internal/ddbtest"
)

func put(t *testing.T, tbl *dynaguard.Table, pk string, ttl time.Time) {
	t.Helper()
	_, err := tbl.Client.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(tbl.Name),
		Item: map[string]types.AttributeValue{"pk": ddb.S(pk), "ttl": ddb.TTLValue(ttl), "v": ddb.S("old")}})
	if err != nil {
		t.Fatal(err)
	}
}

func TestClassifyConditionFailedCarriesOldItem(t *testing.T) {
	tbl := ddbtest.NewTable(t)
	put(t, tbl, "k", time.Now().Add(time.Hour))
	_, err := tbl.Client.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(tbl.Name),
		Item:                                map[string]types.AttributeValue{"pk": ddb.S("k"), "ttl": ddb.N(1)},
		ConditionExpression:                 aws.String(ddb.CondAbsentOrExpired),
		ExpressionAttributeNames:            ddb.ExprNames(),
		ExpressionAttributeValues:           map[string]types.AttributeValue{":now": ddb.NowValue(time.Now())},
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	err = dynaguard.Classify(err)
	if !errors.Is(err, dynaguard.ErrConditionFailed) || !dynaguard.IsConditionFailed(err) {
		t.Fatalf("got %v, want ErrConditionFailed", err)
	}
	var cf *dynaguard.ConditionFailedError
	if !errors.As(err, &cf) {
		t.Fatal("not a *ConditionFailedError")
	}
	if v, _ := ddb.Str(cf.Item, "v"); v != "old" {
		t.Fatalf("old item = %v, want v=old", cf.Item)
	}
	var sdk *types.ConditionalCheckFailedException
	if !errors.As(err, &sdk) {
		t.Fatal("SDK error not kept in the chain")
	}
	if errors.Is(err, dynaguard.ErrThrottled) {
		t.Fatal("a condition failure is not throttling")
	}
}

// The expiry rule: an expired item counts as absent in write conditions.
func TestConditionTreatsExpiredAsAbsent(t *testing.T) {
	tbl := ddbtest.NewTable(t)
	now := time.Now()
	put(t, tbl, "dead", now.Add(-time.Second))
	claim := func(pk string) error {
		_, err := tbl.Client.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(tbl.Name),
			Item:                      map[string]types.AttributeValue{"pk": ddb.S(pk), "ttl": ddb.TTLValue(now.Add(time.Hour))},
			ConditionExpression:       aws.String(ddb.CondAbsentOrExpired),
			ExpressionAttributeNames:  ddb.ExprNames(),
			ExpressionAttributeValues: map[string]types.AttributeValue{":now": ddb.NowValue(now)},
		})
		return dynaguard.Classify(err)
	}
	if err := claim("dead"); err != nil {
		t.Fatalf("claiming over an expired item: %v", err)
	}
	if err := claim("dead"); !errors.Is(err, dynaguard.ErrConditionFailed) {
		t.Fatalf("claiming a live item: got %v, want ErrConditionFailed", err)
	}
	if err := claim("fresh"); err != nil {
		t.Fatalf("claiming an absent item: %v", err)
	}
}

func TestClassifyTransactionCanceledReasons(t *testing.T) {
	tbl := ddbtest.NewTable(t)
	put(t, tbl, "taken", time.Now().Add(time.Hour))
	cond := func(pk string) types.TransactWriteItem {
		return types.TransactWriteItem{Put: &types.Put{TableName: aws.String(tbl.Name),
			Item:                                map[string]types.AttributeValue{"pk": ddb.S(pk), "ttl": ddb.N(9999999999)},
			ConditionExpression:                 aws.String("attribute_not_exists(pk)"),
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld}}
	}
	_, err := tbl.Client.TransactWriteItems(context.Background(), &dynamodb.TransactWriteItemsInput{
		TransactItems: []types.TransactWriteItem{cond("free"), cond("taken")}})
	err = dynaguard.Classify(err)
	var tc *dynaguard.TransactionCanceledError
	if !errors.Is(err, dynaguard.ErrTransactionCanceled) || !errors.As(err, &tc) {
		t.Fatalf("got %v, want a TransactionCanceledError", err)
	}
	if tc.ConditionFailed(0) || !tc.ConditionFailed(1) || !tc.OnlyConditionsFailed() {
		t.Fatalf("reasons = %+v, want [None ConditionalCheckFailed]", tc.Reasons)
	}
	if v, _ := ddb.Str(tc.Reasons[1].Item, "v"); v != "old" {
		t.Fatalf("reason item = %v, want the old item", tc.Reasons[1].Item)
	}
	if errors.Is(err, dynaguard.ErrThrottled) {
		t.Fatal("condition-only cancellation reported as throttling")
	}
}

func TestClassifyItemTooLarge(t *testing.T) {
	tbl := ddbtest.NewTable(t)
	_, err := tbl.Client.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(tbl.Name),
		Item: map[string]types.AttributeValue{"pk": ddb.S("big"), "ttl": ddb.N(1),
			"data": ddb.B(make([]byte, dynaguard.MaxItemSize+1))}})
	if err = dynaguard.Classify(err); !errors.Is(err, dynaguard.ErrItemTooLarge) {
		t.Fatalf("got %v, want ErrItemTooLarge", err)
	}
}

func TestClassifyInjectedFaults(t *testing.T) {
	tbl := ddbtest.NewTable(t)
	ftbl, f := ddbtest.Inject(tbl)
	for _, fault := range []ddbtest.Fault{ddbtest.Throttling, ddbtest.InternalError, ddbtest.Timeout, ddbtest.ConnReset, ddbtest.ConditionFailed} {
		f.Clear()
		f.Fail("GetItem", fault)
		_, err := ftbl.Client.GetItem(context.Background(), &dynamodb.GetItemInput{TableName: aws.String(tbl.Name), Key: ddb.Key("x")})
		err = dynaguard.Classify(err)
		if err == nil {
			t.Fatalf("%s: no error", fault)
		}
		if got, want := errors.Is(err, dynaguard.ErrThrottled), fault == ddbtest.Throttling; got != want {
			t.Errorf("%s: ErrThrottled = %v, want %v (%v)", fault, got, want, err)
		}
		if got, want := errors.Is(err, dynaguard.ErrConditionFailed), fault == ddbtest.ConditionFailed; got != want {
			t.Errorf("%s: ErrConditionFailed = %v, want %v", fault, got, want)
		}
		if got, want := dynaguard.IsCanceled(err), fault == ddbtest.Timeout; got != want {
			t.Errorf("%s: IsCanceled = %v, want %v", fault, got, want)
		}
	}
	if dynaguard.Classify(nil) != nil {
		t.Fatal("Classify(nil) != nil")
	}
	plain := errors.New("boom")
	if dynaguard.Classify(plain) != plain {
		t.Fatal("unknown errors must pass through unchanged")
	}
}

func TestExpiredRule(t *testing.T) {
	now := time.Unix(1_000_000, 500)
	cases := []struct {
		item map[string]types.AttributeValue
		want bool
	}{
		{nil, true},
		{map[string]types.AttributeValue{}, true},                         // no ttl: malformed, not trusted
		{map[string]types.AttributeValue{"ttl": ddb.S("1000001")}, true},  // wrong type
		{map[string]types.AttributeValue{"ttl": ddb.N(999_999)}, true},    // past
		{map[string]types.AttributeValue{"ttl": ddb.N(1_000_000)}, true},  // at now: dead
		{map[string]types.AttributeValue{"ttl": ddb.N(1_000_001)}, false}, // future
		{map[string]types.AttributeValue{"ttl": &types.AttributeValueMemberN{Value: "x"}}, true},
	}
	for i, c := range cases {
		if got := ddb.Expired(c.item, now); got != c.want {
			t.Errorf("case %d: Expired = %v, want %v", i, got, c.want)
		}
	}
	if got := ddb.EpochSeconds(time.Unix(10, 1)); got != 11 {
		t.Errorf("EpochSeconds rounds up: got %d", got)
	}
	if got := ddb.EpochSeconds(time.Unix(10, 0)); got != 10 {
		t.Errorf("EpochSeconds exact: got %d", got)
	}
	// An item that expires at t is live just before t and dead at t.
	exp := time.Unix(2000, 300)
	item := map[string]types.AttributeValue{"ttl": ddb.TTLValue(exp)}
	if ddb.Expired(item, exp.Add(-time.Millisecond)) {
		t.Error("dead before its expiry")
	}
	if !strings.Contains(ddb.CondLive, "#ttl > :now") {
		t.Error("CondLive must mirror Expired")
	}
}
