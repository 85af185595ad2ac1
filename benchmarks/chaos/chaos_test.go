package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"testing"
	"time"
)

// chaosEnv turns the end-to-end suite on in go test (CI's .ci/run sets it).
const chaosEnv = "TOLLGATE_CHAOS"

// TestChaosShort runs the short form of the suite against this tree's
// gateway: it builds ./cmd/server, starts it once per probe and fails if a
// probe misses its target. It takes about a minute on 2 cores (plus the
// build), so it runs only when asked.
func TestChaosShort(t *testing.T) {
	if os.Getenv(chaosEnv) != "1" {
		t.Skip("the chaos suite starts gateways and hostile clients for about a minute: set " + chaosEnv + "=1 to run it (CI does)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	var out, progress bytes.Buffer
	err := run(ctx, []string{"-short", "-json"}, &out, &progress)
	t.Logf("progress:\n%s", progress.String())
	var rep report
	if jerr := json.Unmarshal(out.Bytes(), &rep); jerr != nil {
		t.Fatalf("run: %v; no report: %v\n%s", err, jerr, out.String())
	}
	var table bytes.Buffer
	printTable(&table, &rep)
	t.Logf("\n%s", table.String())
	if len(rep.Results) != len(probes) {
		t.Errorf("%d probes reported, want %d", len(rep.Results), len(probes))
	}
	if err != nil {
		t.Fatalf("run: %v", err)
	}
}
