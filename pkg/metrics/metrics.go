// Package metrics is tollgate's Prometheus metrics: one registry of its
// own (never the process-wide default), the collectors, and the few
// methods the rest of tollgate calls. The HTTP layer reports each request
// once it is answered (Request, through its Observer interface), as plain
// values (Exchange), so this package sits below the gateway. cmd/server
// wires the breakers' transitions (Breaker) and state other packages
// already keep (the dropped log lines) as functions read at scrape time.
//
// Labels are bounded: routes are the HTTP route patterns, models and
// providers the configured ones, statuses the HTTP codes, guard rules the
// guard's rule names, guards the configured guards' names; never a prompt,
// a request id, a key's secret or what a guard matched.
package metrics

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tollgate/tollgate/pkg/llm"
	"github.com/tollgate/tollgate/pkg/router"
	"github.com/tollgate/tollgate/pkg/semcache"
)

const namespace = "tollgate"

// Savings causes (tollgate_saved_micros_total{cause}).
const (
	SavedExact     = "exact"
	SavedSemantic  = "semantic"
	SavedDowngrade = "downgrade"
)

// Refusal reasons (tollgate_refusals_total{reason}).
const (
	RefusedRateLimit = "rate_limit" // 429 from the key's own limits, not an upstream's
	RefusedBudget    = "budget"     // 402
)

// Metrics holds the registry and the collectors. Safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	requests    *prometheus.CounterVec   // route, model, provider, status, cache
	duration    *prometheus.HistogramVec // route
	upstream    *prometheus.HistogramVec // provider, model
	overhead    *prometheus.HistogramVec // cache
	firstToken  *prometheus.HistogramVec // provider, model
	tokens      *prometheus.CounterVec   // model, direction
	cost        *prometheus.CounterVec   // model, provider
	saved       *prometheus.CounterVec   // model, cause
	retries     *prometheus.CounterVec   // model
	fallbacks   *prometheus.CounterVec   // model
	refusals    *prometheus.CounterVec   // reason
	lookups     *prometheus.CounterVec   // result
	semRefusals *prometheus.CounterVec   // rule
	similarity  prometheus.Histogram
	breaker     *prometheus.GaugeVec     // deployment, provider
	transitions *prometheus.CounterVec   // deployment, provider, to
	embed       *prometheus.HistogramVec // embedder, outcome
	embedTexts  *prometheus.CounterVec   // embedder
	guardHits   *prometheus.CounterVec   // guard, direction, action
	guardBlocks *prometheus.CounterVec   // guard, direction
}

// latencyBuckets span a cached answer (sub-millisecond) to a long
// completion (minutes).
var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120}

// overheadBuckets are finer: tollgate's own time is meant to be small.
var overheadBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1}

// New builds the metrics on a registry of their own, with Go's runtime and
// process collectors.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	f := factory{m.reg}
	m.requests = f.counter("requests_total", "Requests answered, by HTTP route, served model, provider (cache for a cached answer), status and cache result.",
		"route", "model", "provider", "status", "cache")
	m.duration = f.histogram("request_duration_seconds", "Time from a request's arrival to the end of its answer (a stream's last event).", latencyBuckets, "route")
	m.upstream = f.histogram("upstream_duration_seconds", "Time spent waiting on upstreams per request: every attempt, a stream's body included.", latencyBuckets, "provider", "model")
	m.overhead = f.histogram("overhead_seconds", "Tollgate's own time per request that reached the gateway: total minus upstream time.", overheadBuckets, "cache")
	m.firstToken = f.histogram("time_to_first_token_seconds", "Time from a streamed request's arrival to its first upstream chunk.", latencyBuckets, "provider", "model")
	m.tokens = f.counter("tokens_total", "Tokens billed by upstreams (prompt: in, completion: out); cached answers bill none.", "model", "direction")
	m.cost = f.counter("cost_micros_total", "What requests cost, in micro-dollars (unpriced models count nothing).", "model", "provider")
	m.saved = f.counter("saved_micros_total", "Money saved against the model asked for, in micro-dollars, by cause: exact and semantic cache hits, budget downgrades.", "model", "cause")
	m.retries = f.counter("retries_total", "Upstream attempts beyond the first, per request's served model.", "model")
	m.fallbacks = f.counter("fallbacks_total", "Requests served after an earlier candidate or deployment did not serve.", "model")
	m.refusals = f.counter("refusals_total", "Requests tollgate refused itself: rate_limit (429) and budget (402).", "reason")
	m.lookups = f.counter("cache_lookups_total", "Cache lookups by result: hit, semantic-hit, miss, bypass.", "result")
	m.semRefusals = f.counter("cache_semantic_refusals_total", "Semantic candidates refused, by the guard's rule (or judge).", "rule")
	m.similarity = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Name: "cache_semantic_similarity",
		Help: "Similarity of the semantic hits served.", Buckets: []float64{.8, .85, .88, .9, .92, .94, .96, .98, .99, 1}})
	m.reg.MustRegister(m.similarity)
	m.breaker = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: "breaker_state",
		Help: "A deployment's circuit breaker after its last transition: 0 closed, 1 half-open, 2 open."}, []string{"deployment", "provider"})
	m.reg.MustRegister(m.breaker)
	m.transitions = f.counter("breaker_transitions_total", "Circuit breaker transitions, by the state entered.", "deployment", "provider", "to")
	m.embed = f.histogram("embedder_duration_seconds", "Time of the semantic cache's calls to its embedder (one call embeds a batch of texts), by embedder and outcome (ok, error).",
		latencyBuckets, "embedder", "outcome")
	m.embedTexts = f.counter("embedder_texts_total", "Texts the semantic cache's embedder was asked to embed.", "embedder")
	m.guardHits = f.counter("guard_matches_total", "Guardrail matches, by guard, direction (request, answer) and the action applied (block, mask, log).",
		"guard", "direction", "action")
	m.guardBlocks = f.counter("guard_blocks_total", "Requests (direction request) or answers (direction answer) a guard refused.", "guard", "direction")
	return m
}

type factory struct{ reg *prometheus.Registry }

func (f factory) counter(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help}, labels)
	f.reg.MustRegister(c)
	return c
}

func (f factory) histogram(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: name, Help: help, Buckets: buckets}, labels)
	f.reg.MustRegister(h)
	return h
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Exchange is what the HTTP layer knows of one answered request, in plain
// values (the gateway's Meta, flattened where the request is answered).
type Exchange struct {
	Route  string        // the HTTP route pattern ("" when none matched)
	Status int           // what the client got
	Total  time.Duration // arrival to the end of the answer
	Err    *llm.Error    // the error the client got, if any

	// What the gateway did; Model is "" when no model served the request
	// (a refusal, or the request did not reach the gateway).
	Model, Provider  string
	Cache            string // hit, semantic-hit, miss, bypass or ""
	CacheReason      string // why a semantic candidate was refused, if one was
	Similarity       float32
	Upstream         time.Duration // waiting on upstreams, every attempt
	FirstToken       time.Duration // a stream's first upstream chunk, from arrival
	PromptTokens     int
	CompletionTokens int
	Cost             llm.Micros
	Unpriced         bool
	Saved            llm.Micros
	Attempts         int
	Fallback         bool // an earlier candidate or deployment did not serve

	// Guards are the guards that matched, per direction; Blocked names
	// the guard that refused the request or its answer ("": none).
	Guards  []GuardHit
	Blocked string
}

// GuardHit is how often one guard matched in one direction of a request
// (gateway.GuardHit): its name comes from the config, never the text.
type GuardHit struct {
	Guard     string
	Direction string // DirRequest or DirAnswer
	Action    string // block, mask or log
	Count     int
}

// Guard directions (gateway.DirRequest, DirAnswer).
const (
	DirRequest = "request"
	DirAnswer  = "answer"
)

// Request records one answered request. It takes the exchange by value:
// a call through an interface then costs no allocation.
func (m *Metrics) Request(e Exchange) {
	route := e.Route
	if route == "" {
		route = "unmatched"
	}
	model, provider, cache := e.Model, e.Provider, e.Cache
	m.requests.WithLabelValues(route, model, provider, statusText(e.Status), cache).Inc()
	m.duration.WithLabelValues(route).Observe(e.Total.Seconds())
	if err := e.Err; err != nil && !err.Upstream {
		switch err.Status {
		case http.StatusTooManyRequests:
			m.refusals.WithLabelValues(RefusedRateLimit).Inc()
		case http.StatusPaymentRequired:
			m.refusals.WithLabelValues(RefusedBudget).Inc()
		}
	}
	if cache != "" {
		m.lookups.WithLabelValues(cache).Inc()
		m.cacheOutcome(&e)
	}
	if len(e.Guards) > 0 || e.Blocked != "" {
		m.guards(&e)
	}
	if model == "" {
		return // refused before any model served it
	}
	m.overhead.WithLabelValues(cache).Observe(max(e.Total-e.Upstream, 0).Seconds())
	if provider != CacheProvider {
		m.upstream.WithLabelValues(provider, model).Observe(e.Upstream.Seconds())
		if e.FirstToken > 0 {
			m.firstToken.WithLabelValues(provider, model).Observe(e.FirstToken.Seconds())
		}
		m.tokens.WithLabelValues(model, "in").Add(float64(e.PromptTokens))
		m.tokens.WithLabelValues(model, "out").Add(float64(e.CompletionTokens))
	}
	if !e.Unpriced && e.Cost > 0 {
		m.cost.WithLabelValues(model, provider).Add(float64(e.Cost))
	}
	if e.Saved > 0 {
		m.saved.WithLabelValues(model, savedCause(&e)).Add(float64(e.Saved))
	}
	if e.Attempts > 1 {
		m.retries.WithLabelValues(model).Add(float64(e.Attempts - 1))
	}
	if e.Fallback {
		m.fallbacks.WithLabelValues(model).Inc()
	}
}

// CacheProvider is the provider of an answer served from the cache
// (gateway.CacheProvider).
const CacheProvider = "cache"

// cacheOutcome records a semantic hit's similarity and why a semantic
// candidate was refused.
func (m *Metrics) cacheOutcome(e *Exchange) {
	switch e.Cache {
	case semcache.KindSemanticHit:
		m.similarity.Observe(float64(e.Similarity))
	case semcache.KindMiss:
		if rule := refusalRule(e.CacheReason); rule != "" {
			m.semRefusals.WithLabelValues(rule).Inc()
		}
	}
}

// refusalRule is the rule a semantic miss's reason names: the guard's
// ("guard: negation: ..." → negation) or "judge"; "" for a miss that was
// no refusal. The guard's detail quotes the prompts' words: only the rule
// name, checked to be one, becomes a label.
func refusalRule(reason string) string {
	if strings.HasPrefix(reason, "judge: not") {
		return "judge"
	}
	rest, ok := strings.CutPrefix(reason, "guard: ")
	if !ok {
		return ""
	}
	rule, _, _ := strings.Cut(rest, ":")
	if len(rule) == 0 || len(rule) > 32 {
		return "other"
	}
	for i := 0; i < len(rule); i++ {
		if c := rule[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return "other"
		}
	}
	return rule
}

// guards counts a request's guard matches and the refusal, if a guard
// refused it.
func (m *Metrics) guards(e *Exchange) {
	for _, h := range e.Guards {
		if h.Count > 0 {
			m.guardHits.WithLabelValues(h.Guard, h.Direction, h.Action).Add(float64(h.Count))
		}
	}
	if e.Blocked != "" {
		m.guardBlocks.WithLabelValues(e.Blocked, blockedDirection(e)).Inc()
	}
}

// blockedDirection is what the blocking guard refused: the direction of
// its blocking match; without one (a guard that failed, which refuses
// rather than let the text through) the answer when a model served the
// request, else the request, since request guards run before any model.
func blockedDirection(e *Exchange) string {
	for _, h := range e.Guards {
		if h.Guard == e.Blocked && h.Action == "block" && h.Count > 0 {
			return h.Direction
		}
	}
	if e.Model != "" {
		return DirAnswer
	}
	return DirRequest
}

func savedCause(e *Exchange) string {
	switch {
	case e.Cache == semcache.KindSemanticHit:
		return SavedSemantic
	case e.Provider == CacheProvider:
		return SavedExact
	default:
		return SavedDowngrade
	}
}

// statuses holds the label of every HTTP status, so a request's costs no
// allocation.
var statuses = func() (s [600]string) {
	for i := range s {
		s[i] = strconv.Itoa(i)
	}
	return s
}()

func statusText(code int) string {
	if code >= 0 && code < len(statuses) {
		return statuses[code]
	}
	return strconv.Itoa(code)
}

// Breaker records a circuit breaker's transition (router.BreakerConfig's
// OnStateChange: quick, it runs under the breaker's lock).
// A nil Metrics records nothing.
func (m *Metrics) Breaker(id, provider string, from, to router.BreakerState) {
	if m == nil {
		return
	}
	m.breaker.WithLabelValues(id, provider).Set(float64(to))
	m.transitions.WithLabelValues(id, provider, to.String()).Inc()
}

// Embed records one call of the semantic cache's embedder (named by its
// configured name: bounded) that took took for texts texts. A nil Metrics
// records nothing.
func (m *Metrics) Embed(embedder string, took time.Duration, texts int, err error) {
	if m == nil {
		return
	}
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	m.embed.WithLabelValues(embedder, outcome).Observe(took.Seconds())
	m.embedTexts.WithLabelValues(embedder).Add(float64(texts))
}

// CounterFunc registers a counter read at scrape time from state another
// package keeps (e.g. the log lines dropped).
func (m *Metrics) CounterFunc(name, help string, read func() float64) {
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help}, read))
}

// GaugeFunc registers a gauge read at scrape time.
func (m *Metrics) GaugeFunc(name, help string, read func() float64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help}, read))
}
