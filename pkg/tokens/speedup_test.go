//go:build linux

package tokens

import (
	"runtime"
	"syscall"
	"testing"
	"time"
)

// threadCPU is the CPU time this OS thread has used (RUSAGE_THREAD): unlike
// wall time it does not grow while the thread waits for a core, which on a
// shared 2-core machine is most of the noise.
func threadCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSpeedup alternates this package's cold count and tiktoken-go's
// Encode on the same input, so both see the same machine load, and reports
// the ratio of their wall times and of their thread CPU times. Background GC
// work caused by tiktoken-go's allocations runs on other threads and is not
// charged to it, so the CPU ratio understates the difference.
func BenchmarkSpeedup(b *testing.B) {
	inputs := benchInputs(b)
	for _, enc := range []string{O200K, CL100K} {
		for _, input := range []string{"prose", "code"} {
			text := inputs[input]
			b.Run(enc+"/"+input, func(b *testing.B) {
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				c := NewCounter(WithSegmentCache(0), WithPieceCache(0))
				ref := reference(b, enc)
				if _, err := c.Count(enc, "warm up: load the vocabulary"); err != nil {
					b.Fatal(err)
				}
				var ourWall, refWall, ourCPU, refCPU time.Duration
				for b.Loop() {
					w0, c0 := time.Now(), threadCPU()
					n, _ := c.Count(enc, text)
					w1, c1 := time.Now(), threadCPU()
					m := len(ref.Encode(text, nil, nil))
					w2, c2 := time.Now(), threadCPU()
					if n != m {
						b.Fatalf("got %d tokens, tiktoken-go %d", n, m)
					}
					ourWall += w1.Sub(w0)
					refWall += w2.Sub(w1)
					ourCPU += c1 - c0
					refCPU += c2 - c1
				}
				mb := float64(len(text)) * float64(b.N) / 1e6
				b.ReportMetric(refWall.Seconds()/ourWall.Seconds(), "x-wall")
				b.ReportMetric(refCPU.Seconds()/ourCPU.Seconds(), "x-cpu")
				b.ReportMetric(mb/ourCPU.Seconds(), "MB/cpu-s")
				b.ReportMetric(mb/refCPU.Seconds(), "ref-MB/cpu-s")
				b.ReportMetric(0, "ns/op")
			})
		}
	}
}
