package qdrant

import (
	"context"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/tollgate/tollgate/pkg/semcache"
)

// TestRequeue: what a failed apply leaves is put back under the writes
// made meanwhile without resurrecting a point deleted meanwhile.
func TestRequeue(t *testing.T) {
	later := t0.Add(time.Hour)
	p := func(id uint64, tenant string) semcache.Point { return pt(id, "s", tenant, "m", vx, later) }
	tests := []struct {
		name        string
		batch       func(q *queue)
		newer       func(q *queue)
		wantUpserts []uint64
		wantIDs     []uint64
		wantFilters []semcache.Filter
	}{
		{name: "points come back", batch: func(q *queue) { q.add([]semcache.Point{p(1, "a"), p(2, "b")}, 10, 1<<20) },
			newer: func(*queue) {}, wantUpserts: []uint64{1, 2}},
		{name: "point deleted by id meanwhile stays deleted", batch: func(q *queue) { q.add([]semcache.Point{p(9, "a")}, 10, 1<<20) },
			newer: func(q *queue) { q.deleteIDs([]uint64{9}) }, wantIDs: []uint64{9}},
		{name: "point deleted by filter meanwhile stays deleted", batch: func(q *queue) { q.add([]semcache.Point{p(9, "a"), p(8, "b")}, 10, 1<<20) },
			newer: func(q *queue) { q.deleteWhere(semcache.Filter{Tenant: "a"}) }, wantUpserts: []uint64{8}, wantFilters: []semcache.Filter{{Tenant: "a"}}},
		{name: "batch filters go before newer ones", batch: func(q *queue) { q.deleteWhere(semcache.Filter{Tenant: "a"}) },
			newer: func(q *queue) { q.deleteWhere(semcache.Filter{Model: "m"}) }, wantFilters: []semcache.Filter{{Tenant: "a"}, {Model: "m"}}},
		{name: "a newer point queued meanwhile is kept", batch: func(q *queue) { q.add([]semcache.Point{p(1, "a")}, 10, 1<<20) },
			newer: func(q *queue) { q.add([]semcache.Point{p(1, "b")}, 10, 1<<20) }, wantUpserts: []uint64{1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var batch, q queue
			tt.batch(&batch)
			tt.newer(&q)
			newer, hasNewer := q.upserts[1]
			q.requeue(&batch)
			if got := slices.Sorted(maps.Keys(q.upserts)); !slices.Equal(got, tt.wantUpserts) {
				t.Errorf("upserts %v, want %v", got, tt.wantUpserts)
			}
			if got := slices.Sorted(maps.Keys(q.ids)); !slices.Equal(got, tt.wantIDs) {
				t.Errorf("ids %v, want %v", got, tt.wantIDs)
			}
			if !slices.Equal(q.filters, tt.wantFilters) {
				t.Errorf("filters %v, want %v", q.filters, tt.wantFilters)
			}
			if hasNewer && q.upserts[1].Tenant != newer.Tenant {
				t.Errorf("the newer point 1 was replaced by the batch's")
			}
			want := 0
			for _, p := range q.upserts {
				want += size(p)
			}
			if q.bytes != want {
				t.Errorf("bytes %d, want %d", q.bytes, want)
			}
		})
	}
}

// TestCallerCancelIsNotAnOutage: a search the caller gave up on fails but
// leaves the index ready.
func TestCallerCancelIsNotAnOutage(t *testing.T) {
	ix, _ := newFakeIndex(t, nil)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, _, err := ix.Search(ctx, "s", vx, 0.5, t0); err == nil {
		t.Fatal("a cancelled search succeeded")
	}
	if !ix.Ready() {
		t.Errorf("a cancelled search made the index unavailable: %+v", ix.IndexStatus())
	}
}
