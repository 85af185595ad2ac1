package metrics

import (
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestGuardMetrics: the guard matches and refusals of answered requests,
// read back from the exposition by their labels.
func TestGuardMetrics(t *testing.T) {
	const route = "/v1/chat/completions"
	tests := []struct {
		name      string
		exchanges []Exchange
		matches   map[string]float64 // guard/direction/action → count
		blocks    map[string]float64 // guard/direction → count
	}{
		{"no guard matched: no series", []Exchange{{Route: route, Status: 200, Model: "sim-small", Provider: "sim"}}, map[string]float64{}, map[string]float64{}},
		{"masked and logged, in both directions, summed over requests",
			[]Exchange{
				{Route: route, Status: 200, Model: "sim-small", Provider: "sim", Guards: []GuardHit{
					{Guard: "pii", Direction: DirRequest, Action: "mask", Count: 2}, {Guard: "pii", Direction: DirAnswer, Action: "mask", Count: 1},
					{Guard: "secrets", Direction: DirRequest, Action: "log", Count: 1}}},
				{Route: route, Status: 200, Model: "sim-small", Provider: "sim", Guards: []GuardHit{{Guard: "pii", Direction: DirRequest, Action: "mask", Count: 3}}},
			},
			map[string]float64{"pii/request/mask": 5, "pii/answer/mask": 1, "secrets/request/log": 1}, map[string]float64{}},
		{"a blocked request: never served, refused in the request",
			[]Exchange{{Route: route, Status: 400, Blocked: "secrets", Guards: []GuardHit{
				{Guard: "pii", Direction: DirRequest, Action: "mask", Count: 1}, {Guard: "secrets", Direction: DirRequest, Action: "block", Count: 2}}}},
			map[string]float64{"pii/request/mask": 1, "secrets/request/block": 2}, map[string]float64{"secrets/request": 1}},
		{"a blocked answer: the block's own direction",
			[]Exchange{{Route: route, Status: 400, Model: "sim-small", Provider: "sim", Blocked: "cards", Guards: []GuardHit{
				{Guard: "cards", Direction: DirRequest, Action: "log", Count: 1}, {Guard: "cards", Direction: DirAnswer, Action: "block", Count: 1}}}},
			map[string]float64{"cards/request/log": 1, "cards/answer/block": 1}, map[string]float64{"cards/answer": 1}},
		{"a guard that failed (no match) before any model: the request",
			[]Exchange{{Route: route, Status: 400, Blocked: "custom"}}, map[string]float64{}, map[string]float64{"custom/request": 1}},
		{"a guard that failed on an answer a model served: the answer",
			[]Exchange{{Route: route, Status: 400, Model: "sim-small", Provider: "sim", Blocked: "custom"}}, map[string]float64{}, map[string]float64{"custom/answer": 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := New()
			for _, e := range tt.exchanges {
				m.Request(e)
			}
			text := exposition(t, m)
			if got := samples(t, text, "tollgate_guard_matches_total", "guard", "direction", "action"); !maps.Equal(got, tt.matches) {
				t.Errorf("tollgate_guard_matches_total = %v, want %v", got, tt.matches)
			}
			if got := samples(t, text, "tollgate_guard_blocks_total", "guard", "direction"); !maps.Equal(got, tt.blocks) {
				t.Errorf("tollgate_guard_blocks_total = %v, want %v", got, tt.blocks)
			}
		})
	}
}

// exposition is what GET /metrics serves.
func exposition(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("/metrics: %d", rec.Code)
	}
	return rec.Body.String()
}

// samples parses the exposition with Prometheus's own parser and returns
// a counter family's values keyed by the named labels joined with "/".
func samples(t *testing.T, text, family string, labels ...string) map[string]float64 {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mm := range fams[family].GetMetric() {
		byName := map[string]string{}
		for _, l := range mm.GetLabel() {
			byName[l.GetName()] = l.GetValue()
		}
		key := make([]string, len(labels))
		for i, l := range labels {
			key[i] = byName[l]
		}
		out[strings.Join(key, "/")] += mm.GetCounter().GetValue()
	}
	return out
}
