//go:build amd64 && !purego

package use

import "golang.org/x/sys/cpu"

//go:generate sh -c "go run gen_kernel.go > kernel_amd64.s"

const maxKernelRows = 6

var useAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// kernelName says which matmul kernel this build uses.
var kernelName = map[bool]string{true: "avx2-fma", false: "go"}[useAVX2]

// The gemmRx16 kernels compute R rows of one 16-column panel:
// dst[r][0:16] = x[r][0:in] · panel + bias (then max(0, ·) if relu != 0),
// with row strides in floats. Panel row k is at panel + k*panelStride.
//
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

func kernel(dst, x, panel, bias []float32, rows, in, dstStride, xStride, panelStride int, relu bool) {
	if !useAVX2 || in == 0 {
		kernelGo(dst, x, panel, bias, rows, in, dstStride, xStride, panelStride, relu)
		return
	}
	// Bounds the assembly relies on.
	_ = dst[(rows-1)*dstStride+panelWidth-1]
	_ = x[(rows-1)*xStride+in-1]
	_ = panel[(in-1)*panelStride+panelWidth-1]
	_ = bias[panelWidth-1]
	r := 0
	if relu {
		r = 1
	}
	d, xp, p, b := &dst[0], &x[0], &panel[0], &bias[0]
	switch rows {
	case 1:
		gemm1x16(d, xp, p, b, in, dstStride, xStride, r, panelStride)
	case 2:
		gemm2x16(d, xp, p, b, in, dstStride, xStride, r, panelStride)
	case 3:
		gemm3x16(d, xp, p, b, in, dstStride, xStride, r, panelStride)
	case 4:
		gemm4x16(d, xp, p, b, in, dstStride, xStride, r, panelStride)
	case 5:
		gemm5x16(d, xp, p, b, in, dstStride, xStride, r, panelStride)
	case 6:
		gemm6x16(d, xp, p, b, in, dstStride, xStride, r, panelStride)
	default:
		panic("use: kernel called with bad row count")
	}
}
