package vecindex

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/viterin/vek/vek32"
)

// TestHeadBoundHolds checks the head bound against the float32 dot product
// the exact scan computes, point by point, on a learnt basis and on
// adversarial inputs: points and queries inside the basis's span (tail
// near zero), queries equal to points, vectors far from unit length.
func TestHeadBoundHolds(t *testing.T) {
	for _, dim := range []int{7, 64, 512} {
		r := rand.New(rand.NewPCG(11, uint64(dim)))
		g := newLowRank(r, dim, 0.5)
		var sample [][]float32
		for range 300 {
			sample = append(sample, g.next())
		}
		k, k1 := min(headDims, dim), min(head1Dims, dim)
		centre := unit(sample[0], nil)
		hb := newHeadBasis(principal(sample, centre, k), k, k1, dim)
		hb.fitQuant(sample[:50]) // a narrow fit: some points are clamped
		slack := headSlack(dim)
		inSpan := func(scale float32) []float32 {
			v := make([]float32, dim)
			for j := range k {
				c := float32(r.NormFloat64())
				for i := range v {
					v[i] += c * hb.b[j*dim+i]
				}
			}
			return vek32.MulNumber(normalise(v), scale)
		}
		var pts [][]float32
		for i := range 400 {
			switch i % 4 {
			case 0:
				pts = append(pts, g.next())
			case 1:
				pts = append(pts, inSpan(1))
			case 2:
				pts = append(pts, vek32.MulNumber(g.next(), float32(r.ExpFloat64()*3)))
			default:
				pts = append(pts, randomUnit(r, dim))
			}
		}
		n := len(pts)
		np := (n + 31) &^ 31 // whole blocks of 32, zero-padded
		kp, k1p := (k+7)&^7, (k1+1)&^1
		recs := make([]headRec, n)
		hq1 := make([]int8, np*k1p)
		tau1s, w1s := make([]float32, np), make([]float32, np)
		for i, p := range pts {
			recs[i].tau, recs[i].w, tau1s[i], w1s[i] = encodeHead(recs[i].q[:kp], hq1[blockOff(i, k1p):], p, hb, slack)
		}
		gq := make([]float32, k)
		gs := make([]float32, kp)
		gp := make([]int32, k1p/2)
		mask := make([]uint8, 4)
		for qi := range 100 {
			q := pts[r.IntN(len(pts))]
			switch qi % 3 {
			case 1:
				q = inSpan(float32(0.5 + r.Float64()))
			case 2:
				q = near(r, q, 0.95)
			}
			var qq float64
			for _, f := range q {
				qq += float64(f) * float64(f)
			}
			qh := prepareHead(gq, gs, gp, q, qq, hb)
			for i, p := range pts {
				s := vek32.Dot(q, p)
				// Pass 2 and pass 1, at a bar equal to the score, must keep
				// the point, with either kernel.
				for _, avx := range []bool{false, true} {
					useAVX2 = avx && hasAVX2
					var ub [1]float32
					pass2(recs, []int32{int32(i)}, qh.gs[:kp], &[4]float32{qh.un, qh.qm}, ub[:])
					if ub[0] < qh.bar(s, false) {
						t.Fatalf("dim %d avx %v: score %v above its head bound %v + %v", dim, avx, s, ub[0], qh.c)
					}
					par := [4]float32{qh.un1, qh.qm, qh.bar(s, true), qh.lam}
					b := i &^ 31
					scanHead(hq1[b*k1p:], qh.gp, tau1s[b:], w1s[b:], &par, mask, 32)
					if mask[(i-b)/8]&(1<<(i&7)) == 0 {
						t.Fatalf("dim %d avx %v: pass 1 drops a point scoring %v", dim, avx, s)
					}
				}
				useAVX2 = hasAVX2
			}
		}
	}
}

// TestIntegerQuery checks pass 1's integer query against its error term
// E₁ at the worst point for it: q_j = ±127 along the rounding errors.
func TestIntegerQuery(t *testing.T) {
	const dim = 512
	r := rand.New(rand.NewPCG(12, 1))
	g := newLowRank(r, dim, 0.27)
	var sample [][]float32
	for range 300 {
		sample = append(sample, g.next())
	}
	k, k1 := min(headDims, dim), min(head1Dims, dim)
	hb := newHeadBasis(principal(sample, unit(sample[0], nil), k), k, k1, dim)
	hb.fitQuant(sample)
	gq, gs, gp := make([]float32, k), make([]float32, k), make([]int32, (k1+1)/2)
	for range 200 {
		q := vek32.MulNumber(g.next(), float32(r.ExpFloat64()))
		qh := prepareHead(gq, gs, gp, q, float64(vek32.Dot(q, q)), hb)
		var worst float64
		for j := range k1 {
			a := float64(gq[j]) * float64(hb.step[j])
			G := float64(int16(qh.gp[j>>1] >> (16 * (j & 1))))
			worst += 127 * math.Abs(a-float64(qh.lam)*G)
		}
		if worst > qh.e1 || qh.e1 > 1e-3*float64(qh.qm) {
			t.Fatalf("integer query error %v, E₁ %v (|g| %v)", worst, qh.e1, qh.qm)
		}
	}
}
