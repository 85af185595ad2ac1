//go:build !amd64

package vecindex

var useAVX2 = false

func scanHead(hq []int8, g []float32, tau, w []float32, par *[4]float32, mask []uint8, n int) {
	scanHeadGo(hq, g, tau, w, par, mask, 0, n)
}

func dotI8(g []float32, q []int8) float32 { return dotI8Go(g, q) }

const hasAVX2 = false
