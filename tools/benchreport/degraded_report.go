package main

import (
	"fmt"
	"math"
	"strings"
)

// degradedGoals are the goal rows of section 6.
func degradedGoals(res *results) [][3]string {
	d := res.Degraded
	if d == nil {
		return nil
	}
	var rows [][3]string
	add := func(goal, measured string, ok bool) { rows = append(rows, [3]string{goal, measured, check(ok)}) }
	limit := d.Budget + 0.5
	add(fmt.Sprintf("degraded DynamoDB: every request answered within budget + 0.5 s (%.1f s)", limit),
		fmt.Sprintf("slowest %.2f s; %d without an answer", d.MaxLatency, d.NoAnswer), d.MaxLatency <= limit && d.NoAnswer == 0)
	add(fmt.Sprintf("degraded: goroutines ≤ in-flight limit (%d) + a constant", d.MaxInFlight),
		fmt.Sprintf("peak %d per instance (%d before the freeze)", d.PeakGoroutines, d.BaseGoroutines), d.PeakGoroutines <= d.MaxInFlight+d.BaseGoroutines)
	add("degraded: full service within 1 s of DynamoDB answering again",
		fmt.Sprintf("%.2f s after the freeze; %.2f s after the restart (table re-created)", d.ResumeAfterThaw, d.ResumeAfterStart),
		d.ResumeAfterThaw <= 1 && d.ResumeAfterStart <= 1)
	add("degraded: 503 in under 200 ms while DynamoDB is down",
		fmt.Sprintf("p99 %s, max %s", fmtSecs(d.KilledP99), fmtSecs(d.KilledMax)), d.KilledP99 < 0.2)
	add("degraded: idempotent POSTs answered 503 and retried with their key run exactly once",
		fmt.Sprintf("%d of %d", d.Once, d.Retried), d.Once == d.Retried)
	return rows
}

// degradedReport writes section 6.
func degradedReport(m *md, res *results, chart func(string, string) (string, error)) error {
	d := res.Degraded
	if d == nil {
		return nil
	}
	m.p("## 6. Degraded DynamoDB")
	m.p("")
	m.p("Two instances of the example app, each in its own process with the example command's client (`dynaguard.NewClient` defaults) and "+
		"server timeouts, budget %.0f s and at most %d requests in flight, reach a private DynamoDB Local through a fault proxy on loopback. "+
		"A load generator sends %d requests/s at a fixed rate (70 %% logged-in account pages, 20 %% new idempotent transfers, 10 %% the "+
		"anonymous home page), alternating instances, while DynamoDB answers, is frozen (the proxy holds every byte, then drops those "+
		"connections), answers again, is killed (SIGKILL of its JVM) and is started again — in memory, so without the table, which the "+
		"instances create again by themselves because they called `Table.Ensure` at start-up. Posts answered 503 during the freeze are "+
		"retried with their key after it, and their transfers counted. The instances report their own goroutines, open files and RSS "+
		"each second.", d.Budget, d.MaxInFlight, d.Rate)
	m.p("")
	link, err := chart("degraded.svg", degradedChart(d))
	if err != nil {
		return err
	}
	m.p("![Degraded DynamoDB: answers, 503s, latency and goroutines per second](%s)", link)
	m.p("")
	m.head("second", "phase", "answered", "503", "no answer", "p50", "p99", "goroutines", "open files", "RSS MiB")
	for _, s := range d.Seconds {
		m.row(fmt.Sprint(s.Sec), phaseAt(d, float64(s.Sec)), fmt.Sprint(s.Answered), fmt.Sprint(s.Unavail), fmt.Sprint(s.Errors),
			fmtSecs(s.P50), fmtSecs(s.P99), joinInts(s.Goroutines), joinInts(s.OpenFiles), joinFloats(s.RSSMiB))
	}
	m.p("")
	m.p("Per-instance columns list both instances. The JVM took %.1f s to accept connections after the restart. "+
		"While DynamoDB is frozen, the requests already waiting end at their attempt timeout (1 s) or the budget; after five failed attempts "+
		"in a row the client fails fast (`ErrUnavailable`, 503 within microseconds) and lets one probe through every 250 ms, which is what "+
		"brings service back once DynamoDB answers. While it is down, connections fail at once and the breaker keeps the 503s immediate; "+
		"the 503 latency goal counts the requests sent from 0.5 s after the kill until the restarted DynamoDB accepts connections (once it is known to be down). "+
		"\"Full service\" is measured from the moment DynamoDB answers again to the start of the last request that was not served.", d.RestartTook)
	m.p("")
	return nil
}

func phaseAt(d *degradedResult, sec float64) string {
	name := ""
	for _, p := range d.Phases {
		if p.Start <= sec+0.5 {
			name = p.Name
		}
	}
	return name
}

func joinInts(xs []int) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprint(x)
	}
	return strings.Join(parts, " / ")
}

func joinFloats(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf("%.0f", x)
	}
	return strings.Join(parts, " / ")
}

// degradedChart draws three panels over the run's seconds: answers and
// 503s, latency, goroutines per instance; phases are shaded.
func degradedChart(d *degradedResult) string {
	const left, right, top, panelH, gap = 70.0, 170.0, 56.0, 130.0, 34.0
	width := 900.0
	height := top + 3*panelH + 2*gap + 40
	title := fmt.Sprintf("Degraded DynamoDB: %d requests/s over two instances", d.Rate)
	s := newSVG(width, height, title)
	s.text(16, 24, "start", `font-size="15" font-weight="bold"`, title)
	s.text(16, 42, "start", `fill="#555"`, "frozen, then killed and restarted; shaded: DynamoDB not answering")
	n := float64(max(len(d.Seconds), 1))
	px := func(sec float64) float64 { return left + sec/n*(width-left-right) }
	// Shade the phases where DynamoDB does not answer.
	for i, p := range d.Phases {
		if p.Name != "frozen" && p.Name != "killed" && p.Name != "restarting" {
			continue
		}
		end := n
		if i+1 < len(d.Phases) {
			end = d.Phases[i+1].Start
		}
		s.rect(px(p.Start), top, px(end)-px(p.Start), 3*panelH+2*gap, "#fdecea", "none")
	}
	type line struct {
		label, color string
		v            func(degradedSecond) float64
	}
	panel := func(i int, unit string, lines []line) {
		y0 := top + float64(i)*(panelH+gap)
		maxV := 0.0
		for _, sec := range d.Seconds {
			for _, l := range lines {
				maxV = math.Max(maxV, l.v(sec))
			}
		}
		maxV = niceCeil(math.Max(maxV, 1e-3))
		py := func(v float64) float64 { return y0 + panelH - v/maxV*panelH }
		for k := 0; k <= 2; k++ {
			v := maxV * float64(k) / 2
			s.line(left, py(v), width-right, py(v), "#eee", 1, "")
			s.text(left-6, py(v)+4, "end", "", fmtTick(v))
		}
		s.line(left, y0+panelH, width-right, y0+panelH, "#333", 1, "")
		s.line(left, y0, left, y0+panelH, "#333", 1, "")
		s.text(left, y0-8, "start", `fill="#555" font-size="11"`, unit)
		for j, l := range lines {
			var pts [][2]float64
			for _, sec := range d.Seconds {
				pts = append(pts, [2]float64{px(float64(sec.Sec) + 0.5), py(l.v(sec))})
			}
			s.polyline(pts, l.color, 2, "")
			ly := y0 + 14 + float64(j)*18
			s.line(width-right+14, ly-4, width-right+36, ly-4, l.color, 2, "")
			s.text(width-right+42, ly, "start", `font-size="11"`, l.label)
		}
	}
	inst := func(xs []int, i int) float64 {
		if i < len(xs) {
			return float64(xs[i])
		}
		return 0
	}
	panel(0, "req/s", []line{
		{"served (not 503)", "#27ae60", func(x degradedSecond) float64 { return float64(x.Answered - x.Unavail) }},
		{"503", "#c0392b", func(x degradedSecond) float64 { return float64(x.Unavail) }},
		{"no answer", "#000", func(x degradedSecond) float64 { return float64(x.Errors) }},
	})
	panel(1, "latency s", []line{
		{"p50", "#2e86c1", func(x degradedSecond) float64 { return x.P50 }},
		{"p99", "#8e44ad", func(x degradedSecond) float64 { return x.P99 }},
	})
	panel(2, "goroutines", []line{
		{"instance 1", "#d35400", func(x degradedSecond) float64 { return inst(x.Goroutines, 0) }},
		{"instance 2", "#16a085", func(x degradedSecond) float64 { return inst(x.Goroutines, 1) }},
	})
	for k := 0; k <= 10; k++ {
		sec := n * float64(k) / 10
		s.text(px(sec), height-22, "middle", "", fmt.Sprintf("%.0f", sec))
	}
	s.text((left+width-right)/2, height-6, "middle", `fill="#555"`, "seconds")
	return s.String()
}
