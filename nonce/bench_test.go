package nonce

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/ddbtest"
)

// stubAPI answers PutItem at once and refuses everything else. It is for
// CPU benchmarks only: storage behaviour is tested on DynamoDB Local.
type stubAPI struct{ dynaguard.API }

func (stubAPI) PutItem(context.Context, *dynamodb.PutItemInput, ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	return &dynamodb.PutItemOutput{}, nil
}

func benchManager(b *testing.B, tbl *dynaguard.Table) *Manager {
	m, err := New(Config{Table: tbl, Keys: keyring(b, secretA), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	return m
}

// prepared returns a page request of a browser with a session, as Handler
// leaves it, and the browser's cookie.
func prepared(m *Manager) (*http.Request, *http.Cookie) {
	w := httptest.NewRecorder()
	var r *http.Request
	m.Handler(http.HandlerFunc(func(_ http.ResponseWriter, pr *http.Request) { r = pr })).
		ServeHTTP(w, withSession(httptest.NewRequest("GET", "/form", nil), "session-id-0123456789abcdef"))
	return r, setCookie(w, m.cookieName)
}

func BenchmarkIssue(b *testing.B) {
	m := benchManager(b, stubTable())
	r, _ := prepared(m)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Token(r, "transfer"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkField(b *testing.B) {
	m := benchManager(b, stubTable())
	r, _ := prepared(m)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Field(r, "transfer"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerify measures everything Consume does in memory — reading the
// header, decoding the cookie, checking the signature and the bindings —
// plus building the PutItem request, against a stub.
func BenchmarkVerify(b *testing.B) {
	m := benchManager(b, stubTable())
	pr, c := prepared(m)
	tok, _ := Token(pr, "transfer")
	r := withSession(httptest.NewRequest("POST", "/transfer", nil), "session-id-0123456789abcdef")
	r.Header.Set(DefaultHeaderName, tok)
	r.AddCookie(c)
	b.ReportAllocs()
	for b.Loop() {
		if err := m.Consume(nil, r, "transfer"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRequireForm is the whole middleware on a url-encoded form post,
// against a stub.
func BenchmarkRequireForm(b *testing.B) {
	m := benchManager(b, stubTable())
	pr, c := prepared(m)
	tok, _ := Token(pr, "transfer")
	body := url.Values{"nonce": {tok}, "amount": {"100"}, "to": {"alice"}}.Encode()
	h := m.Require("transfer")(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	b.ReportAllocs()
	for b.Loop() {
		r := withSession(httptest.NewRequest("POST", "/transfer", strings.NewReader(body)), "session-id-0123456789abcdef")
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.AddCookie(c)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != 200 {
			b.Fatal(w.Code)
		}
	}
}

// BenchmarkRejectForged is the cost of refusing a forged token: no storage
// call is made.
func BenchmarkRejectForged(b *testing.B) {
	m := benchManager(b, stubTable())
	other := benchManager(b, stubTable())
	other.keys = newKeysets(keyring(b, secretB))
	pr, c := prepared(other)
	tok, _ := Token(pr, "transfer")
	r := httptest.NewRequest("POST", "/transfer", nil)
	r.Header.Set(DefaultHeaderName, tok)
	r.AddCookie(c)
	b.ReportAllocs()
	for b.Loop() {
		if err := m.Consume(nil, r, "transfer"); !errors.Is(err, ErrBadSignature) {
			b.Fatal(err)
		}
	}
}

// BenchmarkConsumeDynamoDBLocal is a real consumption, end to end: verify
// and one conditional PutItem on DynamoDB Local.
func BenchmarkConsumeDynamoDBLocal(b *testing.B) {
	if ddbtest.Endpoint() == "" {
		b.Skip("DYNAMODB_ENDPOINT is not set")
	}
	m := benchManager(b, ddbtest.NewTable(b))
	pr, c := prepared(m)
	warm, _ := Token(pr, "transfer")
	if err := m.Consume(nil, headerRequest(warm, c), "transfer"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		tok, _ := Token(pr, "transfer")
		r := headerRequest(tok, c)
		b.StartTimer()
		if err := m.Consume(nil, r, "transfer"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkConsumeDynamoDBLocalParallel is the same with concurrent
// submissions, as a loaded server sees them.
func BenchmarkConsumeDynamoDBLocalParallel(b *testing.B) {
	if ddbtest.Endpoint() == "" {
		b.Skip("DYNAMODB_ENDPOINT is not set")
	}
	m := benchManager(b, ddbtest.NewTable(b))
	pr, c := prepared(m)
	var failed atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			tok, _ := Token(pr, "transfer")
			if err := m.Consume(nil, headerRequest(tok, c), "transfer"); err != nil {
				failed.Add(1)
			}
		}
	})
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d consumptions failed", n)
	}
}

func headerRequest(tok string, c *http.Cookie) *http.Request {
	r := withSession(httptest.NewRequest("POST", "/transfer", nil), "session-id-0123456789abcdef")
	r.Header.Set(DefaultHeaderName, tok)
	r.AddCookie(c)
	return r
}
