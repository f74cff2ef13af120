package lambdaevents

import (
	"context"
	"fmt"

	"github.com/aws/aws-lambda-go/events"
)

func errorf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
}

// DynamoDBStream returns a Lambda handler for DynamoDB Streams events that
// runs fn at most once per stream record — keyed by its EventID — while
// the Guard keeps the key, across every consumer that shares the table.
// Records older than Config.Window (by ApproximateCreationDateTime) are
// refused: never run, logged and passed to Config.OnRefused, but not
// reported as failed, since a failure holds back the whole shard and an
// old record never becomes valid. Records run one at a time, in order; the
// first failure stops the batch and is reported, with every record after
// it, in the partial batch response (items are named by SequenceNumber).
// See the package documentation for every outcome.
//
// Turn ReportBatchItemFailures on in the event source mapping, and bound
// its retries (MaximumRetryAttempts, an on-failure destination): a record
// whose work keeps failing is otherwise retried until it leaves the stream.
func DynamoDBStream(cfg Config, fn func(context.Context, events.DynamoDBEventRecord) error) (func(context.Context, events.DynamoDBEvent) (events.DynamoDBEventResponse, error), error) {
	c, err := newConsumer(cfg)
	if err != nil {
		return nil, err
	}
	if fn == nil {
		return nil, errorf("DynamoDBStream needs a function")
	}
	return func(ctx context.Context, ev events.DynamoDBEvent) (events.DynamoDBEventResponse, error) {
		recs := make([]record, len(ev.Records))
		for i := range ev.Records {
			r := ev.Records[i]
			recs[i] = record{
				id:      r.Change.SequenceNumber,
				key:     c.key("ddbstream", r.EventSourceArn, r.EventID),
				fp:      []byte(r.Change.SequenceNumber),
				created: r.Change.ApproximateCreationDateTime.Time,
				run:     func(ctx context.Context) error { return fn(ctx, r) },
			}
		}
		out := c.process(ctx, recs, true)
		ids, err := failures(recs, out, false)
		resp := events.DynamoDBEventResponse{BatchItemFailures: make([]events.DynamoDBBatchItemFailure, len(ids))}
		for i, id := range ids {
			resp.BatchItemFailures[i].ItemIdentifier = id
		}
		return resp, err
	}, nil
}
