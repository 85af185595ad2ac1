//go:build amd64 && !purego

package use

import "golang.org/x/sys/cpu"

type quantKernel struct {
	name string
	// use switches to the kernel set (matrices built after it take its
	// layout) and returns what switches back.
	use func() (restore func())
}

// quantKernels lists the int8 kernel sets this CPU can run.
func quantKernels() []quantKernel {
	with := func(k *qgemmKernels, bytes bool) func() func() {
		return func() func() {
			old, oldBytes := gemmQ, bytesLayout
			gemmQ, bytesLayout = k, bytes
			return func() { gemmQ, bytesLayout = old, oldBytes }
		}
	}
	var ks []quantKernel
	if useAVX2 {
		ks = append(ks, quantKernel{"avx2", with(&qgemmAVX2, false)})
	}
	if useAVX2 && cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VNNI {
		ks = append(ks, quantKernel{"avx512-vnni", with(&qgemmVNNI, false)})
		ks = append(ks, quantKernel{"avx512-vnni-dpbusd", with(gemmQ, true)})
	}
	if len(ks) == 0 {
		ks = append(ks, quantKernel{"go", func() func() { return func() {} }})
	}
	return ks
}
