// Package qdrant owns the semantic cache's Qdrant adapter: a semcache.Index
// over one Qdrant collection per embedding model and dimension, reached with
// qdrant/go-client over gRPC. Entries are scoped by payload (keyword indexes
// on scope, tenant and model, tenant marked is_tenant), expire through an
// integer range index on expires_at that every search filters on, and are
// removed by a sweeper deleting by filter, since Qdrant has no per-point TTL.
// Each point also carries its cache entry (semcache.Point.Entry, unindexed
// payload), which searches return, so that gateway replicas sharing the
// collection serve each other's answers.
package qdrant

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"
	"unicode/utf8"

	qc "github.com/qdrant/go-client/qdrant"

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
type Index struct {
	cfg        Config
	client     *qc.Client
	ownClient  bool
	collection string

	// ensureMu serialises first use so concurrent callers create the
	// collection and its indexes once; ready is set only after success, so a
	// failed attempt is retried by the next call.
	ensureMu sync.Mutex
	ready    bool

	// sweepMu guards the sweeper's lifecycle.
	sweepMu     sync.Mutex
	sweepCancel context.CancelFunc
	closed      bool
	// sweeping is held while the sweeper runs, so that Close can wait for
	// it however it ended (returned, or given up after panics).
	sweeping sync.Mutex
}

// New connects to Qdrant and checks that it answers. The collection is not
// touched until first use.
func New(ctx context.Context, cfg Config) (*Index, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	ix := &Index{cfg: cfg, client: cfg.Client, collection: cfg.collection()}
	if ix.client == nil {
		// The client's own compatibility check blocks without a context and
		// logs to slog.Default; we run the health check below instead.
		ix.client, err = qc.NewClient(&qc.Config{
			Host:                   cfg.Host,
			Port:                   cfg.Port,
			APIKey:                 cfg.APIKey,
			UseTLS:                 cfg.UseTLS,
			GrpcOptions:            cfg.DialOptions,
			SkipCompatibilityCheck: true,
		})
		if err != nil {
			return nil, fmt.Errorf("qdrant: connect %s: %w", cfg.addr(), err)
		}
		ix.ownClient = true
	}
	cctx, cancel := ix.callCtx(ctx)
	defer cancel()
	reply, err := ix.client.HealthCheck(cctx)
	if err != nil {
		ix.closeClient()
		return nil, fmt.Errorf("qdrant: health check %s: %w", cfg.addr(), err)
	}
	cfg.Logger.Debug("qdrant connected", "server_version", reply.GetVersion(), "collection", ix.collection)
	return ix, nil
}

// Collection is the name of the collection this index uses.
func (ix *Index) Collection() string { return ix.collection }

// callCtx bounds one call to Qdrant by the configured timeout.
func (ix *Index) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, ix.cfg.Timeout)
}

// ensure creates the collection and its payload indexes on first use. Both
// steps are idempotent, so another gateway racing us is harmless.
func (ix *Index) ensure(ctx context.Context) error {
	ix.ensureMu.Lock()
	defer ix.ensureMu.Unlock()
	if ix.ready {
		return nil
	}
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
	ix.ready = true
	return nil
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

// Search implements semcache.Index.
func (ix *Index) Search(ctx context.Context, scope string, vec []float32, threshold float32, now time.Time) (semcache.Hit, bool, error) {
	if len(vec) != ix.cfg.Dim {
		return semcache.Hit{}, false, fmt.Errorf("qdrant: search: vector has %d dimensions, index has %d", len(vec), ix.cfg.Dim)
	}
	ctx, cancel := ix.callCtx(ctx)
	defer cancel()
	if err := ix.ensure(ctx); err != nil {
		return semcache.Hit{}, false, err
	}
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
	res, err := ix.client.Query(ctx, req)
	if err != nil {
		return semcache.Hit{}, false, fmt.Errorf("qdrant: search %s: %w", ix.collection, err)
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

// Upsert implements semcache.Index.
func (ix *Index) Upsert(ctx context.Context, points ...semcache.Point) error {
	if len(points) == 0 {
		return nil
	}
	structs := make([]*qc.PointStruct, len(points))
	for i, p := range points {
		if len(p.Vector) != ix.cfg.Dim {
			return fmt.Errorf("qdrant: upsert point %d: vector has %d dimensions, index has %d", p.ID, len(p.Vector), ix.cfg.Dim)
		}
		payload := map[string]*qc.Value{
			fieldScope:     qc.NewValueString(p.Scope),
			fieldTenant:    qc.NewValueString(p.Tenant),
			fieldModel:     qc.NewValueString(p.Model),
			fieldExpiresAt: qc.NewValueInt(p.ExpiresAt.UnixMilli()),
		}
		if len(p.Entry) > 0 {
			// A protobuf string must be UTF-8; the cache's entries are JSON.
			if !utf8.Valid(p.Entry) {
				return fmt.Errorf("qdrant: upsert point %d: entry is not UTF-8", p.ID)
			}
			payload[fieldEntry] = qc.NewValueString(string(p.Entry))
		}
		structs[i] = &qc.PointStruct{
			Id:      qc.NewIDNum(p.ID),
			Vectors: qc.NewVectorsDense(p.Vector),
			Payload: payload,
		}
	}
	ctx, cancel := ix.callCtx(ctx)
	defer cancel()
	if err := ix.ensure(ctx); err != nil {
		return err
	}
	// wait: a search right after must see the point.
	_, err := ix.client.Upsert(ctx, &qc.UpsertPoints{
		CollectionName: ix.collection,
		Wait:           qc.PtrOf(true),
		Points:         structs,
	})
	if err != nil {
		return fmt.Errorf("qdrant: upsert %d points into %s: %w", len(points), ix.collection, err)
	}
	return nil
}

// Delete implements semcache.Index.
func (ix *Index) Delete(ctx context.Context, ids ...uint64) error {
	if len(ids) == 0 {
		return nil
	}
	pids := make([]*qc.PointId, len(ids))
	for i, id := range ids {
		pids[i] = qc.NewIDNum(id)
	}
	ctx, cancel := ix.callCtx(ctx)
	defer cancel()
	if err := ix.ensure(ctx); err != nil {
		return err
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
// it one off, which is acceptable for an admin purge's report.
func (ix *Index) DeleteWhere(ctx context.Context, f semcache.Filter) (int, error) {
	filter := &qc.Filter{}
	if f.Tenant != "" {
		filter.Must = append(filter.Must, qc.NewMatchKeyword(fieldTenant, f.Tenant))
	}
	if f.Model != "" {
		filter.Must = append(filter.Must, qc.NewMatchKeyword(fieldModel, f.Model))
	}
	n, err := ix.countAndDelete(ctx, filter)
	if err != nil {
		return n, fmt.Errorf("qdrant: delete where tenant=%q model=%q: %w", f.Tenant, f.Model, err)
	}
	return n, nil
}

// DeleteExpired implements semcache.Index: it deletes by the filter
// expires_at <= now, counting first as DeleteWhere does.
func (ix *Index) DeleteExpired(ctx context.Context, now time.Time) (int, error) {
	filter := &qc.Filter{Must: []*qc.Condition{
		qc.NewRange(fieldExpiresAt, &qc.Range{Lte: qc.PtrOf(unixMilli(now))}),
	}}
	n, err := ix.countAndDelete(ctx, filter)
	if err != nil {
		return n, fmt.Errorf("qdrant: delete expired: %w", err)
	}
	return n, nil
}

func (ix *Index) countAndDelete(ctx context.Context, filter *qc.Filter) (int, error) {
	ctx, cancel := ix.callCtx(ctx)
	defer cancel()
	if err := ix.ensure(ctx); err != nil {
		return 0, err
	}
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
	_, err = ix.client.Delete(ctx, &qc.DeletePoints{
		CollectionName: ix.collection,
		Wait:           qc.PtrOf(true),
		Points:         qc.NewPointsSelectorFilter(filter),
	})
	if err != nil {
		return 0, fmt.Errorf("delete from %s: %w", ix.collection, err)
	}
	return int(min(n, math.MaxInt)), nil
}

// Len implements semcache.Index with an exact count of the collection. The
// interface has no error, so an unreachable Qdrant reads as 0.
func (ix *Index) Len() int {
	ctx, cancel := ix.callCtx(context.Background())
	defer cancel()
	if err := ix.ensure(ctx); err != nil {
		return 0
	}
	n, err := ix.client.Count(ctx, &qc.CountPoints{CollectionName: ix.collection, Exact: qc.PtrOf(true)})
	if err != nil {
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

// Close stops the sweeper, waits for it, and closes the client New created.
func (ix *Index) Close() error {
	ix.sweepMu.Lock()
	if ix.closed {
		ix.sweepMu.Unlock()
		return nil
	}
	ix.closed = true
	cancel := ix.sweepCancel
	ix.sweepMu.Unlock()
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
