package sessionstore_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/ddb"
	"github.com/dynaguard/dynaguard/internal/ddbtest"
	"github.com/dynaguard/dynaguard/sessionstore"
)

var ctx = context.Background()

// quiet discards the store's log output; TestLogs checks what is logged.
var quiet = slog.New(slog.DiscardHandler)

// Fixed test secrets (32 bytes each).
var (
	secret1 = bytes.Repeat([]byte{0x11}, 32)
	secret2 = bytes.Repeat([]byte{0x22}, 32)
)

func keyring(t testing.TB, current []byte, previous ...[]byte) *dynaguard.Keyring {
	t.Helper()
	k, err := dynaguard.NewKeyring(current, previous...)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// newStore returns a Store on tbl keyed by secret1, adjusted by mods.
func newStore(t testing.TB, tbl *dynaguard.Table, mods ...func(*sessionstore.Config)) *sessionstore.Store {
	t.Helper()
	cfg := sessionstore.Config{Table: tbl, Keys: keyring(t, secret1), Logger: quiet}
	for _, m := range mods {
		m(&cfg)
	}
	s, err := sessionstore.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func withClock(c dynaguard.Clock) func(*sessionstore.Config) {
	return func(cfg *sessionstore.Config) { cfg.Clock = c }
}

func withKeys(k *dynaguard.Keyring) func(*sessionstore.Config) {
	return func(cfg *sessionstore.Config) { cfg.Keys = k }
}

func encrypted(cfg *sessionstore.Config) { cfg.Plaintext = false }

func plaintext(cfg *sessionstore.Config) { cfg.Plaintext = true }

// manager returns an scs SessionManager on store, with the deterministic
// codec the package recommends.
func manager(store scs.Store, mods ...func(*scs.SessionManager)) *scs.SessionManager {
	sm := scs.New()
	sm.Store = store
	sm.Codec = sessionstore.Codec{}
	sm.Cookie.Name = "session"
	for _, m := range mods {
		m(sm)
	}
	return sm
}

func idle(d time.Duration) func(*scs.SessionManager) {
	return func(sm *scs.SessionManager) { sm.IdleTimeout = d }
}

func lifetime(d time.Duration) func(*scs.SessionManager) {
	return func(sm *scs.SessionManager) { sm.Lifetime = d }
}

// app is a small application under LoadAndSave: /put?k=..&v=.. stores a
// value, /get?k=.. prints one, /login?user=.. logs in the way the users
// package does (RenewToken, Bind, Put), /logout destroys the session, and
// /touch reads nothing.
func app(sm *scs.SessionManager, st *sessionstore.Store) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/put", func(w http.ResponseWriter, r *http.Request) {
		sm.Put(r.Context(), r.URL.Query().Get("k"), r.URL.Query().Get("v"))
		fmt.Fprint(w, "ok")
	})
	mux.HandleFunc("/get", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, sm.GetString(r.Context(), r.URL.Query().Get("k")))
	})
	mux.HandleFunc("/touch", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "ok")
	})
	mux.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		if err := sm.RenewToken(ctx); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		if st != nil {
			host, _, _ := net.SplitHostPort(r.RemoteAddr)
			info := sessionstore.ClientInfo{UserAgent: r.UserAgent(), IP: host}
			if err := st.Bind(ctx, sm.Token(ctx), r.URL.Query().Get("user"), info); err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
		}
		sm.Put(ctx, "user", r.URL.Query().Get("user"))
		fmt.Fprint(w, "ok")
	})
	mux.HandleFunc("/logout", func(w http.ResponseWriter, r *http.Request) {
		if err := sm.Destroy(r.Context()); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		fmt.Fprint(w, "bye")
	})
	return sm.LoadAndSave(mux)
}

// browser drives a handler with httptest, keeping the session cookie the way
// a browser would, and remembers every token it was ever given.
type browser struct {
	t      testing.TB
	h      http.Handler
	cookie string
	ua     string
	mu     sync.Mutex
	tokens []string
}

func newBrowser(t testing.TB, h http.Handler) *browser {
	return &browser{t: t, h: h, ua: "Mozilla/5.0 (test browser)"}
}

// do sends GET path and returns the status and body.
func (b *browser) do(path string) (int, string) {
	b.t.Helper()
	req := httptest.NewRequest(http.MethodGet, "http://app.test"+path, nil)
	req.RemoteAddr = "203.0.113.7:41000"
	req.Header.Set("User-Agent", b.ua)
	b.mu.Lock()
	if b.cookie != "" {
		req.AddCookie(&http.Cookie{Name: "session", Value: b.cookie})
	}
	b.mu.Unlock()
	rr := httptest.NewRecorder()
	b.h.ServeHTTP(rr, req)
	for _, c := range rr.Result().Cookies() {
		if c.Name != "session" {
			continue
		}
		b.mu.Lock()
		if c.MaxAge < 0 || c.Value == "" {
			b.cookie = ""
		} else {
			b.cookie = c.Value
			b.tokens = append(b.tokens, c.Value)
		}
		b.mu.Unlock()
	}
	return rr.Code, rr.Body.String()
}

// must sends GET path and fails the test unless it answers 200.
func (b *browser) must(path string) string {
	b.t.Helper()
	code, body := b.do(path)
	if code != http.StatusOK {
		b.t.Fatalf("GET %s: %d %s", path, code, strings.TrimSpace(body))
	}
	return body
}

func (b *browser) token() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cookie
}

// rawItem reads the item stored for token under the keyring's current secret
// (or under key index i), bypassing the store.
func rawItem(t testing.TB, tbl *dynaguard.Table, st *sessionstore.Store, token string) map[string]types.AttributeValue {
	t.Helper()
	return rawPK(t, tbl, dynaguard.PrefixSession+st.ID(token))
}

func rawPK(t testing.TB, tbl *dynaguard.Table, pk string) map[string]types.AttributeValue {
	t.Helper()
	out, err := ddbtest.Client(t).GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(tbl.Name), Key: ddb.Key(pk), ConsistentRead: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	return out.Item
}

// rawUpdate applies an UpdateExpression to the item pk directly, as someone
// with write access to the table could.
func rawUpdate(t testing.TB, tbl *dynaguard.Table, pk, expr string, names map[string]string, vals map[string]types.AttributeValue) {
	t.Helper()
	in := &dynamodb.UpdateItemInput{TableName: aws.String(tbl.Name), Key: ddb.Key(pk),
		UpdateExpression: aws.String(expr), ExpressionAttributeNames: names}
	if len(vals) > 0 {
		in.ExpressionAttributeValues = vals
	}
	if _, err := ddbtest.Client(t).UpdateItem(ctx, in); err != nil {
		t.Fatal(err)
	}
}

func rawPut(t testing.TB, tbl *dynaguard.Table, item map[string]types.AttributeValue) {
	t.Helper()
	if _, err := ddbtest.Client(t).PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(tbl.Name), Item: item}); err != nil {
		t.Fatal(err)
	}
}

func mustFind(t testing.TB, st *sessionstore.Store, token string) []byte {
	t.Helper()
	b, found, err := st.FindCtx(ctx, token)
	if err != nil || !found {
		t.Fatalf("Find: found=%v err=%v, want the session", found, err)
	}
	return b
}

func mustNotFind(t testing.TB, st *sessionstore.Store, token string) {
	t.Helper()
	b, found, err := st.FindCtx(ctx, token)
	if err != nil || found || b != nil {
		t.Fatalf("Find: b=%q found=%v err=%v, want (nil, false, nil)", b, found, err)
	}
}

func mustCommit(t testing.TB, st *sessionstore.Store, token string, b []byte, exp time.Time) {
	t.Helper()
	if err := st.CommitCtx(ctx, token, b, exp); err != nil {
		t.Fatalf("Commit: %v", err)
	}
}

// newToken returns a fresh token made the way scs makes them (32 random
// bytes, base64url: 43 characters).
func newToken(t testing.TB) string {
	t.Helper()
	var b [32]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// realOffsetClock is the wall clock plus an offset the test moves: scs reads
// the wall clock, so sliding expiry needs real time to pass, while the end of
// a session can be reached by moving the offset instead of sleeping.
type realOffsetClock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *realOffsetClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *realOffsetClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

func deleteInput(tbl *dynaguard.Table, pk string) *dynamodb.DeleteItemInput {
	return &dynamodb.DeleteItemInput{TableName: aws.String(tbl.Name), Key: ddb.Key(pk)}
}
