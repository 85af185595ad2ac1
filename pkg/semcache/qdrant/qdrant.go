// Package qdrant owns the semantic cache's Qdrant adapter: a semcache.Index
// over one Qdrant collection per embedding model and dimension, reached with
// qdrant/go-client over gRPC. Entries are scoped by payload (keyword indexes
// on scope, tenant and model, tenant marked is_tenant), expire through an
// integer range index on expires_at that every search filters on, and are
// removed by a sweeper deleting by filter, since Qdrant has no per-point TTL.
// Each point also carries its cache entry (semcache.Point.Entry, unindexed
// payload), which searches return, so that gateway replicas sharing the
// collection serve each other's answers. Qdrant is not a start-up
// dependency: while it cannot be reached the index reports it
// (semcache.IndexReporter), searches fail fast, writes wait in a bounded
// queue and a connector retries with backoff (see Index).
package qdrant

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	qc "github.com/qdrant/go-client/qdrant"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"

	"github.com/tollgate/tollgate/pkg/semcache"
)

var _ semcache.Index = (*Index)(nil)

// Payload keys stored with every point.
const (
	fieldScope     = "scope"
	fieldTenant    = "tenant"
	fieldModel     = "model"
	fieldExpiresAt = "expires_at" // unix milliseconds
	// fieldEntry holds semcache.Point.Entry as a string, when set. It is
	// not indexed and is the only payload a search returns.
	fieldEntry = "entry"
)

// Index is a semcache.Index backed by a Qdrant collection. Safe for
// concurrent use.
//
// Qdrant is not needed to start: New tries once, and while Qdrant cannot be
// reached (at start, or after a call failed) a connector retries in the
// background with capped, jittered exponential backoff. Meanwhile searches
// fail at once with ErrNotReady (the cache's lookups are semantic misses;
// exact hits are unaffected), upserts are queued, boundedly, and deletes are
// remembered; on return the deletes are applied first, then the upserts,
// and only then do searches resume, so a point deleted while Qdrant was
// away is never found again.
type Index struct {
	cfg        Config
	client     *qc.Client
	ownClient  bool
	collection string

	// ready is set once the collection is set up and nothing waits to be
	// applied; searches and writes go to Qdrant only while it is set. It
	// changes under mu.
	ready atomic.Bool
	// kick wakes the connector when a call finds Qdrant gone.
	kick chan struct{}
	// dropped counts the upserts the queue had no room for.
	dropped atomic.Int64

	// mu guards the state below and orders the queue against ready: a
	// write queued under mu while not ready is applied before ready is set.
	mu       sync.Mutex
	lastErr  error
	since    time.Time
	attempts int
	q        queue

	// stopConnect ends the connector; connecting is held while it runs.
	stopConnect context.CancelFunc
	connectCtx  context.Context
	connecting  sync.Mutex

	// sweepMu guards the sweeper's lifecycle.
	sweepMu     sync.Mutex
	sweepCancel context.CancelFunc
	closed      bool
	// sweeping is held while the sweeper runs, so that Close can wait for
	// it however it ended (returned, or given up after panics).
	sweeping sync.Mutex
}

// ErrNotReady is returned (wrapped, with the last failure) by Search while
// Qdrant is unavailable.
var ErrNotReady = fmt.Errorf("qdrant: not ready (%w)", semcache.ErrIndexUnavailable)

// New returns an index of the configured collection. It tries once, within
// Config.Timeout, to reach Qdrant and set the collection and its payload
// indexes up; when that fails the index starts unavailable (see Index) and
// a connector retries in the background. It fails only on a bad
// configuration.
func New(ctx context.Context, cfg Config) (*Index, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	ix := &Index{cfg: cfg, client: cfg.Client, collection: cfg.collection(), kick: make(chan struct{}, 1), since: cfg.Now()}
	if ix.client == nil {
		// The client's own compatibility check blocks without a context and
		// logs to slog.Default; the connector runs a health check instead.
		// gRPC's own reconnection backoff (up to 2 minutes by default) is
		// capped at ours, so a returning Qdrant is noticed within RetryMax.
		opts := append([]grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: cfg.RetryMin, Multiplier: 1.6, Jitter: 0.2, MaxDelay: cfg.RetryMax},
			MinConnectTimeout: cfg.Timeout,
		})}, cfg.DialOptions...)
		ix.client, err = qc.NewClient(&qc.Config{
			Host:                   cfg.Host,
			Port:                   cfg.Port,
			APIKey:                 cfg.APIKey,
			UseTLS:                 cfg.UseTLS,
			GrpcOptions:            opts,
			SkipCompatibilityCheck: true,
		})
		if err != nil {
			return nil, fmt.Errorf("qdrant: connect %s: %w", cfg.addr(), err)
		}
		ix.ownClient = true
	}
	ix.connectCtx, ix.stopConnect = context.WithCancel(context.WithoutCancel(ctx))
	if err := ix.connect(ctx); err != nil {
		ix.cfg.Logger.Warn("qdrant unavailable at start: the gateway serves exact hits and misses, and semantic lookups resume when it returns",
			"collection", ix.collection, "err", err)
	}
	ix.cfg.Supervisor.Loop("qdrant connector", ix.connectCtx.Done(), ix.connectLoop)
	return ix, nil
}

// Collection is the name of the collection this index uses.
func (ix *Index) Collection() string { return ix.collection }

// Ready reports whether the index serves searches.
func (ix *Index) Ready() bool { return ix.ready.Load() }

// IndexStatus implements semcache.IndexReporter.
func (ix *Index) IndexStatus() semcache.IndexStatus {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	st := semcache.IndexStatus{
		Kind: "qdrant", Ready: ix.ready.Load(), Since: ix.since, Attempts: ix.attempts,
		QueuedUpserts: len(ix.q.upserts), QueuedDeletes: len(ix.q.ids) + len(ix.q.filters),
		DroppedUpserts: ix.dropped.Load(),
	}
	if !st.Ready && ix.lastErr != nil {
		st.Error = ix.lastErr.Error()
	}
	return st
}

// callCtx bounds one call to Qdrant by the configured timeout.
func (ix *Index) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, ix.cfg.Timeout)
}

// connectLoop is the connector: while the index is not ready it tries to
// connect, waiting a capped, jittered, exponentially growing time between
// attempts; while ready it waits for a failed call's kick.
func (ix *Index) connectLoop() {
	ix.connecting.Lock()
	defer ix.connecting.Unlock()
	ctx := ix.connectCtx
	for ctx.Err() == nil {
		if ix.ready.Load() {
			select {
			case <-ix.kick:
			case <-ctx.Done():
			}
			continue
		}
		err := ix.connect(ctx)
		if err == nil || ctx.Err() != nil {
			continue
		}
		ix.mu.Lock()
		n := ix.attempts
		ix.mu.Unlock()
		d := ix.backoff(n)
		ix.cfg.Logger.Debug("qdrant still unavailable", "collection", ix.collection, "attempts", n, "retry_in", d, "err", err)
		ix.cfg.sleep(ctx, d)
	}
}

// backoff is the wait after the nth failed attempt (n >= 1): RetryMin
// doubled n-1 times, capped at RetryMax, drawn from its upper half so
// replicas that lost Qdrant together do not return together.
func (ix *Index) backoff(n int) time.Duration {
	d := ix.cfg.RetryMax
	if n <= 30 {
		d = min(ix.cfg.RetryMin<<max(n-1, 0), ix.cfg.RetryMax)
	}
	return d/2 + time.Duration(ix.cfg.jitter()*float64(d/2))
}

// connect checks that Qdrant answers, sets the collection up and applies
// the writes queued while it was away; then the index is ready. A failure
// is recorded (IndexStatus) and returned.
func (ix *Index) connect(ctx context.Context) error {
	err := ix.setUp(ctx)
	for err == nil {
		ix.mu.Lock()
		if ix.q.empty() {
			recovered := !ix.ready.Swap(true) && ix.lastErr != nil
			ix.since, ix.lastErr, ix.attempts = ix.cfg.Now(), nil, 0
			ix.mu.Unlock()
			if recovered {
				ix.cfg.Logger.Info("qdrant ready: semantic lookups on", "collection", ix.collection)
			}
			return nil
		}
		batch := ix.q
		ix.q = queue{}
		ix.mu.Unlock()
		if err = ix.apply(ctx, &batch); err != nil {
			ix.mu.Lock()
			ix.q.requeue(&batch)
			ix.mu.Unlock()
		}
	}
	ix.mu.Lock()
	ix.lastErr = err
	ix.attempts++
	ix.mu.Unlock()
	return err
}

// setUp checks health and creates the collection and its payload indexes.
// Every step is idempotent, so another gateway racing us is harmless, and
// it runs on every reconnection: a Qdrant that came back empty is set up
// again.
func (ix *Index) setUp(ctx context.Context) error {
	ctx, cancel := ix.callCtx(ctx)
	defer cancel()
	reply, err := ix.client.HealthCheck(ctx)
	if err != nil {
		return fmt.Errorf("qdrant: health check %s: %w", ix.cfg.addr(), err)
	}
	ix.cfg.Logger.Debug("qdrant connected", "server_version", reply.GetVersion(), "collection", ix.collection)
	exists, err := ix.client.CollectionExists(ctx, ix.collection)
	if err != nil {
		return fmt.Errorf("qdrant: check collection %s: %w", ix.collection, err)
	}
	if !exists {
		if err := ix.client.CreateCollection(ctx, ix.createRequest()); err != nil {
			// Qdrant answers "already exists" as InvalidArgument; ask again
			// rather than parse its message.
			if again, err2 := ix.client.CollectionExists(ctx, ix.collection); err2 != nil || !again {
				return fmt.Errorf("qdrant: create collection %s: %w", ix.collection, err)
			}
		}
	}
	for _, fi := range ix.fieldIndexes() {
		if _, err := ix.client.CreateFieldIndex(ctx, fi); err != nil {
			return fmt.Errorf("qdrant: create %s index on %s: %w", fi.GetFieldName(), ix.collection, err)
		}
	}
	return nil
}

// lost records that a call to Qdrant failed with err: the index is not
// ready until the connector has reached Qdrant again (and applied what
// was queued meanwhile). Call it with mu held.
func (ix *Index) lostLocked(err error) {
	ix.lastErr = err
	if ix.ready.Swap(false) {
		ix.since, ix.attempts = ix.cfg.Now(), 0
		ix.cfg.Logger.Warn("qdrant unavailable: semantic lookups are misses until it returns", "collection", ix.collection, "err", err)
	}
	select {
	case ix.kick <- struct{}{}:
	default:
	}
}

func (ix *Index) lost(err error) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.lostLocked(err)
}

func (ix *Index) createRequest() *qc.CreateCollection {
	req := &qc.CreateCollection{
		CollectionName: ix.collection,
		VectorsConfig: qc.NewVectorsConfig(&qc.VectorParams{
			Size:     uint64(ix.cfg.Dim),
			Distance: qc.Distance_Cosine,
		}),
	}
	switch ix.cfg.Quantization {
	case QuantizationScalar:
		req.QuantizationConfig = qc.NewQuantizationScalar(&qc.ScalarQuantization{
			Type:      qc.QuantizationType_Int8,
			Quantile:  qc.PtrOf(float32(0.99)),
			AlwaysRam: qc.PtrOf(true),
		})
	case QuantizationBinary:
		req.QuantizationConfig = qc.NewQuantizationBinary(&qc.BinaryQuantization{
			AlwaysRam: qc.PtrOf(true),
		})
	}
	return req
}

func (ix *Index) fieldIndexes() []*qc.CreateFieldIndexCollection {
	keyword := func(field string, tenant bool) *qc.CreateFieldIndexCollection {
		p := &qc.KeywordIndexParams{}
		if tenant {
			p.IsTenant = qc.PtrOf(true)
		}
		return &qc.CreateFieldIndexCollection{
			CollectionName:   ix.collection,
			Wait:             qc.PtrOf(true),
			FieldName:        field,
			FieldType:        qc.FieldType_FieldTypeKeyword.Enum(),
			FieldIndexParams: qc.NewPayloadIndexParamsKeyword(p),
		}
	}
	return []*qc.CreateFieldIndexCollection{
		keyword(fieldScope, false),
		keyword(fieldTenant, true),
		keyword(fieldModel, false),
		{
			CollectionName: ix.collection,
			Wait:           qc.PtrOf(true),
			FieldName:      fieldExpiresAt,
			FieldType:      qc.FieldType_FieldTypeInteger.Enum(),
			FieldIndexParams: qc.NewPayloadIndexParamsInt(&qc.IntegerIndexParams{
				Lookup: qc.PtrOf(false),
				Range:  qc.PtrOf(true),
			}),
		},
	}
}

func unixMilli(t time.Time) float64 { return float64(t.UnixMilli()) }

// notExpired is the condition every search carries: expires_at > now.
func notExpired(now time.Time) *qc.Condition {
	return qc.NewRange(fieldExpiresAt, &qc.Range{Gt: qc.PtrOf(unixMilli(now))})
}

// Search implements semcache.Index. While Qdrant is unavailable it fails
// at once with ErrNotReady; a search is bounded by Config.SearchTimeout, and
// one that fails (other than by the caller's cancellation) makes the index
// unavailable until the connector has reached Qdrant again: later lookups
// are misses without waiting.
func (ix *Index) Search(ctx context.Context, scope string, vec []float32, threshold float32, now time.Time) (semcache.Hit, bool, error) {
	if len(vec) != ix.cfg.Dim {
		return semcache.Hit{}, false, fmt.Errorf("qdrant: search: vector has %d dimensions, index has %d", len(vec), ix.cfg.Dim)
	}
	if !ix.ready.Load() {
		return semcache.Hit{}, false, ix.notReady()
	}
	cctx, cancel := context.WithTimeout(ctx, ix.cfg.SearchTimeout)
	defer cancel()
	req := &qc.QueryPoints{
		CollectionName: ix.collection,
		Query:          qc.NewQueryDense(vec),
		Filter: &qc.Filter{Must: []*qc.Condition{
			qc.NewMatchKeyword(fieldScope, scope),
			notExpired(now),
		}},
		ScoreThreshold: qc.PtrOf(threshold),
		Limit:          qc.PtrOf(uint64(1)),
		WithPayload:    qc.NewWithPayloadInclude(fieldEntry),
		Params:         ix.searchParams(),
	}
	res, err := ix.client.Query(cctx, req)
	if err != nil {
		err = fmt.Errorf("qdrant: search %s: %w", ix.collection, err)
		if ctx.Err() == nil {
			ix.lost(err)
		}
		return semcache.Hit{}, false, err
	}
	if len(res) == 0 {
		return semcache.Hit{}, false, nil
	}
	best := res[0]
	if best.GetId().GetUuid() != "" {
		return semcache.Hit{}, false, fmt.Errorf("qdrant: search %s: point id %q is not one of ours", ix.collection, best.GetId().GetUuid())
	}
	hit := semcache.Hit{ID: best.GetId().GetNum(), Score: best.GetScore()}
	if v, ok := best.GetPayload()[fieldEntry]; ok {
		hit.Entry = v.GetStringValue()
	}
	return hit, true, nil
}

// notReady is Search's error while the index is unavailable.
func (ix *Index) notReady() error {
	ix.mu.Lock()
	last := ix.lastErr
	ix.mu.Unlock()
	if last == nil {
		return ErrNotReady
	}
	return fmt.Errorf("%w: %w", ErrNotReady, last)
}

func (ix *Index) searchParams() *qc.SearchParams {
	p := &qc.SearchParams{}
	if ix.cfg.ExactSearch {
		p.Exact = qc.PtrOf(true)
	}
	// Quantised scores are approximate; rescoring with the original vectors
	// keeps the threshold comparison honest. Binary needs more candidates.
	switch ix.cfg.Quantization {
	case QuantizationScalar:
		p.Quantization = &qc.QuantizationSearchParams{Rescore: qc.PtrOf(true)}
	case QuantizationBinary:
		p.Quantization = &qc.QuantizationSearchParams{Rescore: qc.PtrOf(true), Oversampling: qc.PtrOf(2.0)}
	}
	return p
}

// KeepsEntries implements semcache.EntryKeeper: points carry their cache
// entry, so replicas sharing the collection serve each other's answers.
func (ix *Index) KeepsEntries() bool { return true }

// Upsert implements semcache.Index. While Qdrant is unavailable, or when
// the upsert fails, the points are queued (within Config.MaxQueued and
// MaxQueuedBytes; beyond, dropped and counted) and upserted when it
// returns, and Upsert returns nil: a point lost costs a semantic miss, not
// an error, since its entry is in SQLite and indexed again at start.
func (ix *Index) Upsert(ctx context.Context, points ...semcache.Point) error {
	if len(points) == 0 {
		return nil
	}
	structs := make([]*qc.PointStruct, len(points))
	for i, p := range points {
		if len(p.Vector) != ix.cfg.Dim {
			return fmt.Errorf("qdrant: upsert point %d: vector has %d dimensions, index has %d", p.ID, len(p.Vector), ix.cfg.Dim)
		}
		// A protobuf string must be UTF-8; the cache's entries are JSON.
		if len(p.Entry) > 0 && !utf8.Valid(p.Entry) {
			return fmt.Errorf("qdrant: upsert point %d: entry is not UTF-8", p.ID)
		}
		structs[i] = pointStruct(p)
	}
	if ix.queueUnlessReady(points) {
		return nil
	}
	ctx, cancel := ix.writeCtx(ctx)
	defer cancel()
	if err := ix.upsert(ctx, structs); err != nil {
		ix.mu.Lock()
		ix.enqueueLocked(points)
		ix.lostLocked(err)
		ix.mu.Unlock()
	}
	return nil
}

func pointStruct(p semcache.Point) *qc.PointStruct {
	payload := map[string]*qc.Value{
		fieldScope:     qc.NewValueString(p.Scope),
		fieldTenant:    qc.NewValueString(p.Tenant),
		fieldModel:     qc.NewValueString(p.Model),
		fieldExpiresAt: qc.NewValueInt(p.ExpiresAt.UnixMilli()),
	}
	if len(p.Entry) > 0 {
		payload[fieldEntry] = qc.NewValueString(string(p.Entry))
	}
	return &qc.PointStruct{
		Id:      qc.NewIDNum(p.ID),
		Vectors: qc.NewVectorsDense(p.Vector),
		Payload: payload,
	}
}

func (ix *Index) upsert(ctx context.Context, structs []*qc.PointStruct) error {
	// wait: a search right after must see the point.
	_, err := ix.client.Upsert(ctx, &qc.UpsertPoints{
		CollectionName: ix.collection,
		Wait:           qc.PtrOf(true),
		Points:         structs,
	})
	if err != nil {
		return fmt.Errorf("qdrant: upsert %d points into %s: %w", len(structs), ix.collection, err)
	}
	return nil
}

// queueUnlessReady queues points and reports true while the index is not
// ready.
func (ix *Index) queueUnlessReady(points []semcache.Point) bool {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.ready.Load() {
		return false
	}
	ix.enqueueLocked(points)
	return true
}

func (ix *Index) enqueueLocked(points []semcache.Point) {
	if n := ix.q.add(points, ix.cfg.MaxQueued, ix.cfg.MaxQueuedBytes); n > 0 {
		if ix.dropped.Add(int64(n)) == int64(n) {
			ix.cfg.Logger.Warn("qdrant unavailable and its queue full: new entries are dropped from the semantic index (still served exactly)",
				"collection", ix.collection, "max_queued", ix.cfg.MaxQueued, "max_queued_bytes", ix.cfg.MaxQueuedBytes)
		}
	}
}

// writeCtx bounds a write by the timeout but not by the caller's
// cancellation: a client that leaves must not make Qdrant look down, and a
// delete that may or may not have happened would have to be remembered as
// if it failed.
func (ix *Index) writeCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return ix.callCtx(context.WithoutCancel(ctx))
}

// Delete implements semcache.Index. While Qdrant is unavailable, or when
// the delete fails, the ids are remembered (and the index made unavailable)
// and deleted before searches resume: a deleted point is never found
// again. It returns nil then.
func (ix *Index) Delete(ctx context.Context, ids ...uint64) error {
	if len(ids) == 0 {
		return nil
	}
	ix.mu.Lock()
	if !ix.ready.Load() {
		ix.q.deleteIDs(ids)
		ix.mu.Unlock()
		return nil
	}
	ix.mu.Unlock()
	ctx, cancel := ix.writeCtx(ctx)
	defer cancel()
	if err := ix.deleteIDs(ctx, ids); err != nil {
		ix.mu.Lock()
		ix.q.deleteIDs(ids)
		ix.lostLocked(err)
		ix.mu.Unlock()
	}
	return nil
}

func (ix *Index) deleteIDs(ctx context.Context, ids []uint64) error {
	pids := make([]*qc.PointId, len(ids))
	for i, id := range ids {
		pids[i] = qc.NewIDNum(id)
	}
	_, err := ix.client.Delete(ctx, &qc.DeletePoints{
		CollectionName: ix.collection,
		Wait:           qc.PtrOf(true),
		Points:         qc.NewPointsSelectorIDs(pids),
	})
	if err != nil {
		return fmt.Errorf("qdrant: delete %d points from %s: %w", len(ids), ix.collection, err)
	}
	return nil
}

// DeleteWhere implements semcache.Index. Qdrant's delete does not say how
// many points it removed, so the count comes from an exact count with the
// same filter just before; a point upserted between the two calls can make
// it one off, which is acceptable for an admin purge's report. While Qdrant
// is unavailable, or when the delete fails, the filter is remembered like
// Delete's ids (queued points it matches are dropped) and the count is 0.
func (ix *Index) DeleteWhere(ctx context.Context, f semcache.Filter) (int, error) {
	ix.mu.Lock()
	if !ix.ready.Load() {
		ix.q.deleteWhere(f)
		ix.mu.Unlock()
		return 0, nil
	}
	ix.mu.Unlock()
	ctx, cancel := ix.writeCtx(ctx)
	defer cancel()
	n, err := ix.countAndDelete(ctx, filterOf(f))
	if err != nil {
		err = fmt.Errorf("qdrant: delete where tenant=%q model=%q: %w", f.Tenant, f.Model, err)
		ix.mu.Lock()
		ix.q.deleteWhere(f)
		ix.lostLocked(err)
		ix.mu.Unlock()
		return 0, nil
	}
	return n, nil
}

func filterOf(f semcache.Filter) *qc.Filter {
	filter := &qc.Filter{}
	if f.Tenant != "" {
		filter.Must = append(filter.Must, qc.NewMatchKeyword(fieldTenant, f.Tenant))
	}
	if f.Model != "" {
		filter.Must = append(filter.Must, qc.NewMatchKeyword(fieldModel, f.Model))
	}
	return filter
}

// DeleteExpired implements semcache.Index: it deletes by the filter
// expires_at <= now, counting first as DeleteWhere does. While Qdrant is
// unavailable it only drops expired queued points: searches never return
// an expired point, and the next sweep after Qdrant returns deletes them.
func (ix *Index) DeleteExpired(ctx context.Context, now time.Time) (int, error) {
	ix.mu.Lock()
	if !ix.ready.Load() {
		ix.q.dropExpired(now)
		ix.mu.Unlock()
		return 0, nil
	}
	ix.mu.Unlock()
	filter := &qc.Filter{Must: []*qc.Condition{
		qc.NewRange(fieldExpiresAt, &qc.Range{Lte: qc.PtrOf(unixMilli(now))}),
	}}
	ctx, cancel := ix.writeCtx(ctx)
	defer cancel()
	n, err := ix.countAndDelete(ctx, filter)
	if err != nil {
		err = fmt.Errorf("qdrant: delete expired: %w", err)
		ix.lost(err)
		return n, err
	}
	return n, nil
}

func (ix *Index) countAndDelete(ctx context.Context, filter *qc.Filter) (int, error) {
	n, err := ix.client.Count(ctx, &qc.CountPoints{
		CollectionName: ix.collection,
		Filter:         filter,
		Exact:          qc.PtrOf(true),
	})
	if err != nil {
		return 0, fmt.Errorf("count in %s: %w", ix.collection, err)
	}
	if n == 0 {
		return 0, nil
	}
	if err := ix.deleteFilter(ctx, filter); err != nil {
		return 0, err
	}
	return int(min(n, math.MaxInt)), nil
}

func (ix *Index) deleteFilter(ctx context.Context, filter *qc.Filter) error {
	_, err := ix.client.Delete(ctx, &qc.DeletePoints{
		CollectionName: ix.collection,
		Wait:           qc.PtrOf(true),
		Points:         qc.NewPointsSelectorFilter(filter),
	})
	if err != nil {
		return fmt.Errorf("delete from %s: %w", ix.collection, err)
	}
	return nil
}

// Len implements semcache.Index with an exact count of the collection. The
// interface has no error, so an unavailable Qdrant reads as 0, at once.
func (ix *Index) Len() int {
	if !ix.ready.Load() {
		return 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), ix.cfg.SearchTimeout)
	defer cancel()
	n, err := ix.client.Count(ctx, &qc.CountPoints{CollectionName: ix.collection, Exact: qc.PtrOf(true)})
	if err != nil {
		ix.lost(fmt.Errorf("qdrant: count %s: %w", ix.collection, err))
		return 0
	}
	return int(min(n, math.MaxInt))
}

// ErrClosed is returned by StartSweeper after Close.
var ErrClosed = errors.New("qdrant: index closed")

// StartSweeper deletes expired points every interval until ctx ends or the
// index is closed; Close waits for it. Only one sweeper runs per index. It
// runs under Config.Supervisor: a panic is logged and the sweeper started
// again, or given up and reported.
func (ix *Index) StartSweeper(ctx context.Context, every time.Duration) error {
	if every <= 0 {
		return fmt.Errorf("qdrant: sweeper interval must be positive, got %v", every)
	}
	ix.sweepMu.Lock()
	defer ix.sweepMu.Unlock()
	if ix.closed {
		return ErrClosed
	}
	if ix.sweepCancel != nil {
		return errors.New("qdrant: sweeper already running")
	}
	ctx, cancel := context.WithCancel(ctx)
	ix.sweepCancel = cancel
	ix.cfg.Supervisor.Loop("qdrant sweeper", ctx.Done(), func() { ix.sweep(ctx, every) })
	return nil
}

// sweep deletes expired points every interval until ctx ends.
func (ix *Index) sweep(ctx context.Context, every time.Duration) {
	ix.sweeping.Lock()
	defer ix.sweeping.Unlock()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			n, err := ix.DeleteExpired(ctx, ix.cfg.Now())
			switch {
			case err != nil && ctx.Err() == nil:
				ix.cfg.Logger.Warn("qdrant sweep failed", "collection", ix.collection, "err", err)
			case n > 0:
				ix.cfg.Logger.Debug("qdrant swept expired points", "collection", ix.collection, "deleted", n)
			}
		}
	}
}

// Close stops the connector and the sweeper, waits for them, and closes the client New created.
func (ix *Index) Close() error {
	ix.sweepMu.Lock()
	if ix.closed {
		ix.sweepMu.Unlock()
		return nil
	}
	ix.closed = true
	cancel := ix.sweepCancel
	ix.sweepMu.Unlock()
	ix.stopConnect()
	ix.connecting.Lock()
	ix.connecting.Unlock() //nolint:staticcheck // an empty critical section: a wait
	if cancel != nil {
		cancel()
		// Wait for a sweep under way; one started later sees ctx ended.
		ix.sweeping.Lock()
		ix.sweeping.Unlock() //nolint:staticcheck // an empty critical section: a wait
	}
	return ix.closeClient()
}

func (ix *Index) closeClient() error {
	if !ix.ownClient {
		return nil
	}
	if err := ix.client.Close(); err != nil {
		return fmt.Errorf("qdrant: close: %w", err)
	}
	return nil
}
