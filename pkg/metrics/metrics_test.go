package metrics

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/tollgate/tollgate/pkg/router"
	"github.com/tollgate/tollgate/pkg/semcache"
)

func TestRefusalRule(t *testing.T) {
	tests := []struct{ name, reason, want string }{
		{"a guard rule", "guard: negation: one says not", "negation"},
		{"a rule without detail", "guard: code", "code"},
		{"the judge", "judge: not the same request", "judge"},
		{"no verdict is no refusal", "judge: no verdict", ""},
		{"a miss that is no refusal", "below the similarity threshold", ""},
		{"a label that is not a rule name", "guard: What is the capital of France? differs", "other"},
		{"an empty rule", "guard: ", "other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := refusalRule(tt.reason); got != tt.want {
				t.Fatalf("refusalRule(%q) = %q, want %q", tt.reason, got, tt.want)
			}
		})
	}
}

func TestSavedCause(t *testing.T) {
	tests := []struct {
		name string
		e    Exchange
		want string
	}{
		{"exact hit", Exchange{Provider: CacheProvider, Cache: semcache.KindHit}, SavedExact},
		{"semantic hit", Exchange{Provider: CacheProvider, Cache: semcache.KindSemanticHit}, SavedSemantic},
		{"downgrade: an upstream answered, and saved", Exchange{Provider: "sim", Cache: semcache.KindMiss}, SavedDowngrade},
		{"downgrade without a cache", Exchange{Provider: "sim"}, SavedDowngrade},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := savedCause(&tt.e); got != tt.want {
				t.Fatalf("%q, want %q", got, tt.want)
			}
		})
	}
}

// TestFuncsAndBreaker: state read at scrape time (functions, budgets, the
// cache's size) and a breaker's transitions are registered and exposed.
func TestFuncsAndBreaker(t *testing.T) {
	m := New()
	m.CounterFunc("log_dropped_lines_total", "test", func() float64 { return 3 })
	m.Breaker("p/m", "p", router.BreakerClosed, router.BreakerOpen)
	m.Budgets(func() []Budget {
		return []Budget{{KeyID: "key_a", Period: "daily", Limit: 100, Spent: 30, Remaining: 60}, {KeyID: "key_b", Period: "total", Limit: 5, Spent: 5}}
	})
	m.Cache(func() CacheSize { return CacheSize{Entries: 2, Bytes: 300, IndexPoints: 1} })
	m.Ledger(func() LedgerLag { return LedgerLag{Rows: 4, Oldest: 1500 * time.Millisecond} })
	m.Alerts(func() Outbox { return PendingOutbox(7, 2) })
	m.Embed("use-lite", 3*time.Millisecond, 2, nil)
	m.Embed("use-lite", time.Millisecond, 1, errors.New("down"))
	fams, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range fams {
		for _, mm := range f.GetMetric() {
			switch {
			case mm.Counter != nil:
				got[f.GetName()] += mm.GetCounter().GetValue()
			case mm.Gauge != nil:
				got[f.GetName()] += mm.GetGauge().GetValue()
			case mm.Histogram != nil:
				got[f.GetName()+"_count"] += float64(mm.GetHistogram().GetSampleCount())
				for _, l := range mm.GetLabel() {
					if l.GetName() == "outcome" {
						got[f.GetName()+"_"+l.GetValue()] += float64(mm.GetHistogram().GetSampleCount())
					}
				}
			}
		}
	}
	for name, want := range map[string]float64{"tollgate_log_dropped_lines_total": 3, "tollgate_breaker_state": 2, "tollgate_breaker_transitions_total": 1,
		"tollgate_budget_limit_micros": 105, "tollgate_budget_spent_micros": 35, "tollgate_budget_remaining_micros": 60,
		"tollgate_cache_entries": 2, "tollgate_cache_bytes": 300, "tollgate_cache_index_points": 1,
		"tollgate_ledger_queued_rows": 4, "tollgate_ledger_oldest_queued_seconds": 1.5,
		"tollgate_alert_outbox_pending": 7, "tollgate_alert_deliveries_abandoned_total": 2,
		"tollgate_embedder_duration_seconds_count": 2, "tollgate_embedder_duration_seconds_ok": 1, "tollgate_embedder_duration_seconds_error": 1,
		"tollgate_embedder_texts_total": 3} {
		if got[name] != want {
			t.Errorf("%s = %v, want %v", name, got[name], want)
		}
	}
}

// BenchmarkRequest is the per-request cost of metrics: one Request call
// per answered request, alternating an upstream answer and a cache hit.
func BenchmarkRequest(b *testing.B) {
	m := New()
	served := Exchange{Route: "/v1/chat/completions", Status: http.StatusOK, Total: 85 * time.Millisecond, Model: "sim-small", Provider: "sim",
		Cache: semcache.KindMiss, Attempts: 1, PromptTokens: 12, CompletionTokens: 40, Cost: 1234, Upstream: 80 * time.Millisecond}
	hit := Exchange{Route: "/v1/chat/completions", Status: http.StatusOK, Total: time.Millisecond, Model: "sim-small", Provider: CacheProvider,
		Cache: semcache.KindHit, PromptTokens: 12, CompletionTokens: 40, Saved: 1234}
	var o interface{ Request(Exchange) } = m // as the HTTP layer calls it
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if i%2 == 0 {
			o.Request(served)
		} else {
			o.Request(hit)
		}
	}
}

// TestOutboxUnread: an outbox that could not be read exposes no pending
// count (rather than a false 0), and still the abandoned deliveries.
func TestOutboxUnread(t *testing.T) {
	m := New()
	m.Alerts(func() Outbox { return Outbox{Abandoned: 1} })
	fams, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, f := range fams {
		seen[f.GetName()] = true
	}
	if seen["tollgate_alert_outbox_pending"] || !seen["tollgate_alert_deliveries_abandoned_total"] {
		t.Fatalf("families %v", seen)
	}
}

// BenchmarkEmbed is the cost metrics add to each embedder call.
func BenchmarkEmbed(b *testing.B) {
	m := New()
	err := errors.New("down")
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if i%8 == 0 {
			m.Embed("use-lite", 4*time.Millisecond, 1, err)
		} else {
			m.Embed("use-lite", 4*time.Millisecond, 1, nil)
		}
	}
}

// BenchmarkRequestParallel is BenchmarkRequest from every core at once.
func BenchmarkRequestParallel(b *testing.B) {
	m := New()
	served := Exchange{Route: "/v1/chat/completions", Status: http.StatusOK, Total: 85 * time.Millisecond, Model: "sim-small", Provider: "sim",
		Cache: semcache.KindMiss, Attempts: 1, PromptTokens: 12, CompletionTokens: 40, Cost: 1234, Upstream: 80 * time.Millisecond}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.Request(served)
		}
	})
}
