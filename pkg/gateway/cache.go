package gateway

import (
	"context"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/tollgate/tollgate/pkg/llm"
	"github.com/tollgate/tollgate/pkg/semcache"
)

// Cache is the response cache (semcache.Cache): exact, then semantic.
type Cache interface {
	Prepare(r semcache.Request, ctl semcache.Controls) *semcache.Query
	Lookup(ctx context.Context, q *semcache.Query) (*semcache.Entry, semcache.Result, error)
	Store(ctx context.Context, q *semcache.Query, resp *llm.ChatResponse, model string, cost llm.Micros) error
	Shared(saved llm.Micros)
}

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
