package gateway

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/tollgate/tollgate/pkg/budget"
	"github.com/tollgate/tollgate/pkg/llm"
	"github.com/tollgate/tollgate/pkg/router"
	"github.com/tollgate/tollgate/pkg/semcache"
)

// HeaderBudgetRemaining is the key's smallest remaining budget after the call.
const HeaderBudgetRemaining = budget.HeaderRemaining

// unknownOutputCap is reserved for a model whose output limit is unknown
// when the client set none.
const unknownOutputCap = 4096

// spender holds a request's budget reservation while its candidates are
// tried: each candidate reserves its own maximum cost before it is called
// (a fallback to a dearer model must fit too), and the reservation is
// settled to the actual cost or released.
type spender struct {
	g         *Gateway
	c         Caller
	output    int // the client's completion cap, 0: the model's own
	choices   int
	downgrade bool // on_exhausted downgrade, from the key's policy or the route
	limited   bool // the key has at least one limit
	res       budget.Reservation
	held      bool
}

func (g *Gateway) spender(c Caller, req *llm.ChatRequest, route *router.Route) *spender {
	if g.ledger == nil {
		return nil
	}
	sp := &spender{g: g, c: c, choices: 1}
	if req != nil {
		sp.output, sp.choices = req.OutputLimit(), req.Choices()
	}
	p, _ := g.ledger.Policy(c.Key.ID)
	sp.downgrade = p.OnExhausted == budget.Downgrade || (route != nil && route.Downgrade)
	sp.limited = len(p.Limits) > 0
	return sp
}

// hold reserves the most the step can cost: its prompt at the input price
// and its whole output cap (n times) at the output price.
func (sp *spender) hold(ctx context.Context, step *router.Step) error {
	if sp == nil {
		return nil
	}
	out := 0
	if step.Model.Mode == router.ModeChat {
		if out = sp.output; out == 0 {
			if out = step.Model.MaxOutputTokens; out == 0 {
				out = unknownOutputCap
			}
		}
	}
	cost := step.Model.EstimateCost(step.PromptTokens, out*sp.choices)
	if cost.Unpriced && sp.limited {
		return &llm.Error{Status: http.StatusBadRequest, Type: llm.TypeInvalidRequest, Code: "model_unpriced", Param: "model",
			Message: "the model " + step.Model.Name + " has no known price, so it cannot be used by a key with a budget; give it a price in the config"}
	}
	sp.release()
	res, err := sp.g.ledger.Reserve(ctx, sp.c.Key.ID, sp.c.RequestID, cost.Micros)
	if err != nil {
		return err
	}
	sp.res, sp.held = res, true
	return nil
}

func (sp *spender) release() {
	if sp != nil && sp.held {
		sp.g.ledger.Release(sp.res)
		sp.held = false
	}
}

// rateLimit charges the request to the key's requests and tokens per
// minute (prompt tokens as counted for the first candidate).
func (g *Gateway) rateLimit(c Caller, meta *Meta, plan *router.Plan) error {
	if g.ledger == nil {
		return nil
	}
	tokens := 0
	if len(plan.Steps) > 0 {
		tokens = plan.Steps[0].PromptTokens
	}
	state, err := g.ledger.Allow(c.Key.ID, tokens)
	if err != nil {
		return err
	}
	if meta.Header == nil {
		meta.Header = http.Header{}
	}
	state.SetHeaders(meta.Header)
	return nil
}

// tryWithin tries the plan; when the key's budget fits none of its
// candidates and the key's policy says downgrade, it asks the router for
// the cheapest capable served model whose cost fits what is left, and
// records what the downgrade saved against the model asked for.
func (g *Gateway) tryWithin(ctx context.Context, c Caller, meta *Meta, plan *router.Plan, req *llm.ChatRequest, sp *spender, stream bool, do call) error {
	err := g.try(ctx, c, meta, plan.Steps, sp, stream, do)
	if err == nil || sp == nil || !sp.downgrade || g.downgrade == nil || !errors.Is(err, budget.ErrExhausted) {
		return err
	}
	remaining, _ := g.ledger.Remaining(c.Key.ID)
	if remaining <= 0 {
		return err
	}
	down, derr := g.makePlan(c, g.downgrade, c.Key.Allows, req, remaining)
	if derr != nil {
		return err // nothing cheaper can serve it: the 402 stands
	}
	requested := plan.Steps[0].Model
	meta.Route = "downgraded from " + requested.Name + " (budget); " + down.Explanation
	meta.Downgraded = true
	meta.requested = requested
	return g.try(ctx, c, meta, down.Steps, sp, stream, do)
}

// commit writes the request's ledger row: for a reservation, the settle
// that makes its cost durable (the client is answered only after it), else
// a plain record.
func (g *Gateway) commit(ctx context.Context, c Caller, meta *Meta, start time.Time, sp *spender, status int) error {
	if g.ledger == nil {
		return nil
	}
	if meta.Downgraded && meta.requested != nil {
		var full router.Cost
		if meta.Usage != nil {
			full = meta.requested.Cost(meta.Usage)
		} else {
			full = meta.requested.EstimateCost(meta.PromptTokens, meta.CompletionTokens)
		}
		if !full.Unpriced && full.Micros > meta.Cost.Micros {
			meta.Saved = full.Micros - meta.Cost.Micros
		}
	}
	entry := g.entry(c, meta, start, status)
	if sp == nil || !sp.held {
		g.ledger.Record(entry)
		return nil
	}
	// The upstream has been paid: record it even if the client has left.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	err := g.ledger.Settle(sctx, sp.res, entry)
	sp.held = false
	if err != nil {
		g.log.Error("ledger: settle failed", "request_id", c.RequestID, "key_id", c.Key.ID, "err", err)
		return &llm.Error{Status: http.StatusInternalServerError, Type: llm.TypeServer, Code: "ledger_unavailable",
			Message: "tollgate could not record this request in its spend ledger, so it does not answer it", Err: err}
	}
	if remaining, limited := g.ledger.Remaining(c.Key.ID); limited {
		if meta.Header == nil {
			meta.Header = http.Header{}
		}
		meta.Header.Set(HeaderBudgetRemaining, remaining.String())
	}
	return nil
}

// fail releases what the request held and records it with the status the
// client gets.
func (g *Gateway) fail(c Caller, meta *Meta, err error, start time.Time, sp *spender) error {
	sp.release()
	if g.ledger == nil || c.Key == nil {
		return err
	}
	if meta == nil {
		meta = &Meta{}
	}
	g.ledger.Record(g.entry(c, meta, start, llm.ForClient(err).Status))
	return err
}

func (g *Gateway) entry(c Caller, meta *Meta, start time.Time, status int) budget.Entry {
	e := budget.Entry{
		RequestID: c.RequestID, KeyID: c.Key.ID, Route: meta.Requested, RequestedModel: meta.Requested,
		Model: meta.Model, Provider: meta.Provider,
		PromptTokens: meta.PromptTokens, CompletionTokens: meta.CompletionTokens,
		Cost: meta.Cost.Micros, Saved: meta.Saved, Estimated: meta.Cost.Estimated, Unpriced: meta.Cost.Unpriced,
		Cache: meta.Cache, Status: status, Latency: g.now().Sub(start), Attempts: meta.Attempts,
	}
	if e.Cache == "" {
		e.Cache = semcache.KindBypass
	}
	if meta.Usage != nil {
		e.PromptTokens = meta.Usage.PromptTokens
		e.CachedTokens = meta.Usage.CachedTokens()
	}
	return e
}
