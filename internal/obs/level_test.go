package obs_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/obs"
)

// A malformed bearer token — anyone can send one on every request — is
// counted and hooked but logged at Debug only; the other refusals of a
// bearer token keep their Info line.
func TestMalformedBearerLoggedAtDebug(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	h := &hook{}
	e := obs.New(&dynaguard.Events{Hook: h.add}, "users", nil, log)
	for _, reason := range []string{"malformed", "expired", "revoked"} {
		e.Emit(context.Background(), dynaguard.Event{Name: dynaguard.EventBearerRefused, Reason: reason})
	}
	if len(h.got) != 3 {
		t.Fatalf("hook got %d events, want 3", len(h.got))
	}
	out := buf.String()
	if strings.Contains(out, "reason=malformed") || !strings.Contains(out, "reason=expired") || !strings.Contains(out, "reason=revoked") {
		t.Fatalf("log at Info:\n%s", out)
	}
}
