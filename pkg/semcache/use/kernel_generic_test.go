//go:build !amd64 || purego

package use

type quantKernel struct {
	name string
	use  func() (restore func())
}

// quantKernels lists the int8 kernel sets this build can run: the portable one.
func quantKernels() []quantKernel {
	return []quantKernel{{"go", func() func() { return func() {} }}}
}
