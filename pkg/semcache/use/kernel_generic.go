//go:build !amd64 || purego

package use

const maxKernelRows = 6

const maxBytesRows = 12

// kernelName says which matmul kernels this build uses.
const kernelName = "go"

func kernel(dst, x, panel, bias []float32, rows, in, dstStride, xStride, panelStride int, relu bool) {
	kernelGo(dst, x, panel, bias, rows, in, dstStride, xStride, panelStride, relu)
}

func qkernel(dst []float32, x []int16, panel []int8, scale, bias, xscale []float32, rows, in, dstStride, xStride int, relu bool) {
	qkernelGo(dst, x, panel, scale, bias, xscale, rows, in, dstStride, xStride, relu)
}

// bytesLayout: there are no byte kernels to store the weights for.
const bytesLayout = false

func qkernelBytes(dst []float32, x []int8, panel []uint8, scale, bias, xscale []float32, xsum []int32, rows, in, dstStride, xStride int, relu bool) {
	qkernelBytesGo(dst, x, panel, scale, bias, xscale, xsum, rows, in, dstStride, xStride, relu)
}

func quantRowBytes(dst []int8, x []float32, inv float32) int32 { return quantRowBytesGo(dst, x, inv) }

func quantRow(dst []int16, x []float32, inv float32) { quantRowGo(dst, x, inv) }
