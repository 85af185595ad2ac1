// Package semcache owns tollgate's response caches: the exact-match cache
// (ristretto), the semantic cache (an embedder, a vector index and a guard
// that refuses near-misses embeddings cannot tell apart), their scoping
// (nothing is ever served across tenants, models, system prompts, tools or
// sampling settings), TTLs and persistence. Sub-packages hold the offline
// embedder (use), the embedded vector index (vecindex), the Qdrant adapter
// (qdrant) and the guard's rules (guard); they implement the small
// interfaces declared here (Embedder, Index, Checker), and cmd/server
// passes them in.
package semcache

import (
	"context"
	"errors"
	"time"
)

// DefaultThreshold is the cosine similarity (USE-lite, model
// "use-lite-v1") at or above which the semantic cache serves a candidate
// whose prompt the guard (Options.Checker) finds aligned with the asked one:
// a low floor, since the alignment, not the cosine, keeps near-misses out
// (they score up to 0.99, above most paraphrases); the floor only has to
// keep out what no alignment should pass. Chosen on
// shared/data/semcache-dev (697 labelled pairs, a 3,000-request workload;
// go run ./benchmarks/cachequality, the real gateway, both orders of each
// pair) as the middle of the flat range, not at its edge:
//
//	floor  paraphrases served  near-misses served  workload correct / wrong (exact-only 2,618)
//	0.30   61.9%               0 of 348            2,640 / 0
//	0.50   61.9%               0 of 348            2,640 / 0   (shipped)
//	0.60   61.9%               0 of 348            2,640 / 0
//	0.70   60.5%               0 of 348            2,638 / 0   (typo'd prompts fall below)
//	0.80   53.3%               0 of 348            2,635 / 0
const DefaultThreshold float32 = 0.50

// DefaultUnalignedThreshold is the cosine at or above which a candidate the
// guard allows but cannot align is served without a judge: above 1, never.
// On the same dev pairs (aligned pairs at the 0.50 floor plus unaligned ones
// at this threshold) no value keeps the wrong hits at 1%:
//
//	unaligned  paraphrases  near-misses  hits wrong  workload wrong
//	0.90       69.3%        31           11.4%       17
//	0.95       65.6%        11            4.6%        5
//	0.97       63.9%         6            2.6%        0
//	1.01       61.9%         0            0.0%        0   (shipped)
//
// Unaligned paraphrases are what a judge (cache.semantic.verify) is for.
const DefaultUnalignedThreshold float32 = 1.01

// Fitter is implemented by an Embedder that reads only a window of its
// input (USE-lite: 128 tokens). A query that does not fit skips the
// semantic path: two long prompts that differ after the window embed alike,
// so a semantic hit would be unsafe. Exact matching still serves it.
type Fitter interface {
	Fits(text string) bool
}

// Embedder turns texts into unit-length vectors of Dim dimensions.
type Embedder interface {
	Embed(ctx context.Context, texts []string) ([][]float32, error)
	Dim() int
	Name() string
}

// Point is one cached answer's vector in an index.
type Point struct {
	// ID is the cache entry's id: 63 random bits, so unique across the
	// replicas sharing one index (each with its own SQLite), never reused.
	ID uint64
	// Scope isolates entries: a search only ever sees points of its own
	// scope. It hashes the tenant, the model or route asked for, the system
	// prompt, the tools, the response format and the sampling bucket.
	Scope string
	// Tenant and Model are kept for bulk deletion (DELETE /admin/cache).
	Tenant, Model string
	// Vector has the index's dimension and unit length.
	Vector []float32
	// ExpiresAt: a point is never returned at or after this time.
	ExpiresAt time.Time
	// Entry is the entry itself in an opaque, versioned encoding: what a
	// replica that does not hold the entry in its own SQLite needs to serve
	// and guard it (query, scope, answer, expiry...). The Cache always sets
	// it; an index shared between replicas (qdrant) keeps it and returns it
	// in Hit.Entry, an embedded one (vecindex) may ignore it.
	Entry []byte
}

// Hit is the best match of a search.
type Hit struct {
	ID    uint64
	Score float32 // cosine similarity
	// Entry is the Point.Entry the point was stored with; "" when the
	// index does not keep entries. A string, not bytes, so that Hit stays
	// comparable (and immutable).
	Entry string
}

// EntryKeeper is implemented by an Index that keeps Point.Entry and
// returns it in Hit.Entry (Qdrant, shared by replicas). The cache encodes
// entries only for such an index: the embedded one would drop them, and
// encoding every live answer at start would only slow the rebuild.
type EntryKeeper interface {
	KeepsEntries() bool
}

// Filter selects points for bulk deletion; empty fields match everything.
type Filter struct {
	Tenant, Model string
}

// ErrIndexUnavailable is what an Index's Search wraps while its server is
// unreachable (a shared index reconnecting): the lookup is a miss, without
// a log line each time.
var ErrIndexUnavailable = errors.New("semcache: the vector index is unavailable")

// Index is a vector index scoped by Point.Scope. Implementations: the
// embedded index (vecindex, the default) and Qdrant (qdrant, for
// scale-out). Safe for concurrent use.
type Index interface {
	// Search returns the point of scope most similar to vec whose score is
	// at least threshold and which has not expired at now; ok is false when
	// there is none. The answer must equal an exact scan's.
	Search(ctx context.Context, scope string, vec []float32, threshold float32, now time.Time) (hit Hit, ok bool, err error)
	// Upsert adds or replaces points.
	Upsert(ctx context.Context, points ...Point) error
	// Delete removes points by id; unknown ids are ignored.
	Delete(ctx context.Context, ids ...uint64) error
	// DeleteWhere removes every point the filter matches and says how many.
	DeleteWhere(ctx context.Context, f Filter) (int, error)
	// DeleteExpired removes points expired at now and says how many.
	DeleteExpired(ctx context.Context, now time.Time) (int, error)
	// Len is the number of points held (expired ones not yet swept included).
	Len() int
	Close() error
}
