//go:build !amd64 || purego

package use

const maxKernelRows = 6

// kernelName says which matmul kernel this build uses.
const kernelName = "go"

func kernel(dst, x, panel, bias []float32, rows, in, dstStride, xStride, panelStride int, relu bool) {
	kernelGo(dst, x, panel, bias, rows, in, dstStride, xStride, panelStride, relu)
}
