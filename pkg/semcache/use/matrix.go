package use

// panelWidth is the number of output columns a kernel call computes: weight
// matrices are stored as column panels of this width, each panel's rows
// contiguous, so a kernel streams its panel once and reuses it for every
// input row of the block.
const panelWidth = 16

// rowChunk bounds the input rows that stream against one panel before moving
// to the next, so that the rows (up to 48 x 1536 floats) stay in L2 while
// every panel passes by.
const rowChunk = 48

// matrix is a dense layer's weights W[in][out], packed as out/panelWidth
// column panels of in x panelWidth values, and its bias. The values are fp16
// (half) when the platform kernel converts them as it loads them, else fp32
// (packed). The weights come from fp16 on disk, so both hold the same numbers.
type matrix struct {
	in, out int
	packed  []float32
	half    []uint16
	bias    []float32
}

// packMatrix packs a row-major in x out matrix. out must be a multiple of
// panelWidth.
func packMatrix(w []float32, in, out int, bias []float32) matrix {
	m := matrix{in: in, out: out, bias: bias}
	if halfWeights {
		m.half = make([]uint16, in*out)
	} else {
		m.packed = make([]float32, in*out)
	}
	for p := 0; p < out/panelWidth; p++ {
		off := p * in * panelWidth
		for k := 0; k < in; k++ {
			row := w[k*out+p*panelWidth : k*out+(p+1)*panelWidth]
			if m.half != nil {
				for j, v := range row {
					m.half[off+k*panelWidth+j] = float32ToHalf(v)
				}
			} else {
				copy(m.packed[off+k*panelWidth:], row)
			}
		}
	}
	return m
}

// apply sets dst[n][out] = x[n][in] · W + bias, then max(0, ·) if relu.
func (m *matrix) apply(dst, x []float32, n int, relu bool) {
	if n == 0 {
		return
	}
	_ = dst[n*m.out-1]
	_ = x[n*m.in-1]
	panelSize := m.in * panelWidth
	for r0 := 0; r0 < n; r0 += rowChunk {
		r1 := min(r0+rowChunk, n)
		// Split the rows into even blocks (10 rows: 5+5, not 6+4): a kernel
		// with fewer rows has fewer accumulators to hide FMA latency.
		blocks := (r1 - r0 + maxKernelRows - 1) / maxKernelRows
		base, extra := (r1-r0)/blocks, (r1-r0)%blocks
		for p := 0; p < m.out/panelWidth; p++ {
			bias := m.bias[p*panelWidth : (p+1)*panelWidth]
			for r, blk := r0, 0; r < r1; blk++ {
				rows := base
				if blk < extra {
					rows++
				}
				if m.half != nil {
					kernelHalf(dst[r*m.out+p*panelWidth:], x[r*m.in:], m.half[p*panelSize:(p+1)*panelSize], bias, rows, m.in, m.out, m.in, panelWidth, relu)
				} else {
					kernel(dst[r*m.out+p*panelWidth:], x[r*m.in:], m.packed[p*panelSize:(p+1)*panelSize], bias, rows, m.in, m.out, m.in, panelWidth, relu)
				}
				r += rows
			}
		}
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
