package use

import (
	"math"

	"github.com/viterin/vek/vek32"
)

// panelWidth is the number of output columns a kernel call computes: weight
// matrices are stored as column panels of this width, each panel's rows
// contiguous, so a kernel streams its panel once and reuses it for every
// input row of the block.
const panelWidth = 16

// rowChunk bounds the input rows that stream against one panel before moving
// to the next, so that the rows (up to 48 x 1536 values) stay in L2 while
// every panel passes by.
const rowChunk = 48

// Quantisation. Each weight column j is stored as int8 q with
// w = q·scale[j], scale[j] = max|w[·][j]|/weightLevels; each input row is
// quantised when a pass reaches the matrix, to int16 with
// x = q·xscale, xscale = max|x|/actLevels. The dot products are then exact
// int32 sums (in·actLevels·weightLevels < 2^31 for in ≤ 2048), the same on
// every kernel. 8-bit inputs were measured too coarse (min cosine 0.9985
// against the fp16 weights on the reference sentences); int8 weights with
// 14-bit inputs keep it above 0.999.
const (
	weightLevels = 127
	actLevels    = 8191
)

// matrix is a dense layer's weights W[in][out] and its bias, as int8
// column panels (q, scale: what a forward pass uses) or, for the reference
// path tests compare it with, as fp32 column panels of in x panelWidth
// values (packed). The fp32 values are the fp16 ones in the file, exactly.
type matrix struct {
	in, out int
	packed  []float32
	// q holds out/panelWidth panels of in/2 steps of 32 bytes: step k/2 has
	// column j's weights for k and k+1 at bytes 2j and 2j+1 (the layout
	// qkernel multiplies against a pair of inputs).
	q []int8
	// qb replaces q where the byte kernels run (bytesLayout, in a multiple
	// of 4): the same weights plus 128, as unsigned bytes, in out/panelWidth
	// panels of in/4 groups of 64 bytes: group k/4 has column j's weights
	// for k..k+3 at bytes 4j..4j+3 (the layout VPDPBUSD multiplies against
	// four inputs).
	qb    []uint8
	scale []float32
	bias  []float32
}

// packMatrix packs a row-major in x out matrix as fp32 panels (the reference
// path). out must be a multiple of panelWidth.
func packMatrix(w []float32, in, out int, bias []float32) matrix {
	m := matrix{in: in, out: out, bias: bias, packed: make([]float32, in*out)}
	for p := 0; p < out/panelWidth; p++ {
		off := p * in * panelWidth
		for k := 0; k < in; k++ {
			copy(m.packed[off+k*panelWidth:], w[k*out+p*panelWidth:k*out+(p+1)*panelWidth])
		}
	}
	return m
}

// quantMatrix packs a row-major in x out matrix as int8 panels with a scale
// per column, in the layout of the kernels this CPU runs. in must be even and
// out a multiple of panelWidth.
func quantMatrix(w []float32, in, out int, bias []float32) matrix {
	return quantMatrixLayout(w, in, out, bias, bytesLayout && in%4 == 0)
}

// quantMatrixLayout is quantMatrix with the layout chosen: qb (bytes, in a
// multiple of 4) or q.
func quantMatrixLayout(w []float32, in, out int, bias []float32, bytes bool) matrix {
	m := matrix{in: in, out: out, bias: bias, q: make([]int8, in*out), scale: make([]float32, out)}
	inv := make([]float64, out)
	for j := range out {
		var mx float64
		for k := range in {
			mx = max(mx, math.Abs(float64(w[k*out+j])))
		}
		if mx > 0 {
			m.scale[j] = float32(mx / weightLevels)
			inv[j] = weightLevels / mx
		}
	}
	for p := 0; p < out/panelWidth; p++ {
		panel := m.q[p*in*panelWidth : (p+1)*in*panelWidth]
		for k := range in {
			for j := range panelWidth {
				c := p*panelWidth + j
				v := math.RoundToEven(float64(w[k*out+c]) * inv[c])
				panel[(k/2)*2*panelWidth+2*j+k%2] = int8(max(-weightLevels, min(weightLevels, v)))
			}
		}
	}
	if bytes {
		m.qb = make([]uint8, in*out)
		for p := 0; p < out/panelWidth; p++ {
			src := m.q[p*in*panelWidth : (p+1)*in*panelWidth]
			dst := m.qb[p*in*panelWidth : (p+1)*in*panelWidth]
			for k := range in {
				for j := range panelWidth {
					dst[(k/4)*4*panelWidth+4*j+k%4] = uint8(int(src[(k/2)*2*panelWidth+2*j+k%2]) + 128)
				}
			}
		}
		m.q = nil
	}
	return m
}

// qscratch holds a pass's quantised inputs: int16 rows and their scales.
type qscratch struct {
	x      []int16
	xscale []float32
	xb     []int8  // the rows split into halves for the byte kernels
	xsum   []int32 // each row's sum of quantised values (byte kernels)
}

// apply sets dst[n][out] = x[n][in] · W + bias, then max(0, ·) if relu.
// The int8 path quantises x into s first.
func (m *matrix) apply(dst, x []float32, n int, relu bool, s *qscratch) {
	if n == 0 {
		return
	}
	_ = dst[n*m.out-1]
	_ = x[n*m.in-1]
	switch {
	case m.qb != nil:
		s.xb = grow(s.xb, 2*n*m.in)
		s.xscale = grow(s.xscale, n)
		s.xsum = grow(s.xsum, n)
		for r := range n {
			s.xscale[r], s.xsum[r] = quantizeBytes(s.xb[2*r*m.in:2*(r+1)*m.in], x[r*m.in:(r+1)*m.in])
		}
	case m.q != nil:
		s.x = grow(s.x, n*m.in)
		s.xscale = grow(s.xscale, n)
		for r := range n {
			s.xscale[r] = quantize(s.x[r*m.in:(r+1)*m.in], x[r*m.in:(r+1)*m.in])
		}
	}
	panelSize := m.in * panelWidth
	for r0 := 0; r0 < n; r0 += rowChunk {
		r1 := min(r0+rowChunk, n)
		// Split the rows into even blocks (10 rows: 5+5, not 6+4): a kernel
		// with fewer rows has fewer accumulators to hide latency.
		maxRows := maxKernelRows
		if m.qb != nil {
			maxRows = maxBytesRows
		}
		blocks := (r1 - r0 + maxRows - 1) / maxRows
		base, extra := (r1-r0)/blocks, (r1-r0)%blocks
		for p := 0; p < m.out/panelWidth; p++ {
			cols := p * panelWidth
			bias := m.bias[cols : cols+panelWidth]
			for r, blk := r0, 0; r < r1; blk++ {
				rows := base
				if blk < extra {
					rows++
				}
				switch {
				case m.qb != nil:
					qkernelBytes(dst[r*m.out+cols:], s.xb[2*r*m.in:], m.qb[p*panelSize:(p+1)*panelSize], m.scale[cols:cols+panelWidth], bias, s.xscale[r:r+rows], s.xsum[r:r+rows], rows, m.in, m.out, m.in, relu)
				case m.q != nil:
					qkernel(dst[r*m.out+cols:], s.x[r*m.in:], m.q[p*panelSize:(p+1)*panelSize], m.scale[cols:cols+panelWidth], bias, s.xscale[r:r+rows], rows, m.in, m.out, m.in, relu)
				default:
					kernel(dst[r*m.out+cols:], x[r*m.in:], m.packed[p*panelSize:(p+1)*panelSize], bias, rows, m.in, m.out, m.in, panelWidth, relu)
				}
				r += rows
			}
		}
	}
}

// quantize sets dst to x/scale rounded to even, scale = max|x|/actLevels,
// and returns scale (0 for a zero row, whose dst is all zero).
func quantize(dst []int16, x []float32) float32 {
	mx := max(vek32.Max(x), -vek32.Min(x))
	if !(mx > 0) { // a zero row, or NaN (which then shows in the output)
		clear(dst[:len(x)])
		return mx
	}
	inv := actLevels / mx
	quantRow(dst, x, inv)
	return mx / actLevels
}

// quantizeBytes is quantize for the byte kernels: dst (2·len(x) bytes) gets
// the rounded values split into halves (see quantRowBytesGo); it returns the
// scale and the sum of the rounded values.
func quantizeBytes(dst []int8, x []float32) (float32, int32) {
	mx := max(vek32.Max(x), -vek32.Min(x))
	if !(mx > 0) {
		clear(dst[:2*len(x)])
		return mx, 0
	}
	return mx / actLevels, quantRowBytes(dst, x, actLevels/mx)
}

// quantRowBytesGo is the portable quantRowBytes: q = round-to-even(x[k]·inv)
// as quantRowGo, stored as two signed 7-bit halves q = 128·hi + lo, lo in
// [0, 127]: for each group of four inputs, the four lo then the four hi
// (the layout qkernelBytesGo reads). It returns Σ q. len(x) must be a
// multiple of 4.
func quantRowBytesGo(dst []int8, x []float32, inv float32) int32 {
	dst = dst[:2*len(x)]
	var sum int32
	for g := 0; g+4 <= len(x); g += 4 {
		for t := range 4 {
			q := int32(math.RoundToEven(float64(x[g+t] * inv)))
			sum += q
			dst[2*g+t] = int8(q & 127)
			dst[2*g+4+t] = int8(q >> 7)
		}
	}
	return sum
}

// quantRowGo is the portable quantRow: dst[k] = round-to-even(x[k]·inv).
func quantRowGo(dst []int16, x []float32, inv float32) {
	dst = dst[:len(x)]
	for k, v := range x {
		dst[k] = int16(math.RoundToEven(float64(v * inv)))
	}
}

// gemm sets dst = x · y + bias (bias nil: zero) for rows x cols with
// cols a multiple of panelWidth: x rows are xStride apart and in long, y rows
// yStride apart, dst rows dstStride apart. It serves attention, where keys and
// values are strided slices of the qkv buffer.
func gemm(dst []float32, dstStride int, x []float32, xStride int, y []float32, yStride int, rows, in, cols int) {
	for p := 0; p < cols/panelWidth; p++ {
		for r := 0; r < rows; {
			n := min(rows-r, maxKernelRows)
			kernel(dst[r*dstStride+p*panelWidth:], x[r*xStride:], y[p*panelWidth:], zeroBias[:], n, in, dstStride, xStride, yStride, false)
			r += n
		}
	}
}

var zeroBias [panelWidth]float32

// kernelGo is the portable kernel: dst rows [0, rows) of one 16-column panel.
func kernelGo(dst, x, panel, bias []float32, rows, in, dstStride, xStride, panelStride int, relu bool) {
	for r := range rows {
		var acc [panelWidth]float32
		copy(acc[:], bias[:panelWidth])
		xr := x[r*xStride : r*xStride+in]
		for k, xv := range xr {
			w := panel[k*panelStride : k*panelStride+panelWidth]
			for j := range acc {
				acc[j] += xv * w[j]
			}
		}
		d := dst[r*dstStride : r*dstStride+panelWidth]
		for j, v := range acc {
			if relu && v < 0 {
				v = 0
			}
			d[j] = v
		}
	}
}

// qkernelGo is the portable qkernel: dst rows [0, rows) of one 16-column
// int8 panel against int16 rows, scaled in the order the assembly uses.
func qkernelGo(dst []float32, x []int16, panel []int8, scale, bias, xscale []float32, rows, in, dstStride, xStride int, relu bool) {
	panel = panel[:in*panelWidth]
	for r := range rows {
		var acc [panelWidth]int32
		xr := x[r*xStride : r*xStride+in]
		for k := 0; k+1 < in; k += 2 {
			x0, x1 := int32(xr[k]), int32(xr[k+1])
			step := panel[k*panelWidth : (k+2)*panelWidth]
			for j := range acc {
				acc[j] += x0*int32(step[2*j]) + x1*int32(step[2*j+1])
			}
		}
		d := dst[r*dstStride : r*dstStride+panelWidth]
		for j, a := range acc {
			// Each product rounded on its own (no fused multiply-add), as
			// the assembly does.
			v := float32(float32(a) * scale[j])
			v = float32(v * xscale[r])
			v += bias[j]
			if relu && v < 0 {
				v = 0
			}
			d[j] = v
		}
	}
}

// qkernelBytesGo is qkernelGo on the byte layouts (see matrix.qb and
// quantRowBytesGo): with u = w + 128 and q = 128·hi + lo,
// Σ q·w = 128·(Σ hi·u − Σ q) + Σ lo·u, the same int32 (wrapping arithmetic,
// exact since the result fits), scaled in the same order. x rows are
// 2·xStride bytes apart; in must be a multiple of 4.
func qkernelBytesGo(dst []float32, x []int8, panel []uint8, scale, bias, xscale []float32, xsum []int32, rows, in, dstStride, xStride int, relu bool) {
	panel = panel[:in*panelWidth]
	for r := range rows {
		var lo, hi [panelWidth]int32
		xr := x[2*r*xStride : 2*r*xStride+2*in]
		for g := 0; g < in/4; g++ {
			grp := panel[g*4*panelWidth : (g+1)*4*panelWidth]
			xg := xr[8*g : 8*g+8]
			for j := range lo {
				for t := range 4 {
					u := int32(grp[4*j+t])
					lo[j] += int32(xg[t]) * u
					hi[j] += int32(xg[4+t]) * u
				}
			}
		}
		d := dst[r*dstStride : r*dstStride+panelWidth]
		for j := range lo {
			a := 128*(hi[j]-xsum[r]) + lo[j]
			v := float32(float32(a) * scale[j])
			v = float32(v * xscale[r])
			v += bias[j]
			if relu && v < 0 {
				v = 0
			}
			d[j] = v
		}
	}
}
