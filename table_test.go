package dynaguard_test

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/ddbtest"
)

func TestCreateThenCheckIsClean(t *testing.T) {
	tbl := ddbtest.NewTable(t)
	ctx := context.Background()
	if err := tbl.Check(ctx); err != nil {
		t.Fatalf("Check on a freshly created table: %v", err)
	}
	err := tbl.Create(ctx)
	if !errors.Is(err, dynaguard.ErrTableExists) {
		t.Fatalf("second Create: got %v, want ErrTableExists", err)
	}
	if err := tbl.Ensure(ctx); err != nil {
		t.Fatalf("Ensure on an existing table: %v", err)
	}
	ttl, err := ddbtest.Client(t).DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(tbl.Name)})
	if err != nil {
		t.Fatal(err)
	}
	if d := ttl.TimeToLiveDescription; d.TimeToLiveStatus != types.TimeToLiveStatusEnabled || aws.ToString(d.AttributeName) != dynaguard.AttrTTL {
		t.Fatalf("TTL = %s on %q, want ENABLED on %q", d.TimeToLiveStatus, aws.ToString(d.AttributeName), dynaguard.AttrTTL)
	}
}

func TestEnsureCreatesMissingTable(t *testing.T) {
	c := ddbtest.Client(t)
	name := ddbtest.TableName(t)
	tbl := dynaguard.NewTable(c, name)
	t.Cleanup(func() { c.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(name)}) })
	ctx := context.Background()
	var ce *dynaguard.CheckError
	if err := tbl.Check(ctx); !errors.As(err, &ce) || !ce.Has(dynaguard.ProblemMissing) {
		t.Fatalf("Check before create: got %v, want table-missing", err)
	}
	if err := tbl.Ensure(ctx); err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	if err := tbl.Check(ctx); err != nil {
		t.Fatalf("Check after Ensure: %v", err)
	}
}

// misconfigured creates a table by hand, the way an operator might get it
// wrong, and returns its dynaguard.Table.
func misconfigured(t *testing.T, in *dynamodb.CreateTableInput, ttlAttr string) *dynaguard.Table {
	t.Helper()
	c := ddbtest.Client(t)
	ctx := context.Background()
	name := ddbtest.TableName(t)
	in.TableName = aws.String(name)
	in.BillingMode = types.BillingModePayPerRequest
	if _, err := c.CreateTable(ctx, in); err != nil {
		t.Fatalf("create: %v", err)
	}
	t.Cleanup(func() { c.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(name)}) })
	if ttlAttr != "" {
		_, err := c.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{TableName: aws.String(name),
			TimeToLiveSpecification: &types.TimeToLiveSpecification{AttributeName: aws.String(ttlAttr), Enabled: aws.Bool(true)}})
		if err != nil {
			t.Fatalf("enable TTL: %v", err)
		}
	}
	return dynaguard.NewTable(c, name)
}

func attrs(names ...string) []types.AttributeDefinition {
	var out []types.AttributeDefinition
	for i := 0; i+1 < len(names); i += 2 {
		out = append(out, types.AttributeDefinition{AttributeName: aws.String(names[i]), AttributeType: types.ScalarAttributeType(names[i+1])})
	}
	return out
}

func hash(name string) types.KeySchemaElement {
	return types.KeySchemaElement{AttributeName: aws.String(name), KeyType: types.KeyTypeHash}
}

func rng(name string) types.KeySchemaElement {
	return types.KeySchemaElement{AttributeName: aws.String(name), KeyType: types.KeyTypeRange}
}

func gsi(name string, ks ...types.KeySchemaElement) []types.GlobalSecondaryIndex {
	return []types.GlobalSecondaryIndex{{IndexName: aws.String(name), KeySchema: ks,
		Projection: &types.Projection{ProjectionType: types.ProjectionTypeKeysOnly}}}
}

func TestCheckFindsEachMisconfiguration(t *testing.T) {
	goodAttrs := attrs("pk", "S", "gsi1pk", "S", "gsi1sk", "S")
	goodIndex := gsi("gsi1", hash("gsi1pk"), rng("gsi1sk"))
	cases := []struct {
		name string
		in   *dynamodb.CreateTableInput
		ttl  string
		want []dynaguard.ProblemCode
	}{
		{"ttl_disabled", &dynamodb.CreateTableInput{AttributeDefinitions: goodAttrs, KeySchema: []types.KeySchemaElement{hash("pk")}, GlobalSecondaryIndexes: goodIndex},
			"", []dynaguard.ProblemCode{dynaguard.ProblemTTLDisabled}},
		{"ttl_other_attribute", &dynamodb.CreateTableInput{AttributeDefinitions: goodAttrs, KeySchema: []types.KeySchemaElement{hash("pk")}, GlobalSecondaryIndexes: goodIndex},
			"expires_at", []dynaguard.ProblemCode{dynaguard.ProblemTTLAttribute}},
		{"index_missing", &dynamodb.CreateTableInput{AttributeDefinitions: attrs("pk", "S"), KeySchema: []types.KeySchemaElement{hash("pk")}},
			"ttl", []dynaguard.ProblemCode{dynaguard.ProblemIndexMissing}},
		{"index_wrong_keys", &dynamodb.CreateTableInput{AttributeDefinitions: attrs("pk", "S", "owner", "S"), KeySchema: []types.KeySchemaElement{hash("pk")},
			GlobalSecondaryIndexes: gsi("gsi1", hash("owner"))}, "ttl", []dynaguard.ProblemCode{dynaguard.ProblemIndexSchema}},
		{"sort_key", &dynamodb.CreateTableInput{AttributeDefinitions: attrs("pk", "S", "sk", "S", "gsi1pk", "S", "gsi1sk", "S"),
			KeySchema: []types.KeySchemaElement{hash("pk"), rng("sk")}, GlobalSecondaryIndexes: goodIndex}, "ttl", []dynaguard.ProblemCode{dynaguard.ProblemKeySchema}},
		{"numeric_pk", &dynamodb.CreateTableInput{AttributeDefinitions: attrs("pk", "N", "gsi1pk", "S", "gsi1sk", "S"),
			KeySchema: []types.KeySchemaElement{hash("pk")}, GlobalSecondaryIndexes: goodIndex}, "ttl", []dynaguard.ProblemCode{dynaguard.ProblemAttrType}},
		{"other_pk_name", &dynamodb.CreateTableInput{AttributeDefinitions: attrs("id", "S", "gsi1pk", "S", "gsi1sk", "S"),
			KeySchema: []types.KeySchemaElement{hash("id")}, GlobalSecondaryIndexes: goodIndex}, "ttl", []dynaguard.ProblemCode{dynaguard.ProblemKeySchema}},
		{"everything_wrong", &dynamodb.CreateTableInput{AttributeDefinitions: attrs("id", "S"), KeySchema: []types.KeySchemaElement{hash("id")}},
			"", []dynaguard.ProblemCode{dynaguard.ProblemKeySchema, dynaguard.ProblemIndexMissing, dynaguard.ProblemTTLDisabled}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tbl := misconfigured(t, tc.in, tc.ttl)
			err := tbl.Check(context.Background())
			if !errors.Is(err, dynaguard.ErrTableMisconfigured) {
				t.Fatalf("Check: got %v, want ErrTableMisconfigured", err)
			}
			var ce *dynaguard.CheckError
			errors.As(err, &ce)
			if len(ce.Problems) != len(tc.want) {
				t.Fatalf("problems = %v, want codes %v", ce.Problems, tc.want)
			}
			for _, code := range tc.want {
				if !ce.Has(code) {
					t.Errorf("missing problem %s in %v", code, ce.Problems)
				}
			}
			t.Log(err)
		})
	}
}

type dataOnly struct{ dynaguard.API }

func TestAdminNeeded(t *testing.T) {
	tbl := dynaguard.NewTable(dataOnly{ddbtest.Client(t)}, "x")
	if err := tbl.Check(context.Background()); !errors.Is(err, dynaguard.ErrNotAdmin) {
		t.Fatalf("got %v, want ErrNotAdmin", err)
	}
}
