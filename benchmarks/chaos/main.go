// Command chaos is tollgate's chaos suite. Each probe starts the gateway
// (./cmd/server built from this tree) as a child process with its own
// config and data directory, points it at a hostile upstream running in
// this process, drives it with hostile clients from this process, and holds
// what it measures to the target the Hardening issue set: the gateway's
// peak RSS, handlers still held, spend against a budget limit, ledger rows
// lost, how and when a hostile stream or client is cut off.
//
//	go run ./benchmarks/chaos                  # the full form, a few minutes
//	go run ./benchmarks/chaos -short           # scaled down, under 2 minutes
//	go run ./benchmarks/chaos -probe giant-line,drip-body -json
//
// It prints one table (probe, figure, target, PASS/FAIL) and exits 1 if a
// probe failed. Everything listens on 127.0.0.1, every loop and wait is
// bounded, each probe has a deadline, and the gateways die with the suite.
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
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "chaos:", err)
		stop()
		os.Exit(1)
	}
}

// errFailed says that at least one probe failed; the table says which.
var errFailed = errors.New("probes failed")

// run is the whole command; tests call it.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	short := fs.Bool("short", false, "run every probe scaled down (CI's form, under 2 minutes)")
	only := fs.String("probe", "", "comma-separated probes to run (default all): "+strings.Join(probeNames(), ", "))
	asJSON := fs.Bool("json", false, "print the report as JSON instead of a table")
	keep := fs.Bool("keep", false, "keep the working directory (configs, gateway logs, data directories) and print where it is")
	bin := fs.String("gateway-bin", "", "a gateway binary to use instead of building ./cmd/server")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	selected, err := selectProbes(*only)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "tollgate-chaos-")
	if err != nil {
		return err
	}
	if *keep {
		fmt.Fprintln(stderr, "chaos: working directory", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	if *bin == "" {
		fmt.Fprintln(stderr, "chaos: building ./cmd/server")
		if *bin, err = buildGateway(ctx, dir); err != nil {
			return err
		}
	} else if *bin, err = filepath.Abs(*bin); err != nil {
		return err
	}
	e := &env{bin: *bin, dir: dir, sc: fullScale}
	if *short {
		e.sc = shortScale
	}
	rep := &report{Short: *short, Started: time.Now()}
	for _, p := range selected {
		if ctx.Err() != nil {
			break
		}
		fmt.Fprintf(stderr, "chaos: %-20s ", p.name)
		r := runProbe(ctx, e, p)
		verdict := "PASS"
		if !r.Pass {
			verdict = "FAIL"
		}
		fmt.Fprintf(stderr, "%s (%.1fs)\n", verdict, r.Seconds)
		rep.Results = append(rep.Results, r)
	}
	rep.Seconds = time.Since(rep.Started).Seconds()
	if *asJSON {
		if err := writeJSON(stdout, rep); err != nil {
			return err
		}
	} else {
		printTable(stdout, rep)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if failed := rep.failed(); len(failed) > 0 {
		return fmt.Errorf("%w: %s", errFailed, strings.Join(failed, ", "))
	}
	return nil
}

func probeNames() []string {
	names := make([]string, len(probes))
	for i, p := range probes {
		names[i] = p.name
	}
	return names
}

func selectProbes(list string) ([]probe, error) {
	if list == "" {
		return probes, nil
	}
	var out []probe
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		i := slices.IndexFunc(probes, func(p probe) bool { return p.name == name })
		if i < 0 {
			return nil, fmt.Errorf("unknown probe %q (have %s)", name, strings.Join(probeNames(), ", "))
		}
		out = append(out, probes[i])
	}
	return out, nil
}

// runProbe runs one probe under its deadline; a panic or an error of the
// suite becomes the probe's error, and the run goes on.
func runProbe(ctx context.Context, e *env, p probe) (r result) {
	r = result{Probe: p.name, Doc: p.doc}
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, e.sc.probeTimeout)
	defer cancel()
	defer func() {
		if v := recover(); v != nil {
			r.Error = fmt.Sprintf("panic: %v", v)
		}
		r.Seconds = time.Since(start).Seconds()
		r.Pass = r.passed()
	}()
	if err := p.run(ctx, e, &r); err != nil {
		r.Error = err.Error()
	}
	return r
}
