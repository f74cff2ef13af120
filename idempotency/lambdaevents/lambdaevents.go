package lambdaevents

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/idempotency"
)

// ErrBatchFailed is returned, with the partial response, when every record
// of a non-empty batch failed.
var ErrBatchFailed = errors.New("lambdaevents: every record of the batch failed")

// ErrInvalidConfig is returned by SQS and DynamoDBStream for a Config they
// cannot use safely.
var ErrInvalidConfig = errors.New("lambdaevents: invalid config")

// Defaults.
const (
	DefaultConcurrency = 1
	MaxConcurrency     = 100
)

// Config configures a handler. Guard is required.
type Config struct {
	// Guard claims each record's key and keeps its outcome. Its
	// Retention bounds Window. A Guard used only here takes
	// idempotency.UserOrSession as its Scope.
	Guard *idempotency.Guard

	// Window is how old a record may be and still run: older ones are
	// refused (see the package documentation). Age is measured from the
	// stream record's ApproximateCreationDateTime or the message's
	// SentTimestamp attribute; a record without one is refused. Default
	// the Guard's Retention, which is also the largest Window accepted: a
	// duplicate of an older record could no longer be recognised. A
	// negative Window turns the check off and, with it, exactly-once
	// beyond the Retention.
	Window time.Duration

	// Source names the key space of the records (default: each record's
	// event source ARN). Set one name to deduplicate across queues, or to
	// keep the key space when a queue is recreated.
	Source string

	// MessageKey derives an SQS message's key (default its MessageId).
	// Take a business ID from the body when a producer may send one
	// message twice: a retried SendMessage gets a new MessageId. A message
	// for which it returns "" is reported failed and not run.
	MessageKey func(m events.SQSMessage) string

	// Concurrency is how many messages of a standard SQS queue's batch
	// run at once (default 1, at most MaxConcurrency). FIFO queues and
	// streams always run one record at a time, in order.
	Concurrency int

	// OnRefused is called for each record refused for its age, which
	// never runs (its key is not claimed either); with Concurrency above
	// 1 it may be called from several goroutines at once. Default: nothing
	// beyond the warning logged for every refusal.
	OnRefused func(ctx context.Context, id string, created time.Time)

	Clock  dynaguard.Clock // default dynaguard.SystemClock
	Logger *slog.Logger    // default slog.Default()
}

// consumer is a checked Config.
type consumer struct {
	guard       *idempotency.Guard
	window      time.Duration // <= 0: none
	source      string
	concurrency int
	onRefused   func(context.Context, string, time.Time)
	clock       dynaguard.Clock
	log         *slog.Logger
}

func newConsumer(cfg Config) (*consumer, error) {
	if cfg.Guard == nil {
		return nil, fmt.Errorf("%w: Guard is required", ErrInvalidConfig)
	}
	c := &consumer{
		guard:       cfg.Guard,
		window:      cfg.Window,
		source:      cfg.Source,
		concurrency: cfg.Concurrency,
		onRefused:   cfg.OnRefused,
		clock:       dynaguard.ClockOrSystem(cfg.Clock),
		log:         cfg.Logger,
	}
	if c.window == 0 {
		c.window = cfg.Guard.Retention()
	}
	if c.window > cfg.Guard.Retention() {
		return nil, fmt.Errorf("%w: Window %v is longer than the Guard's Retention %v: a duplicate of an older record "+
			"could no longer be recognised", ErrInvalidConfig, c.window, cfg.Guard.Retention())
	}
	if c.concurrency == 0 {
		c.concurrency = DefaultConcurrency
	}
	if c.concurrency < 1 || c.concurrency > MaxConcurrency {
		return nil, fmt.Errorf("%w: Concurrency %d is not within 1..%d", ErrInvalidConfig, c.concurrency, MaxConcurrency)
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	return c, nil
}

// record is one unit of work of a batch, whatever its source.
type record struct {
	id      string    // reported in BatchItemFailures
	key     string    // "" when no key could be derived: fails
	fp      []byte    // fingerprint of the payload
	created time.Time // zero: unknown
	run     func(context.Context) error
}

// outcome of one record.
type outcome int

const (
	done      outcome = iota // ran now, or a duplicate of work done
	failed                   // to be redelivered
	refused                  // too old: never runs
	cancelled                // not attempted: an earlier record of an ordered batch failed
)

// process runs a batch and returns each record's outcome. Ordered batches
// (streams, FIFO queues) stop at the first failure; the others run up to
// c.concurrency records at once.
func (c *consumer) process(ctx context.Context, recs []record, ordered bool) []outcome {
	out := make([]outcome, len(recs))
	if ordered || c.concurrency == 1 {
		stop := false
		for i := range recs {
			if stop {
				out[i] = cancelled
				continue
			}
			out[i] = c.one(ctx, &recs[i])
			stop = ordered && out[i] == failed
		}
		return out
	}
	sem := make(chan struct{}, c.concurrency)
	var wg sync.WaitGroup
	for i := range recs {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			out[i] = c.one(ctx, &recs[i])
		}()
	}
	wg.Wait()
	return out
}

// one runs a record under its key, unless it is too old.
func (c *consumer) one(ctx context.Context, r *record) (res outcome) {
	if c.window > 0 {
		age := c.clock.Now().Sub(r.created)
		if r.created.IsZero() || age > c.window {
			c.log.WarnContext(ctx, "lambdaevents: record refused: older than the validity window, or without a timestamp; not run",
				"id", r.id, "created", r.created, "window", c.window)
			if c.onRefused != nil {
				c.onRefused(ctx, r.id, r.created)
			}
			return refused
		}
	}
	if r.key == "" {
		c.log.ErrorContext(ctx, "lambdaevents: record without a key; not run", "id", r.id)
		return failed
	}
	if err := ctx.Err(); err != nil {
		return failed // out of time: not attempted, redelivered
	}
	_, replayed, err := c.guard.Do(ctx, r.key, r.fp, func(ctx context.Context) (_ []byte, err error) {
		// A panic fails this record alone (its key is released, as for an
		// error) instead of the whole invocation.
		defer func() {
			if v := recover(); v != nil {
				err = fmt.Errorf("lambdaevents: panic: %v", v)
			}
		}()
		return nil, r.run(ctx)
	})
	switch {
	case err == nil:
		if replayed {
			c.log.DebugContext(ctx, "lambdaevents: duplicate delivery; already done", "id", r.id)
		}
		return done
	case errors.Is(err, idempotency.ErrResultNotKept):
		return done // done before; there is no result to keep
	case errors.Is(err, idempotency.ErrInFlight):
		c.log.InfoContext(ctx, "lambdaevents: record in flight on another consumer; redelivery will find its outcome", "id", r.id)
	case errors.Is(err, idempotency.ErrUnavailable):
		c.log.ErrorContext(ctx, "lambdaevents: storage failed; record not run, to be redelivered", "id", r.id, "err", err)
	case errors.Is(err, idempotency.ErrFingerprintMismatch), errors.Is(err, idempotency.ErrFailedFinal),
		errors.Is(err, idempotency.ErrInvalidKey):
		c.log.ErrorContext(ctx, "lambdaevents: record refused", "id", r.id, "err", err)
	default:
		c.log.WarnContext(ctx, "lambdaevents: record failed; to be redelivered", "id", r.id, "err", err)
	}
	return failed
}

// failures returns the IDs to report, and ErrBatchFailed when every
// record failed.
func failures(recs []record, out []outcome, reportRefused bool) ([]string, error) {
	var ids []string
	for i, o := range out {
		if o == failed || o == cancelled || (o == refused && reportRefused) {
			ids = append(ids, recs[i].id)
		}
	}
	if len(recs) > 0 && len(ids) == len(recs) {
		return ids, ErrBatchFailed
	}
	return ids, nil
}
