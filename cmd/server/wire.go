package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/tollgate/tollgate/internal/safe"
	"github.com/tollgate/tollgate/pkg/budget"
	"github.com/tollgate/tollgate/pkg/config"
	"github.com/tollgate/tollgate/pkg/gateway"
	"github.com/tollgate/tollgate/pkg/keys"
	"github.com/tollgate/tollgate/pkg/llm"
	"github.com/tollgate/tollgate/pkg/metrics"
	"github.com/tollgate/tollgate/pkg/providers"
	"github.com/tollgate/tollgate/pkg/router"
	"github.com/tollgate/tollgate/pkg/tokens"
)

// logServed says at start what the gateway serves: at INFO the providers
// with how many models each serves, and the routes; at WARN when it serves
// no model at all (every request would be a 404), with how to fix it.
func logServed(logger *slog.Logger, models []*gateway.Model, routes map[string]config.Route, catalogSize int) {
	perProvider := map[string]int{}
	for _, m := range models {
		seen := map[string]bool{}
		for _, d := range m.Deployments {
			if !seen[d.ProviderName] {
				seen[d.ProviderName] = true
				perProvider[d.ProviderName]++
			}
		}
	}
	names := make([]string, 0, len(perProvider))
	for name := range perProvider {
		names = append(names, name)
	}
	sort.Strings(names)
	served := make([]string, len(names))
	for i, name := range names {
		served[i] = fmt.Sprintf("%s (%d models)", name, perProvider[name])
	}
	routeNames := make([]string, 0, len(routes))
	for name := range routes {
		routeNames = append(routeNames, name)
	}
	sort.Strings(routeNames)
	if len(models) == 0 {
		logger.Warn("NOTHING IS SERVED: no model of the catalog has a configured provider, so every request gets a 404; "+
			"configure providers (a config file without a providers key keeps the built-in simulator; providers: [] serves nothing)",
			"catalog_models", catalogSize, "routes", strings.Join(routeNames, ","))
		return
	}
	plural := func(n int, what string) string {
		if n == 1 {
			return "1 " + what
		}
		return fmt.Sprintf("%d %ss", n, what)
	}
	logger.Info("serving "+plural(len(models), "model")+" from "+plural(len(names), "provider")+": "+strings.Join(served, ", "),
		"routes", strings.Join(routeNames, ","), "catalog_models", catalogSize)
}

// buildGateway connects the catalog, the providers and the request flow.
func buildGateway(cfg *config.Config, counter *tokens.Counter, clients map[string][]providers.Provider, ledger *budget.Ledger, cache *cacheParts, logger *slog.Logger, mx *metrics.Metrics, tp trace.TracerProvider) (*gateway.Gateway, gateway.Table, error) {
	tb, err := buildTable(cfg, clients, cache, logger, mx)
	if err != nil {
		return nil, tb, err
	}
	opts := gateway.Options{Models: tb.Models, Tokens: counter, Routes: tb.Routes, Breakers: tb.Breakers, Limits: ledger.Limits, Accounts: ledger.Accounts,
		RequestTimeout: tb.RequestTimeout, Logger: logger, Tenants: tb.Tenants, Judge: tb.Judge, TracerProvider: tp, Guards: tb.Guards}
	if cache.cache != nil { // a nil *semcache.Cache must not become a non-nil interface
		opts.Cache = cache.cache
	}
	gw, err := gateway.New(opts)
	return gw, tb, judgeErr(err, tb.Judge)
}

// judgeErr says which setting names a judge the gateway does not serve.
func judgeErr(err error, j gateway.Judge) error {
	if errors.Is(err, gateway.ErrNoJudge) {
		return fmt.Errorf("cache.semantic.verify.model: %q is not a chat model or route this gateway serves (name a model of the catalog with a configured provider, or a route)", j.Model)
	}
	return err
}

// buildTable makes what the gateway routes by, at start and at each
// reload. A catalog model is served by the deployments the config gives
// it, or else by every key of the provider its catalog entry names, when
// that provider is configured.
func buildTable(cfg *config.Config, clients map[string][]providers.Provider, cache *cacheParts, logger *slog.Logger, mx *metrics.Metrics) (gateway.Table, error) {
	var tb gateway.Table
	catalog, err := buildCatalog(cfg, logger)
	if err != nil {
		return tb, err
	}
	byName := map[string]config.Provider{}
	for _, p := range cfg.Providers {
		byName[p.Name] = p
	}
	explicit := map[string][]config.Deployment{}
	for _, m := range cfg.Models {
		explicit[m.Name] = m.Deployments
	}
	var models []*gateway.Model
	for _, m := range catalog.Models() {
		if m.Mode != router.ModeChat && m.Mode != router.ModeEmbedding {
			continue
		}
		wanted := explicit[m.Name]
		if len(wanted) == 0 {
			wanted = []config.Deployment{{Provider: m.Provider}}
		}
		var deps []gateway.Deployment
		simulated := false
		for _, w := range wanted {
			upstream := w.UpstreamModel
			if upstream == "" {
				upstream = m.UpstreamModel
			}
			for i, client := range clients[w.Provider] {
				_, isSim := client.(*providers.Sim)
				simulated = simulated || isSim
				id := w.Provider + "/" + upstream
				if len(clients[w.Provider]) > 1 {
					id = fmt.Sprintf("%s#%d/%s", w.Provider, i+1, upstream)
				}
				deps = append(deps, gateway.Deployment{
					ID: id, Provider: client, ProviderName: w.Provider, Upstream: upstream, Weight: w.Weight,
					Backoff: backoffOf(byName[w.Provider].Retry), AttemptTimeout: byName[w.Provider].Timeout.Std(),
				})
			}
		}
		if len(deps) == 0 {
			continue
		}
		models = append(models, &gateway.Model{
			Name: m.Name,
			Spec: m,
			Chat: m.Mode == router.ModeChat,
			// The simulator embeds with any model, so the quick start's
			// sim-small and sim-large do embeddings too.
			Embeddings:  m.Mode == router.ModeEmbedding || simulated,
			OwnedBy:     m.Provider,
			Deployments: deps,
		})
	}
	routes, err := router.NewRoutes(catalog, routesOf(cfg.Routes))
	if err != nil {
		return tb, err
	}
	breakers, err := router.NewBreakers(breakerConfig(cfg, logger, mx))
	if err != nil {
		return tb, err
	}
	logServed(logger, models, cfg.Routes, len(catalog.Models()))
	tb = gateway.Table{Models: models, Routes: routes, Breakers: breakers, RequestTimeout: cfg.RequestTimeout.Std(),
		Tenants: tenantsOf(cfg.Cache), NoCache: !cfg.Cache.Enabled, Guards: guardsOf(cfg)}
	if s := cfg.Cache.Semantic; cache.cache != nil && s.Enabled && s.Verify.Model != "" {
		tb.Judge = gateway.Judge{Model: s.Verify.Model, Timeout: s.Verify.Timeout.Std()}
	}
	return tb, nil
}

func routesOf(in map[string]config.Route) []router.Route {
	out := make([]router.Route, 0, len(in))
	for name, r := range in {
		out = append(out, router.Route{
			Name: name, Strategy: router.Strategy(r.Strategy), Candidates: r.Candidates, Weights: r.Weights, Sticky: r.Sticky,
			MinTier: r.MinTier, ExpectedOutput: r.ExpectedOutputTokens, Timeout: r.Timeout.Std(), TTFTTimeout: r.TTFTTimeout.Std(),
			StreamIdleTimeout: r.StreamIdleTimeout.Std(), Downgrade: r.OnExhausted == "downgrade",
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// guardsOf gives the gateway the guards, the default list and the routes'
// own lists and enrichment. A route without a guards list is left out of
// Routes (it applies the default); `guards: []` is kept (it applies none).
func guardsOf(cfg *config.Config) gateway.GuardConfig {
	g := cfg.Guardrails
	out := gateway.GuardConfig{ScanLimit: g.ScanLimitBytes, Default: g.Default, Routes: map[string][]string{}, Enrich: map[string]gateway.Enrichment{}}
	for _, gd := range g.Guards {
		out.Guards = append(out.Guards, gd.Spec())
	}
	messages := func(in []config.EnrichMessage) []gateway.EnrichMessage {
		var msgs []gateway.EnrichMessage
		for _, m := range in {
			msgs = append(msgs, gateway.EnrichMessage{Role: m.Role, Content: m.Content})
		}
		return msgs
	}
	for name, r := range cfg.Routes {
		if r.Guards != nil {
			out.Routes[name] = r.Guards
		}
		if !r.Enrich.Empty() {
			out.Enrich[name] = gateway.Enrichment{Prepend: messages(r.Enrich.Prepend), Append: messages(r.Enrich.Append)}
		}
	}
	return out
}

// breakerConfig gives every provider, and deployments of none, explicit
// settings: the config's, whose defaults are config.DefaultBreaker.
func breakerConfig(cfg *config.Config, logger *slog.Logger, mx *metrics.Metrics) router.BreakerConfig {
	bc := router.BreakerConfig{
		Default:   breakerSettings(nil),
		Providers: map[string]router.BreakerSettings{},
		OnStateChange: func(id, provider string, from, to router.BreakerState) {
			logger.Warn("circuit breaker", "deployment", id, "from", from.String(), "to", to.String())
			mx.Breaker(id, provider, from, to)
		},
	}
	for _, p := range cfg.Providers {
		bc.Providers[p.Name] = breakerSettings(p.Breaker)
	}
	return bc
}

// breakerSettings translates a provider's breaker; nil (a Provider built
// in Go rather than loaded) is config.DefaultBreaker.
func breakerSettings(b *config.Breaker) router.BreakerSettings {
	if b == nil {
		d := config.DefaultBreaker()
		b = &d
	}
	return router.BreakerSettings{
		ConsecutiveFailures: b.ConsecutiveFailures, FailureRatio: b.FailureRatio, MinRequests: b.MinRequests,
		Window: b.Window.Std(), Cooldown: b.Cooldown.Std(), HalfOpenRequests: b.HalfOpenRequests,
	}
}

// backoffOf translates a provider's retry policy; nil (a Provider built in
// Go rather than loaded) is config.DefaultRetry.
func backoffOf(r *config.Retry) router.Backoff {
	if r == nil {
		d := config.DefaultRetry()
		r = &d
	}
	return router.Backoff{MaxAttempts: r.MaxAttempts, Base: r.Base.Std(), Max: r.Max.Std()}
}

// buildCatalog layers the built-in table, the imported LiteLLM price list
// and the config's models, later overriding earlier.
func buildCatalog(cfg *config.Config, logger *slog.Logger) (*router.Catalog, error) {
	var layers []router.Layer
	if path := cfg.Catalog.Import; path != "" {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("catalog.import: %w", err)
		}
		patches, problems := router.ImportLiteLLM(f)
		f.Close()
		for _, p := range problems {
			logger.Warn("catalog.import: entry skipped", "file", path, "problem", p.Error())
		}
		layers = append(layers, router.Layer{Source: "litellm:" + path, Patches: patches, PriceList: true})
	}
	patches := make([]router.ModelPatch, 0, len(cfg.Models))
	for i, m := range cfg.Models {
		p, err := modelPatch(m)
		if err != nil {
			return nil, fmt.Errorf("models[%d]: %w", i, err)
		}
		patches = append(patches, p)
	}
	layers = append(layers, router.Layer{Source: "models", Patches: patches})
	return router.NewCatalog(router.Builtin(), layers...)
}

func modelPatch(m config.Model) (router.ModelPatch, error) {
	p := router.ModelPatch{
		Name: m.Name, MaxInputTokens: m.MaxInputTokens, MaxOutputTokens: m.MaxOutputTokens,
		Tools: m.Tools, Vision: m.Vision, JSONSchema: m.JSONSchema, Streaming: m.Streaming, Reasoning: m.Reasoning,
		Tier: m.Tier, Tokenizer: m.Tokenizer,
	}
	if m.Provider != "" {
		p.Provider = &m.Provider
	}
	if m.UpstreamModel != "" {
		p.UpstreamModel = &m.UpstreamModel
	}
	if m.Mode != "" {
		mode := router.Mode(m.Mode)
		p.Mode = &mode
	}
	for _, f := range []struct {
		usd *float64
		dst **router.Price
	}{{m.InputPerMTok, &p.InputPrice}, {m.OutputPerMTok, &p.OutputPrice}, {m.CachedInputPerMTok, &p.CachedInputPrice}, {m.CacheWritePerMTok, &p.CacheWritePrice}} {
		if f.usd == nil {
			continue
		}
		price, err := router.PricePerMillion(*f.usd)
		if err != nil {
			return p, err
		}
		*f.dst = &price
	}
	return p, nil
}

// buildProviders makes the clients of every configured upstream: one per
// API key, each its own deployment. Simulated providers report usage
// counted by the real tokenizer, as a real upstream would.
func buildProviders(cfg *config.Config, counter *tokens.Counter, client *http.Client) (map[string][]providers.Provider, error) {
	out := make(map[string][]providers.Provider, len(cfg.Providers))
	for i, p := range cfg.Providers {
		list, err := providerClients(p, counter, client)
		if err != nil {
			return nil, fmt.Errorf("providers[%d] (%s): %w", i, p.Name, err)
		}
		out[p.Name] = list
	}
	return out, nil
}

// providerClients makes one provider's clients, one per API key.
func providerClients(p config.Provider, counter *tokens.Counter, client *http.Client) ([]providers.Provider, error) {
	apiKeys := p.APIKeys
	if len(apiKeys) == 0 {
		apiKeys = []string{p.APIKey}
	}
	var out []providers.Provider
	for _, key := range apiKeys {
		prov, err := buildProvider(p, key, counter, client)
		if err != nil {
			return nil, err
		}
		out = append(out, prov)
	}
	return out, nil
}

// client is the upstreams' HTTP client (nil: the providers' own).
func buildProvider(p config.Provider, key string, counter *tokens.Counter, client *http.Client) (providers.Provider, error) {
	switch p.Type {
	case "openai", "azure":
		oc := providers.OpenAIConfig{
			Name:              p.Name,
			BaseURL:           p.BaseURL,
			APIKey:            key,
			Headers:           p.Headers,
			APIVersion:        p.APIVersion,
			Timeout:           p.Timeout.Std(),
			StreamIdleTimeout: p.StreamIdleTimeout.Std(),
			TTFTTimeout:       p.TTFTTimeout.Std(),
			MaxResponseBytes:  p.MaxResponseBytes,
			MaxEventBytes:     int(p.MaxEventBytes),
			MaxStreamBytes:    p.MaxStreamBytes,
			NoStreamOptions:   p.NoStreamOptions,
			MaxTokensField:    p.MaxTokensField,
			ResponsesAPI:      p.ResponsesAPI,
			HTTPClient:        client,
		}
		if p.Type == "azure" {
			oc.Flavor = providers.FlavorAzure
		}
		return providers.NewOpenAI(oc)
	case "anthropic":
		return providers.NewAnthropic(providers.AnthropicConfig{Name: p.Name, BaseURL: p.BaseURL, APIKey: key, Headers: p.Headers, Timeout: p.Timeout.Std(),
			StreamIdleTimeout: p.StreamIdleTimeout.Std(), TTFTTimeout: p.TTFTTimeout.Std(),
			MaxResponseBytes: p.MaxResponseBytes, MaxEventBytes: int(p.MaxEventBytes), MaxStreamBytes: p.MaxStreamBytes, HTTPClient: client})
	case "sim":
		sc := providers.SimConfig{Name: p.Name, CountPrompt: func(r *llm.ChatRequest) int {
			n, _ := counter.CountChat(tokens.O200K, r.Model, r)
			return n
		}}
		if s := p.Sim; s != nil {
			sc.Seed = uint64(s.Seed)
			sc.Latency = simDist(s.Latency)
			sc.TTFT = simDist(s.TTFT)
			sc.TokensPerSecond = s.TokensPerSecond
			sc.ErrorRate = s.ErrorRate
			sc.ErrorKinds = s.Errors
			sc.RetryAfter = s.RetryAfter.Std()
		}
		return providers.NewSim(sc)
	}
	return nil, fmt.Errorf("unknown type %q", p.Type)
}

// simDist maps the config's latency to the simulator's distribution: a
// normal distribution takes p50 as its mean and p99 for its spread.
func simDist(l config.Latency) providers.Dist {
	const z99 = 2.326347874
	switch l.Dist {
	case "uniform":
		return providers.Dist{Kind: "uniform", Min: l.Min.Std(), Max: l.Max.Std()}
	case "normal":
		return providers.Dist{Kind: "normal", Mean: l.P50.Std(), Stddev: time.Duration(float64(l.P99-l.P50) / z99), Max: l.Max.Std()}
	case "lognormal":
		return providers.Dist{Kind: "lognormal", P50: l.P50.Std(), P99: l.P99.Std(), Max: l.Max.Std()}
	}
	return providers.Dist{Kind: "fixed", Value: l.P50.Std()}
}

// openLedger opens the budget ledger: keys' policies, period spend rebuilt
// from the ledger rows, the alert outbox and its deliverer.
func openLedger(ctx context.Context, cfg *config.Config, st *store, ks *keys.Store, sup *safe.Supervisor, logger *slog.Logger) (*budget.Ledger, error) {
	loc := time.UTC
	if tz := cfg.Budget.Timezone; tz != "" {
		var err error
		if loc, err = time.LoadLocation(tz); err != nil {
			return nil, fmt.Errorf("budget.timezone: %w", err)
		}
	}
	defaults, err := policyOf(cfg.Budget.Defaults)
	if err != nil {
		return nil, fmt.Errorf("budget.defaults.%w", err)
	}
	if err := defaults.Validate(); err != nil {
		return nil, fmt.Errorf("budget.defaults: %w", err)
	}
	var hooks []budget.Webhook
	for _, w := range cfg.Budget.Webhooks {
		hooks = append(hooks, budget.Webhook{URL: w.URL, Slack: w.Slack})
	}
	o := budget.Options{
		Location: loc, Defaults: defaults, Webhooks: hooks, WebhookSecret: cfg.Budget.WebhookSecret, Logger: logger,
		Supervisor: sup, Shared: st.shared,
		KeyName: func(id string) string {
			if k, ok := ks.Get(id); ok {
				return k.Name
			}
			return ""
		},
	}
	if st.shared == nil {
		// One process: a settle is durable once appended to the journal.
		o.JournalPath = filepath.Join(cfg.DataDir, "ledger.journal")
	}
	return budget.Open(ctx, st.db, o)
}

func policyOf(p config.KeyPolicy) (budget.Policy, error) {
	out := budget.Policy{RPM: p.RPM, TPM: p.TPM, OnExhausted: budget.OnExhausted(p.OnExhausted)}
	for i, l := range p.Budgets {
		amount, err := budget.ParseUSD(l.LimitUSD)
		if err != nil {
			return out, fmt.Errorf("budgets[%d].limit_usd: %w", i, err)
		}
		out.Limits = append(out.Limits, budget.Limit{Period: budget.Period(l.Period), Amount: amount, Thresholds: l.AlertThresholds})
	}
	return out, nil
}
