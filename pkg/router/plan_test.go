package router

import (
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/pkg/llm"
)

// planCatalog is the built-in catalog plus models that exercise ties,
// unknown prices and missing capabilities.
func planCatalog(t testing.TB) *Catalog {
	t.Helper()
	extra := []Model{
		testModel("tie-a", 1*usd, 1*usd, func(m *Model) {}),
		testModel("tie-b", 1*usd, 1*usd, func(m *Model) {}),
		testModel("tie-c", 1*usd, 1*usd, func(m *Model) {}),
		testModel("mystery", PriceUnknown, PriceUnknown, func(m *Model) {}),
		testModel("mystery-2", PriceUnknown, PriceUnknown, func(m *Model) {}),
		testModel("batch-only", 0.01*usd, 0.01*usd, func(m *Model) { m.Streaming = false }),
		testModel("nano", 0.01*usd, 0.01*usd, func(m *Model) { m.Tier = 1; m.Tools, m.JSONSchema = false, false }),
	}
	c, err := NewCatalog(append(Builtin(), extra...))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func testModel(name string, in, out Price, f func(*Model)) Model {
	m := chat(name, "test", in, out, PriceUnknown, 100_000, 10_000, 3, caps{tools, vision, schema})
	f(&m)
	return m
}

func planRoutes(t testing.TB) *Routes {
	t.Helper()
	rs, err := NewRoutes(planCatalog(t), append(DefaultRoutes(),
		Route{Name: "smart", Candidates: []string{"gpt-4o-mini", "claude-haiku-4-5", "gemini-2.5-flash", "gpt-4.1"}, MinTier: 2},
		Route{Name: "ties", Candidates: []string{"tie-a", "tie-b", "tie-c"}},
		Route{Name: "unpriced", Candidates: []string{"mystery", "tie-a", "mystery-2", "sim-large"}},
		Route{Name: "ordered", Strategy: StrategyPriority, Candidates: []string{"sim-large", "sim-small"}},
		Route{Name: "canary", Strategy: StrategyWeighted, Candidates: []string{"tie-a", "tie-b"}, Weights: []int{95, 5}},
		Route{Name: "sticky", Strategy: StrategyWeighted, Candidates: []string{"tie-a", "tie-b", "tie-c"}, Weights: []int{0, 50, 50}, Sticky: true},
		Route{Name: "tiered", Candidates: []string{"nano", "sim-small", "tie-a"}, MinTier: 3},
		Route{Name: "mixed", Candidates: []string{"batch-only", "nano", "sim-small"}},
		Route{Name: "long", Candidates: []string{"sim-small", "sim-large"}, ExpectedOutput: 2000},
	))
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// prompt counts the same number of tokens for every model.
func prompt(n int) func(*Model) int { return func(*Model) int { return n } }

func TestPlan(t *testing.T) {
	rs := planRoutes(t)
	imageless := Needs{PromptTokens: prompt(1000)}

	tests := []struct {
		name      string
		route     string
		in        PlanInput
		steps     []string // model names in order
		skipped   []string // "model (reason)"
		explain   string   // checked when set
		outTokens []int    // Steps[i].OutputTokens, checked when set
		costs     []llm.Micros
	}{
		{
			name:    "auto text goes to the cheaper sim-small, sim-large as fallback",
			route:   "auto",
			in:      PlanInput{Needs: imageless},
			steps:   []string{"sim-small", "sim-large"},
			explain: "cheapest of 2 capable: sim-small $0.000305, sim-large $0.003048",
			// 1000 x $0.10/1M + 512 x $0.40/1M = 304.8 micros, rounded up.
			costs: []llm.Micros{305, 3048},
		},
		{
			name:    "vision leaves only sim-large",
			route:   "auto",
			in:      PlanInput{Needs: Needs{Vision: true, PromptTokens: prompt(1000)}},
			steps:   []string{"sim-large"},
			skipped: []string{"sim-small (vision)"},
			explain: "cheapest of 1 capable: sim-large $0.003048; skipped sim-small (vision)",
		},
		{
			name:    "context window: prompt + max_tokens equal to the window fits",
			route:   "auto",
			in:      PlanInput{Needs: Needs{OutputTokens: 100, PromptTokens: prompt(32_768 - 100)}},
			steps:   []string{"sim-small", "sim-large"},
			skipped: nil,
		},
		{
			name:    "context window: one token over skips sim-small",
			route:   "auto",
			in:      PlanInput{Needs: Needs{OutputTokens: 101, PromptTokens: prompt(32_768 - 100)}},
			steps:   []string{"sim-large"},
			skipped: []string{"sim-small (context window)"},
		},
		{
			name:    "context window: the prompt alone when max_tokens is unset",
			route:   "auto",
			in:      PlanInput{Needs: Needs{PromptTokens: prompt(32_769)}},
			steps:   []string{"sim-large"},
			skipped: []string{"sim-small (context window)"},
		},
		{
			name:    "max_tokens above the model's output limit",
			route:   "auto",
			in:      PlanInput{Needs: Needs{OutputTokens: 8_193, PromptTokens: prompt(10)}},
			steps:   []string{"sim-large"},
			skipped: []string{"sim-small (max output)"},
		},
		{
			name:    "key's allowed models",
			route:   "auto",
			in:      PlanInput{Needs: imageless, Allowed: func(m string) bool { return m == "sim-large" }},
			steps:   []string{"sim-large"},
			skipped: []string{"sim-small (not allowed)"},
		},
		{
			name:  "breaker open skips the cheapest",
			route: "smart",
			in: PlanInput{Needs: imageless, Available: func(m string) (bool, string) {
				return m != "claude-haiku-4-5", "breaker open"
			}},
			steps:   []string{"gpt-4o-mini", "gemini-2.5-flash", "gpt-4.1"},
			skipped: []string{"claude-haiku-4-5 (breaker open)"},
			explain: "cheapest of 3 capable: gpt-4o-mini $0.000458, gemini-2.5-flash $0.001580, gpt-4.1 $0.006096; skipped claude-haiku-4-5 (breaker open)",
		},
		{
			name:    "unavailable without a reason reads breaker open",
			route:   "auto",
			in:      PlanInput{Needs: imageless, Available: func(m string) (bool, string) { return m != "sim-small", "" }},
			steps:   []string{"sim-large"},
			skipped: []string{"sim-small (breaker open)"},
		},
		{
			name:    "four candidates by cost",
			route:   "smart",
			in:      PlanInput{Needs: imageless},
			steps:   []string{"gpt-4o-mini", "gemini-2.5-flash", "claude-haiku-4-5", "gpt-4.1"},
			explain: "cheapest of 4 capable: gpt-4o-mini $0.000458, gemini-2.5-flash $0.001580, claude-haiku-4-5 $0.003560, gpt-4.1 $0.006096",
		},
		{
			name:  "cost ties: configured order without latencies",
			route: "ties",
			in:    PlanInput{Needs: imageless},
			steps: []string{"tie-a", "tie-b", "tie-c"},
		},
		{
			name:  "cost ties: lower known latency first, unknown last",
			route: "ties",
			in: PlanInput{Needs: imageless, Latency: func(m string) time.Duration {
				return map[string]time.Duration{"tie-b": 300 * time.Millisecond, "tie-c": 200 * time.Millisecond}[m]
			}},
			steps: []string{"tie-c", "tie-b", "tie-a"},
		},
		{
			name:    "unpriced models sort last in configured order",
			route:   "unpriced",
			in:      PlanInput{Needs: imageless},
			steps:   []string{"tie-a", "sim-large", "mystery", "mystery-2"},
			explain: "cheapest of 4 capable: tie-a $0.001512, sim-large $0.003048, mystery unpriced, mystery-2 unpriced",
		},
		{
			name:    "priority keeps configured order",
			route:   "ordered",
			in:      PlanInput{Needs: imageless},
			steps:   []string{"sim-large", "sim-small"},
			explain: "priority of 2 capable: sim-large, sim-small",
		},
		{
			name:    "weighted: a pick in the heavy arm",
			route:   "canary",
			in:      PlanInput{Needs: imageless, Pick: 0.5},
			steps:   []string{"tie-a", "tie-b"},
			explain: "weighted of 2 capable: tie-a w=95, tie-b w=5",
		},
		{
			name:    "weighted: a pick in the 5% canary",
			route:   "canary",
			in:      PlanInput{Needs: imageless, Pick: 0.96},
			steps:   []string{"tie-b", "tie-a"},
			explain: "weighted of 2 capable: tie-b w=5, tie-a w=95",
		},
		{
			name:  "weighted: the weights of capable candidates only",
			route: "canary",
			in: PlanInput{Needs: imageless, Pick: 0.99, Available: func(m string) (bool, string) {
				return m != "tie-b", "breaker open"
			}},
			steps:   []string{"tie-a"},
			skipped: []string{"tie-b (breaker open)"},
		},
		{
			name:  "weighted: a drained candidate is only a fallback",
			route: "sticky",
			in:    PlanInput{Needs: imageless, Pick: 0},
			steps: []string{"tie-b", "tie-c", "tie-a"},
		},
		{
			name:    "tier below min_tier",
			route:   "tiered",
			in:      PlanInput{Needs: imageless},
			steps:   []string{"tie-a"},
			skipped: []string{"nano (tier)", "sim-small (tier)"},
		},
		{
			name:    "tools",
			route:   "mixed",
			in:      PlanInput{Needs: Needs{Tools: true, PromptTokens: prompt(10)}},
			steps:   []string{"batch-only", "sim-small"},
			skipped: []string{"nano (tools)"},
		},
		{
			name:    "json schema",
			route:   "mixed",
			in:      PlanInput{Needs: Needs{JSONSchema: true, PromptTokens: prompt(10)}},
			steps:   []string{"batch-only", "sim-small"},
			skipped: []string{"nano (json schema)"},
		},
		{
			name:    "streaming",
			route:   "mixed",
			in:      PlanInput{Needs: Needs{Stream: true, PromptTokens: prompt(10)}},
			steps:   []string{"nano", "sim-small"},
			skipped: []string{"batch-only (streaming)"},
		},
		{
			name:      "expected output: max_tokens below the route estimate is priced as is",
			route:     "auto",
			in:        PlanInput{Needs: Needs{OutputTokens: 100, PromptTokens: prompt(1000)}},
			steps:     []string{"sim-small", "sim-large"},
			outTokens: []int{100, 100},
			costs:     []llm.Micros{140, 1400},
		},
		{
			name:      "expected output: a generous max_tokens is capped by the estimate",
			route:     "auto",
			in:        PlanInput{Needs: Needs{OutputTokens: 8000, PromptTokens: prompt(1000)}},
			steps:     []string{"sim-small", "sim-large"},
			outTokens: []int{512, 512},
		},
		{
			name:      "expected output: a route estimate, capped by the model's limit",
			route:     "long",
			in:        PlanInput{Needs: Needs{PromptTokens: prompt(1000)}},
			steps:     []string{"sim-small", "sim-large"},
			outTokens: []int{2000, 2000},
		},
		{
			name:      "choices multiply the output",
			route:     "auto",
			in:        PlanInput{Needs: Needs{OutputTokens: 100, Choices: 3, PromptTokens: prompt(1000)}},
			steps:     []string{"sim-small", "sim-large"},
			outTokens: []int{100, 100},
			costs:     []llm.Micros{220, 2200},
		},
		{
			name:    "budget skips what costs more than MaxCost",
			route:   "auto",
			in:      PlanInput{Needs: imageless, MaxCost: 1000},
			steps:   []string{"sim-small"},
			skipped: []string{"sim-large (budget)"},
		},
		{
			name:    "budget skips what cannot be costed",
			route:   "unpriced",
			in:      PlanInput{Needs: imageless, MaxCost: 1_000_000},
			steps:   []string{"tie-a", "sim-large"},
			skipped: []string{"mystery (unpriced)", "mystery-2 (unpriced)"},
		},
		{
			name:    "a plain catalog model is a direct route",
			route:   "gpt-4o-mini",
			in:      PlanInput{Needs: imageless},
			steps:   []string{"gpt-4o-mini"},
			explain: "direct: gpt-4o-mini $0.000458",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, ok := rs.Lookup(tc.route)
			if !ok {
				t.Fatalf("route %s not found", tc.route)
			}
			p, err := r.Plan(tc.in)
			if err != nil {
				t.Fatalf("Plan: %v", err)
			}
			var steps, skipped []string
			for _, s := range p.Steps {
				steps = append(steps, s.Model.Name)
			}
			for _, s := range p.Skipped {
				skipped = append(skipped, fmt.Sprintf("%s (%s)", s.Model.Name, s.Reason))
			}
			if !slices.Equal(steps, tc.steps) {
				t.Errorf("steps = %v, want %v", steps, tc.steps)
			}
			if !slices.Equal(skipped, tc.skipped) {
				t.Errorf("skipped = %v, want %v", skipped, tc.skipped)
			}
			if tc.explain != "" && p.Explanation != tc.explain {
				t.Errorf("explanation = %q\n                 want %q", p.Explanation, tc.explain)
			}
			for i, want := range tc.outTokens {
				if got := p.Steps[i].OutputTokens; got != want {
					t.Errorf("steps[%d].OutputTokens = %d, want %d", i, got, want)
				}
			}
			for i, want := range tc.costs {
				if got := p.Steps[i].EstimatedCost; got != want {
					t.Errorf("steps[%d].EstimatedCost = %d, want %d", i, got, want)
				}
			}
			if p.Route != r {
				t.Errorf("plan.Route = %p, want %p", p.Route, r)
			}
		})
	}
}

func TestPlanNoCapableModel(t *testing.T) {
	rs := planRoutes(t)
	closed := func(string) (bool, string) { return false, "breaker open" }
	none := func(string) bool { return false }
	tests := []struct {
		name   string
		route  string
		in     PlanInput
		status int
		code   string
		param  string
		msg    string
	}{
		{
			name:   "capabilities: what each candidate lacked",
			route:  "auto",
			in:     PlanInput{Needs: Needs{Vision: true, PromptTokens: prompt(200_000)}},
			status: http.StatusBadRequest, code: "no_capable_model", param: "messages", // both are about messages
			msg: "no model of route auto can serve this request: sim-small lacks vision; sim-large: context window 131072 < 200000 tokens",
		},
		{
			name:   "the same requirement everywhere names the param",
			route:  "auto",
			in:     PlanInput{Needs: Needs{PromptTokens: prompt(200_000), OutputTokens: 10}},
			status: http.StatusBadRequest, code: "no_capable_model", param: "messages",
			msg: "no model of route auto can serve this request: sim-small: context window 32768 < 200010 tokens; sim-large: context window 131072 < 200010 tokens",
		},
		{
			name:   "different requirements name no param",
			route:  "mixed",
			in:     PlanInput{Needs: Needs{Tools: true, Stream: true, PromptTokens: prompt(40_000)}},
			status: http.StatusBadRequest, code: "no_capable_model", param: "",
			msg: "no model of route mixed can serve this request: batch-only lacks streaming; nano lacks tool calling; sim-small: context window 32768 < 40000 tokens",
		},
		{
			name:   "max output",
			route:  "auto",
			in:     PlanInput{Needs: Needs{OutputTokens: 20_000}},
			status: http.StatusBadRequest, code: "no_capable_model", param: "max_tokens",
			msg: "no model of route auto can serve this request: sim-small: max output 8192 < max_tokens 20000; sim-large: max output 16384 < max_tokens 20000",
		},
		{
			name:   "a direct model says so",
			route:  "sim-small",
			in:     PlanInput{Needs: Needs{Vision: true}},
			status: http.StatusBadRequest, code: "no_capable_model", param: "messages",
			msg: "the model sim-small cannot serve this request: sim-small lacks vision",
		},
		{
			name:   "a direct model over its window keeps OpenAI's code",
			route:  "sim-small",
			in:     PlanInput{Needs: Needs{OutputTokens: 100, PromptTokens: prompt(32_700)}},
			status: http.StatusBadRequest, code: "context_length_exceeded", param: "messages",
			msg: "the model sim-small cannot serve this request: sim-small: context window 32768 < 32800 tokens",
		},
		{
			name:   "not allowed is a 403",
			route:  "auto",
			in:     PlanInput{Needs: Needs{Vision: true}, Allowed: none},
			status: http.StatusForbidden, code: "model_not_allowed", param: "model",
			msg: "no model of route auto can serve this request: sim-small lacks vision; sim-large: not allowed for this key",
		},
		{
			name:   "over budget is a 402",
			route:  "auto",
			in:     PlanInput{Needs: Needs{PromptTokens: prompt(1000)}, MaxCost: 100},
			status: http.StatusPaymentRequired, code: "budget_exceeded",
			msg: "no model of route auto can serve this request: sim-small: estimated cost $0.000305 > budget $0.000100; sim-large: estimated cost $0.003048 > budget $0.000100",
		},
		{
			name:   "every capable candidate's breaker open is a 503",
			route:  "auto",
			in:     PlanInput{Needs: Needs{Vision: true}, Available: closed},
			status: http.StatusServiceUnavailable, code: "no_healthy_model",
			msg: "no model of route auto can serve this request: sim-small lacks vision; sim-large: breaker open",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := rs.Lookup(tc.route)
			p, err := r.Plan(tc.in)
			if err == nil {
				t.Fatalf("Plan = %+v, want an error", p)
			}
			e, ok := llm.AsError(err)
			if !ok {
				t.Fatalf("error %T %v is not an *llm.Error", err, err)
			}
			if e.Status != tc.status || e.Code != tc.code || e.Param != tc.param {
				t.Errorf("status, code, param = %d %q %q, want %d %q %q", e.Status, e.Code, e.Param, tc.status, tc.code, tc.param)
			}
			if e.Message != tc.msg {
				t.Errorf("message = %q\n       want %q", e.Message, tc.msg)
			}
		})
	}
}

func TestPlanCountsOnlyCapableCandidates(t *testing.T) {
	r, _ := planRoutes(t).Lookup("auto")
	var counted []string
	_, err := r.Plan(PlanInput{Needs: Needs{Vision: true, PromptTokens: func(m *Model) int {
		counted = append(counted, m.Name)
		return 10
	}}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(counted, []string{"sim-large"}) {
		t.Errorf("counted prompts for %v, want only sim-large (sim-small lacks vision)", counted)
	}
}

func TestPlanStickyWeighted(t *testing.T) {
	r, _ := planRoutes(t).Lookup("sticky")
	first := func(key string, pick float64) string {
		p, err := r.Plan(PlanInput{Needs: Needs{}, StickyKey: key, Pick: pick})
		if err != nil {
			t.Fatal(err)
		}
		return p.Steps[0].Model.Name
	}
	seen := map[string]int{}
	for i := range 200 {
		key := fmt.Sprintf("key-%d", i)
		a := first(key, 0.01)
		if b := first(key, 0.99); a != b {
			t.Fatalf("key %s went to %s then %s: the pick must not matter when sticky", key, a, b)
		}
		seen[a]++
	}
	// Weights 0/50/50: the drained arm never comes first, both others do.
	if seen["tie-a"] != 0 || seen["tie-b"] == 0 || seen["tie-c"] == 0 {
		t.Errorf("first choices over 200 keys = %v, want tie-b and tie-c only", seen)
	}
	// Without a key, the pick decides.
	if got := first("", 0.99); got != "tie-c" {
		t.Errorf("no key, pick 0.99: %s first, want tie-c", got)
	}
}

func TestPlanExplanationIsBoundedASCII(t *testing.T) {
	var models []Model
	var names []string
	for i := range 40 {
		name := fmt.Sprintf("très-long-model-name-%02d", i)
		models = append(models, testModel(name, Price(i+1)*usd, 1*usd, func(m *Model) { m.Vision = i%2 == 0 }))
		names = append(names, name)
	}
	c, err := NewCatalog(models)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := NewRoutes(c, []Route{{Name: "many", Candidates: names}})
	if err != nil {
		t.Fatal(err)
	}
	r, _ := rs.Lookup("many")
	p, err := r.Plan(PlanInput{Needs: Needs{Vision: true}})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Explanation) > MaxExplanation {
		t.Errorf("explanation is %d bytes, want at most %d: %q", len(p.Explanation), MaxExplanation, p.Explanation)
	}
	if !strings.HasSuffix(p.Explanation, " ...") || !strings.HasPrefix(p.Explanation, "cheapest of 20 capable: tr??s-long-model-name-00 $") {
		t.Errorf("explanation = %q", p.Explanation)
	}
	for i := 0; i < len(p.Explanation); i++ {
		if c := p.Explanation[i]; c < 0x20 || c > 0x7e {
			t.Fatalf("byte %#x at %d is not printable ASCII: %q", c, i, p.Explanation)
		}
	}
}

func TestNeedsOf(t *testing.T) {
	tests := []struct {
		name string
		body string
		want Needs
	}{
		{"plain", `{"model":"auto","messages":[{"role":"user","content":"hi"}]}`, Needs{Choices: 1}},
		{"max_tokens, n, stream", `{"model":"auto","max_tokens":50,"n":2,"stream":true,"messages":[{"role":"user","content":"hi"}]}`,
			Needs{OutputTokens: 50, Choices: 2, Stream: true}},
		{"max_completion_tokens wins", `{"model":"auto","max_tokens":50,"max_completion_tokens":70,"messages":[{"role":"user","content":"hi"}]}`,
			Needs{OutputTokens: 70, Choices: 1}},
		{"tools offered", `{"model":"auto","tools":[{"type":"function","function":{"name":"f"}}],"messages":[{"role":"user","content":"hi"}]}`,
			Needs{Choices: 1, Tools: true}},
		{"tool results in the conversation", `{"model":"auto","messages":[{"role":"user","content":"hi"},{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c","content":"42"}]}`,
			Needs{Choices: 1, Tools: true}},
		{"image", `{"model":"auto","messages":[{"role":"user","content":[{"type":"text","text":"what?"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AA=="}}]}]}`,
			Needs{Choices: 1, Vision: true}},
		{"json schema", `{"model":"auto","response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{}}},"messages":[{"role":"user","content":"hi"}]}`,
			Needs{Choices: 1, JSONSchema: true}},
		{"json object is not a schema", `{"model":"auto","response_format":{"type":"json_object"},"messages":[{"role":"user","content":"hi"}]}`,
			Needs{Choices: 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := llm.DecodeChatRequest([]byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if got := NeedsOf(req); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("NeedsOf = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func BenchmarkPlan(b *testing.B) {
	r, _ := planRoutes(b).Lookup("smart")
	in := PlanInput{
		Needs:     Needs{OutputTokens: 1024, Stream: true, PromptTokens: prompt(1500)},
		Allowed:   func(string) bool { return true },
		Available: func(m string) (bool, string) { return m != "gpt-4.1", "breaker open" },
		Latency:   func(string) time.Duration { return 0 },
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Plan(in); err != nil {
			b.Fatal(err)
		}
	}
}
