// Command benchreport measures dynaguard end to end and writes
// docs/BENCHMARKS.md with its charts. `make bench` runs it after the Go
// benchmarks of every package, against a DynamoDB Local it starts:
//
//	make bench
//
// or by hand, against a running DynamoDB Local:
//
//	DYNAMODB_ENDPOINT=http://127.0.0.1:8000 go test -run '^$' -bench . -benchmem -count 5 ./... > docs/bench-raw/go-bench.txt
//	DYNAMODB_ENDPOINT=http://127.0.0.1:8000 go run ./tools/benchreport -gobench docs/bench-raw/go-bench.txt
//
// What it measures, section by section of the report:
//
//  1. the DynamoDB calls and consumed capacity of every flow, through the
//     whole middleware stack, with ddbtest.Recorder (calls.go);
//  2. the CPU and allocations of the stack over a bare handler on a
//     zero-latency stub API — read from the Go benchmarks of this package
//     (cpu_bench_test.go, stub.go);
//  3. throughput and latency of the example app against a hand-written
//     handler making the same calls with the raw SDK (load.go, rawapp.go);
//  4. peak memory and latency of 500 concurrent argon2id logins, each
//     variant in a fresh process (flood.go);
//  5. peers: scs's in-memory store as the CPU floor of the session flow,
//     and the seed-style nonce, including its race (peers.go, seed.go);
//  6. degraded DynamoDB: two instances, each its own process, at a fixed
//     request rate while a private DynamoDB Local is frozen, killed and
//     restarted (degraded.go, degraded_report.go).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/dynaguard/dynaguard/users"
)

// cheapHasher makes the accounts the report logs in with quickly where the
// hash cost is not what is measured (the login flood uses the default).
var cheapHasher = users.Argon2id{Memory: 64, Time: 1}

// results is everything one run measured; it is also written as JSON.
type results struct {
	Machine   machine
	Calls     *callsReport
	Load      *loadResult
	Flood     map[string][]floodRun
	FloodN    int
	Nonces    []*nonceSide
	Degraded  *degradedResult
	Bench     *benchSet `json:"-"`
	BenchFile string
	Elapsed   time.Duration
	Quick     bool
}

func main() {
	if spec := os.Getenv(degradedEnv); spec != "" {
		if err := degradedChild(spec); err != nil {
			fmt.Fprintln(os.Stderr, "degraded child:", err)
			os.Exit(1)
		}
		return
	}
	if spec := os.Getenv(floodEnv); spec != "" {
		if err := floodChild(spec); err != nil {
			fmt.Fprintln(os.Stderr, "flood child:", err)
			os.Exit(1)
		}
		return
	}
	var (
		out       = flag.String("out", "docs/BENCHMARKS.md", "report to write")
		charts    = flag.String("charts", "docs/bench", "directory for the SVG charts (linked relative to -out)")
		rawDir    = flag.String("raw", "docs/bench-raw", "directory for the raw results (JSON)")
		gobench   = flag.String("gobench", "", "output of `go test -bench` to include (sections 2 and 5, appendix)")
		quick     = flag.Bool("quick", false, "short runs, for trying the harness out (figures are not meaningful)")
		conc      = flag.Int("conc", 8, "load generator connections")
		dur       = flag.Duration("dur", 2*time.Second, "load: duration per flow, target and round")
		warm      = flag.Duration("warm", 2*time.Second, "load: warm-up per flow and target")
		rounds    = flag.Int("rounds", 5, "load: rounds (targets alternate who goes first)")
		floodN    = flag.Int("flood", 500, "concurrent logins in the flood")
		floodRuns = flag.Int("flood-runs", 3, "runs of each flood variant")
		paced     = flag.Duration("paced", time.Second, "interval of the paced read-only series (100 requests)")
		cpuprof   = flag.String("cpuprofile", "", "write a CPU profile of the whole run (for working on the harness)")
		sections  = flag.String("sections", "calls,peers,load,flood,degraded", "sections to run (for working on the harness; the report needs all)")
	)
	flag.Parse()
	if *cpuprof != "" {
		f, err := os.Create(*cpuprof)
		if err != nil {
			fmt.Fprintln(os.Stderr, "benchreport:", err)
			os.Exit(1)
		}
		_ = pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	only = map[string]bool{}
	for _, s := range strings.Split(*sections, ",") {
		only[strings.TrimSpace(s)] = true
	}
	if err := run(*out, *charts, *rawDir, *gobench, *quick, *conc, *dur, *warm, *rounds, *floodN, *floodRuns, *paced); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
}

// only holds the sections to run.
var only map[string]bool

func run(out, charts, rawDir, gobench string, quick bool, conc int, dur, warm time.Duration, rounds, floodN, floodRuns int, paced time.Duration) error {
	if quick {
		dur, warm, rounds, floodRuns, paced = 500*time.Millisecond, 300*time.Millisecond, 2, 1, 100*time.Millisecond
	}
	ep, err := endpoint()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ts := &tables{c: client(ep)}
	defer ts.cleanup()
	logf := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "benchreport: "+format+"\n", args...)
	}
	start := time.Now()
	res := &results{Machine: describeMachine(), FloodN: floodN, Quick: quick}
	if gobench != "" {
		f, err := os.Open(gobench)
		if err != nil {
			return err
		}
		res.Bench, err = parseBench(f)
		f.Close()
		if err != nil {
			return err
		}
		res.BenchFile = gobench
		logf("read %d Go benchmarks from %s", len(res.Bench.Order), gobench)
	}

	// The paced series takes 100 intervals of wall time but almost no CPU:
	// it runs beside the other sections.
	pacedDone := make(chan error, 1)
	var pacedRun idleRun
	if only["calls"] {
		go func() {
			var err error
			pacedRun, err = pacedReadOnly(ctx, ts, 100, paced)
			pacedDone <- err
		}()
		logf("1/5 calls and capacity per flow")
		if res.Calls, err = measureFlows(ctx, ts); err != nil {
			return fmt.Errorf("calls: %w", err)
		}
	}
	if only["peers"] {
		logf("5/5 peers: the seed-style nonce")
		if res.Nonces, err = peerNonces(ctx, ts, map[bool]int{false: 400, true: 100}[quick], map[bool]int{false: 200, true: 50}[quick]); err != nil {
			return fmt.Errorf("peers: %w", err)
		}
	}
	if only["load"] {
		jvmPID = findJVM(ep)
		logf("3/5 throughput on DynamoDB Local")
		if res.Load, err = loadSection(ctx, ts, loadConfig{Conc: conc, Dur: dur, Warm: warm, Rounds: rounds}, logf); err != nil {
			return fmt.Errorf("load: %w", err)
		}
	}
	if only["flood"] {
		logf("4/5 login flood (%d concurrent logins, %d runs per variant)", floodN, floodRuns)
		if res.Flood, err = floodSection(ctx, ts, ep, floodN, floodRuns, logf); err != nil {
			return fmt.Errorf("flood: %w", err)
		}
	}
	if only["degraded"] {
		logf("6/6 degraded DynamoDB (a private DynamoDB Local, frozen, killed and restarted)")
		if res.Degraded, err = degradedSection(ctx, quick, logf); err != nil {
			return fmt.Errorf("degraded: %w", err)
		}
	}
	if only["calls"] {
		logf("waiting for the paced read-only series")
		if err := <-pacedDone; err != nil {
			return fmt.Errorf("paced series: %w", err)
		}
		res.Calls.Paced = pacedRun
	}
	res.Machine.LoadAfter = loadavg()
	res.Elapsed = time.Since(start)

	if err := os.MkdirAll(rawDir, 0o755); err == nil {
		if b, err := json.MarshalIndent(res, "", " "); err == nil {
			_ = os.WriteFile(filepath.Join(rawDir, "results.json"), b, 0o644)
		}
	}
	if err := writeReport(res, out, charts); err != nil {
		return err
	}
	logf("wrote %s and charts in %s (%s)", out, charts, res.Elapsed.Round(time.Second))
	return nil
}
