package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/ddbtest"
	"github.com/dynaguard/dynaguard/internal/grants"
)

// TestMain proves, after the suite, that the requests this command made are
// exactly those internal/grants declares for it (its part of -admin).
func TestMain(m *testing.M) { os.Exit(ddbtest.Main(m, "github.com/dynaguard/dynaguard/cmd/dynaguard")) }

// dg runs the command as a user would and returns its outputs and error.
func dg(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var o, e bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = run(ctx, args, &o, &e, func() client { return ddbtest.Client(t) })
	return o.String(), e.String(), err
}

func exitCode(err error) int {
	var ee exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.code
	case errors.Is(err, errUsage):
		return 2
	}
	return -1
}

func deleteTable(t *testing.T, name string) {
	t.Cleanup(func() {
		c := ddbtest.Client(t)
		ctx := context.Background()
		_, _ = c.UpdateTable(ctx, &dynamodb.UpdateTableInput{TableName: aws.String(name), DeletionProtectionEnabled: aws.Bool(false)})
		_, _ = c.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(name)})
	})
}

func TestTableCreateThenCheck(t *testing.T) {
	name := ddbtest.TableName(t)
	deleteTable(t, name)
	out, _, err := dg(t, "table", "create", "-table", name)
	if err != nil {
		t.Fatalf("create: %v\n%s", err, out)
	}
	if !strings.Contains(out, "ok: table "+name+" matches") {
		t.Fatalf("create output:\n%s", out)
	}
	if out, _, err := dg(t, "table", "check", "-table", name); err != nil || !strings.Contains(out, "ok:") {
		t.Fatalf("check: %v\n%s", err, out)
	}
	_, _, err = dg(t, "table", "create", "-table", name)
	if !errors.Is(err, dynaguard.ErrTableExists) {
		t.Fatalf("second create: %v, want ErrTableExists", err)
	}
}

// A table made by hand without TTL and without the index: check lists both
// at once and exits 1; fix repairs both in place; check then passes.
func TestTableFixRepairsTTLAndIndex(t *testing.T) {
	c := ddbtest.Client(t)
	name := ddbtest.TableName(t)
	_, err := c.CreateTable(context.Background(), &dynamodb.CreateTableInput{
		TableName:            aws.String(name),
		BillingMode:          types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash}},
	})
	if err != nil {
		t.Fatal(err)
	}
	deleteTable(t, name)

	out, _, err := dg(t, "table", "check", "-table", name)
	if exitCode(err) != 1 || !strings.Contains(out, string(dynaguard.ProblemIndexMissing)) || !strings.Contains(out, string(dynaguard.ProblemTTLDisabled)) {
		t.Fatalf("check of a bare table: exit %d (%v)\n%s", exitCode(err), err, out)
	}
	out, _, err = dg(t, "table", "fix", "-table", name)
	if err != nil {
		t.Fatalf("fix: %v\n%s", err, out)
	}
	for _, want := range []string{"fixed: TTL enabled", "fixed: index gsi1 is ACTIVE", "ok: table " + name + " matches"} {
		if !strings.Contains(out, want) {
			t.Errorf("fix output lacks %q:\n%s", want, out)
		}
	}
	if out, _, err := dg(t, "table", "fix", "-table", name); err != nil || !strings.Contains(out, "nothing to fix") {
		t.Fatalf("second fix: %v\n%s", err, out)
	}
}

// What fix must not touch: a key schema it cannot change, and a missing table.
func TestTableFixLeavesWhatNeedsADecision(t *testing.T) {
	c := ddbtest.Client(t)
	name := ddbtest.TableName(t)
	_, err := c.CreateTable(context.Background(), &dynamodb.CreateTableInput{
		TableName:            aws.String(name),
		BillingMode:          types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("id"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("id"), KeyType: types.KeyTypeHash}},
	})
	if err != nil {
		t.Fatal(err)
	}
	deleteTable(t, name)
	out, _, err := dg(t, "table", "fix", "-table", name)
	if exitCode(err) != 1 || !strings.Contains(out, "cannot fix in place: "+string(dynaguard.ProblemKeySchema)) {
		t.Fatalf("fix of a wrongly keyed table: exit %d (%v)\n%s", exitCode(err), err, out)
	}
	out, _, err = dg(t, "table", "fix", "-table", name+"-absent")
	if exitCode(err) != 1 || !strings.Contains(out, "does not exist") {
		t.Fatalf("fix of a missing table: exit %d (%v)\n%s", exitCode(err), err, out)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		nil, {"nope"}, {"table"}, {"table", "drop", "-table", "x"}, {"table", "check"}, {"doctor"},
		{"iam-policy"}, {"iam-policy", "-table", "x", "-components", "nonce,bogus"},
		{"iam-policy", "-table", "x", "-components", "table"}, {"secret", "extra"},
	} {
		if _, _, err := dg(t, args...); exitCode(err) != 2 {
			t.Errorf("dynaguard %q: exit %d (%v), want 2", args, exitCode(err), err)
		}
	}
	if out, _, err := dg(t, "version"); err != nil || strings.TrimSpace(out) != "dynaguard "+version {
		t.Errorf("version: %q %v", out, err)
	}
}

func TestDoctor(t *testing.T) {
	name := ddbtest.TableName(t)
	deleteTable(t, name)
	if _, _, err := dg(t, "table", "create", "-table", name); err != nil {
		t.Fatal(err)
	}
	out, _, err := dg(t, "doctor", "-table", name)
	if err != nil {
		t.Fatalf("doctor: %v\n%s", err, out)
	}
	for _, want := range []string{
		"ok      layout:",
		"ok      billing: on demand",
		"warn    deletion protection: off",
		"info    encryption at rest: AWS owned key",
		// DynamoDB Local answers UnknownOperationException: said, not guessed.
		"unknown point-in-time recovery: this endpoint does not implement the call",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("doctor output lacks %q:\n%s", want, out)
		}
	}
	if _, _, err := dg(t, "doctor", "-strict", "-table", name); exitCode(err) != 1 {
		t.Errorf("doctor -strict with a warning: exit %d (%v), want 1", exitCode(err), err)
	}
	if _, err := ddbtest.Client(t).UpdateTable(context.Background(), &dynamodb.UpdateTableInput{
		TableName: aws.String(name), DeletionProtectionEnabled: aws.Bool(true),
	}); err != nil {
		t.Fatal(err)
	}
	if out, _, _ := dg(t, "doctor", "-table", name); !strings.Contains(out, "ok      deletion protection: on") {
		t.Errorf("doctor after turning deletion protection on:\n%s", out)
	}
	out, _, err = dg(t, "doctor", "-table", name+"-absent")
	if exitCode(err) != 1 || !strings.Contains(out, "fail    layout: table-missing") {
		t.Errorf("doctor of a missing table: exit %d (%v)\n%s", exitCode(err), err, out)
	}
}

func TestSecret(t *testing.T) {
	out, howto, err := dg(t, "secret")
	if err != nil {
		t.Fatal(err)
	}
	s := strings.TrimSpace(out)
	if b, err := hex.DecodeString(s); err != nil || len(b) != dynaguard.MinSecretLen {
		t.Fatalf("secret %q: %d bytes, %v", s, len(b), err)
	}
	if _, err := dynaguard.ParseKeyring(s); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(howto, "-rotate") {
		t.Errorf("no rotation how-to on stderr:\n%s", howto)
	}
	again, _, _ := dg(t, "secret")
	if strings.TrimSpace(again) == s {
		t.Fatal("two secrets are equal")
	}
	old := strings.TrimSpace(again)
	out, _, err = dg(t, "secret", "-rotate", s+","+old)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(strings.TrimSpace(out), ",")
	if len(parts) != 2 || parts[1] != s || parts[0] == s || parts[0] == old {
		t.Fatalf("rotate printed %q, want NEW,%s", out, s)
	}
	if _, err := dynaguard.ParseKeyring(strings.TrimSpace(out)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := dg(t, "secret", "-rotate", "abcd"); err == nil {
		t.Fatal("rotate accepted a short secret")
	}
}

// The policy is the declaration, statement by statement: every (action,
// key prefix) it allows is a declared use of that component, and every
// declared use is allowed. The declaration itself is proven against what
// each component's own suite made it do (internal/ddbtest.Main).
func TestIAMPolicyIsTheDeclaration(t *testing.T) {
	out, _, err := dg(t, "iam-policy", "-table", "app", "-region", "eu-west-1", "-account", "123456789012")
	if err != nil {
		t.Fatal(err)
	}
	var doc policyDoc
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	const tableARN = "arn:aws:dynamodb:eu-west-1:123456789012:table/app"
	type grant struct{ component, action, resource, pattern string }
	var got []grant
	for _, s := range doc.Statement {
		if s.Effect != "Allow" || len(s.Resource) != 1 {
			t.Fatalf("statement %s: %+v", s.Sid, s)
		}
		patterns := s.Condition["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]
		if len(patterns) == 0 || len(s.Condition) != 1 {
			t.Fatalf("statement %s has no LeadingKeys condition: %+v", s.Sid, s.Condition)
		}
		comp := ""
		for _, name := range grants.Runtime() {
			if strings.HasPrefix(s.Sid, sidName(name)+"Table") || strings.HasPrefix(s.Sid, sidName(name)+"Index") {
				comp = name
			}
		}
		for _, a := range s.Action {
			for _, p := range patterns {
				got = append(got, grant{comp, a, s.Resource[0].(string), p})
			}
		}
	}
	var want []grant
	for _, name := range grants.Runtime() {
		c, _ := grants.Lookup(name)
		for _, u := range c.Uses {
			res := tableARN
			if u.Index != "" {
				res = tableARN + "/index/" + u.Index
			}
			g := grant{name, grants.Action(u.Op), res, u.Prefix + "*"}
			if !slices.Contains(want, g) {
				want = append(want, g)
			}
		}
	}
	for _, g := range got {
		if !slices.Contains(want, g) {
			t.Errorf("policy allows %+v, which no declared use needs", g)
		}
	}
	for _, g := range want {
		if !slices.Contains(got, g) {
			t.Errorf("policy does not allow declared use %+v", g)
		}
	}
	// A batch may mix prefixes (ForAllValues needs one statement matching all
	// of its keys): every batch action sits in one statement per component,
	// with all the prefixes the component uses it on.
	for _, name := range grants.Runtime() {
		c, _ := grants.Lookup(name)
		for _, batch := range []string{"dynamodb:BatchGetItem", "dynamodb:BatchWriteItem"} {
			var want []string
			for _, u := range c.Uses {
				if grants.Action(u.Op) == batch && !slices.Contains(want, u.Prefix+"*") {
					want = append(want, u.Prefix+"*")
				}
			}
			if len(want) == 0 {
				continue
			}
			slices.Sort(want)
			n := 0
			for _, s := range doc.Statement {
				if strings.HasPrefix(s.Sid, sidName(name)+"Table") && slices.Contains(s.Action, batch) {
					n++
					if got := s.Condition["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]; !slices.Equal(got, want) {
						t.Errorf("%s: %s allowed on %v, want all of %v in one statement", name, batch, got, want)
					}
				}
			}
			if n != 1 {
				t.Errorf("%s: %s in %d statements, want 1", name, batch, n)
			}
		}
	}
	if t.Failed() {
		t.Log(out)
	}

	// One component alone: only its statements.
	out, _, err = dg(t, "iam-policy", "-table", "app", "-components", "nonce")
	if err != nil || strings.Count(out, `"Sid"`) != 1 || !strings.Contains(out, `"nonce#*"`) || !strings.Contains(out, `"dynamodb:PutItem"`) {
		t.Errorf("nonce alone: %v\n%s", err, out)
	}

	// -check adds what Table.Check calls, read-only.
	out, _, err = dg(t, "iam-policy", "-table", "app", "-components", "nonce", "-check")
	if err != nil || !strings.Contains(out, `"DynaguardStartupCheck"`) || !strings.Contains(out, `"dynamodb:DescribeTimeToLive"`) ||
		strings.Contains(out, "CreateTable") || strings.Contains(out, "Update") {
		t.Errorf("-check: %v\n%s", err, out)
	}

	// Admin: every management call of Table and of this command, no item access.
	out, _, err = dg(t, "iam-policy", "-admin", "-table", "app")
	if err != nil {
		t.Fatal(err)
	}
	var adm policyDoc
	if err := json.Unmarshal([]byte(out), &adm); err != nil || len(adm.Statement) != 1 {
		t.Fatalf("admin policy: %v\n%s", err, out)
	}
	wantAdmin := []string{"dynamodb:CreateTable", "dynamodb:DescribeContinuousBackups", "dynamodb:DescribeTable",
		"dynamodb:DescribeTimeToLive", "dynamodb:UpdateTable", "dynamodb:UpdateTimeToLive"}
	if !slices.Equal(adm.Statement[0].Action, wantAdmin) {
		t.Errorf("admin actions %v, want %v", adm.Statement[0].Action, wantAdmin)
	}
}
