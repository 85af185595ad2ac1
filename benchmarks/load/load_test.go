package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tollgate/tollgate/pkg/config"
)

// TestMain lets the test binary play the harness's children: startChild
// re-executes os.Executable(), which under go test is this binary.
func TestMain(m *testing.M) {
	if childRole() {
		ctx, stop := signalContext()
		defer stop()
		if err := runRole(ctx, os.Args[1:], os.Stdout); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestHarnessEndToEnd runs the whole harness briefly, for the proxy
// scenario, the short miss scenario with a small prefill and the proxy
// with guards (whose gateway must pass its probe: guards masking and
// restoring the mix's values). It checks that
// every target was measured without errors, not how fast anything is:
// timings on a shared machine are no test. Gateway targets are allowed to be
// skipped only while ./cmd/server does not build, and the cached one of the
// miss scenario also when the USE-lite weights cannot be had (its gateway
// then runs another embedder, which the harness refuses to measure).
func TestHarnessEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes and builds the gateway")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var out, progress bytes.Buffer
	const prefillN = 20
	args := []string{"-duration", "300ms", "-warmup", "100ms", "-conns", "4", "-rates", "200", "-stream-fraction", "0.3",
		"-scenario", "proxy,miss-short,proxy-guards", "-prefill", strconv.Itoa(prefillN), "-prefill-conns", "4", "-json"}
	if err := run(ctx, args, &out, &progress); err != nil {
		t.Fatalf("run: %v\n%s", err, progress.String())
	}
	t.Logf("progress:\n%s", progress.String())
	var r report
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("bad JSON: %v\n%s", err, out.String())
	}
	if len(r.Scenarios) != 3 || r.Scenarios[0].Name != "proxy" || r.Scenarios[1].Name != "miss-short" || r.Scenarios[2].Name != "proxy-guards" {
		t.Fatalf("scenarios: %+v", r.Scenarios)
	}
	wantTargets := map[string][]string{
		"proxy":        {"direct", "floor", "gateway", "gateway-log"},
		"miss-short":   {"direct", "floor", "gateway", "gateway-cache"},
		"proxy-guards": {"direct", "floor", "gateway", "gateway-guards"},
	}
	for _, s := range r.Scenarios {
		t.Run(s.Name, func(t *testing.T) {
			checkScenario(t, &s, wantTargets[s.Name])
		})
	}
	miss := r.Scenarios[1]
	if miss.Prompts == nil || miss.Prompts.Mean <= 0 {
		t.Errorf("miss-short: no prompt sizes: %+v", miss.Prompts)
	}
	if g := miss.target("gateway-cache"); g != nil && g.Skipped == "" {
		var p *prefillRun
		for i := range miss.Prefill {
			if miss.Prefill[i].Target == "gateway-cache" {
				p = &miss.Prefill[i]
			}
		}
		// Every prefill request is answered; each is a stored miss, or a
		// semantic hit (which stores nothing), and the prefill goes on
		// until it has stored what was asked for.
		switch {
		case p == nil:
			t.Errorf("gateway-cache was not prefilled: %+v", miss.Prefill)
		case p.Stored < prefillN || p.Errors != 0 || p.OK < uint64(p.Stored):
			t.Errorf("prefill: %d ok, %d stored, %d errors (%s), want %d stored", p.OK, p.Stored, p.Errors, p.ErrorSample, prefillN)
		case uint64(p.EntriesAfter-p.EntriesBefore) != p.Cache["miss"]:
			t.Errorf("prefill: entries %d -> %d after %d misses", p.EntriesBefore, p.EntriesAfter, p.Cache["miss"])
		}
		if g.Median.Cache["miss"] == 0 || g.CacheEnd == nil || g.CacheEnd.Entries <= p.EntriesAfter {
			t.Errorf("gateway-cache: no misses stored while measured: %+v, at the end %+v", g.Median.Cache, g.CacheEnd)
		}
	}
	// The table renders from the same report without panicking.
	var table bytes.Buffer
	printReport(&table, &r)
	if !strings.Contains(table.String(), "floor") || !strings.Contains(table.String(), "prefill gateway-cache") && miss.target("gateway-cache").Skipped == "" {
		t.Errorf("table:\n%s", table.String())
	}
}

func checkScenario(t *testing.T, s *scenarioReport, want []string) {
	names := map[string]bool{}
	for _, tr := range s.Targets {
		names[tr.Name] = true
		if tr.Skipped != "" {
			if strings.Contains(tr.Skipped, errGatewayUnavailable.Error()) ||
				tr.Name == "gateway-cache" && strings.Contains(tr.Skipped, "embedder") {
				t.Logf("%s skipped: %s", tr.Name, tr.Skipped)
				continue
			}
			t.Errorf("%s skipped: %s", tr.Name, tr.Skipped)
			continue
		}
		m := tr.Median
		if m.MaxRPS <= 0 || m.SeqP50us <= 0 || m.SeqP99us < m.SeqP50us || len(m.Open) != 1 || m.Open[0].RPS <= 0 {
			t.Errorf("%s: implausible figures %+v", tr.Name, m)
		}
		if m.Errors != 0 {
			t.Errorf("%s: %d errors", tr.Name, m.Errors)
			for _, p := range allPhases(tr.Runs[0]) {
				if p.Errors > 0 {
					t.Logf("%s %s: %s; %s", tr.Name, phaseName(p), p.ErrorKinds, p.ErrorSample)
				}
			}
		}
		if tr.Name != "direct" && (tr.Compare == nil || tr.Compare.MaxRPSxFloor == nil || tr.Compare.AddedP50us == nil) {
			t.Errorf("%s: no comparison with direct and the floor: %+v", tr.Name, tr.Compare)
		}
		if tr.Name != "direct" && m.CPUus <= 0 {
			// 300ms phases can round to zero clock ticks on an idle
			// process; only a proxy doing work at all must show some.
			t.Logf("%s: no CPU ticks measured in a 300ms phase", tr.Name)
		}
	}
	for _, w := range want {
		if !names[w] {
			t.Errorf("target %s missing", w)
		}
	}
}

// TestScenarioConfigsParse: every variant of every scenario generates a
// config the gateway accepts, without starting anything.
func TestScenarioConfigsParse(t *testing.T) {
	for _, sc := range scenarios {
		for _, v := range sc.variants {
			t.Run(sc.name+"/"+v.Name, func(t *testing.T) {
				c := variantConfig(t, v)
				if wantCache := strings.HasSuffix(v.Name, "-cache"); c.Cache.Enabled != wantCache {
					t.Fatalf("cache enabled %v: only -cache variants measure the cache", c.Cache.Enabled)
				}
				if wantGuards := strings.HasSuffix(v.Name, "-guards"); (len(c.Guardrails.Guards) > 0) != wantGuards || (v.probe != nil) != wantGuards {
					t.Fatalf("%d guards, probe %v: only -guards variants run guards, and check them first", len(c.Guardrails.Guards), v.probe != nil)
				}
				if v.embedder == "" {
					return
				}
				// A variant that checks its embedder measures the shipped
				// defaults: everything but the weights' directory.
				d := config.Default(func(string) string { return "" }).Cache
				d.Semantic.ModelDir = "/models"
				if !reflect.DeepEqual(c.Cache, d) {
					t.Fatalf("cache config %+v, want the shipped defaults %+v", c.Cache, d)
				}
			})
		}
	}
}

// variantConfig is the config a variant generates, as pkg/config parses
// and validates it (the semantic cache's weights in /models).
func variantConfig(t *testing.T, v variant) *config.Config {
	t.Helper()
	cfg := gatewayConfig("127.0.0.1:1", "/models")
	v.tweak(cfg)
	y, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c, err := config.Parse(bytes.NewReader(y), func(string) string { return "" })
	if err != nil {
		t.Fatalf("%v\n%s", err, y)
	}
	return c
}
