package metrics

import (
	"maps"
	"testing"

	"github.com/tollgate/tollgate/pkg/semcache"
)

// TestSemanticRefusals: the refusals counted by Request read back by rule.
func TestSemanticRefusals(t *testing.T) {
	tests := []struct {
		name    string
		reasons []string
		want    map[string]int64
	}{
		{"none yet", nil, map[string]int64{}},
		{"by rule", []string{"guard: negation: not", "guard: numbers: 4 vs 5", "guard: negation: never", "judge: not the same request"},
			map[string]int64{"negation": 2, "numbers": 1, "judge": 1}},
		{"misses that are no refusal are not counted", []string{"below the similarity threshold", "judge: no verdict"}, map[string]int64{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := New()
			for _, r := range tt.reasons {
				m.Request(Exchange{Route: "/v1/chat/completions", Status: 200, Model: "sim-small", Provider: "sim", Cache: semcache.KindMiss, CacheReason: r})
			}
			if got := m.SemanticRefusals(); !maps.Equal(got, tt.want) {
				t.Fatalf("SemanticRefusals() = %v, want %v", got, tt.want)
			}
		})
	}
}
