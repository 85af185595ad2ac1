package use

import (
	"context"
	"fmt"
	"runtime"
	"sync"

	"github.com/tollgate/tollgate/internal/safe"
)

// coalescer batches concurrent Embed calls. A call runs its own pass at once
// while fewer passes than GOMAXPROCS are running, so an idle server adds no
// wait and two requests on two cores run side by side. When every core is
// busy, calls queue; the next pass to finish takes its share of the queue
// (1/GOMAXPROCS of it, so that the other cores get the rest rather than idle)
// into one batched pass, which costs less per text than a pass each (the
// weights go through the caches once). It also bounds the passes in flight,
// and so the 5 MB workspaces, to GOMAXPROCS. Measured by
// BenchmarkEmbedParallel.
//
// A pass that panics (a bug in the model on some input) is recovered and
// logged under sup: its callers, the one that ran it or those batched into
// it, get an error, and the pass's slot is freed or serves the queue on.
type coalescer struct {
	off bool // run every call on its own (for comparison in benchmarks)
	sup *safe.Supervisor
	// onPass, when set (by tests), runs before each pass.
	onPass func(texts []string)

	mu     sync.Mutex // guards active and queue
	active int        // passes running
	queue  []*pending
}

type pending struct {
	texts []string
	out   [][]float32
	err   error
	done  chan struct{} // closed when out is filled, or err set
}

// passWorker names embedding passes to the supervisor.
const passWorker = "use embedding pass"

// pass runs one forward pass, turning a panic into an error.
func (c *coalescer) pass(ctx context.Context, m *Model, texts []string, out [][]float32) (err error) {
	defer func() {
		if v := recover(); v != nil {
			c.sup.Recovered(passWorker, v)
			err = fmt.Errorf("use: embedding pass panicked: %v", v)
		}
	}()
	if c.onPass != nil {
		c.onPass(texts)
	}
	return m.embedInto(ctx, texts, out)
}

func (c *coalescer) run(ctx context.Context, m *Model, texts []string, out [][]float32) error {
	if c.off {
		return c.pass(ctx, m, texts, out)
	}
	c.mu.Lock()
	if c.active < runtime.GOMAXPROCS(0) {
		c.active++
		c.mu.Unlock()
		err := c.pass(ctx, m, texts, out)
		c.release(m)
		return err
	}
	p := &pending{texts: texts, out: out, done: make(chan struct{})}
	c.queue = append(c.queue, p)
	c.mu.Unlock()
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		// The pass may still fill out; nobody reads it.
		return ctx.Err()
	}
}

// release ends a pass: with callers waiting, a new goroutine keeps the slot
// and serves them (so this caller returns now); otherwise the slot is freed.
func (c *coalescer) release(m *Model) {
	c.mu.Lock()
	if len(c.queue) == 0 {
		c.active--
		c.mu.Unlock()
		return
	}
	batch := c.take()
	c.mu.Unlock()
	c.sup.Go("use coalescer", func() { c.serve(m, batch) })
}

func (c *coalescer) serve(m *Model, batch []*pending) {
	for {
		var texts []string
		var out [][]float32
		for _, p := range batch {
			texts = append(texts, p.texts...)
			out = append(out, p.out...)
		}
		// Queued calls wait on their own contexts; the pass itself is short.
		err := c.pass(context.Background(), m, texts, out)
		for _, p := range batch {
			p.err = err
			close(p.done)
		}
		c.mu.Lock()
		if len(c.queue) == 0 {
			c.active--
			c.mu.Unlock()
			return
		}
		batch = c.take()
		c.mu.Unlock()
	}
}

// take removes this pass's share of the queue. c.mu must be held.
func (c *coalescer) take() []*pending {
	procs := max(runtime.GOMAXPROCS(0), 1)
	n := (len(c.queue) + procs - 1) / procs
	batch := c.queue[:n:n]
	c.queue = c.queue[n:]
	if len(c.queue) == 0 {
		c.queue = nil
	}
	return batch
}
