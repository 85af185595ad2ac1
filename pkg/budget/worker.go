package budget

import (
	"sync"

	"github.com/tollgate/tollgate/internal/safe"
)

// worker is a background loop run by the supervisor, which recovers a
// panic, logs it with its stack and starts the loop again, or gives it up
// and reports it (/readyz). Its owner can stop it and wait for it whatever
// became of it: running, waiting to be restarted, or given up. A loop that
// can be restarted must leave its work where the next run finds it.
type worker struct {
	name string
	sup  *safe.Supervisor
	stop chan struct{}
	once sync.Once  // closes stop
	mu   sync.Mutex // held while the loop runs
	done bool       // halted: a run that starts late returns at once (under mu)
}

func newWorker(sup *safe.Supervisor, name string) *worker {
	return &worker{name: name, sup: sup, stop: make(chan struct{})}
}

// start runs loop under the supervisor; loop returns once stop is closed.
func (w *worker) start(loop func(stop <-chan struct{})) {
	w.sup.Loop(w.name, w.stop, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		if !w.done {
			loop(w.stop)
		}
	})
}

// halt stops the loop and returns once it is not running and never will
// again, so that its owner may finish its work itself.
func (w *worker) halt() {
	w.once.Do(func() { close(w.stop) })
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}

// recovered reports a panic the owner recovered while finishing the
// loop's work itself (the supervisor does not see it).
func (w *worker) recovered(v any) { w.sup.Recovered(w.name, v) }
