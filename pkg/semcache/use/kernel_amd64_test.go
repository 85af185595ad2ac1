//go:build amd64 && !purego

package use

import "golang.org/x/sys/cpu"

type quantKernel struct {
	name string
	use  func() (restore func())
}

// quantKernels lists the int8 kernel sets this CPU can run.
func quantKernels() []quantKernel {
	with := func(k *qgemmKernels) func() func() {
		return func() func() {
			old := gemmQ
			gemmQ = k
			return func() { gemmQ = old }
		}
	}
	var ks []quantKernel
	if useAVX2 {
		ks = append(ks, quantKernel{"avx2", with(&qgemmAVX2)})
	}
	if useAVX2 && cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VNNI {
		ks = append(ks, quantKernel{"avx512-vnni", with(&qgemmVNNI)})
	}
	if len(ks) == 0 {
		ks = append(ks, quantKernel{"go", func() func() { return func() {} }})
	}
	return ks
}
