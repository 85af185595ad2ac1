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
	for range 12 {
		for j := 1; j < k; j++ {
			v := basis[j]
			for i := range d {
				row := cov[i*d : i*d+d]
				var s float64
				for l, f := range row {
					s += f * v[l]
				}
				tmp[i] = s
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
// rounding) are computed per point in float64 and rounded up with a
// relative and an absolute nudge far above float64 error; un >= |u| per
// query likewise. |g| <= |q|·(1+1e-3) for any B of near-unit rows, so
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

// basisRows turns float64 rows into the k×dim float32 matrix a view keeps;
// missing rows stay zero (a zero row only loosens the bound).
func basisRows(rows [][]float64, k, dim int) []float32 {
	b := make([]float32, k*dim)
	for j, row := range rows[:min(k, len(rows))] {
		for i, f := range row {
			b[j*dim+i] = float32(f)
		}
	}
	return b
}

// encodeHead writes x's head coordinates h = float32(Bx) and returns tau
// and sig (see bound.go) for the basis B (k rows of dim).
func encodeHead(h []float32, x, basis []float32, slack float64) (tau, sig float32) {
	dim, k := len(x), len(h)
	var xx float64
	for _, f := range x {
		xx += float64(f) * float64(f)
	}
	for j := range k {
		row := basis[j*dim : (j+1)*dim]
		var s float64
		for i, f := range x {
			s += float64(f) * float64(row[i])
		}
		h[j] = float32(s)
	}
	// t = x - Bᵀh, in float64 (its error is far below the absolute nudge).
	t := make([]float64, dim)
	for i, f := range x {
		t[i] = float64(f)
	}
	for j := range k {
		hj := float64(h[j])
		if hj == 0 {
			continue
		}
		row := basis[j*dim : (j+1)*dim]
		for i := range t {
			t[i] -= hj * float64(row[i])
		}
	}
	var tt, ww float64
	for _, f := range t {
		tt += f * f
	}
	for j := range k {
		row := basis[j*dim : (j+1)*dim]
		var s float64
		for i, f := range t {
			s += f * float64(row[i])
		}
		ww += s * s
	}
	tau = up(math.Sqrt(tt)*(1+1e-6) + 1e-9)
	eps := math.Sqrt(ww)*(1+1e-6) + 1e-9
	xn := math.Sqrt(xx) * (1 + 1e-6)
	sig = up(eps*(1+1e-3) + slack*xn)
	return tau, sig
}

// prepareHead fills g = float32(Bq) and returns un >= |q - Bᵀg|.
func prepareHead(g []float32, u []float64, q, basis []float32) (un float32) {
	dim, k := len(q), len(g)
	for i, f := range q {
		u[i] = float64(f)
	}
	for j := range k {
		row := basis[j*dim : (j+1)*dim]
		var s float64
		for i, f := range q {
			s += float64(f) * float64(row[i])
		}
		g[j] = float32(s)
		gj := float64(g[j])
		for i := range u {
			u[i] -= gj * float64(row[i])
		}
	}
	var uu float64
	for _, f := range u {
		uu += f * f
	}
	return up(math.Sqrt(uu)*(1+1e-6) + 1e-9)
}

// up rounds f up to a float32.
func up(f float64) float32 {
	r := float32(f)
	if float64(r) < f {
		r = math.Nextafter32(r, float32(math.Inf(1)))
	}
	return r
}
