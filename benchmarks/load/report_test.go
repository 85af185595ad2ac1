package main

import (
	"strings"
	"testing"
)

func TestMedianSummary(t *testing.T) {
	run := func(rps, p50, cpu float64, errs uint64) summary {
		return summary{MaxRPS: rps, SeqP50us: p50, CPUus: cpu, Errors: errs,
			Open: []phaseResult{{Kind: "open", Rate: 100, RPS: rps / 10, P99us: p50 * 2, Errors: errs, CPUus: map[string]float64{"target": cpu}}}}
	}
	tests := []struct {
		name    string
		runs    []summary
		rps     float64
		p50     float64
		errors  uint64
		openP99 float64
	}{
		{"one run as is", []summary{run(1000, 300, 100, 2)}, 1000, 300, 2, 600},
		// One disturbed run (a neighbour's compile) must not move the median.
		{"odd: middle value", []summary{run(1000, 300, 100, 0), run(200, 900, 400, 1), run(1100, 310, 90, 0)}, 1000, 310, 1, 620},
		{"even: mean of the middle two", []summary{run(1000, 300, 100, 0), run(1200, 400, 100, 0)}, 1100, 350, 0, 700},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := medianSummary(tt.runs)
			if m.MaxRPS != tt.rps || m.SeqP50us != tt.p50 || m.Errors != tt.errors || len(m.Open) != 1 || m.Open[0].P99us != tt.openP99 || m.Open[0].Errors != tt.errors {
				t.Fatalf("got rps %v p50 %v errors %d open %+v", m.MaxRPS, m.SeqP50us, m.Errors, m.Open)
			}
		})
	}
}

func TestCompareAndChecks(t *testing.T) {
	s := &scenarioReport{Name: "proxy", Targets: []targetReport{
		{Name: "direct", Runs: []summary{{}}, Median: summary{MaxRPS: 10000, SeqP50us: 200, SeqP99us: 400}},
		{Name: "floor", Runs: []summary{{}}, Median: summary{MaxRPS: 5000, SeqP50us: 450, SeqP99us: 900, CPUus: 100}},
		{Name: "gateway", Runs: []summary{{}}, Median: summary{MaxRPS: 4500, SeqP50us: 600, SeqP99us: 1000, CPUus: 150}},
		{Name: "gateway-log", Skipped: "gateway unavailable: no cmd/server"},
	}}
	s.compare()
	g := s.target("gateway").Compare
	if *g.AddedP50us != 400 || *g.AddedP99us != 600 || *g.AddedP50OverFloorus != 150 || *g.MaxRPSxFloor != 0.9 || *g.CPUxFloor != 1.5 {
		t.Fatalf("gateway comparison %+v", *g)
	}
	if f := s.target("floor").Compare; f.AddedP50OverFloorus != nil || f.CPUxFloor != nil || *f.MaxRPSxFloor != 1 {
		t.Fatalf("floor compared with itself: %+v", *f)
	}
	if s.target("direct").Compare != nil || s.target("gateway-log").Compare != nil {
		t.Fatal("direct and skipped targets have no comparison")
	}
	s.runChecks([]check{throughputAtLeast("gateway", 0.8), addedP50AtMost("gateway", 100e3), throughputAtLeast("gateway-log", 0.8)})
	want := []string{"pass", "fail", "skipped"}
	for i, c := range s.Checks {
		if c.Result != want[i] {
			t.Errorf("check %q = %s (%s), want %s", c.Name, c.Result, c.Detail, want[i])
		}
	}
	var b strings.Builder
	printScenario(&b, s)
	for _, want := range []string{"0.90x", "+150 µs", "gateway-log skipped", "FAIL"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}
