package gateway

import (
	"context"

	"github.com/tollgate/tollgate/pkg/llm"
	"github.com/tollgate/tollgate/pkg/providers"
)

// A request that carries a Responses body (llm.ChatRequest.ResponsesBody)
// is sent natively to a deployment whose provider serves the Responses
// API, and as its chat translation to any other: the choice is made per
// attempt, so a fallback between the two kinds works either way and the
// rest of the flow does not know which it was.

// responder is p as a Responses upstream for req, or nil when req is a
// plain chat request or p does not serve the Responses API.
func responder(p providers.Provider, req *llm.ChatRequest) providers.Responder {
	if len(req.ResponsesBody) == 0 {
		return nil
	}
	if r, ok := p.(providers.Responder); ok && r.ServesResponses() {
		return r
	}
	return nil
}

// chatCall sends one non-streamed attempt.
func chatCall(ctx context.Context, p providers.Provider, pr *providers.Request) (*llm.ChatResponse, error) {
	if r := responder(p, pr.Chat); r != nil {
		return r.Respond(ctx, pr)
	}
	return p.Chat(ctx, pr)
}

// streamCall opens one streamed attempt.
func streamCall(ctx context.Context, p providers.Provider, pr *providers.Request) (providers.Stream, error) {
	if r := responder(p, pr.Chat); r != nil {
		return r.StreamResponse(ctx, pr)
	}
	return p.Stream(ctx, pr)
}
