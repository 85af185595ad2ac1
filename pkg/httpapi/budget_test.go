package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/tollgate/tollgate/pkg/budget"
	"github.com/tollgate/tollgate/pkg/gateway"
	"github.com/tollgate/tollgate/pkg/llm"
	"github.com/tollgate/tollgate/pkg/providers"
	"github.com/tollgate/tollgate/pkg/router"
	"github.com/tollgate/tollgate/pkg/tokens"
)

// pricey is sim-small at prices that make every token count: $100 per
// million prompt tokens, $1,000 per million completion tokens.
func pricey(name string) router.Model {
	m := renamed(name, "sim-small")
	m.InputPrice, m.OutputPrice, m.CachedInputPrice = 100_000_000, 1_000_000_000, router.PriceUnknown
	return m
}

// exactSim reports the prompt tokens the gateway counts, so a request's
// actual cost equals its reservation when it is cut at max_tokens.
func exactSim(t *testing.T) *providers.Sim {
	counter := tokens.NewCounter()
	return newSim(t, providers.SimConfig{CountPrompt: func(r *llm.ChatRequest) int {
		n, _ := counter.CountChat(tokens.O200K, r.Model, r)
		return n
	}})
}

func postChat(t *testing.T, s *stack, secret, body string) (*http.Response, string) {
	req, _ := http.NewRequest("POST", s.srv.URL+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return nil, ""
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func usd(t *testing.T, v any) llm.Micros {
	m, err := budget.ParseUSD(fmt.Sprint(v))
	if err != nil {
		t.Fatalf("%v: %v", v, err)
	}
	return m
}

// TestBudgetNeverOverspentUnderConcurrency: a key whose budget fits exactly
// N requests gets 50·N concurrent ones with varied max_tokens. Every
// request costs exactly what it reserves (the sim is cut at max_tokens and
// reports the prompt tokens the gateway counts), and every cost lies in
// (limit/(N+1), limit/N], so any N fit and no N+1 do: exactly N succeed,
// whatever the interleaving, and the rest get 402.
func TestBudgetNeverOverspentUnderConcurrency(t *testing.T) {
	const n = 8
	spec := pricey("pricey")
	s := newStack(t, stackOptions{budgets: true, models: []*gateway.Model{{Name: "pricey", Spec: &spec, Chat: true,
		Deployments: []gateway.Deployment{{Provider: exactSim(t), Upstream: "pricey"}}}}})

	body := func(maxTokens int) string {
		return fmt.Sprintf(`{"model":"pricey","max_tokens":%d,"messages":[{"role":"user","content":"Write a long essay about the history of toll roads in Europe."}]}`, maxTokens)
	}
	req, _ := llm.DecodeChatRequest([]byte(body(1)))
	prompt, _ := tokens.NewCounter().CountChat(tokens.O200K, "pricey", req)
	cost := func(k int) llm.Micros { return spec.EstimateCost(prompt, k).Micros }
	sizes := []int{40, 41, 42, 43, 44}
	limit := n * cost(44)
	if (n+1)*cost(40) <= limit {
		t.Fatalf("sizes do not separate N from N+1: %d vs %d", (n+1)*cost(40), limit)
	}

	status, created, raw := adminDo(t, s, "POST", "/admin/keys", fmt.Sprintf(`{"name":"burst","budgets":[{"period":"daily","limit_usd":%s}]}`, limit.String()))
	if status != 201 {
		t.Fatalf("create: %d %s", status, raw)
	}
	secret, id := created["key"].(string), created["id"].(string)

	var (
		wg            sync.WaitGroup
		mu            sync.Mutex
		ok, refused   int
		okCost        llm.Micros
		unexpected    []string
		retryAfterSet = true
	)
	for i := 0; i < 50*n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			k := sizes[i%len(sizes)]
			resp, b := postChat(t, s, secret, body(k))
			if resp == nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			switch resp.StatusCode {
			case 200:
				ok++
				okCost += usd(t, resp.Header.Get("x-tollgate-cost-usd"))
			case 402:
				refused++
				var env struct{ Error struct{ Type, Code string } }
				_ = json.Unmarshal([]byte(b), &env)
				if env.Error.Type != "insufficient_quota" || env.Error.Code != "budget_exceeded" || resp.Header.Get("x-tollgate-budget-remaining-usd") == "" {
					unexpected = append(unexpected, "402 shape: "+b)
				}
				if resp.Header.Get("Retry-After") == "" {
					retryAfterSet = false
				}
			default:
				unexpected = append(unexpected, fmt.Sprintf("%d %s", resp.StatusCode, b))
			}
		}(i)
	}
	wg.Wait()
	if len(unexpected) > 0 {
		t.Fatalf("%d unexpected answers, first: %s", len(unexpected), unexpected[0])
	}
	if ok != n || refused != 49*n || !retryAfterSet {
		t.Fatalf("%d served, %d refused (Retry-After on all: %v); want exactly %d served", ok, refused, retryAfterSet, n)
	}
	_, detail, raw := adminDo(t, s, "GET", "/admin/keys/"+id, "")
	b := detail["budgets"].([]any)[0].(map[string]any)
	spent, reserved := usd(t, b["spent_usd"]), usd(t, b["reserved_usd"])
	if spent > limit || spent != okCost || reserved != 0 {
		t.Fatalf("spent %s (served %s) reserved %s limit %s: %s", spent, okCost, reserved, limit, raw)
	}
	// Every request is a ledger row; the served ones carry the money.
	_, hist, _ := adminDo(t, s, "GET", "/admin/keys/"+id+"/spend?limit=1000", "")
	rows := hist["data"].([]any)
	var sum llm.Micros
	statuses := map[float64]int{}
	for _, r := range rows {
		row := r.(map[string]any)
		sum += usd(t, row["cost_usd"])
		statuses[row["status"].(float64)]++
	}
	if len(rows) != 50*n || sum != spent || statuses[200] != n || statuses[402] != 49*n {
		t.Fatalf("ledger: %d rows, sum %s, statuses %v; want %d rows summing to %s", len(rows), sum, statuses, 50*n, spent)
	}
}

func TestBudgetDowngradeServesACheaperCapableModel(t *testing.T) {
	sim := exactSim(t)
	s := newStack(t, stackOptions{budgets: true, models: simModels(sim)})
	// sim-large costs 10x sim-small: $0.0005 fits sim-small's reservation
	// for this request, not sim-large's.
	status, created, raw := adminDo(t, s, "POST", "/admin/keys", `{"name":"thrifty","on_exhausted":"downgrade","budgets":[{"period":"total","limit_usd":0.0005}]}`)
	if status != 201 {
		t.Fatalf("%d %s", status, raw)
	}
	var h http.Header
	resp, err := s.client(created["key"].(string), headerCapture(&h)).Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model: "sim-large", MaxTokens: openai.Int(200), Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Summarise the plot of Hamlet.")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if h.Get("x-tollgate-model") != "sim-small" || !strings.HasPrefix(h.Get("x-tollgate-route"), "downgraded from sim-large (budget)") || resp.Choices[0].Message.Content == "" {
		t.Fatalf("model %q route %q", h.Get("x-tollgate-model"), h.Get("x-tollgate-route"))
	}
	_, hist, _ := adminDo(t, s, "GET", "/admin/keys/"+created["id"].(string)+"/spend", "")
	row := hist["data"].([]any)[0].(map[string]any)
	if row["requested_model"] != "sim-large" || row["model"] != "sim-small" || usd(t, row["saved_usd"]) <= 0 {
		t.Fatalf("ledger row %v", row)
	}

	// The same request on a key that rejects gets the 402, with the reset.
	status, created, _ = adminDo(t, s, "POST", "/admin/keys", `{"name":"strict","budgets":[{"period":"monthly","limit_usd":0.0005}]}`)
	if status != 201 {
		t.Fatal(status)
	}
	_, err = s.client(created["key"].(string), headerCapture(&h)).Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model: "sim-large", MaxTokens: openai.Int(200), Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Summarise the plot of Hamlet.")},
	})
	apiErr := assertAPIError(t, err, 402, "")
	if apiErr.Type != "insufficient_quota" || apiErr.Code != "budget_exceeded" {
		t.Fatalf("402 envelope %q %q", apiErr.Type, apiErr.Code)
	}
	if secs, err := strconv.Atoi(apiErr.Response.Header.Get("Retry-After")); err != nil || secs <= 0 || apiErr.Response.Header.Get("x-tollgate-budget-reset") == "" {
		t.Fatalf("Retry-After %q reset %q", apiErr.Response.Header.Get("Retry-After"), apiErr.Response.Header.Get("x-tollgate-budget-reset"))
	}
}

func TestRateLimitsPerKey(t *testing.T) {
	s := newStack(t, stackOptions{budgets: true})
	status, created, raw := adminDo(t, s, "POST", "/admin/keys", `{"name":"slow","rpm":2}`)
	if status != 201 {
		t.Fatalf("%d %s", status, raw)
	}
	var h http.Header
	client := s.client(created["key"].(string), headerCapture(&h))
	for i := 0; i < 2; i++ {
		if _, err := client.Chat.Completions.New(context.Background(), ask("sim-small", "hi")); err != nil {
			t.Fatal(err)
		}
	}
	if h.Get("x-ratelimit-limit-requests") != "2" || h.Get("x-ratelimit-remaining-requests") != "0" {
		t.Fatalf("rate headers %v", h)
	}
	_, err := client.Chat.Completions.New(context.Background(), ask("sim-small", "hi"))
	apiErr := assertAPIError(t, err, 429, "")
	if apiErr.Response.Header.Get("Retry-After") == "" || apiErr.Type != "rate_limit_error" {
		t.Fatalf("429 without Retry-After or type: %v", apiErr.Response.Header)
	}
}

func TestBudgetAdminAPIAndReports(t *testing.T) {
	s := newStack(t, stackOptions{budgets: true})
	status, created, raw := adminDo(t, s, "POST", "/admin/keys", `{"name":"team","budgets":[{"period":"daily","limit_usd":5,"alert_thresholds":[0.5,1]},{"period":"monthly","limit_usd":"100.25"}],"tpm":100000,"alert_webhooks":[{"url":"https://hooks.example.com/x"}]}`)
	if status != 201 || !strings.Contains(raw, `"limit_usd":"5.000000"`) && !strings.Contains(raw, `"limit_usd":5`) {
		t.Fatalf("%d %s", status, raw)
	}
	id := created["id"].(string)
	for i := 0; i < 3; i++ {
		if _, err := s.client(created["key"].(string)).Chat.Completions.New(context.Background(), ask("sim-small", fmt.Sprintf("question %d", i))); err != nil {
			t.Fatal(err)
		}
	}
	_, detail, raw := adminDo(t, s, "GET", "/admin/keys/"+id, "")
	budgets := detail["budgets"].([]any)
	if len(budgets) != 2 {
		t.Fatalf("budgets: %s", raw)
	}
	for _, f := range []string{"period", "limit_usd", "spent_usd", "reserved_usd", "remaining_usd", "resets_at"} {
		if _, ok := budgets[0].(map[string]any)[f]; !ok {
			t.Fatalf("budget lacks %s: %s", f, raw)
		}
	}
	// PUT replaces the policy; bad ones are 400s naming the field.
	status, _, raw = adminDo(t, s, "PUT", "/admin/keys/"+id+"/budget", `{"budgets":[{"period":"hourly","limit_usd":1}]}`)
	if status != 400 || !strings.Contains(raw, "budgets[0].period") {
		t.Fatalf("bad period accepted: %d %s", status, raw)
	}
	status, _, raw = adminDo(t, s, "PUT", "/admin/keys/"+id+"/budget", `{"budgets":[{"period":"weekly","limit_usd":1}],"rpm":60}`)
	if status != 200 || !strings.Contains(raw, `"weekly"`) || !strings.Contains(raw, `"rpm":60`) {
		t.Fatalf("%d %s", status, raw)
	}

	// The report's numbers are the ledger's, to the micro-dollar.
	_, hist, _ := adminDo(t, s, "GET", "/admin/keys/"+id+"/spend", "")
	var sum llm.Micros
	for _, r := range hist["data"].([]any) {
		sum += usd(t, r.(map[string]any)["cost_usd"])
	}
	status, rep, raw := adminDo(t, s, "GET", "/admin/reports/cost?group_by=key,model&from=2000-01-01", "")
	if status != 200 {
		t.Fatalf("%d %s", status, raw)
	}
	if usd(t, rep["totals"].(map[string]any)["cost_usd"]) != sum || sum == 0 {
		t.Fatalf("report totals %v, ledger sum %s", rep["totals"], sum)
	}
	req, _ := http.NewRequest("GET", s.srv.URL+"/admin/reports/cost?group_by=model,day&format=csv", nil)
	req.Header.Set("Authorization", "Bearer "+adminKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	csv, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(string(csv), "model,day,requests,prompt_tokens,completion_tokens,cost_usd,saved_usd") || !strings.Contains(string(csv), "\ntotal,") {
		t.Fatalf("csv %d:\n%s", resp.StatusCode, csv)
	}
	for _, bad := range []string{"group_by=colour", "format=xml", "from=yesterday"} {
		if status, _, raw := adminDo(t, s, "GET", "/admin/reports/cost?"+bad, ""); status != 400 {
			t.Errorf("%s: %d %s", bad, status, raw)
		}
	}
	_ = option.WithHeader
}

func TestRouteLevelDowngrade(t *testing.T) {
	sim := exactSim(t)
	routes := routesOver(t, []router.Model{*spec("sim-small"), *spec("sim-large")},
		router.Route{Name: "big", Strategy: router.StrategyPriority, Candidates: []string{"sim-large"}, Downgrade: true})
	s := newStack(t, stackOptions{budgets: true, models: simModels(sim), routes: routes})
	// The key itself rejects; the route downgrades.
	status, created, raw := adminDo(t, s, "POST", "/admin/keys", `{"name":"strict","budgets":[{"period":"total","limit_usd":0.0005}]}`)
	if status != 201 {
		t.Fatalf("%d %s", status, raw)
	}
	var h http.Header
	params := openai.ChatCompletionNewParams{Model: "big", MaxTokens: openai.Int(200),
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Summarise the plot of Hamlet.")}}
	if _, err := s.client(created["key"].(string), headerCapture(&h)).Chat.Completions.New(context.Background(), params); err != nil {
		t.Fatal(err)
	}
	if h.Get("x-tollgate-model") != "sim-small" || !strings.HasPrefix(h.Get("x-tollgate-route"), "downgraded from sim-large") {
		t.Fatalf("model %q route %q", h.Get("x-tollgate-model"), h.Get("x-tollgate-route"))
	}
	// The same key asking for sim-large directly is refused.
	params.Model = "sim-large"
	_, err := s.client(created["key"].(string)).Chat.Completions.New(context.Background(), params)
	assertAPIError(t, err, 402, "")
}
