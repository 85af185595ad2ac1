package semcache

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/ristretto/v2"

	schema "github.com/tollgate/tollgate/internal/migrate"
	"github.com/tollgate/tollgate/internal/safe"
	"github.com/tollgate/tollgate/pkg/llm"
	"github.com/tollgate/tollgate/pkg/semcache/guard"
)

// Defaults for the zero values of Options (and DefaultThreshold), for
// callers that set none. The server passes every value from its
// configuration, whose defaults (pkg/config) a test in cmd/server holds
// equal to these.
const (
	DefaultTTL            = 24 * time.Hour
	DefaultMaxBytes       = 64 << 20
	DefaultMaxTemperature = 1.0
	rebuildBatch          = 256
)

// Result kinds, as reported in x-tollgate-cache.
const (
	KindHit         = "hit"
	KindSemanticHit = "semantic-hit"
	KindMiss        = "miss"
	KindBypass      = "bypass"
)

// Options configure a Cache. Zero values take the documented defaults.
type Options struct {
	// DB holds the entries (table semcache_entries); required. The cache
	// does not close it. Rows are written behind Store, in batches (see
	// Cache.Store): a crash loses the entries stored and not yet committed
	// (at most 4,096 queued plus a batch of 256 being written), which are
	// then misses.
	//
	// SQLite (mattn/go-sqlite3): the entries are this process's. PostgreSQL
	// (pgx's database/sql adapter, e.g. stdlib.OpenDBFromPool): the table
	// is shared by replicas (see replicas.go): exact entries another
	// replica stored are found in the table on a miss, and Delete reaches
	// every replica through LISTEN/NOTIFY; the listener keeps one
	// connection of DB's pool for itself until Close.
	DB *sql.DB
	// SharedLookupTimeout bounds the table lookup of an exact key that
	// missed in memory, on PostgreSQL only (default 100 ms): a slow or
	// failing database makes misses, never errors.
	SharedLookupTimeout time.Duration
	// Embedder and Index enable the semantic cache; either nil disables it.
	// The cache does not close the Index: its owner does.
	Embedder Embedder
	Index    Index
	// Checker is the guard a semantic candidate must pass (guard.New() of
	// pkg/semcache/guard); required with Embedder and Index, since the
	// cosine alone serves near-misses ("capital of France" for "capital of
	// Germany").
	Checker Checker
	// Threshold is the cosine floor for candidates the guard aligns with
	// the query (default DefaultThreshold).
	Threshold float32
	// UnalignedThreshold is the cosine at or above which a candidate the
	// guard allows but does not align is served without verification
	// (default DefaultUnalignedThreshold; above 1: never). It is never
	// below Threshold.
	UnalignedThreshold float32
	// Verify hands uncertain candidates (allowed, not aligned, below
	// UnalignedThreshold, at or above VerifyThreshold) to the caller for a
	// judge's verdict: Lookup returns them in Result.Verify and the caller
	// answers with Verdict.
	Verify bool
	// VerifyThreshold is the lowest cosine of a candidate worth verifying
	// (default Threshold).
	VerifyThreshold float32
	// RouteThresholds overrides Threshold and UnalignedThreshold per model
	// or route asked for (Request.Model); a zero field keeps the default.
	RouteThresholds map[string]Thresholds
	// Turns is how many user turns are embedded (default 1: the last).
	Turns int
	// TTL is an entry's lifetime (default 24h).
	TTL time.Duration
	// MaxBytes bounds the memory of the exact cache (default 64 MiB).
	// Entries evicted from memory are still served from SQLite.
	MaxBytes int64
	// MaxTemperature: requests with a higher temperature are not cached
	// (nil: DefaultMaxTemperature, the providers' default temperature, so
	// only requests asking for extra variety skip the cache; 0 caches only
	// temperature 0 and requests that set none; a negative bound caches
	// only requests that set no temperature).
	MaxTemperature *float64
	// RouteMaxTemperature overrides MaxTemperature per model or route
	// asked for.
	RouteMaxTemperature map[string]float64
	// SideEffectTools are tool names whose results make a conversation
	// uncacheable.
	SideEffectTools []string
	// SweepInterval, when positive, runs SweepExpired that often until
	// Close. Zero: the owner calls SweepExpired.
	SweepInterval time.Duration
	// Supervisor runs the sweeper: a panic in a sweep is logged and the
	// sweeper restarted, or given up and reported (nil: logged to
	// slog.Default, no health kept).
	Supervisor *safe.Supervisor
	// NewID draws entry ids (default: crypto/rand). The low 63 bits are
	// kept; 0 and ids already taken are drawn again. Random ids let
	// replicas with their own SQLite files share one index. Tests inject it.
	NewID  func() uint64
	Now    func() time.Time
	Logger *slog.Logger
}

// Thresholds are a route's own semantic thresholds (Options.RouteThresholds).
type Thresholds struct {
	// Threshold is the floor for aligned candidates (0: Options.Threshold).
	Threshold float32
	// Unaligned serves uncertain candidates without a judge (0:
	// Options.UnalignedThreshold; above 1: never).
	Unaligned float32
}

// Checker is the guard: it decides whether a semantic candidate's cached
// prompt asks what the query asks, which embeddings cannot tell (numbers,
// names, negation, direction). *guard.Rules (pkg/semcache/guard)
// implements it. Both methods must be safe for concurrent use.
type Checker interface {
	// Prepare analyses a prompt once; the cache keeps the result with the
	// entry (or the query) and passes it to Decide. It must be immutable.
	Prepare(prompt string) any
	// Decide compares a prepared query with a prepared cached prompt.
	// allow false: a rule refuses the pair, it is never served. allow and
	// aligned: served at or above Options.Threshold. allow and not aligned
	// (uncertain): served at or above Options.UnalignedThreshold, or after
	// a judge's verdict. reason names the rule, never the prompts' words.
	Decide(query, cached any) (allow, aligned bool, reason string)
}

// Request is what the cache needs of a chat request.
type Request struct {
	// Tenant owns the entries: the gateway key, or the shared tenant the
	// key belongs to in config. Nothing is served across tenants.
	Tenant string
	// Model is the model or route the client asked for.
	Model string
	Chat  *llm.ChatRequest
}

// Result says how a lookup went.
type Result struct {
	// Kind is KindHit, KindSemanticHit, KindMiss or KindBypass.
	Kind string
	// Similarity is the semantic candidate's cosine (semantic hits, and
	// misses whose candidate was refused).
	Similarity float32
	// Reason says why the cache was bypassed or a candidate refused.
	Reason string
	// Verify is set on a KindMiss whose best candidate is uncertain and
	// awaits a judge (Options.Verify): answer it with Cache.Verdict. Nil
	// otherwise.
	Verify *Candidate
	// Verified is "judge" on a semantic hit a judge confirmed (now or
	// earlier, for the same pair), "" otherwise.
	Verified string
}

// VerifiedByJudge is Result.Verified for a hit a judge confirmed.
const VerifiedByJudge = "judge"

// Candidate is an uncertain semantic candidate awaiting a judge's verdict.
type Candidate struct {
	// Query and Cached are the new prompt's embedded text and the cached
	// entry's.
	Query, Cached string
	Similarity    float32
	// Entry is the answer that would be served.
	Entry *Entry

	// The verdict cache's key, and how long a verdict lives: as long as
	// the entry.
	id      uint64
	scope   string
	query   [16]byte
	expires time.Time
}

// Entry is a cached answer. Entries are shared by every request they serve:
// never modify one.
type Entry struct {
	// ID names the entry (x-tollgate-cache-id); never reused.
	ID uint64
	// Response is the original answer, byte for byte in Response.Raw (the
	// original id and created included: a hit is the same completion,
	// served again) and decoded in the typed fields.
	Response *llm.ChatResponse
	// Model is the model that answered.
	Model string
	// Cost is what the original call cost: the money a hit saves.
	Cost                 llm.Micros
	Usage                *llm.Usage
	CreatedAt, ExpiresAt time.Time
}

// entryMeta is what is held in memory for every live entry: enough to find
// it by exact key, check its scope and expiry, and delete it by filter,
// without its answer (which ristretto or SQLite holds).
type entryMeta struct {
	exactKey, tenant, model, scope, query string
	size                                  int64
	created, expires                      time.Time
	// vectored: the entry's vector is in the index; pending: the entry
	// has a query but no vector yet (embedded index only: see scopeState).
	vectored, pending bool
	// vec is the entry's vector when the gate (Cache.gated) has embedded
	// it: only entries that were an aligned candidate have one.
	vec []float32
}

// prepared returns the guard's analysis of entry id's prompt (m's query),
// from the bounded cache of analyses or made now.
func (c *Cache) prepared(id uint64, m *entryMeta) any {
	return c.preps.get(id, func() any { return c.opts.Checker.Prepare(m.query) })
}

// Stats is the report of GET /admin/cache. Counters run since Open; the
// ledger is the durable record of money saved.
type Stats struct {
	// Embedder names the semantic cache's embedder ("" when it is off).
	Embedder    string `json:"embedder,omitempty"`
	Entries     int    `json:"entries"`
	Bytes       int64  `json:"bytes"`
	IndexPoints int    `json:"index_points"`
	// PendingEntries are entries stored without a vector (their scope
	// held nothing to find when they were asked): embedded and indexed
	// with the next lookup in their scope.
	PendingEntries int `json:"pending_entries"`
	// GateEntries are the entries the gate finds candidates among (see
	// gate.go); with the gate, IndexPoints counts the entries embedded so
	// far (those that were an aligned candidate).
	GateEntries   int        `json:"gate_entries,omitempty"`
	Hits          int64      `json:"hits"`
	SemanticHits  int64      `json:"semantic_hits"`
	Misses        int64      `json:"misses"`
	Bypasses      int64      `json:"bypasses"`
	GuardRefusals int64      `json:"guard_refusals"`
	SavedMicros   llm.Micros `json:"saved_micros"`
	SavedUSD      float64    `json:"saved_usd"`
	// Index is the state of an index that can be unavailable (Qdrant):
	// reported by an Index implementing IndexReporter, nil otherwise.
	Index *IndexStatus `json:"index,omitempty"`
	// Replicas is the state of the sharing with other replicas, on
	// PostgreSQL only (nil on SQLite).
	Replicas *ReplicaStatus `json:"replicas,omitempty"`
}

// ReplicaStatus is how a cache on PostgreSQL follows the other replicas
// (replicas.go).
type ReplicaStatus struct {
	// Sessions counts the listener's subscriptions to the other replicas'
	// deletes since Open (more than one: it reconnected, and applied the
	// deletes it missed).
	Sessions int64 `json:"sessions"`
	// TableHits are exact hits found in the shared table, not in memory:
	// mostly entries other replicas stored.
	TableHits int64 `json:"table_hits"`
}

// IndexReporter is implemented by an Index that can be unavailable while
// the cache serves (Qdrant): its state goes into Stats.Index.
type IndexReporter interface {
	IndexStatus() IndexStatus
}

// IndexStatus is an index's state: while not Ready its searches fail fast
// (lookups are semantic misses) and its writes wait for it, boundedly.
type IndexStatus struct {
	Kind  string `json:"kind"`
	Ready bool   `json:"ready"`
	// Error is the last failure while not Ready.
	Error string `json:"error,omitempty"`
	// Since is when the index became ready or unavailable.
	Since time.Time `json:"since"`
	// Attempts is the failed attempts to reach it since it was lost.
	Attempts int `json:"attempts,omitempty"`
	// QueuedUpserts and QueuedDeletes wait to be applied when it returns;
	// DroppedUpserts did not fit the queue (their entries are only exact
	// hits until they are stored again or the gateway restarts).
	QueuedUpserts  int   `json:"queued_upserts,omitempty"`
	QueuedDeletes  int   `json:"queued_deletes,omitempty"`
	DroppedUpserts int64 `json:"dropped_upserts,omitempty"`
}

// Cache is the exact and semantic response cache. Safe for concurrent use.
type Cache struct {
	opts  Options
	now   func() time.Time
	log   *slog.Logger
	turns int
	// pol is what SetPolicy changes (policy_live.go): thresholds, judge,
	// TTL, cacheability; read once per operation.
	pol      atomic.Pointer[policy]
	semantic bool
	share    bool // the index keeps entries (EntryKeeper): encode them
	// lazy: the index is this process's own (semantic, not shared), so
	// the cache knows every point it holds and skips the embedding in a
	// scope with nothing to find (see scopeState).
	lazy bool
	// gated: candidates come from the gate (gate.go), not from an index
	// search; the index is unused.
	gated    bool
	sketcher Sketcher
	gate     *gate

	hot *ristretto.Cache[uint64, *Entry] // decoded answers by id, bounded by bytes

	preps *preparedCache // the guard's analyses of cached prompts, bounded

	mu     sync.RWMutex // guards byKey, meta, scopes and the metas' vectored/pending; held for map operations only
	byKey  map[string]uint64
	meta   map[uint64]*entryMeta
	scopes map[string]*scopeState // when lazy

	verdicts verdicts
	remote   remoteMetas // when share

	// q are the statements in DB's dialect.
	q queries
	// shared: DB is PostgreSQL, its table shared by replicas (replicas.go).
	shared bool
	peers  *peers // when shared

	// wmu serialises writers (Store, Delete, SweepExpired) so SQLite, the
	// maps and the index change in the same order: w writes SQLite rows in
	// the order they were queued under wmu.
	wmu sync.Mutex
	w   *writer

	hits, semHits, misses, bypasses, refusals, saved atomic.Int64
	// dropped counts the drops of entries from memory by Delete (here or,
	// told, on another replica): an entry read from the shared table
	// across one is not kept (peers.keep).
	dropped atomic.Uint64

	// stop ends the sweeper; sweeping is held while it runs, so that Close
	// can wait for it however it ended (returned, or given up after panics).
	stop      chan struct{}
	sweeping  sync.Mutex
	closeOnce sync.Once
}

// Open migrates the schema, loads the live entries' keys and rebuilds the
// Index from the stored vectors of live entries made by the same embedder.
func Open(ctx context.Context, o Options) (*Cache, error) {
	if o.DB == nil {
		return nil, errors.New("semcache: Options.DB is required")
	}
	if o.Embedder != nil && o.Index != nil && o.Checker == nil {
		return nil, errors.New("semcache: Options.Checker is required with a semantic cache (guard.New() of pkg/semcache/guard)")
	}
	c := &Cache{
		opts:     o,
		now:      o.Now,
		log:      o.Logger,
		turns:    o.Turns,
		semantic: o.Embedder != nil && o.Index != nil,
		byKey:    map[string]uint64{},
		preps:    newPreparedCache(maxPrepared),
		meta:     map[uint64]*entryMeta{},
		scopes:   map[string]*scopeState{},
		verdicts: verdicts{max: maxVerdicts},
		remote:   remoteMetas{max: maxRemoteMetas},
	}
	if k, ok := o.Index.(EntryKeeper); ok && c.semantic {
		c.share = k.KeepsEntries()
	}
	c.lazy = c.semantic && !c.share
	if c.now == nil {
		c.now = time.Now
	}
	if c.opts.NewID == nil {
		c.opts.NewID = randomID
	}
	if c.log == nil {
		c.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.turns < 1 {
		c.turns = 1
	}
	c.pol.Store(resolve(o.policy()))
	c.gated, c.sketcher = c.canGate()
	if c.gated {
		c.gate = newGate()
	}
	if c.opts.MaxBytes <= 0 {
		c.opts.MaxBytes = DefaultMaxBytes
	}
	d, err := schema.DialectOf(o.DB)
	if err != nil {
		return nil, fmt.Errorf("semcache: %w", err)
	}
	c.q, c.shared = queriesFor(d), d == schema.Postgres
	if err := migrate(ctx, o.DB); err != nil {
		return nil, err
	}
	if c.shared {
		if c.peers, err = newPeers(ctx, c); err != nil {
			return nil, err
		}
	}
	c.hot, err = ristretto.NewCache(&ristretto.Config[uint64, *Entry]{
		NumCounters: max(c.opts.MaxBytes/256, 1000), // ~10 counters per entry of a few KB
		MaxCost:     c.opts.MaxBytes,
		BufferItems: 64,
	})
	if err != nil {
		return nil, fmt.Errorf("semcache: %w", err)
	}
	if err := c.load(ctx); err != nil {
		c.hot.Close()
		return nil, err
	}
	var writeTimeout time.Duration
	if c.shared {
		writeTimeout = sharedWriteTimeout
	}
	if c.w, err = newWriter(ctx, o.DB, &c.q, writeTimeout, c.log, o.Supervisor, c.dropUnwritten); err != nil {
		c.hot.Close()
		return nil, err
	}
	c.w.start()
	if c.shared {
		c.peers.start()
	}
	if o.SweepInterval > 0 {
		c.stop = make(chan struct{})
		o.Supervisor.Loop("semcache sweeper", c.stop, func() { c.sweepLoop(o.SweepInterval) })
	}
	return c, nil
}

func (c *Cache) load(ctx context.Context) error {
	var name string
	var dim int
	if c.semantic {
		name, dim = c.opts.Embedder.Name(), c.opts.Embedder.Dim()
	}
	var batch []Point
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := c.opts.Index.Upsert(ctx, batch...)
		batch = batch[:0]
		if err != nil {
			return fmt.Errorf("semcache: rebuild index: %w", err)
		}
		return nil
	}
	err := loadLive(ctx, c.opts.DB, &c.q, c.now(), c.share, func(r *row) error {
		// Vectors of another embedder are not comparable: with an embedded
		// index such entries are pending (embedded again when their scope
		// is next searched), with a shared one served exactly only.
		vectored := c.semantic && !c.gated && r.vector != nil && r.embedder == name && len(r.vector) == dim
		c.putMeta(r, vectored, nil, nil)
		if vectored {
			p := Point{ID: r.id, Scope: r.scope, Tenant: r.tenant, Model: r.model, Vector: r.vector, ExpiresAt: r.expires}
			if c.share {
				var err error
				if p.Entry, err = encodeShared(r); err != nil {
					return err
				}
			}
			batch = append(batch, p)
			if len(batch) == rebuildBatch {
				return flush()
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return flush()
}

// putMeta holds a stored entry in memory: vectored when its vector is in
// the index, prep its query's prepared form when already made (nil: made
// on first use).
func (c *Cache) putMeta(r *row, vectored bool, prep any, sk *guard.Sketch) {
	m := &entryMeta{
		exactKey: r.exactKey, tenant: r.tenant, model: r.model, scope: r.scope, query: r.query,
		size: r.size, created: r.created, expires: r.expires,
		vectored: vectored, pending: c.lazy && !c.gated && !vectored && r.query != "",
	}
	// With the gate, an entry of a scope that is looked up is sketched now
	// (its query was prepared by its lookup), any other when its scope
	// first is.
	var sketch guard.Sketch
	sketched := false
	gated := c.gated && r.query != ""
	if gated {
		if r.vector != nil && r.embedder == c.opts.Embedder.Name() && len(r.vector) == c.opts.Embedder.Dim() {
			m.vec = r.vector
		}
		c.mu.RLock()
		active := c.gate.sketched(r.scope)
		c.mu.RUnlock()
		switch {
		case sk != nil:
			sketch, sketched = *sk, true
		case active:
			if prep == nil {
				prep = c.opts.Checker.Prepare(r.query)
			}
			sketch, sketched = c.sketcher.Sketch(prep)
		}
	}
	c.preps.put(r.id, prep)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.byKey[r.exactKey] = r.id
	c.meta[r.id] = m
	c.trackLocked(r.id, m)
	switch {
	case sketched:
		c.gate.add(r.id, r.scope, &sketch)
	case gated:
		c.gate.hold(r.id, r.scope)
	}
}

// forget drops entries from memory (not from SQLite or the index).
func (c *Cache) forget(ids []uint64) {
	if len(ids) == 0 {
		return
	}
	c.mu.Lock()
	for _, id := range ids {
		if m := c.meta[id]; m != nil {
			if c.byKey[m.exactKey] == id {
				delete(c.byKey, m.exactKey)
			}
			delete(c.meta, id)
			c.untrackLocked(id, m)
			if c.gated {
				c.gate.remove(id)
			}
		}
	}
	c.mu.Unlock()
	c.preps.drop(ids)
	for _, id := range ids {
		c.hot.Del(id)
	}
}

// sweepLoop sweeps every interval until Close. It runs under the
// supervisor, started again after a panic.
func (c *Cache) sweepLoop(every time.Duration) {
	c.sweeping.Lock()
	defer c.sweeping.Unlock()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), every)
			if _, err := c.SweepExpired(ctx); err != nil {
				c.log.Warn("semcache: sweep", "err", err)
			}
			cancel()
		}
	}
}

// Close stops the sweeper, writes every entry Store queued (waiting for
// SQLite as long as its busy timeout) and frees the in-memory caches. A
// Store waiting for room in the queue fails. Close returns the error of a
// batch it could not write (those entries are lost). It closes neither the
// DB nor the Index.
func (c *Cache) Close() error {
	var err error
	c.closeOnce.Do(func() {
		if c.peers != nil {
			c.peers.close()
		}
		if c.stop != nil {
			close(c.stop)
			// Wait for a sweep under way; one started later sees stop.
			c.sweeping.Lock()
			c.sweeping.Unlock() //nolint:staticcheck // an empty critical section: a wait
		}
		err = c.w.close()
		c.hot.Close()
	})
	return err
}

// Query is one request prepared for the cache: its policy decision and
// its keys, computed once (a parse of the raw body) and shared by Lookup,
// the gateway's collapsing of identical misses and Store.
type Query struct {
	Request
	Controls Controls
	keys     requestKeys
	// bypass says why the request skips the cache entirely ("" when it
	// does not).
	bypass string
	// exactOnly: Lookup skips the semantic path (ExactOnly).
	exactOnly bool

	// What the semantic path made of keys.query, carried from Lookup to
	// Store so that a request is embedded and prepared at most once: vec
	// (nil until embedded), prep (the Checker's analysis, nil until made)
	// and hash (the verdict cache's key, when hashed). A Query is used by
	// one request, Lookup then Store: no lock.
	vec    []float32
	prep   any
	sketch *guard.Sketch // the gate's sketch of prep, nil until made
	hash   [16]byte
	hashed bool
}

// prepared returns the query's prepared form, preparing it on first use.
func (q *Query) prepared(ch Checker) any {
	if q.prep == nil {
		q.prep = ch.Prepare(q.keys.query)
	}
	return q.prep
}

// queryHash keys the query text in the verdict cache.
func (q *Query) queryHash() [16]byte {
	if !q.hashed {
		sum := sha256.Sum256([]byte(q.keys.query))
		copy(q.hash[:], sum[:16])
		q.hashed = true
	}
	return q.hash
}

// Prepare decides whether r may use the cache (Cacheable) and computes its
// keys. A request that cannot be canonicalised bypasses the cache.
func (c *Cache) Prepare(r Request, ctl Controls) *Query {
	q := &Query{Request: r, Controls: ctl}
	if ok, why := c.Cacheable(r); !ok {
		q.bypass = why
		return q
	}
	k, err := computeKeys(r, c.turns)
	if err != nil {
		q.bypass = "request cannot be canonicalised"
		return q
	}
	if c.semantic && k.noSemantic == "" {
		if f, ok := c.opts.Embedder.(Fitter); ok && !f.Fits(k.query) {
			k.noSemantic = "longer than the embedder's window"
		}
	}
	q.keys = k
	return q
}

// Key is the exact cache key ("" when the query bypasses the cache): equal
// keys would be served the same exact entry, so the gateway collapses
// identical concurrent misses on it.
func (q *Query) Key() string { return q.keys.exact }

// Bypass says why the query skips the cache ("" when it does not).
func (q *Query) Bypass() string { return q.bypass }

// Lookup finds an answer for q: first by exact key, then, when the
// semantic cache is on and q's last user turns are text, by similarity
// within q's scope, subject to the threshold (the higher of the configured
// one and the request's) and the guard. Hits, misses and bypasses are
// counted here, and a hit's Entry.Cost is counted as saved. A failing
// embedder or index degrades to a miss (logged); err is non-nil only when
// ctx ended, and the Result is then a usable miss.
func (c *Cache) Lookup(ctx context.Context, q *Query) (*Entry, Result, error) {
	if q.bypass != "" {
		return c.bypass(q.bypass)
	}
	if q.Controls.NoCache {
		return c.bypass("cache-control: no-cache")
	}
	now := c.now()
	if e := c.exact(ctx, q, now); e != nil {
		c.hits.Add(1)
		c.saved.Add(int64(e.Cost))
		return e, Result{Kind: KindHit, Similarity: 1}, nil
	}
	if q.exactOnly {
		c.misses.Add(1)
		return nil, Result{Kind: KindMiss, Reason: "an identical request is in flight"}, ctx.Err()
	}
	e, res := c.similar(ctx, q, now)
	if res.Kind == KindSemanticHit {
		c.semHits.Add(1)
		c.saved.Add(int64(e.Cost))
		return e, res, nil
	}
	c.misses.Add(1)
	return nil, res, ctx.Err()
}

// ExactOnly makes Lookup look q up by its exact key only: the gateway asks
// it when an identical request is already in flight, whose answer q will
// share, so that q embeds nothing (its leader embedded the same text).
func (q *Query) ExactOnly() { q.exactOnly = true }

// Shared counts a miss that was served by an identical request's upstream
// call (the gateway collapses identical concurrent misses) as the hit it was: it saved that call's cost.
func (c *Cache) Shared(saved llm.Micros) {
	c.misses.Add(-1)
	c.hits.Add(1)
	c.saved.Add(int64(saved))
}

func (c *Cache) bypass(reason string) (*Entry, Result, error) {
	c.bypasses.Add(1)
	return nil, Result{Kind: KindBypass, Reason: reason}, nil
}

// live reports whether an entry may be served at now under ctl.
func live(m *entryMeta, ctl Controls, now time.Time) bool {
	if m == nil || !now.Before(m.expires) {
		return false
	}
	return ctl.MaxAge <= 0 || now.Sub(m.created) <= ctl.MaxAge
}

// exact returns q's entry by its exact key, from memory or, when the
// table is shared and memory has no live entry for q, from the table.
func (c *Cache) exact(ctx context.Context, q *Query, now time.Time) *Entry {
	c.mu.RLock()
	id, ok := c.byKey[q.keys.exact]
	m := c.meta[id]
	c.mu.RUnlock()
	if !ok || !live(m, q.Controls, now) {
		if c.shared {
			return c.peers.exact(ctx, q, now)
		}
		return nil
	}
	e, err := c.entry(ctx, id)
	if c.shared && errors.Is(err, sql.ErrNoRows) {
		// Another replica replaced (or deleted) the row since this one
		// kept it: the table has the newer entry, if any.
		c.forget([]uint64{id})
		c.dropPoints(id)
		return c.peers.exact(ctx, q, now)
	}
	if err != nil {
		c.log.Warn("semcache: exact entry", "id", id, "err", err)
		return nil
	}
	return e
}

// entry returns an entry's answer from memory (the hot cache, or the
// writer's entries not yet written), or from SQLite into memory.
func (c *Cache) entry(ctx context.Context, id uint64) (*Entry, error) {
	if e, ok := c.hot.Get(id); ok {
		return e, nil
	}
	// The writer releases an entry only once its row is committed: not
	// pending here means SQLite has it (or it was dropped).
	if e := c.w.pendingEntry(id); e != nil {
		c.hot.Set(id, e, entryCost(e))
		return e, nil
	}
	e, err := loadEntry(ctx, c.opts.DB, &c.q, id)
	if err != nil {
		return nil, err
	}
	c.hot.Set(id, e, entryCost(e))
	return e, nil
}

// entryCost approximates an entry's memory: the raw answer and its decoded
// copy.
func entryCost(e *Entry) int64 { return 2*int64(len(e.Response.Raw)) + 512 }

// similar finds a semantic candidate in q's scope and serves it if it is
// live, the guard allows it at its similarity, it was not cut at its
// length limit and it is no longer than the request's own output limit
// (when the answer reported usage). The candidate is this replica's entry
// (its meta) or, in an index shared between replicas, the entry the hit
// carries (Hit.Entry), held to the same rules.
//
// The guard's decision sets the similarity needed: an aligned candidate is
// served at the floor (the higher of Options.Threshold and the request's
// threshold), an uncertain one (allowed, not aligned) at the unaligned
// threshold (at least the floor), or when a judge said yes to the same
// pair before, or else is returned for verification (Result.Verify) when
// Options.Verify and it reaches the verify threshold. The index is searched
// at the lowest of those in use.
func (c *Cache) similar(ctx context.Context, q *Query, now time.Time) (*Entry, Result) {
	miss := Result{Kind: KindMiss}
	p := c.pol.Load()
	if !c.semantic || p.noSemantic {
		return nil, miss
	}
	k, ctl := q.keys, q.Controls
	if k.noSemantic != "" {
		miss.Reason = "no semantic lookup: " + k.noSemantic
		return nil, miss
	}
	base, baseUnaligned, baseVerify := p.threshold, p.unaligned, p.verifyAt
	if r, ok := p.routes[q.Model]; ok {
		if r.Threshold > 0 {
			base = r.Threshold
			if p.verifyFloor <= 0 {
				baseVerify = r.Threshold // the verify threshold follows the floor it defaults to
			}
		}
		if r.Unaligned > 0 {
			baseUnaligned = r.Unaligned
		}
	}
	floor := max(base, ctl.Threshold)
	unaligned := max(baseUnaligned, floor)
	verifyAt := max(baseVerify, ctl.Threshold)
	if c.gated {
		return c.similarGated(ctx, q, now, floor)
	}
	vec, err := c.lookupVector(ctx, q)
	if err != nil {
		c.log.Warn("semcache: embed", "err", err)
		miss.Reason = "semantic lookup failed"
		return nil, miss
	}
	if vec == nil {
		return nil, miss // nothing in the scope to find
	}
	search := floor
	if p.verify {
		search = min(search, verifyAt)
	}
	hit, ok, err := c.opts.Index.Search(ctx, k.scope, vec, search, now)
	if errors.Is(err, ErrIndexUnavailable) {
		// Reported by /readyz and GET /admin/cache; not logged per lookup.
		miss.Reason = "semantic index unavailable"
		return nil, miss
	}
	if err != nil {
		c.log.Warn("semcache: search", "err", err)
		miss.Reason = "semantic lookup failed"
		return nil, miss
	}
	if !ok {
		return nil, miss
	}
	miss.Similarity = hit.Score
	c.mu.RLock()
	m := c.meta[hit.ID]
	c.mu.RUnlock()
	// shared is the hit's own entry when it is not this replica's entry m:
	// stored by another replica, or an id that names another entry here.
	var shared *sharedEntry
	if hit.Entry != "" {
		s, err := decodeShared([]byte(hit.Entry))
		if err == nil && s.ID != hit.ID {
			err = fmt.Errorf("semcache: point %d carries entry %d", hit.ID, s.ID)
		}
		if err != nil {
			c.log.Warn("semcache: shared candidate", "id", hit.ID, "err", err)
			miss.Reason = "shared candidate cannot be decoded"
			return nil, miss
		}
		if !s.describes(m) {
			shared, m = s, c.remote.meta(s)
		}
	}
	switch {
	case m == nil:
		miss.Reason = "candidate no longer cached"
		return nil, miss
	case m.scope != k.scope || (shared != nil && shared.Tenant != q.Tenant):
		// The index broke its contract: never serve across scopes.
		c.log.Error("semcache: index returned a point of another scope", "id", hit.ID, "shared", shared != nil)
		miss.Reason = "candidate out of scope"
		return nil, miss
	case !live(m, ctl, now):
		miss.Reason = "candidate expired or older than max-age"
		return nil, miss
	}
	allow, aligned, why := c.opts.Checker.Decide(q.prepared(c.opts.Checker), c.prepared(hit.ID, m))
	if !allow {
		c.refusals.Add(1)
		miss.Reason = "guard: " + why
		return nil, miss
	}
	// served: the candidate is served if its entry passes the checks
	// below; otherwise verified says whether a judge already said yes, and
	// verify whether it may be handed to one.
	served := hit.Score >= unaligned || (aligned && hit.Score >= floor)
	verified, verify := false, false
	if !served {
		if hit.Score < verifyAt {
			miss.Reason = uncertainReason(aligned, why)
			return nil, miss
		}
		ok, known := c.verdicts.get(verdictKey{scope: k.scope, id: hit.ID, query: q.queryHash()}, now)
		switch {
		case known && !ok:
			miss.Reason = judgeRefusal
			return nil, miss
		case known:
			verified = true
		case p.verify:
			verify = true
		default:
			miss.Reason = uncertainReason(aligned, why)
			return nil, miss
		}
	}
	var e *Entry
	if shared != nil {
		e, err = shared.entry()
	} else {
		e, err = c.entry(ctx, hit.ID)
	}
	if err != nil {
		c.log.Warn("semcache: semantic entry", "id", hit.ID, "shared", shared != nil, "err", err)
		miss.Reason = "semantic lookup failed"
		return nil, miss
	}
	if why := unfit(q, e); why != "" {
		miss.Reason = why
		return nil, miss
	}
	if verify {
		miss.Reason = "uncertain candidate awaits verification"
		miss.Verify = &Candidate{
			Query: k.query, Cached: m.query, Similarity: hit.Score, Entry: e,
			id: hit.ID, scope: k.scope, query: q.queryHash(), expires: m.expires,
		}
		return nil, miss
	}
	res := Result{Kind: KindSemanticHit, Similarity: hit.Score}
	if verified {
		res.Verified = VerifiedByJudge
	}
	return e, res
}

// unfit says why entry e may not answer q semantically ("" when it may).
func unfit(q *Query, e *Entry) string {
	for _, ch := range e.Response.Choices {
		if ch.FinishReason == "length" {
			// Cut at the original request's limit, which this one need
			// not share: only an exact hit may serve it.
			return "candidate was cut at its length limit"
		}
	}
	if limit := q.Chat.OutputLimit(); limit > 0 && e.Usage != nil && e.Usage.CompletionTokens > limit {
		// Longer than this request allows its answer to be.
		return "candidate is longer than max_tokens"
	}
	return ""
}

// judgeRefusal is the Reason of a miss a judge's verdict made.
const judgeRefusal = "judge: not the same request"

// uncertainReason is the Reason of a miss whose candidate the guard allowed
// but the similarity did not carry: why names the guard's rule.
func uncertainReason(aligned bool, why string) string {
	if aligned {
		return "below the similarity threshold"
	}
	if why == "" {
		why = "not aligned"
	}
	return "uncertain (" + why + "): below the threshold for unaligned prompts"
}

// Verdict records a judge's verdict on cand, an uncertain candidate Lookup
// returned for q (Result.Verify). ok: the candidate becomes a semantic hit,
// counted as such (the miss Lookup counted is undone) with its Entry.Cost
// saved, and Verdict returns its entry and a KindSemanticHit result with
// Verified "judge". Not ok: nil and the miss, with the judge's reason.
// Either way the verdict is kept for the pair (q's scope, the cached entry,
// q's text) until the entry expires, and a later Lookup of the same pair
// applies it without asking again. A judge that failed gives no verdict:
// do not call Verdict (the lookup stays a miss).
func (c *Cache) Verdict(q *Query, cand *Candidate, ok bool) (*Entry, Result) {
	miss := Result{Kind: KindMiss, Similarity: cand.Similarity, Reason: judgeRefusal}
	if q == nil || q.keys.scope != cand.scope || q.queryHash() != cand.query {
		// Not this query's candidate: nothing is recorded or served.
		miss.Reason = "verdict on another query's candidate"
		return nil, miss
	}
	c.verdicts.put(verdictKey{scope: cand.scope, id: cand.id, query: cand.query}, ok, cand.expires, c.now())
	if !ok {
		return nil, miss
	}
	c.misses.Add(-1)
	c.semHits.Add(1)
	c.saved.Add(int64(cand.Entry.Cost))
	return cand.Entry, Result{Kind: KindSemanticHit, Similarity: cand.Similarity, Verified: VerifiedByJudge}
}

// embedOne embeds one text.
func (c *Cache) embedOne(ctx context.Context, text string) ([]float32, error) {
	vs, err := c.embedTexts(ctx, []string{text})
	if err != nil {
		return nil, err
	}
	return vs[0], nil
}

// embedTexts embeds texts in one call and checks the vectors' shape.
func (c *Cache) embedTexts(ctx context.Context, texts []string) ([][]float32, error) {
	vs, err := c.opts.Embedder.Embed(ctx, texts)
	if err != nil {
		return nil, err
	}
	if len(vs) != len(texts) {
		return nil, fmt.Errorf("semcache: embedder %s returned %d vectors for %d texts", c.opts.Embedder.Name(), len(vs), len(texts))
	}
	for _, v := range vs {
		if len(v) != c.opts.Embedder.Dim() {
			return nil, fmt.Errorf("semcache: embedder %s returned a vector of the wrong shape", c.opts.Embedder.Name())
		}
	}
	return vs, nil
}

// storable reports whether every choice ended normally: answers cut by a
// content filter or an error are not kept.
func storable(resp *llm.ChatResponse) bool {
	if resp == nil || len(resp.Choices) == 0 {
		return false
	}
	for _, ch := range resp.Choices {
		switch ch.FinishReason {
		case "stop", "tool_calls", "function_call", "length":
		default:
			return false
		}
		if ch.Message.ReasoningSignature != "" {
			// Signed reasoning (Anthropic's thinking) is not in the stored
			// form: served again without its signature, it would be
			// refused when the client sends it back on the next turn.
			return false
		}
	}
	return true
}

// Store keeps resp, the answer model gave to q at the given cost, for TTL
// (or q.Controls.TTL):
// in SQLite, in the exact cache and (when q's last user turns are text) in
// the index. It replaces an entry of the same exact key. It embeds nothing
// Lookup embedded: q carries the vector. With an embedded index, an entry
// whose query Lookup did not embed (its scope was empty, or the lookup was
// skipped) is kept without a vector, pending until its scope is next
// searched; with a shared index Store embeds it. It does nothing
// when q bypasses the cache, when q.Controls.NoStore, or when an answer
// did not end normally (finish_reason other than stop, tool_calls or
// length) or carries signed reasoning (see storable).
//
// The entry is served as soon as Store returns; its SQLite row is written
// behind, by a background writer that commits what is queued in one
// transaction. A crash loses the entries queued and not yet committed;
// a batch SQLite fails to write is logged and its entries forgotten (they
// become misses). When the queue is full (SQLite slower than the stores)
// Store waits for room until ctx ends. After Close it fails.
func (c *Cache) Store(ctx context.Context, q *Query, resp *llm.ChatResponse, model string, cost llm.Micros) error {
	if q.bypass != "" || q.Controls.NoStore || !storable(resp) {
		return nil
	}
	r, k := q.Request, q.keys
	var err error
	body := []byte(resp.Raw)
	if len(body) == 0 || !json.Valid(body) {
		if body, err = json.Marshal(resp); err != nil {
			return fmt.Errorf("semcache: store: %w", err)
		}
	}
	var usage []byte
	if resp.Usage != nil {
		usage, _ = json.Marshal(resp.Usage)
	}
	now := c.now()
	ttl := c.pol.Load().ttl
	if q.Controls.TTL > 0 {
		ttl = q.Controls.TTL
	}
	rw := &row{
		tenant: r.Tenant, model: r.Model, scope: k.scope, exactKey: k.exact,
		response: body, size: int64(len(body)), answeredBy: model, cost: cost, usage: usage,
		created: now.UTC().Truncate(time.Millisecond), expires: now.Add(ttl).UTC().Truncate(time.Millisecond),
	}
	if c.semantic && k.noSemantic == "" {
		rw.query = k.query
		rw.vector = q.vec
		if rw.vector == nil && c.share {
			if rw.vector, err = c.embedOne(ctx, k.query); err != nil {
				c.log.Warn("semcache: embed for store: served exactly only", "err", err)
				rw.vector = nil
			}
		}
		if rw.vector != nil {
			rw.embedder = c.opts.Embedder.Name()
		}
	}
	e, err := decodeEntry(0, body, model, cost, usage, rw.created, rw.expires)
	if err != nil {
		return err
	}

	c.wmu.Lock()
	defer c.wmu.Unlock()
	id, err := c.newID()
	if err != nil {
		return err
	}
	rw.id, e.ID = id, id
	// The entry of the same exact key is replaced; its row goes when the
	// writer writes this one.
	var old []uint64
	c.mu.RLock()
	if prev, ok := c.byKey[k.exact]; ok {
		old = []uint64{prev}
	}
	c.mu.RUnlock()
	if err := c.w.store(ctx, rw, e); err != nil {
		return err
	}
	c.forget(old)
	c.putMeta(rw, rw.vector != nil && !c.gated, q.prep, q.sketch)
	c.hot.Set(id, e, entryCost(e))
	// A write that failed before the entry was in memory is dropped here.
	defer func() {
		if c.w.stored(id, e) {
			c.dropUnwritten([]uint64{id})
		}
	}()
	if c.semantic && !c.gated {
		if len(old) > 0 {
			if err := c.opts.Index.Delete(ctx, old...); err != nil {
				return fmt.Errorf("semcache: store: index: %w", err)
			}
		}
		if rw.vector != nil {
			p := Point{ID: id, Scope: k.scope, Tenant: r.Tenant, Model: r.Model, Vector: rw.vector, ExpiresAt: rw.expires}
			if c.share {
				if p.Entry, err = encodeShared(rw); err != nil {
					return err
				}
			}
			if err := c.opts.Index.Upsert(ctx, p); err != nil {
				return fmt.Errorf("semcache: store: index: %w", err)
			}
		}
	}
	return nil
}

// Delete removes every entry the filter matches (empty fields match all;
// Model is the model or route asked for) from the table, memory and the
// index, and says how many entries the table held. It first waits for the
// rows stored before it to be written (until ctx ends), so none comes back.
// On PostgreSQL every other replica is told (NOTIFY tollgate_semcache) and
// drops the matching entries from its memory and its own index within the
// delivery of the notification; rows another replica had queued and not
// yet written when the delete committed are written after it, as entries
// stored just after the delete would be.
func (c *Cache) Delete(ctx context.Context, f Filter) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	err := c.w.flush(ctx)
	if err != nil {
		return 0, fmt.Errorf("semcache: delete: %w", err)
	}
	var n int64
	if c.shared {
		// The other replicas are told in the same transaction.
		n, err = c.peers.delete(ctx, f)
	} else {
		var res sql.Result
		if res, err = c.opts.DB.ExecContext(ctx, c.q.deleteFilter, f.Tenant, f.Model); err == nil {
			n, _ = res.RowsAffected()
		}
	}
	if err != nil {
		return 0, fmt.Errorf("semcache: delete: %w", err)
	}
	c.dropped.Add(1) // an entry the table lookup read before the delete is not kept
	c.forget(c.matching(f))
	if c.semantic {
		if _, err := c.opts.Index.DeleteWhere(ctx, f); err != nil {
			return int(n), fmt.Errorf("semcache: delete: index: %w", err)
		}
	}
	return int(n), nil
}

// SweepExpired removes the entries expired now from SQLite, memory and the
// index, and says how many SQLite held. Lookups never serve an expired
// entry whether or not it was swept. Like Delete, it first waits for the
// rows stored before it to be written.
func (c *Cache) SweepExpired(ctx context.Context) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.w.flush(ctx); err != nil {
		return 0, fmt.Errorf("semcache: sweep: %w", err)
	}
	now := c.now()
	ids, err := queryIDs(ctx, c.opts.DB, c.q.expiredIDs, now.UnixMilli())
	if err != nil {
		return 0, err
	}
	if len(ids) > 0 {
		if _, err := c.opts.DB.ExecContext(ctx, c.q.deleteExpired, now.UnixMilli()); err != nil {
			return 0, fmt.Errorf("semcache: sweep: %w", err)
		}
	}
	c.forget(ids)
	// Entries expired in memory but already gone from SQLite (none, unless
	// the clock went back) are dropped too.
	var stale []uint64
	c.mu.RLock()
	for id, m := range c.meta {
		if !now.Before(m.expires) {
			stale = append(stale, id)
		}
	}
	c.mu.RUnlock()
	c.forget(stale)
	c.verdicts.prune(now)
	c.remote.prune(now)
	if c.semantic {
		if _, err := c.opts.Index.DeleteExpired(ctx, now); err != nil {
			return len(ids), fmt.Errorf("semcache: sweep: index: %w", err)
		}
	}
	return len(ids), nil
}

// Stats reports the live entries and the counters since Open.
func (c *Cache) Stats() Stats {
	now := c.now()
	s := Stats{
		Hits:          c.hits.Load(),
		SemanticHits:  c.semHits.Load(),
		Misses:        c.misses.Load(),
		Bypasses:      c.bypasses.Load(),
		GuardRefusals: c.refusals.Load(),
		SavedMicros:   llm.Micros(c.saved.Load()),
	}
	s.SavedUSD = s.SavedMicros.Dollars()
	c.mu.RLock()
	for _, m := range c.meta {
		if now.Before(m.expires) {
			s.Entries++
			s.Bytes += m.size
			if m.pending {
				s.PendingEntries++
			}
		}
	}
	c.mu.RUnlock()
	if c.peers != nil {
		s.Replicas = &ReplicaStatus{Sessions: c.peers.connects.Load(), TableHits: c.peers.hits.Load()}
	}
	if c.semantic {
		s.IndexPoints = c.opts.Index.Len()
		s.Embedder = c.opts.Embedder.Name()
		if r, ok := c.opts.Index.(IndexReporter); ok {
			st := r.IndexStatus()
			s.Index = &st
		}
	}
	if c.gated {
		c.mu.RLock()
		s.GateEntries = c.gate.len()
		for _, m := range c.meta {
			if m.vec != nil {
				s.IndexPoints++
			}
		}
		c.mu.RUnlock()
	}
	return s
}

// lookupVector returns q's vector for a search, embedding it unless q
// carries it. With an embedded index it returns nil (and embeds nothing)
// when q's scope holds nothing to find, and embeds the scope's pending
// entries in the same call as q, indexing them before the search.
func (c *Cache) lookupVector(ctx context.Context, q *Query) ([]float32, error) {
	if q.vec != nil {
		return q.vec, nil
	}
	if !c.lazy {
		v, err := c.embedOne(ctx, q.keys.query)
		q.vec = v
		return v, err
	}
	worth, cl := c.claimPending(q.keys.scope)
	if !worth {
		return nil, nil
	}
	texts := make([]string, 0, 1+len(cl.texts))
	texts = append(append(texts, q.keys.query), cl.texts...)
	vs, err := c.embedTexts(ctx, texts)
	if err != nil {
		c.restorePending(cl)
		return nil, err
	}
	q.vec = vs[0]
	if len(cl.ids) > 0 {
		if err := c.indexPending(ctx, cl, vs[1:]); err != nil {
			c.log.Warn("semcache: index pending entries", "err", err)
			c.restorePending(cl)
		}
	}
	return q.vec, nil
}

// indexPending stores the vectors of claimed pending entries in SQLite and
// the index and counts them as vectored. Entries replaced or deleted since
// they were claimed are skipped: wmu orders this after those writes.
func (c *Cache) indexPending(ctx context.Context, cl claimed, vecs [][]float32) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	var (
		ids    []uint64
		keep   []*entryMeta
		kept   [][]float32
		points []Point
	)
	c.mu.RLock()
	for i, id := range cl.ids {
		if m := cl.metas[i]; c.meta[id] == m && m.pending {
			ids, keep, kept = append(ids, id), append(keep, m), append(kept, vecs[i])
			points = append(points, Point{ID: id, Scope: m.scope, Tenant: m.tenant, Model: m.model, Vector: vecs[i], ExpiresAt: m.expires})
		}
	}
	c.mu.RUnlock()
	if len(ids) == 0 {
		return nil
	}
	if err := c.w.setVectors(ctx, ids, kept, c.opts.Embedder.Name()); err != nil {
		return err
	}
	if err := c.opts.Index.Upsert(ctx, points...); err != nil {
		return fmt.Errorf("semcache: index pending entries: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, id := range ids {
		if m := keep[i]; c.meta[id] == m && m.pending {
			m.pending, m.vectored = false, true
			c.trackLocked(id, m)
		}
	}
	c.dropEmptyLocked(keep[0].scope)
	return nil
}

// matching is the ids of the entries in memory that f selects.
func (c *Cache) matching(f Filter) []uint64 {
	var ids []uint64
	c.mu.RLock()
	defer c.mu.RUnlock()
	for id, m := range c.meta {
		if (f.Tenant == "" || m.tenant == f.Tenant) && (f.Model == "" || m.model == f.Model) {
			ids = append(ids, id)
		}
	}
	return ids
}
