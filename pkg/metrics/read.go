package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// SemanticRefusals is tollgate_cache_semantic_refusals_total as a map, rule
// to count since the start, for the admin API (GET /admin/overview). It
// reads the one counter family, not the whole registry.
func (m *Metrics) SemanticRefusals() map[string]int64 {
	ch := make(chan prometheus.Metric)
	go func() {
		m.semRefusals.Collect(ch)
		close(ch)
	}()
	out := map[string]int64{}
	for c := range ch {
		var d dto.Metric
		if c.Write(&d) != nil || d.Counter == nil {
			continue
		}
		for _, l := range d.Label {
			if l.GetName() == "rule" {
				out[l.GetValue()] += int64(d.Counter.GetValue())
			}
		}
	}
	return out
}
