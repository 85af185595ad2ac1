package metrics

import (
	"time"

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

// LedgerLag is how far the ledger's write-behind trails (budget.Lag).
type LedgerLag struct {
	Rows   int
	Oldest time.Duration
}

// Ledger exposes the ledger's lag, read at each scrape:
// tollgate_ledger_queued_rows and tollgate_ledger_oldest_queued_seconds.
func (m *Metrics) Ledger(read func() LedgerLag) {
	rows := prometheus.NewDesc(namespace+"_ledger_queued_rows", "Ledger rows handed to the store and not yet in its tables (waiting for the writer's commit, or journaled and waiting to be applied).", nil, nil)
	oldest := prometheus.NewDesc(namespace+"_ledger_oldest_queued_seconds", "How long the oldest ledger row not yet in the store's tables has waited; 0 when none waits.", nil, nil)
	m.reg.MustRegister(&scraped{descs: []*prometheus.Desc{rows, oldest}, collect: func(ch chan<- prometheus.Metric) {
		l := read()
		ch <- prometheus.MustNewConstMetric(rows, prometheus.GaugeValue, float64(l.Rows))
		ch <- prometheus.MustNewConstMetric(oldest, prometheus.GaugeValue, l.Oldest.Seconds())
	}})
}

// Outbox is the alert outbox's state.
type Outbox struct {
	// Pending is the deliveries waiting (due or retrying later); ok is
	// false when it could not be read, and then it is not exposed.
	Pending int
	ok      bool
	// Abandoned is the deliveries this process gave up on since it
	// started.
	Abandoned int64
}

// PendingOutbox is an Outbox whose pending count was read.
func PendingOutbox(pending int, abandoned int64) Outbox {
	return Outbox{Pending: pending, ok: true, Abandoned: abandoned}
}

// Alerts exposes the alert outbox, read at each scrape (the caller bounds
// how often it asks the database): tollgate_alert_outbox_pending and
// tollgate_alert_deliveries_abandoned_total.
func (m *Metrics) Alerts(read func() Outbox) {
	pending := prometheus.NewDesc(namespace+"_alert_outbox_pending", "Alert deliveries waiting in the outbox, due or retrying later (every replica's on PostgreSQL). Absent when the store could not be read.", nil, nil)
	abandoned := prometheus.NewDesc(namespace+"_alert_deliveries_abandoned_total", "Alert deliveries this process gave up on after their last attempt.", nil, nil)
	m.reg.MustRegister(&scraped{descs: []*prometheus.Desc{pending, abandoned}, collect: func(ch chan<- prometheus.Metric) {
		o := read()
		if o.ok {
			ch <- prometheus.MustNewConstMetric(pending, prometheus.GaugeValue, float64(o.Pending))
		}
		ch <- prometheus.MustNewConstMetric(abandoned, prometheus.CounterValue, float64(o.Abandoned))
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
