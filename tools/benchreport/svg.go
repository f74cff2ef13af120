package main

import (
	"fmt"
	"html"
	"math"
	"slices"
	"strings"
)

// Hand-written SVG charts: no dependencies, readable source, viewable on
// GitHub and in any browser.

type svg struct {
	b    strings.Builder
	w, h float64
}

func newSVG(w, h float64, title string) *svg {
	s := &svg{w: w, h: h}
	fmt.Fprintf(&s.b, `<svg xmlns="http://www.w3.org/2000/svg" width="%g" height="%g" viewBox="0 0 %g %g" font-family="Helvetica, Arial, sans-serif" font-size="12">`+"\n", w, h, w, h)
	fmt.Fprintf(&s.b, `<title>%s</title>`+"\n", html.EscapeString(title))
	fmt.Fprintf(&s.b, `<rect width="%g" height="%g" fill="#ffffff"/>`+"\n", w, h)
	return s
}

func (s *svg) text(x, y float64, anchor, style, t string) {
	fmt.Fprintf(&s.b, `<text x="%.1f" y="%.1f" text-anchor="%s" %s>%s</text>`+"\n", x, y, anchor, style, html.EscapeString(t))
}

func (s *svg) line(x1, y1, x2, y2 float64, stroke string, width float64, dash string) {
	d := ""
	if dash != "" {
		d = fmt.Sprintf(` stroke-dasharray="%s"`, dash)
	}
	fmt.Fprintf(&s.b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="%g"%s/>`+"\n", x1, y1, x2, y2, stroke, width, d)
}

func (s *svg) rect(x, y, w, h float64, fill, stroke string) {
	fmt.Fprintf(&s.b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s" stroke="%s"/>`+"\n", x, y, math.Max(w, 0), math.Max(h, 0), fill, stroke)
}

func (s *svg) polyline(pts [][2]float64, stroke string, width float64, dash string) {
	var p strings.Builder
	for _, xy := range pts {
		fmt.Fprintf(&p, "%.1f,%.1f ", xy[0], xy[1])
	}
	d := ""
	if dash != "" {
		d = fmt.Sprintf(` stroke-dasharray="%s"`, dash)
	}
	fmt.Fprintf(&s.b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="%g"%s/>`+"\n", strings.TrimSpace(p.String()), stroke, width, d)
}

func (s *svg) String() string { return s.b.String() + "</svg>\n" }

// logAxis maps values in [lo, hi] to [x0, x1] on a log scale.
type logAxis struct{ lo, hi, x0, x1 float64 }

func (a logAxis) at(v float64) float64 {
	v = math.Min(math.Max(v, a.lo), a.hi)
	return a.x0 + (math.Log10(v)-math.Log10(a.lo))/(math.Log10(a.hi)-math.Log10(a.lo))*(a.x1-a.x0)
}

// ticks returns 1-2-5 ticks within the axis.
func (a logAxis) ticks() []float64 {
	var out []float64
	for e := math.Floor(math.Log10(a.lo)); e <= math.Ceil(math.Log10(a.hi)); e++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, e)
			if v >= a.lo*0.999 && v <= a.hi*1.001 {
				out = append(out, v)
			}
		}
	}
	return out
}

func fmtTick(v float64) string {
	switch {
	case v >= 1000:
		return fmt.Sprintf("%gs", v/1000)
	case v >= 1:
		return fmt.Sprintf("%g", v)
	default:
		return strings.TrimPrefix(fmt.Sprintf("%g", v), "0")
	}
}

// distribution is one row of a latency distribution chart.
type distribution struct {
	Group, Label string
	Color        string
	MS           []float64
}

// latencyChart draws, per row, the 5–99th percentile range as a whisker,
// the interquartile range as a box, the median as a bar and the 99th
// percentile as a tick, on a log scale of milliseconds.
func latencyChart(title, note string, rows []distribution) string {
	const left, right, top, rowH, groupGap = 250.0, 40.0, 56.0, 22.0, 14.0
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, r := range rows {
		if len(r.MS) == 0 {
			continue
		}
		lo = math.Min(lo, percentile(r.MS, 1))
		hi = math.Max(hi, percentile(r.MS, 99.5))
	}
	if math.IsInf(lo, 0) {
		lo, hi = 0.1, 10
	}
	lo = math.Pow(10, math.Floor(math.Log10(math.Max(lo, 0.01))))
	hi = math.Pow(10, math.Ceil(math.Log10(hi)))
	groups := 0
	prev := ""
	for _, r := range rows {
		if r.Group != prev {
			groups++
			prev = r.Group
		}
	}
	height := top + float64(len(rows))*rowH + float64(groups)*(groupGap+16) + 60
	width := 900.0
	s := newSVG(width, height, title)
	ax := logAxis{lo, hi, left, width - right}
	s.text(16, 24, "start", `font-size="15" font-weight="bold"`, title)
	s.text(16, 42, "start", `fill="#555"`, note)
	y := top
	prev = ""
	var rowYs []float64
	for _, r := range rows {
		if r.Group != prev {
			y += groupGap
			s.text(16, y+4, "start", `font-weight="bold"`, r.Group)
			y += 14
			prev = r.Group
		}
		cy := y + rowH/2
		rowYs = append(rowYs, cy)
		s.text(left-8, cy+4, "end", "", r.Label)
		if len(r.MS) > 0 {
			sorted := slices.Clone(r.MS)
			slices.Sort(sorted)
			p := func(q float64) float64 { return ax.at(sortedPercentile(sorted, q)) }
			s.line(p(5), cy, p(99), cy, r.Color, 1.5, "")
			s.rect(p(25), cy-7, p(75)-p(25), 14, r.Color+"55", r.Color)
			s.line(p(50), cy-9, p(50), cy+9, r.Color, 3, "")
			s.line(p(99), cy-6, p(99), cy+6, r.Color, 2, "")
			s.text(p(99)+6, cy+4, "start", `fill="#333" font-size="11"`, fmt.Sprintf("p50 %.2f · p99 %.2f ms", sortedPercentile(sorted, 50), sortedPercentile(sorted, 99)))
		}
		y += rowH
	}
	axisY := y + 10
	s.line(left, axisY, width-right, axisY, "#333", 1, "")
	for _, t := range ax.ticks() {
		x := ax.at(t)
		s.line(x, top, x, axisY, "#ddd", 1, "2,3")
		s.line(x, axisY, x, axisY+5, "#333", 1, "")
		s.text(x, axisY+18, "middle", "", fmtTick(t))
	}
	s.text((left+width-right)/2, axisY+36, "middle", `fill="#555"`, "milliseconds per request (log scale) — box: 25th–75th percentile, thick bar: median, whisker: 5th–99th")
	_ = rowYs
	return s.String()
}

// bar is one bar of a bar chart.
type bar struct {
	Label string
	Value float64
	Color string
	Text  string
}

// barGroup is a labelled group of bars.
type barGroup struct {
	Label string
	Bars  []bar
}

// barChart draws horizontal grouped bars on a linear scale, with an
// optional vertical goal line.
func barChart(title, note, unit string, groups []barGroup, goal float64, goalLabel string) string {
	const left, right, top, barH, gap = 230.0, 200.0, 56.0, 16.0, 14.0
	maxV := goal
	n := 0
	for _, g := range groups {
		for _, b := range g.Bars {
			if !math.IsNaN(b.Value) {
				maxV = math.Max(maxV, b.Value)
			}
			n++
		}
	}
	if maxV <= 0 {
		maxV = 1
	}
	maxV = niceCeil(maxV * 1.05)
	width := 900.0
	height := top + float64(n)*barH + float64(len(groups))*gap + 70
	s := newSVG(width, height, title)
	s.text(16, 24, "start", `font-size="15" font-weight="bold"`, title)
	s.text(16, 42, "start", `fill="#555"`, note)
	x := func(v float64) float64 { return left + v/maxV*(width-left-right) }
	axisY := top + float64(n)*barH + float64(len(groups))*gap + 10
	for i := 0; i <= 5; i++ {
		v := maxV * float64(i) / 5
		s.line(x(v), top, x(v), axisY, "#eee", 1, "")
	}
	y := top
	for _, g := range groups {
		y += gap
		s.text(left-10, y+float64(len(g.Bars))*barH/2+4, "end", "", g.Label)
		for _, b := range g.Bars {
			if !math.IsNaN(b.Value) {
				s.rect(left, y+1, x(b.Value)-left, barH-2, b.Color, "none")
				s.text(x(b.Value)+5, y+barH-4, "start", `font-size="11" fill="#333"`, b.Text)
			}
			y += barH
		}
	}
	s.line(left, axisY, width-right, axisY, "#333", 1, "")
	for i := 0; i <= 5; i++ {
		v := maxV * float64(i) / 5
		s.line(x(v), axisY, x(v), axisY+5, "#333", 1, "")
		s.text(x(v), axisY+18, "middle", "", fmt.Sprintf("%g", v))
	}
	if goal > 0 {
		s.line(x(goal), top, x(goal), axisY, "#c0392b", 1.5, "6,4")
		s.text(x(goal)+4, top+10, "start", `fill="#c0392b" font-size="11"`, goalLabel)
	}
	s.text((left+width-right)/2, axisY+36, "middle", `fill="#555"`, unit)
	return s.String()
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	e := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*e >= v {
			return m * e
		}
	}
	return 10 * e
}

// cdfSeries is one line of a CDF chart.
type cdfSeries struct {
	Label string
	Color string
	Dash  string
	X     []float64 // values (seconds)
	Total int       // the denominator (requests sent)
}

// cdfChart draws the share of requests finished by each time.
func cdfChart(title, note, xUnit string, series []cdfSeries) string {
	const left, right, top, bottom = 70.0, 230.0, 56.0, 60.0
	width, height := 900.0, 380.0
	maxX := 0.0
	for _, c := range series {
		for _, v := range c.X {
			maxX = math.Max(maxX, v)
		}
	}
	maxX = niceCeil(math.Max(maxX, 0.001))
	s := newSVG(width, height, title)
	s.text(16, 24, "start", `font-size="15" font-weight="bold"`, title)
	s.text(16, 42, "start", `fill="#555"`, note)
	px := func(v float64) float64 { return left + v/maxX*(width-left-right) }
	py := func(f float64) float64 { return height - bottom - f*(height-top-bottom) }
	for i := 0; i <= 4; i++ {
		f := float64(i) / 4
		s.line(left, py(f), width-right, py(f), "#eee", 1, "")
		s.text(left-6, py(f)+4, "end", "", fmt.Sprintf("%d%%", int(f*100)))
	}
	for i := 0; i <= 5; i++ {
		v := maxX * float64(i) / 5
		s.line(px(v), height-bottom, px(v), height-bottom+5, "#333", 1, "")
		s.text(px(v), height-bottom+18, "middle", "", fmt.Sprintf("%g", v))
	}
	s.line(left, height-bottom, width-right, height-bottom, "#333", 1, "")
	s.line(left, top, left, height-bottom, "#333", 1, "")
	for i, c := range series {
		xs := slices.Clone(c.X)
		slices.Sort(xs)
		// A step per value, merged within half a pixel: the drawing is the
		// same, the file a fraction of the size.
		pts := [][2]float64{{px(0), py(0)}}
		lastX := px(0)
		for j, v := range xs {
			x := px(v)
			if x-lastX >= 0.5 || j == len(xs)-1 {
				pts = append(pts, [2]float64{x, pts[len(pts)-1][1]}, [2]float64{x, py(float64(j+1) / float64(c.Total))})
				lastX = x
			} else {
				pts[len(pts)-1][1] = py(float64(j+1) / float64(c.Total))
			}
		}
		if len(xs) > 0 {
			pts = append(pts, [2]float64{px(maxX), py(float64(len(xs)) / float64(c.Total))})
		}
		s.polyline(pts, c.Color, 2, c.Dash)
		ly := top + 14 + float64(i)*18
		s.line(width-right+14, ly-4, width-right+36, ly-4, c.Color, 2, c.Dash)
		s.text(width-right+42, ly, "start", `font-size="11"`, c.Label)
	}
	s.text((left+width-right)/2, height-bottom+38, "middle", `fill="#555"`, xUnit)
	return s.String()
}
