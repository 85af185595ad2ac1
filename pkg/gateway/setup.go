package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
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
	// ReserveFor holds against the key's limits and, for a request with a
	// customer, the customer's (customer budgets), all or none.
	ReserveFor(ctx context.Context, keyID, customer, requestID string, amount llm.Micros) (budget.Reservation, error)
	Settle(ctx context.Context, r budget.Reservation, e budget.Entry) error
	Release(r budget.Reservation)
	Record(e budget.Entry)
	// RemainingFor is the smaller of the key's room and its customer's.
	RemainingFor(keyID, customer string) (llm.Micros, bool)
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
	// Guards are the guards and prompt enrichment of routes (guards.go).
	Guards GuardConfig
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
	latencies router.Latencies
	log       *slog.Logger
	now       func() time.Time
	rand      func() float64
	sleep     func(ctx context.Context, d time.Duration) error
	cache     Cache
	flights   flights
	// reconfigure serialises Reconfigure.
	reconfigure sync.Mutex
	// tab is what a configuration reload changes (table.go): each exchange
	// loads it once and keeps it to its end.
	tab    atomic.Pointer[table]
	tracer trace.Tracer // nil: no tracing
	// guardHits counts the guards' matches across reloads.
	guardHits guardHits
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
	g := &Gateway{tokens: o.Tokens, limits: o.Limits, accounts: o.Accounts, log: o.Logger, now: o.Now, rand: o.Rand, sleep: o.Sleep, cache: o.Cache}
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
	g.tracer = tracerOf(o.TracerProvider)
	t, err := g.newTable(o.Table(), nil)
	if err != nil {
		return nil, err
	}
	g.tab.Store(t)
	return g, nil
}

// ModelInfo is one entry of GET /v1/models.
type ModelInfo struct {
	ID      string
	OwnedBy string
}

// Models lists the models and route aliases key may use, sorted by name.
func (g *Gateway) Models(key *keys.Key) []ModelInfo {
	t := g.tab.Load()
	out := make([]ModelInfo, 0, len(t.names))
	for _, name := range t.names {
		if key.Allows(name) {
			out = append(out, ModelInfo{ID: name, OwnedBy: t.models[name].OwnedBy})
		}
	}
	for _, r := range t.routes.Aliases() {
		if _, _, err := t.resolveRoute(key, r.Name); err == nil {
			out = append(out, ModelInfo{ID: r.Name, OwnedBy: "tollgate"})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Model returns one model or alias the key may use.
func (g *Gateway) Model(key *keys.Key, name string) (ModelInfo, error) {
	t := g.tab.Load()
	if m, ok := t.models[name]; ok && key.Allows(name) {
		return ModelInfo{ID: name, OwnedBy: m.OwnedBy}, nil
	}
	if r, ok := t.routes.Lookup(name); ok && r.Alias() {
		if _, _, err := t.resolveRoute(key, name); err == nil {
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
	t := g.tab.Load()
	byID := map[string]router.BreakerStatus{}
	for _, s := range t.breakers.Snapshot() {
		byID[s.ID] = s
	}
	var out []DeploymentStatus
	for _, name := range t.names {
		m := t.models[name]
		for _, d := range m.Deployments {
			st := DeploymentStatus{BreakerStatus: byID[d.ID], Model: name, Upstream: d.Upstream}
			if until, cooling := t.balancer.CoolingUntil(d.ID); cooling {
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
