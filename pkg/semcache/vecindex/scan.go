package vecindex

// Pass 1 reads a segment's quantised heads in blocks of 32 points, each
// block pair-major: coordinates 2p and 2p+1 of point i sit side by side at
// blockOff(i, kp) + pairOff(2p), kp (even) bytes a point. A block is 32·kp
// bytes read front to back.
func blockOff(i, kp int) int { return (i>>5)*(kp<<5) + (i&31)<<1 }

func pairOff(j int) int { return (j>>1)<<6 + j&1 }

// scanHeadGo sets bit i&7 of mask[i/8], for lo <= i < n (lo a multiple of
// 32), when the pass-1 bound of point i,
//
//	λ·Σ_j G_j·q_j + un·tau[i] + qm·w[i],
//
// is at least thr; the sum is exact (int32), the rest float32. gp packs
// G_2p and G_2p+1 (int16) into its p-th element; par holds un, qm, thr
// and λ. The assembly kernel computes the same, fusing the multiply-adds;
// the bound's slack covers either's rounding.
func scanHeadGo(hq []int8, gp []int32, tau, w []float32, par *[4]float32, mask []uint8, lo, n int) {
	un, qm, thr, lam := par[0], par[1], par[2], par[3]
	kp := 2 * len(gp)
	for b := lo; b < n; b += 8 {
		var m uint8
		for i := b; i < min(b+8, n); i++ {
			var acc int32
			o := blockOff(i, kp)
			for p, g := range gp {
				acc += int32(hq[o+p<<6])*int32(int16(g)) + int32(hq[o+p<<6+1])*int32(int16(g>>16))
			}
			if float32(acc)*lam+un*tau[i]+qm*w[i] >= thr {
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
