package main

import (
	"github.com/tollgate/tollgate/pkg/budget"
	"github.com/tollgate/tollgate/pkg/keys"
	"github.com/tollgate/tollgate/pkg/metrics"
	"github.com/tollgate/tollgate/pkg/semcache"
)

// scrapeState gives the metrics the state other packages already keep,
// read at each scrape: the log lines dropped, every limited budget of a
// live key, the response cache's size (cache may be nil).
func scrapeState(mx *metrics.Metrics, sink *logSink, ks *keys.Store, accounts *budget.Accounts, cache *semcache.Cache) {
	mx.CounterFunc("log_dropped_lines_total", "Log lines dropped because stderr did not take them in time.", func() float64 { return float64(sink.Dropped()) })
	if accounts != nil {
		mx.Budgets(func() []metrics.Budget {
			var out []metrics.Budget
			for _, k := range ks.List() {
				if k.RevokedAt != nil {
					continue
				}
				// Seen, not Status: no database round trip per key and
				// scrape on PostgreSQL (each replica reports its own view).
				for _, b := range accounts.Seen(k.ID).Budgets {
					out = append(out, metrics.Budget{KeyID: k.ID, Period: string(b.Period), Limit: b.Limit, Spent: b.Spent, Remaining: b.Remaining})
				}
			}
			return out
		})
	}
	if cache != nil {
		mx.Cache(func() metrics.CacheSize {
			s := cache.Stats()
			return metrics.CacheSize{Entries: s.Entries, Bytes: s.Bytes, IndexPoints: s.IndexPoints}
		})
	}
}
