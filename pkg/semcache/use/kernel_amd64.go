package use

const maxKernelRows = 6

func kernel(dst, x, panel, bias []float32, rows, in, out int, relu bool) {
	kernelGo(dst, x, panel, bias, rows, in, out, relu)
}

// kernelName says which matmul kernel this build uses.
const kernelName = "go"
