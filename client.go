package dynaguard

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
)

// ErrUnavailable: DynamoDB failed the last ClientConfig.FailFastAfter
// attempts in a row (connections refused or reset, attempts timed out,
// 5xx answers), so the client refuses new attempts at once until a probe
// gets through. A storage error, never an answer; the SDK does not retry it.
var ErrUnavailable = errors.New("dynaguard: DynamoDB unavailable, failing fast")

// ClientConfig tunes NewClient. Every zero field takes the default in its
// comment; the defaults suit a request budget of 3 s (middleware.Config.Budget).
type ClientConfig struct {
	// AttemptTimeout bounds one HTTP attempt, from dial to the last byte of
	// the response. Default 1 s: DynamoDB answers in milliseconds, so an
	// attempt this slow is stuck, and the budget still leaves room to retry.
	AttemptTimeout time.Duration
	// DialTimeout bounds connecting (TCP and TLS). Default 500 ms.
	DialTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for the response headers once
	// the request is sent. Default AttemptTimeout.
	ResponseHeaderTimeout time.Duration
	// MaxAttempts is the number of attempts per call, the first included.
	// Default 3.
	MaxAttempts int
	// MaxBackoff caps the jittered exponential wait between attempts.
	// Default 100 ms.
	MaxBackoff time.Duration
	// RetryTokens is the SDK's retry quota (a token bucket shared by every
	// call of the client): a retry costs 5 tokens (10 after a timeout), a
	// first attempt that succeeds refunds 1, and without tokens a failed
	// attempt is not retried. Default 500, the SDK's.
	RetryTokens uint
	// MaxConns bounds the connections to DynamoDB (dialing, active and
	// idle), so that a stall cannot pile up sockets. Default 64.
	MaxConns int
	// FailFastAfter is the number of failed attempts in a row after which
	// the client fails fast with ErrUnavailable. Default 5.
	FailFastAfter int
	// FailFastFor is how long it then fails fast before letting one probe
	// attempt through; the probe's success restores service, its failure
	// fails fast again. Default 250 ms.
	FailFastFor time.Duration
}

func (c *ClientConfig) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.AttemptTimeout, time.Second)
	def(&c.DialTimeout, 500*time.Millisecond)
	def(&c.ResponseHeaderTimeout, c.AttemptTimeout)
	def(&c.MaxBackoff, 100*time.Millisecond)
	def(&c.FailFastFor, 250*time.Millisecond)
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 3
	}
	if c.RetryTokens == 0 {
		c.RetryTokens = retry.DefaultRetryRateTokens
	}
	if c.MaxConns <= 0 {
		c.MaxConns = 64
	}
	if c.FailFastAfter <= 0 {
		c.FailFastAfter = 5
	}
}

// NewClient returns a DynamoDB client built to fail fast and recover by
// itself, for dynaguard's request path:
//
//   - every attempt is bounded (AttemptTimeout, DialTimeout,
//     ResponseHeaderTimeout); the SDK's defaults have no such bound, so a
//     DynamoDB that accepts connections and never answers holds each
//     request for as long as its context allows;
//   - the SDK's standard retryer, with MaxAttempts, jittered exponential
//     backoff capped at MaxBackoff and its retry quota (RetryTokens): when
//     failures drain the quota, calls get one attempt and no retry;
//   - a breaker in front of the transport: after FailFastAfter failed
//     attempts in a row, attempts fail at once with ErrUnavailable for
//     FailFastFor, then one probe goes through. The retry quota alone
//     cannot give fast failure — it never skips a first attempt, and a
//     stalled first attempt costs a whole AttemptTimeout — so the breaker
//     is what makes a known-down DynamoDB answer in microseconds, and
//     its probe what brings service back within FailFastFor of DynamoDB
//     answering again;
//   - at most MaxConns connections, so sockets stay bounded in a stall.
//
// cfg is the SDK configuration (credentials, region, endpoint), as from
// config.LoadDefaultConfig; its HTTPClient and Retryer are replaced. optFns
// run last and may override anything.
func NewClient(cfg aws.Config, cc ClientConfig, optFns ...func(*dynamodb.Options)) *dynamodb.Client {
	cc.defaults()
	hc := awshttp.NewBuildableClient().
		WithTimeout(cc.AttemptTimeout).
		WithDialerOptions(func(d *net.Dialer) {
			d.Timeout = cc.DialTimeout
			d.KeepAlive = 30 * time.Second
		}).
		WithTransportOptions(func(t *http.Transport) {
			t.TLSHandshakeTimeout = cc.DialTimeout
			t.ResponseHeaderTimeout = cc.ResponseHeaderTimeout
			t.MaxConnsPerHost = cc.MaxConns
			t.MaxIdleConnsPerHost = cc.MaxConns
			t.MaxIdleConns = cc.MaxConns
			t.IdleConnTimeout = 60 * time.Second
		})
	br := &breaker{next: hc, after: int32(cc.FailFastAfter), open: cc.FailFastFor}
	tokens := ratelimit.NewTokenRateLimit(cc.RetryTokens)
	opts := append([]func(*dynamodb.Options){func(o *dynamodb.Options) {
		o.HTTPClient = br
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = cc.MaxAttempts
			so.MaxBackoff = cc.MaxBackoff
			so.Backoff = retry.NewExponentialJitterBackoff(cc.MaxBackoff)
			so.RateLimiter = tokens
		})
	}}, optFns...)
	return dynamodb.NewFromConfig(cfg, opts...)
}

// breaker counts failed attempts in a row and fails fast after too many.
type breaker struct {
	next  aws.HTTPClient
	after int32
	open  time.Duration

	fails   atomic.Int32
	mu      sync.Mutex
	until   time.Time // fail fast before this instant
	probing bool      // a probe attempt is in flight
}

// failFast is ErrUnavailable as an attempt error: the SDK's retryer asks
// RetryableError first, so it is not retried.
type failFast struct{}

func (failFast) Error() string        { return ErrUnavailable.Error() }
func (failFast) Unwrap() error        { return ErrUnavailable }
func (failFast) RetryableError() bool { return false }
func (failFast) Is(target error) bool { return target == ErrUnavailable }

func (b *breaker) Do(req *http.Request) (*http.Response, error) {
	if req.Context().Err() != nil {
		// Spent before it started (the caller's budget, not DynamoDB):
		// says nothing about DynamoDB.
		return b.next.Do(req)
	}
	probe := false
	if b.fails.Load() >= b.after {
		b.mu.Lock()
		if time.Now().Before(b.until) || b.probing {
			b.mu.Unlock()
			return nil, failFast{}
		}
		b.probing, probe = true, true
		b.mu.Unlock()
	}
	resp, err := b.next.Do(req)
	failed := (err != nil && !errors.Is(req.Context().Err(), context.Canceled)) ||
		(resp != nil && resp.StatusCode >= 500)
	if failed {
		if n := b.fails.Add(1); n >= b.after {
			b.mu.Lock()
			b.until = time.Now().Add(b.open)
			b.mu.Unlock()
		}
	} else if err == nil {
		b.fails.Store(0)
	}
	if probe {
		b.mu.Lock()
		b.probing = false
		b.mu.Unlock()
	}
	return resp, err
}
