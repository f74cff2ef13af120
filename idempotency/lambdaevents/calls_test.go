package lambdaevents_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/dynaguard/dynaguard/idempotency/lambdaevents"
	"github.com/dynaguard/dynaguard/internal/ddbtest"
)

// The DynamoDB calls per record, measured: a first delivery is the claim
// and the completion, a duplicate the one failed claim (which returns the
// stored outcome), a refused record nothing.
func TestCallsPerRecord(t *testing.T) {
	tbl, rec := ddbtest.Record(ddbtest.NewTable(t))
	h, err := lambdaevents.SQS(lambdaevents.Config{Guard: guard(t, tbl, nil), Window: 10 * time.Minute, Logger: quiet},
		func(context.Context, events.SQSMessage) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		msg  events.SQSMessage
		want string
	}{
		{"first delivery", message(1, time.Now()), "[PutItem UpdateItem]"},
		{"duplicate", message(1, time.Now()), "[PutItem]"},
		{"older than the window", message(2, time.Now().Add(-time.Hour)), "[]"},
	} {
		rec.Reset()
		if _, err := h(context.Background(), events.SQSEvent{Records: []events.SQSMessage{tc.msg}}); err != nil && tc.want != "[]" {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var ops []string
		for _, c := range rec.Calls() {
			ops = append(ops, c.Op)
		}
		if got := fmt.Sprint(ops); got != tc.want && !(tc.want == "[]" && len(ops) == 0) {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

// BenchmarkSQSRecord is one new message through the handler on DynamoDB
// Local: the claim and the completion.
func BenchmarkSQSRecord(b *testing.B) {
	benchSQS(b, false)
}

// BenchmarkSQSDuplicate is a redelivered message: one failed claim.
func BenchmarkSQSDuplicate(b *testing.B) {
	benchSQS(b, true)
}

func benchSQS(b *testing.B, duplicate bool) {
	tbl := ddbtest.NewTable(b)
	g := guard(b, tbl, nil)
	h, err := lambdaevents.SQS(lambdaevents.Config{Guard: g, Logger: quiet}, func(context.Context, events.SQSMessage) error { return nil })
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	now := time.Now()
	if duplicate {
		if _, err := h(ctx, events.SQSEvent{Records: []events.SQSMessage{message(0, now)}}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		m := message(0, now)
		if !duplicate {
			m.MessageId = fmt.Sprintf("bench-%d", i)
		}
		resp, err := h(ctx, events.SQSEvent{Records: []events.SQSMessage{m}})
		if err != nil || len(resp.BatchItemFailures) != 0 {
			b.Fatalf("%v %+v", err, resp)
		}
	}
}
