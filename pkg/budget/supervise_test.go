package budget

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/safe"
)

// newSupervisor restarts a panicked loop after a millisecond.
func newSupervisor() *safe.Supervisor {
	return safe.New(safe.Options{Logger: slog.New(slog.DiscardHandler), Pause: time.Millisecond})
}

// panicAt returns a write hook that panics at stage, n times (n < 0:
// always), and the count of panics it made.
func panicAt(stage string, n int) (func(string), *atomic.Int64) {
	var made atomic.Int64
	return func(s string) {
		if s == stage && (n < 0 || made.Load() < int64(n)) {
			made.Add(1)
			panic(fmt.Sprintf("injected at %s", s))
		}
	}, &made
}

// rowsPerRequest counts the ledger rows of each request id.
func rowsPerRequest(t *testing.T, d *testDB) map[string]int {
	t.Helper()
	rows, err := d.raw(t).Query(`SELECT request_id, COUNT(*) FROM budget_ledger GROUP BY request_id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var id string
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			t.Fatal(err)
		}
		out[id] = n
	}
	return out
}

// TestWriterSurvivesPanics: a panic in the ledger writer does not kill
// the process; the supervisor restarts the loop, which finishes the batch
// the panic interrupted: written again if the panic came before its
// durable point, not written again if it came after, failed (its waiters
// told) if it panics every time. Every row is in the ledger exactly once.
func TestWriterSurvivesPanics(t *testing.T) {
	for _, mode := range []string{"sqlite", "journal"} {
		for _, tc := range []struct {
			name   string
			stage  string
			panics int // how many the hook makes; the settle fails after maxWriteTries
			fails  bool
		}{
			{"before the write: written on the retry", "write", 1, false},
			{"after the durable point: not written again", "written", 1, false},
			{"every try: the waiters are told", "write", maxWriteTries, true},
		} {
			t.Run(mode+"/"+tc.name, func(t *testing.T) {
				sup := newSupervisor()
				hook, made := panicAt(tc.stage, tc.panics)
				d := newTestDB(t)
				o := Options{Supervisor: sup, hooks: testHooks{write: hook}}
				if mode == "journal" {
					o.JournalPath = d.path + ".journal"
				}
				l, closeL := d.open(t, o)
				r, err := l.Accounts.Reserve(ctx, "k", "first", 100)
				if err != nil {
					t.Fatal(err)
				}
				wait, cancel := context.WithTimeout(ctx, 10*time.Second) // a lost batch would leave it waiting
				defer cancel()
				err = l.Accounts.Settle(wait, r, Entry{Cost: 60, Status: 200})
				if errors.Is(err, context.DeadlineExceeded) {
					t.Fatal("the batch was lost: its waiter was never told")
				}
				if tc.fails != (err != nil) {
					t.Fatalf("settle through %d panics: %v", made.Load(), err)
				}
				// The loop goes on: later rows are written.
				for i := range 3 {
					settle(t, l, "k", fmt.Sprint("after-", i), 10)
				}
				l.Accounts.Record(Entry{KeyID: "k", RequestID: "hit", Cache: "hit"})
				closeL()
				want := map[string]int{"first": 1, "after-0": 1, "after-1": 1, "after-2": 1, "hit": 1}
				if tc.fails {
					delete(want, "first")
				}
				if got := rowsPerRequest(t, d); fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("rows per request %v, want %v", got, want)
				}
				if sup.Panics() != int64(tc.panics) || made.Load() != int64(tc.panics) || sup.Err() != nil {
					t.Fatalf("%d panics recovered, %d made; supervisor: %v", sup.Panics(), made.Load(), sup.Err())
				}
			})
		}
	}
}

// TestWriterGivenUp: a writer that panics on every batch is given up by
// the supervisor, which reports it (/readyz turns red); its last waiter
// is told at Close, which neither hangs nor panics.
func TestWriterGivenUp(t *testing.T) {
	sup := newSupervisor()
	hook, _ := panicAt("write", -1)
	l, _ := newTestDB(t).open(t, Options{Supervisor: sup, hooks: testHooks{write: hook}})
	settled := make(chan error, 10)
	for i := 0; sup.Err() == nil; i++ {
		if i == 10 {
			t.Fatalf("not given up after %d panics", sup.Panics())
		}
		r, err := l.Accounts.Reserve(ctx, "k", fmt.Sprint("req-", i), 1)
		if err != nil {
			t.Fatal(err)
		}
		go func() { settled <- l.Accounts.Settle(context.Background(), r, Entry{Cost: 1}) }()
		select {
		case err := <-settled:
			if err == nil {
				t.Fatal("a write that panicked succeeded")
			}
		case <-time.After(time.Second): // the loop was given up with this batch in flight
		}
	}
	if err := l.Close(); err == nil {
		t.Fatal("close wrote a batch that panics")
	}
	select {
	case err := <-settled:
		if err == nil {
			t.Fatal("the batch in flight when the writer was given up succeeded")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the waiter of the batch in flight was never told")
	}
	if err := l.Store.Flush(ctx); !errors.Is(err, errClosed) {
		t.Fatalf("flush after close: %v", err)
	}
}

// TestJournalMoverSurvivesPanic: a panic in the journal mover, after it
// took the journaled rows and before they reached SQLite, loses none of
// them: the restarted mover (or the next reader) applies them, once.
func TestJournalMoverSurvivesPanic(t *testing.T) {
	sup := newSupervisor()
	var made atomic.Int64
	d := newTestDB(t)
	l, closeL := d.open(t, Options{Supervisor: sup, JournalPath: d.path + ".journal", ApplyInterval: time.Millisecond,
		hooks: testHooks{apply: func() {
			if made.Add(1) == 1 {
				panic("injected in the journal mover")
			}
		}}})
	for i := range 3 {
		settle(t, l, "k", fmt.Sprint("req-", i), 10)
	}
	for deadline := time.Now().Add(10 * time.Second); sup.Panics() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the mover never ran")
		}
	}
	rows, err := l.Store.Spend(ctx, "k", time.Time{}, time.Time{})
	if err != nil || len(rows) != 3 {
		t.Fatalf("%d rows after the panic, %v", len(rows), err)
	}
	closeL()
	if got := rowsPerRequest(t, d); fmt.Sprint(got) != "map[req-0:1 req-1:1 req-2:1]" {
		t.Fatalf("rows per request %v", got)
	}
	if sup.Panics() != 1 || sup.Err() != nil {
		t.Fatalf("%d panics; supervisor: %v", sup.Panics(), sup.Err())
	}
}
