package vecindex

import (
	"math/rand/v2"
	"testing"
)

// TestScanKernels checks the assembly kernels against the portable ones
// bit for bit on inputs whose sums are exact in float32 (small integers),
// for every length around the 8- and 32-point blocks.
func TestScanKernels(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	for _, k := range []int{1, 3, 16, 32} {
		for n := range 100 {
			hq := make([]int8, (n+31)&^31*k)
			for i := range hq {
				hq[i] = int8(r.IntN(255) - 127)
			}
			g := make([]float32, k)
			for i := range g {
				g[i] = float32(r.IntN(9) - 4)
			}
			tau, w := make([]float32, n), make([]float32, n)
			for i := range n {
				tau[i], w[i] = float32(r.IntN(64)), float32(r.IntN(64))
			}
			par := [4]float32{float32(r.IntN(3)), float32(r.IntN(3)), float32(r.IntN(400) - 200)}
			a, b := make([]uint8, (n+7)/8), make([]uint8, (n+7)/8)
			scanHead(hq, g, tau, w, &par, a, n)
			scanHeadGo(hq, g, tau, w, &par, b, 0, n)
			for i := range a {
				if a[i] != b[i] {
					t.Fatalf("k %d n %d block %d: kernel %08b, portable %08b", k, n, i, a[i], b[i])
				}
			}
		}
	}
	for k := 8; k <= 128; k += 8 {
		g, q := make([]float32, k), make([]int8, k)
		for i := range k {
			g[i], q[i] = float32(r.IntN(9)-4), int8(r.IntN(255)-127)
		}
		if a, b := dotI8(g, q), dotI8Go(g, q); a != b {
			t.Fatalf("k %d: dotI8 %v, portable %v", k, a, b)
		}
	}
}
