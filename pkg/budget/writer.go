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

// batch is the rows and alerts of one transaction. Everyone who added to
// it waits on done and then reads err.
type batch struct {
	entries []*Entry
	alerts  []alertRow
	done    chan struct{}
	err     error
}

func newBatch() *batch { return &batch{done: make(chan struct{})} }

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
	db     *sql.DB
	l      *Ledger
	insert *sql.Stmt
	j      *journal // nil: each batch is an SQLite transaction

	mu     sync.Mutex // guards cur and closed; held only to append
	cur    *batch
	closed bool

	kick   chan struct{} // capacity 1: "there is something to write"
	stop   chan struct{}
	exited chan struct{}
}

const insertEntry = `INSERT INTO budget_ledger (ts, request_id, key_id, route, requested_model, model, provider,
	prompt_tokens, completion_tokens, cached_tokens, cost, saved, estimated, unpriced, cache, status, latency_ms, attempts)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

func newWriter(ctx context.Context, l *Ledger) (*writer, error) {
	insert, err := l.db.PrepareContext(ctx, insertEntry)
	if err != nil {
		return nil, fmt.Errorf("budget: prepare: %w", err)
	}
	return &writer{db: l.db, l: l, insert: insert, cur: newBatch(),
		kick: make(chan struct{}, 1), stop: make(chan struct{}), exited: make(chan struct{})}, nil
}

func (w *writer) start() { go w.run() }

// add puts a row (may be nil) and alerts into the next batch and returns
// that batch, to wait on or not.
func (w *writer) add(e *Entry, alerts []alertRow) *batch {
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
		b.entries = append(b.entries, e)
	}
	b.alerts = append(b.alerts, alerts...)
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
	return b
}

func (w *writer) run() {
	defer close(w.exited)
	for {
		select {
		case <-w.kick:
			w.flush()
		case <-w.stop:
			w.flush() // add refuses new rows by now: this is the last batch
			return
		}
	}
}

// flush writes the current batch.
func (w *writer) flush() {
	w.mu.Lock()
	b := w.cur
	w.cur = newBatch()
	w.mu.Unlock()
	if len(b.entries) > 0 || len(b.alerts) > 0 {
		if w.j != nil {
			b.err = w.j.append(b) // the applier wakes the deliverer once the alerts are in SQLite
		} else if b.err = w.commit(b); b.err == nil && len(b.alerts) > 0 {
			w.l.deliver.wake()
		}
		if b.err != nil {
			w.l.log.Error("budget: ledger write failed", "rows", len(b.entries), "alerts", len(b.alerts), "err", b.err)
		}
	}
	close(b.done)
}

func (w *writer) commit(b *batch) error {
	ctx := context.Background() // the busy timeout bounds every wait
	tx, err := w.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("budget: ledger: %w", err)
	}
	defer tx.Rollback()
	if err := insertRows(ctx, tx, w.insert, b.entries, b.alerts); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("budget: ledger: %w", err)
	}
	return nil
}

// insertRows inserts ledger rows and alerts (with their outbox rows) in
// tx: the commit of a batch and the journal's applier share it.
func insertRows(ctx context.Context, tx *sql.Tx, insert *sql.Stmt, entries []*Entry, alerts []alertRow) error {
	ins := tx.StmtContext(ctx, insert)
	for _, e := range entries {
		if _, err := ins.ExecContext(ctx, e.Time.UnixMilli(), e.RequestID, e.KeyID, e.Route, e.RequestedModel, e.Model, e.Provider,
			e.PromptTokens, e.CompletionTokens, e.CachedTokens, int64(e.Cost), int64(e.Saved), e.Estimated, e.Unpriced,
			e.Cache, e.Status, e.Latency.Milliseconds(), e.Attempts); err != nil {
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

// close writes what is pending and stops the writer.
func (w *writer) close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	last := w.cur
	w.mu.Unlock()
	close(w.stop)
	<-w.exited
	return last.err
}
