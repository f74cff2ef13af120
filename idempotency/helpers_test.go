package idempotency

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/authctx"
	"github.com/dynaguard/dynaguard/internal/ddb"
	"github.com/dynaguard/dynaguard/internal/ddbtest"
)

func secret(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

// testKeys is the keyring of every test Guard unless a test sets another.
var testKeys, _ = dynaguard.NewKeyring(secret(1))

// logBuf collects a Guard's log for assertions.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type env struct {
	t     *testing.T
	tbl   *dynaguard.Table
	clock *ddbtest.Clock
	log   *logBuf
}

// newEnv makes a fresh table and a fake clock at the wall-clock time (so
// that DynamoDB Local's own TTL sweeper never removes a record a test still
// expects).
func newEnv(t *testing.T) *env {
	t.Helper()
	return &env{t: t, tbl: ddbtest.NewTable(t), clock: ddbtest.NewClock(time.Now()), log: &logBuf{}}
}

// guard returns a Guard on tbl (the env's table when nil).
func (e *env) guard(tbl *dynaguard.Table, mod func(*Config)) *Guard {
	e.t.Helper()
	if tbl == nil {
		tbl = e.tbl
	}
	cfg := Config{Table: tbl, Keyring: testKeys, Scope: UserOrSession, Clock: e.clock, Logger: slog.New(slog.NewTextHandler(e.log, nil))}
	if mod != nil {
		mod(&cfg)
	}
	g, err := New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	return g
}

// contended gives a guard a minute's budget: a hundred writes contending
// for one key can queue past the default 3 s under -race on a busy shared
// machine, and the tests that use it are about exactly-once, not time.
func contended(c *Config) { c.Budget = time.Minute }

// item reads the record for pk straight from the table.
func (e *env) item(pk string) map[string]types.AttributeValue {
	e.t.Helper()
	out, err := ddbtest.Client(e.t).GetItem(context.Background(), &dynamodb.GetItemInput{
		TableName: aws.String(e.tbl.Name), Key: ddb.Key(pk), ConsistentRead: aws.Bool(true)})
	if err != nil {
		e.t.Fatal(err)
	}
	return out.Item
}

// post builds a keyed JSON POST from user.
func post(user, key, body string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/orders", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	if key != "" {
		r.Header.Set(HeaderKey, FormatKey(key))
	}
	if user != "" {
		r = r.WithContext(authctx.WithUser(r.Context(), user))
	}
	return r
}

func serve(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// servePanic serves r and returns the handler's panic value, if any.
func servePanic(h http.Handler, r *http.Request) (w *httptest.ResponseRecorder, pv any) {
	w = httptest.NewRecorder()
	defer func() { pv = recover() }()
	h.ServeHTTP(w, r)
	return w, nil
}

// pkFor is the record key the middleware uses for user's key.
func pkFor(user, key string) string { return recordKey(kindHTTP, "user\x00"+user, key) }

// counter is a handler that counts its executions and answers 201 with a
// body naming the execution.
type counter struct {
	n     atomic.Int64
	delay time.Duration
}

func (c *counter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := c.n.Add(1)
	if c.delay > 0 {
		time.Sleep(c.delay)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Location", "/orders/1")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(map[string]any{"order": 1, "execution": n})
}

// reason returns the problem reason of a problem+json answer.
func reason(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q, want application/problem+json (status %d, body %s)", ct, w.Code, w.Body)
	}
	var p struct {
		Reason string `json:"reason"`
		Status int    `json:"status"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
		t.Fatalf("problem body %q: %v", w.Body, err)
	}
	if p.Status != w.Code {
		t.Fatalf("problem status %d, response status %d", p.Status, w.Code)
	}
	return p.Reason
}

func replayed(w *httptest.ResponseRecorder) bool { return w.Header().Get(HeaderReplayed) == "true" }

// waitFor polls cond (real time) until it holds or a few seconds pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
