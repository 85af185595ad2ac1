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
	"crypto/rand"
	"encoding/binary"
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
	modelDir       string
	prefill        int
	prefillConns   int
	seed           uint64
	postgres       string
	otlpSink       bool
	gatewayEnv     []string // added to every gateway's environment
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
	fs.StringVar(&o.modelDir, "model-dir", defaultModelDir(), "where gateways with the USE-lite embedder keep its weights (fetched there once)")
	fs.IntVar(&o.prefill, "prefill", 0, "before measuring, fill each cached gateway's cache with this many new prompts of the scenario, through its API")
	fs.IntVar(&o.prefillConns, "prefill-conns", 32, "connections the prefill uses")
	fs.Uint64Var(&o.seed, "seed", 0, "seed of the generated prompts (0: a random one, reported)")
	fs.StringVar(&o.postgres, "postgres", os.Getenv("TOLLGATE_TEST_POSTGRES"), "PostgreSQL for the variants with store postgres, each in a fresh schema dropped afterwards (default $TOLLGATE_TEST_POSTGRES; empty: those variants are skipped)")
	fs.BoolVar(&o.otlpSink, "otlp-sink", false, "trace: start an OTLP/HTTP sink (a child that discards what it is sent) and point every gateway at it with OTEL_EXPORTER_OTLP_ENDPOINT (a binary that predates tracing ignores it)")
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
	if o.prefill < 0 || o.prefillConns < 1 {
		return nil, errors.New("-prefill must not be negative, -prefill-conns must be positive")
	}
	if o.seed == 0 {
		o.seed = randomSeed()
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
			StreamFraction: o.streamFraction, Repeat: o.repeat, MaxInflight: o.maxInflight, Seed: o.seed},
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
	if o.otlpSink {
		sink, err := startChild(ctx, dir, "otlp-sink")
		if err != nil {
			return nil, err
		}
		defer sink.stop()
		o.gatewayEnv = append(o.gatewayEnv, config.OtelEndpointEnv+"=http://"+sink.addr)
		r.Settings.OTLPSink = true
		logf("gateways trace to the OTLP sink on %s", sink.addr)
	}

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
	if o.prefill > 0 {
		r.Settings.Prefill, r.Settings.PrefillConns = o.prefill, o.prefillConns
	}
	r.Env.LoadEnd = loadavg()
	r.Env.Elapsed = time.Since(t0).Round(time.Second).String()
	return r, nil
}

func runScenario(ctx context.Context, o *options, sc scenario, dir string, up, floor *proc, bin string, binErr error, logf func(string, ...any)) (*scenarioReport, error) {
	sr := &scenarioReport{Name: sc.name, Doc: sc.doc}
	logf("scenario %s: %s", sc.name, sc.doc)
	// newSource gives each target its requests: the same cycled mix from
	// its start, or, for generated prompts, one source shared by every
	// target, phase and prefill of the scenario so that no request
	// repeats another.
	var newSource func() source
	if sc.prompts != nil {
		gen := &generated{gen: promptGen{kind: *sc.prompts, seed: o.seed}}
		newSource = func() source { return gen }
		st, err := measurePrompts(gen.gen, 200)
		if err != nil {
			return nil, err
		}
		sr.Prompts = &st
		sr.Mix = []string{fmt.Sprintf("a new %s conversation per request (JSON answers)", gen.gen.kind)}
		logf("prompts: mean %.0f tokens (%s), last user message %.0f", st.Mean, st.Tokenizer, st.LastUser)
	} else {
		mix := sc.mix(mixOptions{streamFraction: o.streamFraction})
		sr.Mix = mixNames(mix)
		newSource = func() source { return &cycle{mix: mix} }
	}

	type entry struct {
		target
		doc     string
		skipped string
		runs    []summary
		gw      *gateway
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
		cfg := gatewayConfig(up.addr, o.modelDir)
		if v.tweak != nil {
			v.tweak(cfg)
		}
		if v.postgres {
			if o.postgres == "" {
				e.skipped = "store postgres: no -postgres URL (nor TOLLGATE_TEST_POSTGRES)"
				logf("%s skipped: %s", v.Name, e.skipped)
				continue
			}
			u, drop, err := freshSchema(ctx, o.postgres)
			if err != nil {
				e.skipped = "store postgres: " + err.Error()
				logf("%s skipped: %s", v.Name, e.skipped)
				continue
			}
			defer drop()
			cfg["store"] = map[string]any{"driver": "postgres", "postgres_url": u}
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
		g, err := startGateway(ctx, bin, sdir, v, y, sc.keyBody, o.gatewayEnv)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			e.skipped = "did not start: " + err.Error()
			logf("%s", e.skipped)
			continue
		}
		defer g.stop()
		e.baseURL, e.auth, e.pid, e.gw = "http://"+g.addr+"/v1", "Bearer "+g.key, g.pid(), g
		logf("%s on %s (%s)", v.Name, g.addr, v.Doc)
		if v.embedder != "" {
			st, err := g.adminCache(ctx)
			switch {
			case err != nil:
				e.skipped = "cannot check its embedder: " + err.Error()
			case !strings.HasPrefix(st.Embedder, v.embedder):
				e.skipped = fmt.Sprintf("its semantic cache runs embedder %q, not %s (-keep keeps its log, %s)", st.Embedder, v.embedder, g.log)
			}
			if e.skipped != "" {
				logf("%s skipped: %s", v.Name, e.skipped)
				g.stop()
			}
		}
		if v.probe != nil && e.skipped == "" {
			if err := v.probe(ctx, g); err != nil {
				e.skipped = "probe failed: " + err.Error()
				logf("%s skipped: %s", v.Name, e.skipped)
				g.stop()
			} else {
				logf("%s: probe passed", v.Name)
			}
		}
	}
	if o.prefill > 0 {
		for _, e := range entries {
			if e.gw == nil || e.skipped != "" {
				continue
			}
			l := &loader{t: e.target, src: newSource(), timeout: o.timeout}
			p, err := prefill(ctx, e.gw, l, o.prefill, o.prefillConns, 5*time.Second, logf)
			if err != nil {
				return nil, fmt.Errorf("prefill %s: %w", e.name, err)
			}
			sr.Prefill = append(sr.Prefill, p)
		}
	}

	// Phases never overlap and always run in the same order: direct once,
	// then floor and the gateways, alternating -repeat times so slow drifts
	// in the machine's load spread over all of them.
	measure := func(e *entry) error {
		if e.skipped != "" {
			return nil
		}
		logf("measuring %s", e.name)
		s, err := measureTarget(ctx, o, e.target, newSource(), up.pid())
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
		if e.gw != nil && e.skipped == "" {
			tr.RSSEndMB, tr.PeakRSSMB = rssMB(e.gw.pid())
			if st, err := e.gw.adminCache(ctx); err == nil {
				tr.CacheEnd = st
			} else if err != errCacheOff {
				logf("%s: %v", e.name, err)
			}
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
func measureTarget(ctx context.Context, o *options, t target, src source, upstreamPID int) (summary, error) {
	l := &loader{t: t, src: src, timeout: o.timeout}
	pids := map[string]int{"upstream": upstreamPID, "harness": os.Getpid()}
	if t.pid != 0 {
		pids["target"] = t.pid
	}
	var s summary
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
		s.Cache = addCounts(s.Cache, out.cache)
		return newPhaseResult(kind, out, elapsed, cpu), nil
	}
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

// defaultModelDir is where the USE-lite weights are kept between runs: the
// directory the use package's tests fetch them into ($TOLLGATE_TEST_CACHE,
// else <user cache dir>/tollgate-test), so one download serves both.
func defaultModelDir() string {
	if d := os.Getenv("TOLLGATE_TEST_CACHE"); d != "" {
		return d
	}
	d, err := os.UserCacheDir()
	if err != nil {
		d = os.TempDir()
	}
	return filepath.Join(d, "tollgate-test")
}

func randomSeed() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:]) | 1
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
