// Command cachequality measures how well the semantic cache serves: it
// replays labelled prompt pairs and a request workload (the formats of
// ../shared/data/semcache-dev/) through the real gateway (./cmd/server as a
// child process) against an in-process upstream whose answer encodes the
// prompt it received, so every hit can be judged right or wrong. It prints
// per-category tables, precision and the share of hits that were wrong,
// hits against the exact-match baseline and the oracle, the money correct
// hits saved, and optionally a sweep of one config key.
//
//	go run ./benchmarks/cachequality
//	go run ./benchmarks/cachequality -sweep 0.6,0.7,0.8,0.9
//	go run ./benchmarks/cachequality -mode pairs -set cache.semantic.threshold=0.85 -v
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "cachequality:", err)
		}
		os.Exit(1)
	}
}

// options are the parsed flags.
type options struct {
	pairsPath, workloadPath, siblingsPath string
	modes                                 []string
	orders                                []string
	sweepKey                              string
	sweep                                 []string
	sets                                  []override
	gatewayBin, modelDir                  string
	keep, json, verbose                   bool
	concurrency, completionTokens         int
	prices                                prices
}

const (
	modePairs    = "pairs"
	modeWorkload = "workload"
)

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("cachequality", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.pairsPath, "pairs", "", "pairs TSV (label, category, a, b) (default ../shared/data/semcache-dev/pairs.tsv from the repository root)")
	fs.StringVar(&o.workloadPath, "workload", "", "workload TSV (seq, intent, [variant,] prompt) (default ../shared/data/semcache-dev/workload.tsv)")
	fs.StringVar(&o.siblingsPath, "siblings", "", "sibling groups TSV (group, intent), optional (default siblings.tsv next to the workload, if present)")
	mode := fs.String("mode", "pairs,workload", "what to run: pairs, workload or both, comma-separated")
	orders := fs.String("orders", "ab,ba", "pair orders to send: ab (a cached, b asked), ba, or both")
	fs.StringVar(&o.sweepKey, "sweep-key", "cache.semantic.threshold", "the config key -sweep varies")
	sweep := fs.String("sweep", "", "comma-separated values of -sweep-key: one gateway run per value (e.g. 0.6,0.7,0.8,0.9)")
	fs.Func("set", "a config override key=value (YAML value), e.g. cache.semantic.threshold=0.85; repeatable, applied in order", func(s string) error {
		ov, err := parseOverride(s)
		if err == nil {
			o.sets = append(o.sets, ov)
		}
		return err
	})
	fs.StringVar(&o.gatewayBin, "gateway-bin", "", "a prebuilt gateway binary (default: build ./cmd/server)")
	fs.StringVar(&o.modelDir, "model-dir", "", "where the embedder's weights are kept and fetched to on first use (default $TOLLGATE_MODEL_DIR, else $TOLLGATE_TEST_CACHE, else <user cache dir>/tollgate-test, shared with the test suite)")
	fs.BoolVar(&o.keep, "keep", false, "keep the working directory (configs, gateway logs, data)")
	fs.BoolVar(&o.json, "json", false, "print the results as JSON instead of tables")
	fs.BoolVar(&o.verbose, "v", false, "also list refusal reasons per category, every wrong workload hit, and (-json) every pair trial")
	fs.IntVar(&o.concurrency, "concurrency", 2, "pair trials sent at once (each in its own scope)")
	fs.IntVar(&o.completionTokens, "completion-tokens", 200, "completion tokens the upstream reports per call")
	fs.Float64Var(&o.prices.input, "input-price", 2.50, "the model's input price, USD per million tokens")
	fs.Float64Var(&o.prices.output, "output-price", 10.00, "the model's output price, USD per million tokens")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	var err error
	if o.modes, err = list(*mode, "-mode", modePairs, modeWorkload); err != nil {
		return nil, err
	}
	if o.orders, err = list(*orders, "-orders", orderAB, orderBA); err != nil {
		return nil, err
	}
	if *sweep != "" {
		for _, v := range strings.Split(*sweep, ",") {
			if v = strings.TrimSpace(v); v == "" {
				return nil, fmt.Errorf("-sweep %q: an empty value", *sweep)
			}
			o.sweep = append(o.sweep, v)
		}
	}
	switch {
	case o.concurrency < 1:
		return nil, errors.New("-concurrency must be at least 1")
	case o.completionTokens < 1:
		return nil, errors.New("-completion-tokens must be at least 1")
	case o.prices.input < 0 || o.prices.output < 0:
		return nil, errors.New("prices must not be negative")
	}
	return o, nil
}

// list parses a comma-separated list of allowed names, without repeats,
// in the allowed order.
func list(s, flagName string, allowed ...string) ([]string, error) {
	var out []string
	for _, v := range strings.Split(s, ",") {
		v = strings.TrimSpace(v)
		if !slices.Contains(allowed, v) {
			return nil, fmt.Errorf("%s %q: want %s", flagName, s, strings.Join(allowed, " and/or "))
		}
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	slices.SortFunc(out, func(a, b string) int { return slices.Index(allowed, a) - slices.Index(allowed, b) })
	return out, nil
}

// inputs are the parsed files.
type inputs struct {
	pairs    []pair
	workload []request
	siblings map[string]string
}

// devSet is where the dev data lives, relative to the repository root.
var devSet = filepath.Join("..", "shared", "data", "semcache-dev")

// resolve fills in default paths and reads the files, before any gateway
// starts: a bad line is reported at once.
func (o *options) resolve(root string) (*inputs, error) {
	def := func(path *string, name, flagName string) error {
		if *path != "" {
			return nil
		}
		if root == "" {
			return fmt.Errorf("give %s FILE (the repository root, where the default is found, is unknown)", flagName)
		}
		p := filepath.Join(root, devSet, name)
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("no %s file: %s does not exist; give %s FILE", strings.TrimPrefix(flagName, "-"), p, flagName)
		}
		*path = p
		return nil
	}
	in := &inputs{}
	var err error
	if slices.Contains(o.modes, modePairs) {
		if err := def(&o.pairsPath, "pairs.tsv", "-pairs"); err != nil {
			return nil, err
		}
		if in.pairs, err = parseFile(o.pairsPath, parsePairs); err != nil {
			return nil, err
		}
	}
	if slices.Contains(o.modes, modeWorkload) {
		if err := def(&o.workloadPath, "workload.tsv", "-workload"); err != nil {
			return nil, err
		}
		if in.workload, err = parseFile(o.workloadPath, parseWorkload); err != nil {
			return nil, err
		}
		if o.siblingsPath == "" {
			if p := filepath.Join(filepath.Dir(o.workloadPath), "siblings.tsv"); fileExists(p) {
				o.siblingsPath = p
			}
		}
		if o.siblingsPath != "" {
			if in.siblings, err = parseFile(o.siblingsPath, parseSiblings); err != nil {
				return nil, err
			}
		}
	}
	return in, nil
}

// parseFile opens path and parses it with parse.
func parseFile[T any](path string, parse func(io.Reader, string) (T, error)) (T, error) {
	f, err := os.Open(path)
	if err != nil {
		var zero T
		return zero, err
	}
	defer f.Close()
	return parse(f, path)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// defaultModelDir is where the USE-lite weights are kept between runs:
// the test suite's directory, so a machine fetches them once.
func defaultModelDir(getenv func(string) string) string {
	for _, env := range []string{"TOLLGATE_MODEL_DIR", "TOLLGATE_TEST_CACHE"} {
		if d := getenv(env); d != "" {
			return d
		}
	}
	d, err := os.UserCacheDir()
	if err != nil {
		d = os.TempDir()
	}
	return filepath.Join(d, "tollgate-test")
}

// runResult is one gateway configuration's figures.
type runResult struct {
	// Value is the -sweep value ("" without a sweep); Overrides every
	// override applied, in order; Settings every cache.semantic setting
	// in force.
	Value     string             `json:"value,omitempty"`
	Overrides []string           `json:"overrides"`
	Settings  map[string]any     `json:"settings"`
	Embedder  string             `json:"embedder"`
	Pairs     *pairsScore        `json:"pairs,omitempty"`
	Trials    []trial            `json:"pair_trials,omitempty"`
	Workload  *workloadScore     `json:"workload,omitempty"`
	Ledger    *ledgerCheck       `json:"ledger,omitempty"`
	Seconds   map[string]float64 `json:"seconds"`
}

// ledgerCheck compares the workload's money, summed from response
// headers, with the gateway's ledger.
type ledgerCheck struct {
	Requests int    `json:"requests"`
	Cost     string `json:"cost_usd"`
	Saved    string `json:"saved_usd"`
	Agrees   bool   `json:"agrees"`
}

// report is everything -json prints.
type report struct {
	PairsFile     string      `json:"pairs_file,omitempty"`
	WorkloadFile  string      `json:"workload_file,omitempty"`
	SiblingsFile  string      `json:"siblings_file,omitempty"`
	Model         modelReport `json:"model"`
	SweepKey      string      `json:"sweep_key,omitempty"`
	Runs          []runResult `json:"runs"`
	UpstreamCalls int64       `json:"upstream_calls"`
}

type modelReport struct {
	InputUSDPerMTok  float64 `json:"input_usd_per_mtok"`
	OutputUSDPerMTok float64 `json:"output_usd_per_mtok"`
	CompletionTokens int     `json:"completion_tokens"`
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	wd, err := os.Getwd()
	if err != nil {
		return err
	}
	root, rootErr := moduleRoot(wd)
	if rootErr != nil && o.gatewayBin == "" {
		return rootErr
	}
	in, err := o.resolve(root)
	if err != nil {
		return err
	}
	if o.modelDir == "" {
		o.modelDir = defaultModelDir(os.Getenv)
	}
	logf := func(format string, a ...any) { fmt.Fprintf(stderr, format+"\n", a...) }

	up := newUpstream(o.completionTokens)
	defer up.close()
	// Every configuration is built and validated before the first gateway
	// starts: a bad -set or sweep value fails at once.
	values := o.sweep
	if len(values) == 0 {
		values = []string{""}
	}
	configs := make([]*gatewayConfig, len(values))
	overrides := make([][]override, len(values))
	for i, v := range values {
		ovs := slices.Clone(o.sets)
		if v != "" {
			ov, err := parseOverride(o.sweepKey + "=" + v)
			if err != nil {
				return fmt.Errorf("-sweep: %w", err)
			}
			ovs = append(ovs, ov)
		}
		if configs[i], err = buildConfig(baseConfig(up.url(), o.prices), ovs); err != nil {
			return err
		}
		overrides[i] = ovs
	}

	dir, err := os.MkdirTemp("", "cachequality-")
	if err != nil {
		return err
	}
	if o.keep {
		logf("working directory (kept): %s", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	bin := o.gatewayBin
	if bin == "" {
		logf("building ./cmd/server ...")
		if bin, err = buildGateway(ctx, root, dir); err != nil {
			return err
		}
	}

	rep := report{PairsFile: o.pairsPath, WorkloadFile: o.workloadPath, SiblingsFile: o.siblingsPath,
		Model: modelReport{o.prices.input, o.prices.output, o.completionTokens}}
	if len(o.sweep) > 0 {
		rep.SweepKey = o.sweepKey
	}
	for i, cfg := range configs {
		res := runResult{Value: values[i], Settings: cfg.semantic, Seconds: map[string]float64{}}
		for _, ov := range overrides[i] {
			res.Overrides = append(res.Overrides, ov.String())
		}
		label := fmt.Sprintf("run %d/%d", i+1, len(configs))
		if values[i] != "" {
			label += " " + o.sweepKey + "=" + values[i]
		}
		for _, mode := range o.modes {
			if err := runMode(ctx, o, in, bin, o.modelDir, filepath.Join(dir, fmt.Sprintf("run%d-%s", i+1, mode)), cfg, mode, up, &res, label, logf); err != nil {
				return err
			}
		}
		rep.Runs = append(rep.Runs, res)
	}
	rep.UpstreamCalls = up.calls.Load()
	if o.json {
		return writeJSON(stdout, &rep, o.verbose)
	}
	writeTables(stdout, &rep, in, o.verbose)
	return nil
}

// runMode runs one mode on a fresh gateway (its own data directory, so
// its cache starts empty) and adds the figures to res.
func runMode(ctx context.Context, o *options, in *inputs, bin, modelDir, dir string, cfg *gatewayConfig, mode string,
	up *upstream, res *runResult, label string, logf func(string, ...any)) error {
	g, err := startGateway(ctx, bin, dir, modelDir, cfg)
	if err != nil {
		return err
	}
	defer g.stop()
	res.Embedder = g.embedder
	start := time.Now()
	progress := func(name string) func(done, total int) {
		step := 0
		return func(done, total int) {
			if n := done * 4 / total; n > step {
				step = n
				logf("%s: %s %d/%d (%v)", label, name, done, total, time.Since(start).Round(time.Second))
			}
		}
	}
	switch mode {
	case modePairs:
		logf("%s: pairs: %d pairs x %d orders (embedder %s)", label, len(in.pairs), len(o.orders), g.embedder)
		trials, err := runPairs(ctx, g, in.pairs, o.orders, o.concurrency, progress("pair trials"))
		if err != nil {
			return err
		}
		s := scorePairs(in.pairs, o.orders, trials)
		res.Pairs = &s
		if o.verbose {
			res.Trials = trials
		}
	case modeWorkload:
		logf("%s: workload: %d requests (embedder %s)", label, len(in.workload), g.embedder)
		calls := up.calls.Load()
		outs, err := runWorkload(ctx, g, in.workload, progress("requests"))
		if err != nil {
			return err
		}
		s, err := scoreWorkload(in.workload, outs, in.siblings)
		if err != nil {
			return err
		}
		// Every request not served from the cache reaches the upstream;
		// more calls than that are the gateway's own (a judge's).
		misses := int64(s.Requests - s.Hits)
		got := up.calls.Load() - calls
		if got < misses {
			return fmt.Errorf("the upstream was called %d times for %d requests not served from the cache", got, misses)
		}
		s.OtherUpstreamCalls = int(got - misses)
		res.Workload = &s
		if lt, err := g.ledger(ctx, s.Requests); err != nil {
			logf("%s: the ledger could not be read: %v", label, err)
		} else {
			res.Ledger = checkLedger(lt, &s)
		}
	}
	res.Seconds[mode] = time.Since(start).Seconds()
	return nil
}
