package vecindex

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

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
		segs := map[*segment]bool{}
		for _, seg := range v.segs {
			segs[seg] = true
		}
		x.mu.Lock()
		for id, l := range x.locs {
			if !segs[l.seg] || l.seg.ids[l.slot] != id || l.seg.isDead(int(l.slot)) {
				t.Fatalf("compact %v: point %d's loc is stale", compact, id)
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
		x.mu.Unlock()
		if live != x.Len() || live != len(x.locs) {
			t.Fatalf("compact %v: %d live slots, Len %d, %d locs", compact, live, x.Len(), len(x.locs))
		}
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
