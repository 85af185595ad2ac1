package main

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/tollgate/tollgate/pkg/config"
	"github.com/tollgate/tollgate/pkg/gateway"
	"github.com/tollgate/tollgate/pkg/llm"
	"github.com/tollgate/tollgate/pkg/providers"
	"github.com/tollgate/tollgate/pkg/router"
	"github.com/tollgate/tollgate/pkg/tokens"
)

// buildGateway connects the catalog, the providers and the request flow.
// A catalog model is served when a provider of its name is configured.
func buildGateway(cfg *config.Config, logger *slog.Logger) (*gateway.Gateway, error) {
	catalog, err := buildCatalog(cfg, logger)
	if err != nil {
		return nil, err
	}
	counter := tokens.NewCounter()
	provs, err := buildProviders(cfg, counter)
	if err != nil {
		return nil, err
	}
	var models []*gateway.Model
	for _, m := range catalog.Models() {
		p, ok := provs[m.Provider]
		if !ok || (m.Mode != router.ModeChat && m.Mode != router.ModeEmbedding) {
			continue
		}
		_, simulated := p.(*providers.Sim)
		models = append(models, &gateway.Model{
			Name: m.Name,
			Spec: m,
			Chat: m.Mode == router.ModeChat,
			// The simulator embeds with any model, so the quick start's
			// sim-small and sim-large do embeddings too.
			Embeddings:  m.Mode == router.ModeEmbedding || simulated,
			OwnedBy:     m.Provider,
			Deployments: []gateway.Deployment{{Provider: p, Upstream: m.UpstreamModel}},
		})
	}
	logger.Info("catalog ready", "models", len(catalog.Models()), "served", len(models), "providers", len(provs))
	return gateway.New(gateway.Options{Models: models, Tokens: counter, RequestTimeout: cfg.RequestTimeout.Std(), Logger: logger})
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

// buildProviders makes one client per configured upstream. Simulated
// providers report usage counted by the real tokenizer, as a real upstream
// would.
func buildProviders(cfg *config.Config, counter *tokens.Counter) (map[string]providers.Provider, error) {
	out := make(map[string]providers.Provider, len(cfg.Providers))
	for i, p := range cfg.Providers {
		var (
			prov providers.Provider
			err  error
		)
		switch p.Type {
		case "openai", "azure":
			oc := providers.OpenAIConfig{
				Name:            p.Name,
				BaseURL:         p.BaseURL,
				APIKey:          p.APIKey,
				Headers:         p.Headers,
				APIVersion:      p.APIVersion,
				Timeout:         p.Timeout.Std(),
				NoStreamOptions: p.NoStreamOptions,
			}
			if p.Type == "azure" {
				oc.Flavor = providers.FlavorAzure
			}
			prov, err = providers.NewOpenAI(oc)
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
			prov, err = providers.NewSim(sc)
		default:
			err = fmt.Errorf("unknown type %q", p.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("providers[%d] (%s): %w", i, p.Name, err)
		}
		out[p.Name] = prov
	}
	return out, nil
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
