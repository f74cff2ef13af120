package dynaguard_test

// The example app while DynamoDB stalls, refuses connections or loses its
// table. Two instances reach DynamoDB Local through a fault proxy on
// loopback (ddbtest.Proxy), never by stopping the DynamoDB Local that every
// package's tests share. The contract: while DynamoDB does not answer,
// every request gets a success or a 503 with Retry-After within the budget
// — never a closed connection — goroutines and sockets stay bounded, and
// service resumes without a restart. The speed targets (budget + 0.5 s,
// resumed within 1 s, 503 in under 200 ms) are measured by the benchmark
// report's "Degraded DynamoDB" section; this test checks them with margins
// that hold on a loaded 2-core machine.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/example/app"
	"github.com/dynaguard/dynaguard/internal/ddbtest"
	"github.com/dynaguard/dynaguard/users"
)

// Limits of the degraded cluster, small so that the load exceeds them.
const (
	degradedBudget      = 3 * time.Second // the default
	degradedMaxInFlight = 8               // per instance
	degradedMaxConns    = 16              // DynamoDB connections per instance
	degradedLease       = 4 * time.Second
)

// degradedCluster is two instances of the app whose DynamoDB client goes
// through a fault proxy.
type degradedCluster struct {
	*cluster
	proxy  *ddbtest.Proxy
	appTbl *dynaguard.Table // the table value the app uses (through the proxy)
}

func newDegradedCluster(t *testing.T) *degradedCluster {
	t.Helper()
	client, proxy, base := proxiedClient(t, dynaguard.ClientConfig{MaxConns: degradedMaxConns}, func(o *dynamodb.Options) {
		o.DisableValidateResponseChecksum = true
	})
	var secret [32]byte
	_, _ = rand.Read(secret[:])
	keys, err := dynaguard.ParseKeyring(hex.EncodeToString(secret[:]))
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{
		t:      t,
		tbl:    base,
		outbox: &app.Outbox{},
		hasher: &countingHasher{Argon2id: users.Argon2id{Memory: 64, Time: 1, Threads: 1}},
		tls:    true,
	}
	appTbl := dynaguard.NewTable(client, base.Name)
	start := func() *httptest.Server {
		h, err := app.New(app.Config{
			Table:            appTbl,
			Keys:             keys,
			Mailer:           c.outbox,
			Hasher:           c.hasher,
			Logger:           testLogger(t),
			Events:           c.events.config(),
			MaxInFlight:      degradedMaxInFlight,
			IdempotencyLease: degradedLease,
		})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewTLSServer(h)
		t.Cleanup(srv.Close)
		return srv
	}
	c.a, c.b = start(), start()
	return &degradedCluster{cluster: c, proxy: proxy, appTbl: appTbl}
}

// statusShed counts a 503 of the in-flight limit apart from the 503s of
// DynamoDB failures.
const statusShed = 1503

// outcome is one request of the load.
type outcome struct {
	phase   string
	path    string
	status  int // 0: no response (transport error)
	retry   string
	latency time.Duration
	err     error
}

// load runs closed-loop workers against both instances until stop: GETs of
// the account page, and idempotent API posts with fresh keys.
type load struct {
	c        *degradedCluster
	phase    atomic.Value // string
	mu       sync.Mutex
	outcomes []outcome
	keys     map[string]*keyState // Idempotency-Key → its account and last status
}

type keyState struct {
	acct   int
	status int
}

func (l *load) record(o outcome) {
	l.mu.Lock()
	l.outcomes = append(l.outcomes, o)
	l.mu.Unlock()
}

func (l *load) do(hc *http.Client, req *http.Request) (int, string, string, error) {
	resp, err := hc.Do(req)
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Retry-After"), string(body), nil
}

func (l *load) get(hc *http.Client, srv *httptest.Server) {
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/account", nil)
	req.Header.Set("Accept", "text/html")
	t0 := time.Now()
	st, ra, body, err := l.do(hc, req)
	if st == http.StatusServiceUnavailable && strings.Contains(body, "overloaded") {
		st = statusShed
	}
	l.record(outcome{phase: l.phase.Load().(string), path: "GET /account", status: st, retry: ra, latency: time.Since(t0), err: err})
}

func (l *load) post(hc *http.Client, srv *httptest.Server, acct int, key string) int {
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/transfers",
		strings.NewReader(`{"to":"`+key+`","amount":1}`))
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", `"`+key+`"`)
	t0 := time.Now()
	st, ra, _, err := l.do(hc, req)
	l.record(outcome{phase: l.phase.Load().(string), path: "POST /api/transfers", status: st, retry: ra, latency: time.Since(t0), err: err})
	l.mu.Lock()
	if ks := l.keys[key]; ks != nil {
		ks.status = st
	} else {
		l.keys[key] = &keyState{acct: acct, status: st}
	}
	l.mu.Unlock()
	return st
}

func TestIntegrationDegradedDynamoDB(t *testing.T) {
	c := newDegradedCluster(t)
	const accounts, getters = 4, 16
	clients := make([]*http.Client, accounts)
	for i := range clients {
		b := c.browser()
		b.register(c.a, newAccount())
		b.hc.Timeout = 30 * time.Second // far above the budget: a late answer is seen as late, not as an error
		clients[i] = b.hc
	}
	// Before any fault, each instance serves a logged-in page.
	for _, srv := range []*httptest.Server{c.a, c.b} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/account", nil)
		if st, _, body, err := (&load{}).do(clients[0], req); err != nil || st != http.StatusOK {
			t.Fatalf("before the freeze: %d %v\n%s", st, err, body)
		}
	}
	l := &load{c: c, keys: map[string]*keyState{}}
	l.phase.Store("baseline")

	// Goroutines, sampled through the run.
	var peakMu sync.Mutex
	peak := map[string]int{}
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			n, ph := runtime.NumGoroutine(), l.phase.Load().(string)
			peakMu.Lock()
			peak[ph] = max(peak[ph], n)
			peak["conns "+ph] = max(peak["conns "+ph], c.proxy.Conns())
			peakMu.Unlock()
			time.Sleep(20 * time.Millisecond)
		}
	}()
	var seq atomic.Int64
	for w := range getters + accounts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			srv := c.a
			if w%2 == 1 {
				srv = c.b
			}
			hc := clients[w%accounts]
			for ctx.Err() == nil {
				if w < accounts { // one poster per account, every 200 ms
					l.post(hc, srv, w, fmt.Sprintf("k%d-%d", w, seq.Add(1)))
					time.Sleep(200 * time.Millisecond)
					continue
				}
				l.get(hc, srv)
				time.Sleep(10 * time.Millisecond)
			}
		}()
	}

	time.Sleep(time.Second)
	l.phase.Store("frozen")
	if err := c.proxy.Set(ddbtest.Freeze); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	l.phase.Store("thawed")
	thawed := time.Now()
	if err := c.proxy.Set(ddbtest.Pass); err != nil {
		t.Fatal(err)
	}
	// Service resumes without a restart: both instances serve a logged-in
	// page again.
	probe := clients[0]
	var last string
	resumed := waitFor(t, 10*time.Second, func() bool {
		for _, srv := range []*httptest.Server{c.a, c.b} {
			req, _ := http.NewRequest(http.MethodGet, srv.URL+"/account", nil)
			for {
				st, _, body, err := l.do(probe, req)
				if err == nil && st == http.StatusOK {
					break
				}
				last = fmt.Sprintf("%d %v %.300s", st, err, body)
				if !strings.Contains(body, "overloaded") {
					return false
				}
				// Shed before it reached DynamoDB: says nothing yet.
				time.Sleep(5 * time.Millisecond)
			}
		}
		return true
	})
	resumeTime := time.Since(thawed)
	time.Sleep(500 * time.Millisecond)
	stop()
	wg.Wait()
	if !resumed {
		t.Fatalf("service did not resume within 10 s of DynamoDB answering again: %s", last)
	}

	// The contract, request by request.
	limit := degradedBudget + 1500*time.Millisecond // goal: budget + 0.5 s (benchmark)
	counts := map[string]map[int]int{}
	var worst time.Duration
	for _, o := range l.outcomes {
		if counts[o.phase] == nil {
			counts[o.phase] = map[int]int{}
		}
		counts[o.phase][o.status]++
		worst = max(worst, o.latency)
		switch {
		case o.err != nil:
			t.Errorf("%s %s: no answer (%v) after %v", o.phase, o.path, o.err, o.latency)
		case (o.status == http.StatusServiceUnavailable || o.status == statusShed) && o.retry == "":
			t.Errorf("%s %s: 503 without Retry-After", o.phase, o.path)
		case o.status != http.StatusServiceUnavailable && o.status != statusShed && o.status >= 400 && o.status != http.StatusConflict:
			// 409: a retry of a key whose request is still running.
			t.Errorf("%s %s: status %d", o.phase, o.path, o.status)
		}
		if o.latency > limit {
			t.Errorf("%s %s: answered %d after %v, more than %v", o.phase, o.path, o.status, o.latency, limit)
		}
	}
	t.Logf("statuses by phase: %v; slowest answer %v; resumed %v after DynamoDB answered again; peaks %v",
		counts, worst, resumeTime, peak)
	if counts["frozen"][http.StatusServiceUnavailable] == 0 {
		t.Errorf("no 503 while DynamoDB was frozen: %v", counts["frozen"])
	}
	// Bounded: what the freeze may add is the in-flight requests of both
	// instances and their DynamoDB connections (a request goroutine; the
	// SDK transport's two per connection; the proxy's three), never a
	// number that grows with the length of the stall or the arrival rate.
	bound := peak["baseline"] + 2*degradedMaxInFlight*(1+2+3) + 2*degradedMaxConns + 64
	if peak["frozen"] > bound {
		t.Errorf("goroutines while frozen: %d, want at most %d (baseline %d)", peak["frozen"], bound, peak["baseline"])
	}
	if n := peak["conns frozen"]; n > 2*2*degradedMaxConns {
		t.Errorf("connections to DynamoDB while frozen: %d, want at most %d", n, 2*2*degradedMaxConns)
	}

	// Idempotent POSTs that got 503 are retried with their key after the
	// stall (a 409 says an earlier attempt still holds it: its lease runs
	// out within degradedLease). Each runs exactly once.
	var retried int
	for key, ks := range l.keys {
		if ks.status == http.StatusCreated {
			continue
		}
		retried++
		ok := waitFor(t, degradedLease+5*time.Second, func() bool {
			return l.post(clients[ks.acct], c.b, ks.acct, key) == http.StatusCreated
		})
		if !ok {
			t.Errorf("key %s: last answer %d, never 201", key, ks.status)
		}
	}
	for i, hc := range clients {
		req, _ := http.NewRequest(http.MethodGet, c.a.URL+"/api/transfers", nil)
		st, _, body, err := l.do(hc, req)
		if err != nil || st != http.StatusOK {
			t.Fatalf("GET /api/transfers: %d %v", st, err)
		}
		var ts []app.Transfer
		if err := json.Unmarshal([]byte(body), &ts); err != nil {
			t.Fatal(err)
		}
		seen := map[string]int{}
		for _, tr := range ts {
			seen[tr.To]++
		}
		for key, ks := range l.keys {
			if ks.acct == i && seen[key] != 1 {
				t.Errorf("key %s: %d transfers, want exactly 1", key, seen[key])
			}
		}
		if len(ts) != len(seen) {
			t.Errorf("account %d: %d transfers for %d keys", i, len(ts), len(seen))
		}
	}
	t.Logf("%d posts, %d retried after the stall", len(l.keys), retried)
}

// While DynamoDB refuses connections, the fail-fast client answers 503 at
// once, and service comes back by itself when it listens again.
func TestIntegrationDegradedRefused(t *testing.T) {
	t.Parallel()
	c := newDegradedCluster(t)
	b := c.browser()
	b.register(c.a, newAccount())
	if err := c.proxy.Set(ddbtest.Refuse); err != nil {
		t.Fatal(err)
	}
	var lat []time.Duration
	for i := range 40 {
		srv := c.a
		if i%2 == 1 {
			srv = c.b
		}
		t0 := time.Now()
		r := b.get(srv, "/account")
		lat = append(lat, time.Since(t0))
		if r.StatusCode != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" {
			t.Fatalf("request %d while refused: %d (Retry-After %q)", i, r.StatusCode, r.Header.Get("Retry-After"))
		}
	}
	slices.Sort(lat)
	// Goal (benchmark): every 503 in under 200 ms once DynamoDB is known
	// down. Here: the median, and no answer near the budget.
	if med := lat[len(lat)/2]; med > 200*time.Millisecond {
		t.Errorf("median 503 while refused took %v, want under 200 ms", med)
	}
	if lat[len(lat)-1] > time.Second {
		t.Errorf("slowest 503 while refused took %v", lat[len(lat)-1])
	}
	t.Logf("503 while refused: median %v, max %v", lat[len(lat)/2], lat[len(lat)-1])
	c.expectEvent(t, dynaguard.EventStorageFailure, "")
	if err := c.proxy.Set(ddbtest.Pass); err != nil {
		t.Fatal(err)
	}
	if !waitFor(t, 5*time.Second, func() bool { return b.get(c.a, "/account").StatusCode == http.StatusOK }) {
		t.Fatal("service did not resume after DynamoDB listened again")
	}
}

// DynamoDB answers every request 5 s late: a wrong-password login is
// answered 503 with Retry-After within the budget instead of after 30 s and
// a closed connection.
func TestIntegrationDegradedSlowReplies(t *testing.T) {
	t.Parallel()
	c := newDegradedCluster(t)
	acct := newAccount()
	b := c.browser()
	b.register(c.a, acct)
	b.logout(c.a)
	page := b.get(c.b, "/login")
	expect(t, page, http.StatusOK, "login page")
	c.proxy.SetDelay(5 * time.Second)
	defer c.proxy.SetDelay(0)
	t0 := time.Now()
	r := b.post(c.b, "/login", url.Values{"login": {acct.email}, "password": {"wrong " + acct.password},
		"nonce": {nonceFor(t, page.body, "/login")}})
	took := time.Since(t0)
	if r.StatusCode != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" {
		t.Fatalf("login with 5 s replies: %d (Retry-After %q) after %v", r.StatusCode, r.Header.Get("Retry-After"), took)
	}
	if took > degradedBudget+1500*time.Millisecond {
		t.Fatalf("login with 5 s replies answered after %v", took)
	}
	t.Logf("login with 5 s replies: 503 after %v", took)
	c.expectEvent(t, dynaguard.EventStorageFailure, "timeout")
}

// The table disappears and comes back. Without Ensure, the app answers 503
// (never 500, never as if logged out) and serves again as soon as someone
// re-creates the table; with Ensure at start-up, it re-creates the table
// itself in the background.
func TestIntegrationDegradedTableMissing(t *testing.T) {
	t.Parallel()
	c := newDegradedCluster(t)
	admin := ddbtest.Client(t)
	deleteTable := func() {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := admin.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(c.tbl.Name)}); err != nil {
			t.Fatal(err)
		}
	}
	b := c.browser()
	b.register(c.a, newAccount())

	deleteTable()
	for _, srv := range []*httptest.Server{c.a, c.b, c.a} {
		r := b.get(srv, "/account")
		if r.StatusCode != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" {
			t.Fatalf("table missing: %d (Retry-After %q)\n%s", r.StatusCode, r.Header.Get("Retry-After"), r.body)
		}
	}
	// Someone else re-creates it: no restart needed, nothing cached.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := dynaguard.NewTable(admin, c.tbl.Name).Create(ctx); err != nil {
		t.Fatal(err)
	}
	b2 := c.browser()
	if !waitFor(t, 5*time.Second, func() bool {
		return b2.get(c.a, "/register").StatusCode == http.StatusOK && b.get(c.b, "/account").StatusCode != http.StatusServiceUnavailable
	}) {
		t.Fatal("no service after the table was re-created")
	}
	b2.register(c.b, newAccount())
	if !b2.loggedIn(c.a) {
		t.Fatal("a new account is not logged in after the table came back")
	}

	// With Ensure (as the example command calls at start-up), dynaguard
	// owns the table and creates it again by itself.
	if err := c.appTbl.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	deleteTable()
	if r := b2.get(c.a, "/account"); r.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("table missing: %d", r.StatusCode)
	}
	// b2's session went with the table: once it exists again, b2 is sent
	// to the login page instead of getting 503.
	if !waitFor(t, 10*time.Second, func() bool {
		return b2.get(c.b, "/account").StatusCode == http.StatusSeeOther
	}) {
		t.Fatal("the table was not re-created")
	}
	b3 := c.browser()
	b3.register(c.a, newAccount())
	if !b3.loggedIn(c.b) {
		t.Fatal("a new account is not logged in after the table was re-created")
	}
}

// waitFor polls cond every 50 ms until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, cond func() bool) bool {
	t.Helper()
	for end := time.Now().Add(d); ; {
		if cond() {
			return true
		}
		if time.Now().After(end) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}
