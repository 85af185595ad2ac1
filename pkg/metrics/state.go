package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate/tollgate/pkg/llm"
)

// This file holds the families read at scrape time from state other
// packages keep: cmd/server passes functions that read it.

// Budget is one limited period of a key's budget.
type Budget struct {
	KeyID  string // the key's id, never its secret
	Period string
	Limit  llm.Micros
	Spent  llm.Micros
	// Remaining is Limit - Spent - Reserved, never negative.
	Remaining llm.Micros
}

// Budgets exposes every limited budget, read at each scrape:
// tollgate_budget_{limit,spent,remaining}_micros{key_id,period}. Keys
// without limits are not listed, so the label set is bounded by the keys
// an admin gave a budget.
func (m *Metrics) Budgets(read func() []Budget) {
	labels := []string{"key_id", "period"}
	limit := prometheus.NewDesc(namespace+"_budget_limit_micros", "A key's budget for a period, in micro-dollars.", labels, nil)
	spent := prometheus.NewDesc(namespace+"_budget_spent_micros", "What a key spent in the current period, in micro-dollars.", labels, nil)
	remaining := prometheus.NewDesc(namespace+"_budget_remaining_micros", "What a key has left in the current period (reservations held out), in micro-dollars.", labels, nil)
	m.reg.MustRegister(&scraped{descs: []*prometheus.Desc{limit, spent, remaining}, collect: func(ch chan<- prometheus.Metric) {
		for _, b := range read() {
			ch <- prometheus.MustNewConstMetric(limit, prometheus.GaugeValue, float64(b.Limit), b.KeyID, b.Period)
			ch <- prometheus.MustNewConstMetric(spent, prometheus.GaugeValue, float64(b.Spent), b.KeyID, b.Period)
			ch <- prometheus.MustNewConstMetric(remaining, prometheus.GaugeValue, float64(b.Remaining), b.KeyID, b.Period)
		}
	}})
}

// CacheSize is the response cache's size.
type CacheSize struct {
	Entries     int
	Bytes       int64
	IndexPoints int // vectors in the semantic index
}

// Cache exposes the response cache's size, read once per scrape:
// tollgate_cache_entries, tollgate_cache_bytes, tollgate_cache_index_points.
func (m *Metrics) Cache(read func() CacheSize) {
	entries := prometheus.NewDesc(namespace+"_cache_entries", "Live entries in the response cache.", nil, nil)
	size := prometheus.NewDesc(namespace+"_cache_bytes", "Size of the live entries in the response cache.", nil, nil)
	points := prometheus.NewDesc(namespace+"_cache_index_points", "Vectors in the semantic cache's index.", nil, nil)
	m.reg.MustRegister(&scraped{descs: []*prometheus.Desc{entries, size, points}, collect: func(ch chan<- prometheus.Metric) {
		c := read()
		ch <- prometheus.MustNewConstMetric(entries, prometheus.GaugeValue, float64(c.Entries))
		ch <- prometheus.MustNewConstMetric(size, prometheus.GaugeValue, float64(c.Bytes))
		ch <- prometheus.MustNewConstMetric(points, prometheus.GaugeValue, float64(c.IndexPoints))
	}})
}

// scraped is a collector whose metrics are made at each scrape.
type scraped struct {
	descs   []*prometheus.Desc
	collect func(ch chan<- prometheus.Metric)
}

func (s *scraped) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range s.descs {
		ch <- d
	}
}

func (s *scraped) Collect(ch chan<- prometheus.Metric) { s.collect(ch) }
