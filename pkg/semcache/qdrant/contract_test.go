package qdrant

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/pkg/semcache"
)

// The behaviour every semcache.Index owes its callers, run against the fake
// (qdrant_test.go) and against a real Qdrant when QDRANT_URL is set
// (real_test.go). newIndex returns an index over a fresh, empty collection
// of dimension 3.

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func pt(id uint64, scope, tenant, model string, vec []float32, expires time.Time) semcache.Point {
	return semcache.Point{ID: id, Scope: scope, Tenant: tenant, Model: model, Vector: vec, ExpiresAt: expires}
}

var (
	vx  = []float32{1, 0, 0}
	vy  = []float32{0, 1, 0}
	vxy = []float32{0.8, 0.6, 0} // cosine 0.8 with vx, 0.6 with vy
)

func runContract(t *testing.T, newIndex func(t *testing.T) *Index) {
	t.Run("search", func(t *testing.T) {
		later := t0.Add(time.Hour)
		tests := []struct {
			name      string
			points    []semcache.Point
			scope     string
			vec       []float32
			threshold float32
			now       time.Time
			want      uint64
			wantOK    bool
		}{
			{name: "empty index misses", scope: "s", vec: vx, threshold: 0.5, now: t0},
			{name: "exact match hits", points: []semcache.Point{pt(1, "s", "t", "m", vx, later)}, scope: "s", vec: vx, threshold: 0.99, now: t0, want: 1, wantOK: true},
			{name: "other scope is invisible", points: []semcache.Point{pt(1, "s2", "t", "m", vx, later)}, scope: "s", vec: vx, threshold: 0.5, now: t0},
			{name: "best of the scope wins over a better one elsewhere", points: []semcache.Point{
				pt(1, "s", "t", "m", vxy, later), pt(2, "other", "t", "m", vx, later), pt(3, "s", "t", "m", vy, later),
			}, scope: "s", vec: vx, threshold: 0.5, now: t0, want: 1, wantOK: true},
			{name: "below threshold misses", points: []semcache.Point{pt(1, "s", "t", "m", vxy, later)}, scope: "s", vec: vx, threshold: 0.9, now: t0},
			{name: "expired misses", points: []semcache.Point{pt(1, "s", "t", "m", vx, t0.Add(-time.Millisecond))}, scope: "s", vec: vx, threshold: 0.5, now: t0},
			{name: "expiring exactly now misses", points: []semcache.Point{pt(1, "s", "t", "m", vx, t0)}, scope: "s", vec: vx, threshold: 0.5, now: t0},
			{name: "expiring a millisecond later hits", points: []semcache.Point{pt(1, "s", "t", "m", vx, t0.Add(time.Millisecond))}, scope: "s", vec: vx, threshold: 0.5, now: t0, want: 1, wantOK: true},
			{name: "expired best yields to live second", points: []semcache.Point{
				pt(1, "s", "t", "m", vx, t0.Add(-time.Second)), pt(2, "s", "t", "m", vxy, later),
			}, scope: "s", vec: vx, threshold: 0.5, now: t0, want: 2, wantOK: true},
			{name: "upsert replaces vector", points: []semcache.Point{
				pt(1, "s", "t", "m", vx, later), pt(1, "s", "t", "m", vy, later),
			}, scope: "s", vec: vx, threshold: 0.5, now: t0},
			{name: "upsert replaces scope", points: []semcache.Point{
				pt(1, "s", "t", "m", vx, later), pt(1, "moved", "t", "m", vx, later),
			}, scope: "s", vec: vx, threshold: 0.5, now: t0},
			{name: "upsert replaces expiry", points: []semcache.Point{
				pt(1, "s", "t", "m", vx, t0.Add(-time.Second)), pt(1, "s", "t", "m", vx, later),
			}, scope: "s", vec: vx, threshold: 0.5, now: t0, want: 1, wantOK: true},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				ix := newIndex(t)
				ctx := t.Context()
				for _, p := range tt.points { // one by one so later ones replace earlier
					if err := ix.Upsert(ctx, p); err != nil {
						t.Fatal(err)
					}
				}
				hit, ok, err := ix.Search(ctx, tt.scope, tt.vec, tt.threshold, tt.now)
				if err != nil {
					t.Fatal(err)
				}
				if ok != tt.wantOK || (ok && hit.ID != tt.want) {
					t.Fatalf("Search = %+v, %v; want id %d, %v", hit, ok, tt.want, tt.wantOK)
				}
				if ok && (hit.Score < tt.threshold || hit.Score > 1.0001) {
					t.Errorf("score %v outside [%v, 1]", hit.Score, tt.threshold)
				}
			})
		}
	})

	t.Run("entry payload", func(t *testing.T) {
		later := t0.Add(time.Hour)
		with := func(p semcache.Point, entry string) semcache.Point {
			p.Entry = []byte(entry)
			return p
		}
		// Entries as the cache encodes them: JSON, quotes, escapes, unicode.
		entry1 := `{"v":1,"id":1,"query":"what's \"new\"? caf\u00e9 ✓","response":"eyJpZCI6ImMifQ=="}`
		entry2 := `{"v":1,"id":1,"query":"replaced"}`
		tests := []struct {
			name   string
			points []semcache.Point
			want   string
		}{
			{name: "returned by search", points: []semcache.Point{with(pt(1, "s", "t", "m", vx, later), entry1)}, want: entry1},
			{name: "none kept, none returned", points: []semcache.Point{pt(1, "s", "t", "m", vx, later)}, want: ""},
			{name: "upsert replaces entry", points: []semcache.Point{
				with(pt(1, "s", "t", "m", vx, later), entry1), with(pt(1, "s", "t", "m", vx, later), entry2),
			}, want: entry2},
			{name: "upsert without entry drops it", points: []semcache.Point{
				with(pt(1, "s", "t", "m", vx, later), entry1), pt(1, "s", "t", "m", vx, later),
			}, want: ""},
			{name: "large entry", points: []semcache.Point{
				with(pt(1, "s", "t", "m", vx, later), `{"v":1,"response":"`+strings.Repeat("QUJD", 50_000)+`"}`),
			}, want: `{"v":1,"response":"` + strings.Repeat("QUJD", 50_000) + `"}`},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				ix := newIndex(t)
				ctx := t.Context()
				for _, p := range tt.points {
					if err := ix.Upsert(ctx, p); err != nil {
						t.Fatal(err)
					}
				}
				hit, ok, err := ix.Search(ctx, "s", vx, 0.9, t0)
				if err != nil || !ok || hit.ID != 1 {
					t.Fatalf("Search = %+v, %v, %v", hit, ok, err)
				}
				if hit.Entry != tt.want {
					t.Errorf("entry = %.200q, want %.200q", hit.Entry, tt.want)
				}
			})
		}
	})

	t.Run("deletes", func(t *testing.T) {
		later := t0.Add(time.Hour)
		seed := []semcache.Point{
			pt(1, "a", "acme", "gpt", vx, later),
			pt(2, "b", "acme", "claude", vy, later),
			pt(3, "c", "globex", "gpt", vxy, later),
			pt(4, "d", "globex", "claude", vx, t0.Add(-time.Minute)),
			pt(5, "e", "acme", "gpt", vy, t0),
		}
		tests := []struct {
			name     string
			del      func(ctx context.Context, ix *Index) (int, error)
			wantN    int
			wantLeft []uint64
		}{
			{name: "by tenant", del: func(ctx context.Context, ix *Index) (int, error) {
				return ix.DeleteWhere(ctx, semcache.Filter{Tenant: "acme"})
			}, wantN: 3, wantLeft: []uint64{3, 4}},
			{name: "by model", del: func(ctx context.Context, ix *Index) (int, error) {
				return ix.DeleteWhere(ctx, semcache.Filter{Model: "claude"})
			}, wantN: 2, wantLeft: []uint64{1, 3, 5}},
			{name: "by tenant and model", del: func(ctx context.Context, ix *Index) (int, error) {
				return ix.DeleteWhere(ctx, semcache.Filter{Tenant: "globex", Model: "gpt"})
			}, wantN: 1, wantLeft: []uint64{1, 2, 4, 5}},
			{name: "empty filter deletes all", del: func(ctx context.Context, ix *Index) (int, error) {
				return ix.DeleteWhere(ctx, semcache.Filter{})
			}, wantN: 5, wantLeft: nil},
			{name: "no match deletes nothing", del: func(ctx context.Context, ix *Index) (int, error) {
				return ix.DeleteWhere(ctx, semcache.Filter{Tenant: "initech"})
			}, wantN: 0, wantLeft: []uint64{1, 2, 3, 4, 5}},
			{name: "expired at now, boundary included", del: func(ctx context.Context, ix *Index) (int, error) {
				return ix.DeleteExpired(ctx, t0)
			}, wantN: 2, wantLeft: []uint64{1, 2, 3}},
			{name: "by ids, unknown ignored", del: func(ctx context.Context, ix *Index) (int, error) {
				return 2, ix.Delete(ctx, 2, 4, 99)
			}, wantN: 2, wantLeft: []uint64{1, 3, 5}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				ix := newIndex(t)
				ctx := t.Context()
				if err := ix.Upsert(ctx, seed...); err != nil {
					t.Fatal(err)
				}
				if got := ix.Len(); got != len(seed) {
					t.Fatalf("Len after seeding = %d, want %d", got, len(seed))
				}
				n, err := tt.del(ctx, ix)
				if err != nil {
					t.Fatal(err)
				}
				if n != tt.wantN {
					t.Errorf("deleted %d, want %d", n, tt.wantN)
				}
				if left := remaining(t, ix, seed); !slices.Equal(left, tt.wantLeft) {
					t.Errorf("left %v, want %v", left, tt.wantLeft)
				}
			})
		}
	})
}

// remaining finds which seed points are still held by searching each one's
// scope with its own vector at a time before everything expires.
func remaining(t *testing.T, ix *Index, seed []semcache.Point) []uint64 {
	t.Helper()
	var left []uint64
	for _, p := range seed {
		hit, ok, err := ix.Search(t.Context(), p.Scope, p.Vector, 0.99, t0.Add(-time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if ok && hit.ID == p.ID {
			left = append(left, p.ID)
		}
	}
	if got := ix.Len(); got != len(left) {
		t.Errorf("Len = %d, but %d points found", got, len(left))
	}
	return left
}
