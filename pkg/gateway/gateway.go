// Package gateway is tollgate's request flow and nothing else: given an
// authenticated caller and a parsed request, it plans which models may serve
// it (cheapest capable first), calls their deployments through circuit
// breakers with bounded retries and fallbacks, and reports what happened
// (Meta). Chat, Stream and Embed read top to bottom; the attempt loop is in
// attempt.go; the leaf packages do the work.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/tollgate/tollgate/pkg/budget"
	"github.com/tollgate/tollgate/pkg/keys"
	"github.com/tollgate/tollgate/pkg/llm"
	"github.com/tollgate/tollgate/pkg/providers"
	"github.com/tollgate/tollgate/pkg/router"
	"github.com/tollgate/tollgate/pkg/semcache"
)

// TokenCounter counts tokens the way a model's provider bills them
// (tokens.Counter).
type TokenCounter interface {
	CountChat(tokenizer, model string, req *llm.ChatRequest) (int, error)
	CountText(tokenizer, text string) int
}

// Ledger holds keys' budgets and rate limits and records every request
// (budget.Ledger). nil: no budgets, no rate limits, no ledger.
type Ledger interface {
	Allow(keyID string, promptTokens int) (budget.RateState, error)
	Reserve(ctx context.Context, keyID, requestID string, amount llm.Micros) (budget.Reservation, error)
	Settle(ctx context.Context, r budget.Reservation, e budget.Entry) error
	Release(r budget.Reservation)
	Record(e budget.Entry)
	Remaining(keyID string) (llm.Micros, bool)
	Policy(keyID string) (budget.Policy, bool)
}

// Deployment is one way to serve a model: an upstream (with one API key)
// and the name it knows the model by.
type Deployment struct {
	ID       string // unique across the gateway; names the breaker
	Provider providers.Provider
	Upstream string
	Weight   int
	// ProviderName is the provider's configured name (for per-request
	// credentials); defaults to Provider.Name().
	ProviderName string
	Backoff      router.Backoff
	// AttemptTimeout bounds one call to this deployment (0: only the
	// request's deadline).
	AttemptTimeout time.Duration
}

// Model is a model the gateway serves.
type Model struct {
	Name        string
	Spec        *router.Model // catalog entry: prices, context window, tokenizer
	Chat        bool          // serves /v1/chat/completions
	Embeddings  bool          // serves /v1/embeddings
	OwnedBy     string
	Deployments []Deployment

	refs []router.Deployment // the balancer's view of Deployments
	byID map[string]*Deployment
}

// Options wires a Gateway.
type Options struct {
	Models []*Model
	Tokens TokenCounter
	Ledger Ledger
	// Routes resolves a request's model: route aliases and catalog chat
	// models. nil: every served chat model as itself.
	Routes *router.Routes
	// Breakers guards every deployment (nil: default settings).
	Breakers *router.Breakers
	// RequestTimeout bounds one request end to end unless its route sets a
	// timeout; 0 means none.
	RequestTimeout time.Duration
	Logger         *slog.Logger
	Now            func() time.Time
	// Rand draws in [0,1) for load balancing, weighted routes and jitter.
	Rand func() float64
	// Sleep waits between retries (tests inject one that records and returns).
	Sleep func(ctx context.Context, d time.Duration) error
	// Cache answers repeated and paraphrased requests (nil: no cache).
	Cache Cache
	// Tenants maps key ids to the shared cache tenant they belong to; other
	// keys are each their own tenant.
	Tenants map[string]string
}

// Gateway serves chat, stream and embedding requests. Safe for concurrent use.
type Gateway struct {
	tokens    TokenCounter
	ledger    Ledger
	routes    *router.Routes
	downgrade *router.Route // cheapest over every served chat model, for budget downgrades
	models    map[string]*Model
	names     []string
	breakers  *router.Breakers
	balancer  *router.Balancer
	latencies router.Latencies
	timeout   time.Duration
	log       *slog.Logger
	now       func() time.Time
	rand      func() float64
	sleep     func(ctx context.Context, d time.Duration) error
	cache     Cache
	tenants   map[string]string
	flights   flights
}

// New builds a Gateway.
func New(o Options) (*Gateway, error) {
	if o.Tokens == nil {
		return nil, errors.New("gateway: a token counter is required")
	}
	g := &Gateway{tokens: o.Tokens, ledger: o.Ledger, routes: o.Routes, models: map[string]*Model{}, breakers: o.Breakers, timeout: o.RequestTimeout,
		log: o.Logger, now: o.Now, rand: o.Rand, sleep: o.Sleep, cache: o.Cache, tenants: o.Tenants}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	if g.now == nil {
		g.now = time.Now
	}
	if g.rand == nil {
		g.rand = rand.Float64
	}
	if g.sleep == nil {
		g.sleep = sleepCtx
	}
	if g.breakers == nil {
		b, err := router.NewBreakers(router.BreakerConfig{})
		if err != nil {
			return nil, err
		}
		g.breakers = b
	}
	g.balancer = router.NewBalancer(g.breakers, g.now)
	var specs []router.Model
	for _, m := range o.Models {
		if len(m.Deployments) == 0 {
			return nil, fmt.Errorf("gateway: model %s has no deployment", m.Name)
		}
		if m.Spec == nil {
			return nil, fmt.Errorf("gateway: model %s has no catalog entry", m.Name)
		}
		if _, dup := g.models[m.Name]; dup {
			return nil, fmt.Errorf("gateway: model %s defined twice", m.Name)
		}
		m.byID = make(map[string]*Deployment, len(m.Deployments))
		m.refs = make([]router.Deployment, len(m.Deployments))
		for i := range m.Deployments {
			d := &m.Deployments[i]
			if d.ID == "" {
				d.ID = fmt.Sprintf("%s/%s#%d", d.Provider.Name(), m.Name, i)
			}
			if d.ProviderName == "" {
				d.ProviderName = d.Provider.Name()
			}
			if _, dup := m.byID[d.ID]; dup {
				return nil, fmt.Errorf("gateway: deployment id %s used twice", d.ID)
			}
			m.byID[d.ID] = d
			m.refs[i] = router.Deployment{ID: d.ID, Weight: d.Weight}
			g.breakers.Add(d.ID, d.ProviderName)
		}
		g.models[m.Name] = m
		g.names = append(g.names, m.Name)
		if m.Chat {
			sp := *m.Spec
			sp.Name = m.Name // served under its own name, whatever its catalog entry is called
			specs = append(specs, sp)
		}
	}
	sort.Strings(g.names)
	c, err := router.NewCatalog(specs)
	if err != nil {
		return nil, err
	}
	if g.routes == nil {
		if g.routes, err = router.NewRoutes(c, nil); err != nil {
			return nil, err
		}
	}
	if len(specs) > 0 {
		var names []string
		for _, sp := range specs {
			names = append(names, sp.Name)
		}
		down, err := router.NewRoutes(c, []router.Route{{Name: "tollgate:downgrade", Strategy: router.StrategyCheapest, Candidates: names}})
		if err != nil {
			return nil, err
		}
		g.downgrade, _ = down.Lookup("tollgate:downgrade")
	}
	return g, nil
}

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
}

// Meta is what happened to one request: the access log and the x-tollgate-*
// response headers are made from it.
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
	// Saved is what a downgrade saved against the requested model.
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
	// Header holds response headers the flow sets: x-ratelimit-*,
	// x-tollgate-budget-remaining-usd.
	Header http.Header
}

// Chat serves a non-streamed chat completion: resolve the route, answer
// from the cache when it can (exact, then semantic); otherwise plan, check
// rate limits, then try the planned models in order, each with its budget
// reserved first; settle the cost and store the answer before answering.
// Identical concurrent misses share one upstream call (collapse).
func (g *Gateway) Chat(ctx context.Context, c Caller, req *llm.ChatRequest) (*llm.ChatResponse, *Meta, error) {
	start := g.now()
	meta := &Meta{Requested: req.Model}
	route, allowed, err := g.resolveRoute(c, req.Model)
	if err != nil {
		return nil, meta, g.fail(c, meta, err, start, nil)
	}
	q := g.cacheQuery(c, req)
	hit, err := g.lookup(ctx, c, meta, route, req, q)
	if err != nil {
		return nil, meta, g.fail(c, meta, err, start, nil)
	}
	if hit != nil {
		g.commit(ctx, c, meta, start, nil, http.StatusOK)
		return hit.Response, meta, nil
	}
	var (
		sp        *spender
		committed bool
	)
	resp, err := g.collapse(ctx, meta, q, func() (*llm.ChatResponse, error) {
		plan, err := g.plan(c, meta, route, allowed, req)
		if err != nil {
			return nil, err
		}
		ctx, cancel := g.withTimeout(ctx, plan.Route.Timeout)
		defer cancel()
		sp = g.spender(c, req, plan.Route)
		var resp *llm.ChatResponse
		err = g.tryWithin(ctx, c, meta, plan, req, sp, false, func(ctx context.Context, a attempt) error {
			var err error
			resp, err = a.d.Provider.Chat(ctx, &providers.Request{Chat: req, Model: a.d.Upstream, APIKey: a.credentials, MaxTokens: outputCap(req, a.step.Model)})
			return err
		})
		if err != nil {
			return nil, err
		}
		g.price(meta, resp.Usage, func() string { return completionText(resp) })
		committed = true
		if err := g.commit(ctx, c, meta, start, sp, http.StatusOK); err != nil {
			return nil, err
		}
		g.store(ctx, q, meta, resp)
		return resp, nil
	})
	switch {
	case err != nil && committed:
		return nil, meta, err // the ledger refused the settle: already logged
	case err != nil:
		return nil, meta, g.fail(c, meta, err, start, sp)
	case meta.Provider == CacheProvider: // served by an identical request's call
		g.commit(ctx, c, meta, start, nil, http.StatusOK)
	}
	return resp, meta, nil
}

// resolveRoute finds the route for a request's model and decides which of
// its candidates the key may use: a key allowed the alias may use all its
// candidates; otherwise only the candidates it is allowed.
func (g *Gateway) resolveRoute(c Caller, name string) (*router.Route, func(string) bool, error) {
	route, ok := g.routes.Lookup(name)
	if !ok || (!route.Alias() && g.models[name] == nil) {
		if m := g.models[name]; m != nil && !m.Chat {
			return nil, nil, notServed(name, "an embeddings model and does not serve chat completions")
		}
		return nil, nil, modelNotFound(name)
	}
	if c.Key.Allows(name) {
		return route, nil, nil
	}
	if route.Alias() {
		for _, m := range route.Models() {
			if c.Key.Allows(m.Name) {
				return route, c.Key.Allows, nil
			}
		}
	}
	return nil, nil, notAllowed(name)
}

// plan plans the request's route and charges the key's rate limits.
func (g *Gateway) plan(c Caller, meta *Meta, route *router.Route, allowed func(string) bool, req *llm.ChatRequest) (*router.Plan, error) {
	plan, err := g.makePlan(c, route, allowed, req, 0)
	if err != nil {
		return nil, err
	}
	meta.Route = plan.Explanation
	if err := g.rateLimit(c, meta, plan); err != nil {
		return nil, err
	}
	return plan, nil
}

// makePlan counts the prompt with each candidate's tokenizer and orders the
// candidates that can serve it (within maxCost when positive).
func (g *Gateway) makePlan(c Caller, route *router.Route, allowed func(string) bool, req *llm.ChatRequest, maxCost llm.Micros) (*router.Plan, error) {
	needs := router.NeedsOf(req)
	var countErr error
	counted := map[string]int{} // per tokenizer: candidates often share one
	needs.PromptTokens = func(m *router.Model) int {
		if n, ok := counted[m.Tokenizer]; ok {
			return n
		}
		n, err := g.tokens.CountChat(m.Tokenizer, m.UpstreamModel, req)
		if err != nil && countErr == nil {
			countErr = fmt.Errorf("gateway: counting tokens for %s: %w", m.Name, err)
		}
		counted[m.Tokenizer] = n
		return n
	}
	if !route.Alias() {
		// A model asked for by name answers in OpenAI's own words.
		if err := g.fits(route.Models()[0], needs); err != nil {
			return nil, err
		}
	}
	in := router.PlanInput{
		Needs:     needs,
		Allowed:   allowed,
		Available: g.available,
		Latency:   g.latencies.Get,
		Pick:      g.rand(),
		MaxCost:   maxCost,
	}
	if route.Sticky {
		in.StickyKey = c.Key.ID
	}
	plan, err := route.Plan(in)
	if countErr != nil {
		return nil, countErr
	}
	return plan, err
}

// fits refuses a request that cannot fit the model's context window or
// output limit, before any upstream is paid for its error.
func (g *Gateway) fits(m *router.Model, needs router.Needs) error {
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

// available reports whether a model has a deployment that can take a call.
func (g *Gateway) available(name string) (bool, string) {
	m := g.models[name]
	if m == nil {
		return false, "not configured"
	}
	return g.balancer.Available(m.refs)
}

// outputCap is the completion cap to send to wire formats that require one
// when the client set none: the model's own limit.
func outputCap(req *llm.ChatRequest, m *router.Model) int {
	if req.OutputLimit() > 0 {
		return 0
	}
	return m.MaxOutputTokens
}

// price computes the call's cost: from the usage the provider reported, or, when
// it reported none, from tokens counted here (marked estimated).
func (g *Gateway) price(meta *Meta, usage *llm.Usage, completion func() string) {
	m := g.models[meta.Model]
	meta.Usage = usage
	if usage != nil {
		meta.CompletionTokens = usage.CompletionTokens
		meta.Cost = m.Spec.Cost(usage)
		return
	}
	meta.CompletionTokens = g.tokens.CountText(m.Spec.Tokenizer, completion())
	meta.Cost = m.Spec.EstimateCost(meta.PromptTokens, meta.CompletionTokens)
	meta.Cost.Estimated = true
}

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

// Embed serves an embeddings request.
func (g *Gateway) Embed(ctx context.Context, c Caller, req *llm.EmbeddingRequest) (*llm.EmbeddingResponse, *Meta, error) {
	start := g.now()
	meta := &Meta{Requested: req.Model}
	m, ok := g.models[req.Model]
	switch {
	case !ok:
		return nil, nil, g.fail(c, meta, modelNotFound(req.Model), start, nil)
	case !c.Key.Allows(req.Model):
		return nil, nil, g.fail(c, meta, notAllowed(req.Model), start, nil)
	case !m.Embeddings:
		return nil, nil, g.fail(c, meta, notServed(req.Model, "a chat model and does not serve embeddings"), start, nil)
	}
	prompt := 0
	for i, text := range req.Input.Texts {
		n := g.tokens.CountText(m.Spec.Tokenizer, text)
		if window := m.Spec.MaxInputTokens; window > 0 && n > window {
			return nil, meta, g.fail(c, meta, &llm.Error{Status: http.StatusBadRequest, Type: llm.TypeInvalidRequest, Code: "context_length_exceeded", Param: fmt.Sprintf("input[%d]", i),
				Message: fmt.Sprintf("This model's maximum context length is %d tokens, however you requested %d tokens in input[%d].", window, n, i)}, start, nil)
		}
		prompt += n
	}
	for _, toks := range req.Input.Tokens {
		prompt += len(toks)
	}
	ctx, cancel := g.withTimeout(ctx, 0)
	defer cancel()
	meta.PromptTokens = prompt
	step := router.Step{Model: m.Spec, PromptTokens: prompt}
	if err := g.rateLimit(c, meta, &router.Plan{Steps: []router.Step{step}}); err != nil {
		return nil, meta, g.fail(c, meta, err, start, nil)
	}
	sp := g.spender(c, nil, nil)
	var resp *llm.EmbeddingResponse
	err := g.try(ctx, c, meta, []router.Step{step}, sp, false, func(ctx context.Context, a attempt) error {
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
		return nil, meta, g.fail(c, meta, err, start, sp)
	}
	g.price(meta, resp.Usage, func() string { return "" })
	if err := g.commit(ctx, c, meta, start, sp, http.StatusOK); err != nil {
		return nil, meta, err
	}
	return resp, meta, nil
}

// ModelInfo is one entry of GET /v1/models.
type ModelInfo struct {
	ID      string
	OwnedBy string
}

// Models lists the models and route aliases key may use, sorted by name.
func (g *Gateway) Models(key *keys.Key) []ModelInfo {
	out := make([]ModelInfo, 0, len(g.names))
	for _, name := range g.names {
		if key.Allows(name) {
			out = append(out, ModelInfo{ID: name, OwnedBy: g.models[name].OwnedBy})
		}
	}
	for _, r := range g.routes.Aliases() {
		if _, _, err := g.resolveRoute(Caller{Key: key}, r.Name); err == nil {
			out = append(out, ModelInfo{ID: r.Name, OwnedBy: "tollgate"})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Model returns one model or alias the key may use.
func (g *Gateway) Model(key *keys.Key, name string) (ModelInfo, error) {
	if m, ok := g.models[name]; ok && key.Allows(name) {
		return ModelInfo{ID: name, OwnedBy: m.OwnedBy}, nil
	}
	if r, ok := g.routes.Lookup(name); ok && r.Alias() {
		if _, _, err := g.resolveRoute(Caller{Key: key}, name); err == nil {
			return ModelInfo{ID: name, OwnedBy: "tollgate"}, nil
		}
	}
	return ModelInfo{}, modelNotFound(name)
}

// DeploymentStatus is one deployment's health for GET /admin/providers.
type DeploymentStatus struct {
	router.BreakerStatus
	Model        string     `json:"model"`
	Upstream     string     `json:"upstream_model"`
	CoolingUntil *time.Time `json:"rate_limited_until,omitempty"`
}

// Health lists every deployment's breaker and rate-limit state.
func (g *Gateway) Health() []DeploymentStatus {
	byID := map[string]router.BreakerStatus{}
	for _, s := range g.breakers.Snapshot() {
		byID[s.ID] = s
	}
	var out []DeploymentStatus
	for _, name := range g.names {
		m := g.models[name]
		for _, d := range m.Deployments {
			st := DeploymentStatus{BreakerStatus: byID[d.ID], Model: name, Upstream: d.Upstream}
			if until, cooling := g.balancer.CoolingUntil(d.ID); cooling {
				st.CoolingUntil = &until
			}
			out = append(out, st)
		}
	}
	return out
}

func modelNotFound(name string) error {
	return &llm.Error{Status: http.StatusNotFound, Type: llm.TypeInvalidRequest, Code: "model_not_found", Param: "model",
		Message: fmt.Sprintf("The model `%s` does not exist or you do not have access to it.", name)}
}

func notAllowed(name string) error {
	return &llm.Error{Status: http.StatusForbidden, Type: llm.TypePermission, Code: "model_not_allowed", Param: "model",
		Message: fmt.Sprintf("this API key may not use the model `%s`", name)}
}

func notServed(name, what string) error {
	return &llm.Error{Status: http.StatusBadRequest, Type: llm.TypeInvalidRequest, Code: "model_not_supported", Param: "model",
		Message: fmt.Sprintf("the model `%s` is %s", name, what)}
}

// withTimeout bounds the request by the route's timeout, else the
// gateway's.
func (g *Gateway) withTimeout(ctx context.Context, route time.Duration) (context.Context, context.CancelFunc) {
	if route <= 0 {
		route = g.timeout
	}
	if route > 0 {
		return context.WithTimeout(ctx, route)
	}
	return context.WithCancel(ctx)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
