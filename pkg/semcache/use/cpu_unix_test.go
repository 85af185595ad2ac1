//go:build unix

package use

import (
	"syscall"
	"time"
)

// processCPU is the CPU time (user + system) this process has used, which on
// a shared, busy machine says more than wall time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
