package budget

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
)

// errClosed is what a row handed to a closed Ledger gets.
var errClosed = errors.New("budget: ledger closed")

// maxWriteTries is how many times the writer tries a batch whose write
// panicked: once again after a restart (the panic may have been a passing
// one), then its waiters are told the error.
const maxWriteTries = 2

// batch is the rows and alerts of one transaction. Everyone who added to
// it waits on done and then reads err.
type batch struct {
	entries []*Entry
	alerts  []alertRow
	// sync: someone waits for a flush of PostgreSQL's WAL even if the
	// batch holds nothing (Store.flushWAL).
	sync bool
	done chan struct{}
	err  error

	// Owned by the writer goroutine: how many writes of the batch began,
	// and whether one reached its durable point (committed or journaled),
	// so that a restart after a panic writes it again only if it is not.
	tries   int
	written bool

	// seq numbers the writer's batches in order, for the lag (lag.go);
	// untracked: the lag no longer counts its rows (owned by the writer).
	seq       uint64
	untracked bool
}

func newBatch() *batch { return &batch{done: make(chan struct{})} }

func (b *batch) empty() bool { return len(b.entries) == 0 && len(b.alerts) == 0 && !b.sync }

// wait returns once the batch is committed or journaled (nil) or failed,
// or when ctx ends first (the row is written all the same).
func (b *batch) wait(ctx context.Context) error {
	select {
	case <-b.done:
		return b.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// writer is the ledger's group commit: one goroutine writes batches, each
// in one transaction or, with a journal, one append. While a batch commits, the next one fills up, so the
// batch size follows the load by itself: one row when idle (no added
// latency), hundreds under a burst (one commit for all of them).
type writer struct {
	s *Store

	mu     sync.Mutex // guards cur, seq and closed; held only to append
	cur    *batch
	seq    uint64 // cur's
	closed bool

	// inflight is the batch being written; a panic leaves it here for the
	// restarted loop (or close) to finish. Only the loop touches it, and
	// close once the loop has halted.
	inflight *batch

	kick chan struct{} // capacity 1: "there is something to write"
	loop *worker
}

const insertEntry = `INSERT INTO budget_ledger (ts, request_id, key_id, route, requested_model, model, provider,
	prompt_tokens, completion_tokens, cached_tokens, cost, saved, estimated, unpriced, cache, status, latency_ms, attempts, judge, judge_cost,
	customer, tags, guards)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

func newWriter(s *Store) *writer {
	w := &writer{s: s, cur: newBatch(), kick: make(chan struct{}, 1), loop: newWorker(s.sup, "budget ledger writer")}
	w.cur.seq = w.nextSeq()
	return w
}

// nextSeq is the next batch's number. Call with mu held (or before the
// writer is shared).
func (w *writer) nextSeq() uint64 {
	w.seq++
	return w.seq
}

func (w *writer) start() { w.loop.start(w.run) }

// add puts a row (may be nil) and alerts into the next batch and returns
// that batch, to wait on or not.
func (w *writer) add(e *Entry, alerts []alertRow) *batch { return w.addSync(e, alerts, false) }

// addSync is add, the batch also flushing the WAL when sync (PostgreSQL).
func (w *writer) addSync(e *Entry, alerts []alertRow, sync bool) *batch {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		b := newBatch()
		b.err = errClosed
		close(b.done)
		return b
	}
	b := w.cur
	if e != nil {
		if len(b.entries) == 0 {
			w.s.lag.queue(b.seq, w.s.now())
		}
		w.s.lag.rows.Add(1)
		b.entries = append(b.entries, e)
	}
	b.alerts = append(b.alerts, alerts...)
	b.sync = b.sync || sync
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
	return b
}

// run writes batches until stop. After a panic the supervisor runs it
// again, and it first finishes the batch the panic interrupted.
func (w *writer) run(stop <-chan struct{}) {
	returned := false
	defer func() {
		if !returned {
			w.interrupted()
		}
	}()
	if w.inflight != nil {
		w.flush()
	}
	for {
		select {
		case <-w.kick:
			w.flush()
		case <-stop:
			returned = true
			return // close writes the last batch
		}
	}
}

// interrupted runs while a panic unwinds the loop: a batch whose write
// panicked maxWriteTries times is failed, so that its waiters are not left
// waiting for a write that may never succeed.
func (w *writer) interrupted() {
	b := w.inflight
	if b == nil || b.tries < maxWriteTries {
		return
	}
	w.fail(b, fmt.Errorf("budget: ledger write panicked %d times; its rows are not written", b.tries))
}

// fail tells the waiters of an unfinished batch err.
func (w *writer) fail(b *batch, err error) {
	if w.inflight == b {
		w.inflight = nil
	}
	select {
	case <-b.done:
	default:
		w.s.log.Error("budget: ledger write failed", "rows", len(b.entries), "alerts", len(b.alerts), "err", err)
		b.err = err
		w.untrack(b)
		close(b.done)
	}
}

// flush writes the batch a panic interrupted, if any, else the current
// one. A batch is written at most once: a retry after its durable point
// only tells its waiters.
func (w *writer) flush() {
	b := w.inflight
	if b == nil {
		w.mu.Lock()
		b = w.cur
		w.cur = newBatch()
		w.cur.seq = w.nextSeq()
		w.mu.Unlock()
		w.inflight = b
	}
	if !b.written && !b.empty() {
		b.tries++
		w.hook("write")
		if w.s.j != nil {
			b.err = w.s.j.append(b) // the applier wakes the deliverer once the alerts are in SQLite
		} else {
			b.err = w.commit(b)
		}
		if b.err != nil {
			w.s.log.Error("budget: ledger write failed", "rows", len(b.entries), "alerts", len(b.alerts), "err", b.err)
		}
	}
	if b.written {
		w.hook("written")
		if w.s.j == nil && len(b.alerts) > 0 {
			w.s.onAlerts()
		}
	}
	w.untrack(b)
	w.inflight = nil
	close(b.done)
}

// untrack takes a finished batch's rows out of the lag: committed, or
// failed. A journaled batch is the applier's to untrack once its rows are
// in SQLite.
func (w *writer) untrack(b *batch) {
	switch {
	case b.untracked || b.written && w.s.j != nil:
		return
	case b.written:
		w.s.lag.reached(b.seq, len(b.entries))
	default:
		w.s.lag.dropped(b.seq, len(b.entries))
	}
	b.untracked = true
}

func (w *writer) hook(stage string) {
	if h := w.s.hooks.write; h != nil {
		h(stage)
	}
}

// commit writes b in one transaction and marks it written once committed.
func (w *writer) commit(b *batch) error {
	ctx := context.Background() // the busy timeout bounds every wait
	if w.s.pool != nil {
		if err := commitShared(ctx, w.s.pool, b.entries, b.alerts); err != nil {
			return err
		}
		b.written = true
		return nil
	}
	tx, err := w.s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("budget: ledger: %w", err)
	}
	defer tx.Rollback()
	if err := insertRows(ctx, tx, w.s.insert, b.entries, b.alerts); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("budget: ledger: %w", err)
	}
	b.written = true
	return nil
}

// insertRows inserts ledger rows and alerts (with their outbox rows) in
// tx: the commit of a batch and the journal's applier share it.
func insertRows(ctx context.Context, tx *sql.Tx, insert *sql.Stmt, entries []*Entry, alerts []alertRow) error {
	ins := tx.StmtContext(ctx, insert)
	for _, e := range entries {
		if _, err := ins.ExecContext(ctx, e.Time.UnixMilli(), e.RequestID, e.KeyID, e.Route, e.RequestedModel, e.Model, e.Provider,
			e.PromptTokens, e.CompletionTokens, e.CachedTokens, int64(e.Cost), int64(e.Saved), e.Estimated, e.Unpriced,
			e.Cache, e.Status, e.Latency.Milliseconds(), e.Attempts, e.Judge, int64(e.JudgeCost), e.Customer, e.tagsArg(), e.guardsArg()); err != nil {
			return fmt.Errorf("budget: ledger: %w", err)
		}
	}
	for i := range alerts {
		if err := alerts[i].insert(ctx, tx); err != nil {
			return err
		}
	}
	return nil
}

// close refuses new rows, stops the loop (whether it runs, waits for a
// restart or was given up) and writes what is left here: the batch a
// panic interrupted, then the last one.
func (w *writer) close() (err error) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	last := w.cur
	w.mu.Unlock()
	w.loop.halt()
	defer func() {
		if v := recover(); v != nil {
			w.loop.recovered(v)
			err = fmt.Errorf("budget: ledger writer panicked while closing: %v", v)
			if w.inflight != nil {
				w.fail(w.inflight, err)
			}
			w.fail(last, err)
		}
	}()
	if w.inflight != nil {
		w.flush()
	}
	w.flush() // add refuses new rows by now: this is the last batch
	return last.err
}
