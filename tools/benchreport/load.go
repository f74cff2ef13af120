package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/example/app"
	"github.com/dynaguard/dynaguard/internal/ddb"
	"github.com/dynaguard/dynaguard/users"
)

// Section 3: throughput on DynamoDB Local. A Go load generator drives the
// example app (every dynaguard component, the ready-made stack, its
// templates) and rawApp (the same DynamoDB calls on the bare SDK) over
// loopback HTTP with keep-alive connections, one flow and one target at a
// time, alternating which target goes first in each round, so that both
// see the same machine.

// loadConfig bounds the section.
type loadConfig struct {
	Conc   int           // concurrent connections
	Dur    time.Duration // per flow, target and round
	Warm   time.Duration // per flow and target, before the first round
	Rounds int
}

// counting counts DynamoDB calls, for calls per request during a run.
type counting struct {
	dynaguard.API
	n atomic.Int64
}

func (c *counting) GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	c.n.Add(1)
	return c.API.GetItem(ctx, in, opts...)
}
func (c *counting) BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error) {
	c.n.Add(1)
	return c.API.BatchGetItem(ctx, in, opts...)
}
func (c *counting) PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	c.n.Add(1)
	return c.API.PutItem(ctx, in, opts...)
}
func (c *counting) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	c.n.Add(1)
	return c.API.UpdateItem(ctx, in, opts...)
}
func (c *counting) DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	c.n.Add(1)
	return c.API.DeleteItem(ctx, in, opts...)
}
func (c *counting) TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, opts ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	c.n.Add(1)
	return c.API.TransactWriteItems(ctx, in, opts...)
}
func (c *counting) Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	c.n.Add(1)
	return c.API.Query(ctx, in, opts...)
}

// loadTarget is one server under load.
type loadTarget struct {
	Name    string
	base    string
	hc      *http.Client
	calls   *counting
	handler http.Handler // the server's handler, for in-process benchmarks
	cookie  []string     // per pool user: the Cookie header of its logged-in session
	replay  []string     // per worker: an Idempotency-Key whose transfer is done
	next    atomic.Int64
	stop    func()
}

// freshUser hands out pool users for new transfers (the example keeps at
// most 50 per user); -1 when the pool is used up.
func (t *loadTarget) freshUser(conc int) int {
	i := int(t.next.Add(1)) - 1 + conc
	if i >= len(t.cookie) {
		return -1
	}
	return i
}

// perUserTransfers is how many fresh transfers a worker makes per pool
// user, below the example's limit of 50 (the replay key holds one more).
const perUserTransfers = 45

// loadFlow is one request shape.
type loadFlow struct {
	Name, Method, Path string
	Desc               string
	Want               int
}

var loadFlows = []loadFlow{
	{"GET /account", "GET", "/account", "authenticated page (session + account read, template)", 200},
	{"GET /api/transfers", "GET", "/api/transfers", "authenticated JSON list (+ the transfers read)", 200},
	{"POST /api/transfers", "POST", "/api/transfers", "new transfer, fresh Idempotency-Key (claim, transfer write, completion)", 201},
	{"POST /api/transfers replay", "POST", "/api/transfers", "the same key again: replay from the instance's cache", 201},
}

// loadRun is one measurement of a flow on a target.
type loadRun struct {
	Requests int
	Errors   int
	Elapsed  time.Duration
	LatMS    []float64
	Calls    int64 // DynamoDB calls during the run
	Short    bool  // the user pool ran out
	FirstErr string
	// CPU time used during the run (seconds): this process (servers and
	// load generator) and DynamoDB Local's JVM (when found).
	SelfCPU, JVMCPU float64
}

func (r loadRun) rate() float64 { return float64(r.Requests) / r.Elapsed.Seconds() }

// drive runs flow f on t with conc workers for d.
func drive(ctx context.Context, t *loadTarget, f loadFlow, conc int, d time.Duration, tag string) loadRun {
	var mu sync.Mutex
	var run loadRun
	var wg sync.WaitGroup
	calls0 := t.calls.n.Load()
	self0, jvm0 := cpuSeconds(os.Getpid()), cpuSeconds(jvmPID)
	deadline := time.Now().Add(d)
	t0 := time.Now()
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]float64, 0, 1024)
			errs, short := 0, false
			first := ""
			user, made := w, 0
			if f.Want == 201 && !strings.HasSuffix(f.Name, "replay") {
				user = t.freshUser(conc)
			}
			for i := 0; time.Now().Before(deadline) && ctx.Err() == nil; i++ {
				var body io.Reader
				hdr := http.Header{}
				switch {
				case f.Method == "GET":
					hdr.Set("Cookie", t.cookie[user])
				case strings.HasSuffix(f.Name, "replay"):
					hdr.Set("Cookie", t.cookie[user])
					hdr.Set("Idempotency-Key", `"`+t.replay[w]+`"`)
				default:
					if made == perUserTransfers {
						user, made = t.freshUser(conc), 0
					}
					if user < 0 {
						short = true
						break
					}
					made++
					hdr.Set("Cookie", t.cookie[user])
					hdr.Set("Idempotency-Key", fmt.Sprintf(`"%s-w%d-%d"`, tag, w, i))
				}
				if user < 0 {
					break
				}
				if f.Method == "POST" {
					hdr.Set("Content-Type", "application/json")
					body = strings.NewReader(`{"to":"bob","amount":1250}`)
				}
				req, _ := http.NewRequestWithContext(ctx, f.Method, t.base+f.Path, body)
				req.Header = hdr
				s := time.Now()
				resp, err := t.hc.Do(req)
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				ms := float64(time.Since(s).Microseconds()) / 1000
				if err != nil || resp.StatusCode != f.Want {
					errs++
					if first == "" {
						if err != nil {
							first = err.Error()
						} else {
							first = resp.Status
						}
					}
					continue
				}
				lat = append(lat, ms)
			}
			mu.Lock()
			run.LatMS = append(run.LatMS, lat...)
			run.Requests += len(lat)
			run.Errors += errs
			run.Short = run.Short || short
			if run.FirstErr == "" {
				run.FirstErr = first
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	run.Elapsed = time.Since(t0)
	run.Calls = t.calls.n.Load() - calls0
	run.SelfCPU = cpuSeconds(os.Getpid()) - self0
	if jvmPID > 0 {
		run.JVMCPU = cpuSeconds(jvmPID) - jvm0
	}
	return run
}

// loadResult is the outcome of section 3.
type loadResult struct {
	Config  loadConfig
	Targets []string
	Flows   []loadFlow
	Runs    map[string]map[string][]loadRun // flow → target → rounds
	// The raw handler's items are padded to these sizes (bytes), those of
	// the example app's logged-in session and account items.
	SessionBytes, UserBytes int
	SessionAttrs, UserAttrs int
}

var formNonce = regexp.MustCompile(`name="nonce" value="([^"]+)"`)

// newExampleTarget starts the example app on loopback with a pool of
// registered, logged-in users.
func newExampleTarget(ctx context.Context, tbl *dynaguard.Table, pool, conc int) (*loadTarget, error) {
	keys, err := newKeyring()
	if err != nil {
		return nil, err
	}
	cnt := &counting{API: tbl.Client}
	h, err := app.New(app.Config{Table: dynaguard.NewTable(cnt, tbl.Name), Keys: keys, Dev: true, Hasher: cheapHasher, Logger: quiet, Signup: benchSignup})
	if err != nil {
		return nil, err
	}
	srv := httptest.NewServer(h)
	t := &loadTarget{Name: "example app", base: srv.URL, hc: loadClient(conc), calls: cnt, stop: srv.Close, handler: h}
	setup := loadClient(4)
	setup.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	errc := make(chan error, pool)
	cookies := make([]string, pool)
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for i := range pool {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			c, err := registerExample(ctx, setup, srv.URL, i)
			cookies[i] = c
			errc <- err
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil {
			srv.Close()
			return nil, err
		}
	}
	t.cookie = cookies
	return t, nil
}

// benchSignup lets the harness sign its pool of users up from one address,
// as no real client could (the example's default is 10 an hour per address).
var benchSignup = users.SignupConfig{PerIP: users.Limit{Free: 1 << 20}, Ranges: []users.RangeLimit{}}

// registerExample signs up user i through the app's forms, then logs in
// (the quiet sign-up does not). It returns the session's Cookie header.
func registerExample(ctx context.Context, hc *http.Client, base string, i int) (string, error) {
	jar := map[string]string{}
	// submit posts form to path with the nonce of the form on the same
	// page, and expects a redirect to want.
	submit := func(path string, form url.Values, want string) error {
		req, _ := http.NewRequestWithContext(ctx, "GET", base+path, nil)
		req.Header.Set("Cookie", cookieHeader(jar))
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		m := formNonce.FindSubmatch(page)
		if m == nil {
			return fmt.Errorf("GET %s: no nonce (%s)", path, resp.Status)
		}
		for _, c := range resp.Cookies() {
			jar[c.Name] = c.Value
		}
		form.Set("nonce", string(m[1]))
		req, _ = http.NewRequestWithContext(ctx, "POST", base+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Cookie", cookieHeader(jar))
		if resp, err = hc.Do(req); err != nil {
			return err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != want {
			return fmt.Errorf("POST %s: %s %s", path, resp.Status, firstLine(body))
		}
		for _, c := range resp.Cookies() {
			jar[c.Name] = c.Value
		}
		return nil
	}
	email := fmt.Sprintf("load%04d@example.com", i)
	if err := submit("/register", url.Values{"email": {email}, "username": {fmt.Sprintf("load%04d", i)},
		"password": {benchPassword}}, "/login"); err != nil {
		return "", err
	}
	if err := submit("/login", url.Values{"login": {email}, "password": {benchPassword}}, "/account"); err != nil {
		return "", err
	}
	if jar["session"] == "" {
		return "", errors.New("POST /login: no session cookie")
	}
	// Both cookies, as a browser sends them: the session and the nonce
	// package's browser cookie (without it every page would set a new one).
	return cookieHeader(jar), nil
}

func cookieHeader(jar map[string]string) string {
	var parts []string
	for k, v := range jar {
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, "; ")
}

func firstLine(b []byte) string {
	s := string(b)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// exampleItems returns the largest logged-in session item and account item
// of the example app in the table (the shapes of the raw handler's items),
// and the account item of pool user 0 (whose page the two targets must
// render alike).
func exampleItems(ctx context.Context, tbl *dynaguard.Table) (session, user, user0 item, err error) {
	c, ok := tbl.Client.(*dynamodb.Client)
	if !ok {
		return nil, nil, nil, errors.New("not a DynamoDB client")
	}
	p := dynamodb.NewScanPaginator(c, &dynamodb.ScanInput{TableName: &tbl.Name})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, nil, nil, err
		}
		for _, it := range page.Items {
			pk := pkOf(it)
			switch {
			case strings.HasPrefix(pk, dynaguard.PrefixSession) && it[dynaguard.AttrGSI1PK] != nil && itemSize(it) > itemSize(session):
				session = it
			case strings.HasPrefix(pk, dynaguard.PrefixUser):
				if itemSize(it) > itemSize(user) {
					user = it
				}
				if email, _ := ddb.Str(it, "email"); email == poolEmail(0) {
					user0 = it
				}
			}
		}
	}
	if session == nil || user == nil || user0 == nil {
		return nil, nil, nil, errors.New("no session or account item of the example app found")
	}
	return session, user, user0, nil
}

func poolEmail(i int) string { return fmt.Sprintf("load%04d@example.com", i) }

// capturePage fetches the example app's account page of pool user 0, with
// the value of its nonce field blanked. The page is loaded twice: the
// first view after sign-up also shows (and removes) a welcome message.
func capturePage(ctx context.Context, ex *loadTarget) ([]byte, error) {
	var body []byte
	for range 2 {
		req, _ := http.NewRequestWithContext(ctx, "GET", ex.base+"/account", nil)
		req.Header.Set("Cookie", ex.cookie[0])
		resp, err := ex.hc.Do(req)
		if err != nil {
			return nil, err
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return nil, fmt.Errorf("GET /account: %s", resp.Status)
		}
		if len(resp.Header.Values("Set-Cookie")) > 0 && strings.Contains(strings.Join(resp.Header.Values("Set-Cookie"), ";"), "nonce") {
			return nil, errors.New("GET /account set a new nonce cookie: the pool's cookies are incomplete")
		}
	}
	return blankNonces(body), nil
}

func blankNonces(page []byte) []byte {
	return formNonce.ReplaceAll(page, []byte(`name="nonce" value=""`))
}

// newRawTarget starts rawApp on loopback with a pool of users. User 0's
// account copies the example app's user 0, and its page must be the example
// app's page byte for byte (appPage, nonce blanked): the two targets render
// the same page.
func newRawTarget(ctx context.Context, tbl *dynaguard.Table, pool, conc int, sessionShape, userShape, user0 item, appPage []byte) (*loadTarget, error) {
	pages, err := appPages()
	if err != nil {
		return nil, err
	}
	cnt := &counting{API: tbl.Client}
	ra := &rawApp{api: cnt, table: tbl.Name, sessionShape: sessionShape, userShape: userShape, pages: pages, dev: true}
	srv := httptest.NewServer(ra.handler())
	t := &loadTarget{Name: "raw SDK handler", base: srv.URL, hc: loadClient(conc), calls: cnt, stop: srv.Close}
	t.cookie = make([]string, pool)
	for i := range pool {
		shape := userShape
		if i == 0 {
			shape = user0
		}
		tok, err := ra.addUser(ctx, fmt.Sprintf("rawuser%04d", i), poolEmail(i), shape)
		if err != nil {
			srv.Close()
			return nil, err
		}
		t.cookie[i] = rawCookieName + "=" + tok
	}
	req, _ := http.NewRequestWithContext(ctx, "GET", t.base+"/account", nil)
	req.Header.Set("Cookie", t.cookie[0])
	resp, err := t.hc.Do(req)
	if err != nil {
		srv.Close()
		return nil, err
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(page, appPage) {
		srv.Close()
		return nil, fmt.Errorf("the raw handler's account page differs from the example app's (%s, %d bytes vs %d)", resp.Status, len(page), len(appPage))
	}
	return t, nil
}

func loadClient(conc int) *http.Client {
	tr := &http.Transport{MaxIdleConns: 2 * conc, MaxIdleConnsPerHost: 2 * conc, IdleConnTimeout: time.Minute, DisableCompression: true}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// prepareReplays completes one transfer per worker (on the worker's own
// user) for the replay flow.
func prepareReplays(ctx context.Context, t *loadTarget, conc int) error {
	t.replay = make([]string, conc)
	for w := range conc {
		key := fmt.Sprintf("replay-%d", w)
		req, _ := http.NewRequestWithContext(ctx, "POST", t.base+"/api/transfers", strings.NewReader(`{"to":"bob","amount":1250}`))
		req.Header.Set("Cookie", t.cookie[w])
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", `"`+key+`"`)
		resp, err := t.hc.Do(req)
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 201 {
			return fmt.Errorf("%s: first transfer: %s %s", t.Name, resp.Status, firstLine(body))
		}
		t.replay[w] = key
	}
	return nil
}

// jvmPID is DynamoDB Local's process, when it runs on this machine.
var jvmPID int

// findJVM returns the pid of the DynamoDB Local serving endpoint's port,
// by reading /proc (0 if none is found).
func findJVM(endpoint string) int {
	u, err := url.Parse(endpoint)
	if err != nil || u.Port() == "" {
		return 0
	}
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + d.Name() + "/cmdline")
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		jar, port := false, false
		for i, a := range args {
			jar = jar || strings.HasSuffix(a, "DynamoDBLocal.jar")
			port = port || (a == "-port" && i+1 < len(args) && args[i+1] == u.Port())
		}
		if jar && port {
			return pid
		}
	}
	return 0
}

// cpuSeconds returns the user+system CPU time of pid in seconds (0 if
// unknown).
func cpuSeconds(pid int) float64 {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		s = s[i+1:]
	}
	f := strings.Fields(s)
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ is 100 on Linux
}

// loadSection runs section 3.
func loadSection(ctx context.Context, ts *tables, cfg loadConfig, logf func(string, ...any)) (*loadResult, error) {
	tbl, err := ts.create(ctx, "load")
	if err != nil {
		return nil, err
	}
	// Enough users that no worker reaches the example's 50 transfers.
	pool := cfg.Conc + 2*cfg.Conc*int((cfg.Warm+time.Duration(cfg.Rounds)*cfg.Dur+time.Second-1)/time.Second)
	ex, err := newExampleTarget(ctx, tbl, pool, cfg.Conc)
	if err != nil {
		return nil, fmt.Errorf("example app: %w", err)
	}
	defer ex.stop()
	res := &loadResult{Config: cfg, Flows: loadFlows, Runs: map[string]map[string][]loadRun{}}
	sessShape, userShape, user0, err := exampleItems(ctx, tbl)
	if err != nil {
		return nil, err
	}
	res.SessionBytes, res.UserBytes = itemSize(sessShape), itemSize(userShape)
	res.SessionAttrs, res.UserAttrs = len(sessShape), len(userShape)
	page, err := capturePage(ctx, ex)
	if err != nil {
		return nil, err
	}
	raw, err := newRawTarget(ctx, tbl, pool, cfg.Conc, sessShape, userShape, user0, page)
	if err != nil {
		return nil, fmt.Errorf("raw handler: %w", err)
	}
	defer raw.stop()
	targets := []*loadTarget{ex, raw}
	for _, t := range targets {
		if err := prepareReplays(ctx, t, cfg.Conc); err != nil {
			return nil, err
		}
	}
	logf("load: %d users per target, %d connections; raw items shaped like the app's: session %d B, account %d B", pool, cfg.Conc, res.SessionBytes, res.UserBytes)
	for _, t := range targets {
		res.Targets = append(res.Targets, t.Name)
	}
	// Warm the JVM (and both servers) on every flow.
	for _, f := range loadFlows {
		res.Runs[f.Name] = map[string][]loadRun{}
		for _, t := range targets {
			r := drive(ctx, t, f, cfg.Conc, cfg.Warm, "warm")
			if r.Errors > 0 && r.Requests == 0 {
				return nil, fmt.Errorf("%s %s: every request failed: %s", t.Name, f.Name, r.FirstErr)
			}
		}
	}
	for round := range cfg.Rounds {
		for _, f := range loadFlows {
			order := targets
			if round%2 == 1 {
				order = []*loadTarget{targets[1], targets[0]}
			}
			for _, t := range order {
				r := drive(ctx, t, f, cfg.Conc, cfg.Dur, fmt.Sprintf("r%d", round))
				res.Runs[f.Name][t.Name] = append(res.Runs[f.Name][t.Name], r)
				logf("load round %d %-27s %-16s %6.0f req/s p50 %.2f ms, %d errors; CPU per request: this process %.0f µs, DynamoDB Local %.0f µs",
					round+1, f.Name, t.Name, r.rate(), percentile(r.LatMS, 50), r.Errors, 1e6*r.SelfCPU/float64(max(r.Requests, 1)), 1e6*r.JVMCPU/float64(max(r.Requests, 1)))
			}
		}
	}
	return res, nil
}
