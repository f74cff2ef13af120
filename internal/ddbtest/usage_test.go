package ddbtest

import (
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/ddb"
	"github.com/dynaguard/dynaguard/internal/grants"
)

func TestPackageOf(t *testing.T) {
	for fn, want := range map[string]string{
		"github.com/dynaguard/dynaguard.(*Table).Create":                      "github.com/dynaguard/dynaguard",
		"github.com/dynaguard/dynaguard/users.(*Users).Authenticate.func1":    "github.com/dynaguard/dynaguard/users",
		"github.com/dynaguard/dynaguard/sessionstore.(*Store).ownerKeys":      "github.com/dynaguard/dynaguard/sessionstore",
		"github.com/dynaguard/dynaguard/cmd/dynaguard.diagnose":               "github.com/dynaguard/dynaguard/cmd/dynaguard",
		"github.com/dynaguard/dynaguard/internal/ddbtest.record[...].func1":   "github.com/dynaguard/dynaguard/internal/ddbtest",
		"github.com/dynaguard/dynaguard/idempotency.(*Middleware).claim-fm":   "github.com/dynaguard/dynaguard/idempotency",
		"github.com/dynaguard/dynaguard/example/app.(*App).transfers.func2.1": "github.com/dynaguard/dynaguard/example/app",
	} {
		if got := packageOf(fn); got != want {
			t.Errorf("packageOf(%q) = %q, want %q", fn, got, want)
		}
	}
}

// IAM's view of a request: a transaction part by part, every key of a batch,
// the index's partition key for a Query on it.
func TestUsesOf(t *testing.T) {
	key := func(pk string) map[string]types.AttributeValue {
		return map[string]types.AttributeValue{dynaguard.AttrPK: ddb.S(pk)}
	}
	for _, tc := range []struct {
		in   any
		want []grants.Use
	}{
		{&dynamodb.GetItemInput{Key: key("sess#abc")}, []grants.Use{{Op: "GetItem", Prefix: "sess#"}}},
		{&dynamodb.PutItemInput{Item: key("nonce#x")}, []grants.Use{{Op: "PutItem", Prefix: "nonce#"}}},
		{&dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
			{Put: &types.Put{Item: key("user#1")}},
			{Update: &types.Update{Key: key("thr#a")}},
			{Delete: &types.Delete{Key: key("uniq#e")}},
			{ConditionCheck: &types.ConditionCheck{Key: key("tok#t")}},
		}}, []grants.Use{
			{Op: "TransactWriteItems/Put", Prefix: "user#"}, {Op: "TransactWriteItems/Update", Prefix: "thr#"},
			{Op: "TransactWriteItems/Delete", Prefix: "uniq#"}, {Op: "TransactWriteItems/ConditionCheck", Prefix: "tok#"},
		}},
		{&dynamodb.BatchGetItemInput{RequestItems: map[string]types.KeysAndAttributes{"t": {Keys: []map[string]types.AttributeValue{key("user#1"), key("thr#2")}}}},
			[]grants.Use{{Op: "BatchGetItem", Prefix: "user#"}, {Op: "BatchGetItem", Prefix: "thr#"}}},
		{&dynamodb.QueryInput{IndexName: aws.String("gsi1"), KeyConditionExpression: aws.String("#g = :owner AND gsi1sk > :s"),
			ExpressionAttributeNames:  map[string]string{"#g": dynaguard.AttrGSI1PK},
			ExpressionAttributeValues: map[string]types.AttributeValue{":owner": ddb.S("sessions#u1"), ":s": ddb.S("x#")}},
			[]grants.Use{{Op: "Query", Index: "gsi1", Prefix: "sessions#"}}},
		{&dynamodb.QueryInput{KeyConditionExpression: aws.String("pk=:p"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":p": ddb.S("user#9")}},
			[]grants.Use{{Op: "Query", Prefix: "user#"}}},
		{&dynamodb.DescribeTableInput{}, []grants.Use{{Op: "DescribeTable"}}},
	} {
		if got := usesOf(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("usesOf(%T) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// Without Main (benchmarks, the benchmark report) nothing is recorded.
func TestRecordingIsOffWithoutMain(t *testing.T) {
	if recording.Load() {
		t.Fatal("recording is on in a package whose TestMain does not call Main")
	}
}

func TestCheckUsage(t *testing.T) {
	usageMu.Lock()
	saved := usage
	usage = map[usageKey]int{}
	usageMu.Unlock()
	t.Cleanup(func() { usageMu.Lock(); usage = saved; usageMu.Unlock() })
	set := func(pkg string, us ...grants.Use) {
		usageMu.Lock()
		defer usageMu.Unlock()
		usage = map[usageKey]int{}
		for _, u := range us {
			usage[usageKey{pkg, u}]++
		}
	}
	nonce := "github.com/dynaguard/dynaguard/nonce"
	declared, _ := grants.Declared(nonce)

	set(nonce, declared...)
	if msg := checkUsage(nonce, true); msg != "" {
		t.Errorf("exact use reported: %s", msg)
	}
	set(nonce, append(slices.Clone(declared), grants.Use{Op: "Scan"})...)
	if msg := checkUsage(nonce, false); !strings.Contains(msg, "does not declare") || !strings.Contains(msg, "Scan") {
		t.Errorf("undeclared use: %q", msg)
	}
	set(nonce)
	if msg := checkUsage(nonce, false); msg != "" {
		t.Errorf("partial run reported missing uses: %s", msg)
	}
	if msg := checkUsage(nonce, true); !strings.Contains(msg, "never made") {
		t.Errorf("full run without the declared use: %q", msg)
	}
	set("github.com/dynaguard/dynaguard/newpkg", grants.Use{Op: "GetItem", Prefix: "x#"})
	if msg := checkUsage(nonce, false); !strings.Contains(msg, "declares none") {
		t.Errorf("undeclared package: %q", msg)
	}
	set("github.com/dynaguard/dynaguard/example/app", grants.Use{Op: "GetItem", Prefix: "x#"})
	if msg := checkUsage(nonce, false); msg != "" {
		t.Errorf("the example app's own items: %q", msg)
	}
}
