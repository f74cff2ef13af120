// Command worker is a queue and stream consumer that runs each record
// exactly once, built on idempotency/lambdaevents.
//
// Deployed as an AWS Lambda function (the runtime sets AWS_LAMBDA_RUNTIME_API)
// it serves SQS events, or DynamoDB Streams events with DYNAGUARD_EVENTS=stream,
// from the table DYNAGUARD_TABLE, keyed by DYNAGUARD_SECRET.
//
// Run anywhere else, it feeds itself simulated events against DynamoDB Local,
// the way Lambda delivers them at worst — every message several times, to
// several consumers at once, a stream record replayed after its window — and
// shows that each one took effect once:
//
//	make run-worker                 # DynamoDB Local + this
//	go run ./example/worker         # against DYNAMODB_ENDPOINT (default http://127.0.0.1:8000)
//
// Flags: -messages (default 50), -copies (deliveries per message, default 4),
// -consumers (default 4), -table (default: a fresh table, deleted at the end).
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/idempotency"
	"github.com/dynaguard/dynaguard/idempotency/lambdaevents"
)

func main() {
	sim := simulation{}
	flag.IntVar(&sim.messages, "messages", 50, "messages (and stream records) to simulate")
	flag.IntVar(&sim.copies, "copies", 4, "deliveries of each message")
	flag.IntVar(&sim.consumers, "consumers", 4, "concurrent consumers, each with its own Guard")
	flag.StringVar(&sim.table, "table", "", "DynamoDB table (default: a fresh one, deleted at the end)")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	if os.Getenv("AWS_LAMBDA_RUNTIME_API") != "" {
		if err := serveLambda(log); err != nil {
			log.Error("worker: " + err.Error())
			os.Exit(1)
		}
		return
	}
	endpoint := os.Getenv("DYNAMODB_ENDPOINT")
	if endpoint == "" {
		endpoint = "http://127.0.0.1:8000"
	}
	sim.client = dynamodb.New(dynamodb.Options{Region: "us-east-1", BaseEndpoint: aws.String(endpoint),
		Credentials: credentials.NewStaticCredentialsProvider("local", "local", "")})
	sim.log = log
	if err := sim.run(context.Background(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

// process is the work: here it only counts. Whatever it does — charge a
// card, send an email, call a partner's API — happens once per order.
type process struct {
	runs sync.Map // order key → *atomic.Int64
}

func (p *process) order(ctx context.Context, key string) error {
	n, _ := p.runs.LoadOrStore(key, new(atomic.Int64))
	n.(*atomic.Int64).Add(1)
	time.Sleep(time.Duration(mrand.IntN(3)) * time.Millisecond) // a little work, so that deliveries overlap
	return nil
}

// newGuard is the one piece of dynaguard a consumer needs.
func newGuard(tbl *dynaguard.Table, keys *dynaguard.Keyring, log *slog.Logger) (*idempotency.Guard, error) {
	return idempotency.New(idempotency.Config{
		Table:   tbl,
		Keyring: keys,                      // outcomes sealed at rest
		Scope:   idempotency.UserOrSession, // no HTTP requests here: Do keys are not scoped
		Lease:   10 * time.Second,          // a crashed consumer blocks a record at most this long
		Logger:  log,
	})
}

func serveLambda(log *slog.Logger) error {
	ctx := context.Background()
	table := os.Getenv("DYNAGUARD_TABLE")
	if table == "" {
		return errors.New("DYNAGUARD_TABLE is not set")
	}
	keys, err := dynaguard.ParseKeyring(os.Getenv("DYNAGUARD_SECRET"))
	if err != nil {
		return err
	}
	awsCfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return err
	}
	guard, err := newGuard(dynaguard.NewTable(dynamodb.NewFromConfig(awsCfg), table), keys, log)
	if err != nil {
		return err
	}
	p := &process{}
	cfg := lambdaevents.Config{Guard: guard, Logger: log}
	if os.Getenv("DYNAGUARD_EVENTS") == "stream" {
		h, err := lambdaevents.DynamoDBStream(cfg, func(ctx context.Context, r events.DynamoDBEventRecord) error {
			return p.order(ctx, r.EventID)
		})
		if err != nil {
			return err
		}
		lambda.Start(h)
		return nil
	}
	h, err := lambdaevents.SQS(cfg, func(ctx context.Context, m events.SQSMessage) error {
		return p.order(ctx, m.MessageId)
	})
	if err != nil {
		return err
	}
	lambda.Start(h)
	return nil
}

type simulation struct {
	messages, copies, consumers int
	table                       string
	client                      *dynamodb.Client
	log                         *slog.Logger
}

func (s *simulation) run(ctx context.Context, out io.Writer) error {
	if s.messages < 1 || s.copies < 1 || s.consumers < 1 || s.messages > 100_000 || s.copies*s.messages > 1_000_000 || s.consumers > 64 {
		return errors.New("messages, copies and consumers must be positive (and at most 100000, 1000000 deliveries, 64)")
	}
	name := s.table
	if name == "" {
		name = "dynaguard-worker-" + strings.ToLower(rand.Text()[:8])
	}
	tbl := dynaguard.NewTable(s.client, name)
	if err := tbl.Ensure(ctx); err != nil {
		return fmt.Errorf("table %s at the DynamoDB endpoint: %w (is DynamoDB Local running? make run-worker starts one)", name, err)
	}
	if s.table == "" {
		defer s.client.DeleteTable(context.WithoutCancel(ctx), &dynamodb.DeleteTableInput{TableName: aws.String(name)})
	}
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	keys, err := dynaguard.ParseKeyring(hex.EncodeToString(secret))
	if err != nil {
		return err
	}

	// Queue: every message delivered s.copies times, shuffled, to
	// s.consumers consumers at once, each running 4 messages in parallel.
	queueWork := &process{}
	var sqsHandlers []func(context.Context, []events.SQSMessage) []string
	for range s.consumers {
		g, err := newGuard(tbl, keys, s.log)
		if err != nil {
			return err
		}
		h, err := lambdaevents.SQS(lambdaevents.Config{Guard: g, Concurrency: 4, Logger: s.log},
			func(ctx context.Context, m events.SQSMessage) error { return queueWork.order(ctx, m.MessageId) })
		if err != nil {
			return err
		}
		sqsHandlers = append(sqsHandlers, func(ctx context.Context, b []events.SQSMessage) []string {
			resp, _ := h(ctx, events.SQSEvent{Records: b})
			ids := make([]string, len(resp.BatchItemFailures))
			for i, f := range resp.BatchItemFailures {
				ids[i] = f.ItemIdentifier
			}
			return ids
		})
	}
	now := time.Now()
	var msgs []events.SQSMessage
	for range s.copies {
		for i := range s.messages {
			msgs = append(msgs, events.SQSMessage{MessageId: fmt.Sprintf("order-%05d", i), Body: fmt.Sprintf(`{"order":%d}`, i),
				EventSourceARN: "arn:aws:sqs:local:000000000000:orders",
				Attributes:     map[string]string{"SentTimestamp": strconv.FormatInt(now.UnixMilli(), 10)}})
		}
	}
	mrand.Shuffle(len(msgs), func(i, j int) { msgs[i], msgs[j] = msgs[j], msgs[i] })
	redelivered, err := deliver(ctx, msgs, func(m events.SQSMessage) string { return m.MessageId }, sqsHandlers)
	if err != nil {
		return err
	}
	ran, extra := count(&queueWork.runs)
	fmt.Fprintf(out, "queue:  %d deliveries of %d messages to %d consumers (%d redelivered after \"in flight\"): %d ran, %d ran more than once\n",
		len(msgs), s.messages, s.consumers, redelivered, ran, extra)
	if ran != s.messages || extra != 0 {
		return fmt.Errorf("queue: %d of %d messages ran, %d more than once", ran, s.messages, extra)
	}

	// Stream: the same, plus one record replayed after its validity window.
	streamWork := &process{}
	var refused atomic.Int64
	var streamHandlers []func(context.Context, []events.DynamoDBEventRecord) []string
	for range s.consumers {
		g, err := newGuard(tbl, keys, s.log)
		if err != nil {
			return err
		}
		h, err := lambdaevents.DynamoDBStream(lambdaevents.Config{Guard: g, Window: 15 * time.Minute, Logger: s.log,
			OnRefused: func(context.Context, string, time.Time) { refused.Add(1) }},
			func(ctx context.Context, r events.DynamoDBEventRecord) error { return streamWork.order(ctx, r.EventID) })
		if err != nil {
			return err
		}
		streamHandlers = append(streamHandlers, func(ctx context.Context, b []events.DynamoDBEventRecord) []string {
			resp, _ := h(ctx, events.DynamoDBEvent{Records: b})
			ids := make([]string, len(resp.BatchItemFailures))
			for i, f := range resp.BatchItemFailures {
				ids[i] = f.ItemIdentifier
			}
			return ids
		})
	}
	record := func(i int, created time.Time) events.DynamoDBEventRecord {
		return events.DynamoDBEventRecord{EventID: fmt.Sprintf("event-%05d", i), EventName: "INSERT",
			EventSourceArn: "arn:aws:dynamodb:local:000000000000:table/orders/stream/2026-01-01T00:00:00.000",
			Change: events.DynamoDBStreamRecord{SequenceNumber: fmt.Sprintf("%021d", i),
				ApproximateCreationDateTime: events.SecondsEpochTime{Time: created}}}
	}
	var recs []events.DynamoDBEventRecord
	for range s.copies {
		for i := range s.messages {
			recs = append(recs, record(i, now))
		}
	}
	mrand.Shuffle(len(recs), func(i, j int) { recs[i], recs[j] = recs[j], recs[i] })
	recs = append(recs, record(s.messages, now.Add(-time.Hour))) // an old event, replayed
	redelivered, err = deliver(ctx, recs, func(r events.DynamoDBEventRecord) string { return r.Change.SequenceNumber }, streamHandlers)
	if err != nil {
		return err
	}
	ran, extra = count(&streamWork.runs)
	fmt.Fprintf(out, "stream: %d deliveries of %d records to %d consumers (%d redelivered): %d ran, %d ran more than once, %d refused as older than the window\n",
		len(recs), s.messages+1, s.consumers, redelivered, ran, extra, refused.Load())
	if ran != s.messages || extra != 0 || refused.Load() != 1 {
		return fmt.Errorf("stream: %d of %d records ran, %d more than once, %d refused", ran, s.messages, extra, refused.Load())
	}
	fmt.Fprintln(out, "each record took effect exactly once")
	return nil
}

func count(runs *sync.Map) (ran, extra int) {
	runs.Range(func(_, v any) bool {
		ran++
		if v.(*atomic.Int64).Load() > 1 {
			extra++
		}
		return true
	})
	return ran, extra
}

// deliver plays Lambda's event source mapping at its worst: batches of up
// to 10 deliveries go to whichever consumer is free, and the deliveries a
// consumer reports failed come back later, until every one has succeeded.
func deliver[T any](ctx context.Context, deliveries []T, id func(T) string, consumers []func(context.Context, []T) []string) (redelivered int, err error) {
	queue := make(chan T, len(deliveries))
	for _, d := range deliveries {
		queue <- d
	}
	var left atomic.Int64
	left.Store(int64(len(deliveries)))
	var again atomic.Int64
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	for _, consume := range consumers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for left.Load() > 0 && ctx.Err() == nil {
				var batch []T
				for len(batch) < 10 {
					select {
					case d := <-queue:
						batch = append(batch, d)
						continue
					default:
					}
					break
				}
				if len(batch) == 0 {
					time.Sleep(time.Millisecond)
					continue
				}
				failed := map[string]bool{}
				for _, f := range consume(ctx, batch) {
					failed[f] = true
				}
				for _, d := range batch {
					if failed[id(d)] {
						again.Add(1)
						queue <- d
					} else {
						left.Add(-1)
					}
				}
			}
		}()
	}
	wg.Wait()
	if n := left.Load(); n > 0 {
		return int(again.Load()), fmt.Errorf("%d deliveries still failing after 2 minutes", n)
	}
	return int(again.Load()), nil
}
