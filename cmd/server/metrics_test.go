package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestMetricsWired: the server built by run serves /metrics behind the
// admin key, counting requests and exposing the state read at scrape time:
// the log sink's dropped lines, a key's budget, the cache's size.
func TestMetricsWired(t *testing.T) {
	admin := "an-admin-key-of-enough-length"
	r := start(t, map[string]string{"TOLLGATE_ADMIN_KEY": admin}, "-data", t.TempDir())
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
	st, body := do("POST", "/admin/keys", admin, `{"name":"m","budgets":[{"period":"daily","limit_usd":5}]}`)
	var created struct{ Key string }
	if st != 201 || json.Unmarshal(body, &created) != nil {
		t.Fatalf("%d %s", st, body)
	}
	for i := 0; i < 3; i++ {
		if st, body := do("POST", "/v1/chat/completions", created.Key, `{"model":"sim-small","messages":[{"role":"user","content":"hi"}]}`); st != 200 {
			t.Fatalf("%d %s", st, body)
		}
	}
	if st, body := do("GET", "/metrics", created.Key, ""); st != 401 || !strings.Contains(string(body), `"invalid_admin_key"`) {
		t.Fatalf("a gateway key scraped /metrics: %d %s", st, body)
	}
	st, body = do("GET", "/metrics", admin, "")
	if st != 200 {
		t.Fatalf("%d %s", st, body)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
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
	for _, name := range []string{"tollgate_log_dropped_lines_total", "tollgate_cache_entries"} {
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
}
