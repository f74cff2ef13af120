package main

import (
	"bufio"
	"io"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Reading `go test -bench` output: every benchmark line of every package,
// grouped by package and name, so that the report can take the median of
// the -count runs.

// benchRun is one line of benchmark output.
type benchRun struct {
	N       int64
	Metrics map[string]float64 // "ns/op", "B/op", "allocs/op", custom units
}

// benchSet holds the runs of every benchmark, by package and name (the
// name without the "Benchmark" prefix and the -GOMAXPROCS suffix).
type benchSet struct {
	Order []benchKey
	Runs  map[benchKey][]benchRun
	CPU   string
}

type benchKey struct{ Pkg, Name string }

var procsSuffix = regexp.MustCompile(`-\d+$`)

// parseBench reads go test -bench output.
func parseBench(r io.Reader) (*benchSet, error) {
	s := &benchSet{Runs: map[benchKey][]benchRun{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	pkg := ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "pkg: "):
			pkg = strings.TrimSpace(strings.TrimPrefix(line, "pkg: "))
			continue
		case strings.HasPrefix(line, "cpu: "):
			s.CPU = strings.TrimSpace(strings.TrimPrefix(line, "cpu: "))
			continue
		case !strings.HasPrefix(line, "Benchmark"):
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 || len(f)%2 != 0 {
			continue
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		run := benchRun{N: n, Metrics: map[string]float64{}}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			run.Metrics[f[i+1]] = v
		}
		name := procsSuffix.ReplaceAllString(strings.TrimPrefix(f[0], "Benchmark"), "")
		k := benchKey{pkg, name}
		if _, ok := s.Runs[k]; !ok {
			s.Order = append(s.Order, k)
		}
		s.Runs[k] = append(s.Runs[k], run)
	}
	return s, sc.Err()
}

// get returns the median of unit over the runs of pkg/name, and the
// number of runs; NaN when absent.
func (s *benchSet) get(pkg, name, unit string) (float64, int) {
	if s == nil {
		return math.NaN(), 0
	}
	runs := s.Runs[benchKey{pkg, name}]
	var xs []float64
	for _, r := range runs {
		if v, ok := r.Metrics[unit]; ok {
			xs = append(xs, v)
		}
	}
	return median(xs), len(xs)
}

// values returns every run's unit for pkg/name.
func (s *benchSet) values(pkg, name, unit string) []float64 {
	if s == nil {
		return nil
	}
	var xs []float64
	for _, r := range s.Runs[benchKey{pkg, name}] {
		if v, ok := r.Metrics[unit]; ok {
			xs = append(xs, v)
		}
	}
	return xs
}

// packages lists the packages in the set, in order of appearance.
func (s *benchSet) packages() []string {
	if s == nil {
		return nil
	}
	var out []string
	seen := map[string]bool{}
	for _, k := range s.Order {
		if !seen[k.Pkg] {
			seen[k.Pkg] = true
			out = append(out, k.Pkg)
		}
	}
	return out
}

// names lists pkg's benchmarks in order of appearance.
func (s *benchSet) names(pkg string) []string {
	var out []string
	for _, k := range s.Order {
		if k.Pkg == pkg {
			out = append(out, k.Name)
		}
	}
	return out
}

// units lists the units measured by pkg/name, ns/op first.
func (s *benchSet) units(pkg, name string) []string {
	seen := map[string]bool{}
	for _, r := range s.Runs[benchKey{pkg, name}] {
		for u := range r.Metrics {
			seen[u] = true
		}
	}
	var out []string
	for u := range seen {
		out = append(out, u)
	}
	rank := map[string]int{"ns/op": 0, "B/op": 1, "allocs/op": 2}
	sort.Slice(out, func(i, j int) bool {
		ri, ok := rank[out[i]]
		if !ok {
			ri = 3
		}
		rj, ok := rank[out[j]]
		if !ok {
			rj = 3
		}
		if ri != rj {
			return ri < rj
		}
		return out[i] < out[j]
	})
	return out
}
