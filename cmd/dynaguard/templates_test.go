package main

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/zclconf/go-cty/cty"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/ddbtest"
	"github.com/dynaguard/dynaguard/internal/grants"
)

// tableSpec is what a template says about the table: the CreateTable request
// it amounts to, and the settings CreateTable cannot carry.
type tableSpec struct {
	create             dynamodb.CreateTableInput
	ttlAttr            string
	ttlOn, pitr, delPr bool
}

// cfnSpec turns the CloudFormation template's table resource into a
// CreateTable request, property by property (the property names and values
// are the API's).
func cfnSpec(t *testing.T, tmpl []byte, tableName string) (tableSpec, map[string]any) {
	t.Helper()
	var doc struct {
		Resources map[string]struct {
			Type       string
			Properties json.RawMessage
		}
	}
	if err := json.Unmarshal(tmpl, &doc); err != nil {
		t.Fatal(err)
	}
	res, ok := doc.Resources[cfnTableResource]
	if !ok || res.Type != "AWS::DynamoDB::Table" {
		t.Fatalf("no AWS::DynamoDB::Table %s in the template", cfnTableResource)
	}
	var p struct {
		TableName               map[string]string
		BillingMode             types.BillingMode
		AttributeDefinitions    []types.AttributeDefinition
		KeySchema               []types.KeySchemaElement
		GlobalSecondaryIndexes  []types.GlobalSecondaryIndex
		TimeToLiveSpecification struct {
			AttributeName string
			Enabled       bool
		}
		PointInTimeRecoverySpecification struct{ PointInTimeRecoveryEnabled bool }
		DeletionProtectionEnabled        bool
	}
	dec := json.NewDecoder(bytes.NewReader(res.Properties))
	dec.DisallowUnknownFields() // a property this test does not turn into the request fails it
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("table properties: %v", err)
	}
	if p.TableName["Ref"] != "TableName" {
		t.Fatalf("TableName is %v, want the TableName parameter", p.TableName)
	}
	var policy struct {
		Properties struct{ PolicyDocument map[string]any }
	}
	if err := json.Unmarshal(mustField(t, tmpl, "DynaguardRuntimePolicy"), &policy); err != nil {
		t.Fatal(err)
	}
	return tableSpec{
		create: dynamodb.CreateTableInput{
			TableName:              aws.String(tableName),
			BillingMode:            p.BillingMode,
			AttributeDefinitions:   p.AttributeDefinitions,
			KeySchema:              p.KeySchema,
			GlobalSecondaryIndexes: p.GlobalSecondaryIndexes,
		},
		ttlAttr: p.TimeToLiveSpecification.AttributeName,
		ttlOn:   p.TimeToLiveSpecification.Enabled,
		pitr:    p.PointInTimeRecoverySpecification.PointInTimeRecoveryEnabled,
		delPr:   p.DeletionProtectionEnabled,
	}, policy.Properties.PolicyDocument
}

func mustField(t *testing.T, tmpl []byte, resource string) []byte {
	var doc struct{ Resources map[string]json.RawMessage }
	if err := json.Unmarshal(tmpl, &doc); err != nil {
		t.Fatal(err)
	}
	r, ok := doc.Resources[resource]
	if !ok {
		t.Fatalf("no resource %s", resource)
	}
	return r
}

// The CloudFormation template, turned into a CreateTable request and created
// on DynamoDB Local with its TTL and deletion protection, passes Table.Check.
func TestCloudFormationTablePassesCheck(t *testing.T) {
	out, _, err := dg(t, "cloudformation", "-table", "myapp")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, `"Default": "myapp"`) {
		t.Errorf("TableName parameter default not set:\n%s", out)
	}
	name := ddbtest.TableName(t)
	spec, policy := cfnSpec(t, []byte(out), name)
	if !spec.ttlOn || spec.ttlAttr != dynaguard.AttrTTL || !spec.pitr || !spec.delPr {
		t.Fatalf("template settings: %+v", spec)
	}
	c := ddbtest.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	in := spec.create
	if _, err := c.CreateTable(ctx, &in); err != nil {
		t.Fatalf("CreateTable from the template: %v", err)
	}
	deleteTable(t, name)
	waitActive(t, c, name)
	if _, err := c.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{TableName: aws.String(name),
		TimeToLiveSpecification: &types.TimeToLiveSpecification{AttributeName: aws.String(spec.ttlAttr), Enabled: aws.Bool(spec.ttlOn)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UpdateTable(ctx, &dynamodb.UpdateTableInput{TableName: aws.String(name), DeletionProtectionEnabled: aws.Bool(spec.delPr)}); err != nil {
		t.Fatal(err)
	}
	if err := dynaguard.NewTable(c, name).Check(ctx); err != nil {
		t.Fatalf("the template's table fails Check: %v", err)
	}

	// The policy in the template is the runtime policy, bound to the table.
	want, _ := runtimePolicy(grants.Runtime(), arns{
		table: map[string]any{"Fn::GetAtt": []string{cfnTableResource, "Arn"}},
		index: map[string]any{"Fn::Sub": "${" + cfnTableResource + ".Arn}/index/" + dynaguard.IndexGSI1},
	})
	if !sameJSON(t, policy, want) {
		t.Errorf("template policy differs from iam-policy's:\n%v", policy)
	}
}

func waitActive(t *testing.T, c *dynamodb.Client, name string) {
	t.Helper()
	for range 200 {
		d, err := c.DescribeTable(context.Background(), &dynamodb.DescribeTableInput{TableName: aws.String(name)})
		if err != nil {
			t.Fatal(err)
		}
		if d.Table.TableStatus == types.TableStatusActive {
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("table %s never became ACTIVE", name)
}

func sameJSON(t *testing.T, a, b any) bool {
	t.Helper()
	norm := func(v any) any {
		j, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var out any
		if err := json.Unmarshal(j, &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	return reflect.DeepEqual(norm(a), norm(b))
}

// The Terraform configuration parses (hcl/v2) and describes the same table as
// the CloudFormation template — which is proven against Table.Check above —
// with the same settings and the same policy.
func TestTerraformDescribesTheSameTable(t *testing.T) {
	out, _, err := dg(t, "terraform", "-table", "myapp")
	if err != nil {
		t.Fatal(err)
	}
	f, diags := hclparse.NewParser().ParseHCL([]byte(out), "dynaguard.tf")
	if diags.HasErrors() {
		t.Fatalf("parse: %v\n%s", diags, out)
	}
	top, diags := f.Body.Content(&hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{
		{Type: "variable", LabelNames: []string{"name"}},
		{Type: "resource", LabelNames: []string{"type", "name"}},
		{Type: "output", LabelNames: []string{"name"}},
	}})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	var table, policy hcl.Body
	defaultName := ""
	for _, b := range top.Blocks {
		switch {
		case b.Type == "variable" && b.Labels[0] == "table_name":
			attrs, _ := b.Body.JustAttributes()
			defaultName = evalString(t, attrs["default"].Expr, nil)
		case b.Type == "resource" && b.Labels[0] == "aws_dynamodb_table" && b.Labels[1] == "dynaguard":
			table = b.Body
		case b.Type == "resource" && b.Labels[0] == "aws_iam_policy":
			policy = b.Body
		}
	}
	if table == nil || policy == nil || defaultName != "myapp" {
		t.Fatalf("table %v, policy %v, default name %q", table != nil, policy != nil, defaultName)
	}
	name := ddbtest.TableName(t)
	vars := &hcl.EvalContext{Variables: map[string]cty.Value{"var": cty.ObjectVal(map[string]cty.Value{"table_name": cty.StringVal(name)})}}
	tc, diags := table.Content(&hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{{Name: "name", Required: true}, {Name: "billing_mode", Required: true},
			{Name: "hash_key", Required: true}, {Name: "deletion_protection_enabled", Required: true}},
		Blocks: []hcl.BlockHeaderSchema{{Type: "attribute"}, {Type: "global_secondary_index"}, {Type: "ttl"},
			{Type: "point_in_time_recovery"}, {Type: "lifecycle"}},
	})
	if diags.HasErrors() {
		t.Fatal(diags) // an attribute or block this test does not read fails it
	}
	spec := tableSpec{create: dynamodb.CreateTableInput{
		TableName:   aws.String(evalString(t, tc.Attributes["name"].Expr, vars)),
		BillingMode: types.BillingMode(evalString(t, tc.Attributes["billing_mode"].Expr, nil)),
		KeySchema:   []types.KeySchemaElement{{AttributeName: aws.String(evalString(t, tc.Attributes["hash_key"].Expr, nil)), KeyType: types.KeyTypeHash}},
	}}
	spec.delPr = evalBool(t, tc.Attributes["deletion_protection_enabled"].Expr)
	for _, b := range tc.Blocks {
		attrs, diags := b.Body.JustAttributes()
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		s := func(n string) string { return evalString(t, attrs[n].Expr, nil) }
		switch b.Type {
		case "attribute":
			spec.create.AttributeDefinitions = append(spec.create.AttributeDefinitions,
				types.AttributeDefinition{AttributeName: aws.String(s("name")), AttributeType: types.ScalarAttributeType(s("type"))})
		case "global_secondary_index":
			spec.create.GlobalSecondaryIndexes = append(spec.create.GlobalSecondaryIndexes, types.GlobalSecondaryIndex{
				IndexName: aws.String(s("name")),
				KeySchema: []types.KeySchemaElement{
					{AttributeName: aws.String(s("hash_key")), KeyType: types.KeyTypeHash},
					{AttributeName: aws.String(s("range_key")), KeyType: types.KeyTypeRange},
				},
				Projection: &types.Projection{ProjectionType: types.ProjectionType(s("projection_type"))},
			})
		case "ttl":
			spec.ttlAttr, spec.ttlOn = s("attribute_name"), evalBool(t, attrs["enabled"].Expr)
		case "point_in_time_recovery":
			spec.pitr = evalBool(t, attrs["enabled"].Expr)
		case "lifecycle":
			if !evalBool(t, attrs["prevent_destroy"].Expr) {
				t.Error("prevent_destroy is not set")
			}
		}
	}

	var cfn bytes.Buffer
	if err := writeCloudFormation(&cfn, "myapp"); err != nil {
		t.Fatal(err)
	}
	want, _ := cfnSpec(t, cfn.Bytes(), name)
	if !sameJSON(t, spec.create, want.create) || spec.ttlAttr != want.ttlAttr || spec.ttlOn != want.ttlOn ||
		spec.pitr != want.pitr || spec.delPr != want.delPr {
		t.Errorf("Terraform describes\n%+v\nCloudFormation\n%+v", spec, want)
	}

	// The policy heredoc is the runtime policy with the table's ARN.
	pa, _ := policy.JustAttributes()
	arn := "arn:aws:dynamodb:eu-west-1:123456789012:table/" + name
	pvars := &hcl.EvalContext{Variables: map[string]cty.Value{"aws_dynamodb_table": cty.ObjectVal(map[string]cty.Value{
		"dynaguard": cty.ObjectVal(map[string]cty.Value{"arn": cty.StringVal(arn)}),
	})}}
	var got any
	if err := json.Unmarshal([]byte(evalString(t, pa["policy"].Expr, pvars)), &got); err != nil {
		t.Fatal(err)
	}
	wantPolicy, _ := runtimePolicy(grants.Runtime(), plainARNs("aws", "eu-west-1", "123456789012", name))
	if !sameJSON(t, got, wantPolicy) {
		t.Errorf("Terraform policy differs from iam-policy's:\n%v", got)
	}
}

func evalString(t *testing.T, e hcl.Expression, ctx *hcl.EvalContext) string {
	t.Helper()
	v, diags := e.Value(ctx)
	if diags.HasErrors() || v.Type() != cty.String {
		t.Fatalf("%v: %v (%s)", e.Range(), diags, v.Type().FriendlyName())
	}
	return v.AsString()
}

func evalBool(t *testing.T, e hcl.Expression) bool {
	t.Helper()
	v, diags := e.Value(nil)
	if diags.HasErrors() || v.Type() != cty.Bool {
		t.Fatalf("%v: %v", e.Range(), diags)
	}
	return v.True()
}
