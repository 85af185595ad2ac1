package httpapi_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/tollgate/tollgate/pkg/gateway"
	"github.com/tollgate/tollgate/pkg/llm"
	"github.com/tollgate/tollgate/pkg/tokens"
)

// TestCustomerBudgetOverHTTP: a key whose customers' daily budget fits
// exactly n requests gets 200 concurrent requests of one customer (OpenAI's
// user field): exactly n are served, the others get the customer's 402;
// the key's own budget holds the n and nothing more; the remaining-budget
// header is the smaller of the key's room and the customer's; the report
// by customer equals the ledger table; the customer's status shows its
// spend.
func TestCustomerBudgetOverHTTP(t *testing.T) {
	const n, total = 6, 200
	spec := pricey("pricey")
	s := newStack(t, stackOptions{budgets: true, models: []*gateway.Model{{Name: "pricey", Spec: &spec, Chat: true,
		Deployments: []gateway.Deployment{{Provider: exactSim(t), Upstream: "pricey"}}}}})
	body := func(user string) string {
		return fmt.Sprintf(`{"model":"pricey","max_tokens":40,"user":%q,"messages":[{"role":"user","content":"Write a long essay about toll roads."}]}`, user)
	}
	req, _ := llm.DecodeChatRequest([]byte(body("acme")))
	prompt, _ := tokens.NewCounter().CountChat(tokens.O200K, "pricey", req)
	each := spec.EstimateCost(prompt, 40).Micros // what every request reserves and costs
	keyLimit := llm.USD(1000)

	status, created, raw := adminDo(t, s, "POST", "/admin/keys", fmt.Sprintf(`{"name":"shop","budgets":[{"period":"monthly","limit_usd":%s}],
		"customer_budgets":{"default":[{"period":"daily","limit_usd":%s}]}}`, keyLimit, n*each))
	if status != 201 {
		t.Fatalf("create: %d %s", status, raw)
	}
	secret, id := created["key"].(string), created["id"].(string)
	if cb, _ := created["customer_budgets"].(map[string]any); cb == nil || cb["default"] == nil {
		t.Fatalf("the key's detail does not show its customer budgets: %s", raw)
	}

	var (
		wg         sync.WaitGroup
		mu         sync.Mutex
		ok, no     int
		unexpected []string
	)
	for range total {
		wg.Go(func() {
			resp, b := postChat(t, s, secret, body("acme"))
			if resp == nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			switch resp.StatusCode {
			case 200:
				ok++
			case 402:
				no++
				var env struct {
					Error struct{ Type, Code, Message string }
				}
				_ = json.Unmarshal([]byte(b), &env)
				if env.Error.Code != "budget_exceeded" || !strings.Contains(env.Error.Message, `customer "acme"`) {
					unexpected = append(unexpected, "402 shape: "+b)
				}
			default:
				unexpected = append(unexpected, fmt.Sprintf("%d %s", resp.StatusCode, b))
			}
		})
	}
	wg.Wait()
	if len(unexpected) > 0 {
		t.Fatalf("%d unexpected answers, first: %s", len(unexpected), unexpected[0])
	}
	if ok != n || no != total-n {
		t.Fatalf("%d served, %d refused; want exactly %d served", ok, no, n)
	}
	_, detail, raw := adminDo(t, s, "GET", "/admin/keys/"+id, "")
	b := detail["budgets"].([]any)[0].(map[string]any)
	if spent, reserved := usd(t, b["spent_usd"]), usd(t, b["reserved_usd"]); spent != n*each || reserved != 0 {
		t.Fatalf("the key spent %s, holds %s; want %s, nothing: %s", spent, reserved, n*each, raw)
	}
	_, cs, raw := adminDo(t, s, "GET", "/admin/keys/"+id+"/customers/acme", "")
	cb := cs["budgets"].([]any)[0].(map[string]any)
	if usd(t, cb["spent_usd"]) != n*each || usd(t, cb["remaining_usd"]) != 0 || cs["counted"] != true {
		t.Fatalf("acme's status: %s", raw)
	}

	// Another customer's remaining header is its own room (smaller than
	// the key's).
	resp, got := postChat(t, s, secret, body("bob"))
	if resp.StatusCode != 200 {
		t.Fatalf("bob: %d %s", resp.StatusCode, got)
	}
	if rem := resp.Header.Get("x-tollgate-budget-remaining-usd"); usd(t, rem) != (n-1)*each {
		t.Fatalf("bob's remaining header %s, want %s (his customer budget, not the key's)", rem, (n-1)*each)
	}

	// The report by customer equals the ledger table.
	_, rep, raw := adminDo(t, s, "GET", "/admin/reports/cost?group_by=customer", "")
	for _, r := range rep["rows"].([]any) {
		row := r.(map[string]any)
		var count, cost int64
		if err := s.db.QueryRow(`SELECT COUNT(*), COALESCE(SUM(cost), 0) FROM budget_ledger WHERE customer = ?`, row["customer"]).Scan(&count, &cost); err != nil {
			t.Fatal(err)
		}
		if int64(row["requests"].(float64)) != count || usd(t, row["cost_usd"]) != llm.Micros(cost) {
			t.Fatalf("report row %v, ledger %d rows costing %d: %s", row, count, cost, raw)
		}
	}
	_, acme, raw := adminDo(t, s, "GET", "/admin/reports/cost?customer=acme", "")
	if tot := acme["totals"].(map[string]any); int(tot["requests"].(float64)) != total || usd(t, tot["cost_usd"]) != n*each {
		t.Fatalf("acme's report: %s", raw)
	}
}

// TestCustomerBudgetsAdminValidation: customer_budgets of a bad shape are
// a 400 naming the field, by PUT, PATCH and POST; PATCH changes them
// alone and {} removes them.
func TestCustomerBudgetsAdminValidation(t *testing.T) {
	s := newStack(t, stackOptions{budgets: true})
	_, created, _ := adminDo(t, s, "POST", "/admin/keys", `{"name":"shop"}`)
	id := created["id"].(string)
	tests := []struct {
		name, method, path, body, want string
	}{
		{"put bad period", "PUT", "/admin/keys/" + id + "/budget", `{"customer_budgets":{"default":[{"period":"hourly","limit_usd":"1"}]}}`, "customer_budgets.default[0].period"},
		{"patch negative", "PATCH", "/admin/keys/" + id, `{"customer_budgets":{"customers":{"acme":[{"period":"daily","limit_usd":"-2"}]}}}`, `customer_budgets.customers[\"acme\"][0].limit_usd`},
		{"patch not an object", "PATCH", "/admin/keys/" + id, `{"customer_budgets":[1]}`, "customer_budgets"},
		{"patch unknown field", "PATCH", "/admin/keys/" + id, `{"customer_budgets":{"defaults":[]}}`, "defaults"},
		{"create bad threshold", "POST", "/admin/keys", `{"name":"x","customer_budgets":{"default":[{"period":"daily","limit_usd":"1","alert_thresholds":[3]}]}}`, "customer_budgets.default[0].alert_thresholds[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _, raw := adminDo(t, s, tt.method, tt.path, tt.body)
			if status != 400 || !strings.Contains(raw, tt.want) {
				t.Fatalf("%d %s; want 400 naming %s", status, raw, tt.want)
			}
		})
	}
	status, detail, raw := adminDo(t, s, "PATCH", "/admin/keys/"+id, `{"customer_budgets":{"customers":{"acme":[{"period":"daily","limit_usd":"2"}]}}}`)
	if cb, _ := detail["customer_budgets"].(map[string]any); status != 200 || cb == nil || cb["customers"] == nil {
		t.Fatalf("patch: %d %s", status, raw)
	}
	status, detail, raw = adminDo(t, s, "PATCH", "/admin/keys/"+id, `{"customer_budgets":{}}`)
	if status != 200 || detail["customer_budgets"] != nil {
		t.Fatalf("patch {}: %d %s; want customer_budgets null", status, raw)
	}
}

// TestSeedCustomerAndTagsReachTheLedger joins the request fields to the
// ledger: each surface's way of naming the customer (customer_identifier,
// customer_params, OpenAI's user, Anthropic's metadata.user_id, the
// Responses user) and of tagging (metadata) lands on the request's ledger
// row, and the reports by customer and by tag equal the ledger table to
// the micro-dollar.
func TestSeedCustomerAndTagsReachTheLedger(t *testing.T) {
	spec := pricey("pricey")
	s := newStack(t, stackOptions{budgets: true, responses: true, models: []*gateway.Model{{Name: "pricey", Spec: &spec, Chat: true,
		Deployments: []gateway.Deployment{{Provider: exactSim(t), Upstream: "pricey"}}}}})
	status, created, raw := adminDo(t, s, "POST", "/admin/keys", `{"name":"shop"}`)
	if status != 201 {
		t.Fatalf("create: %d %s", status, raw)
	}
	secret := created["key"].(string)
	msg := func(prompt string) string { return fmt.Sprintf(`"messages":[{"role":"user","content":%q}]`, prompt) }
	tests := []struct {
		name, path, body string
		customer         string
		tags             string // the ledger's column
	}{
		{"chat: customer_identifier and metadata", "/v1/chat/completions",
			`{"model":"pricey","max_tokens":20,` + msg("one") + `,"customer_identifier":"acme","metadata":{"team":"search","env":"prod"}}`, "acme", `["env=prod","team=search"]`},
		{"chat: customer_params", "/v1/chat/completions",
			`{"model":"pricey","max_tokens":20,` + msg("two") + `,"customer_params":{"customer_identifier":"bolt","name":"Bolt Ltd"},"metadata":{"team":"ads"}}`, "bolt", `["team=ads"]`},
		{"chat: customer_identifier wins over user", "/v1/chat/completions",
			`{"model":"pricey","max_tokens":20,` + msg("three") + `,"user":"u-1","customer_identifier":"acme"}`, "acme", `[]`},
		{"chat: OpenAI's user", "/v1/chat/completions",
			`{"model":"pricey","max_tokens":20,` + msg("four") + `,"user":"carl"}`, "carl", `[]`},
		{"legacy completions: customer_identifier", "/v1/completions",
			`{"model":"pricey","max_tokens":20,"prompt":"five","customer_identifier":"dana","metadata":{"team":"search"}}`, "dana", `["team=search"]`},
		{"messages: metadata.user_id", "/v1/messages",
			`{"model":"pricey","max_tokens":20,` + msg("six") + `,"metadata":{"user_id":"erin"}}`, "erin", `[]`},
		{"responses: user and metadata", "/v1/responses",
			`{"model":"pricey","max_output_tokens":20,"input":"seven","user":"fay","metadata":{"team":"search"}}`, "fay", `["team=search"]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, h, body := adminCall(t, s, "POST", tt.path, tt.body, map[string]string{
				"Authorization": "Bearer " + secret, "Content-Type": "application/json", "anthropic-version": "2023-06-01"})
			if status != 200 {
				t.Fatalf("%d %s", status, body)
			}
			id := h.Get("x-tollgate-request-id")
			adminDo(t, s, "GET", "/admin/reports/cost", "") // the report flushes the ledger's writer
			var customer, tags string
			if err := s.db.QueryRow(`SELECT customer, tags FROM budget_ledger WHERE request_id = ?`, id).Scan(&customer, &tags); err != nil {
				t.Fatal(err)
			}
			if customer != tt.customer || tags != tt.tags {
				t.Fatalf("ledger row: customer %q tags %s; want %q %s", customer, tags, tt.customer, tt.tags)
			}
		})
	}

	check := func(groupBy, where string) {
		t.Helper()
		_, rep, raw := adminDo(t, s, "GET", "/admin/reports/cost?group_by="+groupBy, "")
		rows := rep["rows"].([]any)
		if len(rows) == 0 {
			t.Fatalf("no rows by %s: %s", groupBy, raw)
		}
		for _, r := range rows {
			row := r.(map[string]any)
			var count, cost int64
			arg, cond := row[groupBy].(string), where
			switch {
			case groupBy == "tag" && arg == "":
				cond = "tags = '[]' AND ? = ''" // untagged rows group under ""
			case groupBy == "tag":
				arg = `%"` + arg + `"%`
			}
			if err := s.db.QueryRow(`SELECT COUNT(*), COALESCE(SUM(cost), 0) FROM budget_ledger WHERE `+cond, arg).Scan(&count, &cost); err != nil {
				t.Fatal(err)
			}
			if int64(row["requests"].(float64)) != count || usd(t, row["cost_usd"]) != llm.Micros(cost) || cost == 0 {
				t.Fatalf("report by %s: row %v, ledger %d rows costing %d µ$: %s", groupBy, row, count, cost, raw)
			}
		}
	}
	check("customer", "customer = ?")
	check("tag", "tags LIKE ?")
}
