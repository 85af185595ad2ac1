package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestResultPassed(t *testing.T) {
	ok := func(r *result) { r.check(true, "t", "f") }
	bad := func(r *result) { r.check(false, "t", "f") }
	fig := func(r *result) { r.figure("f") }
	for _, tc := range []struct {
		name  string
		steps []func(*result)
		err   string
		want  bool
	}{
		{"every target met", []func(*result){ok, fig, ok}, "", true},
		{"one target missed", []func(*result){ok, bad}, "", false},
		{"figures only: nothing held", []func(*result){fig}, "", false},
		{"nothing at all", nil, "", false},
		{"an error", []func(*result){ok}, "gateway: exited", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &result{Error: tc.err}
			for _, s := range tc.steps {
				s(r)
			}
			if got := r.passed(); got != tc.want {
				t.Fatalf("passed %v, want %v", got, tc.want)
			}
		})
	}
}

func sampleReport() *report {
	a := result{Probe: "endless-stream"}
	a.check(true, "RSS peak < 300.0 MB", "RSS peak %s", mb(41_200_000))
	a.figure("the upstream wrote %s", mb(8_400_000))
	a.Pass = a.passed()
	b := result{Probe: "giant-line"}
	b.check(false, "a 502 or an error event", "cut without [DONE]\n after 0.2s")
	b.note("max_event_bytes: not a config key of this build")
	b.Pass = b.passed()
	c := result{Probe: "drip-body", Error: "gateway: exited during start-up"}
	return &report{Short: true, Started: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Seconds: 12, Results: []result{a, b, c}}
}

func TestPrintTable(t *testing.T) {
	var buf bytes.Buffer
	printTable(&buf, sampleReport())
	out := buf.String()
	for _, want := range []string{
		"chaos suite (short form), 2026-01-02 03:04:05, 12s",
		"PROBE", "FIGURE", "TARGET", "RESULT",
		"RSS peak 41.2 MB", "PASS",
		"cut without [DONE] after 0.2s", // one line, whatever the figure held
		"error: gateway: exited during start-up",
		"giant-line: max_event_bytes: not a config key of this build",
		"1 of 3 probes passed; failed: giant-line, drip-body",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
	lines := strings.Split(out, "\n")
	for _, l := range lines {
		if strings.HasPrefix(l, "endless-stream") && !strings.HasSuffix(strings.TrimSpace(l), "PASS") {
			t.Errorf("the probe's first row is not its PASS row: %q", l)
		}
		if strings.Contains(l, "the upstream wrote") && !strings.HasSuffix(strings.TrimSpace(l), "-") {
			t.Errorf("a figure without a target must not pass or fail: %q", l)
		}
	}
}

func TestReportJSON(t *testing.T) {
	rep := sampleReport()
	var buf bytes.Buffer
	if err := writeJSON(&buf, rep); err != nil {
		t.Fatal(err)
	}
	var back report
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Results) != 3 || back.Results[0].Checks[1].Pass != nil || *back.Results[1].Checks[0].Pass {
		t.Fatalf("round trip: %+v", back)
	}
	if got := back.failed(); strings.Join(got, ",") != "giant-line,drip-body" {
		t.Fatalf("failed %v", got)
	}
}

func TestUnits(t *testing.T) {
	for _, tc := range []struct {
		got, want string
	}{
		{size(8 << 20), "8 MiB"},
		{size(16 << 10), "16 KiB"},
		{size(40_000_000), "40.0 MB"},
		{mb(300e6), "300.0 MB"},
		{usd(200_020), "$0.200020"},
		{secs(1500 * time.Millisecond), "1.50s"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}
