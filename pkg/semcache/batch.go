package semcache

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/tollgate/tollgate/internal/safe"
)

// Batched wraps an embedder reached over the network (a provider's
// /v1/embeddings) so that concurrent calls share requests: a call made
// while none is in flight goes at once, alone, so an idle gateway adds no
// wait; calls made while one is in flight queue, and when it returns they
// go together as one request of at most maxTexts texts. Under load this
// turns N round trips into about one per round-trip time. The requests are
// sent from a goroutine run under sup: a panic there (in e, say) is logged
// and every caller of the batch it hit gets an error, and later calls are
// served as before.
func Batched(e Embedder, maxTexts int, sup *safe.Supervisor) Embedder {
	if maxTexts < 1 {
		maxTexts = 1
	}
	return &batched{Embedder: e, max: maxTexts, sup: sup}
}

// drainWorker names the goroutine sending batches to the supervisor.
const drainWorker = "semcache embedder batch"

type batched struct {
	Embedder
	max int
	sup *safe.Supervisor

	mu       sync.Mutex
	inFlight bool
	queue    []*waiting
}

type waiting struct {
	ctx   context.Context
	texts []string
	out   [][]float32
	err   error
	done  chan struct{}
}

func (b *batched) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	w := &waiting{ctx: ctx, texts: texts, done: make(chan struct{})}
	b.mu.Lock()
	b.queue = append(b.queue, w)
	if !b.inFlight {
		b.inFlight = true
		b.mu.Unlock()
		b.sup.Go(drainWorker, b.drain)
	} else {
		b.mu.Unlock()
	}
	select {
	case <-w.done:
		return w.out, w.err
	case <-ctx.Done():
		return nil, ctx.Err() // the batch may still embed its texts; nobody reads them
	}
}

// drain sends the queue in batches until it is empty.
func (b *batched) drain() {
	for {
		batch, n := b.next()
		if len(batch) == 0 {
			return
		}
		b.send(batch, n)
	}
}

// next takes the next batch off the queue, or, when the queue is empty,
// ends the drain (inFlight false) and returns none.
func (b *batched) next() ([]*waiting, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var batch []*waiting
	n := 0
	for len(b.queue) > 0 && (len(batch) == 0 || n+len(b.queue[0].texts) <= b.max) {
		w := b.queue[0]
		b.queue = b.queue[1:]
		if w.ctx.Err() != nil {
			w.err = w.ctx.Err()
			close(w.done)
			continue
		}
		batch = append(batch, w)
		n += len(w.texts)
	}
	if len(batch) == 0 {
		b.inFlight = false
	}
	return batch, n
}

// send embeds a batch and answers its callers. A panic is recovered here,
// not by the supervisor: the callers waiting on the batch get it as an
// error (their lookups miss) and the drain goes on with the next batch.
func (b *batched) send(batch []*waiting, n int) {
	defer func() {
		if v := recover(); v != nil {
			b.sup.Recovered(drainWorker, v)
			err := fmt.Errorf("semcache: embedder %s panicked: %v", b.Name(), v)
			for _, w := range batch {
				w.err = err
				close(w.done) // no caller was answered: that is send's last step
			}
		}
	}()
	texts := make([]string, 0, n)
	for _, w := range batch {
		texts = append(texts, w.texts...)
	}
	// The batch serves several requests: it is not cut by the first
	// caller to leave, only when all have.
	ctx, cancel := batchContext(batch)
	defer cancel()
	vs, err := b.Embedder.Embed(ctx, texts)
	if err == nil && len(vs) != len(texts) {
		err = fmt.Errorf("semcache: embedder %s returned %d vectors for %d texts", b.Name(), len(vs), len(texts))
	}
	for _, w := range batch {
		if err != nil {
			w.err = err
		} else {
			w.out, vs = vs[:len(w.texts):len(w.texts)], vs[len(w.texts):]
		}
	}
	for _, w := range batch {
		close(w.done)
	}
}

// batchContext is cancelled once every caller of the batch has left (or
// by the returned release, when the batch is done). Each caller's deadline
// still bounds its own wait.
func batchContext(batch []*waiting) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	var left atomic.Int32
	left.Store(int32(len(batch)))
	stops := make([]func() bool, len(batch))
	for i, w := range batch {
		stops[i] = context.AfterFunc(w.ctx, func() {
			if left.Add(-1) == 0 {
				cancel()
			}
		})
	}
	return ctx, func() {
		for _, stop := range stops {
			stop()
		}
		cancel()
	}
}

// Fits passes on the wrapped embedder's window (Fitter); an embedder
// without one takes any text.
func (b *batched) Fits(text string) bool {
	if f, ok := b.Embedder.(Fitter); ok {
		return f.Fits(text)
	}
	return true
}
