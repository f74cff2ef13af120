package obs

import (
	"context"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/dynaguard/dynaguard"
)

// The operations of dynaguard.API, indexes into the precomputed options.
const (
	opGetItem = iota
	opBatchGetItem
	opPutItem
	opUpdateItem
	opDeleteItem
	opTransactWriteItems
	opQuery
	opBatchWriteItem
	numOps
)

var opNames = [numOps]string{"GetItem", "BatchGetItem", "PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "Query", "BatchWriteItem"}

// spanNames follow the AWS SDK instrumentation: "DynamoDB.GetItem".
var spanNames = func() (n [numOps]string) {
	for i := range n {
		n[i] = "DynamoDB." + opNames[i]
	}
	return n
}()

// Table returns a copy of tbl whose client times each call on the
// dynaguard.dynamodb.duration histogram (by component, operation and
// outcome) and, inside a trace, starts a client span named after the
// operation with OpenTelemetry's semantic attributes. A nil Emitter (events
// Off) returns tbl itself.
//
// We wrap dynaguard.API rather than install the contrib otelaws
// middleware on the SDK client: the application builds and owns that
// client (and may already instrument it), the component name would be
// lost there, and the narrow interface is the one point every call of
// every component passes through, whatever client the application gives.
func (e *Emitter) Table(tbl *dynaguard.Table) *dynaguard.Table {
	if e == nil || tbl == nil || tbl.Client == nil {
		return tbl
	}
	if _, done := tbl.Client.(*api); done {
		return tbl
	}
	a := &api{next: tbl.Client, tracer: e.tracer}
	a.hist, _ = e.meter.Float64Histogram(MetricDuration,
		metric.WithDescription("Duration of DynamoDB calls made by dynaguard, by component, operation and outcome."),
		metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
	for op := range numOps {
		for i, outcome := range []string{"ok", "error"} {
			a.rec[op][i] = []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(
				attribute.String("dynaguard.component", e.component),
				attribute.String("rpc.method", opNames[op]),
				attribute.String("outcome", outcome),
			))}
		}
		a.span[op] = []trace.SpanStartOption{
			trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(
				attribute.String("rpc.system", "aws-api"),
				attribute.String("rpc.service", "DynamoDB"),
				attribute.String("rpc.method", opNames[op]),
				attribute.String("db.system.name", "aws.dynamodb"),
				attribute.StringSlice("aws.dynamodb.table_names", []string{tbl.Name}),
				attribute.String("dynaguard.component", e.component),
			),
		}
	}
	return &dynaguard.Table{Client: a, Name: tbl.Name}
}

// api is the instrumented client.
type api struct {
	next   dynaguard.API
	tracer trace.Tracer
	hist   metric.Float64Histogram
	rec    [numOps][2][]metric.RecordOption
	span   [numOps][]trace.SpanStartOption
}

// Unwrap returns the client this one instruments (for tests and benchmarks
// that reach through to a stub).
func (a *api) Unwrap() dynaguard.API { return a.next }

// call is one call in flight.
type call struct {
	op    int
	start time.Time
	span  trace.Span // nil outside a trace
}

func (a *api) begin(ctx context.Context, op int) (context.Context, call) {
	c := call{op: op}
	if a.hist.Enabled(ctx) {
		c.start = time.Now()
	}
	// A span only as a child of the request's: a call outside any trace
	// (a background sweep, an untraced service) starts none, and costs
	// nothing when tracing is off.
	if trace.SpanContextFromContext(ctx).IsValid() {
		ctx, c.span = a.tracer.Start(ctx, spanNames[op], a.span[op]...)
	}
	return ctx, c
}

func (a *api) end(ctx context.Context, c call, err error) {
	if !c.start.IsZero() {
		i := 0
		if err != nil {
			i = 1
		}
		a.hist.Record(ctx, since(c.start), a.rec[c.op][i]...)
	}
	if c.span != nil {
		if err != nil {
			// The error's text names the operation and the AWS error
			// code; it never carries a key or an item value.
			c.span.RecordError(err)
			c.span.SetStatus(codes.Error, "")
		}
		c.span.End()
	}
}

func (a *api) GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	ctx, c := a.begin(ctx, opGetItem)
	out, err := a.next.GetItem(ctx, in, opts...)
	a.end(ctx, c, err)
	return out, err
}

func (a *api) BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error) {
	ctx, c := a.begin(ctx, opBatchGetItem)
	out, err := a.next.BatchGetItem(ctx, in, opts...)
	a.end(ctx, c, err)
	return out, err
}

func (a *api) PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	ctx, c := a.begin(ctx, opPutItem)
	out, err := a.next.PutItem(ctx, in, opts...)
	a.end(ctx, c, err)
	return out, err
}

func (a *api) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	ctx, c := a.begin(ctx, opUpdateItem)
	out, err := a.next.UpdateItem(ctx, in, opts...)
	a.end(ctx, c, err)
	return out, err
}

func (a *api) DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	ctx, c := a.begin(ctx, opDeleteItem)
	out, err := a.next.DeleteItem(ctx, in, opts...)
	a.end(ctx, c, err)
	return out, err
}

func (a *api) TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, opts ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	ctx, c := a.begin(ctx, opTransactWriteItems)
	out, err := a.next.TransactWriteItems(ctx, in, opts...)
	a.end(ctx, c, err)
	return out, err
}

func (a *api) Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	ctx, c := a.begin(ctx, opQuery)
	out, err := a.next.Query(ctx, in, opts...)
	a.end(ctx, c, err)
	return out, err
}

func (a *api) BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	ctx, c := a.begin(ctx, opBatchWriteItem)
	out, err := a.next.BatchWriteItem(ctx, in, opts...)
	a.end(ctx, c, err)
	return out, err
}
