package dynaguard

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynaguard/dynaguard/internal/ddb"
	"github.com/dynaguard/dynaguard/internal/tablehealth"
)

// The fixed table layout. Every component reads and writes these attribute
// names; docs/ARCHITECTURE.md lists what each component stores under them.
const (
	// AttrPK is the string partition key. Its value is a component prefix
	// followed by an id that is never a secret in the clear (tokens and
	// nonces are stored only as keyed hashes).
	AttrPK = ddb.AttrPK
	// AttrTTL is the expiry in epoch seconds (a Number) and the table's TTL
	// attribute. An item whose AttrTTL is at or before now is absent.
	AttrTTL = ddb.AttrTTL
	// AttrGSI1PK and AttrGSI1SK key IndexGSI1, a sparse index: only items
	// that carry AttrGSI1PK appear in it. Sessions bound to a user carry
	// "sessions#<userID>" there, so a user's sessions are one Query.
	AttrGSI1PK = "gsi1pk"
	AttrGSI1SK = "gsi1sk"
	// IndexGSI1 is the one secondary index. It projects keys only: writes
	// that change no key attribute (every session commit) cost nothing in
	// the index, and readers fetch what they need from the table itself.
	IndexGSI1 = "gsi1"
)

// Key prefixes, one per kind of item, so that every component can share one
// table without collisions.
const (
	PrefixSession     = "sess#"  // sessionstore: session, or its tombstone
	PrefixNonce       = "nonce#" // nonce: a consumed nonce
	PrefixIdempotency = "idem#"  // idempotency: a claimed or completed key
	PrefixUser        = "user#"  // users: the account
	PrefixUnique      = "uniq#"  // users: a uniqueness marker (email, username)
	PrefixThrottle    = "thr#"   // users: a throttling counter
	PrefixToken       = "tok#"   // users: a one-time token (reset, verification)
	PrefixRecovery    = "rcv#"   // users: a TOTP recovery code
	PrefixAPIFamily   = "apif#"  // users: an API client's refresh-token family
	PrefixPasskey     = "pkey#"  // users: a passkey credential, or a used passkey challenge
)

// MaxItemSize is DynamoDB's item size limit in bytes (attribute names and
// values together).
const MaxItemSize = 400 * 1024

// Table is a DynamoDB table laid out as dynaguard expects: a client and a
// table name. All components may share one Table; each also accepts its own.
type Table struct {
	Client API
	Name   string
}

// NewTable returns a Table. It makes no call.
func NewTable(client API, name string) *Table {
	return &Table{Client: client, Name: name}
}

// ErrTableExists is returned by Create when the table already exists.
var ErrTableExists = errors.New("dynaguard: table already exists")

// ErrNotAdmin is returned by Create, Check and Ensure when the table's client
// cannot manage tables (does not implement AdminAPI).
var ErrNotAdmin = errors.New("dynaguard: client does not implement AdminAPI")

func (t *Table) admin() (AdminAPI, error) {
	a, ok := t.Client.(AdminAPI)
	if !ok {
		return nil, ErrNotAdmin
	}
	return a, nil
}

// Create creates the table on demand (PAY_PER_REQUEST) with the layout above,
// waits until it is ACTIVE and turns TTL on for AttrTTL. It polls
// DescribeTable itself (from 25 ms, doubling up to 1 s) instead of the SDK
// waiter, whose first poll comes after 20 s.
func (t *Table) Create(ctx context.Context) error {
	admin, err := t.admin()
	if err != nil {
		return err
	}
	s := types.ScalarAttributeTypeS
	_, err = admin.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:   aws.String(t.Name),
		BillingMode: types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String(AttrPK), AttributeType: s},
			{AttributeName: aws.String(AttrGSI1PK), AttributeType: s},
			{AttributeName: aws.String(AttrGSI1SK), AttributeType: s},
		},
		KeySchema: []types.KeySchemaElement{{AttributeName: aws.String(AttrPK), KeyType: types.KeyTypeHash}},
		GlobalSecondaryIndexes: []types.GlobalSecondaryIndex{{
			IndexName: aws.String(IndexGSI1),
			KeySchema: []types.KeySchemaElement{
				{AttributeName: aws.String(AttrGSI1PK), KeyType: types.KeyTypeHash},
				{AttributeName: aws.String(AttrGSI1SK), KeyType: types.KeyTypeRange},
			},
			Projection: &types.Projection{ProjectionType: types.ProjectionTypeKeysOnly},
		}},
	})
	if err != nil {
		var inUse *types.ResourceInUseException
		if errors.As(err, &inUse) {
			return fmt.Errorf("%w: %s", ErrTableExists, t.Name)
		}
		return fmt.Errorf("dynaguard: create table %s: %w", t.Name, Classify(err))
	}
	return t.finishCreate(ctx, admin, false)
}

// finishCreate waits for a new table and turns TTL on; with ifOff, only
// when it is not on already (another creator may have turned it on, and
// DynamoDB refuses to enable it twice).
func (t *Table) finishCreate(ctx context.Context, admin AdminAPI, ifOff bool) error {
	if err := t.waitActive(ctx, admin); err != nil {
		return err
	}
	if ifOff {
		d, err := admin.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(t.Name)})
		if err != nil {
			return fmt.Errorf("dynaguard: describe TTL of %s: %w", t.Name, Classify(err))
		}
		if ttlProblems(d.TimeToLiveDescription) == nil {
			return nil
		}
	}
	_, err := admin.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
		TableName: aws.String(t.Name),
		TimeToLiveSpecification: &types.TimeToLiveSpecification{
			AttributeName: aws.String(AttrTTL),
			Enabled:       aws.Bool(true),
		},
	})
	if err != nil {
		return fmt.Errorf("dynaguard: enable TTL on %s: %w", t.Name, Classify(err))
	}
	return nil
}

func (t *Table) waitActive(ctx context.Context, admin AdminAPI) error {
	delay := 25 * time.Millisecond
	for {
		out, err := admin.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(t.Name)})
		if err != nil {
			return fmt.Errorf("dynaguard: describe table %s: %w", t.Name, Classify(err))
		}
		if tableActive(out.Table) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("dynaguard: waiting for table %s to become ACTIVE: %w", t.Name, ctx.Err())
		case <-time.After(delay):
		}
		delay = min(delay*2, time.Second)
	}
}

func tableActive(d *types.TableDescription) bool {
	if d == nil || d.TableStatus != types.TableStatusActive {
		return false
	}
	for _, g := range d.GlobalSecondaryIndexes {
		if g.IndexStatus != types.IndexStatusActive {
			return false
		}
	}
	return true
}

// Ensure creates the table when it does not exist, then checks it. It is what
// an application calls at start-up when it may own its table.
//
// It also lets dynaguard own the table from then on: should the table
// disappear while the application runs, the first component call that
// finds it missing starts one background watcher that creates it again
// (internal/tablehealth). Without Ensure, a missing table is only watched
// for and logged, never created.
func (t *Table) Ensure(ctx context.Context) error {
	tablehealth.For(t, t.Name).SetRecreate(t.ensure)
	return t.ensure(ctx)
}

func (t *Table) ensure(ctx context.Context) error {
	err := t.Check(ctx)
	var ce *CheckError
	if errors.As(err, &ce) && ce.Has(ProblemMissing) {
		err := t.Create(ctx)
		if errors.Is(err, ErrTableExists) {
			// Another instance is creating it, or a retried CreateTable
			// found the one its timed-out first attempt made: it may not
			// be ACTIVE, nor have TTL, yet.
			var admin AdminAPI
			if admin, err = t.admin(); err == nil {
				err = t.finishCreate(ctx, admin, true)
			}
		}
		if err != nil {
			return err
		}
		return t.Check(ctx)
	}
	return err
}

// ProblemCode names one way an existing table differs from the layout.
type ProblemCode string

const (
	ProblemMissing      ProblemCode = "table-missing"        // no such table
	ProblemNotActive    ProblemCode = "table-not-active"     // CREATING, UPDATING, DELETING, ...
	ProblemKeySchema    ProblemCode = "key-schema"           // not a lone string partition key named pk
	ProblemTTLDisabled  ProblemCode = "ttl-disabled"         // TTL off (or being turned off)
	ProblemTTLAttribute ProblemCode = "ttl-attribute"        // TTL on, but for another attribute
	ProblemIndexMissing ProblemCode = "index-missing"        // no gsi1
	ProblemIndexSchema  ProblemCode = "index-key-schema"     // gsi1 not keyed gsi1pk (S) + gsi1sk (S)
	ProblemIndexStatus  ProblemCode = "index-not-active"     // gsi1 still building
	ProblemAttrType     ProblemCode = "attribute-definition" // a key attribute is not a string
)

// Problem is one finding of [Table.Check].
type Problem struct {
	Code   ProblemCode
	Detail string
}

func (p Problem) String() string { return string(p.Code) + ": " + p.Detail }

// ErrTableMisconfigured matches every *CheckError with errors.Is.
var ErrTableMisconfigured = errors.New("dynaguard: table does not match the dynaguard layout")

// CheckError lists everything [Table.Check] found wrong with a table.
type CheckError struct {
	Table    string
	Problems []Problem
}

func (e *CheckError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "dynaguard: table %s does not match the dynaguard layout:", e.Table)
	for _, p := range e.Problems {
		b.WriteString("\n  - ")
		b.WriteString(p.String())
	}
	return b.String()
}

// Is makes errors.Is(err, ErrTableMisconfigured) true.
func (e *CheckError) Is(target error) bool { return target == ErrTableMisconfigured }

// Has reports whether the check found a problem with the given code.
func (e *CheckError) Has(code ProblemCode) bool {
	for _, p := range e.Problems {
		if p.Code == code {
			return true
		}
	}
	return false
}

// Check compares an existing table with the layout and reports every
// difference at once in a *CheckError (nil when the table is usable). Other
// errors (no permission, network) are returned as they are, classified.
func (t *Table) Check(ctx context.Context) error {
	admin, err := t.admin()
	if err != nil {
		return err
	}
	out, err := admin.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(t.Name)})
	if err != nil {
		var nf *types.ResourceNotFoundException
		if errors.As(err, &nf) {
			return &CheckError{Table: t.Name, Problems: []Problem{{ProblemMissing, "table " + t.Name + " does not exist"}}}
		}
		return fmt.Errorf("dynaguard: describe table %s: %w", t.Name, Classify(err))
	}
	problems := describeProblems(out.Table)
	ttl, err := admin.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(t.Name)})
	if err != nil {
		return fmt.Errorf("dynaguard: describe TTL of %s: %w", t.Name, Classify(err))
	}
	problems = append(problems, ttlProblems(ttl.TimeToLiveDescription)...)
	if len(problems) > 0 {
		return &CheckError{Table: t.Name, Problems: problems}
	}
	return nil
}

func describeProblems(d *types.TableDescription) []Problem {
	var ps []Problem
	if d.TableStatus != types.TableStatusActive {
		ps = append(ps, Problem{ProblemNotActive, "table status is " + string(d.TableStatus)})
	}
	types_ := map[string]types.ScalarAttributeType{}
	for _, a := range d.AttributeDefinitions {
		types_[aws.ToString(a.AttributeName)] = a.AttributeType
	}
	if len(d.KeySchema) != 1 || aws.ToString(d.KeySchema[0].AttributeName) != AttrPK || d.KeySchema[0].KeyType != types.KeyTypeHash {
		ps = append(ps, Problem{ProblemKeySchema, "want a lone partition key " + AttrPK + " (S) and no sort key; have " + keySchemaString(d.KeySchema)})
	} else if types_[AttrPK] != types.ScalarAttributeTypeS {
		ps = append(ps, Problem{ProblemAttrType, AttrPK + " is " + string(types_[AttrPK]) + ", want S"})
	}
	var gsi *types.GlobalSecondaryIndexDescription
	for i := range d.GlobalSecondaryIndexes {
		if aws.ToString(d.GlobalSecondaryIndexes[i].IndexName) == IndexGSI1 {
			gsi = &d.GlobalSecondaryIndexes[i]
		}
	}
	switch {
	case gsi == nil:
		ps = append(ps, Problem{ProblemIndexMissing, "global secondary index " + IndexGSI1 + " (" + AttrGSI1PK + " HASH, " + AttrGSI1SK + " RANGE) is missing"})
	default:
		ks := gsi.KeySchema
		if len(ks) != 2 || aws.ToString(ks[0].AttributeName) != AttrGSI1PK || ks[0].KeyType != types.KeyTypeHash ||
			aws.ToString(ks[1].AttributeName) != AttrGSI1SK || ks[1].KeyType != types.KeyTypeRange {
			ps = append(ps, Problem{ProblemIndexSchema, "want " + AttrGSI1PK + " HASH, " + AttrGSI1SK + " RANGE; have " + keySchemaString(ks)})
		} else {
			for _, a := range []string{AttrGSI1PK, AttrGSI1SK} {
				if types_[a] != types.ScalarAttributeTypeS {
					ps = append(ps, Problem{ProblemAttrType, a + " is " + string(types_[a]) + ", want S"})
				}
			}
		}
		if gsi.IndexStatus != types.IndexStatusActive {
			ps = append(ps, Problem{ProblemIndexStatus, IndexGSI1 + " status is " + string(gsi.IndexStatus)})
		}
	}
	return ps
}

func ttlProblems(d *types.TimeToLiveDescription) []Problem {
	if d == nil {
		return []Problem{{ProblemTTLDisabled, "TTL is not enabled; enable it on attribute " + AttrTTL}}
	}
	switch d.TimeToLiveStatus {
	case types.TimeToLiveStatusEnabled, types.TimeToLiveStatusEnabling:
		if a := aws.ToString(d.AttributeName); a != AttrTTL {
			return []Problem{{ProblemTTLAttribute, "TTL is enabled on attribute " + a + ", want " + AttrTTL}}
		}
		return nil
	default:
		return []Problem{{ProblemTTLDisabled, "TTL status is " + string(d.TimeToLiveStatus) + "; enable it on attribute " + AttrTTL}}
	}
}

func keySchemaString(ks []types.KeySchemaElement) string {
	if len(ks) == 0 {
		return "none"
	}
	parts := make([]string, len(ks))
	for i, k := range ks {
		parts[i] = aws.ToString(k.AttributeName) + " " + string(k.KeyType)
	}
	return strings.Join(parts, ", ")
}
