package main

import (
	"encoding/xml"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynaguard/dynaguard/internal/ddb"
	"github.com/dynaguard/dynaguard/internal/ddbtest"
)

// Unit tests of the harness's pure pieces: statistics, the benchmark
// parser, item sizes and the AWS capacity rules, the call summaries and the
// charts. The measurements themselves run only in `make bench`.

func TestPercentile(t *testing.T) {
	xs := []float64{5, 1, 4, 2, 3}
	for _, c := range []struct{ p, want float64 }{{0, 1}, {50, 3}, {100, 5}, {25, 2}, {90, 4.6}} {
		if got := percentile(xs, c.p); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("percentile(%v) = %v, want %v", c.p, got, c.want)
		}
	}
	if xs[0] != 5 {
		t.Error("percentile sorted its input in place")
	}
	if !math.IsNaN(median(nil)) || median([]float64{7}) != 7 {
		t.Error("median of no data or one value")
	}
	if lo, hi := spread([]float64{3, 1, 2}); lo != 1 || hi != 3 {
		t.Errorf("spread = %v, %v", lo, hi)
	}
}

const sampleBench = `goos: linux
goarch: amd64
pkg: github.com/dynaguard/dynaguard/nonce
cpu: Intel(R) Xeon(R) Processor
BenchmarkIssue-2   	  500000	      2400 ns/op	     600 B/op	       9 allocs/op
BenchmarkIssue-2   	  500000	      2600 ns/op	     600 B/op	       9 allocs/op
BenchmarkIssue-2   	  500000	      2500 ns/op	     600 B/op	       9 allocs/op
PASS
ok  	github.com/dynaguard/dynaguard/nonce	4.1s
pkg: github.com/dynaguard/dynaguard/tools/benchreport
BenchmarkStack/form-post/stack-2   	   40000	     30000 ns/op	         3.000 ddb-calls/op	   20000 B/op	     177 allocs/op
BenchmarkPeakRSS500Logins/limited-2 	       1	3000000000 ns/op	       130.0 peak-MiB
--- FAIL: BenchmarkBroken
`

func TestParseBench(t *testing.T) {
	s, err := parseBench(strings.NewReader(sampleBench))
	if err != nil {
		t.Fatal(err)
	}
	if s.CPU != "Intel(R) Xeon(R) Processor" {
		t.Errorf("cpu %q", s.CPU)
	}
	if v, n := s.get("github.com/dynaguard/dynaguard/nonce", "Issue", "ns/op"); v != 2500 || n != 3 {
		t.Errorf("Issue ns/op = %v over %d runs", v, n)
	}
	if v, _ := s.get(selfPkg, "Stack/form-post/stack", "ddb-calls/op"); v != 3 {
		t.Errorf("custom metric = %v", v)
	}
	if v, _ := s.get(selfPkg, "Stack/form-post/stack", "allocs/op"); v != 177 {
		t.Errorf("allocs = %v", v)
	}
	if got := s.packages(); len(got) != 2 {
		t.Errorf("packages %v", got)
	}
	if u := s.units(selfPkg, "Stack/form-post/stack"); strings.Join(u, ",") != "ns/op,B/op,allocs/op,ddb-calls/op" {
		t.Errorf("units %v", u)
	}
	if v, n := s.get(selfPkg, "Missing", "ns/op"); !math.IsNaN(v) || n != 0 {
		t.Error("a missing benchmark has a value")
	}
}

func TestItemSize(t *testing.T) {
	it := map[string]types.AttributeValue{
		"pk":  ddb.S("nonce#abc"),                                                      // 2 + 9
		"ttl": ddb.N(1700000000),                                                       // 3 + (10 digits → 5+1)
		"b":   ddb.B([]byte{1, 2, 3}),                                                  // 1 + 3
		"ok":  ddb.Bool(true),                                                          // 2 + 1
		"l":   &types.AttributeValueMemberL{Value: []types.AttributeValue{ddb.S("x")}}, // 1 + 3 + 1 + 1
	}
	if got, want := itemSize(it), 11+5+4+3+6; got != want {
		t.Errorf("itemSize = %d, want %d", got, want)
	}
	for _, c := range []struct {
		n    string
		want int
	}{{"0", 1}, {"7", 2}, {"12", 2}, {"123", 3}, {"-1.50", 2}, {"1000", 2}, {"1.2e5", 2}} {
		if got := numberSize(c.n); got != c.want {
			t.Errorf("numberSize(%s) = %d, want %d", c.n, got, c.want)
		}
	}
}

func TestCapacityUnits(t *testing.T) {
	if writeUnits(0) != 1 || writeUnits(1024) != 1 || writeUnits(1025) != 2 {
		t.Error("writeUnits")
	}
	if readUnits(0, true) != 1 || readUnits(4096, true) != 1 || readUnits(4097, true) != 2 || readUnits(100, false) != 0.5 {
		t.Error("readUnits")
	}
}

// join applies the AWS rules where DynamoDB Local differs.
func TestJoinAWSCapacity(t *testing.T) {
	rc := []ddbtest.Call{
		{Op: "BatchGetItem", ConsistentRead: true, RCU: 1},
		{Op: "PutItem", Err: errors.New("condition failed")},
		{Op: "TransactWriteItems", WCU: 2},
		{Op: "GetItem", ConsistentRead: true, RCU: 1},
	}
	tc := []tapCall{
		{Op: "BatchGetItem", Keys: []string{"uniq#a", "thr#b", "thr#c"}, ReadSizes: []int{90, 0, 0}},
		{Op: "PutItem", Keys: []string{"nonce#x"}, NewSizes: []int{60}, OldSize: 1500, Failed: true},
		{Op: "TransactWriteItems", Keys: []string{"user#1", "uniq#e", "uniq#u"}, NewSizes: []int{300, 40, 0}},
		{Op: "GetItem", Keys: []string{"sess#1"}, ReadSizes: []int{5000}},
	}
	got, err := join(rc, tc)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ rcu, wcu float64 }{{3, 0}, {0, 2}, {0, 6}, {2, 0}}
	for i, w := range want {
		if got[i].AWSRCU != w.rcu || got[i].AWSWCU != w.wcu {
			t.Errorf("call %d (%s): AWS %v RCU %v WCU, want %v %v", i, got[i].Call.Op, got[i].AWSRCU, got[i].AWSWCU, w.rcu, w.wcu)
		}
	}
	if _, err := join(rc[:1], tc); err == nil {
		t.Error("join accepted different call counts")
	}
	if s := opSummary(got); !strings.Contains(s, "BatchGetItem (unique + 2× throttle)") || !strings.Contains(s, "PutItem (condition failed) (nonce)") {
		t.Errorf("opSummary = %q", s)
	}
}

func TestComponent(t *testing.T) {
	for k, want := range map[string]string{
		"sess#x": "session", "nonce#x": "nonce", "idem#x": "idempotency", "user#x": "account",
		"uniq#email#x": "unique", "thr#ip#x": "throttle", "tok#x": "token", "rcv#x": "recovery", "pkey#ch#x": "passkey challenge", "pkey#x": "passkey",
		"sessions#u": "session list", "seed#u#n": "seed nonce", "zzz": "other",
	} {
		if got := component(k); got != want {
			t.Errorf("component(%q) = %q, want %q", k, got, want)
		}
	}
}

// Every chart is well-formed XML, also with awkward input.
func TestChartsAreWellFormed(t *testing.T) {
	charts := map[string]string{
		"latency": latencyChart("t <&>", "n", []distribution{
			{Group: "g", Label: "a & b", Color: "#123456", MS: []float64{1, 2, 3, 50}},
			{Group: "g", Label: "empty", Color: "#654321"},
		}),
		"bars": barChart("t", "n", "µs", []barGroup{{Label: "x", Bars: []bar{{Value: 3, Color: "#000", Text: "3"}, {Value: math.NaN()}}}}, 5, "goal"),
		"cdf":  cdfChart("t", "n", "s", []cdfSeries{{Label: "a", Color: "#000", X: []float64{0.5, 1, 2}, Total: 4}, {Label: "none", Total: 1}}),
	}
	for name, svg := range charts {
		d := xml.NewDecoder(strings.NewReader(svg))
		for {
			_, err := d.Token()
			if err != nil {
				if err.Error() != "EOF" {
					t.Errorf("%s: %v", name, err)
				}
				break
			}
		}
		if strings.Contains(svg, "NaN") || strings.Contains(svg, "Inf") {
			t.Errorf("%s: NaN or Inf in the drawing", name)
		}
	}
	if ticks := (logAxis{lo: 0.1, hi: 100}).ticks(); len(ticks) != 10 || ticks[0] != 0.1 || ticks[len(ticks)-1] != 100 {
		t.Errorf("ticks %v", ticks)
	}
	if niceCeil(7) != 10 || niceCeil(12) != 20 || niceCeil(0.3) != 0.5 {
		t.Error("niceCeil")
	}
}

// Every request section 1 measures has a stated minimum.
func TestEveryMinimumIsExplained(t *testing.T) {
	for req, m := range minimums {
		if m.What == "" || len(m.Why) < 40 {
			t.Errorf("%q: minimum without an explanation", req)
		}
	}
}
