package main

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/dynaguard/dynaguard/internal/ddbtest"
)

// The worker's own simulation, on DynamoDB Local: every message and record
// takes effect once, and the replayed old record is refused.
func TestWorkerSimulation(t *testing.T) {
	var out bytes.Buffer
	s := simulation{messages: 25, copies: 4, consumers: 4, client: ddbtest.Client(t), log: slog.New(slog.DiscardHandler)}
	if err := s.run(context.Background(), &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "exactly once") {
		t.Fatal(out.String())
	}
	t.Log(out.String())
}
