package use

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
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
					m := quantMatrix(w, in, out, bias) // the layout of the kernel set in use
					var s qscratch
					got := make([]float32, n*out)
					m.apply(got, x, n, relu, &s)

					// The portable kernel on the same quantised inputs.
					ref, xq, xscale, want := quantReference(w, in, out, bias, x, n, relu)
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
								wq := float64(ref.q[(j/panelWidth)*in*panelWidth+(k/2)*2*panelWidth+2*(j%panelWidth)+k%2])
								v += float64(xq[r*in+k]) * float64(xscale[r]) * wq * float64(ref.scale[j])
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

// quantReference computes x·W + bias the portable way: W in the pair layout
// (returned), x quantised to int16 rows (returned with their scales), and
// qkernelGo on every panel.
func quantReference(w []float32, in, out int, bias, x []float32, n int, relu bool) (ref matrix, xq []int16, xscale, want []float32) {
	ref = quantMatrixLayout(w, in, out, bias, false)
	xq = make([]int16, n*in)
	xscale = make([]float32, n)
	for r := range n {
		xscale[r] = quantize(xq[r*in:(r+1)*in], x[r*in:(r+1)*in])
	}
	want = make([]float32, n*out)
	for p := 0; p < out/panelWidth; p++ {
		c := p * panelWidth
		qkernelGo(want[c:], xq, ref.q[p*in*panelWidth:], ref.scale[c:], bias[c:], xscale, n, in, out, in, relu)
	}
	return ref, xq, xscale, want
}

// TestQuantKernelRandomShapes runs each int8 kernel set, and the portable
// byte-layout kernel, on random shapes against the portable kernel:
// widths that are and are not multiples of 4 or 16, 1 row, rows that are
// not multiples of the kernels' 6 or of rowChunk, zero rows and rows with a
// large value. The sums are exact integers, so the results must be equal.
func TestQuantKernelRandomShapes(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	type shape struct {
		in, out, n int
		relu       bool
	}
	shapes := []shape{{2, 16, 1, false}, {4, 16, 1, true}, {6, 16, 7, false}, {12, 32, 6, true}, {16, 16, 1, false}, {20, 48, 49, false}, {2048, 16, 3, true}}
	for n := 1; n <= 13; n++ { // every kernel height
		shapes = append(shapes, shape{in: 68, out: 32, n: n, relu: n%2 == 0})
	}
	for range 40 {
		shapes = append(shapes, shape{
			in:   2 * (1 + rng.IntN(800)),
			out:  panelWidth * (1 + rng.IntN(6)),
			n:    1 + rng.IntN(60),
			relu: rng.IntN(2) == 0,
		})
	}
	for _, k := range quantKernels() {
		t.Run(k.name, func(t *testing.T) {
			defer k.use()()
			for _, sh := range shapes {
				t.Run(fmt.Sprintf("%dx%d/n=%d/relu=%v", sh.in, sh.out, sh.n, sh.relu), func(t *testing.T) {
					w := randSlice(rng, sh.in*sh.out)
					bias := randSlice(rng, sh.out)
					x := randSlice(rng, sh.n*sh.in)
					clear(x[:sh.in]) // a zero row
					if sh.n > 1 {
						x[sh.in+rng.IntN(sh.in)] = 1e4 // a row whose other values round to little
					}
					_, _, _, want := quantReference(w, sh.in, sh.out, bias, x, sh.n, sh.relu)
					m := quantMatrix(w, sh.in, sh.out, bias)
					var s qscratch
					got := make([]float32, sh.n*sh.out)
					m.apply(got, x, sh.n, sh.relu, &s)
					equalFloats(t, "kernel", got, want, sh.out)

					if sh.in%4 != 0 {
						return
					}
					// The portable byte-layout kernel.
					mb := quantMatrixLayout(w, sh.in, sh.out, bias, true)
					xb := make([]int8, 2*sh.n*sh.in)
					xscale := make([]float32, sh.n)
					xsum := make([]int32, sh.n)
					for r := range sh.n {
						xscale[r], xsum[r] = quantizeBytes(xb[2*r*sh.in:2*(r+1)*sh.in], x[r*sh.in:(r+1)*sh.in])
					}
					got = make([]float32, sh.n*sh.out)
					for p := 0; p < sh.out/panelWidth; p++ {
						c := p * panelWidth
						qkernelBytesGo(got[c:], xb, mb.qb[p*sh.in*panelWidth:], mb.scale[c:], bias[c:], xscale, xsum, sh.n, sh.in, sh.out, sh.in, sh.relu)
					}
					equalFloats(t, "portable byte kernel", got, want, sh.out)
				})
			}
		})
	}
}

func equalFloats(t *testing.T, what string, got, want []float32, width int) {
	t.Helper()
	for i := range want {
		if got[i] != want[i] && !(math.IsNaN(float64(got[i])) && math.IsNaN(float64(want[i]))) {
			t.Fatalf("row %d col %d: %s %v, portable kernel %v", i/width, i%width, what, got[i], want[i])
		}
	}
}

// TestQuantizeBytes checks the byte kernels' quantiser against the int16 one:
// the halves put back together, and the sum.
func TestQuantizeBytes(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	tests := []struct {
		name string
		x    []float32
	}{
		{"zero row", make([]float32, 32)},
		{"four values", []float32{-3, 1, 0, 2}},
		{"not a multiple of 16", randSlice(rng, 36)},
		{"long row", randSlice(rng, 1536)},
		{"ties", []float32{8191, 0.5, 1.5, 2.5, -0.5, -1.5, 7, -8191, 7, 7, 7, 7, 7, 7, 7, 7, -128, 127, -129, 128}},
		{"extremes", []float32{-1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := make([]int16, len(tt.x))
			wantScale := quantize(q, tt.x)
			var wantSum int32
			for _, v := range q {
				wantSum += int32(v)
			}
			b := make([]int8, 2*len(tt.x))
			scale, sum := quantizeBytes(b, tt.x)
			if scale != wantScale || sum != wantSum {
				t.Fatalf("scale %v sum %d, want %v %d", scale, sum, wantScale, wantSum)
			}
			for k, v := range q {
				g, i := k/4, k%4
				lo, hi := b[8*g+i], b[8*g+4+i]
				if lo < 0 || hi < -64 || hi > 63 || 128*int(hi)+int(lo) != int(v) {
					t.Fatalf("x[%d] = %v: halves lo %d hi %d, want %d", k, tt.x[k], lo, hi, v)
				}
			}
		})
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

// TestTanh checks the vectorised tanh against math.Tanh.
func TestTanh(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	tests := []struct {
		name string
		x    []float32
	}{
		{"normal", randSlice(rng, 512)},
		{"wide", func() []float32 {
			x := randSlice(rng, 515)
			for i := range x {
				x[i] *= 10
			}
			return x
		}()},
		{"edges", []float32{0, float32(math.Copysign(0, -1)), 1e-8, -1e-8, 1e-3, 0.5, 8.9, 9, 9.1, 50, 1e30, -1e30, float32(math.Inf(1)), float32(math.Inf(-1))}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := slices.Clone(tt.x)
			tanhInPlace(got)
			for i, x := range tt.x {
				want := math.Tanh(float64(x))
				if d := math.Abs(float64(got[i]) - want); d > 5e-7 { // a few float32 ulps near ±1
					t.Errorf("tanh(%v) = %v, want %v (error %g)", x, got[i], want, d)
				}
			}
		})
	}
}
