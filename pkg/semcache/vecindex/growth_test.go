package vecindex

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/tollgate/tollgate/pkg/semcache"
)

// TestScopeGrowth follows a scope from its first point, which takes one
// slot and no bounds, through growth and compaction without bounds (one
// segment), to the rebuild
// that gives it a basis and bounds at codeMin (under the writers' lock or
// in the background), checking its segments, every point's location and
// searches against the exact scan at each step.
func TestScopeGrowth(t *testing.T) {
	const dim = 64
	later := t0.Add(time.Hour)
	tests := []struct {
		name     string
		small    int // smallScope: codeMin is half of it
		asyncMin int
		add      int   // points added, one Upsert each
		del      int   // then the first del deleted
		wantLen  int   // ScopeLen
		wantSegs []int // segment sizes, nil: not checked
		wantCode bool  // whether the view has a basis and bounds
		// wantCompact: the deletes left tombstones enough to compact.
		wantCompact bool
	}{
		{name: "first point takes one slot", small: smallScope, asyncMin: asyncRebuild, add: 1, wantLen: 1, wantSegs: []int{1}},
		{name: "a scope without bounds keeps one segment, half as large again when full", small: smallScope, asyncMin: asyncRebuild, add: 10, wantLen: 10, wantSegs: []int{11}},
		{name: "a scope without bounds compacts without them", small: smallScope, asyncMin: asyncRebuild, add: 200, del: 150, wantLen: 50, wantCompact: true},
		{name: "just under codeMin: no bounds", small: 256, asyncMin: 1 << 30, add: 127, wantLen: 127},
		{name: "codeMin: bounds, under the lock", small: 256, asyncMin: 1 << 30, add: 128, wantLen: 128, wantCode: true},
		{name: "codeMin: bounds, in the background", small: 256, asyncMin: 100, add: 300, wantLen: 300, wantCode: true},
		{name: "past smallScope with bounds", small: 256, asyncMin: 1 << 30, add: 600, del: 20, wantLen: 580, wantCode: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			r := rand.New(rand.NewPCG(3, uint64(tt.add)))
			g := newLowRank(r, dim, 0.6)
			x := New(dim)
			x.small, x.asyncMin = tt.small, tt.asyncMin
			x.basisMin = min(x.basisMin, tt.small/2)
			var pts []semcache.Point
			for i := range tt.add {
				p := point(uint64(i), "A", g.next(), later)
				pts = append(pts, p)
				if err := x.Upsert(ctx, p); err != nil {
					t.Fatal(err)
				}
			}
			x.builds.Wait()
			var del []uint64
			for i := range tt.del {
				del = append(del, uint64(i))
			}
			if err := x.Delete(ctx, del...); err != nil {
				t.Fatal(err)
			}
			if n := x.ScopeLen("A"); n != tt.wantLen {
				t.Errorf("ScopeLen = %d, want %d", n, tt.wantLen)
			}
			v := x.load("A")
			if got := v.basis != nil; got != tt.wantCode {
				t.Errorf("view has a basis: %v, want %v", got, tt.wantCode)
			}
			var sizes []int
			for _, seg := range v.segs {
				sizes = append(sizes, len(seg.ids))
				if (seg.code != nil) != tt.wantCode {
					t.Errorf("segment of %d slots has bounds: %v, want %v", len(seg.ids), seg.code != nil, tt.wantCode)
				}
			}
			if tt.wantSegs != nil && !slices.Equal(sizes, tt.wantSegs) {
				t.Errorf("segment sizes %v, want %v", sizes, tt.wantSegs)
			}
			if slots := lenSlots(v); tt.wantCompact && slots >= tt.add {
				t.Errorf("%d slots after deleting %d of %d: not compacted", slots, tt.del, tt.add)
			}
			checkLocs(t, x, "A")
			for qi := range 40 {
				q := g.next()
				if qi%2 == 0 {
					q = near(r, pts[r.IntN(len(pts))].Vector, 0.9+0.1*r.Float64())
				}
				for _, th := range []float32{-1, 0.5, 0.8, 0.95} {
					mustSearch(t, x, "A", q, th, t0)
				}
			}
		})
	}
}

// lenSlots is the slots of v's segments, filled or not.
func lenSlots(v *view) int {
	n := 0
	for _, seg := range v.segs {
		n += len(seg.ids)
	}
	return n
}
