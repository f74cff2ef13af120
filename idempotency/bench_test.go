package idempotency

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/authctx"
	"github.com/dynaguard/dynaguard/internal/ddb"
	"github.com/dynaguard/dynaguard/internal/ddbtest"
)

// stubAPI answers instantly, for measuring the middleware's own CPU and
// allocations. With stored set, every PutItem fails its condition and
// returns stored, as DynamoDB does for a duplicate.
type stubAPI struct {
	stored map[string]types.AttributeValue
}

var errStub = errors.New("stub: not implemented")

func (s stubAPI) GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	return nil, errStub
}
func (s stubAPI) BatchGetItem(context.Context, *dynamodb.BatchGetItemInput, ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error) {
	return nil, errStub
}
func (s stubAPI) PutItem(context.Context, *dynamodb.PutItemInput, ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	if s.stored != nil {
		return nil, &smithy.OperationError{ServiceID: "DynamoDB", OperationName: "PutItem",
			Err: &types.ConditionalCheckFailedException{Item: s.stored}}
	}
	return &dynamodb.PutItemOutput{}, nil
}
func (s stubAPI) UpdateItem(context.Context, *dynamodb.UpdateItemInput, ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	return &dynamodb.UpdateItemOutput{}, nil
}
func (s stubAPI) DeleteItem(context.Context, *dynamodb.DeleteItemInput, ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	return &dynamodb.DeleteItemOutput{}, nil
}
func (s stubAPI) TransactWriteItems(context.Context, *dynamodb.TransactWriteItemsInput, ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	return nil, errStub
}
func (s stubAPI) Query(context.Context, *dynamodb.QueryInput, ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	return nil, errStub
}
func (s stubAPI) BatchWriteItem(context.Context, *dynamodb.BatchWriteItemInput, ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	return nil, errStub
}

const benchBody = `{"amount":1250,"currency":"EUR","to":"DE89370400440532013000"}`

var created = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Location", "/transfers/42")
	w.WriteHeader(http.StatusCreated)
	_, _ = io.WriteString(w, `{"id":42,"status":"pending"}`)
})

func benchRequest(key string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/transfers", strings.NewReader(benchBody))
	r.Header.Set("Content-Type", "application/json")
	if key != "" {
		r.Header.Set(HeaderKey, key)
	}
	return r.WithContext(authctx.WithUser(r.Context(), "user-1"))
}

func benchGuard(b *testing.B, api dynaguard.API, mod func(*Config)) *Guard {
	return benchGuardOn(b, dynaguard.NewTable(api, "bench"), mod)
}

func benchGuardOn(b *testing.B, tbl *dynaguard.Table, mod func(*Config)) *Guard {
	cfg := Config{Table: tbl, Keyring: testKeys, Scope: UserOrSession, Logger: slog.New(slog.DiscardHandler)}
	if mod != nil {
		mod(&cfg)
	}
	g, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return g
}

// discard is a ResponseWriter that keeps nothing, so the benchmarks measure
// the middleware rather than httptest.ResponseRecorder.
type discard struct {
	h    http.Header
	code int
}

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) WriteHeader(c int)           { d.code = c }
func (d *discard) Write(p []byte) (int, error) { return len(p), nil }

func run(b *testing.B, h http.Handler, key func(i int) string, want int) {
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		r := benchRequest(key(i))
		w := &discard{h: http.Header{}}
		h.ServeHTTP(w, r)
		if w.code != want {
			b.Fatalf("status %d, want %d", w.code, want)
		}
	}
}

func BenchmarkBaselineNoMiddleware(b *testing.B) {
	run(b, created, func(int) string { return "" }, http.StatusCreated)
}

func BenchmarkStubPassThroughNoKey(b *testing.B) {
	run(b, benchGuard(b, stubAPI{}, nil).Handler(created), func(int) string { return "" }, http.StatusCreated)
}

func BenchmarkStubFirstRequest(b *testing.B) {
	g := benchGuard(b, stubAPI{}, nil)
	run(b, g.Handler(created), func(i int) string { return "k-" + strconv.Itoa(i) }, http.StatusCreated)
}

func BenchmarkStubFirstRequestSealed(b *testing.B) {
	k, _ := dynaguard.NewKeyring([]byte(strings.Repeat("s", 32)))
	g := benchGuard(b, stubAPI{}, func(c *Config) { c.Keyring = k })
	run(b, g.Handler(created), func(i int) string { return "k-" + strconv.Itoa(i) }, http.StatusCreated)
}

// storedItem is the record DynamoDB would return for a duplicate of the
// benchmark request.
func storedItem(g *Guard) map[string]types.AttributeValue {
	r := benchRequest("k")
	w := httptest.NewRecorder()
	created.ServeHTTP(w, benchRequest(""))
	pk := recordKey(kindHTTP, "user\x00user-1", "k")
	fp := g.fps.sum(requestInput(r, []byte(benchBody)), 0)
	ttl := ddb.EpochSeconds(time.Now().Add(time.Hour))
	st, err := g.prepare(pk, fp, ttl, w.Code, snapshot(w.Header(), g.replay), w.Body.Bytes(), 0)
	if err != nil {
		panic(err)
	}
	item := map[string]types.AttributeValue{
		dynaguard.AttrPK:  ddb.S(pk),
		dynaguard.AttrTTL: ddb.N(ttl),
		attrState:         ddb.S(stateDone),
		attrFP:            ddb.B(fp),
		attrStatus:        ddb.N(int64(st.status)),
		attrResp:          ddb.B(st.blob),
		attrKID:           ddb.S(st.kid),
	}
	if st.enc != "" {
		item[attrEnc] = ddb.S(st.enc)
	}
	return item
}

func BenchmarkStubReplay(b *testing.B) {
	g := benchGuard(b, stubAPI{}, nil)
	g.store.tbl.Client = stubAPI{stored: storedItem(g)}
	run(b, g.Handler(created), func(int) string { return "k" }, http.StatusCreated)
}

func BenchmarkStubCachedReplay(b *testing.B) {
	g := benchGuard(b, stubAPI{}, func(c *Config) { c.CacheBytes = 1 << 20 })
	g.store.tbl.Client = stubAPI{stored: storedItem(g)}
	run(b, g.Handler(created), func(int) string { return "k" }, http.StatusCreated)
}

func BenchmarkParseKey(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseKey(`"8e03978e-40d5-43e8-bc93-6894a57f9324"`); err != nil {
			b.Fatal(err)
		}
	}
}

// End to end on DynamoDB Local.

func e2eTable(b *testing.B) *dynaguard.Table {
	if ddbtest.Endpoint() == "" {
		b.Skip(ddbtest.EnvEndpoint + " not set")
	}
	return ddbtest.NewTable(b)
}

func BenchmarkDynamoFirstRequest(b *testing.B) {
	g := benchGuardOn(b, e2eTable(b), nil)
	run(b, g.Handler(created), func(i int) string { return "k-" + strconv.Itoa(i) }, http.StatusCreated)
}

func BenchmarkDynamoReplay(b *testing.B) {
	g := benchGuardOn(b, e2eTable(b), nil)
	h := g.Handler(created)
	h.ServeHTTP(&discard{h: http.Header{}}, benchRequest("k"))
	run(b, h, func(int) string { return "k" }, http.StatusCreated)
}

func BenchmarkDynamoDo(b *testing.B) {
	g := benchGuardOn(b, e2eTable(b), nil)
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		_, _, err := g.Do(ctx, "msg-"+strconv.Itoa(i), []byte(benchBody), func(context.Context) ([]byte, error) {
			return []byte("ok"), nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}
