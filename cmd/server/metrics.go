package main

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/tollgate/tollgate/pkg/budget"
	"github.com/tollgate/tollgate/pkg/keys"
	"github.com/tollgate/tollgate/pkg/metrics"
	"github.com/tollgate/tollgate/pkg/semcache"
)

// scrapeState gives the metrics the state other packages already keep,
// read at each scrape: the log lines dropped, every limited budget of a
// live key, the ledger's lag, the alert outbox (its pending count at most
// every outboxMaxAge), the response cache's size (cache may be nil).
func scrapeState(mx *metrics.Metrics, sink *logSink, ks *keys.Store, ledger *budget.Ledger, cache *semcache.Cache, logger *slog.Logger) {
	accounts := ledger.Accounts
	mx.Ledger(func() metrics.LedgerLag {
		l := ledger.Store.Lag()
		return metrics.LedgerLag{Rows: l.Rows, Oldest: l.Oldest}
	})
	pending := &cachedCount{maxAge: outboxMaxAge, now: time.Now, read: func() (int, error) {
		ctx, cancel := context.WithTimeout(context.Background(), outboxTimeout)
		defer cancel()
		return ledger.Alerts.Pending(ctx)
	}, logger: logger}
	mx.Alerts(func() metrics.Outbox {
		n, ok := pending.get()
		if !ok {
			return metrics.Outbox{Abandoned: ledger.Alerts.Abandoned()}
		}
		return metrics.PendingOutbox(n, ledger.Alerts.Abandoned())
	})
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

// outboxMaxAge bounds how often scrapes count the outbox in the database
// (however many scrapers, however often); outboxTimeout bounds one count.
// Variables for tests.
var (
	outboxMaxAge  = 5 * time.Second
	outboxTimeout = 2 * time.Second
)

// cachedCount is a count read from the database at most once per maxAge:
// scrapes in between get the last one. A failed read is logged and makes
// the count unknown until the next read succeeds.
type cachedCount struct {
	maxAge time.Duration
	now    func() time.Time
	read   func() (int, error)
	logger *slog.Logger

	mu   sync.Mutex // held across a read, so concurrent scrapes make one
	at   time.Time  // of the last read; zero: never read
	n    int
	good bool
}

func (c *cachedCount) get() (int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := c.now(); c.at.IsZero() || now.Sub(c.at) >= c.maxAge {
		n, err := c.read()
		c.at, c.n, c.good = now, n, err == nil
		if err != nil {
			c.logger.Warn("metrics: counting the alert outbox", "err", err)
		}
	}
	return c.n, c.good
}

// timedEmbedder reports each call of the semantic cache's embedder to the
// metrics (latency by outcome, texts), keeping the wrapped embedder's
// window (semcache.Fitter).
type timedEmbedder struct {
	semcache.Embedder
	mx *metrics.Metrics
}

func (e timedEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	start := time.Now()
	vs, err := e.Embedder.Embed(ctx, texts)
	e.mx.Embed(e.Name(), time.Since(start), len(texts), err)
	return vs, err
}

func (e timedEmbedder) Fits(text string) bool {
	if f, ok := e.Embedder.(semcache.Fitter); ok {
		return f.Fits(text)
	}
	return true
}
