package vecindex

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/safe"
	"github.com/tollgate/tollgate/pkg/semcache"
)

// TestBackgroundRebuild lets writers delete, replace and add points while a
// background rebuild is between building and installing, then checks every
// point's loc and every search against the exact scan; with compact set
// the writers also compact the scope, and the rebuild must stand down.
func TestBackgroundRebuild(t *testing.T) {
	for _, compact := range []bool{false, true} {
		ctx := context.Background()
		r := rand.New(rand.NewPCG(8, 8))
		const dim = 64
		g := newLowRank(r, dim, 0.5)
		x := New(dim, WithSegmentSize(64))
		x.small, x.basisMin, x.asyncMin = 0, 64, 128
		later := t0.Add(time.Hour)
		var pts []semcache.Point
		for i := range 100 {
			pts = append(pts, point(uint64(i), "A", g.next(), later))
		}
		if err := x.Upsert(ctx, pts...); err != nil { // synchronous: under 128
			t.Fatal(err)
		}
		first := x.load("A")
		ran := false
		x.onBuilt = func() {
			x.onBuilt = nil
			ran = true
			var del []uint64
			for i := range 300 {
				// Compacting: tombstones outnumber live points.
				if i%5 == 0 || compact && i < 280 {
					del = append(del, uint64(i))
				}
			}
			if err := x.Delete(ctx, del...); err != nil {
				t.Error(err)
			}
			// More than catchUpLocked added points: one round of
			// catching up runs without the lock.
			var more []semcache.Point
			for i := range 40 + catchUpLocked {
				id := uint64(1000 + i)
				if i%4 == 0 {
					id = uint64(100 + i) // replaces a point the build copied
				}
				more = append(more, point(id, "A", g.next(), later))
			}
			if err := x.Upsert(ctx, more...); err != nil {
				t.Error(err)
			}
		}
		var grow []semcache.Point
		for i := 100; i < 300; i++ {
			grow = append(grow, point(uint64(i), "A", g.next(), later))
		}
		if err := x.Upsert(ctx, grow...); err != nil { // 300 live: a background rebuild
			t.Fatal(err)
		}
		x.builds.Wait()
		if !ran {
			t.Fatal("no background rebuild ran")
		}
		v := x.load("A")
		if v.basis == first.basis {
			t.Fatal("the basis was not relearnt")
		}
		checkLocs(t, x, "A")
		for qi := range 100 {
			q := g.next()
			if qi%2 == 0 {
				q = near(r, pts[r.IntN(len(pts))].Vector, 0.9)
			}
			for _, th := range []float32{-1, 0.5, 0.8, 0.95} {
				mustSearch(t, x, "A", q, th, t0)
			}
		}
	}
}

// checkLocs checks that every point's loc names its live slot in scope's
// published view (the index's only scope), and that the view holds no
// other live slot.
func checkLocs(t *testing.T, x *Index, scope string) {
	t.Helper()
	v := x.load(scope)
	segs := map[*segment]bool{}
	for _, seg := range v.segs {
		segs[seg] = true
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	for id, l := range x.locs {
		if !segs[l.seg] || l.seg.ids[l.slot] != id || l.seg.isDead(int(l.slot)) {
			t.Fatalf("point %d's loc is stale", id)
		}
	}
	live := 0
	for _, seg := range v.segs {
		for i := range int(seg.n.Load()) {
			if !seg.isDead(i) {
				live++
			}
		}
	}
	if live != x.Len() || live != len(x.locs) {
		t.Fatalf("%d live slots, Len %d, %d locs", live, x.Len(), len(x.locs))
	}
}

// TestRebuildPanicKeepsIndex makes a rebuild panic, after building (in the
// background) or halfway through moving the points' locations (in the
// background and under the writer's lock), and checks that the writer's
// points are in, the scope keeps its basis, every location is right (a
// deleted point is gone), searches equal the exact scan, the panic reached
// the supervisor without marking the index failed, and the scope is rebuilt
// once it has doubled.
func TestRebuildPanicKeepsIndex(t *testing.T) {
	boom := func() { panic("injected rebuild panic") }
	tests := []struct {
		name     string
		asyncMin int
		arm      func(x *Index)
	}{
		{"background, after building", 128, func(x *Index) { x.onBuilt = boom }},
		{"background, while moving locations", 128, func(x *Index) {
			x.onMove = func(j int) {
				if j == 10 {
					boom()
				}
			}
		}},
		{"under the writer's lock, while moving locations", 1 << 30, func(x *Index) {
			x.onMove = func(j int) {
				if j == 10 {
					boom()
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			r := rand.New(rand.NewPCG(9, 9))
			const dim = 64
			g := newLowRank(r, dim, 0.5)
			sup := safe.New(safe.Options{Logger: slog.New(slog.DiscardHandler)})
			x := New(dim, WithSegmentSize(64), WithSupervisor(sup))
			x.small, x.basisMin, x.asyncMin = 0, 64, tt.asyncMin
			later := t0.Add(time.Hour)
			var pts []semcache.Point
			add := func(from, to int) {
				t.Helper()
				var batch []semcache.Point
				for i := from; i < to; i++ {
					batch = append(batch, point(uint64(i), "A", g.next(), later))
				}
				if err := x.Upsert(ctx, batch...); err != nil {
					t.Fatal(err)
				}
				x.builds.Wait()
				pts = append(pts, batch...)
			}
			add(0, 100)
			first := x.load("A")
			tt.arm(x)
			add(100, 300) // 300 live: a rebuild, which panics
			x.onBuilt, x.onMove = nil, nil
			if got := sup.Panics(); got != 1 {
				t.Fatalf("supervisor saw %d panics, want 1", got)
			}
			if err := sup.Err(); err != nil {
				t.Fatalf("index marked failed: %v", err)
			}
			if x.Len() != 300 {
				t.Fatalf("Len %d, want 300", x.Len())
			}
			if x.load("A").basis != first.basis {
				t.Fatal("the basis changed: the panicked rebuild was installed")
			}
			checkLocs(t, x, "A")
			var del []uint64
			for i := 0; i < 300; i += 3 {
				del = append(del, uint64(i))
			}
			if err := x.Delete(ctx, del...); err != nil {
				t.Fatal(err)
			}
			checkLocs(t, x, "A")
			for _, id := range del[:20] {
				if h, ok := mustSearch(t, x, "A", pts[id].Vector, 0.999, t0); ok && h.ID == id {
					t.Fatalf("deleted point %d is still found", id)
				}
			}
			for range 50 {
				q := near(r, pts[r.IntN(len(pts))].Vector, 0.9)
				for _, th := range []float32{-1, 0.5, 0.8, 0.95} {
					mustSearch(t, x, "A", q, th, t0)
				}
			}
			// The scope held 300 slots when the rebuild panicked: none
			// before 600, one after.
			add(300, 550)
			if x.load("A").basis != first.basis {
				t.Fatal("rebuilt again before doubling")
			}
			add(550, 700)
			if x.load("A").basis == first.basis {
				t.Fatal("never rebuilt again")
			}
			checkLocs(t, x, "A")
			for range 20 {
				mustSearch(t, x, "A", near(r, pts[r.IntN(len(pts))].Vector, 0.9), 0.8, t0)
			}
			if got := sup.Panics(); got != 1 {
				t.Fatalf("supervisor saw %d panics, want 1", got)
			}
		})
	}
}
