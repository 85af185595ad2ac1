//go:build amd64 && !purego

package use

import "golang.org/x/sys/cpu"

//go:generate sh -c "go run gen_kernel.go > kernel_amd64.s"

const maxKernelRows = 6

// F16C (VCVTPH2PS) is not reported by x/sys/cpu, but every CPU with AVX2
// and FMA (Intel Haswell, AMD Zen and later) has it.
var useAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// halfWeights says whether weight matrices stay fp16 in memory (converted in
// the kernel): half the bytes to stream through the caches per pass.
var halfWeights = useAVX2

// kernelName says which matmul kernel this build uses.
var kernelName = map[bool]string{true: "avx2-fma-f16c", false: "go"}[useAVX2]

// The gemmRx16 kernels compute R rows of one 16-column panel:
// dst[r][0:16] = x[r][0:in] · panel + bias (then max(0, ·) if relu != 0),
// with row strides in floats. Panel row k is at panel + k*panelStride. The
// ...h variants read an fp16 panel.

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

//go:noescape
func gemm1x16h(dst, x *float32, panel *uint16, bias *float32, in, dstStride, xStride, relu, panelStride int)

//go:noescape
func gemm2x16h(dst, x *float32, panel *uint16, bias *float32, in, dstStride, xStride, relu, panelStride int)

//go:noescape
func gemm3x16h(dst, x *float32, panel *uint16, bias *float32, in, dstStride, xStride, relu, panelStride int)

//go:noescape
func gemm4x16h(dst, x *float32, panel *uint16, bias *float32, in, dstStride, xStride, relu, panelStride int)

//go:noescape
func gemm5x16h(dst, x *float32, panel *uint16, bias *float32, in, dstStride, xStride, relu, panelStride int)

//go:noescape
func gemm6x16h(dst, x *float32, panel *uint16, bias *float32, in, dstStride, xStride, relu, panelStride int)

var (
	gemmF32 = [maxKernelRows + 1]func(dst, x, panel, bias *float32, in, dstStride, xStride, relu, panelStride int){
		nil, gemm1x16, gemm2x16, gemm3x16, gemm4x16, gemm5x16, gemm6x16,
	}
	gemmF16 = [maxKernelRows + 1]func(dst, x *float32, panel *uint16, bias *float32, in, dstStride, xStride, relu, panelStride int){
		nil, gemm1x16h, gemm2x16h, gemm3x16h, gemm4x16h, gemm5x16h, gemm6x16h,
	}
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

func kernelHalf(dst, x []float32, panel []uint16, bias []float32, rows, in, dstStride, xStride, panelStride int, relu bool) {
	if in == 0 { // the assembly loops at least once
		kernelGo(dst, x, nil, bias, rows, 0, dstStride, xStride, panelStride, relu)
		return
	}
	_ = dst[(rows-1)*dstStride+panelWidth-1]
	_ = x[(rows-1)*xStride+in-1]
	_ = panel[(in-1)*panelStride+panelWidth-1]
	_ = bias[panelWidth-1]
	gemmF16[rows](&dst[0], &x[0], &panel[0], &bias[0], in, dstStride, xStride, b2i(relu), panelStride)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
