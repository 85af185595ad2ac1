//go:build amd64 && !purego

package use

import "golang.org/x/sys/cpu"

//go:generate sh -c "go run gen_kernel.go > kernel_amd64.s"

const maxKernelRows = 6

// maxBytesRows is the most rows a byte kernel computes: 12 rows take 24 of
// the 32 Z registers, so a prompt of up to 12 tokens streams each weight
// panel once.
const maxBytesRows = 12

// F16C (VCVTPH2PS) is not reported by x/sys/cpu, but every CPU with AVX2
// and FMA (Intel Haswell, AMD Zen and later) has it.
var useAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// useVNNI says whether the int8 matmuls use AVX-512 VNNI kernels rather
// than the AVX2 ones: the byte kernels (VPDPBUSD, see bytesLayout) for every
// matrix whose input width is a multiple of 4 (all of the model's), the
// VPDPWSSD ones for any other. All give the same results. x/sys/cpu reports
// AVX-512 only when the OS saves the Z registers (XGETBV).
var useVNNI = useAVX2 && cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VNNI

// bytesLayout says whether quantMatrix stores the weights for the byte
// kernels (qgemm<r>x16b, VPDPBUSD), which need the same CPU features as the
// VPDPWSSD ones and do twice the products per instruction without widening
// the weights; the results are the same. Tests switch it before building a
// matrix to try each kernel set.
var bytesLayout = useVNNI

// kernelName says which matmul kernels this build uses.
var kernelName = map[bool]string{true: "avx2-fma", false: "go"}[useAVX2] + map[bool]string{true: "+avx512-vnni-dpbusd"}[useVNNI]

// The gemmRx16 kernels compute R rows of one 16-column panel:
// dst[r][0:16] = x[r][0:in] · panel + bias (then max(0, ·) if relu != 0),
// with row strides in floats. Panel row k is at panel + k*panelStride.

//go:noescape
func gemm1x16(dst, x, panel, bias *float32, in, dstStride, xStride, relu, panelStride int)

//go:noescape
func gemm2x16(dst, x, panel, bias *float32, in, dstStride, xStride, relu, panelStride int)

//go:noescape
func gemm3x16(dst, x, panel, bias *float32, in, dstStride, xStride, relu, panelStride int)

//go:noescape
func gemm4x16(dst, x, panel, bias *float32, in, dstStride, xStride, relu, panelStride int)

//go:noescape
func gemm5x16(dst, x, panel, bias *float32, in, dstStride, xStride, relu, panelStride int)

//go:noescape
func gemm6x16(dst, x, panel, bias *float32, in, dstStride, xStride, relu, panelStride int)

// The qgemmRx16 kernels are qkernelGo for R rows (see gen_kernel.go), the
// qgemmRx16v ones the same with AVX-512 VNNI.

type qgemmKernels [maxKernelRows + 1]func(dst *float32, x *int16, panel *int8, scale, bias, xscale *float32, in, dstStride, xStride, relu int)

//go:noescape
func qgemm1x16(dst *float32, x *int16, panel *int8, scale, bias, xscale *float32, in, dstStride, xStride, relu int)

//go:noescape
func qgemm2x16(dst *float32, x *int16, panel *int8, scale, bias, xscale *float32, in, dstStride, xStride, relu int)

//go:noescape
func qgemm3x16(dst *float32, x *int16, panel *int8, scale, bias, xscale *float32, in, dstStride, xStride, relu int)

//go:noescape
func qgemm4x16(dst *float32, x *int16, panel *int8, scale, bias, xscale *float32, in, dstStride, xStride, relu int)

//go:noescape
func qgemm5x16(dst *float32, x *int16, panel *int8, scale, bias, xscale *float32, in, dstStride, xStride, relu int)

//go:noescape
func qgemm6x16(dst *float32, x *int16, panel *int8, scale, bias, xscale *float32, in, dstStride, xStride, relu int)

//go:noescape
func qgemm1x16v(dst *float32, x *int16, panel *int8, scale, bias, xscale *float32, in, dstStride, xStride, relu int)

//go:noescape
func qgemm2x16v(dst *float32, x *int16, panel *int8, scale, bias, xscale *float32, in, dstStride, xStride, relu int)

//go:noescape
func qgemm3x16v(dst *float32, x *int16, panel *int8, scale, bias, xscale *float32, in, dstStride, xStride, relu int)

//go:noescape
func qgemm4x16v(dst *float32, x *int16, panel *int8, scale, bias, xscale *float32, in, dstStride, xStride, relu int)

//go:noescape
func qgemm5x16v(dst *float32, x *int16, panel *int8, scale, bias, xscale *float32, in, dstStride, xStride, relu int)

//go:noescape
func qgemm6x16v(dst *float32, x *int16, panel *int8, scale, bias, xscale *float32, in, dstStride, xStride, relu int)

// The qgemmRx16b kernels are qkernelBytesGo for R rows (AVX-512 VNNI,
// VPDPBUSD; see gen_kernel.go).

type qgemmBytesKernels [maxBytesRows + 1]func(dst *float32, x *int8, panel *uint8, scale, bias, xscale *float32, xsum *int32, in, dstStride, xStride, relu int)

//go:noescape
func qgemm1x16b(dst *float32, x *int8, panel *uint8, scale, bias, xscale *float32, xsum *int32, in, dstStride, xStride, relu int)

//go:noescape
func qgemm2x16b(dst *float32, x *int8, panel *uint8, scale, bias, xscale *float32, xsum *int32, in, dstStride, xStride, relu int)

//go:noescape
func qgemm3x16b(dst *float32, x *int8, panel *uint8, scale, bias, xscale *float32, xsum *int32, in, dstStride, xStride, relu int)

//go:noescape
func qgemm4x16b(dst *float32, x *int8, panel *uint8, scale, bias, xscale *float32, xsum *int32, in, dstStride, xStride, relu int)

//go:noescape
func qgemm5x16b(dst *float32, x *int8, panel *uint8, scale, bias, xscale *float32, xsum *int32, in, dstStride, xStride, relu int)

//go:noescape
func qgemm6x16b(dst *float32, x *int8, panel *uint8, scale, bias, xscale *float32, xsum *int32, in, dstStride, xStride, relu int)

//go:noescape
func qgemm7x16b(dst *float32, x *int8, panel *uint8, scale, bias, xscale *float32, xsum *int32, in, dstStride, xStride, relu int)

//go:noescape
func qgemm8x16b(dst *float32, x *int8, panel *uint8, scale, bias, xscale *float32, xsum *int32, in, dstStride, xStride, relu int)

//go:noescape
func qgemm9x16b(dst *float32, x *int8, panel *uint8, scale, bias, xscale *float32, xsum *int32, in, dstStride, xStride, relu int)

//go:noescape
func qgemm10x16b(dst *float32, x *int8, panel *uint8, scale, bias, xscale *float32, xsum *int32, in, dstStride, xStride, relu int)

//go:noescape
func qgemm11x16b(dst *float32, x *int8, panel *uint8, scale, bias, xscale *float32, xsum *int32, in, dstStride, xStride, relu int)

//go:noescape
func qgemm12x16b(dst *float32, x *int8, panel *uint8, scale, bias, xscale *float32, xsum *int32, in, dstStride, xStride, relu int)

//go:noescape
func quantRowBytesAVX512(dst *int8, x *float32, n int, inv float32, sum *int32)

//go:noescape
func quantRowAVX2(dst *int16, x *float32, n int, inv float32)

var (
	gemmF32 = [maxKernelRows + 1]func(dst, x, panel, bias *float32, in, dstStride, xStride, relu, panelStride int){
		nil, gemm1x16, gemm2x16, gemm3x16, gemm4x16, gemm5x16, gemm6x16,
	}
	qgemmAVX2 = qgemmKernels{nil, qgemm1x16, qgemm2x16, qgemm3x16, qgemm4x16, qgemm5x16, qgemm6x16}
	qgemmVNNI = qgemmKernels{nil, qgemm1x16v, qgemm2x16v, qgemm3x16v, qgemm4x16v, qgemm5x16v, qgemm6x16v}
	qgemmB    = qgemmBytesKernels{nil, qgemm1x16b, qgemm2x16b, qgemm3x16b, qgemm4x16b, qgemm5x16b, qgemm6x16b,
		qgemm7x16b, qgemm8x16b, qgemm9x16b, qgemm10x16b, qgemm11x16b, qgemm12x16b}
	// gemmQ is the int8 kernel set in use (tests swap it to try each).
	gemmQ = map[bool]*qgemmKernels{false: &qgemmAVX2, true: &qgemmVNNI}[useVNNI]
)

func kernel(dst, x, panel, bias []float32, rows, in, dstStride, xStride, panelStride int, relu bool) {
	if !useAVX2 || in == 0 { // the assembly loops at least once
		kernelGo(dst, x, panel, bias, rows, in, dstStride, xStride, panelStride, relu)
		return
	}
	// Bounds the assembly relies on.
	_ = dst[(rows-1)*dstStride+panelWidth-1]
	_ = x[(rows-1)*xStride+in-1]
	_ = panel[(in-1)*panelStride+panelWidth-1]
	_ = bias[panelWidth-1]
	gemmF32[rows](&dst[0], &x[0], &panel[0], &bias[0], in, dstStride, xStride, b2i(relu), panelStride)
}

// qkernel is qkernelGo on the int8 panels (see matrix); in must be even.
func qkernel(dst []float32, x []int16, panel []int8, scale, bias, xscale []float32, rows, in, dstStride, xStride int, relu bool) {
	if !useAVX2 || in == 0 || in%2 != 0 {
		qkernelGo(dst, x, panel, scale, bias, xscale, rows, in, dstStride, xStride, relu)
		return
	}
	_ = dst[(rows-1)*dstStride+panelWidth-1]
	_ = x[(rows-1)*xStride+in-1]
	_ = panel[in*panelWidth-1]
	_ = scale[panelWidth-1]
	_ = bias[panelWidth-1]
	_ = xscale[rows-1]
	gemmQ[rows](&dst[0], &x[0], &panel[0], &scale[0], &bias[0], &xscale[0], in, dstStride, xStride, b2i(relu))
}

// qkernelBytes is qkernelBytesGo (the weights in the byte layout, see
// matrix); in must be a multiple of 4.
func qkernelBytes(dst []float32, x []int8, panel []uint8, scale, bias, xscale []float32, xsum []int32, rows, in, dstStride, xStride int, relu bool) {
	if !useVNNI || in == 0 || in%4 != 0 {
		qkernelBytesGo(dst, x, panel, scale, bias, xscale, xsum, rows, in, dstStride, xStride, relu)
		return
	}
	_ = dst[(rows-1)*dstStride+panelWidth-1]
	_ = x[2*((rows-1)*xStride+in)-1]
	_ = panel[in*panelWidth-1]
	_ = scale[panelWidth-1]
	_ = bias[panelWidth-1]
	_ = xscale[rows-1]
	_ = xsum[rows-1]
	qgemmB[rows](&dst[0], &x[0], &panel[0], &scale[0], &bias[0], &xscale[0], &xsum[0], in, dstStride, xStride, b2i(relu))
}

// quantRowBytes is quantRowBytesGo (len(x) a multiple of 4).
func quantRowBytes(dst []int8, x []float32, inv float32) int32 {
	n := len(x) &^ 15
	if !useVNNI || n == 0 {
		return quantRowBytesGo(dst, x, inv)
	}
	_ = dst[2*len(x)-1]
	var sum int32
	quantRowBytesAVX512(&dst[0], &x[0], n, inv, &sum)
	return sum + quantRowBytesGo(dst[2*n:], x[n:], inv)
}

// quantRow sets dst[k] = round-to-even(x[k]·inv) (len(dst) >= len(x)).
func quantRow(dst []int16, x []float32, inv float32) {
	n := len(x) &^ 15
	if !useAVX2 || n == 0 {
		quantRowGo(dst, x, inv)
		return
	}
	_ = dst[len(x)-1]
	quantRowAVX2(&dst[0], &x[0], n, inv)
	quantRowGo(dst[n:], x[n:], inv)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
