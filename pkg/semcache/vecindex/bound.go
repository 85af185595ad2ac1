package vecindex

import (
	"math"
	"math/bits"
)

// The bound. Let c be the scope's centre (unit length) and, for a point x,
// alpha = float32(x·c), r = x - alpha·c (exactly, in reals), s its sign
// pattern and rho >= |r|. For a query q, with beta = q·c and
// p = q - beta·c, every real identity below holds whatever rounding made
// alpha and c:
//
//	q·x = alpha·beta + q·r = alpha·beta + p·r + beta·(c·r)
//
// r lies in the orthant of its signs, and the largest p·r over vectors of
// norm rho in that orthant is rho·|p⁺| where p⁺ keeps the coordinates of p
// whose sign agrees with s (zero elsewhere). So
//
//	q·x <= alpha·beta + rho·sqrt(W),   W = Σ p_i² over agreeing i,
//
// up to beta·(c·r) (c·r = alpha·(1-|c|²) ≈ 1e-7·alpha) and float rounding.
// W is summed from per-query tables, one per code byte, indexed by the
// byte: 64 lookups for 512 dimensions. Rounding (of the exact dot product
// that rescoring computes, at most n·2⁻²⁴·|q||x| ≈ 3e-5·|q||x| for n = 512,
// of W's float32 sum and of alpha·beta) is covered by slack·|q|·(|alpha|+rho)
// with slack = 2e-4, several times the worst case.
const slack = 2e-4

// encode writes x's code against centre and returns alpha and rho (rounded
// up).
func encode(code []uint64, x, centre []float32) (alpha, rho float32) {
	var a float64
	for i, f := range x {
		a += float64(f) * float64(centre[i])
	}
	alpha = float32(a)
	clear(code)
	var ss float64
	for i, f := range x {
		r := float64(f) - float64(alpha)*float64(centre[i])
		ss += r * r
		if r >= 0 {
			code[i>>6] |= 1 << (uint(i) & 63)
		}
	}
	n := math.Sqrt(ss)
	rho = float32(n)
	if float64(rho) < n {
		rho = math.Nextafter32(rho, float32(math.Inf(1)))
	}
	// The sum itself was rounded; a relative nudge covers it.
	rho = math.Nextafter32(rho*(1+1e-6), float32(math.Inf(1)))
	return alpha, rho
}

// unit returns v scaled to unit length (into dst when it has room).
func unit(v []float32, dst []float32) []float32 {
	var ss float64
	for _, f := range v {
		ss += float64(f) * float64(f)
	}
	if dst == nil {
		dst = make([]float32, len(v))
	}
	if ss == 0 {
		copy(dst, v)
		return dst
	}
	inv := 1 / math.Sqrt(ss)
	for i, f := range v {
		dst[i] = float32(float64(f) * inv)
	}
	return dst
}

// unit64 returns v scaled to unit length as float32, or nil when v is zero.
func unit64(v []float64) []float32 {
	var ss float64
	for _, f := range v {
		ss += f * f
	}
	if ss == 0 {
		return nil
	}
	inv := 1 / math.Sqrt(ss)
	out := make([]float32, len(v))
	for i, f := range v {
		out[i] = float32(f * inv)
	}
	return out
}

// scratch is one search's working memory, pooled.
type scratch struct {
	tables []float32 // codeBytes × 256: W contribution of each code byte
	w      []float32 // p_i², padded to whole words
	cands  []cand
	g      []float32 // the query's head coordinates
	gs     []float32 // pass 1's scaled head coordinates
	gp     []int32   // pass 1's integer query
	mask   []uint8   // pass 1's survivors in one segment, a bit each
	idx    []int32   // the same as slots
	out    []float32 // their pass-2 bounds
}

type cand struct {
	ub   float32
	slot int32
}

// prepare fills the tables for query q against centre and returns beta.
func (s *scratch) prepare(q, centre []float32) (beta float32) {
	codeBytes := len(s.w) / 8
	var b float64
	for i, f := range q {
		b += float64(f) * float64(centre[i])
	}
	beta = float32(b)
	var sign [1024]byte // query sign bytes; dimensions past 8192 allocate
	var signs []byte
	if codeBytes > len(sign) {
		signs = make([]byte, codeBytes)
	} else {
		signs = sign[:codeBytes]
		clear(signs)
	}
	clear(s.w)
	for i, f := range q {
		p := float64(f) - b*float64(centre[i])
		s.w[i] = float32(p * p)
		if p >= 0 {
			signs[i>>3] |= 1 << (uint(i) & 7)
		}
	}
	var sub [256]float32 // W of each subset of a byte's 8 coordinates
	for j := range codeBytes {
		w := s.w[j*8 : j*8+8]
		sub[0] = 0
		for m := 1; m < 256; m++ {
			low := m & -m
			sub[m] = sub[m&^low] + w[bits.TrailingZeros(uint(low))]
		}
		t := s.tables[j*256 : j*256+256]
		flip := ^signs[j]
		for b := range 256 {
			// A code bit agrees when it equals the query's sign bit.
			t[b] = sub[byte(b)^flip]
		}
	}
	return beta
}

// agree sums the tables over one code: W for that point.
func agree(tables []float32, code []uint64) float32 {
	var a0, a1, a2, a3 float32
	for j, c := range code {
		t := tables[j*2048 : j*2048+2048 : j*2048+2048]
		a0 += t[c&0xff] + t[256+(c>>8&0xff)]
		a1 += t[512+(c>>16&0xff)] + t[768+(c>>24&0xff)]
		a2 += t[1024+(c>>32&0xff)] + t[1280+(c>>40&0xff)]
		a3 += t[1536+(c>>48&0xff)] + t[1792+(c>>56)]
	}
	return (a0 + a1) + (a2 + a3)
}
