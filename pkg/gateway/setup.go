package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sort"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/tollgate/tollgate/pkg/budget"
	"github.com/tollgate/tollgate/pkg/keys"
	"github.com/tollgate/tollgate/pkg/llm"
	"github.com/tollgate/tollgate/pkg/providers"
	"github.com/tollgate/tollgate/pkg/router"
)

// This file builds the Gateway and answers the questions about it that are
// not requests: which models a key may use, how the deployments are.

// TokenCounter counts tokens the way a model's provider bills them
// (tokens.Counter).
type TokenCounter interface {
	CountChat(tokenizer, model string, req *llm.ChatRequest) (int, error)
	CountText(tokenizer, text string) int
}

// Limiter charges a key's requests and prompt tokens per minute
// (budget.RateLimits). Admission is its only caller.
type Limiter interface {
	Allow(keyID string, promptTokens int) (budget.RateState, error)
}

// Accounts holds keys' budgets and records every request (budget.Accounts):
// a reservation before the call, settled or released by the exchange's
// finish; a request that reserved nothing is recorded as it is.
type Accounts interface {
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
	// Limits charges rate limits (nil: none); Accounts holds budgets and
	// the ledger (nil: no budgets, no ledger rows).
	Limits   Limiter
	Accounts Accounts
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
	// Judge confirms the semantic candidates the cache is uncertain of
	// (semcache.Result.Verify); its zero value asks no judge.
	Judge Judge
	// TracerProvider traces each request (trace.go); nil or a noop
	// provider: no tracing, at no cost.
	TracerProvider trace.TracerProvider
}

// Judge is the model asked whether an uncertain semantic candidate serves
// the request (cache.semantic.verify).
type Judge struct {
	// Model is a chat model or route the gateway serves ("": no judge).
	Model string
	// Timeout bounds the judge's call, retries included (default
	// DefaultJudgeTimeout).
	Timeout time.Duration
}

// DefaultJudgeTimeout bounds a judge's call when Judge.Timeout is zero.
const DefaultJudgeTimeout = 5 * time.Second

// ErrNoJudge: Judge.Model names no chat model or route the gateway serves.
var ErrNoJudge = errors.New("not a chat model or route this gateway serves")

// Gateway serves chat, stream and embedding requests. Safe for concurrent use.
type Gateway struct {
	tokens    TokenCounter
	limits    Limiter
	accounts  Accounts
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
	judge     *judge       // nil: no judge
	tracer    trace.Tracer // nil: no tracing
}

// judge is Options.Judge resolved.
type judge struct {
	route   *router.Route
	timeout time.Duration
}

// New builds a Gateway.
func New(o Options) (*Gateway, error) {
	if o.Tokens == nil {
		return nil, errors.New("gateway: a token counter is required")
	}
	g := &Gateway{tokens: o.Tokens, limits: o.Limits, accounts: o.Accounts, routes: o.Routes, models: map[string]*Model{}, breakers: o.Breakers, timeout: o.RequestTimeout,
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
	g.tracer = tracerOf(o.TracerProvider)
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
	if o.Judge.Model != "" {
		route, ok := g.routes.Lookup(o.Judge.Model)
		if !ok || (!route.Alias() && (g.models[o.Judge.Model] == nil || !g.models[o.Judge.Model].Chat)) {
			return nil, fmt.Errorf("gateway: judge model %q: %w", o.Judge.Model, ErrNoJudge)
		}
		g.judge = &judge{route: route, timeout: o.Judge.Timeout}
		if g.judge.timeout <= 0 {
			g.judge.timeout = DefaultJudgeTimeout
		}
	}
	return g, nil
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
		if _, _, err := g.resolveRoute(key, r.Name); err == nil {
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
		if _, _, err := g.resolveRoute(key, name); err == nil {
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

// modelNotFound quotes the name the client sent, clipped: it can be
// 100 KB, and the message reaches the access log too.
func modelNotFound(name string) error {
	return &llm.Error{Status: http.StatusNotFound, Type: llm.TypeInvalidRequest, Code: "model_not_found", Param: "model",
		Message: fmt.Sprintf("The model `%s` does not exist or you do not have access to it.", llm.Clip(name, 256))}
}

func notAllowed(name string) error {
	return &llm.Error{Status: http.StatusForbidden, Type: llm.TypePermission, Code: "model_not_allowed", Param: "model",
		Message: fmt.Sprintf("this API key may not use the model `%s`", name)}
}

func notServed(name, what string) error {
	return &llm.Error{Status: http.StatusBadRequest, Type: llm.TypeInvalidRequest, Code: "model_not_supported", Param: "model",
		Message: fmt.Sprintf("the model `%s` is %s", name, what)}
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
