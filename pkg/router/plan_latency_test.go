package router

import (
	"sync"
	"testing"
	"time"
)

func TestLatencies(t *testing.T) {
	var l Latencies
	if got := l.Get("m"); got != 0 {
		t.Errorf("unobserved latency = %v, want 0", got)
	}
	l.Observe("m", 100*time.Millisecond) // the first sample is the average
	l.Observe("m", 0)                    // ignored
	if got := l.Get("m"); got != 100*time.Millisecond {
		t.Errorf("after one sample: %v, want 100ms", got)
	}
	l.Observe("m", 600*time.Millisecond) // moves a fifth of the way
	if got := l.Get("m"); got != 200*time.Millisecond {
		t.Errorf("after 100ms, 600ms: %v, want 200ms", got)
	}
	if got := l.Get("other"); got != 0 {
		t.Errorf("another model: %v, want 0", got)
	}

	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 1000 {
				l.Observe("c", 50*time.Millisecond)
				_ = l.Get("c")
			}
		})
	}
	wg.Wait()
	if got := l.Get("c"); got != 50*time.Millisecond {
		t.Errorf("constant 50ms samples average %v", got)
	}
}
