package main

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// report is the whole run, as printed and as written by -json.
type report struct {
	Env       environment      `json:"env"`
	Settings  settings         `json:"settings"`
	Scenarios []scenarioReport `json:"scenarios"`
}

type environment struct {
	Cores      int     `json:"cores"`
	GOMAXPROCS int     `json:"gomaxprocs"`
	GoVersion  string  `json:"go_version"`
	OSArch     string  `json:"os_arch"`
	CPUModel   string  `json:"cpu_model,omitempty"`
	Kernel     string  `json:"kernel,omitempty"`
	LoadStart  float64 `json:"loadavg1_start"`
	LoadEnd    float64 `json:"loadavg1_end"`
	Started    string  `json:"started"`
	Elapsed    string  `json:"elapsed"`
}

type settings struct {
	Duration       string  `json:"duration"`
	Warmup         string  `json:"warmup"`
	Conns          []int   `json:"conns"`
	Rates          []int   `json:"rates"`
	StreamFraction float64 `json:"stream_fraction"`
	Repeat         int     `json:"repeat"`
	MaxInflight    int     `json:"max_inflight"`
	// Seed of the generated prompts (the miss scenarios).
	Seed         uint64 `json:"seed,omitempty"`
	Prefill      int    `json:"prefill,omitempty"`
	PrefillConns int    `json:"prefill_conns,omitempty"`
	// OTLPSink: the gateways traced every request to a sink (-otlp-sink).
	OTLPSink bool `json:"otlp_sink,omitempty"`
}

type scenarioReport struct {
	Name    string         `json:"name"`
	Doc     string         `json:"doc"`
	Mix     []string       `json:"mix"`
	Prompts *promptStats   `json:"prompts,omitempty"` // generated prompts: their measured size
	Prefill []prefillRun   `json:"prefill,omitempty"`
	Targets []targetReport `json:"targets"`
	Checks  []checkResult  `json:"checks,omitempty"`
}

func (s *scenarioReport) target(name string) *targetReport {
	for i := range s.Targets {
		if s.Targets[i].Name == name {
			return &s.Targets[i]
		}
	}
	return nil
}

type checkResult struct {
	Name   string `json:"name"`
	Result string `json:"result"` // pass | fail | skipped
	Detail string `json:"detail"`
}

type targetReport struct {
	Name    string `json:"name"`
	Doc     string `json:"doc"`
	Skipped string `json:"skipped,omitempty"`
	// Median is the per-figure median over Runs (errors are summed).
	Median summary `json:"median"`
	// Compare puts the medians next to direct and the floor.
	Compare *comparison `json:"compare,omitempty"`
	Runs    []summary   `json:"runs,omitempty"`
	// CacheEnd is the gateway's GET /admin/cache after its last phase.
	CacheEnd *cacheStats `json:"cache_end,omitempty"`
	// RSSEndMB and PeakRSSMB are the process's resident memory after its
	// last phase and at most (VmRSS, VmHWM).
	RSSEndMB  float64 `json:"rss_end_mb,omitempty"`
	PeakRSSMB float64 `json:"peak_rss_mb,omitempty"`
}

// comparison is a target against direct (added latency) and the floor
// (ratios). Fields that do not apply (direct against itself) are nil.
type comparison struct {
	AddedP50us          *float64 `json:"added_p50_us,omitempty"`            // p50 at 1 connection minus direct's
	AddedP99us          *float64 `json:"added_p99_us,omitempty"`            // p99 at 1 connection minus direct's
	AddedP50OverFloorus *float64 `json:"added_p50_over_floor_us,omitempty"` // added p50 minus the floor's added p50
	MaxRPSxFloor        *float64 `json:"max_rps_x_floor,omitempty"`
	CPUxFloor           *float64 `json:"cpu_x_floor,omitempty"`
}

func ptr(v float64) *float64 { return &v }

// compare fills every target's Compare from the medians.
func (s *scenarioReport) compare() {
	direct, floor := s.target("direct"), s.target("floor")
	for i := range s.Targets {
		t := &s.Targets[i]
		if t.Skipped != "" || t.Name == "direct" || len(t.Runs) == 0 {
			continue
		}
		c := &comparison{}
		m := t.Median
		if direct != nil && len(direct.Runs) > 0 {
			c.AddedP50us = ptr(m.SeqP50us - direct.Median.SeqP50us)
			c.AddedP99us = ptr(m.SeqP99us - direct.Median.SeqP99us)
		}
		if floor != nil && len(floor.Runs) > 0 {
			if floor.Median.MaxRPS > 0 {
				c.MaxRPSxFloor = ptr(m.MaxRPS / floor.Median.MaxRPS)
			}
			if t.Name != "floor" {
				c.AddedP50OverFloorus = ptr(m.SeqP50us - floor.Median.SeqP50us)
				if floor.Median.CPUus > 0 {
					c.CPUxFloor = ptr(m.CPUus / floor.Median.CPUus)
				}
			}
		}
		t.Compare = c
	}
}

// summary is one measurement of one target. Latencies are in microseconds,
// CPU in microseconds per successful request.
type summary struct {
	MaxRPS   float64 `json:"max_rps"`
	MaxConns int     `json:"max_conns"`
	// Closed-loop results per connection count; MaxRPS is the best.
	Sweep []phaseResult `json:"sweep,omitempty"`

	SeqP50us float64      `json:"seq_p50_us"`
	SeqP99us float64      `json:"seq_p99_us"`
	Seq      *phaseResult `json:"seq,omitempty"`

	// CPU per request of the target process (the proxy), the upstream and
	// the harness itself, in the max-throughput phase.
	CPUus         float64 `json:"cpu_us_per_req"`
	UpstreamCPUus float64 `json:"upstream_cpu_us_per_req"`
	HarnessCPUus  float64 `json:"harness_cpu_us_per_req"`

	Open   []phaseResult `json:"open"`
	Errors uint64        `json:"errors"`
	// Cache counts the x-tollgate-cache header of the successful answers
	// of every phase (warm-up excluded): hit, semantic-hit, miss, bypass.
	Cache map[string]uint64 `json:"cache,omitempty"`
}

// phaseResult is one phase (closed loop at some connections, sequential, or
// open loop at a rate).
type phaseResult struct {
	Kind        string             `json:"kind"` // closed | sequential | open
	Conns       int                `json:"conns,omitempty"`
	Rate        int                `json:"rate,omitempty"`
	OK          uint64             `json:"ok"`
	Errors      uint64             `json:"errors"`
	ErrorKinds  string             `json:"error_kinds,omitempty"`
	ErrorSample string             `json:"error_sample,omitempty"`
	RPS         float64            `json:"rps"` // successful requests per second achieved
	P50us       float64            `json:"p50_us"`
	P90us       float64            `json:"p90_us"`
	P99us       float64            `json:"p99_us"`
	MaxUs       float64            `json:"max_us"`
	MeanUs      float64            `json:"mean_us"`
	CPUus       map[string]float64 `json:"cpu_us_per_req"` // role -> µs per successful request
	OtherCores  float64            `json:"other_cores"`    // CPU the rest of the machine used meanwhile
	Elapsed     string             `json:"elapsed"`
	Cache       map[string]uint64  `json:"cache,omitempty"` // x-tollgate-cache of the successful answers
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func newPhaseResult(kind string, o *outcome, elapsed time.Duration, cpu cpuUse) phaseResult {
	p := phaseResult{
		Kind: kind, OK: o.ok, Errors: o.errors, ErrorKinds: errorKinds(o.byStatus), ErrorSample: o.sample,
		RPS:   float64(o.ok) / elapsed.Seconds(),
		P50us: us(o.hist.quantile(0.5)), P90us: us(o.hist.quantile(0.9)), P99us: us(o.hist.quantile(0.99)),
		MaxUs: us(o.hist.max), MeanUs: us(o.hist.mean()),
		CPUus: map[string]float64{}, OtherCores: math.Round(cpu.otherCores*100) / 100,
		Elapsed: elapsed.Round(time.Millisecond).String(),
		Cache:   o.cache,
	}
	if o.ok > 0 {
		for role, t := range cpu.byRole {
			p.CPUus[role] = us(t) / float64(o.ok)
		}
	}
	return p
}

// medianSummary takes the median of every figure over the runs, so one run
// disturbed by a neighbour's compile does not decide the result.
func medianSummary(runs []summary) summary {
	if len(runs) == 1 {
		return runs[0]
	}
	med := func(f func(s summary) float64) float64 {
		v := make([]float64, len(runs))
		for i, r := range runs {
			v[i] = f(r)
		}
		sort.Float64s(v)
		if len(v)%2 == 1 {
			return v[len(v)/2]
		}
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	m := summary{
		MaxRPS:        med(func(s summary) float64 { return s.MaxRPS }),
		MaxConns:      runs[0].MaxConns,
		SeqP50us:      med(func(s summary) float64 { return s.SeqP50us }),
		SeqP99us:      med(func(s summary) float64 { return s.SeqP99us }),
		CPUus:         med(func(s summary) float64 { return s.CPUus }),
		UpstreamCPUus: med(func(s summary) float64 { return s.UpstreamCPUus }),
		HarnessCPUus:  med(func(s summary) float64 { return s.HarnessCPUus }),
	}
	for _, r := range runs {
		m.Errors += r.Errors
		m.Cache = addCounts(m.Cache, r.Cache)
	}
	for i := range runs[0].Open {
		at := func(f func(p phaseResult) float64) float64 {
			return med(func(s summary) float64 { return f(s.Open[i]) })
		}
		var errs uint64
		for _, r := range runs {
			errs += r.Open[i].Errors
		}
		m.Open = append(m.Open, phaseResult{
			Kind: "open", Rate: runs[0].Open[i].Rate, Errors: errs,
			RPS:        at(func(p phaseResult) float64 { return p.RPS }),
			P50us:      at(func(p phaseResult) float64 { return p.P50us }),
			P90us:      at(func(p phaseResult) float64 { return p.P90us }),
			P99us:      at(func(p phaseResult) float64 { return p.P99us }),
			MaxUs:      at(func(p phaseResult) float64 { return p.MaxUs }),
			CPUus:      map[string]float64{"target": at(func(p phaseResult) float64 { return p.CPUus["target"] })},
			OtherCores: at(func(p phaseResult) float64 { return p.OtherCores }),
		})
	}
	return m
}

func (s *scenarioReport) runChecks(checks []check) {
	for _, c := range checks {
		ok, detail, skip := c.eval(s)
		res := "fail"
		switch {
		case skip != "":
			res, detail = "skipped", skip
		case ok:
			res = "pass"
		}
		s.Checks = append(s.Checks, checkResult{Name: c.name, Result: res, Detail: detail})
	}
}

// show formats an optional figure, "-" when it does not apply.
func show(v *float64, format string) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf(format, *v)
}

func printReport(w io.Writer, r *report) {
	e := r.Env
	fmt.Fprintf(w, "\ntollgate load harness: %d cores (GOMAXPROCS %d), %s %s", e.Cores, e.GOMAXPROCS, e.GoVersion, e.OSArch)
	if e.CPUModel != "" {
		fmt.Fprintf(w, ", %s", e.CPUModel)
	}
	fmt.Fprintf(w, "\nload average %.2f at start, %.2f at end; %s per phase, %s warm-up, conns %v, repeat %d, took %s\n",
		e.LoadStart, e.LoadEnd, r.Settings.Duration, r.Settings.Warmup, r.Settings.Conns, r.Settings.Repeat, e.Elapsed)
	if r.Settings.OTLPSink {
		fmt.Fprintln(w, "tracing on: the gateways export every request's spans to an OTLP sink that discards them (-otlp-sink)")
	}
	for i := range r.Scenarios {
		printScenario(w, &r.Scenarios[i])
	}
}

func printScenario(w io.Writer, s *scenarioReport) {
	fmt.Fprintf(w, "\n== scenario %s: %s\n", s.Name, s.Doc)
	if p := s.Prompts; p != nil {
		fmt.Fprintf(w, "requests: %s\nprompt size (%s, %d sampled): mean %.0f tokens (%d-%d), last user message %.0f, %.1f messages; words x 1.3: %.0f\n"+
			"e.g. last user message: %q\n", strings.Join(s.Mix, ", "), p.Tokenizer, p.Sample, p.Mean, p.Min, p.Max, p.LastUser, p.Messages, p.Estimated, clip(p.Example, 160))
	} else {
		fmt.Fprintf(w, "mix (cycled): %s\n", strings.Join(s.Mix, ", "))
	}
	for _, p := range s.Prefill {
		fmt.Fprintf(w, "prefill %s: %s\n", p.Target, p.line())
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "target\tmax req/s\tx floor\tp50 1c µs\tp99 1c µs\tadded p50\tadded - floor's\tcpu µs/req\tx floor\tupstream µs/req\tclient µs/req\terrors\t")
	for _, t := range s.Targets {
		if t.Skipped != "" {
			fmt.Fprintf(tw, "%s\tskipped\t\t\t\t\t\t\t\t\t\t\t\n", t.Name)
			continue
		}
		m, c := t.Median, t.Compare
		if c == nil {
			c = &comparison{}
		}
		cpu := "-"
		if t.Name != "direct" {
			cpu = fmt.Sprintf("%.0f", m.CPUus)
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%s\t%.0f\t%.0f\t%s\t%s\t%s\t%s\t%.0f\t%.0f\t%d\t\n", t.Name, m.MaxRPS, show(c.MaxRPSxFloor, "%.2fx"),
			m.SeqP50us, m.SeqP99us, show(c.AddedP50us, "%+.0f µs"), show(c.AddedP50OverFloorus, "%+.0f µs"),
			cpu, show(c.CPUxFloor, "%.2fx"), m.UpstreamCPUus, m.HarnessCPUus, m.Errors)
	}
	tw.Flush()
	fmt.Fprintf(w, "(max req/s: best closed loop of conns; 1c: sequential on one connection; cpu: the target process's user+system time\n"+
		" per successful request in its max-throughput phase; upstream and client (this harness) likewise)\n")
	for _, t := range s.Targets {
		if len(t.Median.Cache) > 0 || t.CacheEnd != nil {
			fmt.Fprintf(w, "%s x-tollgate-cache (all phases): %s", t.Name, cacheCounts(t.Median.Cache))
			if c := t.CacheEnd; c != nil {
				fmt.Fprintf(w, "; at the end: %d entries, %d index points, embedder %s, %d guard refusals", c.Entries, c.IndexPoints, c.Embedder, c.GuardRefusals)
			}
			if t.RSSEndMB > 0 {
				fmt.Fprintf(w, "; RSS %.0f MB (peak %.0f MB)", t.RSSEndMB, t.PeakRSSMB)
			}
			fmt.Fprintln(w)
		}
	}

	fmt.Fprintf(w, "\nopen loop (latency from each request's scheduled send time):\n")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "target\trate/s\tachieved/s\tp50 µs\tp90 µs\tp99 µs\tmax µs\tcpu µs/req\terrors\tothers' cores\t")
	for _, t := range s.Targets {
		if t.Skipped != "" {
			continue
		}
		for _, p := range t.Median.Open {
			cpu := "-"
			if t.Name != "direct" {
				cpu = fmt.Sprintf("%.0f", p.CPUus["target"])
			}
			fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%s\t%d\t%.2f\t\n", t.Name, p.Rate, p.RPS, p.P50us, p.P90us, p.P99us, p.MaxUs, cpu, p.Errors, p.OtherCores)
		}
	}
	tw.Flush()

	for _, t := range s.Targets {
		if t.Skipped != "" {
			fmt.Fprintf(w, "\n%s skipped: %s\n", t.Name, t.Skipped)
		}
		for _, run := range t.Runs {
			for _, p := range allPhases(run) {
				if p.Errors > 0 {
					fmt.Fprintf(w, "\n%s %s errors: %d (%s); first: %s\n", t.Name, phaseName(p), p.Errors, p.ErrorKinds, p.ErrorSample)
				}
			}
		}
	}
	if len(s.Checks) > 0 {
		fmt.Fprintf(w, "\nchecks (on medians):\n")
		for _, c := range s.Checks {
			fmt.Fprintf(w, "  %-7s %s: %s\n", strings.ToUpper(c.Result), c.Name, c.Detail)
		}
	}
	var other []float64
	for _, t := range s.Targets {
		for _, run := range t.Runs {
			for _, p := range allPhases(run) {
				other = append(other, p.OtherCores)
			}
		}
	}
	if len(other) > 0 {
		sort.Float64s(other)
		busy := 0
		for _, o := range other {
			if o > 0.5 {
				busy++
			}
		}
		fmt.Fprintf(w, "\nother processes on the machine used %.2f cores in the median phase, %.2f at most; %d of %d phases shared the\n"+
			"machine with more than half a core of other work (figures from those are not the targets' alone)\n",
			other[len(other)/2], other[len(other)-1], busy, len(other))
	}
}

func allPhases(s summary) []phaseResult {
	var p []phaseResult
	p = append(p, s.Sweep...)
	if s.Seq != nil {
		p = append(p, *s.Seq)
	}
	return append(p, s.Open...)
}

func phaseName(p phaseResult) string {
	switch p.Kind {
	case "closed":
		return fmt.Sprintf("closed loop at %d conns", p.Conns)
	case "open":
		return fmt.Sprintf("open loop at %d/s", p.Rate)
	}
	return p.Kind
}

// cacheCounts formats x-tollgate-cache counts, most frequent first, with
// each one's share.
func cacheCounts(m map[string]uint64) string {
	if len(m) == 0 {
		return "none"
	}
	var all uint64
	for _, v := range m {
		all += v
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] || m[keys[i]] == m[keys[j]] && keys[i] < keys[j] })
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d (%.1f%%)", k, m[k], 100*float64(m[k])/float64(all))
	}
	return strings.Join(parts, ", ")
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
