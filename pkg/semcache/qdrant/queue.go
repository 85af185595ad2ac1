package qdrant

import (
	"context"
	"maps"
	"slices"
	"time"

	qc "github.com/qdrant/go-client/qdrant"

	"github.com/tollgate/tollgate/pkg/semcache"
)

// applyBatch bounds the points of one upsert when a queue is applied.
const applyBatch = 256

// queue holds the writes made while Qdrant was unavailable, to be applied
// when it returns: deletes first, then upserts. Its invariant keeps that
// order right: a delete removes the queued points it matches, so every
// point still queued was queued after every delete that matches it (ids are
// never reused). Not safe for concurrent use (Index.mu guards it).
type queue struct {
	upserts map[uint64]semcache.Point
	bytes   int
	ids     map[uint64]struct{}
	// filters are DeleteWhere's, in order; an empty filter matches all.
	filters []semcache.Filter
}

func (q *queue) empty() bool {
	return len(q.upserts) == 0 && len(q.ids) == 0 && len(q.filters) == 0
}

// size is what a point costs the queue's byte bound.
func size(p semcache.Point) int {
	return 4*len(p.Vector) + len(p.Entry) + len(p.Scope) + len(p.Tenant) + len(p.Model) + 64
}

// add queues points within the bounds and returns how many were dropped.
// A point queued again replaces the earlier one.
func (q *queue) add(points []semcache.Point, maxPoints, maxBytes int) (dropped int) {
	if q.upserts == nil {
		q.upserts = map[uint64]semcache.Point{}
	}
	for _, p := range points {
		if old, ok := q.upserts[p.ID]; ok {
			q.bytes -= size(old)
			delete(q.upserts, p.ID)
		}
		if len(q.upserts) >= maxPoints || q.bytes+size(p) > maxBytes {
			dropped++
			continue
		}
		q.upserts[p.ID] = p
		q.bytes += size(p)
	}
	return dropped
}

func (q *queue) remove(id uint64) {
	if p, ok := q.upserts[id]; ok {
		q.bytes -= size(p)
		delete(q.upserts, id)
	}
}

// deleteIDs remembers ids to delete and drops their queued points.
func (q *queue) deleteIDs(ids []uint64) {
	if q.ids == nil {
		q.ids = map[uint64]struct{}{}
	}
	for _, id := range ids {
		q.remove(id)
		q.ids[id] = struct{}{}
	}
}

func matchesFilter(f semcache.Filter, p semcache.Point) bool {
	return (f.Tenant == "" || p.Tenant == f.Tenant) && (f.Model == "" || p.Model == f.Model)
}

// deleteWhere remembers a filter to delete by and drops the queued points
// it matches. A filter already remembered, or one covered by a remembered
// filter matching everything, is not added again.
func (q *queue) deleteWhere(f semcache.Filter) {
	for id, p := range q.upserts {
		if matchesFilter(f, p) {
			q.remove(id)
		}
	}
	if f == (semcache.Filter{}) {
		q.filters = []semcache.Filter{f}
		return
	}
	for _, g := range q.filters {
		if g == f || g == (semcache.Filter{}) {
			return
		}
	}
	q.filters = append(q.filters, f)
}

// dropExpired drops the queued points expired at now.
func (q *queue) dropExpired(now time.Time) {
	for id, p := range q.upserts {
		if !now.Before(p.ExpiresAt) {
			q.remove(id)
		}
	}
}

// requeue puts back what is left of batch, taken from q before q received
// the writes it holds now: batch's deletes go first (they came first), and
// its points only if no newer delete matches them and no newer version of
// them is queued.
func (q *queue) requeue(batch *queue) {
	if len(batch.filters) > 0 {
		newer := q.filters
		q.filters = nil
		for _, f := range batch.filters {
			q.deleteWhere(f)
		}
		for _, f := range newer {
			q.deleteWhere(f)
		}
	}
	if len(batch.ids) > 0 {
		q.deleteIDs(slices.Collect(maps.Keys(batch.ids)))
	}
	for id, p := range batch.upserts {
		if _, newer := q.upserts[id]; newer {
			continue
		}
		if _, deleted := q.ids[id]; deleted {
			continue
		}
		if slices.ContainsFunc(q.filters, func(f semcache.Filter) bool { return matchesFilter(f, p) }) {
			continue
		}
		if q.upserts == nil {
			q.upserts = map[uint64]semcache.Point{}
		}
		q.upserts[id] = p
		q.bytes += size(p)
	}
}

// apply writes batch to Qdrant: deletes by filter, deletes by id, then the
// points. What it applied is removed from batch, so that on failure the
// rest can be requeued.
func (ix *Index) apply(ctx context.Context, batch *queue) error {
	for len(batch.filters) > 0 {
		cctx, cancel := ix.callCtx(ctx)
		err := ix.deleteFilter(cctx, filterOf(batch.filters[0]))
		cancel()
		if err != nil {
			return err
		}
		batch.filters = batch.filters[1:]
	}
	if len(batch.ids) > 0 {
		cctx, cancel := ix.callCtx(ctx)
		err := ix.deleteIDs(cctx, slices.Collect(maps.Keys(batch.ids)))
		cancel()
		if err != nil {
			return err
		}
		batch.ids = nil
	}
	ids := slices.Sorted(maps.Keys(batch.upserts))
	for len(ids) > 0 {
		n := min(len(ids), applyBatch)
		structs := make([]*qc.PointStruct, n)
		for i, id := range ids[:n] {
			structs[i] = pointStruct(batch.upserts[id])
		}
		cctx, cancel := ix.callCtx(ctx)
		err := ix.upsert(cctx, structs)
		cancel()
		if err != nil {
			return err
		}
		for _, id := range ids[:n] {
			batch.remove(id)
		}
		ids = ids[n:]
	}
	return nil
}
