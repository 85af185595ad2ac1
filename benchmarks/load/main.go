// Command load is tollgate's end-to-end load harness. One run measures, one
// after the other on the same machine:
//
//   - direct: a minimal OpenAI-compatible upstream that answers instantly
//     (a child process, -role upstream);
//   - floor: the standard library's httputil.ReverseProxy to that upstream
//     (a child process, -role floor), the least any Go proxy can cost;
//   - one or more gateway variants: ./cmd/server built from this tree (or
//     -gateway-bin), configured by the scenario and proxying to the upstream.
//
// For each target it reports the most requests per second it serves
// (closed loop, best of -conns), the p50/p99 of sequential requests on one
// connection and the latency added over direct, the CPU time its process
// spent per request (from /proc/<pid>/stat before and after each phase), and
// open-loop latency at fixed -rates: requests are sent at scheduled times
// whatever the target's progress and latency is measured from the schedule,
// so a stall counts against every request it delays. Gateway figures are
// also given as ratios to the floor, and the scenario's checks say whether
// the targets are met.
//
// Run it from the repository:
//
//	go run ./benchmarks/load                         # scenario proxy, ~2.5 min
//	go run ./benchmarks/load -duration 2s -repeat 3  # medians of 3 floor/gateway runs
//	go run ./benchmarks/load -json > result.json
//
// Everything listens on 127.0.0.1, every phase is bounded in time, and the
// children are stopped on exit, on Ctrl-C, and (through Pdeathsig) even if
// the harness is killed.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tollgate/tollgate/pkg/config"
)

func main() {
	ctx, stop := signalContext()
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		stop()
		os.Exit(1)
	}
}

// signalContext ends on Ctrl-C or SIGTERM; the children are then stopped by
// the deferred calls on the way out.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

type options struct {
	role           string
	duration       time.Duration
	warmup         time.Duration
	conns          []int
	rates          []int
	streamFraction float64
	scenarios      []string
	repeat         int
	json           bool
	gatewayBin     string
	compareBin     string
	keep           bool
	maxInflight    int
	timeout        time.Duration
	print          string
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var conns, rates, scen string
	fs.StringVar(&o.role, "role", "", "internal: run as the harness's upstream or floor child")
	fs.String("upstream", "", "internal: the floor child's upstream")
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "length of each measured phase")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "closed-loop warm-up before each target's phases (not measured)")
	fs.StringVar(&conns, "conns", "8,32", "connections for the max-throughput phase; a list is a sweep, the best is reported")
	fs.StringVar(&rates, "rates", "500,1000,2000", "open-loop rates in requests/s (empty: none)")
	fs.Float64Var(&o.streamFraction, "stream-fraction", 0.1, "fraction of chat requests sent with stream: true")
	fs.StringVar(&scen, "scenario", "proxy", "scenarios to run, comma-separated: "+scenarioNames())
	fs.IntVar(&o.repeat, "repeat", 1, "measure floor and gateways this many times (alternating) and report medians")
	fs.BoolVar(&o.json, "json", false, "write the report as JSON to stdout")
	fs.StringVar(&o.gatewayBin, "gateway-bin", "", "use this gateway binary instead of building ./cmd/server")
	fs.StringVar(&o.compareBin, "compare-bin", "", "also measure every gateway variant with this binary (named VARIANT@compare), alternating with the others: before/after figures from one run")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory (configs, logs, data)")
	fs.IntVar(&o.maxInflight, "max-inflight", 256, "open loop: most requests in flight; later ones queue (and the wait counts)")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "per-request timeout")
	fs.StringVar(&o.print, "print", "", "print the table of a report saved with -json, and measure nothing")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.role != "" {
		return o, nil
	}
	var err error
	if o.conns, err = intList(conns); err != nil || len(o.conns) == 0 {
		return nil, fmt.Errorf("-conns %q: want a list of positive integers", conns)
	}
	if o.rates, err = intList(rates); err != nil {
		return nil, fmt.Errorf("-rates %q: want a list of positive integers", rates)
	}
	if o.streamFraction < 0 || o.streamFraction > 1 {
		return nil, fmt.Errorf("-stream-fraction must be within [0, 1]")
	}
	if o.duration <= 0 || o.warmup < 0 || o.repeat < 1 || o.maxInflight < 1 || o.timeout <= 0 {
		return nil, errors.New("-duration, -repeat, -max-inflight and -timeout must be positive, -warmup not negative")
	}
	for _, s := range strings.Split(scen, ",") {
		if s = strings.TrimSpace(s); s != "" {
			if _, err := findScenario(s); err != nil {
				return nil, err
			}
			o.scenarios = append(o.scenarios, s)
		}
	}
	if len(o.scenarios) == 0 {
		return nil, errors.New("-scenario: none given")
	}
	return o, nil
}

func intList(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("bad number %q", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// run is the harness; main only turns signals into ctx. Progress goes to
// stderr, the report to stdout.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if o.role != "" {
		return runRole(ctx, args, stdout)
	}
	if o.print != "" {
		b, err := os.ReadFile(o.print)
		if err != nil {
			return err
		}
		var r report
		if err := json.Unmarshal(b, &r); err != nil {
			return fmt.Errorf("%s: %w", o.print, err)
		}
		printReport(stdout, &r)
		return nil
	}
	r, err := measureAll(ctx, o, stderr)
	if err != nil {
		return err
	}
	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	printReport(stdout, r)
	return nil
}

// measureAll starts the children, runs every scenario and stops them.
func measureAll(ctx context.Context, o *options, progress io.Writer) (*report, error) {
	logf := func(format string, a ...any) { fmt.Fprintf(progress, format+"\n", a...) }
	t0 := time.Now()
	r := &report{
		Env: environment{Cores: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), GoVersion: runtime.Version(),
			OSArch: runtime.GOOS + "/" + runtime.GOARCH, CPUModel: cpuModel(), Kernel: readTrim("/proc/sys/kernel/osrelease"),
			LoadStart: loadavg(), Started: t0.UTC().Format(time.RFC3339)},
		Settings: settings{Duration: o.duration.String(), Warmup: o.warmup.String(), Conns: o.conns, Rates: o.rates,
			StreamFraction: o.streamFraction, Repeat: o.repeat, MaxInflight: o.maxInflight},
	}
	dir, err := os.MkdirTemp("", "tollgate-load-")
	if err != nil {
		return nil, err
	}
	keep := o.keep
	if keep {
		logf("keeping %s", dir)
	}
	defer func() {
		if !keep {
			os.RemoveAll(dir)
		}
	}()
	// Children get their own context: on Ctrl-C, ctx ends the phases, and
	// the deferred stops below end the children in order.
	up, err := startChild(ctx, dir, "upstream")
	if err != nil {
		return nil, err
	}
	defer up.stop()
	floor, err := startChild(ctx, dir, "floor", "-upstream", "http://"+up.addr)
	if err != nil {
		return nil, err
	}
	defer floor.stop()
	logf("upstream on %s, floor on %s", up.addr, floor.addr)

	bin, binErr := o.gatewayBin, error(nil)
	for _, name := range o.scenarios {
		sc, _ := findScenario(name)
		if len(sc.variants) > 0 && bin == "" && binErr == nil {
			logf("building ./cmd/server")
			bin, binErr = buildGateway(ctx, dir)
			if binErr != nil {
				logf("gateway targets will be skipped: %v", binErr)
			}
		}
		sr, err := runScenario(ctx, o, sc, dir, up, floor, bin, binErr, logf)
		if err != nil {
			return nil, err
		}
		r.Scenarios = append(r.Scenarios, *sr)
	}
	// A failed request is explained in the logs of the process that
	// failed it (the floor logs its proxy errors, the gateway its own).
	for _, s := range r.Scenarios {
		for _, t := range s.Targets {
			for _, run := range t.Runs {
				if run.Errors > 0 && !keep {
					keep = true
					logf("there were errors: keeping %s for the children's logs", dir)
				}
			}
		}
	}
	r.Env.LoadEnd = loadavg()
	r.Env.Elapsed = time.Since(t0).Round(time.Second).String()
	return r, nil
}

func runScenario(ctx context.Context, o *options, sc scenario, dir string, up, floor *proc, bin string, binErr error, logf func(string, ...any)) (*scenarioReport, error) {
	mix := sc.mix(mixOptions{streamFraction: o.streamFraction})
	sr := &scenarioReport{Name: sc.name, Doc: sc.doc, Mix: mixNames(mix)}
	logf("scenario %s: %s", sc.name, sc.doc)

	type entry struct {
		target
		doc     string
		skipped string
		runs    []summary
	}
	entries := []*entry{
		{target: target{name: "direct", baseURL: "http://" + up.addr + "/v1", auth: "Bearer " + upstreamAPIKey}, doc: "the upstream itself"},
		{target: target{name: "floor", baseURL: "http://" + floor.addr + "/v1", auth: "Bearer client-key", pid: floor.pid()}, doc: "httputil.ReverseProxy"},
	}
	sdir := filepath.Join(dir, sc.name)
	type started struct {
		variant
		bin string
	}
	var toStart []started
	for _, v := range sc.variants {
		toStart = append(toStart, started{v, bin})
		if o.compareBin != "" {
			c := v
			c.Name, c.Doc = v.Name+"@compare", v.Doc+" (binary "+filepath.Base(o.compareBin)+")"
			toStart = append(toStart, started{c, o.compareBin})
		}
	}
	for _, st := range toStart {
		v, bin := st.variant, st.bin
		e := &entry{target: target{name: v.Name}, doc: v.Doc}
		entries = append(entries, e)
		if binErr != nil {
			e.skipped = binErr.Error()
			continue
		}
		cfg := gatewayConfig(up.addr)
		if v.tweak != nil {
			v.tweak(cfg)
		}
		y, err := yaml.Marshal(cfg)
		if err != nil {
			return nil, err
		}
		// The schema package of this tree reads the config first, so a
		// scenario out of step with it fails here, with paths, rather
		// than as a gateway that will not start.
		if _, err := config.Parse(bytes.NewReader(y), func(string) string { return "" }); err != nil {
			return nil, fmt.Errorf("scenario %s, %s: generated config is invalid:\n%v\n%s", sc.name, v.Name, err, y)
		}
		g, err := startGateway(ctx, bin, sdir, v, y, sc.keyBody)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			e.skipped = "did not start: " + err.Error()
			logf("%s", e.skipped)
			continue
		}
		defer g.stop()
		e.baseURL, e.auth, e.pid = "http://"+g.addr+"/v1", "Bearer "+g.key, g.pid()
		logf("%s on %s (%s)", v.Name, g.addr, v.Doc)
	}

	// Phases never overlap and always run in the same order: direct once,
	// then floor and the gateways, alternating -repeat times so slow drifts
	// in the machine's load spread over all of them.
	measure := func(e *entry) error {
		if e.skipped != "" {
			return nil
		}
		logf("measuring %s", e.name)
		s, err := measureTarget(ctx, o, e.target, mix, up.pid())
		if err != nil {
			return fmt.Errorf("%s: %w", e.name, err)
		}
		e.runs = append(e.runs, s)
		return nil
	}
	if err := measure(entries[0]); err != nil {
		return nil, err
	}
	for range o.repeat {
		for _, e := range entries[1:] {
			if err := measure(e); err != nil {
				return nil, err
			}
		}
	}
	for _, e := range entries {
		tr := targetReport{Name: e.name, Doc: e.doc, Skipped: e.skipped, Runs: e.runs}
		if len(e.runs) > 0 {
			tr.Median = medianSummary(e.runs)
		}
		sr.Targets = append(sr.Targets, tr)
	}
	sr.compare()
	sr.runChecks(sc.checks)
	return sr, nil
}

func mixNames(mix []request) []string {
	count := map[string]int{}
	var order []string
	for _, r := range mix {
		if count[r.name] == 0 {
			order = append(order, r.name)
		}
		count[r.name]++
	}
	out := make([]string, len(order))
	for i, n := range order {
		out[i] = fmt.Sprintf("%s %d/%d", n, count[n], len(mix))
	}
	return out
}

// measureTarget runs one target's phases: warm-up, the closed-loop sweep,
// sequential requests on one connection, then each open-loop rate.
func measureTarget(ctx context.Context, o *options, t target, mix []request, upstreamPID int) (summary, error) {
	l := &loader{t: t, mix: mix, timeout: o.timeout}
	pids := map[string]int{"upstream": upstreamPID, "harness": os.Getpid()}
	if t.pid != 0 {
		pids["target"] = t.pid
	}
	phase := func(kind string, f func() (*outcome, time.Duration)) (phaseResult, error) {
		m, err := startCPU(pids)
		if err != nil {
			return phaseResult{}, err
		}
		out, elapsed := f()
		cpu, err := m.stop()
		if err != nil {
			return phaseResult{}, err
		}
		if ctx.Err() != nil {
			return phaseResult{}, ctx.Err()
		}
		return newPhaseResult(kind, out, elapsed, cpu), nil
	}
	var s summary
	if o.warmup > 0 {
		l.closedLoop(ctx, slices.Max(o.conns), o.warmup)
	}
	for _, c := range o.conns {
		p, err := phase("closed", func() (*outcome, time.Duration) { return l.closedLoop(ctx, c, o.duration) })
		if err != nil {
			return s, err
		}
		p.Conns = c
		s.Sweep = append(s.Sweep, p)
		s.Errors += p.Errors
		if p.RPS > s.MaxRPS {
			s.MaxRPS, s.MaxConns = p.RPS, c
			s.CPUus, s.UpstreamCPUus, s.HarnessCPUus = p.CPUus["target"], p.CPUus["upstream"], p.CPUus["harness"]
		}
	}
	seq, err := phase("sequential", func() (*outcome, time.Duration) { return l.closedLoop(ctx, 1, o.duration) })
	if err != nil {
		return s, err
	}
	seq.Conns = 1
	s.Seq, s.SeqP50us, s.SeqP99us = &seq, seq.P50us, seq.P99us
	s.Errors += seq.Errors
	for _, rate := range o.rates {
		p, err := phase("open", func() (*outcome, time.Duration) {
			return l.openLoop(ctx, realClock{}, rate, o.duration, o.maxInflight)
		})
		if err != nil {
			return s, err
		}
		p.Rate = rate
		s.Open = append(s.Open, p)
		s.Errors += p.Errors
	}
	return s, nil
}

func readTrim(path string) string {
	b, _ := os.ReadFile(path)
	return strings.TrimSpace(string(b))
}

func loadavg() float64 {
	f := strings.Fields(readTrim("/proc/loadavg"))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

func cpuModel() string {
	for _, line := range strings.Split(readTrim("/proc/cpuinfo"), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
