package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"

	"github.com/dynaguard/dynaguard"
)

func (e *env) table(sub string, args []string) error {
	fs := e.flags("table " + sub)
	var a awsFlags
	a.register(fs)
	timeout := fs.Duration("timeout", 10*time.Minute, "give up waiting for the table or the index after this long")
	if err := e.parse(fs, args); err != nil {
		return err
	}
	if err := requireTable(e, fs, a.table); err != nil {
		return err
	}
	c, err := e.client(&a)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(e.ctx, *timeout)
	defer cancel()
	tbl := dynaguard.NewTable(c, a.table)
	switch sub {
	case "create":
		if err := tbl.Create(ctx); err != nil {
			return err
		}
		fmt.Fprintf(e.out, "created table %s (on demand, TTL on %s, index %s)\n", a.table, dynaguard.AttrTTL, dynaguard.IndexGSI1)
		fmt.Fprintf(e.out, "next: dynaguard doctor -table %s (point-in-time recovery and deletion protection are off)\n", a.table)
		return e.check(ctx, tbl)
	case "check":
		return e.check(ctx, tbl)
	default:
		return e.fix(ctx, c, tbl)
	}
}

// check prints the outcome of Table.Check: every problem, one a line.
func (e *env) check(ctx context.Context, tbl *dynaguard.Table) error {
	err := tbl.Check(ctx)
	var ce *dynaguard.CheckError
	switch {
	case err == nil:
		fmt.Fprintf(e.out, "ok: table %s matches the dynaguard layout\n", tbl.Name)
		return nil
	case errors.As(err, &ce):
		fmt.Fprintf(e.out, "table %s does not match the dynaguard layout:\n", tbl.Name)
		for _, p := range ce.Problems {
			fmt.Fprintf(e.out, "  - %s\n", p)
		}
		return exitError{1}
	}
	return err
}

// fix repairs in place what can be repaired without touching data: TTL off,
// and the index missing. Everything else needs a decision (a new table, or
// a TTL attribute change that would stop other items expiring) and is only
// reported.
func (e *env) fix(ctx context.Context, c client, tbl *dynaguard.Table) error {
	err := tbl.Check(ctx)
	var ce *dynaguard.CheckError
	if err == nil {
		fmt.Fprintf(e.out, "ok: table %s matches the dynaguard layout; nothing to fix\n", tbl.Name)
		return nil
	}
	if !errors.As(err, &ce) {
		return err
	}
	if ce.Has(dynaguard.ProblemMissing) {
		fmt.Fprintf(e.out, "table %s does not exist: create it with dynaguard table create, CloudFormation or Terraform\n", tbl.Name)
		return exitError{1}
	}
	name := aws.String(tbl.Name)
	for _, p := range ce.Problems {
		switch p.Code {
		case dynaguard.ProblemTTLDisabled:
			_, err := c.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
				TableName: name,
				TimeToLiveSpecification: &types.TimeToLiveSpecification{
					AttributeName: aws.String(dynaguard.AttrTTL), Enabled: aws.Bool(true),
				},
			})
			if err != nil {
				return fmt.Errorf("enable TTL on %s: %w", tbl.Name, err)
			}
			fmt.Fprintf(e.out, "fixed: TTL enabled on attribute %s\n", dynaguard.AttrTTL)
		case dynaguard.ProblemIndexMissing:
			if err := addIndex(ctx, c, tbl.Name); err != nil {
				return err
			}
			fmt.Fprintf(e.out, "fixing: index %s created; waiting until it is ACTIVE (backfilling reads the whole table)\n", dynaguard.IndexGSI1)
			if err := waitIndex(ctx, c, tbl.Name); err != nil {
				return err
			}
			fmt.Fprintf(e.out, "fixed: index %s is ACTIVE\n", dynaguard.IndexGSI1)
		case dynaguard.ProblemIndexStatus, dynaguard.ProblemNotActive:
			fmt.Fprintf(e.out, "wait: %s (run check again later)\n", p)
		default:
			fmt.Fprintf(e.out, "cannot fix in place: %s\n", p)
		}
	}
	return e.check(ctx, tbl)
}

// addIndex adds gsi1 as Table.Create makes it. A provisioned table needs
// capacity for the index too: it gets the table's.
func addIndex(ctx context.Context, c client, table string) error {
	d, err := c.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
	if err != nil {
		return fmt.Errorf("describe table %s: %w", table, err)
	}
	s := types.ScalarAttributeTypeS
	create := &types.CreateGlobalSecondaryIndexAction{
		IndexName: aws.String(dynaguard.IndexGSI1),
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String(dynaguard.AttrGSI1PK), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String(dynaguard.AttrGSI1SK), KeyType: types.KeyTypeRange},
		},
		Projection: &types.Projection{ProjectionType: types.ProjectionTypeKeysOnly},
	}
	if billingMode(d.Table) == types.BillingModeProvisioned && d.Table.ProvisionedThroughput != nil {
		create.ProvisionedThroughput = &types.ProvisionedThroughput{
			ReadCapacityUnits:  d.Table.ProvisionedThroughput.ReadCapacityUnits,
			WriteCapacityUnits: d.Table.ProvisionedThroughput.WriteCapacityUnits,
		}
	}
	_, err = c.UpdateTable(ctx, &dynamodb.UpdateTableInput{
		TableName: aws.String(table),
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String(dynaguard.AttrGSI1PK), AttributeType: s},
			{AttributeName: aws.String(dynaguard.AttrGSI1SK), AttributeType: s},
		},
		GlobalSecondaryIndexUpdates: []types.GlobalSecondaryIndexUpdate{{Create: create}},
	})
	if err != nil {
		return fmt.Errorf("add index %s to %s: %w", dynaguard.IndexGSI1, table, err)
	}
	return nil
}

func waitIndex(ctx context.Context, c client, table string) error {
	delay := 25 * time.Millisecond
	for {
		d, err := c.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
		if err != nil {
			return fmt.Errorf("describe table %s: %w", table, err)
		}
		for _, g := range d.Table.GlobalSecondaryIndexes {
			if aws.ToString(g.IndexName) == dynaguard.IndexGSI1 && g.IndexStatus == types.IndexStatusActive {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("index %s of %s is still building (run dynaguard table check later): %w", dynaguard.IndexGSI1, table, ctx.Err())
		case <-time.After(delay):
		}
		delay = min(delay*2, 5*time.Second)
	}
}

// billingMode reads the billing mode; a table created before on-demand
// existed may have no summary and is provisioned.
func billingMode(d *types.TableDescription) types.BillingMode {
	if d.BillingModeSummary != nil && d.BillingModeSummary.BillingMode != "" {
		return d.BillingModeSummary.BillingMode
	}
	return types.BillingModeProvisioned
}

// unsupported reports whether the endpoint does not implement the operation
// (DynamoDB Local answers UnknownOperationException to several management
// calls) or the caller may not call it, and says which.
func unsupported(err error) (string, bool) {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return "", false
	}
	switch ae.ErrorCode() {
	case "UnknownOperationException":
		return "this endpoint does not implement the call (DynamoDB Local does not)", true
	case "AccessDeniedException":
		return "not allowed: " + ae.ErrorMessage(), true
	}
	return "", false
}

// ---- doctor

type finding struct {
	level  string // ok, warn, info, fail, unknown
	advice string
}

func (e *env) doctor(args []string) error {
	fs := e.flags("doctor")
	var a awsFlags
	a.register(fs)
	strict := fs.Bool("strict", false, "exit 1 on warnings too, not only on problems")
	if err := e.parse(fs, args); err != nil {
		return err
	}
	if err := requireTable(e, fs, a.table); err != nil {
		return err
	}
	c, err := e.client(&a)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(e.ctx, time.Minute)
	defer cancel()
	fs2, err := diagnose(ctx, c, a.table)
	if err != nil {
		return err
	}
	fail, warn := false, false
	for _, f := range fs2 {
		fmt.Fprintf(e.out, "%-7s %s\n", f.level, f.advice)
		fail = fail || f.level == "fail"
		warn = warn || f.level == "warn"
	}
	if fail || (*strict && warn) {
		return exitError{1}
	}
	return nil
}

// diagnose runs Table.Check and reads the table's production settings:
// DescribeTable (billing, deletion protection, encryption, class),
// DescribeContinuousBackups (point-in-time recovery) and, through Check,
// DescribeTimeToLive. A call the endpoint does not answer gives an
// "unknown" finding that says so, never a guess.
func diagnose(ctx context.Context, c client, table string) ([]finding, error) {
	var out []finding
	add := func(level, format string, args ...any) {
		out = append(out, finding{level, fmt.Sprintf(format, args...)})
	}
	tbl := dynaguard.NewTable(c, table)
	err := tbl.Check(ctx)
	var ce *dynaguard.CheckError
	switch {
	case err == nil:
		add("ok", "layout: key schema, index %s and TTL on %s as dynaguard expects", dynaguard.IndexGSI1, dynaguard.AttrTTL)
	case errors.As(err, &ce):
		for _, p := range ce.Problems {
			add("fail", "layout: %s", p)
		}
		if ce.Has(dynaguard.ProblemMissing) {
			return out, nil
		}
		if ce.Has(dynaguard.ProblemTTLDisabled) || ce.Has(dynaguard.ProblemIndexMissing) {
			add("info", "dynaguard table fix -table %s repairs TTL and the index in place", table)
		}
	default:
		return nil, err
	}
	if ce == nil || !ce.Has(dynaguard.ProblemTTLDisabled) {
		add("info", "TTL: on AWS an expired item can stay up to about 48 h after its time; dynaguard checks expiry on every read and in every write condition, so it only costs storage")
	}

	d, err := c.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
	if err != nil {
		return nil, fmt.Errorf("describe table %s: %w", table, err)
	}
	t := d.Table
	switch billingMode(t) {
	case types.BillingModePayPerRequest:
		add("ok", "billing: on demand — a login flood or a burst of traffic is absorbed, not throttled")
	default:
		add("warn", "billing: provisioned capacity — a burst beyond it is throttled and dynaguard answers 503 (fail closed); use on demand (aws dynamodb update-table --table-name %s --billing-mode PAY_PER_REQUEST) or auto scaling on the table and on %s", table, dynaguard.IndexGSI1)
	}
	if aws.ToBool(t.DeletionProtectionEnabled) {
		add("ok", "deletion protection: on")
	} else {
		add("warn", "deletion protection: off — one DeleteTable ends every session and forgets every consumed nonce and idempotency key; turn it on (aws dynamodb update-table --table-name %s --deletion-protection-enabled)", table)
	}
	switch {
	case t.SSEDescription == nil || t.SSEDescription.SSEType == "":
		add("info", "encryption at rest: AWS owned key (the default). A customer managed KMS key adds a key policy and a CloudTrail record of every use; dynaguard already stores no token, nonce or code in the clear")
	case t.SSEDescription.Status != types.SSEStatusEnabled:
		add("warn", "encryption at rest: KMS encryption status is %s", t.SSEDescription.Status)
	default:
		add("ok", "encryption at rest: %s (%s)", t.SSEDescription.SSEType, aws.ToString(t.SSEDescription.KMSMasterKeyArn))
	}
	if t.TableClassSummary != nil && t.TableClassSummary.TableClass == types.TableClassStandardInfrequentAccess {
		add("info", "table class: Standard-IA — cheaper storage, dearer requests; dynaguard's items are small and read often, so Standard is usually cheaper")
	}

	b, err := c.DescribeContinuousBackups(ctx, &dynamodb.DescribeContinuousBackupsInput{TableName: aws.String(table)})
	if why, ok := unsupported(err); ok {
		add("unknown", "point-in-time recovery: %s", why)
	} else if err != nil {
		return nil, fmt.Errorf("describe continuous backups of %s: %w", table, err)
	} else if p := b.ContinuousBackupsDescription; p != nil && p.PointInTimeRecoveryDescription != nil &&
		p.PointInTimeRecoveryDescription.PointInTimeRecoveryStatus == types.PointInTimeRecoveryStatusEnabled {
		add("ok", "point-in-time recovery: on. After a restore, replace DYNAGUARD_SECRET without keeping the old one: the restored table has forgotten what was consumed since the restore point")
	} else {
		add("warn", "point-in-time recovery: off — accounts and password hashes live in this table; turn it on (aws dynamodb update-continuous-backups --table-name %s --point-in-time-recovery-specification PointInTimeRecoveryEnabled=true)", table)
	}
	return out, nil
}
