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
