package vecindex

// Pass 1 reads a segment's quantised heads in blocks of 32 points, each
// block coordinate-major: coordinate j of point i is at
// blockOff(i, k) + 32·j, k coordinates a point. A block is 32·k bytes read
// front to back.
func blockOff(i, k int) int { return (i>>5)*(k<<5) + i&31 }

// scanHeadGo sets bit i&7 of mask[i/8], for lo <= i < n (lo a multiple of
// 32), when the pass-1 bound of point i,
//
//	Σ_j g[j]·q_j + un·tau[i] + qm·w[i],
//
// evaluated in float32, is at least thr (par holds un, qm, thr). The
// assembly kernel computes the same sums in another order, with fused
// multiply-adds; the bound's slack covers either's rounding.
func scanHeadGo(hq []int8, g []float32, tau, w []float32, par *[4]float32, mask []uint8, lo, n int) {
	un, qm, thr := par[0], par[1], par[2]
	for b := lo; b < n; b += 8 {
		var m uint8
		for i := b; i < min(b+8, n); i++ {
			var acc float32
			o := blockOff(i, len(g))
			for j, gj := range g {
				acc += gj * float32(hq[o+32*j])
			}
			if acc+un*tau[i]+qm*w[i] >= thr {
				m |= 1 << (i - b)
			}
		}
		mask[b/8] = m
	}
}

// dotI8Go is Σ_j g[j]·float(q[j]) in float32.
func dotI8Go(g []float32, q []int8) float32 {
	g = g[:len(q)]
	var acc float32
	for j, c := range q {
		acc += g[j] * float32(c)
	}
	return acc
}

// pass2Go sets out[j], for each j, to pass 2's F for record idx[j]:
// Σ_l gs[l]·q_l + un·tau + qm·w in float32 (par holds un, qm).
func pass2Go(recs []headRec, idx []int32, gs []float32, par *[4]float32, out []float32) {
	un, qm := par[0], par[1]
	for j, i := range idx {
		r := &recs[i]
		out[j] = dotI8Go(gs, r.q[:len(gs)]) + un*r.tau + qm*r.w
	}
}
