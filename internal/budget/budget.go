// Package budget bounds the DynamoDB work of a request in time.
//
// One mechanism serves every component. middleware.Stack puts the
// request's deadline (start + Budget) on its context before the first
// component runs, so the session read, the user read, the nonce or
// idempotency write and the handler's own calls share one budget. Each
// component wraps its table's client with Table: a call whose context has
// no deadline that early — a component used on its own, outside the stack —
// gets one of now + the component's Budget. A call past its deadline ends
// with context.DeadlineExceeded inside the SDK error, which every component
// already treats as a storage failure: fail closed, 503 with Retry-After.
//
// The wrapper costs no allocation when the context already carries an
// early enough deadline (the stack's case), and one context.WithDeadline
// otherwise. It also reports calls that find no table to tablehealth.
package budget

import (
	"context"
	"errors"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/tablehealth"
)

// Default is the budget when a Config leaves it zero.
const Default = 3 * time.Second

// Grace is how long writes that must follow the handler (an idempotency
// record's completion or release) may run past the request's deadline.
const Grace = 250 * time.Millisecond

// Or returns d, or Default when d is zero or negative.
func Or(d time.Duration) time.Duration {
	if d <= 0 {
		return Default
	}
	return d
}

// Detach returns a context that outlives the request's cancellation (a
// client that hangs up must not leave a record claimed) but ends at the
// request's deadline plus Grace, or after max when the request has none.
func Detach(ctx context.Context, max time.Duration) (context.Context, context.CancelFunc) {
	limit := time.Now().Add(max)
	if dl, ok := ctx.Deadline(); ok && dl.Add(Grace).Before(limit) {
		limit = dl.Add(Grace)
	}
	return context.WithDeadline(context.WithoutCancel(ctx), limit)
}

// Table returns a copy of t whose client bounds every call by d (Default
// when zero) unless its context ends sooner. The copy's client implements
// dynaguard.API only: request handling never manages tables.
func Table(t *dynaguard.Table, d time.Duration) *dynaguard.Table {
	if c, ok := t.Client.(*client); ok && c.d == Or(d) {
		return t
	}
	c := &client{api: t.Client, d: Or(d), health: tablehealth.For(t, t.Name), name: aws.String(t.Name)}
	return &dynaguard.Table{Client: c, Name: t.Name}
}

type client struct {
	api    dynaguard.API
	d      time.Duration
	health *tablehealth.Tracker
	name   *string
}

var noop context.CancelFunc = func() {}

// Unwrap returns the client this one bounds (for tests and benchmarks that
// reach through to a stub).
func (c *client) Unwrap() dynaguard.API { return c.api }

func (c *client) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	limit := time.Now().Add(c.d)
	if dl, ok := ctx.Deadline(); ok && !dl.After(limit) {
		return ctx, noop
	}
	return context.WithDeadline(ctx, limit)
}

// done passes err through, noting whether the call found the table.
func (c *client) done(err error) error {
	switch {
	case err == nil:
		c.health.Found()
	case tableMissing(err):
		c.health.ReportMissing(c.probe)
	}
	return err
}

// tableMissing is apart from done so that its errors.As target is
// allocated only for a failed call.
func tableMissing(err error) bool {
	var nf *types.ResourceNotFoundException
	return errors.As(err, &nf)
}

// probe is one eventually consistent GetItem of a key no component uses:
// ResourceNotFoundException until the table exists, then an empty answer.
func (c *client) probe(ctx context.Context) error {
	_, err := c.api.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: c.name,
		Key:       map[string]types.AttributeValue{dynaguard.AttrPK: &types.AttributeValueMemberS{Value: "health#probe"}},
	})
	return err
}

func (c *client) GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	out, err := c.api.GetItem(ctx, in, opts...)
	return out, c.done(err)
}

func (c *client) BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error) {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	out, err := c.api.BatchGetItem(ctx, in, opts...)
	return out, c.done(err)
}

func (c *client) PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	out, err := c.api.PutItem(ctx, in, opts...)
	return out, c.done(err)
}

func (c *client) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	out, err := c.api.UpdateItem(ctx, in, opts...)
	return out, c.done(err)
}

func (c *client) DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	out, err := c.api.DeleteItem(ctx, in, opts...)
	return out, c.done(err)
}

func (c *client) TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, opts ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	out, err := c.api.TransactWriteItems(ctx, in, opts...)
	return out, c.done(err)
}

func (c *client) Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	out, err := c.api.Query(ctx, in, opts...)
	return out, c.done(err)
}

func (c *client) BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	out, err := c.api.BatchWriteItem(ctx, in, opts...)
	return out, c.done(err)
}
