package vecindex

import (
	"math"
	"math/rand/v2"

	"github.com/viterin/vek/vek32"
)

// principal returns k orthonormal rows (float64): the first is centre, the
// others approximate the top principal directions of the sample's residuals
// off centre, found by subspace iteration on their covariance, in float32
// (vek32's kernels). Exactness never depends on how good the directions
// are, only speed does.
func principal(sample [][]float32, centre []float32, k int) [][]float64 {
	d := len(centre)
	k = min(k, d)
	ns := len(sample)
	// Residuals r = x - (x·c)c of the sample scaled to unit length (only
	// directions matter, and float32 sums of squares overflow past 1e19),
	// stored transposed: rt[i*ns+s].
	rt := make([]float32, d*ns)
	xu := make([]float32, d)
	for s, x := range sample {
		x = unit(x, xu)
		a := vek32.Dot(x, centre)
		for i, f := range x {
			rt[i*ns+s] = f - a*centre[i]
		}
	}
	cov := make([]float32, d*d)
	for i := range d {
		for j := i; j < d; j++ {
			v := vek32.Dot(rt[i*ns:(i+1)*ns], rt[j*ns:(j+1)*ns])
			cov[i*d+j], cov[j*d+i] = v, v
		}
	}
	b32 := make([][]float32, k)
	b32[0] = append([]float32(nil), centre...)
	rng := rand.New(rand.NewPCG(1, uint64(d)))
	for j := 1; j < k; j++ {
		b32[j] = make([]float32, d)
		for i := range d {
			b32[j][i] = float32(rng.NormFloat64())
		}
	}
	orthonormalise32(b32)
	tmp := make([]float32, d)
	for range 8 {
		for _, v := range b32[1:] {
			for i := range d {
				tmp[i] = vek32.Dot(cov[i*d:i*d+d], v)
			}
			copy(v, tmp)
		}
		orthonormalise32(b32)
	}
	basis := make([][]float64, k)
	for j, v := range b32 {
		basis[j] = f64(v)
		for _, f := range basis[j] {
			if math.IsNaN(f) || math.IsInf(f, 0) {
				return [][]float64{f64(centre)}
			}
		}
	}
	orthonormalise(basis)
	return basis
}

// orthonormalise32 is orthonormalise in float32, for the iterations.
func orthonormalise32(rows [][]float32) {
	tmp := make([]float32, len(rows[0]))
	for range 2 {
		for j, v := range rows {
			for _, u := range rows[:j] {
				vek32.Sub_Inplace(v, vek32.MulNumber_Into(tmp, u, vek32.Dot(v, u)))
			}
			if n := vek32.Norm(v); n > 0 {
				vek32.MulNumber_Inplace(v, 1/n)
			}
		}
	}
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
// x, h = fl(Bx) (float32 dot products) and t = x - Bᵀh (in reals) is its
// tail, so x = Bᵀh + t exactly whatever rounding made h and B. For a query
// q, with g = fl(Bq) and u = q - Bᵀg (in reals):
//
//	q·x = (Bq)·h + q·t = (Bq)·h + g·(Bt) + u·t
//	    <= g·h + |Bq - g|·|h| + |g|·|Bt| + |u|·|t|.
//
// A float32 dot product of dim terms, in any order, fused or not, is within
// γ·|a|·|b| of the real one (γ = dim·2⁻²⁴/(1-dim·2⁻²⁴)), so each coordinate
// of Bx - h is within δ = γ·rmax·|x| (rmax the largest row norm) and
// |Bq - g| <= √k·γ·rmax·|q|. With ν >= |G - J| (G = BBᵀ, J the identity on
// the non-zero rows, whose h coordinates are the only non-zero ones):
//
//	|t|² = |x|² - 2h·Bx + hᵀGh <= |x|² - |h|² + ν|h|² + 2δ·Σ|h_j|,
//	|Bt| = |(Bx - h) - (G - J)h| <= √k·δ + ν|h|,
//
// evaluated in float64 (see project) with a relative and an absolute nudge
// far above float64 error; un >= |u| per query likewise. What remains is
// float32 rounding, all relative to |q|·|x|: the sum g·h, the evaluation of
// the bound itself, and the rescore that the exact scan also computes (at
// most dim·2⁻²⁴ above the real dot); headSlack(dim)·|x| covers them all
// several times over. Restricting B to its first m rows gives the same
// bound with m for k.

// headSlack covers, relative to |q|·|x|, the float32 rounding of the exact
// dot product a rescore computes (at most dim·2⁻²⁴) and of the bound's own
// sums, with room to spare.
func headSlack(dim int) float64 { return 1e-4 + 4*float64(dim)/(1<<24) }

// headBasis is a view's basis B (k rows of dim, row-major) as stored, with
// the constants of the head bound for its first k1 rows (pass 1) and for
// all k (pass 2). A point's head is stored quantised to int8: coordinate j
// as off[j] + step[j]·q with q in [-127, 127] (see the quantised head bound
// below).
type headBasis struct {
	b           []float32
	k, k1       int
	gamma       float64   // γ·rmax (see the head bound)
	nu1, nu     float64   // ν over the first k1 rows, over all k
	off, step   []float32 // k each
	off1N, offN float64   // |off| over the first k1, over all k
}

// newHeadBasis rounds rows to float32 into a k×dim basis; missing rows are
// zero (not stored: a new scope's basis is its centre alone) and their
// coordinates always 0. Every coordinate is quantised over [-1, 1] until
// fitQuant sees a sample.
func newHeadBasis(rows [][]float64, k, k1, dim int) *headBasis {
	r := min(k, len(rows))
	hb := &headBasis{b: make([]float32, r*dim), k: k, k1: k1, off: make([]float32, k), step: make([]float32, k)}
	for j, row := range rows[:r] {
		for i, f := range row {
			hb.b[j*dim+i] = float32(f)
		}
	}
	// G in float64 (exact products of float32 values; the sums' rounding,
	// under 1e-13, is covered by the nudge on ν). Missing rows' entries
	// are 0.
	gram := make([]float64, k*k)
	var rr float64
	for j := range r {
		for l := j; l < r; l++ {
			var g float64
			for i, f := range hb.b[j*dim : (j+1)*dim] {
				g += float64(f) * float64(hb.b[l*dim+i])
			}
			gram[j*k+l], gram[l*k+j] = g, g
		}
		rr = max(rr, gram[j*k+j])
	}
	var ss float64
	for j := range k {
		for l := range k {
			d := gram[j*k+l]
			if j == l && d != 0 {
				d -= 1
			}
			ss += d * d
		}
		if j == k1-1 {
			hb.nu1 = math.Sqrt(ss)*(1+1e-6) + 1e-12
		}
	}
	hb.nu = math.Sqrt(ss)*(1+1e-6) + 1e-12
	u := float64(dim) / (1 << 24)
	hb.gamma = u / (1 - u) * math.Sqrt(rr) * (1 + 1e-6)
	for j := range k {
		hb.step[j] = 1.0 / 127
	}
	return hb
}

// fitQuant sets each quantised coordinate's range to the sample's, with a
// fifth to spare on either side. Points outside are clamped; exactness does
// not depend on the ranges, only speed does.
func (hb *headBasis) fitQuant(sample [][]float32) {
	if len(sample) == 0 {
		return
	}
	dim := len(sample[0])
	r := len(hb.b) / dim
	lo, hi := make([]float64, hb.k), make([]float64, hb.k)
	for n, x := range sample {
		for j := range hb.k {
			var y float64
			if j < r {
				y = float64(vek32.Dot(x, hb.b[j*dim:(j+1)*dim]))
			}
			if n == 0 || y < lo[j] {
				lo[j] = y
			}
			if n == 0 || y > hi[j] {
				hi[j] = y
			}
		}
	}
	var oo float64
	for j := range hb.k {
		hb.off[j] = float32((lo[j] + hi[j]) / 2)
		s := float32((hi[j] - lo[j]) / 2 * 1.2 / 127)
		if !(s >= 1e-30) || math.IsInf(float64(s), 0) || math.IsNaN(float64(hb.off[j])) || math.IsInf(float64(hb.off[j]), 0) {
			hb.off[j], s = 0, 1.0/127
		}
		hb.step[j] = s
		oo += float64(hb.off[j]) * float64(hb.off[j])
		if j == hb.k1-1 {
			hb.off1N = math.Sqrt(oo)
		}
	}
	hb.offN = math.Sqrt(oo)
}

// headPart is the head bound's per-vector terms for the first m rows.
type headPart struct {
	tau float64 // >= |t|
	eps float64 // >= |Bt| + √m·γ·rmax·|h|: with |q| it bounds |g||Bt| + |Bq-g||h|
}

// project sets h = fl(Bv) and returns the head bound's terms for the first
// k1 rows and for all k (see the head bound); vv is |v|² in float64. The
// float64 sums (at most dim+k terms bounded by |v|²) round by under
// 1e-13·|v|², which the absolute nudges (1e-12·|v|² inside tau's square
// root, 1e-9·(1+|v|) on eps) cover.
func (hb *headBasis) project(h []float32, v []float32, vv float64) (p1, p headPart) {
	dim, k := len(v), hb.k
	r := len(hb.b) / dim
	for j := range k {
		h[j] = 0
		if j < r {
			h[j] = vek32.Dot(v, hb.b[j*dim:(j+1)*dim])
		}
	}
	vn := math.Sqrt(vv)
	delta := hb.gamma * vn
	var hh, h1 float64
	fin := func(m int, nu float64) headPart {
		hn := math.Sqrt(hh)
		tt := max(0, vv-hh+nu*hh+2*delta*h1) + 1e-12*vv
		sm := math.Sqrt(float64(m))
		return headPart{
			tau: math.Sqrt(tt) * (1 + 1e-6),
			eps: (sm*delta+nu*hn+sm*hb.gamma*hn)*(1+1e-6) + 1e-9*(1+vn),
		}
	}
	for j := range k {
		f := float64(h[j])
		hh += f * f
		h1 += math.Abs(f)
		if j == hb.k1-1 {
			p1 = fin(hb.k1, hb.nu1)
		}
	}
	return p1, fin(k, hb.nu)
}

// The quantised head bound. For m = k1 (pass 1) or m = k (pass 2), the
// head bound restricted to the first m rows Bₘ reads
//
//	fl(q·x) <= gₘ·hₘ + unₘ·tauₘ + qn·sigₘ
//
// with tauₘ, sigₘ and unₘ those of Bₘ. Let ĥ be hₘ quantised
// (ĥ_j = off_j + step_j·q_j, in reals) and e >= |hₘ - ĥ|; then
// gₘ·hₘ <= gₘ·ĥ + |gₘ|·e, and gₘ·ĥ = C + Σ_j (g_j·step_j)·q_j with the
// per-query constant C = Σ_j g_j·off_j. Search computes the sum in float32
// with g_j·step_j rounded to float32 (relative error at most (m+1)·2⁻²⁴ of
// Σ|g_j·step_j·q_j| <= |gₘ|·|step∘q|, in any order, fused or not) and
// compares
//
//	F = fl(Σ_j fl(g_j·step_j)·q_j + unₘ·tauₘ + qm·w)  >=  fl↓(s - C)
//
// for a bar s, with qm = max(qn, |g|) and, per point,
//
//	w = (sigₘ + e·(1+1e-4) + 1e-5·(|step∘q| + |off|))·(1+1e-5),
//
// whose 1e-5 terms cover the float32 sum's rounding, C's (float64, against
// |gₘ|·|offₘ|), and the rounding of the three-term float32 evaluation (at
// most 2⁻²³ of its terms' magnitudes: sigₘ's headSlack covers unₘ·tauₘ's).
// So fl(q·x) <= F + C, and a point whose exact score reaches s is never
// dropped.
//
// Pass 1 computes its sum exactly in integers instead: g_j·step_j = a_j is
// rounded to λ·G_j with G_j an int16 (λ = max|a_j|/32767), and Σ_j G_j·q_j
// is summed in int32; it compares fl(λ·acc + un₁·tau₁ + qm·w₁) with
// fl↓(s - C₁ - E₁), where E₁ = 127·Σ_j |a_j - λ·G_j| (rounded up) bounds
// the query's rounding. The float32 conversion and product round by at most
// 2⁻²³ of |λ·acc| <= |g₁|·|step∘q| + E₁, which w₁'s 1e-5 term and E₁'s
// nudge cover.

// encodeHead writes x's quantised head: all k coordinates into q (padded
// with zeros to its length) and the first k1 into q1[pairOff(j)]; it
// returns tau and w of pass 2 and of pass 1. A point of huge or non-finite
// norm gets infinite bounds: it is always rescored.
func encodeHead(q, q1 []int8, x []float32, hb *headBasis, slack float64) (tau, w, tau1, w1 float32) {
	var xx float64
	for _, f := range x {
		xx += float64(f) * float64(f)
	}
	clear(q)
	if !(xx <= maxNorm2) {
		// tau 0, not ∞: un may be 0 (a zero query), and 0·∞ is NaN.
		inf := float32(math.Inf(1))
		return 0, inf, 0, inf
	}
	var hbuf [headDims]float32
	h := hbuf[:0]
	if hb.k > len(hbuf) {
		h = make([]float32, hb.k)
	} else {
		h = hbuf[:hb.k]
	}
	p1, p := hb.project(h, x, xx)
	xn := math.Sqrt(xx) * (1 + 1e-6)
	var ee, sq, ee1, sq1 float64
	for j := range hb.k {
		o, s := float64(hb.off[j]), float64(hb.step[j])
		c := math.Round((float64(h[j]) - o) / s)
		if !(c >= -127) { // NaN too
			c = -127
		}
		c = min(c, 127)
		q[j] = int8(c)
		d := float64(h[j]) - (o + s*c)
		ee += d * d
		sq += s * c * s * c
		if j < hb.k1 {
			q1[pairOff(j)] = int8(c)
			ee1, sq1 = ee, sq
		}
	}
	wOf := func(eps, ee, sq, offN float64) float32 {
		sig := eps*(1+1e-3) + slack*xn
		e := math.Sqrt(ee) * (1 + 1e-6)
		return up((sig + e*(1+1e-4) + 1e-5*(math.Sqrt(sq)+offN)) * (1 + 1e-5))
	}
	return up(p.tau), wOf(p.eps, ee, sq, hb.offN), up(p1.tau), wOf(p1.eps, ee1, sq1, hb.off1N)
}

// queryHead is what the quantised head bounds need of a query.
type queryHead struct {
	un, un1, qn, qm float32
	c, c1           float64   // C over all k coordinates, over the first k1
	gs              []float32 // fl(g_j·step_j), zero-padded
	gp              []int32   // pass 1's G_j, two a word (see scanHeadGo)
	lam             float32   // λ
	e1              float64   // E₁
}

// maxNorm2 is the largest squared norm the head bounds take: below it no
// float32 dot product of a query and a point overflows.
const maxNorm2 = 1e30

// bar is fl↓(s - C): a point of pass 2 (pass 1 when first) can score s
// only if its F reaches it.
func (qh *queryHead) bar(s float32, first bool) float32 {
	if first {
		return lower(float64(s) - qh.c1 - qh.e1)
	}
	return lower(float64(s) - qh.c)
}

// prepareHead fills g = fl(Bq) (k of them) and the constants of both
// passes, for a query q of norm² qq <= maxNorm2; gs must have room for
// every stored head coordinate, gp for half the first k1, rounded up.
func prepareHead(g, gs []float32, gp []int32, q []float32, qq float64, hb *headBasis) queryHead {
	p1, p := hb.project(g, q, qq)
	qh := queryHead{un: up(p.tau), un1: up(p1.tau), qn: up(math.Sqrt(qq) * (1 + 1e-6)), gs: gs}
	clear(gs)
	var gg float64
	for j := range hb.k {
		gj := float64(g[j])
		gg += gj * gj
		qh.c += gj * float64(hb.off[j])
		if j == hb.k1-1 {
			qh.c1 = qh.c
		}
		gs[j] = float32(gj * float64(hb.step[j]))
	}
	// qm > 0, so that a point without bounds is never 0·∞ = NaN.
	qh.qm = max(qh.qn, up(math.Sqrt(gg)*(1+1e-6)), 1e-30)

	// Pass 1's integer query.
	var amax float64
	for j := range hb.k1 {
		amax = max(amax, math.Abs(float64(g[j])*float64(hb.step[j])))
	}
	qh.lam = 1
	if amax > 0 {
		qh.lam = up(amax / 32767)
	}
	qh.gp = gp[:(hb.k1+1)/2]
	clear(qh.gp)
	var e float64
	for j := range hb.k1 {
		a := float64(g[j]) * float64(hb.step[j])
		G := min(max(math.Round(a/float64(qh.lam)), -32767), 32767)
		e += math.Abs(a - float64(qh.lam)*G)
		qh.gp[j>>1] |= int32(uint32(uint16(int16(G))) << (16 * (j & 1)))
	}
	qh.e1 = 127*e*(1+1e-5) + 1e-30
	return qh
}

// lower rounds f down to a float32.
func lower(f float64) float32 {
	r := float32(f)
	if float64(r) > f {
		r = math.Nextafter32(r, float32(math.Inf(-1)))
	}
	return r
}

// up rounds f up to a float32.
func up(f float64) float32 {
	r := float32(f)
	if float64(r) < f {
		r = math.Nextafter32(r, float32(math.Inf(1)))
	}
	return r
}

// norm2 is |v|² in float64.
func norm2(v []float32) float64 {
	var ss float64
	for _, f := range v {
		ss += float64(f) * float64(f)
	}
	return ss
}
