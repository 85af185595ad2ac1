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
// admin key, counting requests and exposing the log sink's dropped lines.
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
	st, body := do("POST", "/admin/keys", admin, `{"name":"m"}`)
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
	if _, ok := fams["tollgate_log_dropped_lines_total"]; !ok {
		t.Fatal("no tollgate_log_dropped_lines_total")
	}
}
