package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/idempotency"
	"github.com/dynaguard/dynaguard/idempotency/lambdaevents"
)

// Section 1, queue consumers: one SQS message through lambdaevents.SQS on
// the measured table — a first delivery, a duplicate on another consumer,
// and a message older than the validity window.

func init() {
	minimums["SQS message (first delivery)"] = minimum{2, "claim PutItem + completion UpdateItem", 0, 2,
		"As an idempotent request without the session: the claim stops every concurrent copy on any consumer before the work runs, and the completion records the outcome for later copies. Two writes is the least that does both."}
	minimums["the same message on another consumer"] = minimum{1, "1 failed conditional PutItem", 0, 1,
		"The claim fails and returns the stored outcome with it: no read, and the work does not run. AWS bills the failed write 1 WCU; DynamoDB Local reports 0."}
	minimums["a message older than the validity window"] = minimum{0, "none", 0, 0,
		"The age (SentTimestamp) is checked before any call: a replay after its window is refused without touching the table."}
}

func measureEventFlows(m *meter, add func(flowResult, error) error) error {
	var consumers []func(context.Context, events.SQSEvent) (events.SQSEventResponse, error)
	keys, err := dynaguard.NewKeyring(bytes.Repeat([]byte{0x5e}, 32))
	if err != nil {
		return err
	}
	for range 2 {
		g, err := idempotency.New(idempotency.Config{Table: m.tbl, Keyring: keys, Scope: idempotency.UserOrSession,
			Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			return err
		}
		h, err := lambdaevents.SQS(lambdaevents.Config{Guard: g, Window: time.Hour, Logger: slog.New(slog.DiscardHandler)},
			func(context.Context, events.SQSMessage) error { return nil })
		if err != nil {
			return err
		}
		consumers = append(consumers, h)
	}
	msg := func(id string, sent time.Time) events.SQSEvent {
		return events.SQSEvent{Records: []events.SQSMessage{{MessageId: id, Body: `{"order":1}`,
			EventSourceARN: "arn:aws:sqs:local:000000000000:orders",
			Attributes:     map[string]string{"SentTimestamp": strconv.FormatInt(sent.UnixMilli(), 10)}}}}
	}
	// deliver answers 200 when the message succeeded and 409 when it is to
	// be redelivered (or refused), so that measure can check the outcome.
	deliver := func(h func(context.Context, events.SQSEvent) (events.SQSEventResponse, error), ev events.SQSEvent) func() *httptest.ResponseRecorder {
		return func() *httptest.ResponseRecorder {
			w := httptest.NewRecorder()
			resp, _ := h(context.Background(), ev)
			if len(resp.BatchItemFailures) == 0 {
				w.WriteHeader(http.StatusOK)
			} else {
				w.WriteHeader(http.StatusConflict)
			}
			return w
		}
	}
	now := time.Now()
	for _, f := range []struct {
		flow, request string
		consumer      int
		ev            events.SQSEvent
		want          int
	}{
		{"SQS consumer", "SQS message (first delivery)", 0, msg("m-1", now), http.StatusOK},
		{"SQS duplicate", "the same message on another consumer", 1, msg("m-1", now), http.StatusOK},
		{"SQS replay after its window (refused)", "a message older than the validity window", 0, msg("m-2", now.Add(-2*time.Hour)), http.StatusConflict},
	} {
		if err := add(m.measure(f.flow, f.request, f.want, deliver(consumers[f.consumer], f.ev))); err != nil {
			return fmt.Errorf("queue consumer: %w", err)
		}
	}
	return nil
}
