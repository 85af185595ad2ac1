package use

import (
	"context"
	"runtime"
	"sync"
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
type coalescer struct {
	off bool // run every call on its own (for comparison in benchmarks)

	mu     sync.Mutex // guards active and queue
	active int        // passes running
	queue  []*pending
}

type pending struct {
	texts []string
	out   [][]float32
	done  chan struct{} // closed when out is filled
}

func (c *coalescer) run(ctx context.Context, m *Model, texts []string, out [][]float32) error {
	if c.off {
		return m.embedInto(ctx, texts, out)
	}
	c.mu.Lock()
	if c.active < runtime.GOMAXPROCS(0) {
		c.active++
		c.mu.Unlock()
		err := m.embedInto(ctx, texts, out)
		c.release(m)
		return err
	}
	p := &pending{texts: texts, out: out, done: make(chan struct{})}
	c.queue = append(c.queue, p)
	c.mu.Unlock()
	select {
	case <-p.done:
		return nil
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
	go c.serve(m, batch)
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
		_ = m.embedInto(context.Background(), texts, out)
		for _, p := range batch {
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
