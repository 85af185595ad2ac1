package vecindex

import (
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
		k := min(headDims, dim)
		centre := unit(sample[0], nil)
		hb := newHeadBasis(principal(sample, centre, k), k, dim)
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
		heads := make([]float32, len(pts)*k)
		taus, sigs := make([]float32, len(pts)), make([]float32, len(pts))
		for i, p := range pts {
			taus[i], sigs[i] = encodeHead(heads[i*k:(i+1)*k], p, hb, slack)
		}
		gq := make([]float32, k)
		y := make([]float64, k)
		for qi := range 100 {
			q := pts[r.IntN(len(pts))]
			switch qi % 3 {
			case 1:
				q = inSpan(float32(0.5 + r.Float64()))
			case 2:
				q = near(r, q, 0.95)
			}
			un := prepareHead(gq, y, q, hb)
			qn := vek32.Norm(q) * (1 + 1e-6)
			for i, p := range pts {
				ub := vek32.Dot(gq, heads[i*k:(i+1)*k]) + un*taus[i] + qn*sigs[i]
				if s := vek32.Dot(q, p); s > ub {
					t.Fatalf("dim %d: score %v above its head bound %v", dim, s, ub)
				}
			}
		}
	}
}
