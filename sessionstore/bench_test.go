package sessionstore

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/ddb"
	"github.com/dynaguard/dynaguard/internal/ddbtest"
)

// stubAPI answers every GetItem with one fixed item and every write with
// success, so the benchmarks below measure the store's own CPU and
// allocations, not the network.
type stubAPI struct {
	dynaguard.API
	item map[string]types.AttributeValue
}

func (s *stubAPI) GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	return &dynamodb.GetItemOutput{Item: s.item}, nil
}

func (s *stubAPI) UpdateItem(context.Context, *dynamodb.UpdateItemInput, ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	return &dynamodb.UpdateItemOutput{}, nil
}

func (s *stubAPI) PutItem(context.Context, *dynamodb.PutItemInput, ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	return &dynamodb.PutItemOutput{}, nil
}

const benchToken = "bXktc2Vzc2lvbi10b2tlbi1pcy00My1jaGFyc19fXw"

// benchData is a typical session: a user ID, a flash message, a CSRF-ish
// value and a deadline, encoded by Codec (about 250 bytes).
func benchData(b *testing.B) []byte {
	data, err := Codec{}.Encode(time.Now().Add(12*time.Hour), map[string]any{
		"userID": "user-0123456789", "flash": "Saved.", "theme": "dark", "cart": 3,
	})
	if err != nil {
		b.Fatal(err)
	}
	return data
}

func benchStore(b *testing.B, encrypt bool, mod func(*Config)) (*Store, *stubAPI, []byte) {
	keys, err := dynaguard.NewKeyring(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		b.Fatal(err)
	}
	api := &stubAPI{}
	cfg := Config{Table: dynaguard.NewTable(api, "bench"), Keys: keys, Plaintext: !encrypt, Logger: slog.New(slog.DiscardHandler)}
	if mod != nil {
		mod(&cfg)
	}
	st, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	data := benchData(b)
	pk := dynaguard.PrefixSession + st.ID(benchToken)
	exp := time.Now().Add(time.Hour)
	item := map[string]types.AttributeValue{
		dynaguard.AttrPK: ddb.S(pk), dynaguard.AttrTTL: ddb.TTLValue(exp),
		attrExp: ddb.N(exp.UnixNano()), attrVer: ddb.N(3), attrData: ddb.B(data),
		attrCreated: ddb.N(time.Now().UnixNano()), attrSeen: ddb.N(time.Now().UnixNano()),
	}
	if encrypt {
		sealed, err := st.seal[0].seal(pk, exp.UnixNano(), data)
		if err != nil {
			b.Fatal(err)
		}
		item[attrData], item[attrEnc] = ddb.B(sealed), ddb.S(st.seal[0].id)
	}
	api.item = item
	return st, api, data
}

func BenchmarkID(b *testing.B) {
	st, _, _ := benchStore(b, false, nil)
	b.ReportAllocs()
	for b.Loop() {
		st.ID(benchToken)
	}
}

func BenchmarkFind(b *testing.B) {
	for _, enc := range []bool{false, true} {
		b.Run(map[bool]string{false: "plaintext", true: "encrypted"}[enc], func(b *testing.B) {
			st, _, _ := benchStore(b, enc, nil)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, found, err := st.FindCtx(ctx, benchToken); !found || err != nil {
					b.Fatal(found, err)
				}
			}
		})
	}
}

func BenchmarkCommit(b *testing.B) {
	for _, enc := range []bool{false, true} {
		b.Run(map[bool]string{false: "write/plaintext", true: "write/encrypted"}[enc], func(b *testing.B) {
			st, _, data := benchStore(b, enc, func(c *Config) { c.TouchInterval = -1 })
			ctx := context.Background()
			exp := time.Now().Add(time.Hour)
			b.ReportAllocs()
			for b.Loop() {
				if err := st.CommitCtx(ctx, benchToken, data, exp); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("skipped", func(b *testing.B) {
		st, _, data := benchStore(b, false, nil)
		ctx := context.Background()
		exp := time.Now().Add(time.Hour)
		if err := st.CommitCtx(ctx, benchToken, data, exp); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if err := st.CommitCtx(ctx, benchToken, data, exp); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkRequest is one read-only request through scs's LoadAndSave under
// an IdleTimeout, with the stub: the store's share of a request's CPU.
func BenchmarkRequest(b *testing.B) {
	st, _, _ := benchStore(b, false, nil)
	sm := scs.New()
	sm.Store, sm.Codec, sm.IdleTimeout = st, Codec{}, time.Hour
	h := sm.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = sm.GetString(r.Context(), "userID")
	}))
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.AddCookie(&http.Cookie{Name: sm.Cookie.Name, Value: benchToken})
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
}

// BenchmarkDynamoDBLocal measures the same operations end to end against
// DynamoDB Local (DYNAMODB_ENDPOINT).
func BenchmarkDynamoDBLocal(b *testing.B) {
	if ddbtest.Endpoint() == "" {
		b.Skip("DYNAMODB_ENDPOINT is not set")
	}
	tbl := ddbtest.NewTable(b)
	keys, _ := dynaguard.NewKeyring(bytes.Repeat([]byte{7}, 32))
	st, err := New(Config{Table: tbl, Keys: keys, Logger: slog.New(slog.DiscardHandler)}) // encrypted
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	data := benchData(b)
	exp := time.Now().Add(time.Hour)
	if err := st.CommitCtx(ctx, benchToken, data, exp); err != nil {
		b.Fatal(err)
	}
	b.Run("Find", func(b *testing.B) {
		for b.Loop() {
			if _, found, err := st.FindCtx(ctx, benchToken); !found || err != nil {
				b.Fatal(found, err)
			}
		}
	})
	b.Run("Commit", func(b *testing.B) {
		i := 0
		for b.Loop() {
			i++
			if err := st.CommitCtx(ctx, benchToken, data, exp.Add(time.Duration(i)*2*time.Minute)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Delete", func(b *testing.B) {
		for b.Loop() {
			if err := st.DeleteCtx(ctx, "gone-"+benchToken); err != nil {
				b.Fatal(err)
			}
		}
	})
	sm := scs.New()
	sm.Store, sm.Codec, sm.IdleTimeout = st, Codec{}, time.Hour
	h := sm.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = sm.GetString(r.Context(), "userID")
	}))
	rr := httptest.NewRecorder()
	sm.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sm.Put(r.Context(), "userID", "user-0123456789")
	})).ServeHTTP(rr, httptest.NewRequest(http.MethodGet, "/", nil))
	token := ""
	for _, c := range rr.Result().Cookies() {
		token = c.Value
	}
	if token == "" {
		b.Fatal("no session cookie")
	}
	b.Run("ReadOnlyRequest", func(b *testing.B) {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.AddCookie(&http.Cookie{Name: sm.Cookie.Name, Value: token})
		for b.Loop() {
			h.ServeHTTP(httptest.NewRecorder(), req)
		}
	})
}
