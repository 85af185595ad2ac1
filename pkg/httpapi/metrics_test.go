package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/tollgate/tollgate/pkg/gateway"
	"github.com/tollgate/tollgate/pkg/httpapi"
	"github.com/tollgate/tollgate/pkg/metrics"
	"github.com/tollgate/tollgate/pkg/router"
	"github.com/tollgate/tollgate/pkg/semcache"
)

// franceOnly is a guard for the metrics test: prompts that both name
// France are aligned, a prompt naming Germany is refused by its "entity"
// rule, any other pair is uncertain (never served without a judge).
type franceOnly struct{}

func (franceOnly) Prepare(prompt string) any { return prompt }
func (franceOnly) Decide(q, c any) (allow, aligned bool, reason string) {
	a, b := q.(string), c.(string)
	switch {
	case strings.Contains(a, "Germany") || strings.Contains(b, "Germany"):
		return false, false, "entity: Germany is not France"
	case strings.Contains(a, "France") && strings.Contains(b, "France"):
		return true, true, ""
	}
	return true, false, "test: not aligned"
}

// scrape reads /metrics with the admin key and parses it with
// Prometheus's own text parser.
func scrape(t *testing.T, s *stack) map[string]*dto.MetricFamily {
	t.Helper()
	req, _ := http.NewRequest("GET", s.srv.URL+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+adminKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("/metrics: %d %q %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// sum adds up a family's samples whose labels include want: a counter's or
// gauge's value, a histogram's count. -1 when the family is missing.
func sum(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	f, ok := fams[name]
	if !ok {
		return -1
	}
	total := 0.0
next:
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if labels[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			total += m.GetCounter().GetValue()
		case m.Gauge != nil:
			total += m.GetGauge().GetValue()
		case m.Histogram != nil:
			total += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return total
}

// TestMetricsAfterSeededTraffic sends known traffic through the whole stack
// (misses, an exact and a semantic hit, a guard refusal, a stream, a 429, a
// downgrade, a 402 and a deployment whose breaker opens), then scrapes
// /metrics and checks that every family moved as that traffic says.
func TestMetricsAfterSeededTraffic(t *testing.T) {
	if gateway.CacheProvider != metrics.CacheProvider {
		t.Fatalf("metrics counts %q as the cache, the gateway says %q", metrics.CacheProvider, gateway.CacheProvider)
	}
	m := metrics.New()
	down := &failing{Provider: exactSim(t)}
	down.down.Store(true)
	downSpec := renamed("sim-down", "sim-small")
	models := append(simModels(exactSim(t)),
		&gateway.Model{Name: "sim-down", Spec: &downSpec, Chat: true, OwnedBy: "sim", Deployments: []gateway.Deployment{{ID: "sim/sim-down", Provider: down, Upstream: "sim-down"}}})
	breakers, err := router.NewBreakers(router.BreakerConfig{Default: router.BreakerSettings{ConsecutiveFailures: 1}, OnStateChange: m.Breaker})
	if err != nil {
		t.Fatal(err)
	}
	s := newStack(t, stackOptions{models: models, budgets: true, cache: true, embedder: oneVector{}, checker: franceOnly{}, breakers: breakers,
		observer: m, metrics: m.Handler()})

	ok := func(model, text string) {
		t.Helper()
		if resp, body := postChat(t, s, s.secret, `{"model":"`+model+`","messages":[{"role":"user","content":"`+text+`"}]}`); resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", text, resp.StatusCode, body)
		}
	}
	ok("sim-small", "What is the capital of France?") // miss
	ok("sim-small", "What is the capital of France?") // exact hit
	ok("sim-small", "Which city is the capital of France?")
	ok("sim-small", "What is the capital of Germany?")               // refused by the entity rule: a miss
	streamChat(t, s, s.secret, ask("sim-large", "Tell me a story.")) // another model: no candidate in its scope

	_, slow, raw := adminDo(t, s, "POST", "/admin/keys", `{"name":"slow","rpm":1}`)
	if slow == nil {
		t.Fatal(raw)
	}
	if resp, _ := postChat(t, s, slow["key"].(string), `{"model":"sim-small","messages":[{"role":"user","content":"one"}]}`); resp.StatusCode != 200 {
		t.Fatal(resp.StatusCode)
	}
	if resp, _ := postChat(t, s, slow["key"].(string), `{"model":"sim-small","messages":[{"role":"user","content":"two"}]}`); resp.StatusCode != 429 {
		t.Fatal(resp.StatusCode)
	}
	hamlet := openai.ChatCompletionNewParams{Model: "sim-large", MaxTokens: openai.Int(200),
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Summarise the plot of Hamlet.")}}
	_, thrifty, _ := adminDo(t, s, "POST", "/admin/keys", `{"name":"thrifty","on_exhausted":"downgrade","budgets":[{"period":"total","limit_usd":0.0005}]}`)
	if _, h := chat(t, s, thrifty["key"].(string), hamlet); h.Get(httpapi.HeaderModel) != "sim-small" {
		t.Fatalf("not downgraded: %q", h.Get(httpapi.HeaderModel))
	}
	_, strict, _ := adminDo(t, s, "POST", "/admin/keys", `{"name":"strict","budgets":[{"period":"monthly","limit_usd":0.0005}]}`)
	_, err = s.client(strict["key"].(string)).Chat.Completions.New(context.Background(), hamlet)
	assertAPIError(t, err, 402, "")
	if resp, _ := postChat(t, s, s.secret, `{"model":"sim-down","messages":[{"role":"user","content":"hello"}]}`); resp.StatusCode < 500 {
		t.Fatalf("sim-down: %d", resp.StatusCode)
	}

	fams := scrape(t, s)
	chatRoute := map[string]string{"route": "/v1/chat/completions"}
	with := func(kv ...string) map[string]string {
		out := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			out[kv[i]] = kv[i+1]
		}
		return out
	}
	tests := []struct {
		name, family string
		labels       map[string]string
		want         float64 // exact, unless atLeast
		atLeast      bool
	}{
		{"every chat request counted once", "tollgate_requests_total", chatRoute, 10, false},
		{"its successes", "tollgate_requests_total", with("route", "/v1/chat/completions", "status", "200"), 7, false},
		{"the exact hit", "tollgate_requests_total", with("provider", "cache", "cache", "hit"), 1, false},
		{"the 402", "tollgate_requests_total", with("status", "402"), 1, false},
		{"the 429", "tollgate_requests_total", with("status", "429"), 1, false},
		{"admin calls under their route pattern", "tollgate_requests_total", with("route", "/admin/keys", "status", "201"), 3, false},
		{"latency of every chat request", "tollgate_request_duration_seconds", chatRoute, 10, false},
		{"upstream time of upstream answers", "tollgate_upstream_duration_seconds", with("model", "sim-small", "provider", "sim"), 4, false},
		{"overhead of every served request", "tollgate_overhead_seconds", nil, 8, false},
		{"time to first token of the stream", "tollgate_time_to_first_token_seconds", with("model", "sim-large"), 1, false},
		{"prompt tokens", "tollgate_tokens_total", with("model", "sim-small", "direction", "in"), 1, true},
		{"completion tokens", "tollgate_tokens_total", with("model", "sim-small", "direction", "out"), 1, true},
		{"cost", "tollgate_cost_micros_total", with("model", "sim-small", "provider", "sim"), 1, true},
		{"saved by the exact hit", "tollgate_saved_micros_total", with("cause", metrics.SavedExact), 1, true},
		{"saved by the semantic hit", "tollgate_saved_micros_total", with("cause", metrics.SavedSemantic), 1, true},
		{"saved by the downgrade", "tollgate_saved_micros_total", with("cause", metrics.SavedDowngrade), 1, true},
		{"rate-limit refusal", "tollgate_refusals_total", with("reason", metrics.RefusedRateLimit), 1, false},
		{"budget refusal", "tollgate_refusals_total", with("reason", metrics.RefusedBudget), 1, false},
		{"exact hit lookups", "tollgate_cache_lookups_total", with("result", semcache.KindHit), 1, false},
		{"semantic hit lookups", "tollgate_cache_lookups_total", with("result", semcache.KindSemanticHit), 1, false},
		{"miss lookups", "tollgate_cache_lookups_total", with("result", semcache.KindMiss), 4, true},
		{"the guard's refusal by its rule", "tollgate_cache_semantic_refusals_total", with("rule", "entity"), 1, false},
		{"similarity of the semantic hit", "tollgate_cache_semantic_similarity", nil, 1, false},
		{"the breaker opened", "tollgate_breaker_transitions_total", with("deployment", "sim/sim-down", "to", "open"), 1, false},
		{"and is open", "tollgate_breaker_state", with("deployment", "sim/sim-down"), float64(router.BreakerOpen), false},
		{"the failed request noted its fallback", "tollgate_fallbacks_total", with("model", "sim-down"), 1, false},
		{"Go runtime", "go_goroutines", nil, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := sum(fams, tt.family, tt.labels)
			if got < 0 {
				t.Fatalf("family %s missing", tt.family)
			}
			if (tt.atLeast && got < tt.want) || (!tt.atLeast && got != tt.want) {
				t.Fatalf("%s%v = %v, want %v (at least: %v)", tt.family, tt.labels, got, tt.want, tt.atLeast)
			}
		})
	}
	// Bounded labels: no prompt text, no request id, in any label.
	for name, f := range fams {
		for _, mm := range f.GetMetric() {
			for _, l := range mm.GetLabel() {
				if v := l.GetValue(); strings.Contains(v, "France") || strings.Contains(v, "Germany") || strings.HasPrefix(v, "req_") {
					t.Errorf("%s has label %s=%q", name, l.GetName(), v)
				}
			}
		}
	}
}

// TestMetricsNeedTheAdminKey: /metrics answers 401 in OpenAI's error shape
// without the admin key, and 404 when no metrics are wired.
func TestMetricsNeedTheAdminKey(t *testing.T) {
	m := metrics.New()
	s := newStack(t, stackOptions{observer: m, metrics: m.Handler()})
	plain := newStack(t, stackOptions{})
	tests := []struct {
		name   string
		stack  *stack
		bearer string
		status int
		code   string
	}{
		{"no key", s, "", 401, "invalid_admin_key"},
		{"a gateway key", s, s.secret, 401, "invalid_admin_key"},
		{"not wired", plain, adminKey, 404, "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", tt.stack.srv.URL+"/metrics", nil)
			if tt.bearer != "" {
				req.Header.Set("Authorization", "Bearer "+tt.bearer)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body struct {
				Error struct{ Type, Code, Message string }
			}
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.status || body.Error.Code != tt.code || body.Error.Message == "" {
				t.Fatalf("%d %+v, want %d %s", resp.StatusCode, body.Error, tt.status, tt.code)
			}
		})
	}
}
