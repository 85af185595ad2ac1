package vecindex

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/tollgate/tollgate/pkg/semcache"
)

// TestScanKernels checks the assembly kernels against the portable ones
// bit for bit on inputs whose sums are exact in float32 (small integers),
// for every length around the 8- and 32-point blocks.
func TestScanKernels(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	for _, pairs := range []int{1, 3, 16} {
		for n := range 100 {
			hq := make([]int8, (n+31)&^31*2*pairs)
			for i := range hq {
				hq[i] = int8(r.IntN(255) - 127)
			}
			gp := make([]int32, pairs)
			for i := range gp {
				lo, hi := int16(r.IntN(65535)-32767), int16(r.IntN(65535)-32767)
				gp[i] = int32(uint32(uint16(lo)) | uint32(uint16(hi))<<16)
			}
			tau, w := make([]float32, n), make([]float32, n)
			for i := range n {
				tau[i], w[i] = float32(r.IntN(64)), float32(r.IntN(64))
			}
			// λ a power of two and sums below 2²⁴: every step exact.
			par := [4]float32{float32(r.IntN(3)), float32(r.IntN(3)), float32(r.IntN(400) - 200), 1.0 / 1024}
			a, b := make([]uint8, (n+7)/8), make([]uint8, (n+7)/8)
			scanHead(hq, gp, tau, w, &par, a, n)
			scanHeadGo(hq, gp, tau, w, &par, b, 0, n)
			for i := range a {
				if a[i] != b[i] {
					t.Fatalf("pairs %d n %d block %d: kernel %08b, portable %08b", pairs, n, i, a[i], b[i])
				}
			}
		}
	}
	recs := make([]headRec, 50)
	for i := range recs {
		for j := range recs[i].q {
			recs[i].q[j] = int8(r.IntN(255) - 127)
		}
		recs[i].tau, recs[i].w = float32(r.IntN(64)), float32(r.IntN(64))
	}
	for k := 8; k <= headDims; k += 8 {
		gs := make([]float32, k)
		for i := range gs {
			gs[i] = float32(r.IntN(9) - 4)
		}
		for n := range 30 {
			idx := make([]int32, n)
			for j := range idx {
				idx[j] = int32(r.IntN(len(recs)))
			}
			par := [4]float32{float32(r.IntN(3)), float32(r.IntN(3))}
			a, b := make([]float32, n), make([]float32, n)
			pass2(recs, idx, gs, &par, a)
			pass2Go(recs, idx, gs, &par, b)
			for j := range a {
				if a[j] != b[j] {
					t.Fatalf("k %d n %d: pass 2 kernel %v, portable %v", k, n, a[j], b[j])
				}
			}
		}
	}
}

// TestPortableSearch runs bounded searches with the portable kernels (as
// on a machine without AVX2) against the exact scan.
func TestPortableSearch(t *testing.T) {
	defer func() { useAVX2 = hasAVX2 }()
	for _, avx := range []bool{false, true} {
		useAVX2 = avx && hasAVX2
		r := rand.New(rand.NewPCG(21, 1))
		g := newLowRank(r, 512, 0.27)
		x := New(512, WithSegmentSize(100))
		x.small, x.basisMin = 0, 64
		var pts []semcache.Point
		for i := range 700 {
			v := g.next()
			if i%3 == 0 && i > 0 {
				v = near(r, pts[r.IntN(len(pts))].Vector, 0.9+0.09*r.Float64())
			}
			pts = append(pts, point(uint64(i+1), "A", v, t0.Add(time.Hour)))
		}
		if err := x.Upsert(context.Background(), pts...); err != nil {
			t.Fatal(err)
		}
		for qi := range 60 {
			q := g.next()
			if qi%2 == 0 {
				q = near(r, pts[r.IntN(len(pts))].Vector, 0.85+0.15*r.Float64())
			}
			for _, th := range []float32{-1, 0.5, 0.7, 0.85, 0.95} {
				mustSearch(t, x, "A", q, th, t0)
			}
		}
	}
}

// TestExtremeVectors mixes points of huge norm (no head bound: always
// rescored; kept out of the basis's sample) into a bounded scope and
// searches with a zero query, huge queries and ordinary ones.
func TestExtremeVectors(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 4))
	const dim = 64
	g := newLowRank(r, dim, 0.5)
	x := New(dim, WithSegmentSize(64))
	x.small, x.basisMin = 0, 64
	var pts []semcache.Point
	for i := range 300 {
		v := g.next()
		if i%50 == 7 {
			for j := range v {
				v[j] *= 1e17 // |v|² > maxNorm2
			}
		}
		pts = append(pts, point(uint64(i+1), "A", v, t0.Add(time.Hour)))
	}
	if err := x.Upsert(context.Background(), pts...); err != nil {
		t.Fatal(err)
	}
	huge := g.next()
	for j := range huge {
		huge[j] *= 1e16
	}
	for _, q := range [][]float32{make([]float32, dim), huge, g.next(), pts[7].Vector} {
		for _, th := range []float32{-1, 0, 0.5, 0.9} {
			mustSearch(t, x, "A", q, th, t0)
		}
	}
}
