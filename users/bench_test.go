package users

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/alexedwards/scs/v2/memstore"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/ddb"
	"github.com/dynaguard/dynaguard/internal/ddbtest"
	"github.com/dynaguard/dynaguard/sessionstore"
)

// stubAPI answers the login and request paths from fixed items and accepts
// every write, so the CPU benchmarks below measure this package's own work
// (normalisation, keyed hashes, encoding, hashing), not the network. It has
// no storage semantics; every behaviour test runs on DynamoDB Local.
type stubAPI struct {
	dynaguard.API
	user   item
	marker item
	token  item // every tok# key reads as this token, and deleting one returns it
}

func (s *stubAPI) GetItem(_ context.Context, in *dynamodb.GetItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	pk, _ := ddb.Str(in.Key, dynaguard.AttrPK)
	switch {
	case strings.HasPrefix(pk, dynaguard.PrefixUser):
		return &dynamodb.GetItemOutput{Item: s.user}, nil
	case strings.HasPrefix(pk, dynaguard.PrefixToken):
		return &dynamodb.GetItemOutput{Item: s.token}, nil
	}
	return &dynamodb.GetItemOutput{}, nil
}

func (s *stubAPI) BatchGetItem(_ context.Context, in *dynamodb.BatchGetItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error) {
	out := map[string][]map[string]types.AttributeValue{}
	for name, ka := range in.RequestItems {
		for _, k := range ka.Keys {
			pk, _ := ddb.Str(k, dynaguard.AttrPK)
			switch {
			case strings.HasPrefix(pk, dynaguard.PrefixUnique):
				out[name] = append(out[name], s.marker)
			case strings.HasPrefix(pk, dynaguard.PrefixUser):
				out[name] = append(out[name], s.user)
			}
		}
	}
	return &dynamodb.BatchGetItemOutput{Responses: out}, nil
}

func (s *stubAPI) UpdateItem(_ context.Context, in *dynamodb.UpdateItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	if in.ReturnValues == types.ReturnValueAllNew {
		return &dynamodb.UpdateItemOutput{Attributes: s.user}, nil
	}
	return &dynamodb.UpdateItemOutput{}, nil
}

func (s *stubAPI) DeleteItem(_ context.Context, in *dynamodb.DeleteItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	if in.ReturnValues == types.ReturnValueAllOld {
		return &dynamodb.DeleteItemOutput{Attributes: s.token}, nil
	}
	return &dynamodb.DeleteItemOutput{}, nil
}

// nopSessions is a SessionRegistry that records nothing.
type nopSessions struct{}

func (nopSessions) ID(token string) string { return "id-" + token[:8] }
func (nopSessions) Bind(context.Context, string, string, sessionstore.ClientInfo) error {
	return nil
}
func (nopSessions) RevokeAll(context.Context, string, string) (int, error) { return 0, nil }

// stubUsers returns a Users on a stubAPI holding one account (password
// goodPassword) made with hasher.
// stubOf returns the stub under s's table client (which the telemetry
// and the budget wrap).
func stubOf(s *Users) *stubAPI {
	c := s.st.tbl.Client
	for {
		w, ok := c.(interface{ Unwrap() dynaguard.API })
		if !ok {
			return c.(*stubAPI)
		}
		c = w.Unwrap()
	}
}

func stubUsers(tb testing.TB, hasher Hasher, mod func(*Config)) (*Users, *User) {
	s, u, err := newStubUsers(hasher, mod)
	if err != nil {
		tb.Fatal(err)
	}
	return s, u
}

func newStubUsers(hasher Hasher, mod func(*Config)) (*Users, *User, error) {
	api := &stubAPI{}
	keys, err := dynaguard.NewKeyring(secretA)
	if err != nil {
		return nil, nil, err
	}
	cfg := Config{Table: dynaguard.NewTable(api, "bench"), Keys: keys, Sessions: nopSessions{},
		Hasher: hasher, Logger: quietLogger()}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		return nil, nil, err
	}
	h, pep, err := s.hashLocked(goodPassword)
	if err != nil {
		return nil, nil, err
	}
	ek, _ := NormalizeEmail("bench@example.com")
	u := &User{ID: newUserID(), Email: "bench@example.com", Username: "bench", emailKey: ek, usernameKey: "bench",
		hash: h, pepperID: pep, credVersion: 1, epoch: 1, version: 1, Created: time.Now(), PasswordChanged: time.Now()}
	api.user = encodeUser(u)
	api.marker = item{dynaguard.AttrPK: ddb.S(markerPK(kindUsername, "bench")), attrUID: ddb.S(u.ID)}
	return s, u, nil
}

// BenchmarkAuthenticate measures a successful login without the network:
// with cheap argon2 (the package's own overhead) and with the default
// OWASP parameters (what a login really costs in CPU).
func BenchmarkAuthenticate(b *testing.B) {
	for _, c := range []struct {
		name string
		h    Hasher
	}{{"argon2id-cheap", cheapArgon2}, {"argon2id-owasp", DefaultArgon2id}} {
		b.Run(c.name, func(b *testing.B) {
			s, _ := stubUsers(b, c.h, nil)
			cred := Credentials{Login: "Bench", Password: goodPassword, IP: ip("192.0.2.1")}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Authenticate(context.Background(), cred); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkLoadUser measures the per-request cost of LoadUser over the
// stub API, with scs's in-memory store for the session itself.
func BenchmarkLoadUser(b *testing.B) {
	s, u := stubUsers(b, cheapArgon2, nil)
	sm := scs.New()
	sm.Store = memstore.NewWithCleanupInterval(0)
	var token string
	login := sm.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := s.Login(r.Context(), sm, u, Client{IP: ip("192.0.2.1")}); err != nil {
			b.Fatal(err)
		}
		token = sm.Token(r.Context())
	}))
	login.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/login", nil))
	h := sm.LoadAndSave(s.RequireUser(sm)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})))
	req := httptest.NewRequest("GET", "/", nil)
	req.AddCookie(&http.Cookie{Name: sm.Cookie.Name, Value: token})
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatal(w.Code)
		}
	}
}

func BenchmarkCheckPassword(b *testing.B) {
	for _, pw := range []string{"correct horse battery staple", strings.Repeat("4@1!|7+$", 16)} {
		b.Run(fmt.Sprintf("%d-chars", len(pw)), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = Policy{}.CheckPassword(context.Background(), pw, "alice@example.com", "alice")
			}
		})
	}
}

func BenchmarkNormalizeEmail(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NormalizeEmail("Alice.Smith@Example.COM"); err != nil {
			b.Fatal(err)
		}
	}
}

func benchEnv(b *testing.B) (*dynaguard.Table, *sessionstore.Store, *Users) {
	if ddbtest.Endpoint() == "" {
		b.Skip("set DYNAMODB_ENDPOINT to run the DynamoDB Local benchmarks")
	}
	tbl := ddbtest.NewTable(b)
	keys := keyring(b, secretA)
	store, err := sessionstore.New(sessionstore.Config{Table: tbl, Keys: keys, Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	s, err := New(Config{Table: tbl, Keys: keys, Sessions: store, Hasher: cheapArgon2, Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.Create(context.Background(), NewUser{Email: "bench@example.com", Username: "bench", Password: goodPassword}); err != nil {
		b.Fatal(err)
	}
	return tbl, store, s
}

// BenchmarkAuthenticateDynamoDB is a successful login end to end on
// DynamoDB Local (cheap argon2: the four calls dominate).
func BenchmarkAuthenticateDynamoDB(b *testing.B) {
	_, _, s := benchEnv(b)
	cred := Credentials{Login: "bench", Password: goodPassword, IP: ip("192.0.2.1")}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Authenticate(context.Background(), cred); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAuthenticatedRequestDynamoDB is an authenticated GET end to end:
// the session store's read and LoadUser's read, on DynamoDB Local.
func BenchmarkAuthenticatedRequestDynamoDB(b *testing.B) {
	_, store, s := benchEnv(b)
	u, err := s.Lookup(context.Background(), "bench")
	if err != nil {
		b.Fatal(err)
	}
	sm := scs.New()
	sm.Store, sm.Codec, sm.IdleTimeout = store, sessionstore.Codec{}, 30*time.Minute
	var token string
	sm.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := s.Login(r.Context(), sm, u, Client{IP: ip("192.0.2.1")}); err != nil {
			b.Fatal(err)
		}
		token = sm.Token(r.Context())
	})).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/login", nil))
	h := sm.LoadAndSave(s.RequireUser(sm)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})))
	req := httptest.NewRequest("GET", "/", nil)
	req.AddCookie(&http.Cookie{Name: sm.Cookie.Name, Value: token})
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatal(w.Code)
		}
	}
}

// Peak memory of 500 concurrent logins with the default argon2id (19 MiB
// each), with and without the hashing limiter. Each variant runs in a fresh
// process (this test binary, re-executed), so that one cannot inherit the
// other's heap; the child reports its peak resident set (VmHWM).
const rssChildEnv = "USERS_RSS_CHILD"

func TestMain(m *testing.M) {
	if mode := os.Getenv(rssChildEnv); mode != "" {
		rssChild(mode)
		os.Exit(0)
	}
	os.Exit(ddbtest.Main(m, "github.com/dynaguard/dynaguard/users"))
}

const rssLogins = 500

func rssChild(mode string) {
	var mod func(*Config)
	switch mode {
	case "unlimited":
		mod = func(c *Config) { c.HashConcurrency = rssLogins; c.HashWait = time.Hour }
	case "limited":
		mod = nil // defaults: GOMAXPROCS slots, 2 s wait
	case "limited-queue":
		mod = func(c *Config) { c.HashWait = time.Hour }
	}
	s, _, err := newStubUsers(DefaultArgon2id, mod)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	var ok, busy, other int
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for i := range rssLogins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Authenticate(context.Background(), Credentials{Login: "bench", Password: goodPassword, IP: ip(fmt.Sprintf("10.0.%d.%d", i/200, i%200+1))})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.Is(err, ErrBusy):
				busy++
			default:
				other++
			}
		}()
	}
	wg.Wait()
	fmt.Printf("peak_kib=%d ok=%d busy=%d other=%d elapsed_ms=%d\n", vmHWM(), ok, busy, other, time.Since(start).Milliseconds())
}

func vmHWM() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return -1
}

func memAvailableKiB() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "MemAvailable:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return -1
}

// BenchmarkPeakRSS500Logins reports the peak resident memory (peak-MiB) of
// a process answering 500 concurrent logins: "unlimited" hashes all 500 at
// once, "limited" uses the default limiter (GOMAXPROCS slots, 2 s wait: the
// excess gets ErrBusy, i.e. 503), "limited-queue" waits as long as needed so
// every login completes. Linux only (reads /proc).
func BenchmarkPeakRSS500Logins(b *testing.B) {
	if runtime.GOOS != "linux" {
		b.Skip("reads /proc/self/status")
	}
	for _, mode := range []string{"unlimited", "limited", "limited-queue"} {
		b.Run(mode, func(b *testing.B) {
			// 500 × 19 MiB is about 9.3 GiB: do not run it on a machine
			// that cannot hold it.
			if need := int64(rssLogins) * 19 * 1024 * 3 / 2; mode == "unlimited" && memAvailableKiB() < need {
				b.Skipf("needs about %d MiB available", need/1024)
			}
			var peak, ok, busy, ms float64
			for range b.N {
				cmd := exec.Command(os.Args[0], "-test.run=^$")
				cmd.Env = append(os.Environ(), rssChildEnv+"="+mode)
				out, err := cmd.CombinedOutput()
				if err != nil {
					b.Fatalf("child: %v\n%s", err, out)
				}
				var p, o, bz, ot, e int64
				if _, err := fmt.Sscanf(strings.TrimSpace(string(out)), "peak_kib=%d ok=%d busy=%d other=%d elapsed_ms=%d", &p, &o, &bz, &ot, &e); err != nil || ot != 0 {
					b.Fatalf("child output %q: %v", out, err)
				}
				peak, ok, busy, ms = max(peak, float64(p)/1024), float64(o), float64(bz), float64(e)
			}
			b.ReportMetric(peak, "peak-MiB")
			b.ReportMetric(ok, "completed")
			b.ReportMetric(busy, "busy-503")
			b.ReportMetric(ms, "wall-ms")
		})
	}
}
