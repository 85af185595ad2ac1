package use

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestKernelMatchesGo checks the platform's packed matmul against a plain
// float64 one for every row count and a few shapes, with and without ReLU.
func TestKernelMatchesGo(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	t.Logf("kernel: %s", kernelName)
	t.Run("gemm strided", func(t *testing.T) {
		// attention's use: y rows are yStride apart, 2 panels, 7 rows.
		const rows, in, cols, xStride, yStride, dStride = 7, 9, 32, 11, 40, 36
		x := randSlice(rng, rows*xStride)
		y := randSlice(rng, in*yStride)
		dst := make([]float32, rows*dStride)
		gemm(dst, dStride, x, xStride, y, yStride, rows, in, cols)
		for r := range rows {
			for j := range cols {
				var s float64
				for k := range in {
					s += float64(x[r*xStride+k]) * float64(y[k*yStride+j])
				}
				if d := math.Abs(float64(dst[r*dStride+j]) - s); d > 1e-4*(1+math.Abs(s)) {
					t.Fatalf("row %d col %d: got %v want %v", r, j, dst[r*dStride+j], s)
				}
			}
		}
	})
	for _, shape := range [][2]int{{1, 16}, {3, 32}, {256, 768}, {512, 512}} {
		for _, n := range []int{1, 2, 3, 4, 5, 6, 7, 13, 50} {
			for _, relu := range []bool{false, true} {
				in, out := shape[0], shape[1]
				t.Run(fmt.Sprintf("%dx%d/n=%d/relu=%v", in, out, n, relu), func(t *testing.T) {
					w := randSlice(rng, in*out)
					if halfWeights { // the reference uses the weights the kernel sees
						for i, v := range w {
							w[i] = halfToFloat32(float32ToHalf(v))
						}
					}
					bias := randSlice(rng, out)
					x := randSlice(rng, n*in)
					m := packMatrix(w, in, out, bias)
					got := make([]float32, n*out)
					m.apply(got, x, n, relu)
					// Reference: plain row-major matmul.
					for r := range n {
						for j := range out {
							var s float64 = float64(bias[j])
							for k := range in {
								s += float64(x[r*in+k]) * float64(w[k*out+j])
							}
							if relu && s < 0 {
								s = 0
							}
							if d := math.Abs(float64(got[r*out+j]) - s); d > 1e-3*(1+math.Abs(s)) {
								t.Fatalf("row %d col %d: got %v want %v", r, j, got[r*out+j], s)
							}
						}
					}
				})
			}
		}
	}
}

func randSlice(rng *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(rng.NormFloat64())
	}
	return s
}

func TestHalfRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		in   float32
		want float32
	}{
		{"zero", 0, 0},
		{"negative zero", float32(math.Copysign(0, -1)), float32(math.Copysign(0, -1))},
		{"one", 1, 1},
		{"rounds to nearest", 1.0007, 1.0009766},
		{"ties to even", 1 + 1.0/2048, 1},
		{"max half", 65504, 65504},
		{"overflow to inf", 1e6, float32(math.Inf(1))},
		{"smallest subnormal", 5.9604645e-8, 5.9604645e-8},
		{"underflow to zero", 1e-9, 0},
		{"negative", -2.5, -2.5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := halfToFloat32(float32ToHalf(tt.in))
			if got != tt.want || math.Signbit(float64(got)) != math.Signbit(float64(tt.want)) {
				t.Errorf("half(%v) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
	t.Run("NaN stays NaN", func(t *testing.T) {
		if v := halfToFloat32(float32ToHalf(float32(math.NaN()))); !math.IsNaN(float64(v)) {
			t.Errorf("got %v", v)
		}
	})
}

// BenchmarkMatrix measures the packed matmul alone; GMAC/s = in*out*rows/ns.
func BenchmarkMatrix(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, s := range [][3]int{{10, 512, 1536}, {10, 1536, 512}, {30, 512, 1536}, {128, 512, 1536}} {
		rows, in, out := s[0], s[1], s[2]
		b.Run(fmt.Sprintf("%dx%dx%d", rows, in, out), func(b *testing.B) {
			m := packMatrix(randSlice(rng, in*out), in, out, randSlice(rng, out))
			x := randSlice(rng, rows*in)
			dst := make([]float32, rows*out)
			cpu0 := processCPU()
			for b.Loop() {
				m.apply(dst, x, rows, false)
			}
			if d := processCPU() - cpu0; d > 0 {
				b.ReportMetric(float64(rows*in*out)*float64(b.N)/float64(d.Nanoseconds()), "GMAC/s-cpu")
			}
		})
	}
}
