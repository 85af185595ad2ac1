package budget

import (
	"sync"
	"sync/atomic"
	"time"
)

// Lag is how far the ledger's write-behind trails the requests: the rows
// handed to the Store that are not yet in its tables (waiting for the
// writer's commit, or journaled and waiting for the applier), and how long
// the oldest of them has waited. Reports and the outbox see a row only
// once it is in the tables.
type Lag struct {
	Rows   int
	Oldest time.Duration // 0 when Rows is 0
}

// Lag reads the ledger's lag without touching the database: cheap enough
// for every metrics scrape.
func (s *Store) Lag() Lag { return s.lag.read(s.now()) }

// lagTracker counts the queued rows and remembers when each unfinished
// batch got its first row. Batches finish in the order they were queued
// (one writer, one applier), except a batch whose write failed, which
// leaves out of turn.
type lagTracker struct {
	rows atomic.Int64 // per row: an atomic add on the settle path, no lock

	mu      sync.Mutex // guards batches; taken once per batch, not per row
	batches []queuedBatch
}

type queuedBatch struct {
	seq   uint64
	since time.Time
}

// queue records that batch seq got its first row at since.
func (l *lagTracker) queue(seq uint64, since time.Time) {
	l.mu.Lock()
	l.batches = append(l.batches, queuedBatch{seq, since})
	l.mu.Unlock()
}

// reached: the rows of every batch up to seq are in the tables; rows of
// them in all.
func (l *lagTracker) reached(seq uint64, rows int) {
	l.rows.Add(-int64(rows))
	l.mu.Lock()
	n := 0
	for n < len(l.batches) && l.batches[n].seq <= seq {
		n++
	}
	l.batches = append(l.batches[:0], l.batches[n:]...)
	l.mu.Unlock()
}

// dropped: batch seq's rows will never be in the tables (its write
// failed); earlier batches may still be waiting.
func (l *lagTracker) dropped(seq uint64, rows int) {
	l.rows.Add(-int64(rows))
	l.mu.Lock()
	for i, b := range l.batches {
		if b.seq == seq {
			l.batches = append(l.batches[:i], l.batches[i+1:]...)
			break
		}
	}
	l.mu.Unlock()
}

func (l *lagTracker) read(now time.Time) Lag {
	l.mu.Lock()
	defer l.mu.Unlock()
	rows := int(l.rows.Load())
	if rows <= 0 || len(l.batches) == 0 {
		return Lag{Rows: max(rows, 0)}
	}
	return Lag{Rows: rows, Oldest: max(now.Sub(l.batches[0].since), 0)}
}
