package gateway

import (
	"github.com/tollgate/tollgate/pkg/llm"
)

// CountTokens counts req's prompt as the gateway counts it for budgets,
// with the tokenizer of the first model of its route that the key may
// use (Anthropic's POST /v1/messages/count_tokens). The route and the
// key's permissions are checked (404, 403); nothing is charged: no rate
// limit, no reservation, no ledger row.
func (g *Gateway) CountTokens(c Caller, req *llm.ChatRequest) (int, error) {
	x := g.begin(c, req.Model)
	if err := x.resolve(req); err != nil {
		return 0, err
	}
	models := x.route.Models()
	m := models[0]
	if x.allowed != nil {
		for _, cand := range models {
			if x.allowed(cand.Name) {
				m = cand
				break
			}
		}
	}
	return x.promptTokens(m, req)
}
