package lambdaevents_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/idempotency"
	"github.com/dynaguard/dynaguard/idempotency/lambdaevents"
	"github.com/dynaguard/dynaguard/internal/ddbtest"
)

var quiet = slog.New(slog.DiscardHandler)

const queueARN = "arn:aws:sqs:eu-west-1:123456789012:orders"
const streamARN = "arn:aws:dynamodb:eu-west-1:123456789012:table/orders/stream/2026-12-05T00:00:00.000"

func guard(t testing.TB, tbl *dynaguard.Table, clock dynaguard.Clock) *idempotency.Guard {
	t.Helper()
	keys, err := dynaguard.NewKeyring(bytes.Repeat([]byte{0x1e}, 32))
	if err != nil {
		t.Fatal(err)
	}
	g, err := idempotency.New(idempotency.Config{Table: tbl, Keyring: keys, Scope: idempotency.UserOrSession,
		Lease: 2 * time.Second, Retention: time.Hour, Clock: clock, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func message(i int, sent time.Time) events.SQSMessage {
	id := fmt.Sprintf("msg-%03d", i)
	return events.SQSMessage{MessageId: id, Body: `{"order":` + strconv.Itoa(i) + `}`, EventSourceARN: queueARN,
		Attributes: map[string]string{"SentTimestamp": strconv.FormatInt(sent.UnixMilli(), 10)}}
}

func streamRecord(i int, created time.Time) events.DynamoDBEventRecord {
	return events.DynamoDBEventRecord{EventID: fmt.Sprintf("ev-%03d", i), EventSourceArn: streamARN, EventName: "INSERT",
		Change: events.DynamoDBStreamRecord{SequenceNumber: fmt.Sprintf("%021d", i),
			ApproximateCreationDateTime: events.SecondsEpochTime{Time: created}}}
}

// deliver runs an at-least-once delivery loop: every delivery goes into
// batches of up to 10, consumed by as many goroutines as handlers; a
// delivery reported failed is put back, until every one has succeeded.
// It returns how many deliveries were redelivered.
func deliver[T any](t *testing.T, deliveries []T, id func(T) string, handle []func(context.Context, []T) []string) int {
	t.Helper()
	queue := make(chan T, len(deliveries))
	for _, d := range deliveries {
		queue <- d
	}
	var pending sync.WaitGroup
	pending.Add(len(deliveries))
	var redelivered atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for c := range handle {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				var batch []T
				select {
				case <-stop:
					return
				case d := <-queue:
					batch = append(batch, d)
				}
			fill:
				for len(batch) < 10 {
					select {
					case d := <-queue:
						batch = append(batch, d)
					default:
						break fill
					}
				}
				failedIDs := map[string]bool{}
				for _, f := range handle[c](context.Background(), batch) {
					failedIDs[f] = true
				}
				for _, d := range batch {
					if failedIDs[id(d)] {
						redelivered.Add(1)
						time.Sleep(time.Millisecond)
						queue <- d
					} else {
						pending.Done()
					}
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { pending.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("deliveries did not all succeed within 60 s")
	}
	close(stop)
	wg.Wait()
	return int(redelivered.Load())
}

// 200 deliveries — 50 messages, each delivered 4 times, shuffled — over 4
// consumers (4 Guards on one table, each running 4 messages at once): each
// message's work runs exactly once, and every delivery ends in success.
func TestSQSExactlyOnceAcrossConsumers(t *testing.T) {
	tbl := ddbtest.NewTable(t)
	now := time.Now()
	var runs sync.Map // MessageId → *atomic.Int64
	work := func(ctx context.Context, m events.SQSMessage) error {
		n, _ := runs.LoadOrStore(m.MessageId, new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
		time.Sleep(time.Duration(rand.IntN(4)) * time.Millisecond)
		return nil
	}
	var handlers []func(context.Context, []events.SQSMessage) []string
	for range 4 {
		h, err := lambdaevents.SQS(lambdaevents.Config{Guard: guard(t, tbl, nil), Concurrency: 4, Logger: quiet}, work)
		if err != nil {
			t.Fatal(err)
		}
		handlers = append(handlers, func(ctx context.Context, b []events.SQSMessage) []string {
			resp, _ := h(ctx, events.SQSEvent{Records: b})
			var ids []string
			for _, f := range resp.BatchItemFailures {
				ids = append(ids, f.ItemIdentifier)
			}
			return ids
		})
	}
	var deliveries []events.SQSMessage
	for copy := range 4 {
		_ = copy
		for i := range 50 {
			deliveries = append(deliveries, message(i, now))
		}
	}
	rand.Shuffle(len(deliveries), func(i, j int) { deliveries[i], deliveries[j] = deliveries[j], deliveries[i] })
	redelivered := deliver(t, deliveries, func(m events.SQSMessage) string { return m.MessageId }, handlers)
	ranOncePerKey(t, &runs, 50)
	t.Logf("200 deliveries, %d redelivered (in flight elsewhere)", redelivered)
}

// The same for a stream: 50 records delivered 4 times over 4 consumers,
// batches in order; each record runs once.
func TestStreamExactlyOnceAcrossConsumers(t *testing.T) {
	tbl := ddbtest.NewTable(t)
	now := time.Now()
	var runs sync.Map
	work := func(ctx context.Context, r events.DynamoDBEventRecord) error {
		n, _ := runs.LoadOrStore(r.EventID, new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
		time.Sleep(time.Duration(rand.IntN(3)) * time.Millisecond)
		return nil
	}
	var handlers []func(context.Context, []events.DynamoDBEventRecord) []string
	for range 4 {
		h, err := lambdaevents.DynamoDBStream(lambdaevents.Config{Guard: guard(t, tbl, nil), Logger: quiet}, work)
		if err != nil {
			t.Fatal(err)
		}
		handlers = append(handlers, func(ctx context.Context, b []events.DynamoDBEventRecord) []string {
			resp, _ := h(ctx, events.DynamoDBEvent{Records: b})
			var ids []string
			for _, f := range resp.BatchItemFailures {
				ids = append(ids, f.ItemIdentifier)
			}
			return ids
		})
	}
	var deliveries []events.DynamoDBEventRecord
	for range 4 {
		for i := range 50 {
			deliveries = append(deliveries, streamRecord(i, now))
		}
	}
	rand.Shuffle(len(deliveries), func(i, j int) { deliveries[i], deliveries[j] = deliveries[j], deliveries[i] })
	redelivered := deliver(t, deliveries, func(r events.DynamoDBEventRecord) string { return r.Change.SequenceNumber }, handlers)
	ranOncePerKey(t, &runs, 50)
	t.Logf("200 deliveries, %d redelivered", redelivered)
}

// Records older than the window, or without a timestamp, never run: a
// stream moves past them (reporting them to OnRefused), a queue reports
// them failed so that they end in its dead-letter queue.
func TestExpiredRecordsNeverRun(t *testing.T) {
	tbl := ddbtest.NewTable(t)
	clock := ddbtest.NewClock(time.Now())
	now := clock.Now()
	var runs atomic.Int64
	var refused []string
	cfg := lambdaevents.Config{Guard: guard(t, tbl, clock), Window: 10 * time.Minute, Clock: clock, Logger: quiet,
		OnRefused: func(_ context.Context, id string, _ time.Time) { refused = append(refused, id) }}

	stream, err := lambdaevents.DynamoDBStream(cfg, func(context.Context, events.DynamoDBEventRecord) error { runs.Add(1); return nil })
	if err != nil {
		t.Fatal(err)
	}
	resp, err := stream(context.Background(), events.DynamoDBEvent{Records: []events.DynamoDBEventRecord{
		streamRecord(1, now.Add(-11*time.Minute)), // replayed after its window
		streamRecord(2, now.Add(-time.Minute)),
		streamRecord(3, time.Time{}), // no timestamp
	}})
	if err != nil || len(resp.BatchItemFailures) != 0 || runs.Load() != 1 || len(refused) != 2 {
		t.Fatalf("stream: %v %+v runs=%d refused=%v", err, resp, runs.Load(), refused)
	}

	queue, err := lambdaevents.SQS(cfg, func(context.Context, events.SQSMessage) error { runs.Add(1); return nil })
	if err != nil {
		t.Fatal(err)
	}
	noTime := message(3, now)
	noTime.Attributes = nil
	sqsResp, err := queue(context.Background(), events.SQSEvent{Records: []events.SQSMessage{
		message(1, now.Add(-11*time.Minute)), message(2, now), noTime}})
	if err != nil || len(sqsResp.BatchItemFailures) != 2 || sqsResp.BatchItemFailures[0].ItemIdentifier != "msg-001" ||
		sqsResp.BatchItemFailures[1].ItemIdentifier != "msg-003" || runs.Load() != 2 {
		t.Fatalf("queue: %v %+v runs=%d", err, sqsResp, runs.Load())
	}
	// However often it is redelivered, an expired message stays refused.
	clock.Advance(time.Hour)
	if r, err := queue(context.Background(), events.SQSEvent{Records: []events.SQSMessage{message(1, now.Add(-11*time.Minute))}}); !errors.Is(err, lambdaevents.ErrBatchFailed) || len(r.BatchItemFailures) != 1 || runs.Load() != 2 {
		t.Fatalf("redelivered expired message: %v %+v runs=%d", err, r, runs.Load())
	}
}

// DynamoDB failing before the work runs: the record is reported failed and
// not run; once DynamoDB is back, the redelivery runs it, once.
func TestStorageFaultsFailClosed(t *testing.T) {
	base := ddbtest.NewTable(t)
	for _, fault := range []ddbtest.Fault{ddbtest.Throttling, ddbtest.InternalError, ddbtest.Timeout, ddbtest.ConnReset} {
		t.Run(fault.String(), func(t *testing.T) {
			tbl, faults := ddbtest.Inject(base)
			var runs atomic.Int64
			h, err := lambdaevents.SQS(lambdaevents.Config{Guard: guard(t, tbl, nil), Source: fault.String(), Logger: quiet},
				func(context.Context, events.SQSMessage) error { runs.Add(1); return nil })
			if err != nil {
				t.Fatal(err)
			}
			ev := events.SQSEvent{Records: []events.SQSMessage{message(1, time.Now()), message(2, time.Now())}}
			faults.Fail("PutItem", fault)
			resp, err := h(context.Background(), ev)
			if !errors.Is(err, lambdaevents.ErrBatchFailed) || len(resp.BatchItemFailures) != 2 || runs.Load() != 0 {
				t.Fatalf("under %v: %v %+v runs=%d", fault, err, resp, runs.Load())
			}
			faults.Clear()
			for range 2 {
				if resp, err := h(context.Background(), ev); err != nil || len(resp.BatchItemFailures) != 0 {
					t.Fatalf("after recovery: %v %+v", err, resp)
				}
			}
			if runs.Load() != 2 {
				t.Fatalf("runs %d, want 2", runs.Load())
			}
		})
	}
}

// A failing or panicking record fails alone on a standard queue and runs
// again on redelivery; on a FIFO queue it stops the batch, and the
// messages after it are reported without running.
func TestFailuresAndOrder(t *testing.T) {
	tbl := ddbtest.NewTable(t)
	var mu sync.Mutex
	var ran []string
	attempts := map[string]int{}
	work := func(_ context.Context, m events.SQSMessage) error {
		mu.Lock()
		defer mu.Unlock()
		attempts[m.MessageId]++
		switch {
		case m.MessageId == "msg-001" && attempts[m.MessageId] == 1:
			return errors.New("downstream unavailable")
		case m.MessageId == "msg-002" && attempts[m.MessageId] == 1:
			panic("bug")
		}
		ran = append(ran, m.MessageId)
		return nil
	}
	h, err := lambdaevents.SQS(lambdaevents.Config{Guard: guard(t, tbl, nil), Logger: quiet}, work)
	if err != nil {
		t.Fatal(err)
	}
	batch := []events.SQSMessage{message(0, time.Now()), message(1, time.Now()), message(2, time.Now()), message(3, time.Now())}
	resp, err := h(context.Background(), events.SQSEvent{Records: batch})
	if err != nil || fmt.Sprint(resp.BatchItemFailures) != "[{msg-001} {msg-002}]" {
		t.Fatalf("standard queue: %v %+v", err, resp)
	}
	if resp, err := h(context.Background(), events.SQSEvent{Records: batch}); err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("redelivery: %v %+v", err, resp)
	}
	if fmt.Sprint(ran) != "[msg-000 msg-003 msg-001 msg-002]" {
		t.Fatalf("ran %v", ran)
	}

	// FIFO: stop at the first failure.
	ran, attempts = nil, map[string]int{}
	fifo := make([]events.SQSMessage, 4)
	for i := range fifo {
		fifo[i] = message(i, time.Now())
		fifo[i].EventSourceARN = queueARN + ".fifo"
	}
	resp, err = h(context.Background(), events.SQSEvent{Records: fifo})
	if err != nil || fmt.Sprint(resp.BatchItemFailures) != "[{msg-001} {msg-002} {msg-003}]" || fmt.Sprint(ran) != "[msg-000]" {
		t.Fatalf("FIFO: %v %+v ran %v", err, resp, ran)
	}
}

func TestConfigRefused(t *testing.T) {
	tbl := dynaguard.NewTable(ddbtest.Client(t), "unused")
	g := guard(t, tbl, nil)
	noop := func(context.Context, events.SQSMessage) error { return nil }
	for _, cfg := range []lambdaevents.Config{
		{},
		{Guard: g, Window: 2 * time.Hour}, // longer than the Guard remembers
		{Guard: g, Concurrency: -1},
		{Guard: g, Concurrency: lambdaevents.MaxConcurrency + 1},
	} {
		if _, err := lambdaevents.SQS(cfg, noop); !errors.Is(err, lambdaevents.ErrInvalidConfig) {
			t.Errorf("%+v: %v", cfg, err)
		}
	}
	if _, err := lambdaevents.SQS(lambdaevents.Config{Guard: g}, nil); !errors.Is(err, lambdaevents.ErrInvalidConfig) {
		t.Errorf("nil function: %v", err)
	}
	if _, err := lambdaevents.DynamoDBStream(lambdaevents.Config{Guard: g, Window: -1}, func(context.Context, events.DynamoDBEventRecord) error { return nil }); err != nil {
		t.Errorf("window off: %v", err)
	}
}

// ranOncePerKey checks that want distinct keys ran, each exactly once
// (runs maps a key to its *atomic.Int64 run count).
func ranOncePerKey(t *testing.T, runs *sync.Map, want int) {
	t.Helper()
	count := 0
	runs.Range(func(k, v any) bool {
		count++
		if n := v.(*atomic.Int64).Load(); n != 1 {
			t.Errorf("%s ran %d times", k, n)
		}
		return true
	})
	if count != want {
		t.Fatalf("%d keys ran, want %d", count, want)
	}
}
