package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/tollgate/tollgate/pkg/sqlite"
)

// TestMetricsWired: the server built by run serves /metrics behind the
// admin key, counting requests and exposing the state read at scrape time:
// the log sink's dropped lines, a key's budget, the cache's size, the
// embedder's calls, the ledger's lag (held by a write lock on the SQLite
// file, then drained) and the alert outbox (pending while the key's
// webhook is down, delivered once it is up).
func TestMetricsWired(t *testing.T) {
	defer func(d time.Duration) { outboxMaxAge = d }(outboxMaxAge)
	outboxMaxAge = 0 // every scrape counts the outbox: the test waits for it to move
	var hookStatus atomic.Int32
	hookStatus.Store(http.StatusServiceUnavailable)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(int(hookStatus.Load()))
	}))
	defer hook.Close()
	admin := "an-admin-key-of-enough-length"
	dataDir := t.TempDir()
	r := start(t, map[string]string{"TOLLGATE_ADMIN_KEY": admin}, "-data", dataDir)
	do := func(method, path, bearer, body string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, r.url+path, strings.NewReader(body))
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	scrape := func() map[string]*dto.MetricFamily {
		t.Helper()
		st, body := do("GET", "/metrics", admin, "")
		if st != 200 {
			t.Fatalf("%d %s", st, body)
		}
		p := expfmt.NewTextParser(model.LegacyValidation)
		fams, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
		if err != nil {
			t.Fatal(err)
		}
		return fams
	}
	// value sums a family's samples: counters, gauges, histograms' counts.
	value := func(fams map[string]*dto.MetricFamily, name string) float64 {
		v := 0.0
		for _, m := range fams[name].GetMetric() {
			v += m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())
		}
		return v
	}
	// eventually scrapes until ok holds of the metrics (a hang guard, not
	// a timing assertion: the background workers move at their pace).
	eventually := func(what string, ok func(map[string]*dto.MetricFamily) bool) map[string]*dto.MetricFamily {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			fams := scrape()
			if ok(fams) {
				return fams
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: never seen", what)
			}
		}
	}
	before := scrape()
	for _, name := range []string{"tollgate_ledger_queued_rows", "tollgate_ledger_oldest_queued_seconds", "tollgate_alert_outbox_pending", "tollgate_alert_deliveries_abandoned_total"} {
		if _, ok := before[name]; !ok {
			t.Errorf("no %s before any traffic", name)
		}
	}
	if v := value(before, "tollgate_embedder_texts_total"); v != 0 {
		t.Fatalf("%v texts embedded before any traffic", v)
	}
	st, body := do("POST", "/admin/keys", admin, `{"name":"m","budgets":[{"period":"daily","limit_usd":5,"alert_thresholds":[0.000001]}],"alert_webhooks":[{"url":"`+hook.URL+`"}]}`)
	var created struct{ Key string }
	if st != 201 || json.Unmarshal(body, &created) != nil {
		t.Fatalf("%d %s", st, body)
	}
	// A miss, its exact hit, and a paraphrase: the semantic lookup embeds
	// it with the cached prompt (the guard finds that candidate aligned).
	for _, prompt := range []string{"What is the capital of France?", "What is the capital of France?", "What is France's capital?"} {
		if st, body := do("POST", "/v1/chat/completions", created.Key, `{"model":"sim-small","messages":[{"role":"user","content":"`+prompt+`"}]}`); st != 200 {
			t.Fatalf("%d %s", st, body)
		}
	}
	if st, body := do("GET", "/metrics", created.Key, ""); st != 401 || !strings.Contains(string(body), `"invalid_admin_key"`) {
		t.Fatalf("a gateway key scraped /metrics: %d %s", st, body)
	}
	fams := scrape()
	requests := 0.0
	for _, m := range fams["tollgate_requests_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "route" && l.GetValue() == "/v1/chat/completions" {
				requests += m.GetCounter().GetValue()
			}
		}
	}
	if requests != 3 {
		t.Fatalf("chat requests counted %v, want 3", requests)
	}
	for _, name := range []string{"tollgate_log_dropped_lines_total", "tollgate_cache_entries", "tollgate_embedder_duration_seconds"} {
		if _, ok := fams[name]; !ok {
			t.Errorf("no %s", name)
		}
	}
	// The key's daily budget: $5, something spent, the rest remaining.
	budget := map[string]float64{}
	for _, name := range []string{"tollgate_budget_limit_micros", "tollgate_budget_spent_micros", "tollgate_budget_remaining_micros"} {
		for _, m := range fams[name].GetMetric() {
			budget[name] += m.GetGauge().GetValue()
		}
	}
	limit, spent, remaining := budget["tollgate_budget_limit_micros"], budget["tollgate_budget_spent_micros"], budget["tollgate_budget_remaining_micros"]
	if limit != 5_000_000 || spent <= 0 || remaining != limit-spent {
		t.Fatalf("budget limit %v spent %v remaining %v", limit, spent, remaining)
	}
	// The semantic cache embedded the prompt, through the timed embedder.
	if v := value(fams, "tollgate_embedder_texts_total"); v < 1 {
		t.Fatalf("%v texts embedded after a cache miss", v)
	}
	for _, m := range fams["tollgate_embedder_duration_seconds"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "outcome" && l.GetValue() != "ok" {
				t.Fatalf("an embedder call with outcome %q", l.GetValue())
			}
		}
	}

	// The alert crossed at the first request waits in the outbox: its
	// webhook answers 503.
	eventually("an alert pending", func(f map[string]*dto.MetricFamily) bool { return value(f, "tollgate_alert_outbox_pending") == 1 })

	// A write lock on the SQLite file holds the journaled rows out of
	// their table: the lag counts them until it is released.
	raw, err := sqlite.Open(filepath.Join(dataDir, "tollgate.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	conn, err := raw.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	if st, body := do("POST", "/v1/chat/completions", created.Key, `{"model":"sim-small","messages":[{"role":"user","content":"held"}]}`); st != 200 {
		t.Fatalf("%d %s", st, body)
	}
	held := scrape()
	if rows, age := value(held, "tollgate_ledger_queued_rows"), value(held, "tollgate_ledger_oldest_queued_seconds"); rows < 1 || age <= 0 {
		t.Fatalf("ledger lag while the file is locked: %v rows, the oldest %vs old", rows, age)
	}
	if _, err := conn.ExecContext(context.Background(), "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	eventually("the ledger lag drained", func(f map[string]*dto.MetricFamily) bool {
		return value(f, "tollgate_ledger_queued_rows") == 0 && value(f, "tollgate_ledger_oldest_queued_seconds") == 0
	})

	// The webhook is up: the retry delivers the alert.
	hookStatus.Store(http.StatusOK)
	eventually("the alert delivered", func(f map[string]*dto.MetricFamily) bool { return value(f, "tollgate_alert_outbox_pending") == 0 })
}

// TestCachedCount: scrapes within maxAge of a read get its count without
// asking the database; a failed read makes the count unknown until the
// next read succeeds.
func TestCachedCount(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	reads, value, fail := 0, 7, false
	c := &cachedCount{maxAge: 5 * time.Second, now: func() time.Time { return now }, logger: slog.New(slog.DiscardHandler),
		read: func() (int, error) {
			reads++
			if fail {
				return 0, errors.New("database is locked")
			}
			return value, nil
		}}
	for _, step := range []struct {
		name    string
		advance time.Duration
		value   int
		fail    bool
		want    int
		ok      bool
		reads   int
	}{
		{"first scrape reads", 0, 7, false, 7, true, 1},
		{"within maxAge: the last count", 4 * time.Second, 9, false, 7, true, 1},
		{"maxAge passed: read again", time.Second, 9, false, 9, true, 2},
		{"a failed read: unknown", 5 * time.Second, 9, true, 0, false, 3},
		{"still unknown within maxAge", time.Second, 3, false, 0, false, 3},
		{"the next read succeeds", 4 * time.Second, 3, false, 3, true, 4},
	} {
		now = now.Add(step.advance)
		value, fail = step.value, step.fail
		if n, ok := c.get(); n != step.want || ok != step.ok || reads != step.reads {
			t.Fatalf("%s: %d %v after %d reads, want %d %v after %d", step.name, n, ok, reads, step.want, step.ok, step.reads)
		}
	}
}
