package vecindex

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// pass2AVX2 reads records of 128 bytes with tau at 120 and w at 124.
var (
	_ [unsafe.Sizeof(headRec{}) - 128]byte
	_ [128 - unsafe.Sizeof(headRec{})]byte
	_ [unsafe.Offsetof(headRec{}.tau) - 120]byte
	_ [120 - unsafe.Offsetof(headRec{}.tau)]byte
)

// useAVX2 selects the assembly kernels; tests turn it off to check the
// portable ones.
var useAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// scanHeadAVX2 is scanHeadGo over whole blocks of 32 points.
//
//go:noescape
func scanHeadAVX2(hq *int8, gp *int32, pairs int, tau, w *float32, par *[4]float32, mask *uint8, n int)

// pass2AVX2 is pass2Go for k a positive multiple of 8.
//
//go:noescape
func pass2AVX2(recs *headRec, idx *int32, n int, gs *float32, k int, par *[4]float32, out *float32)

func pass2(recs []headRec, idx []int32, gs []float32, par *[4]float32, out []float32) {
	k := len(gs)
	if useAVX2 && len(idx) > 0 && k > 0 && k%8 == 0 && k <= headDims {
		_ = out[len(idx)-1]
		for _, i := range idx {
			_ = recs[i] // the kernel does not check
		}
		pass2AVX2(&recs[0], &idx[0], len(idx), &gs[0], k, par, &out[0])
		return
	}
	pass2Go(recs, idx, gs, par, out)
}

func scanHead(hq []int8, gp []int32, tau, w []float32, par *[4]float32, mask []uint8, n int) {
	m := n &^ 31
	if useAVX2 && m > 0 && len(gp) > 0 {
		_ = hq[m*2*len(gp)-1]
		_, _, _ = tau[m-1], w[m-1], mask[m/8-1]
		scanHeadAVX2(&hq[0], &gp[0], len(gp), &tau[0], &w[0], par, &mask[0], m)
	} else {
		m = 0
	}
	scanHeadGo(hq, gp, tau, w, par, mask, m, n)
}

var hasAVX2 = useAVX2
