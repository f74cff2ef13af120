package obs_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/authctx"
	"github.com/dynaguard/dynaguard/internal/obs"
)

type hook struct {
	mu  sync.Mutex
	got []dynaguard.Event
}

func (h *hook) add(_ context.Context, e dynaguard.Event) {
	h.mu.Lock()
	h.got = append(h.got, e)
	h.mu.Unlock()
}

func TestEmitFillsTheEventAndLogsAtItsLevel(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	h := &hook{}
	at := time.Unix(1_800_000_000, 0)
	e := obs.New(&dynaguard.Events{Hook: h.add}, "nonce", dynaguard.ClockFunc(func() time.Time { return at }), log)
	ctx := authctx.WithClient(context.Background(), authctx.Client{IP: netip.MustParseAddr("203.0.113.7")})

	e.Emit(ctx, dynaguard.Event{Name: dynaguard.EventNonceRefused, Reason: "nonce-used", UserID: "u1"})
	e.Emit(ctx, dynaguard.Event{Name: dynaguard.EventNonceConsumed}) // Debug: hook only

	if len(h.got) != 2 {
		t.Fatalf("hook got %d events, want 2", len(h.got))
	}
	want := dynaguard.Event{Name: dynaguard.EventNonceRefused, Time: at, Outcome: dynaguard.OutcomeFailure,
		Reason: "nonce-used", Component: "nonce", UserID: "u1", ClientAddr: "203.0.113.7"}
	if h.got[0] != want {
		t.Errorf("event = %+v, want %+v", h.got[0], want)
	}
	if h.got[1].Outcome != dynaguard.OutcomeSuccess {
		t.Errorf("nonce.consumed outcome = %v", h.got[1].Outcome)
	}
	out := buf.String()
	if n := strings.Count(out, "security event"); n != 1 {
		t.Fatalf("%d log lines, want 1 (Debug events are not logged at Info):\n%s", n, out)
	}
	for _, s := range []string{"level=INFO", "event=nonce.refused", "outcome=failure", "reason=nonce-used", "component=nonce", "user=u1", "client=203.0.113.7"} {
		if !strings.Contains(out, s) {
			t.Errorf("log line lacks %q: %s", s, out)
		}
	}
}

func TestOffAndNilDropEverything(t *testing.T) {
	h := &hook{}
	e := obs.New(&dynaguard.Events{Hook: h.add, Off: true}, "users", nil, nil)
	e.Emit(context.Background(), dynaguard.Event{Name: dynaguard.EventLoginFailed})
	e.StorageFailure(context.Background(), "", errors.New("x"))
	if len(h.got) != 0 {
		t.Fatalf("Off: hook got %v", h.got)
	}
	tbl := dynaguard.NewTable(stubAPI{}, "t")
	if got := e.Table(tbl); got != tbl {
		t.Fatal("Off: the table's client was wrapped")
	}
}

func TestStorageReason(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{dynaguard.ErrThrottled, "throttled"},
		{fmt.Errorf("get: %w", dynaguard.ErrUnavailable), "unavailable"},
		{context.DeadlineExceeded, "timeout"},
		{context.Canceled, "canceled"},
		{dynaguard.ErrItemTooLarge, "too_large"},
		{errors.New("connection refused"), "error"},
	} {
		if got := obs.StorageReason(tc.err); got != tc.want {
			t.Errorf("StorageReason(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

func TestCatalogueIsComplete(t *testing.T) {
	seen := map[string]bool{}
	for _, n := range dynaguard.EventNames() {
		s := n.String()
		if s == "unknown" || seen[s] || n.Outcome() == 0 {
			t.Errorf("event %d: name %q outcome %v", n, s, n.Outcome())
		}
		seen[s] = true
	}
}

func TestCountersSpansAndDurations(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	e := obs.New(&dynaguard.Events{MeterProvider: mp, TracerProvider: tp}, "idempotency", nil, slog.New(slog.DiscardHandler))
	tbl := e.Table(dynaguard.NewTable(stubAPI{}, "t"))

	ctx := context.Background()
	e.Emit(ctx, dynaguard.Event{Name: dynaguard.EventIdempotencyReplayed})
	e.Emit(ctx, dynaguard.Event{Name: dynaguard.EventIdempotencyReplayed})
	_, _ = tbl.Client.GetItem(ctx, &dynamodb.GetItemInput{}) // outside a trace: timed, no span
	ctx, root := tp.Tracer("test").Start(ctx, "request")
	_, _ = tbl.Client.PutItem(ctx, &dynamodb.PutItemInput{})
	root.End()

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	counts := map[string]int64{}
	durations := map[string]uint64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					name, _ := p.Attributes.Value("event.name")
					counts[m.Name+" "+name.AsString()] += p.Value
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					op, _ := p.Attributes.Value("rpc.method")
					oc, _ := p.Attributes.Value("outcome")
					durations[m.Name+" "+op.AsString()+" "+oc.AsString()] += p.Count
				}
			}
		}
	}
	if got := counts[obs.MetricEvents+" idempotency.replayed"]; got != 2 {
		t.Errorf("counter = %d, want 2 (%v)", got, counts)
	}
	if durations[obs.MetricDuration+" GetItem ok"] != 1 || durations[obs.MetricDuration+" PutItem error"] != 1 {
		t.Errorf("durations = %v", durations)
	}
	var names []string
	for _, s := range spans.Ended() {
		names = append(names, s.Name())
	}
	if strings.Join(names, ",") != "DynamoDB.PutItem,request" {
		t.Errorf("spans = %v, want a PutItem span inside the request's only", names)
	}
}

// The hot path with the default sink and nothing listening: no allocation
// per event or per DynamoDB call.
func TestNoAllocationsWhenNothingListens(t *testing.T) {
	e := obs.New(nil, "nonce", nil, slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil)))
	tbl := e.Table(dynaguard.NewTable(okAPI{}, "t"))
	ctx := authctx.WithClient(context.Background(), authctx.Client{IP: netip.MustParseAddr("203.0.113.7")})
	in := &dynamodb.GetItemInput{}
	n := testing.AllocsPerRun(200, func() {
		e.Emit(ctx, dynaguard.Event{Name: dynaguard.EventNonceConsumed, UserID: "u1"})
		_, _ = tbl.Client.GetItem(ctx, in)
	})
	if n != 0 {
		t.Fatalf("%.1f allocations per event and call, want 0", n)
	}
}

func BenchmarkEmitDefaultSink(b *testing.B) {
	e := obs.New(nil, "nonce", nil, slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil)))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		e.Emit(ctx, dynaguard.Event{Name: dynaguard.EventNonceConsumed, UserID: "u1"})
	}
}

func BenchmarkCallDefaultSink(b *testing.B) {
	e := obs.New(nil, "nonce", nil, nil)
	tbl := e.Table(dynaguard.NewTable(okAPI{}, "t"))
	ctx := context.Background()
	in := &dynamodb.GetItemInput{}
	b.ReportAllocs()
	for b.Loop() {
		_, _ = tbl.Client.GetItem(ctx, in)
	}
}

// stubAPI fails every call but GetItem; okAPI answers every GetItem.
type stubAPI struct{ dynaguard.API }

func (stubAPI) GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	return &dynamodb.GetItemOutput{}, nil
}

func (stubAPI) PutItem(context.Context, *dynamodb.PutItemInput, ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	return nil, errors.New("stub: PutItem fails")
}

type okAPI struct{ dynaguard.API }

var getOut = &dynamodb.GetItemOutput{}

func (okAPI) GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	return getOut, nil
}
