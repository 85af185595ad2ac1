package router

import (
	"sync"
	"sync/atomic"
	"time"
)

// Latencies keeps each model's recent latency, an exponentially weighted
// moving average in which every observation counts for 1/5, for
// PlanInput.Latency (cost ties go to the faster model). Feed it one kind
// of measure for every model: time to first token suits both streamed and
// whole answers, while total time would favour models that happened to get
// short questions.
//
// The zero value is ready to use; it is safe for concurrent use and lock-free.
type Latencies struct {
	m sync.Map // model → *atomic.Int64 (nanoseconds; 0: none yet)
}

// Observe records one latency of model. Non-positive durations are ignored.
func (l *Latencies) Observe(model string, d time.Duration) {
	if d <= 0 {
		return
	}
	v, ok := l.m.Load(model)
	if !ok {
		v, _ = l.m.LoadOrStore(model, new(atomic.Int64))
	}
	a := v.(*atomic.Int64)
	for {
		old := a.Load()
		next := int64(d)
		if old > 0 {
			next = old + (int64(d)-old)/5
		}
		if a.CompareAndSwap(old, max(next, 1)) {
			return
		}
	}
}

// Get is model's recent latency, 0 when none was observed. Its signature
// is PlanInput.Latency's.
func (l *Latencies) Get(model string) time.Duration {
	if v, ok := l.m.Load(model); ok {
		return time.Duration(v.(*atomic.Int64).Load())
	}
	return 0
}
