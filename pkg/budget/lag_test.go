package budget

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/stdlib"

	"github.com/tollgate/tollgate/internal/pgtest"
)

// TestLag: rows the writer (or the journal's applier) holds count in
// Store.Lag, with the age of the oldest at the injected clock, and the lag
// drains to zero once they are in the tables; on SQLite with and without
// the journal, and on PostgreSQL (the shared store commits through the
// same writer).
func TestLag(t *testing.T) {
	for _, tc := range []struct {
		name  string
		store string // sqlite, journal, postgres
		hold  string // the hook that holds the rows: write (the writer) or apply (the journal's applier)
	}{
		{"sqlite: held by the writer", "sqlite", "write"},
		{"journal: held by the writer", "journal", "write"},
		{"journal: journaled, held by the applier", "journal", "apply"},
		{"postgres: held by the writer", "postgres", "write"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock("2026-03-10T12:00:00Z")
			entered := make(chan struct{}, 1)
			release := make(chan struct{})
			var once sync.Once
			hold := func() {
				select {
				case entered <- struct{}{}:
				default:
				}
				<-release
			}
			o := Options{Now: clk.Now, ApplyInterval: time.Millisecond}
			if tc.hold == "write" {
				o.hooks.write = func(stage string) {
					if stage == "write" {
						hold()
					}
				}
			} else {
				o.hooks.apply = hold
			}
			unblock := func() { once.Do(func() { close(release) }) }
			t.Cleanup(unblock) // before the ledger's close, registered later: cleanups run last first
			var l *Ledger
			switch tc.store {
			case "postgres":
				s := pgtest.NewSchema(t)
				pool := s.Pool(t, 4)
				o.Shared, o.DeliveryInterval = &Shared{Pool: pool}, -1
				var err error
				if l, err = Open(ctx, stdlib.OpenDBFromPool(pool), o); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { l.Close() })
			default:
				d := newTestDB(t)
				if tc.store == "journal" {
					o.JournalPath = d.path + ".journal"
				}
				l, _ = d.open(t, o)
			}
			if got := l.Store.Lag(); got != (Lag{}) {
				t.Fatalf("lag before any row: %+v", got)
			}
			l.Accounts.Record(Entry{KeyID: "k", RequestID: "r1", Status: 200})
			<-entered // the row is held
			clk.Advance(3 * time.Second)
			if got, want := l.Store.Lag(), (Lag{Rows: 1, Oldest: 3 * time.Second}); got != want {
				t.Fatalf("lag with one row held: %+v, want %+v", got, want)
			}
			l.Accounts.Record(Entry{KeyID: "k", RequestID: "r2", Status: 200})
			clk.Advance(time.Second)
			if got, want := l.Store.Lag(), (Lag{Rows: 2, Oldest: 4 * time.Second}); got != want {
				t.Fatalf("lag with two rows held: %+v, want %+v (the oldest's age)", got, want)
			}
			unblock()
			if err := l.Store.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if got := l.Store.Lag(); got != (Lag{}) {
				t.Fatalf("lag after the flush: %+v", got)
			}
		})
	}
}

// TestLagFailedWrite: a batch whose write failed leaves the lag (its rows
// will never be written), without taking an earlier batch still waiting
// with it.
func TestLagFailedWrite(t *testing.T) {
	var l lagTracker
	t0 := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	for seq := uint64(1); seq <= 3; seq++ {
		l.queue(seq, t0.Add(time.Duration(seq)*time.Second))
		l.rows.Add(2)
	}
	l.dropped(2, 2)
	if got, want := l.read(t0.Add(10*time.Second)), (Lag{Rows: 4, Oldest: 9 * time.Second}); got != want {
		t.Fatalf("after batch 2 failed: %+v, want %+v", got, want)
	}
	l.reached(1, 2)
	if got, want := l.read(t0.Add(10*time.Second)), (Lag{Rows: 2, Oldest: 7 * time.Second}); got != want {
		t.Fatalf("after batch 1 was written: %+v, want %+v", got, want)
	}
	l.reached(3, 2)
	if got := l.read(t0.Add(10 * time.Second)); got != (Lag{}) {
		t.Fatalf("after batch 3 was written: %+v", got)
	}
}

// TestOutboxPending: Alerts.Pending counts the deliveries waiting while a
// receiver is down and falls once it is up; a delivery given up on leaves
// the count and adds to Abandoned. On SQLite and PostgreSQL.
func TestOutboxPending(t *testing.T) {
	for _, store := range []string{"sqlite", "postgres"} {
		t.Run(store, func(t *testing.T) {
			rcv := newReceiver(t)
			rcv.status.Store(http.StatusBadGateway)
			clk := newClock("2026-03-10T12:00:00Z")
			o := Options{Now: clk.Now, Webhooks: []Webhook{{URL: rcv.srv.URL}}, MaxAttempts: 2, RetryMax: time.Second,
				ProjectionMinElapsed: 1, DeliveryInterval: -1}
			var l *Ledger
			if store == "postgres" {
				pool := pgtest.NewSchema(t).Pool(t, 4)
				o.Shared = &Shared{Pool: pool}
				var err error
				if l, err = Open(ctx, stdlib.OpenDBFromPool(pool), o); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { l.Close() })
			} else {
				l, _ = newTestDB(t).open(t, o)
			}
			pending := func(want int, when string) {
				t.Helper()
				if err := l.Store.Flush(ctx); err != nil { // journaled alerts reach the outbox
					t.Fatal(err)
				}
				if n, err := l.Alerts.Pending(ctx); err != nil || n != want {
					t.Fatalf("%s: %d pending (%v), want %d", when, n, err, want)
				}
			}
			pending(0, "before any alert")
			for _, key := range []string{"k1", "k2"} {
				if err := l.Accounts.SetPolicy(ctx, key, daily(0.000010)); err != nil {
					t.Fatal(err)
				}
			}
			// 10 µ$ of 10 crosses 50%, 80% and 100% at once: three alerts.
			settle(t, l, "k1", "a", 10)
			pending(3, "crossed, not yet tried")
			deliver(t, l)
			pending(3, "the receiver is down")
			rcv.status.Store(http.StatusOK)
			clk.Advance(time.Second)
			if n := deliver(t, l); n != 3 {
				t.Fatalf("%d delivered once the receiver is up, want 3", n)
			}
			pending(0, "delivered")

			rcv.status.Store(http.StatusBadGateway)
			settle(t, l, "k2", "b", 10)
			pending(3, "k2 crossed")
			for range 2 {
				deliver(t, l)
				clk.Advance(time.Second)
			}
			pending(0, "given up after MaxAttempts")
			if n := l.Alerts.Abandoned(); n != 3 {
				t.Fatalf("%d abandoned, want 3", n)
			}
		})
	}
}
