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
					bias := randSlice(rng, out)
					x := randSlice(rng, n*in)
					m := packMatrix(w, in, out, bias)
					got := make([]float32, n*out)
					m.apply(got, x, n, relu, nil)
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

// TestQuantKernel checks the int8 path: the platform's kernel gives exactly
// what the portable one does (the sums are exact integers and the scaling
// steps are the same), and both are the float64 product of the quantised
// weights and inputs.
func TestQuantKernel(t *testing.T) {
	for _, k := range quantKernels() {
		t.Run(k.name, func(t *testing.T) {
			defer k.use()()
			testQuantKernel(t)
		})
	}
}

func testQuantKernel(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, shape := range [][2]int{{2, 16}, {6, 32}, {256, 768}, {1536, 512}} {
		for _, n := range []int{1, 2, 3, 4, 5, 6, 7, 13, 50} {
			for _, relu := range []bool{false, true} {
				in, out := shape[0], shape[1]
				t.Run(fmt.Sprintf("%dx%d/n=%d/relu=%v", in, out, n, relu), func(t *testing.T) {
					w := randSlice(rng, in*out)
					bias := randSlice(rng, out)
					x := randSlice(rng, n*in)
					m := quantMatrix(w, in, out, bias)
					var s qscratch
					got := make([]float32, n*out)
					m.apply(got, x, n, relu, &s)

					// The portable kernel on the same quantised inputs.
					want := make([]float32, n*out)
					for p := 0; p < out/panelWidth; p++ {
						c := p * panelWidth
						qkernelGo(want[c:], s.x, m.q[p*in*panelWidth:], m.scale[c:], bias[c:], s.xscale, n, in, out, in, relu)
					}
					for i := range got {
						if got[i] != want[i] {
							t.Fatalf("row %d col %d: kernel %v, portable kernel %v", i/out, i%out, got[i], want[i])
						}
					}
					// Float64 reference over the quantised values.
					for r := range n {
						for j := range out {
							v := float64(bias[j])
							for k := range in {
								wq := float64(m.q[(j/panelWidth)*in*panelWidth+(k/2)*2*panelWidth+2*(j%panelWidth)+k%2])
								v += float64(s.x[r*in+k]) * float64(s.xscale[r]) * wq * float64(m.scale[j])
							}
							if relu && v < 0 {
								v = 0
							}
							if d := math.Abs(float64(got[r*out+j]) - v); d > 1e-4*(1+math.Abs(v)) {
								t.Fatalf("row %d col %d: got %v want %v", r, j, got[r*out+j], v)
							}
						}
					}
				})
			}
		}
	}
}

// TestQuantize checks the input quantiser's rounding and scale.
func TestQuantize(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	tests := []struct {
		name string
		x    []float32
	}{
		{"zero row", make([]float32, 32)},
		{"one value", []float32{-3}},
		{"not a multiple of 16", randSlice(rng, 37)},
		{"long row", randSlice(rng, 1536)},
		{"ties", []float32{8191, 0.5, 1.5, 2.5, -0.5, -1.5, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := make([]int16, len(tt.x))
			scale := quantize(dst, tt.x)
			var mx float64
			for _, v := range tt.x {
				mx = math.Max(mx, math.Abs(float64(v)))
			}
			if want := float32(mx) / actLevels; scale != want {
				t.Fatalf("scale %v, want %v", scale, want)
			}
			var inv float32
			if mx > 0 {
				inv = actLevels / float32(mx)
			}
			for k, v := range tt.x {
				if want := int16(math.RoundToEven(float64(v * inv))); dst[k] != want {
					t.Fatalf("x[%d] = %v quantised to %d, want %d", k, v, dst[k], want)
				}
				if math.Abs(float64(dst[k])) > actLevels {
					t.Fatalf("x[%d] quantised to %d, out of range", k, dst[k])
				}
			}
		})
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

// BenchmarkMatrix measures the packed matmul alone, with each int8 kernel
// set this CPU runs (what a pass uses) and fp32 (the reference path);
// GMAC/s = in*out*rows/ns.
func BenchmarkMatrix(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	kinds := []string{"fp32"}
	for _, k := range quantKernels() {
		kinds = append(kinds, "int8-"+k.name)
	}
	for _, s := range [][3]int{{1, 1536, 512}, {10, 512, 1536}, {10, 1536, 512}, {30, 512, 1536}, {128, 512, 1536}} {
		rows, in, out := s[0], s[1], s[2]
		w, bias, x := randSlice(rng, in*out), randSlice(rng, out), randSlice(rng, rows*in)
		for i, kind := range kinds {
			b.Run(fmt.Sprintf("%s/%dx%dx%d", kind, rows, in, out), func(b *testing.B) {
				m := packMatrix(w, in, out, bias)
				if i > 0 {
					defer quantKernels()[i-1].use()()
					m = quantMatrix(w, in, out, bias)
				}
				dst := make([]float32, rows*out)
				var q qscratch
				b.ReportAllocs()
				cpu0 := processCPU()
				for b.Loop() {
					m.apply(dst, x, rows, false, &q)
				}
				if d := processCPU() - cpu0; d > 0 {
					b.ReportMetric(float64(rows*in*out)*float64(b.N)/float64(d.Nanoseconds()), "GMAC/s-cpu")
				}
			})
		}
	}
}
