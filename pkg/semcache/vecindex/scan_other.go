//go:build !amd64

package vecindex

var useAVX2 = false

func scanHead(hq []int8, gp []int32, tau, w []float32, par *[4]float32, mask []uint8, n int) {
	scanHeadGo(hq, gp, tau, w, par, mask, 0, n)
}

const hasAVX2 = false

func pass2(recs []headRec, idx []int32, gs []float32, par *[4]float32, out []float32) {
	pass2Go(recs, idx, gs, par, out)
}
