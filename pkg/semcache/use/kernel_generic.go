//go:build !amd64 || purego

package use

const maxKernelRows = 6

// kernelName says which matmul kernel this build uses.
const kernelName = "go"

// halfWeights is false: the portable kernel reads fp32 weights.
const halfWeights = false

func kernel(dst, x, panel, bias []float32, rows, in, dstStride, xStride, panelStride int, relu bool) {
	kernelGo(dst, x, panel, bias, rows, in, dstStride, xStride, panelStride, relu)
}

func kernelHalf(dst, x []float32, panel []uint16, bias []float32, rows, in, dstStride, xStride, panelStride int, relu bool) {
	panic("use: no fp16 kernel in this build")
}
