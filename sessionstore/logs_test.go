package sessionstore_test

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/ddb"
	"github.com/dynaguard/dynaguard/internal/ddbtest"
	"github.com/dynaguard/dynaguard/sessionstore"
)

type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Tampering is logged with the session's ID; tokens and data never are.
func TestLogs(t *testing.T) {
	tbl := ddbtest.NewTable(t)
	var logs logBuffer
	st := newStore(t, tbl, encrypted, func(c *sessionstore.Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	tok := newToken(t)
	mustCommit(t, st, tok, []byte(marker), time.Now().Add(time.Hour))
	pk := dynaguard.PrefixSession + st.ID(tok)
	rawUpdate(t, tbl, pk, "SET #data = :d", map[string]string{"#data": "data"},
		map[string]types.AttributeValue{":d": ddb.B(make([]byte, 64))})
	mustNotFind(t, st, tok)
	if err := st.Delete(tok); err != nil {
		t.Fatal(err)
	}
	mustCommit(t, st, tok, []byte(marker), time.Now().Add(time.Hour))
	out := logs.String()
	if !strings.Contains(out, "failed authentication") || !strings.Contains(out, "session="+st.ID(tok)) {
		t.Fatalf("tampering not logged with the session ID:\n%s", out)
	}
	if !strings.Contains(out, "commit of a deleted session refused") {
		t.Fatalf("refused commit not logged:\n%s", out)
	}
	if strings.Contains(out, tok) || strings.Contains(out, marker) {
		t.Fatalf("a token or session data was logged:\n%s", out)
	}
}
