package semcache

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/tollgate/tollgate/internal/safe"
)

// Write-behind with group commit.
//
// Store keeps an entry in memory at once and hands its row to the writer,
// one goroutine that writes what is queued in one transaction per
// batch (at most maxBatchRows rows, or whatever was queued when the queue
// went idle: one row when calls are rare, hundreds under load), with its
// statements prepared once. Until a row is committed the writer keeps its
// entry in pending, where Cache.entry finds it whatever the bounded hot
// cache evicted.
//
// Ops are written in the order they were queued: a replacement deletes the
// rows of its exact key before inserting its own, so the newest wins, and
// Delete and SweepExpired flush the queue before their own statements, so
// no row queued before them is written after them.
//
// The cache is not the ledger: a crash loses the rows queued and not yet
// committed (at most maxQueued plus one batch), and a batch SQLite fails to
// write is logged and dropped, its entries forgotten from memory and the
// index, rather than retried. Lost rows are misses later (or, for a lost
// replacement, the entry it replaced, still live, after a restart), never
// wrong answers. If the writer itself is given up after repeated panics,
// Store waits for room until its ctx ends and Close writes what is queued.
const (
	maxQueued    = 4096 // ops waiting for the writer; Store waits when full
	maxBatchRows = 256  // rows per transaction
	// dropTimeout bounds the index call that deletes the points of
	// entries a failed write dropped.
	dropTimeout = 10 * time.Second
)

// errClosed is what Store gets once Close began.
var errClosed = errors.New("semcache: cache closed")

// op is one queued write: an entry's row (r, with its entry e), vectors for
// rows stored without one (vecs), or a flush marker (done) closed once
// every op queued before it is written or dropped.
type op struct {
	r    *row
	e    *Entry
	vecs *vectorUpdate
	done chan struct{}
}

// vectorUpdate sets the vectors of entries stored without one.
type vectorUpdate struct {
	ids      []uint64
	vecs     [][]float32
	embedder string
}

// rows is how many rows op writes, for the batch bound.
func (o op) rows() int {
	switch {
	case o.r != nil:
		return 1
	case o.vecs != nil:
		return len(o.vecs.ids)
	}
	return 0
}

const (
	insertEntrySQL = `INSERT INTO semcache_entries
		(id, tenant, model, scope, exact_key, query, vector, embedder, response, answered_by, cost, usage, created_at, expires_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT(id) DO UPDATE SET tenant = excluded.tenant, model = excluded.model, scope = excluded.scope,
			exact_key = excluded.exact_key, query = excluded.query, vector = excluded.vector, embedder = excluded.embedder,
			response = excluded.response, answered_by = excluded.answered_by, cost = excluded.cost, usage = excluded.usage,
			created_at = excluded.created_at, expires_at = excluded.expires_at`
	deleteKeySQL = `DELETE FROM semcache_entries WHERE exact_key = ?`
	setVectorSQL = `UPDATE semcache_entries SET vector = ?, embedder = ? WHERE id = ?`
	writerName   = "semcache writer"
)

// writer is the cache's write-behind store.
type writer struct {
	db *sql.DB
	// timeout bounds a batch's transaction (PostgreSQL: a server that no
	// longer answers); 0 on SQLite, whose busy timeout bounds every wait
	// and whose driver would watch a cancellable context per statement.
	timeout time.Duration
	log     *slog.Logger
	// dropped forgets from memory the entries of a batch SQLite failed to
	// write; it runs before they leave pending, so their ids are not drawn
	// again meanwhile. Entries Store has not finished putting in memory
	// are marked lost instead, and Store drops them (stored).
	dropped func(ids []uint64)

	ins, del, vec *sql.Stmt // prepared once, used in every transaction

	ops chan op // capacity maxQueued

	// sendMu is held (read) across a send on ops and (write) by close
	// when it refuses new ops: no op is queued after close drained ops.
	sendMu sync.RWMutex
	closed bool // under sendMu

	mu      sync.Mutex // guards pending and its values
	pending map[uint64]*unwritten

	// inflight is the batch being written, for the panic path and for
	// close. Only the loop touches it, and close once the loop has halted.
	inflight []op

	sup      *safe.Supervisor
	stop     chan struct{} // closed by close: the loop returns, senders give up
	stopOnce sync.Once
	running  sync.Mutex // held while the loop runs
	halted   bool       // under running: a run starting late returns at once
}

// unwritten is a queued entry, servable until its row is committed.
type unwritten struct {
	e *Entry
	// inMemory: Store has put the entry in memory (stored); lost: its
	// write failed before, and Store drops it.
	inMemory, lost bool
}

// newWriter prepares the statements; start runs the loop.
func newWriter(ctx context.Context, db *sql.DB, q *queries, timeout time.Duration, log *slog.Logger, sup *safe.Supervisor, dropped func([]uint64)) (*writer, error) {
	w := &writer{
		db: db, timeout: timeout, log: log, sup: sup, dropped: dropped,
		ops:     make(chan op, maxQueued),
		pending: map[uint64]*unwritten{},
		stop:    make(chan struct{}),
	}
	var err error
	for _, s := range []struct {
		stmt **sql.Stmt
		sql  string
	}{{&w.ins, q.insert}, {&w.del, q.deleteKey}, {&w.vec, q.setVec}} {
		if s.sql == "" {
			continue // PostgreSQL: the insert deletes the key's other rows
		}
		if *s.stmt, err = db.PrepareContext(ctx, s.sql); err != nil {
			w.closeStmts()
			return nil, fmt.Errorf("semcache: writer: %w", err)
		}
	}
	return w, nil
}

// start runs the loop under the supervisor: a panic drops the batch being
// written (its entries forgotten, its flushes released) and the loop is
// started again, or given up and reported by Supervisor.Err.
func (w *writer) start() {
	w.sup.Loop(writerName, w.stop, func() {
		w.running.Lock()
		defer w.running.Unlock()
		if !w.halted {
			w.run()
		}
	})
}

// store queues an entry's row and keeps its entry servable until the row
// is written. It waits while the queue is full, until ctx ends. The caller
// then puts the entry in memory and calls stored.
func (w *writer) store(ctx context.Context, r *row, e *Entry) error {
	u := &unwritten{e: e}
	w.mu.Lock()
	w.pending[r.id] = u
	w.mu.Unlock()
	if err := w.send(ctx, op{r: r, e: e}); err != nil {
		w.mu.Lock()
		if w.pending[r.id] == u {
			delete(w.pending, r.id)
		}
		w.mu.Unlock()
		if errors.Is(err, errClosed) {
			return err
		}
		return fmt.Errorf("semcache: store: %w", err)
	}
	return nil
}

// stored says that the entry of id is in memory, and whether its write
// already failed (lost): the caller then drops it itself, as the writer
// could not while it was being put in memory.
func (w *writer) stored(id uint64, e *Entry) (lost bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	u := w.pending[id]
	if u == nil || u.e != e {
		return false // written already
	}
	if u.lost {
		delete(w.pending, id)
		return true
	}
	u.inMemory = true
	return false
}

// setVectors queues the vectors of entries stored without one, after
// their rows.
func (w *writer) setVectors(ctx context.Context, ids []uint64, vecs [][]float32, embedder string) error {
	if err := w.send(ctx, op{vecs: &vectorUpdate{ids: ids, vecs: vecs, embedder: embedder}}); err != nil {
		return fmt.Errorf("semcache: set vectors: %w", err)
	}
	return nil
}

// flush returns once every op queued before it is written or dropped, or
// when ctx ends first. After close it returns at once: close wrote all.
func (w *writer) flush(ctx context.Context) error {
	done := make(chan struct{})
	if err := w.send(ctx, op{done: done}); err != nil {
		if errors.Is(err, errClosed) {
			return nil
		}
		return err
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for the writer: %w", ctx.Err())
	}
}

func (w *writer) send(ctx context.Context, o op) error {
	w.sendMu.RLock()
	defer w.sendMu.RUnlock()
	if w.closed {
		return errClosed
	}
	select {
	case w.ops <- o:
		return nil
	default:
	}
	select { // full: wait for room (backpressure)
	case w.ops <- o:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("write queue full: %w", ctx.Err())
	case <-w.stop:
		return errClosed
	}
}

// pendingEntry returns the entry of a row not yet written, or nil.
func (w *writer) pendingEntry(id uint64) *Entry {
	w.mu.Lock()
	defer w.mu.Unlock()
	if u := w.pending[id]; u != nil {
		return u.e
	}
	return nil
}

// isPending reports whether id names a row not yet written.
func (w *writer) isPending(id uint64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.pending[id]
	return ok
}

// committed returns the ids of ids whose rows are not waiting to be
// written (ids is reused).
func (w *writer) committed(ids []uint64) []uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := ids[:0]
	for _, id := range ids {
		if _, ok := w.pending[id]; !ok {
			out = append(out, id)
		}
	}
	return out
}

// run writes batches until stop. After a panic the supervisor runs it
// again; the batch the panic interrupted was dropped on the way out.
func (w *writer) run() {
	returned := false
	defer func() {
		if !returned {
			w.abandon(errors.New("semcache: writer panicked"))
		}
	}()
	for {
		select {
		case <-w.stop:
			returned = true
			return // close writes what is left
		case o := <-w.ops:
			w.inflight = append(w.inflight[:0], o)
			w.fill()
			w.write()
		}
	}
}

// fill takes what is queued into the batch, up to maxBatchRows rows,
// without waiting: the batch is as large as the load made it.
func (w *writer) fill() {
	n := w.inflight[0].rows()
	for n < maxBatchRows {
		select {
		case o := <-w.ops:
			w.inflight = append(w.inflight, o)
			n += o.rows()
		default:
			return
		}
	}
}

// write commits the batch in flight, or drops it when SQLite fails, and
// releases its rows from pending and its flushes.
func (w *writer) write() {
	if err := w.commit(w.inflight); err != nil {
		w.abandon(err)
		return
	}
	w.settle()
}

// abandon drops the batch in flight: logged, its entries forgotten from
// memory (those Store is still putting there: by Store), then released.
func (w *writer) abandon(err error) {
	var ids []uint64
	rows := 0
	w.mu.Lock()
	for _, o := range w.inflight {
		if o.r == nil {
			continue
		}
		rows++
		if u := w.pending[o.r.id]; u != nil && u.e == o.e {
			if u.inMemory {
				ids = append(ids, o.r.id)
			} else {
				u.lost = true
			}
		}
	}
	w.mu.Unlock()
	if rows > 0 {
		w.log.Error("semcache: write failed: entries dropped", "rows", rows, "err", err)
	}
	if len(ids) > 0 {
		w.dropped(ids)
	}
	w.settle()
}

// settle releases the batch in flight: its rows leave pending (unless the
// id names a newer entry there, or one lost that Store drops) and its
// flushes are told.
func (w *writer) settle() {
	w.mu.Lock()
	for _, o := range w.inflight {
		if o.r == nil {
			continue
		}
		if u := w.pending[o.r.id]; u != nil && u.e == o.e && !u.lost {
			delete(w.pending, o.r.id)
		}
	}
	w.mu.Unlock()
	for i, o := range w.inflight {
		if o.done != nil {
			close(o.done)
		}
		w.inflight[i] = op{} // let the rows go
	}
	w.inflight = w.inflight[:0]
}

// commit writes ops in one transaction, in order.
func (w *writer) commit(ops []op) error {
	rows := 0
	for _, o := range ops {
		rows += o.rows()
	}
	if rows == 0 {
		return nil // flushes only
	}
	ctx := context.Background() // SQLite: the busy timeout bounds every wait
	if w.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, w.timeout)
		defer cancel()
	}
	tx, err := w.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("semcache: write: %w", err)
	}
	defer tx.Rollback()
	ins, vec := tx.StmtContext(ctx, w.ins), tx.StmtContext(ctx, w.vec)
	var del *sql.Stmt
	if w.del != nil {
		del = tx.StmtContext(ctx, w.del)
	}
	for _, o := range ops {
		switch {
		case o.r != nil:
			r := o.r
			// The rows of the same exact key are replaced (those not in
			// memory too: expired, or left by a failed write).
			if del != nil {
				if _, err := del.ExecContext(ctx, r.exactKey); err != nil {
					return fmt.Errorf("semcache: write: %w", err)
				}
			}
			var v []byte
			if r.vector != nil {
				v = encodeVector(r.vector)
			}
			// Store drew an id no entry in memory holds; a row that
			// still holds it is dead (expired, not loaded) and is
			// overwritten.
			if _, err := ins.ExecContext(ctx, int64(r.id), r.tenant, r.model, r.scope, r.exactKey, r.query, v, r.embedder,
				r.response, r.answeredBy, int64(r.cost), r.usage, r.created.UnixMilli(), r.expires.UnixMilli()); err != nil {
				return fmt.Errorf("semcache: write: %w", err)
			}
		case o.vecs != nil:
			for i, id := range o.vecs.ids {
				if _, err := vec.ExecContext(ctx, encodeVector(o.vecs.vecs[i]), o.vecs.embedder, int64(id)); err != nil {
					return fmt.Errorf("semcache: write: vectors: %w", err)
				}
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("semcache: write: %w", err)
	}
	return nil
}

// close refuses new ops, stops the loop (running, waiting for a restart
// or given up) and writes what is left itself: every op queued before.
func (w *writer) close() (err error) {
	// Senders waiting for room give up (or get it): they hold sendMu.
	w.stopOnce.Do(func() { close(w.stop) })
	w.sendMu.Lock()
	if w.closed {
		w.sendMu.Unlock()
		return nil
	}
	w.closed = true
	w.sendMu.Unlock()
	w.running.Lock()
	w.halted = true
	w.running.Unlock()
	defer w.closeStmts()
	defer func() {
		if v := recover(); v != nil {
			w.sup.Recovered(writerName, v)
			err = fmt.Errorf("semcache: writer panicked while closing: %v", v)
			w.abandon(err)
			for len(w.ops) > 0 {
				w.inflight = append(w.inflight[:0], <-w.ops)
				w.abandon(err)
			}
		}
	}()
	for len(w.ops) > 0 {
		w.inflight = append(w.inflight[:0], <-w.ops)
		w.fill()
		if werr := w.commit(w.inflight); werr != nil {
			err = werr
			w.abandon(werr)
			continue
		}
		w.settle()
	}
	return err
}

func (w *writer) closeStmts() {
	for _, s := range []*sql.Stmt{w.ins, w.del, w.vec} {
		if s != nil {
			s.Close()
		}
	}
}

// dropUnwritten forgets the entries of rows the writer could not write,
// from memory and from the index (whose points may carry the entry to
// other replicas): they are misses from now on.
func (c *Cache) dropUnwritten(ids []uint64) {
	c.forget(ids)
	if !c.semantic {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), dropTimeout)
	defer cancel()
	if err := c.opts.Index.Delete(ctx, ids...); err != nil {
		c.log.Warn("semcache: delete the points of unwritten entries", "err", err)
	}
}

// newID draws an entry id (Options.NewID, 63 bits kept) that no entry in
// memory and no row waiting to be written holds, in at most maxIDAttempts
// draws. Call it under wmu. SQLite may still hold the id in a dead row
// (expired, never loaded): the writer overwrites it.
func (c *Cache) newID() (uint64, error) {
	for range maxIDAttempts {
		id := c.opts.NewID() & idMask
		if id == 0 {
			continue
		}
		c.mu.RLock()
		_, taken := c.meta[id]
		c.mu.RUnlock()
		if !taken && !c.w.isPending(id) {
			return id, nil
		}
	}
	return 0, fmt.Errorf("semcache: store: no free entry id in %d draws", maxIDAttempts)
}
