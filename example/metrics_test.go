package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/obs"
)

// With -metrics, dynaguard's event counter and DynamoDB durations reach
// Prometheus through the OpenTelemetry SDK the example installs.
func TestMetricsEndpoint(t *testing.T) {
	mux, mp, err := metricsMux()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	ev := obs.New(nil, "nonce", nil, slog.New(slog.DiscardHandler))
	ev.Emit(context.Background(), dynaguard.Event{Name: dynaguard.EventNonceRefused, Reason: "nonce-used"})
	tbl := ev.Table(dynaguard.NewTable(okAPI{}, "t"))
	_, _ = tbl.Client.GetItem(context.Background(), &dynamodb.GetItemInput{})

	srv := httptest.NewServer(mux)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	body := string(b)
	for _, want := range []string{
		`dynaguard_security_events_total{`,
		`event_name="nonce.refused"`,
		`event_outcome="failure"`,
		`dynaguard_dynamodb_duration_seconds_count{`,
		`rpc_method="GetItem"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s:\n%s", want, body)
		}
	}
}

type okAPI struct{ dynaguard.API }

func (okAPI) GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	return &dynamodb.GetItemOutput{}, nil
}
