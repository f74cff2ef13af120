package lambdaevents

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
)

// SQS returns a Lambda handler for SQS events that runs fn at most once per
// message key (Config.MessageKey, default the MessageId) while the Guard
// keeps the key, across every consumer that shares the table, and reports
// the messages to redeliver in its partial batch response. The message body
// is the payload's fingerprint: a second message under one key with another
// body is refused. See the package documentation for every outcome.
//
// Turn ReportBatchItemFailures on in the event source mapping, and keep the
// queue's visibility timeout above the function timeout (AWS advises six
// times): a message redelivered while its first delivery still runs is
// answered "in flight" and comes back once more.
func SQS(cfg Config, fn func(context.Context, events.SQSMessage) error) (func(context.Context, events.SQSEvent) (events.SQSEventResponse, error), error) {
	c, err := newConsumer(cfg)
	if err != nil {
		return nil, err
	}
	if fn == nil {
		return nil, errorf("SQS needs a function")
	}
	key := cfg.MessageKey
	return func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
		recs := make([]record, len(ev.Records))
		fifo := false
		for i := range ev.Records {
			m := ev.Records[i]
			fifo = fifo || strings.HasSuffix(m.EventSourceARN, ".fifo")
			k := m.MessageId
			if key != nil {
				k = key(m)
			}
			recs[i] = record{
				id:      m.MessageId,
				key:     c.key("sqs", m.EventSourceARN, k),
				fp:      []byte(m.Body),
				created: sentAt(m),
				run:     func(ctx context.Context) error { return fn(ctx, m) },
			}
		}
		out := c.process(ctx, recs, fifo)
		ids, err := failures(recs, out, true)
		resp := events.SQSEventResponse{BatchItemFailures: make([]events.SQSBatchItemFailure, len(ids))}
		for i, id := range ids {
			resp.BatchItemFailures[i].ItemIdentifier = id
		}
		return resp, err
	}, nil
}

// sentAt is the message's SentTimestamp attribute (epoch milliseconds),
// or zero.
func sentAt(m events.SQSMessage) time.Time {
	ms, err := strconv.ParseInt(m.Attributes["SentTimestamp"], 10, 64)
	if err != nil || ms <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

// key builds a record's key: kind, source and the record's own key, with a
// separator that appears in no ARN. It is "" when there is no own key.
func (c *consumer) key(kind, arn, own string) string {
	if own == "" {
		return ""
	}
	src := c.source
	if src == "" {
		src = arn
	}
	return kind + "#" + src + "#" + own
}
