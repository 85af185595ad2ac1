package vecindex

import "golang.org/x/sys/cpu"

// useAVX2 selects the assembly kernels; tests turn it off to check the
// portable ones.
var useAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// scanHeadAVX2 is scanHeadGo over whole blocks of 32 points.
//
//go:noescape
func scanHeadAVX2(hq *int8, gq *float32, k int, tau, w *float32, par *[4]float32, mask *uint8, n int)

// dotI8AVX2 is dotI8 for len(q) a positive multiple of 8.
//
//go:noescape
func dotI8AVX2(gv *float32, q *int8, k int) float32

func scanHead(hq []int8, g []float32, tau, w []float32, par *[4]float32, mask []uint8, n int) {
	m := n &^ 31
	if useAVX2 && m > 0 && len(g) > 0 {
		_ = hq[m*len(g)-1]
		_, _, _ = tau[m-1], w[m-1], mask[m/8-1]
		scanHeadAVX2(&hq[0], &g[0], len(g), &tau[0], &w[0], par, &mask[0], m)
	} else {
		m = 0
	}
	scanHeadGo(hq, g, tau, w, par, mask, m, n)
}

func dotI8(g []float32, q []int8) float32 {
	if useAVX2 && len(q) > 0 && len(q)%8 == 0 {
		_ = g[len(q)-1]
		return dotI8AVX2(&g[0], &q[0], len(q))
	}
	return dotI8Go(g, q)
}

var hasAVX2 = useAVX2
