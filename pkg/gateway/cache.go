package gateway

import (
	"context"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/tollgate/tollgate/pkg/llm"
	"github.com/tollgate/tollgate/pkg/router"
	"github.com/tollgate/tollgate/pkg/semcache"
)

// Cache is the response cache (semcache.Cache): exact, then semantic.
type Cache interface {
	Prepare(r semcache.Request, ctl semcache.Controls) *semcache.Query
	Lookup(ctx context.Context, q *semcache.Query) (*semcache.Entry, semcache.Result, error)
	Store(ctx context.Context, q *semcache.Query, resp *llm.ChatResponse, model string, cost llm.Micros) error
	Shared(saved llm.Micros)
}

// CacheProvider is what x-tollgate-provider says of an answer served from
// the cache.
const CacheProvider = "cache"

// storeTimeout bounds storing an answer once the client has been served
// (or has left).
const storeTimeout = 10 * time.Second

// Tenant is the cache tenant of a key: the shared tenant it belongs to in
// config, else the key itself. The two never collide.
func (g *Gateway) Tenant(keyID string) string {
	if t, ok := g.tenants[keyID]; ok {
		return "tenant:" + t
	}
	return "key:" + keyID
}

// SharedTenant is the cache tenant of a shared tenant named in config.
func SharedTenant(name string) string { return "tenant:" + name }

// cacheQuery prepares the request for the cache; nil when there is none.
func (g *Gateway) cacheQuery(c Caller, req *llm.ChatRequest) *semcache.Query {
	if g.cache == nil {
		return nil
	}
	return g.cache.Prepare(semcache.Request{Tenant: g.Tenant(c.Key.ID), Model: req.Model, Chat: req}, c.Cache)
}

// lookup asks the cache for an answer and notes the outcome in meta. A hit
// is served whatever the key's budget and the upstreams' health: it costs
// nothing. Only the key's rate limits apply (charged here, with the prompt
// as the provider counted it for an exact hit, else counted for the
// route's first model).
func (g *Gateway) lookup(ctx context.Context, c Caller, meta *Meta, route *router.Route, req *llm.ChatRequest, q *semcache.Query) (*semcache.Entry, error) {
	if q == nil {
		meta.Cache = semcache.KindBypass // no cache configured
		return nil, nil
	}
	e, res, err := g.cache.Lookup(ctx, q)
	meta.Cache, meta.CacheSimilarity, meta.CacheReason = res.Kind, res.Similarity, res.Reason
	if err != nil {
		return nil, err
	}
	if e == nil {
		return nil, nil
	}
	first := route.Models()[0]
	var prompt int
	if res.Kind == semcache.KindHit && e.Usage != nil {
		// The same request, as its provider counted it: no need to count.
		prompt = e.Usage.PromptTokens
	} else if prompt, err = g.tokens.CountChat(first.Tokenizer, first.UpstreamModel, req); err != nil {
		return nil, err
	}
	if err := g.rateLimit(c, meta, &router.Plan{Steps: []router.Step{{Model: first, PromptTokens: prompt}}}); err != nil {
		meta.Cache = ""
		return nil, err
	}
	meta.CacheEntry = e.ID
	g.servedFromCache(meta, e.Model, e.Cost, prompt, e.Usage)
	return e, nil
}

// servedFromCache fills meta for an answer that cost nothing: model is the
// one that answered originally, saved what that call cost.
func (g *Gateway) servedFromCache(meta *Meta, model string, saved llm.Micros, prompt int, usage *llm.Usage) {
	meta.Model, meta.Provider = model, CacheProvider
	meta.PromptTokens = prompt
	meta.Cost = router.Cost{}
	meta.Saved = saved
	if usage != nil {
		meta.CompletionTokens = usage.CompletionTokens
	}
}

// store keeps a successful answer. Downgraded answers are not kept: they
// are not what the requested model would have said, and the next key of
// the tenant may well afford the real one.
func (g *Gateway) store(ctx context.Context, q *semcache.Query, meta *Meta, resp *llm.ChatResponse) {
	if q == nil || meta.Downgraded || q.Bypass() != "" || q.Controls.NoStore {
		return
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	if err := g.cache.Store(sctx, q, resp, meta.Model, meta.Cost.Micros); err != nil {
		g.log.Warn("cache: store failed", "model", meta.Model, "err", err)
	}
}

// flight is one upstream call that identical concurrent misses wait for.
type flight struct {
	done  chan struct{}
	resp  *llm.ChatResponse
	model string
	saved llm.Micros
	usage *llm.Usage
	err   error
}

// flights collapses identical concurrent misses (same exact cache key, so
// same tenant) into one upstream call.
type flights struct {
	mu sync.Mutex
	m  map[string]*flight
}

// join returns the flight of key and whether the caller leads it (and must
// call land when done).
func (fs *flights) join(key string) (*flight, bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if f, ok := fs.m[key]; ok {
		return f, false
	}
	if fs.m == nil {
		fs.m = map[string]*flight{}
	}
	f := &flight{done: make(chan struct{})}
	fs.m[key] = f
	return f, true
}

func (fs *flights) land(key string, f *flight) {
	fs.mu.Lock()
	delete(fs.m, key)
	fs.mu.Unlock()
	close(f.done)
}

// collapse runs miss (the upstream call, which also stores the answer) once
// for identical concurrent requests: the first leads, the others wait for
// its answer and are served it as a hit. When the leader fails for a reason
// of its own (its budget, its rate limit, its client leaving), a follower
// makes its own call; an upstream failure or a refusal of the request
// itself is shared.
func (g *Gateway) collapse(ctx context.Context, meta *Meta, q *semcache.Query, miss func() (*llm.ChatResponse, error)) (*llm.ChatResponse, error) {
	if q == nil || q.Key() == "" || q.Controls.NoCache {
		return miss()
	}
	f, lead := g.flights.join(q.Key())
	if lead {
		defer g.flights.land(q.Key(), f)
		resp, err := miss()
		f.resp, f.err, f.model, f.saved, f.usage = resp, err, meta.Model, meta.Cost.Micros, meta.Usage
		return resp, err
	}
	select {
	case <-f.done:
	case <-ctx.Done():
		return nil, g.deadlineErr(ctx, ctx.Err())
	}
	if f.err != nil {
		if ownFault(f.err) {
			return miss()
		}
		return nil, f.err
	}
	g.cache.Shared(f.saved)
	meta.Cache, meta.CacheSimilarity = semcache.KindHit, 1
	prompt := 0
	if f.usage != nil {
		prompt = f.usage.PromptTokens
	}
	g.servedFromCache(meta, f.model, f.saved, prompt, f.usage)
	meta.Route, meta.Fallback, meta.Attempts = "", "", 0
	return f.resp, nil
}

// ownFault reports whether an error belongs to the request that got it
// rather than to the request's content or the upstreams.
func ownFault(err error) bool {
	switch llm.ForClient(err).Status {
	case http.StatusUnauthorized, http.StatusPaymentRequired, http.StatusForbidden, http.StatusTooManyRequests, llm.StatusClientClosed:
		return true
	}
	return false
}

// replay is a cached answer as a provider stream.
type replay struct {
	chunks []llm.ChatChunk
	next   int
}

func (r *replay) Recv() (*llm.ChatChunk, error) {
	if r.next == len(r.chunks) {
		return nil, io.EOF
	}
	r.next++
	return &r.chunks[r.next-1], nil
}

func (r *replay) Close() error { return nil }
