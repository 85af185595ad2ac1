// Package gateway is tollgate's request flow and nothing else. Each request
// is one exchange: it owns the caller, the route, what happened (Meta), the
// start time, the cache query and the budget reservation, and its steps are
// its methods, in the order they run:
//
//	resolve → guard → admit → lookup → collapse → [verify] → plan → reserve → attempt → store → finish
//
// guard (guard.go) adds the route's prompt enrichment and masks or refuses
// what the request's guards match, before anything reads the prompt.
//
// Chat, Stream and Embed differ only in their middle step. verify asks a
// judge model about a semantic candidate the cache is uncertain of, when
// one is configured; the judge's call is reserved, attempted and charged
// like any call, and is part of the request's one ledger row. finish runs
// deferred, exactly once, panics included: it settles or releases the
// reservation and writes the request's one ledger row. This file is the
// flow, top to bottom; attempt.go is the retry and fallback loop. The rest
// is detail: stream.go a streamed answer, cache.go the map of in-flight
// misses and the replayed stream, setup.go the Gateway's construction.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/tollgate/tollgate/pkg/budget"
	"github.com/tollgate/tollgate/pkg/guardrails"
	"github.com/tollgate/tollgate/pkg/keys"
	"github.com/tollgate/tollgate/pkg/llm"
	"github.com/tollgate/tollgate/pkg/providers"
	"github.com/tollgate/tollgate/pkg/router"
	"github.com/tollgate/tollgate/pkg/semcache"
)

// Caller is who is asking: the authenticated key and any provider
// credentials the request carried for this call only (never logged or
// stored).
type Caller struct {
	Key         *keys.Key
	RequestID   string            // makes budget reservations idempotent
	Credentials map[string]string // provider name → API key
	// Cache holds the request's cache directives (Cache-Control,
	// x-tollgate-cache-threshold).
	Cache semcache.Controls
	// Customer is whom the key's application serves with this request
	// (customer_identifier, customer_params, or OpenAI's user); "" when
	// it did not say. Recorded on the ledger row; the key's customer
	// budgets apply to it.
	Customer string
	// Tags are the request's metadata (key → value), recorded on its
	// ledger row for reports by tag.
	Tags map[string]string
	// Options are the request's own routing, cache and logging
	// instructions (options.go).
	Options RequestOptions
}

// Meta is what happened to one request: the access log and the x-tollgate-*
// response headers are made from it. Only the exchange writes it.
type Meta struct {
	Requested string // the model or route the client asked for
	Model     string // the model that served the request
	Provider  string
	Attempts  int
	// Route explains the plan (x-tollgate-route); Fallback says why earlier
	// candidates or deployments did not serve (x-tollgate-fallback).
	Route        string
	Fallback     string
	PromptTokens int        // counted by tollgate before the call
	Usage        *llm.Usage // as the provider reported it; nil when it reported none
	// CompletionTokens is the provider's count, or tollgate's when the
	// provider reported none (then Cost.Estimated is set).
	CompletionTokens int
	Cost             router.Cost
	// Saved is what a downgrade or a cache hit saved against the requested
	// model.
	Saved      llm.Micros
	Downgraded bool
	requested  *router.Model // the model a downgrade replaced
	// Cache is how the cache answered: hit, semantic-hit, miss or bypass
	// ("" when the request did not get that far). A hit has the cached
	// entry's id, a semantic hit its similarity; Reason says why the cache
	// was bypassed or a candidate refused.
	Cache           string
	CacheSimilarity float32
	CacheEntry      uint64
	CacheReason     string
	// CacheVerified is "judge" on a semantic hit a judge confirmed (now,
	// or earlier for the same pair). Judge is the verdict when a judge was
	// asked for this request (budget.JudgeYes, JudgeNo, JudgeFailed), and
	// JudgeCost what it cost: part of Cost, which is what the key pays.
	CacheVerified string
	Judge         string
	JudgeCost     llm.Micros
	// Header holds response headers the flow sets: x-ratelimit-*,
	// x-tollgate-budget-remaining-usd.
	Header http.Header
	// Upstream is the time spent waiting on upstreams: every attempt (a
	// judge's too) and, for a stream, its body until it ended. FirstToken
	// is, for a stream served by an upstream, the time from the request's
	// start to its first chunk (0 otherwise). For metrics: tollgate's own
	// overhead is the request's latency minus Upstream.
	Upstream   time.Duration
	FirstToken time.Duration
	// Guards are the guards that matched, per direction (guards.go);
	// Blocked names the guard that refused the request or its answer ("":
	// none). Enriched says what the route's prompt enrichment added
	// ("+1 system, +1 user"; "" when nothing), shown in x-tollgate-route.
	Guards   []GuardHit
	Blocked  string
	Enriched string
}

// HeaderBudgetRemaining is the key's smallest remaining budget after the call.
const HeaderBudgetRemaining = budget.HeaderRemaining

// CacheProvider is what x-tollgate-provider says of an answer served from
// the cache.
const CacheProvider = "cache"

// Chat serves a non-streamed chat completion.
func (g *Gateway) Chat(ctx context.Context, c Caller, req *llm.ChatRequest) (resp *llm.ChatResponse, meta *Meta, err error) {
	x := g.begin(c, req.Model)
	meta = x.meta
	ctx = x.traceStart(ctx, "chat", req)
	defer func() { err = x.finish(ctx, recover(), err) }()
	if err = x.resolve(req); err != nil {
		return nil, meta, err
	}
	if err = x.guard(req); err != nil {
		return nil, meta, err
	}
	if err = x.admit(req); err != nil {
		return nil, meta, err
	}
	q := x.query(req)
	hit, uncertain, err := x.lookup(ctx, q, req)
	if err != nil {
		return nil, meta, err
	}
	if hit != nil {
		resp, err = x.deliver(responseOf(hit))
		return resp, meta, err
	}
	resp, err = x.collapse(ctx, q, func() (*llm.ChatResponse, error) {
		if hit, err := x.verify(ctx, q, uncertain, req); err != nil || hit != nil {
			return responseOf(hit), err
		}
		return x.complete(ctx, q, req)
	})
	if err != nil {
		return nil, meta, err
	}
	resp, err = x.deliver(resp)
	return resp, meta, err
}

// Stream opens a streamed chat completion (meta is the stream's Meta, also
// when it could not open): the same steps as Chat, but the
// middle one opens an upstream stream (stream.go) and the finish runs when
// the stream ends or is closed. A cache hit is replayed as a stream.
// Identical concurrent streams are not collapsed (a follower would wait for
// the whole answer before its first token), so each asks the judge itself.
func (g *Gateway) Stream(ctx context.Context, c Caller, req *llm.ChatRequest) (st *Stream, meta *Meta, err error) {
	x := g.begin(c, req.Model)
	meta = x.meta
	ctx = x.traceStart(ctx, "chat", req)
	defer func() {
		if v := recover(); v != nil || err != nil {
			err = x.finish(ctx, v, err)
		}
	}()
	if err = x.resolve(req); err != nil {
		return nil, meta, err
	}
	if err = x.guard(req); err != nil {
		return nil, meta, err
	}
	if err = x.admit(req); err != nil {
		return nil, meta, err
	}
	q := x.query(req)
	hit, uncertain, err := x.lookup(ctx, q, req)
	if err == nil && hit == nil {
		hit, err = x.verify(ctx, q, uncertain, req)
	}
	if err != nil {
		return nil, meta, err
	}
	if hit != nil {
		return x.replay(ctx, req, hit), meta, nil
	}
	st, err = x.stream(ctx, q, req)
	return st, meta, err
}

// Embed serves an embeddings request.
func (g *Gateway) Embed(ctx context.Context, c Caller, req *llm.EmbeddingRequest) (resp *llm.EmbeddingResponse, meta *Meta, err error) {
	x := g.begin(c, req.Model)
	meta = x.meta
	ctx = x.traceStart(ctx, "embeddings", nil)
	defer func() { err = x.finish(ctx, recover(), err) }()
	m, err := x.resolveEmbeddings(req.Model)
	if err != nil {
		return nil, meta, err
	}
	if err = x.guardEmbeddings(req); err != nil {
		if lerr := x.charge(0); lerr != nil { // refused, and still counted
			err = lerr
		}
		return nil, meta, err
	}
	step, err := x.countEmbeddings(m, req)
	if err != nil {
		return nil, meta, err
	}
	if err = x.charge(step.PromptTokens); err != nil {
		return nil, meta, err
	}
	resp, err = x.embed(ctx, m, step, req)
	return resp, meta, err
}

// exchange is one request, from its arrival to its ledger row.
type exchange struct {
	g     *Gateway
	t     *table // the routing table it began with, to its end
	c     Caller
	meta  *Meta
	start time.Time

	route   *router.Route
	allowed func(string) bool // nil: every candidate of the route
	opt     *optionPlan       // what the request's options route to (nil: none)
	policy  budget.Policy     // the key's, read once
	counts  map[string]int    // prompt tokens per tokenizer, counted once

	// The reservation: held while a candidate is tried, charged once an
	// upstream has produced something (from then on it is settled, never
	// released).
	res     budget.Reservation
	held    bool
	charged bool
	done    bool // finish has run

	out      output // what the client lets each choice generate
	reserved int    // output tokens reserved for the step being tried, all choices
	// judged is what the judge cost: spent before any step, so every later
	// reservation holds it too, and every cost of the request includes it.
	judged router.Cost
	trace  *exchangeTrace // nil when not tracing (trace.go)
	// run applies the request's guards to it and its answer (guard.go;
	// nil: no guards); answerGuarded is set once the answer of this
	// exchange's own upstream call has been masked.
	run           *guardrails.Run
	answerGuarded bool
}

func (g *Gateway) begin(c Caller, requested string) *exchange {
	x := &exchange{g: g, t: g.tab.Load(), c: c, meta: &Meta{Requested: requested}, start: g.now()}
	if g.accounts != nil && c.Key != nil {
		x.policy, _ = g.accounts.Policy(c.Key.ID)
	}
	return x
}

// resolve finds the route for the model asked for and which of its
// candidates the key may use (404 / 403), and refuses an output limit no
// candidate can honour (400) before anything, a cache hit included, can
// answer; so are the models the request's options name.
func (x *exchange) resolve(req *llm.ChatRequest) error {
	route, allowed, err := x.t.resolveRoute(x.c.Key, req.Model)
	if err != nil {
		return err
	}
	x.route, x.allowed, x.out = route, allowed, x.outputOf(req)
	if err := outputFits(route, x.out.limit); err != nil {
		return err
	}
	return x.resolveOptions()
}

// outputFits refuses a completion cap above the output limit of every
// candidate of the route.
func outputFits(route *router.Route, limit int) error {
	if limit <= 0 {
		return nil
	}
	most := 0
	for _, m := range route.Models() {
		if m.MaxOutputTokens <= 0 {
			return nil // unknown: the reservation bounds it
		}
		most = max(most, m.MaxOutputTokens)
	}
	if limit <= most {
		return nil
	}
	msg := fmt.Sprintf("max_tokens is too large: %d. This model supports at most %d completion tokens.", limit, most)
	if route.Alias() {
		msg = fmt.Sprintf("no model of route %s can serve this request: max_tokens %d is above every candidate's output limit (at most %d)", route.Name, limit, most)
	}
	return &llm.Error{Status: http.StatusBadRequest, Type: llm.TypeInvalidRequest, Code: "context_length_exceeded", Param: "max_tokens", Message: msg}
}

// admit charges the request to the key's rate limits: every chat request,
// whatever answers it (exact hit, semantic hit, collapsed follower or an
// upstream), passes here once. Prompt tokens are counted for the route's
// first model only when the key has a tokens-per-minute limit.
func (x *exchange) admit(req *llm.ChatRequest) error {
	tokens := 0
	if x.g.limits != nil && x.policy.TPM > 0 {
		var err error
		if tokens, err = x.promptTokens(x.route.Models()[0], req); err != nil {
			return err
		}
	}
	return x.charge(tokens)
}

// charge is the one rate-limit charge.
func (x *exchange) charge(promptTokens int) error {
	if x.g.limits == nil {
		return nil
	}
	state, err := x.g.limits.Allow(x.c.Key.ID, promptTokens)
	if err != nil {
		return err
	}
	if x.meta.Header == nil {
		x.meta.Header = http.Header{}
	}
	state.SetHeaders(x.meta.Header)
	return nil
}

// promptTokens counts the prompt with model's tokenizer, once per tokenizer
// for the whole exchange.
func (x *exchange) promptTokens(m *router.Model, req *llm.ChatRequest) (int, error) {
	if n, ok := x.counts[m.Tokenizer]; ok {
		return n, nil
	}
	n, err := x.g.tokens.CountChat(m.Tokenizer, m.UpstreamModel, req)
	if err != nil {
		return 0, fmt.Errorf("gateway: counting tokens for %s: %w", m.Name, err)
	}
	if x.counts == nil {
		x.counts = make(map[string]int, 2)
	}
	x.counts[m.Tokenizer] = n
	return n, nil
}

// query prepares the request for the cache; nil when there is none.
func (x *exchange) query(req *llm.ChatRequest) *semcache.Query {
	if x.g.cache == nil || x.t.cacheOff {
		x.meta.Cache = semcache.KindBypass // no cache configured
		return nil
	}
	if x.c.Options.NoCache {
		x.meta.Cache, x.meta.CacheReason = semcache.KindBypass, "cache_enabled: false"
		return nil
	}
	return x.g.cache.Prepare(semcache.Request{Tenant: x.cacheTenant(), Model: req.Model, Chat: req}, x.cacheControls())
}

// lookup asks the cache for an answer. A hit is served whatever the key's
// budget and the upstreams' health: it costs nothing. On a miss, uncertain
// is the candidate the cache would serve if a judge confirmed it (nil when
// there is none).
func (x *exchange) lookup(ctx context.Context, q *semcache.Query, req *llm.ChatRequest) (hit *semcache.Entry, uncertain *semcache.Candidate, err error) {
	if q == nil {
		return nil, nil, nil
	}
	ctx, span := x.child(ctx, spanLookup)
	defer x.endLookup(span, &err)
	if k := q.Key(); k != "" && !q.Controls.NoCache && x.g.flights.flying(k) {
		// An identical request is being answered: this one will share its
		// answer (collapse) and need not embed the text its leader did.
		q.ExactOnly()
	}
	e, res, err := x.g.cache.Lookup(ctx, q)
	x.meta.Cache, x.meta.CacheSimilarity, x.meta.CacheReason, x.meta.CacheVerified = res.Kind, res.Similarity, res.Reason, res.Verified
	if err != nil {
		return nil, nil, err
	}
	if e == nil {
		return nil, res.Verify, nil
	}
	return e, nil, x.hit(e, res.Kind, req)
}

// hit fills meta for an entry the cache serves.
func (x *exchange) hit(e *semcache.Entry, kind string, req *llm.ChatRequest) error {
	var prompt int
	if kind == semcache.KindHit && e.Usage != nil {
		// The same request, as its provider counted it: no need to count.
		prompt = e.Usage.PromptTokens
	} else {
		var err error
		if prompt, err = x.promptTokens(x.route.Models()[0], req); err != nil {
			return err
		}
	}
	x.meta.CacheEntry = e.ID
	x.servedFromCache(e.Model, e.Cost, prompt, e.Usage)
	return nil
}

// verify asks the judge about the candidate the cache was uncertain of
// (nil: nothing to ask) and serves it if the judge says yes; otherwise the
// request goes on as a miss. Anything but a plain yes or no (an error, a
// timeout, a refusal, a budget that cannot pay for the judge) is a miss
// and leaves no verdict; a yes or a no is kept by the cache for the pair,
// so the same pair is not asked about again; a request that keeps nothing
// (disable_log) does not ask. Its error is the client's own only: it
// left, or its deadline passed.
func (x *exchange) verify(ctx context.Context, q *semcache.Query, uncertain *semcache.Candidate, req *llm.ChatRequest) (*semcache.Entry, error) {
	if uncertain == nil || x.t.judge == nil || x.c.Options.NoLog {
		return nil, nil
	}
	yes, err := x.askJudge(ctx, uncertain)
	if ctx.Err() != nil {
		return nil, x.g.deadlineErr(ctx, ctx.Err())
	}
	if err != nil {
		x.meta.Judge, x.meta.CacheReason = budget.JudgeFailed, "judge: no verdict"
		x.g.log.Warn("cache: the judge gave no verdict; a miss", "request_id", x.c.RequestID, "judge", x.t.judge.route.Name, "err", failureNote(err))
		return nil, nil
	}
	e, res := x.g.cache.Verdict(q, uncertain, yes)
	x.meta.Cache, x.meta.CacheSimilarity, x.meta.CacheReason, x.meta.CacheVerified = res.Kind, res.Similarity, res.Reason, res.Verified
	if e == nil {
		x.meta.Judge = budget.JudgeNo
		return nil, nil
	}
	x.meta.Judge = budget.JudgeYes
	return e, x.hit(e, res.Kind, req)
}

// askJudge puts the question (judgeRequest) to the judge's route as a call
// like any other: planned, each candidate reserved against the key's
// budget before it is called, through its breakers and retries, bounded by
// the judge's timeout. It never touches the cache nor the rate limits (the
// request was admitted once). It runs as an exchange of its own that
// writes no row: what it reserved and cost pass to this one, to be settled
// with the request.
func (x *exchange) askJudge(ctx context.Context, c *semcache.Candidate) (bool, error) {
	jg := x.t.judge
	req, err := judgeRequest(jg.route.Name, c)
	if err != nil {
		return false, err
	}
	ctx, cancel := context.WithTimeout(ctx, jg.timeout)
	defer cancel()
	j := &exchange{g: x.g, t: x.t, c: Caller{Key: x.c.Key, RequestID: x.c.RequestID}, meta: &Meta{Requested: jg.route.Name}, start: x.start,
		route: jg.route, policy: x.policy, out: output{limit: judgeMaxTokens, choices: 1}}
	plan, err := j.plan(req)
	if err != nil {
		return false, err
	}
	var resp *llm.ChatResponse
	err = j.try(ctx, course{steps: plan.Steps}, false, func(ctx context.Context, a attempt) error {
		var err error
		resp, err = a.d.Provider.Chat(ctx, &providers.Request{Chat: req, Model: a.d.Upstream, MaxTokens: outputTokens(a.step, j.out)})
		return err
	})
	x.meta.Upstream += j.meta.Upstream
	if err != nil {
		j.release()
		return false, err
	}
	j.price(resp.Usage, func(tokenizer string) int { return x.g.tokens.CountText(tokenizer, completionText(resp)) })
	x.res, x.held, x.charged = j.res, j.held, true
	x.judged = j.meta.Cost
	x.meta.Cost, x.meta.JudgeCost = x.judged, x.judged.Micros
	return parseVerdict(resp)
}

// servedFromCache fills meta for an answer from the cache, which cost
// nothing but the judge, if one was asked: model is the one that answered
// originally, saved what that call cost.
func (x *exchange) servedFromCache(model string, saved llm.Micros, prompt int, usage *llm.Usage) {
	m := x.meta
	m.Model, m.Provider = model, CacheProvider
	m.PromptTokens = prompt
	m.Cost = x.judged
	m.Saved = saved
	m.Route, m.Fallback, m.Attempts = "", "", 0
	if usage != nil {
		m.CompletionTokens = usage.CompletionTokens
	}
}

func responseOf(e *semcache.Entry) *llm.ChatResponse {
	if e == nil {
		return nil
	}
	return e.Response
}

// collapse runs miss (the upstream call, which also stores the answer) once
// for identical concurrent requests: the first leads, the others wait for
// its answer and are served it as a hit. When the leader fails for a reason
// of its own (its budget, its client leaving), a follower makes its own
// call; an upstream failure or a refusal of the request itself is shared.
// Every follower was admitted on its own before it got here.
func (x *exchange) collapse(ctx context.Context, q *semcache.Query, miss func() (*llm.ChatResponse, error)) (*llm.ChatResponse, error) {
	if q == nil || q.Key() == "" || q.Controls.NoCache {
		return miss()
	}
	f, lead := x.g.flights.join(q.Key())
	if lead {
		f.err = errInternal // what the followers get if miss panics
		defer x.g.flights.land(q.Key(), f)
		resp, err := miss()
		f.resp, f.err, f.model, f.saved, f.usage = resp, err, x.meta.Model, x.answerCost(), x.meta.Usage
		if x.meta.Provider == CacheProvider { // the judge confirmed a candidate: the followers are served it too
			f.saved, f.kind, f.similarity, f.verified, f.entry = x.meta.Saved, x.meta.Cache, x.meta.CacheSimilarity, x.meta.CacheVerified, x.meta.CacheEntry
		}
		return resp, err
	}
	select {
	case <-f.done:
	case <-ctx.Done():
		return nil, x.g.deadlineErr(ctx, ctx.Err())
	}
	if f.err != nil {
		if ownFault(f.err) {
			return miss()
		}
		return nil, f.err
	}
	x.g.cache.Shared(f.saved)
	x.meta.Cache, x.meta.CacheSimilarity, x.meta.CacheReason = semcache.KindHit, 1, ""
	if f.kind != "" {
		x.meta.Cache, x.meta.CacheSimilarity, x.meta.CacheVerified, x.meta.CacheEntry = f.kind, f.similarity, f.verified, f.entry
	}
	prompt := 0
	if f.usage != nil {
		prompt = f.usage.PromptTokens
	}
	x.servedFromCache(f.model, f.saved, prompt, f.usage)
	return f.resp, nil
}

// complete is Chat's middle step: plan, then try the planned models in
// order (each reserved before it is called), price the answer and store it.
func (x *exchange) complete(ctx context.Context, q *semcache.Query, req *llm.ChatRequest) (*llm.ChatResponse, error) {
	plan, err := x.plan(req)
	if err != nil {
		return nil, err
	}
	ctx, cancel := x.withTimeout(ctx, plan.Route)
	defer cancel()
	var resp *llm.ChatResponse
	err = x.tryPlan(ctx, plan, req, false, func(ctx context.Context, a attempt) error {
		var err error
		resp, err = chatCall(ctx, a.d.Provider, &providers.Request{Chat: req, Model: a.d.Upstream, APIKey: a.credentials, MaxTokens: outputTokens(a.step, x.out)})
		return err
	})
	if err != nil {
		return nil, err
	}
	x.price(resp.Usage, func(tokenizer string) int { return x.g.tokens.CountText(tokenizer, completionText(resp)) })
	x.traceResponse(resp)
	if err := x.guardAnswer(resp); err != nil {
		return nil, err
	}
	x.store(ctx, q, resp)
	return resp, nil
}

// store keeps a successful answer. Downgraded answers are not kept: they
// are not what the requested model would have said, and the next key of
// the tenant may well afford the real one.
func (x *exchange) store(ctx context.Context, q *semcache.Query, resp *llm.ChatResponse) {
	if !storable(q) || x.meta.Downgraded {
		return
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	if err := x.g.cache.Store(sctx, q, resp, x.meta.Model, x.answerCost()); err != nil {
		x.g.log.Warn("cache: store failed", "model", x.meta.Model, "err", err)
	}
}

// storable reports whether the cache may keep the query's answer.
func storable(q *semcache.Query) bool {
	return q != nil && q.Bypass() == "" && !q.Controls.NoStore
}

// plan counts the prompt with each candidate's tokenizer and orders the
// candidates that can serve it, those of the legs the request's options
// add after them (planLegs).
func (x *exchange) plan(req *llm.ChatRequest) (*router.Plan, error) {
	_, span := x.child(context.Background(), spanPlan)
	plan, err := x.planLegs(req)
	x.endPlan(span, plan, false, err)
	if err != nil {
		return nil, err
	}
	x.meta.Route = plan.Explanation
	return plan, nil
}

// makePlan plans route for the request, within maxCost when positive.
func (x *exchange) makePlan(route *router.Route, allowed func(string) bool, req *llm.ChatRequest, maxCost llm.Micros) (*router.Plan, error) {
	needs := router.NeedsOf(req)
	var countErr error
	needs.PromptTokens = func(m *router.Model) int {
		n, err := x.promptTokens(m, req)
		if err != nil && countErr == nil {
			countErr = err
		}
		return n
	}
	if !route.Alias() {
		// A model asked for by name answers in OpenAI's own words.
		if err := fits(route.Models()[0], needs); err != nil {
			return nil, err
		}
	}
	in := router.PlanInput{
		Needs:     needs,
		Allowed:   allowed,
		Available: x.t.available,
		Latency:   x.g.latencies.Get,
		Pick:      x.g.rand(),
		MaxCost:   maxCost,
	}
	if route.Sticky {
		in.StickyKey = x.c.Key.ID
	}
	plan, err := route.Plan(in)
	if countErr != nil {
		return nil, countErr
	}
	return plan, err
}

// fits refuses a request that cannot fit the model's context window or
// output limit, before any upstream is paid for its error.
func fits(m *router.Model, needs router.Needs) error {
	out := needs.OutputTokens
	if limit := m.MaxOutputTokens; limit > 0 && out > limit {
		return &llm.Error{Status: http.StatusBadRequest, Type: llm.TypeInvalidRequest, Code: "context_length_exceeded", Param: "max_tokens",
			Message: fmt.Sprintf("max_tokens is too large: %d. This model supports at most %d completion tokens.", out, limit)}
	}
	n := needs.PromptTokens(m)
	if window := m.MaxInputTokens; window > 0 && n+out > window {
		return &llm.Error{Status: http.StatusBadRequest, Type: llm.TypeInvalidRequest, Code: "context_length_exceeded", Param: "messages",
			Message: fmt.Sprintf("This model's maximum context length is %d tokens. However, you requested %d tokens (%d in the messages, %d in the completion). Please reduce the length of the messages or completion.",
				window, n+out, n, out)}
	}
	return nil
}

// tryPlan tries the plan; when the key's budget fits none of its
// candidates and the key's policy (or the route) says downgrade, it asks
// the router for the cheapest capable served model whose cost fits what is
// left, and records what the downgrade saved against the model asked for.
func (x *exchange) tryPlan(ctx context.Context, plan *router.Plan, req *llm.ChatRequest, stream bool, do call) error {
	err := x.try(ctx, x.courseOf(plan.Steps, true), stream, do)
	if err == nil || !x.downgrades(plan.Route) || x.t.downgrade == nil || !errors.Is(err, budget.ErrExhausted) {
		return err
	}
	remaining, _ := x.g.accounts.RemainingFor(x.c.Key.ID, x.c.Customer)
	if remaining <= 0 {
		return err
	}
	_, span := x.child(ctx, spanPlan)
	down, derr := x.makePlan(x.t.downgrade, x.c.Key.Allows, req, remaining)
	x.endPlan(span, down, true, derr)
	if derr != nil {
		return err // nothing cheaper can serve it: the 402 stands
	}
	requested := plan.Steps[0].Model
	x.meta.Route = "downgraded from " + requested.Name + " (budget); " + down.Explanation
	x.meta.Downgraded = true
	x.meta.requested = requested
	return x.try(ctx, x.courseOf(down.Steps, false), stream, do)
}

// downgrades reports whether a spent budget moves the request to a cheaper
// model rather than refusing it.
func (x *exchange) downgrades(route *router.Route) bool {
	return x.g.accounts != nil && (x.policy.OnExhausted == budget.Downgrade || (route != nil && route.Downgrade))
}

// output is what a step may generate: the client's cap and choices.
type output struct{ limit, choices int }

func (x *exchange) outputOf(req *llm.ChatRequest) output {
	if req == nil {
		return output{choices: 1}
	}
	return output{limit: req.OutputLimit(), choices: req.Choices()}
}

// unknownOutputCap is reserved for a model whose output limit is unknown
// when the client set none.
const unknownOutputCap = 4096

// outputTokens is what one choice of the step may generate: the client's
// cap, else the model's own limit (or unknownOutputCap), never more than
// the context window leaves after the prompt. It is what is reserved, and
// every upstream call is sent it as its output limit, so an honest
// provider cannot bill past the reservation.
func outputTokens(step *router.Step, out output) int {
	if step.Model.Mode != router.ModeChat {
		return 0
	}
	if out.limit > 0 {
		return out.limit
	}
	n := step.Model.MaxOutputTokens
	if n <= 0 {
		n = unknownOutputCap
	}
	if w := step.Model.MaxInputTokens; w > 0 && step.PromptTokens < w {
		n = min(n, w-step.PromptTokens)
	}
	return n
}

// reserve holds the most the step can cost against every limit of the
// key and of its customer (customer budgets), all or none: its prompt at the input price and its whole output limit (n times)
// at the output price. A reservation held for an earlier candidate is
// released first.
func (x *exchange) reserve(ctx context.Context, step *router.Step) error {
	x.reserved = router.SaturatingMul(outputTokens(step, x.out), max(x.out.choices, 1))
	if x.g.accounts == nil {
		return nil
	}
	cost := step.Model.EstimateCost(step.PromptTokens, x.reserved)
	if cost.Unpriced && (len(x.policy.Limits) > 0 || x.policy.Customers != nil) {
		return &llm.Error{Status: http.StatusBadRequest, Type: llm.TypeInvalidRequest, Code: "model_unpriced", Param: "model",
			Message: "the model " + step.Model.Name + " has no known price, so it cannot be used by a key with a budget; give it a price in the config"}
	}
	x.release()
	// The judge, if one was asked, is spent: the hold keeps it.
	amount := cost.Micros
	if x.judged.Micros > 0 {
		amount = llm.Micros(router.SaturatingAdd(int(amount), int(x.judged.Micros)))
	}
	res, err := x.g.accounts.ReserveFor(ctx, x.c.Key.ID, x.c.Customer, x.c.RequestID, amount)
	if err != nil {
		return err
	}
	x.res, x.held = res, true
	return nil
}

func (x *exchange) release() {
	if x.held {
		x.g.accounts.Release(x.res)
		x.held = false
	}
}

// price computes the request's cost: the call's, from the usage the
// provider reported, or, when it reported none, from the completion tokens
// count counts with the model's tokenizer (marked estimated); plus the
// judge's, if one was asked.
func (x *exchange) price(usage *llm.Usage, count func(tokenizer string) int) {
	m := x.t.models[x.meta.Model]
	meta := x.meta
	meta.Usage = usage
	if usage != nil {
		meta.CompletionTokens = usage.CompletionTokens
		meta.Cost = plus(m.Spec.Cost(usage), x.judged)
		return
	}
	meta.CompletionTokens = count(m.Spec.Tokenizer)
	meta.Cost = m.Spec.EstimateCost(meta.PromptTokens, meta.CompletionTokens)
	meta.Cost.Estimated = true
	meta.Cost = plus(meta.Cost, x.judged)
}

// plus adds two costs: estimated or unpriced if either is.
func plus(a, b router.Cost) router.Cost {
	if b == (router.Cost{}) {
		return a
	}
	return router.Cost{Micros: llm.Micros(router.SaturatingAdd(int(a.Micros), int(b.Micros))), Estimated: a.Estimated || b.Estimated, Unpriced: a.Unpriced || b.Unpriced}
}

// answerCost is what the answer itself cost, the judge's call left out:
// what a later hit on it saves.
func (x *exchange) answerCost() llm.Micros { return x.meta.Cost.Micros - x.judged.Micros }

// completionText is everything the model generated, for counting.
func completionText(resp *llm.ChatResponse) string {
	var b strings.Builder
	for _, c := range resp.Choices {
		b.WriteString(c.Message.Content.String())
		for _, tc := range c.Message.ToolCalls {
			b.WriteString(tc.Function.Name)
			b.WriteString(tc.Function.Arguments)
		}
	}
	return b.String()
}

// resolveEmbeddings finds an embeddings model the key may use.
func (x *exchange) resolveEmbeddings(name string) (*Model, error) {
	m, ok := x.t.models[name]
	switch {
	case !ok:
		return nil, modelNotFound(name)
	case !x.c.Key.Allows(name):
		return nil, notAllowed(name)
	case !m.Embeddings:
		return nil, notServed(name, "a chat model and does not serve embeddings")
	}
	return m, nil
}

// countEmbeddings counts the inputs and refuses one longer than the
// model's window.
func (x *exchange) countEmbeddings(m *Model, req *llm.EmbeddingRequest) (router.Step, error) {
	prompt := 0
	for i, text := range req.Input.Texts {
		n := x.g.tokens.CountText(m.Spec.Tokenizer, text)
		if window := m.Spec.MaxInputTokens; window > 0 && n > window {
			return router.Step{}, &llm.Error{Status: http.StatusBadRequest, Type: llm.TypeInvalidRequest, Code: "context_length_exceeded", Param: fmt.Sprintf("input[%d]", i),
				Message: fmt.Sprintf("This model's maximum context length is %d tokens, however you requested %d tokens in input[%d].", window, n, i)}
		}
		prompt += n
	}
	for _, toks := range req.Input.Tokens {
		prompt += len(toks)
	}
	x.meta.PromptTokens = prompt
	return router.Step{Model: m.Spec, PromptTokens: prompt}, nil
}

// embed is Embed's middle step.
func (x *exchange) embed(ctx context.Context, m *Model, step router.Step, req *llm.EmbeddingRequest) (*llm.EmbeddingResponse, error) {
	ctx, cancel := x.t.withTimeout(ctx, 0)
	defer cancel()
	var resp *llm.EmbeddingResponse
	x.out = output{choices: 1}
	err := x.try(ctx, course{steps: []router.Step{step}}, false, func(ctx context.Context, a attempt) error {
		emb, ok := a.d.Provider.(providers.Embedder)
		if !ok {
			return llm.Errorf(http.StatusBadRequest, llm.TypeInvalidRequest, "model_not_supported",
				"provider %s of model %s does not serve embeddings", a.d.ProviderName, m.Name)
		}
		var err error
		resp, err = emb.Embed(ctx, &providers.EmbedRequest{Embedding: req, Model: a.d.Upstream, APIKey: a.credentials})
		return err
	})
	if err != nil {
		return nil, err
	}
	x.price(resp.Usage, func(string) int { return 0 })
	return resp, nil
}

// errInternal is what the client gets when the gateway panicked.
var errInternal = &llm.Error{Status: http.StatusInternalServerError, Type: llm.TypeServer, Code: "internal_error",
	Message: "tollgate hit an internal error while serving this request; it was logged with the request id"}

// settleTimeout bounds writing the ledger row once the upstream has been
// paid, even if the client has left.
const settleTimeout = 30 * time.Second

// finish ends the exchange, exactly once, also when a panic unwinds
// (recovered is then recover()'s value, logged with its stack and answered
// as a 500): a reservation whose upstream produced something is settled at
// the actual cost, any other is released; the request gets its one ledger
// row. It returns the error the client gets: err, the panic's 500, or a
// 500 when the ledger could not record a paid call.
func (x *exchange) finish(ctx context.Context, recovered any, err error) error {
	if recovered != nil {
		stack := debug.Stack()
		if p, ok := recovered.(*attemptPanic); ok {
			recovered, stack = p.value, p.stack
		}
		x.g.log.Error("panic while serving a request", "request_id", x.c.RequestID, "panic", fmt.Sprint(recovered), "stack", string(stack))
		err = errInternal
	}
	if x.done {
		return err
	}
	x.done = true
	x.recordGuards()
	defer x.traceEnd(&err)
	if x.g.accounts == nil || x.c.Key == nil {
		return err
	}
	status := http.StatusOK
	if err != nil {
		status = llm.ForClient(err).Status
	}
	x.downgradeSaving()
	_, settle := x.child(ctx, spanSettle)
	defer x.endSettle(settle, &err)
	entry := x.entry(status)
	if !x.held || !x.charged {
		x.release()
		x.g.accounts.Record(entry)
		return err
	}
	// The upstream has been paid: record it even if the client has left.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	serr := x.g.accounts.Settle(sctx, x.res, entry)
	x.held = false
	if serr != nil {
		x.g.log.Error("ledger: settle failed", "request_id", x.c.RequestID, "key_id", x.c.Key.ID, "err", serr)
		if err == nil {
			err = &llm.Error{Status: http.StatusInternalServerError, Type: llm.TypeServer, Code: "ledger_unavailable",
				Message: "tollgate could not record this request in its spend ledger, so it does not answer it", Err: serr}
		}
		return err
	}
	if remaining, limited := x.g.accounts.RemainingFor(x.c.Key.ID, x.c.Customer); limited {
		if x.meta.Header == nil {
			x.meta.Header = http.Header{}
		}
		x.meta.Header.Set(HeaderBudgetRemaining, remaining.String())
	}
	return err
}

// downgradeSaving records what a downgrade saved against the model asked
// for.
func (x *exchange) downgradeSaving() {
	meta := x.meta
	if !meta.Downgraded || meta.requested == nil {
		return
	}
	var full router.Cost
	if meta.Usage != nil {
		full = meta.requested.Cost(meta.Usage)
	} else {
		full = meta.requested.EstimateCost(meta.PromptTokens, meta.CompletionTokens)
	}
	if paid := x.answerCost(); !full.Unpriced && full.Micros > paid {
		meta.Saved = full.Micros - paid
	}
}

// entry is the request's ledger row.
func (x *exchange) entry(status int) budget.Entry {
	meta := x.meta
	e := budget.Entry{
		RequestID: x.c.RequestID, KeyID: x.c.Key.ID, Route: meta.Requested, RequestedModel: meta.Requested,
		Model: meta.Model, Provider: meta.Provider,
		PromptTokens: meta.PromptTokens, CompletionTokens: meta.CompletionTokens,
		Cost: meta.Cost.Micros, Saved: meta.Saved, Estimated: meta.Cost.Estimated, Unpriced: meta.Cost.Unpriced,
		Cache: meta.Cache, Status: status, Latency: x.g.now().Sub(x.start), Attempts: meta.Attempts,
		Judge: meta.Judge, JudgeCost: meta.JudgeCost,
		Customer: x.c.Customer, Tags: x.c.Tags, Guards: x.guardCounts(),
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
