package vecindex

import (
	"math"
	"math/rand/v2"
)

// principal returns k orthonormal rows (float64): the first is centre, the
// others approximate the top principal directions of the sample's residuals
// off centre, found by subspace iteration on their covariance. Exactness
// never depends on how good the directions are, only speed does.
func principal(sample [][]float32, centre []float32, k int) [][]float64 {
	d := len(centre)
	k = min(k, d)
	c := make([]float64, d)
	for i, f := range centre {
		c[i] = float64(f)
	}
	// Covariance of the residuals r = x - (x·c)c.
	cov := make([]float64, d*d)
	r := make([]float64, d)
	for _, x := range sample {
		var a float64
		for i, f := range x {
			a += float64(f) * c[i]
		}
		for i, f := range x {
			r[i] = float64(f) - a*c[i]
		}
		for i := range d {
			ri := r[i]
			if ri == 0 {
				continue
			}
			row := cov[i*d : i*d+d]
			for j := i; j < d; j++ {
				row[j] += ri * r[j]
			}
		}
	}
	for i := range d {
		for j := i + 1; j < d; j++ {
			cov[j*d+i] = cov[i*d+j]
		}
	}
	basis := make([][]float64, k)
	basis[0] = c
	rng := rand.New(rand.NewPCG(1, uint64(d)))
	for j := 1; j < k; j++ {
		basis[j] = make([]float64, d)
		for i := range d {
			basis[j][i] = rng.NormFloat64()
		}
	}
	orthonormalise(basis)
	tmp := make([]float64, d)
	for range 8 {
		for j := 1; j < k; j++ {
			v := basis[j]
			for i := range d {
				tmp[i] = dot64(cov[i*d:i*d+d], v)
			}
			copy(v, tmp)
		}
		orthonormalise(basis)
	}
	return basis
}

// orthonormalise runs modified Gram-Schmidt twice over rows; the first row
// is only normalised. A row that vanishes is replaced by a unit vector
// orthogonal to the others where one can be found, else left zero.
func orthonormalise(rows [][]float64) {
	for range 2 {
		for j, v := range rows {
			for _, u := range rows[:j] {
				var dot float64
				for i := range v {
					dot += v[i] * u[i]
				}
				for i := range v {
					v[i] -= dot * u[i]
				}
			}
			var ss float64
			for _, f := range v {
				ss += f * f
			}
			if ss == 0 {
				continue
			}
			inv := 1 / math.Sqrt(ss)
			for i := range v {
				v[i] *= inv
			}
		}
	}
}

// The head bound. Let B be the view's basis exactly as stored (k float32
// rows, orthonormal up to float32 rounding; row 0 the centre). For a point
// x, h = float32(Bx) is stored and t = x - Bᵀh (in reals) is its tail, so
// x = Bᵀh + t exactly whatever rounding made h and B. For a query q, with
// g = float32(Bq) and u = q - Bᵀg (in reals):
//
//	q·x = (Bq)·h + q·t = (Bq)·h + g·(Bt) + u·t
//	    <= g·h + |Bq - g|·|h| + |g|·|Bt| + |u|·|t|
//
// tau >= |t| and eps >= |Bt| (tiny: t is orthogonal to the rows up to
// rounding) are computed per point in float64 (see project) and rounded up
// with a relative and an absolute nudge far above float64 error; un >= |u|
// per query likewise. |g| <= |q|·(1+1e-3) for any B of near-unit rows, so
// |g|·eps <= qn·eps·(1+1e-3). What remains is rounding, all relative to
// |q|·|x|: |Bq - g|·|h| (2⁻²⁴), the float32 sum g·h (k·2⁻²³), the float32
// evaluation of the bound itself, and the float32 rounding of the rescore
// that the exact scan also computes (at most dim·2⁻²⁴ above the real dot).
// headSlack(dim)·|x| covers them all several times over, so with
// sig = eps·(1+1e-3) + headSlack·|x|:
//
//	fl(q·x) <= g·h + un·tau + qn·sig.

// headSlack covers, relative to |q|·|x|, the float32 rounding of the exact
// dot product a rescore computes (at most dim·2⁻²⁴), of the head's float32
// sum and of the query's rounded head coordinates, with room to spare.
func headSlack(dim int) float64 { return 1e-4 + 4*float64(dim)/(1<<24) }

// headBasis is a view's basis B (k rows of dim, row-major) as stored, the
// same values in float64, and their Gram matrix G = BBᵀ (k×k, float64).
type headBasis struct {
	b    []float32
	b64  []float64
	gram []float64
	k    int
}

// newHeadBasis rounds rows to float32 into a k×dim basis; missing rows stay
// zero (a zero row only loosens the bound).
func newHeadBasis(rows [][]float64, k, dim int) *headBasis {
	hb := &headBasis{b: make([]float32, k*dim), b64: make([]float64, k*dim), gram: make([]float64, k*k), k: k}
	for j, row := range rows[:min(k, len(rows))] {
		for i, f := range row {
			hb.b[j*dim+i] = float32(f)
			hb.b64[j*dim+i] = float64(float32(f))
		}
	}
	for j := range k {
		for l := range k {
			hb.gram[j*k+l] = dot64(hb.b64[j*dim:(j+1)*dim], hb.b64[l*dim:(l+1)*dim])
		}
	}
	return hb
}

func dot64(a, b []float64) float64 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

func dot64f(a []float32, b []float64) float64 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += float64(a[i]) * b[i]
		s1 += float64(a[i+1]) * b[i+1]
		s2 += float64(a[i+2]) * b[i+2]
		s3 += float64(a[i+3]) * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += float64(a[i]) * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// project computes y = Bv (float64, into y), h = float32(y) (into h), and
// returns tau >= |v - Bᵀh| and eps >= |B(v - Bᵀh)|, from the identities
//
//	B(v - Bᵀh) = y - Gh,   |v - Bᵀh|² = |v|² - 2h·y + hᵀGh.
//
// Every sum is float64 with at most dim+k terms each bounded by |v|² or
// |v|·|h|: their rounding is below 1e-13·|v|², which the absolute nudges
// (1e-12·|v|² inside tau's square root, 1e-9·(1+|v|) on eps) cover.
func (hb *headBasis) project(h []float32, y []float64, v []float32, vv float64) (tau, eps float64) {
	dim, k := len(v), hb.k
	for j := range k {
		y[j] = dot64f(v, hb.b64[j*dim:(j+1)*dim])
		h[j] = float32(y[j])
	}
	var hy, hgh, ee float64
	for j := range k {
		var gh float64
		for l := range k {
			gh += hb.gram[j*k+l] * float64(h[l])
		}
		hy += float64(h[j]) * y[j]
		hgh += float64(h[j]) * gh
		e := y[j] - gh
		ee += e * e
	}
	tt := max(0, vv-2*hy+hgh) + 1e-12*vv
	return math.Sqrt(tt) * (1 + 1e-6), math.Sqrt(ee)*(1+1e-6) + 1e-9*(1+math.Sqrt(vv))
}

// encodeHead writes x's head coordinates h and returns tau and sig (see
// the head bound above).
func encodeHead(h []float32, x []float32, hb *headBasis, slack float64) (tau, sig float32) {
	var xx float64
	for _, f := range x {
		xx += float64(f) * float64(f)
	}
	var buf [64]float64
	y := buf[:0]
	if hb.k > len(buf) {
		y = make([]float64, hb.k)
	} else {
		y = buf[:hb.k]
	}
	t, eps := hb.project(h, y, x, xx)
	xn := math.Sqrt(xx) * (1 + 1e-6)
	return up(t), up(eps*(1+1e-3) + slack*xn)
}

// prepareHead fills g = float32(Bq) and returns un >= |q - Bᵀg|.
func prepareHead(g []float32, y []float64, q []float32, hb *headBasis) (un float32) {
	var qq float64
	for _, f := range q {
		qq += float64(f) * float64(f)
	}
	t, _ := hb.project(g, y, q, qq)
	return up(t)
}

// up rounds f up to a float32.
func up(f float64) float32 {
	r := float32(f)
	if float64(r) < f {
		r = math.Nextafter32(r, float32(math.Inf(1)))
	}
	return r
}
