package vecindex

import (
	"math"
	"math/rand/v2"
	"time"

	"github.com/tollgate/tollgate/pkg/semcache"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func normalise(v []float32) []float32 {
	var ss float64
	for _, f := range v {
		ss += float64(f) * float64(f)
	}
	inv := float32(1 / math.Sqrt(ss))
	for i := range v {
		v[i] *= inv
	}
	return v
}

// randomUnit is an isotropic unit vector.
func randomUnit(r *rand.Rand, dim int) []float32 {
	v := make([]float32, dim)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return normalise(v)
}

// realistic makes vectors shaped like sentence embeddings: a common
// direction plus noise, so that unrelated pairs sit near cosine 0.7.
type realistic struct {
	r    *rand.Rand
	mean []float32
}

func newRealistic(r *rand.Rand, dim int) *realistic {
	return &realistic{r: r, mean: randomUnit(r, dim)}
}

func (g *realistic) next() []float32 {
	n := randomUnit(g.r, len(g.mean))
	v := make([]float32, len(n))
	a, b := float32(math.Sqrt(0.7)), float32(math.Sqrt(0.3))
	for i := range v {
		v[i] = a*g.mean[i] + b*n[i]
	}
	return normalise(v)
}

// lowRank makes vectors shaped like USE-lite's: a common direction (share
// mean² of the energy) plus noise whose variance along the j-th axis decays
// as (j+8)⁻², which matches the spectrum measured on USE-lite embeddings of
// varied prompts (the top 16 directions carry 60% of the residual, the top
// 64 90%).
type lowRank struct {
	r     *rand.Rand
	mean  []float32
	a     float32
	sigma []float32
}

func newLowRank(r *rand.Rand, dim int, share float64) *lowRank {
	g := &lowRank{r: r, mean: randomUnit(r, dim), a: float32(math.Sqrt(share)), sigma: make([]float32, dim)}
	perm := r.Perm(dim)
	var ss float64
	for j := range dim {
		ss += 1 / float64((j+9)*(j+9))
	}
	for j, p := range perm {
		g.sigma[p] = float32(math.Sqrt((1 - share) / ss / float64((j+9)*(j+9))))
	}
	return g
}

func (g *lowRank) next() []float32 {
	v := make([]float32, len(g.mean))
	for i := range v {
		v[i] = g.a*g.mean[i] + g.sigma[i]*float32(g.r.NormFloat64())
	}
	return normalise(v)
}

// near returns a unit vector at cosine about cos to v.
func near(r *rand.Rand, v []float32, cos float64) []float32 {
	n := randomUnit(r, len(v))
	// Remove n's component along v, then mix.
	var d float32
	for i := range v {
		d += n[i] * v[i]
	}
	for i := range n {
		n[i] -= d * v[i]
	}
	normalise(n)
	s := float32(math.Sqrt(1 - cos*cos))
	out := make([]float32, len(v))
	for i := range out {
		out[i] = float32(cos)*v[i] + s*n[i]
	}
	return normalise(out)
}

func point(id uint64, scope string, vec []float32, exp time.Time) semcache.Point {
	return semcache.Point{ID: id, Scope: scope, Tenant: "t" + scope, Model: "m", Vector: vec, ExpiresAt: exp}
}
