package budget

import (
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/migrate"
	"github.com/tollgate/tollgate/pkg/llm"
)

// sameCounts tells a row no guard fired on (nil) from one with counts.
func sameCounts(a, b map[string]int) bool {
	return (a == nil) == (b == nil) && maps.Equal(a, b)
}

// TestLedgerGuardsRoundTrip: the guards that fired on a request are
// written on every path a row takes (a settle, a record with a cost and
// one without: a blocked request; SQLite's writer, its journal, and
// PostgreSQL's settle, record and group commit), stored as a JSON object
// with sorted keys, and read back as they were; a row without any reads
// back as nil.
func TestLedgerGuardsRoundTrip(t *testing.T) {
	fired := map[string]int{"secrets": 1, "pii": 2}
	const column = `{"pii":2,"secrets":1}`
	rows := []struct {
		name   string
		write  func(t *testing.T, l *Ledger, id string, e Entry)
		guards map[string]int
		col    string
	}{
		{"settled", settleRow, fired, column},
		{"recorded with a cost", recordRow(7), fired, column},
		{"blocked: recorded without a cost", recordRow(0), map[string]int{"secrets": 1}, `{"secrets":1}`},
		{"no guard fired", settleRow, nil, `{}`},
	}
	for _, name := range []string{"sqlite", "sqlite-journal", "postgres"} {
		t.Run(name, func(t *testing.T) {
			cl := customerLedgers(t, name, newReceiver(t).srv.URL)
			l := cl.replicas[0]
			for _, r := range rows {
				t.Run(r.name, func(t *testing.T) {
					id := "req-" + r.name
					r.write(t, l, id, Entry{KeyID: "k", Model: "m", Status: 200, Guards: maps.Clone(r.guards)})
					got, err := l.Store.Spend(ctx, "k", time.Time{}, time.Time{})
					if err != nil {
						t.Fatal(err)
					}
					var e *Entry
					for i := range got {
						if got[i].RequestID == id {
							e = &got[i]
						}
					}
					if e == nil {
						t.Fatalf("no row %s among %d", id, len(got))
					}
					if !sameCounts(e.Guards, r.guards) {
						t.Errorf("guards read back %#v, want %#v", e.Guards, r.guards)
					}
					q := `SELECT guards FROM budget_ledger WHERE request_id = ?`
					if name == "postgres" {
						q = migrate.Rebind(migrate.Postgres, q)
					}
					var col string
					if err := cl.raw.QueryRow(q, id).Scan(&col); err != nil {
						t.Fatal(err)
					}
					if col != r.col {
						t.Errorf("column %s, want %s", col, r.col)
					}
				})
			}
		})
	}
}

func settleRow(t *testing.T, l *Ledger, id string, e Entry) {
	t.Helper()
	r, err := l.Accounts.Reserve(ctx, e.KeyID, id, 1000)
	if err != nil {
		t.Fatal(err)
	}
	e.Cost = 10
	if err := l.Accounts.Settle(ctx, r, e); err != nil {
		t.Fatal(err)
	}
}

func recordRow(cost llm.Micros) func(t *testing.T, l *Ledger, id string, e Entry) {
	return func(t *testing.T, l *Ledger, id string, e Entry) {
		e.RequestID, e.Cost = id, cost
		if cost == 0 {
			e.Status = 400 // refused by a guard
		}
		l.Accounts.Record(e)
	}
}

// TestJournalReplayKeepsGuards: rows journaled before a crash, replayed
// into SQLite at the next Open, keep their guards.
func TestJournalReplayKeepsGuards(t *testing.T) {
	d := newTestDB(t)
	journal := d.path + ".journal"
	_, closeL := d.open(t, Options{JournalPath: journal})
	closeL()
	rows := journalEntries(0, 3, time.Now())
	rows[0].Guards = map[string]int{"pii": 2, "secrets": 1}
	rows[2].Guards, rows[2].Customer = map[string]int{"words": 40}, "acme"
	writeJournal(t, journal, rows)

	l, _ := d.open(t, Options{JournalPath: journal})
	got, err := l.Store.Spend(ctx, "k", time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(rows) {
		t.Fatalf("%d rows after replay, want %d", len(got), len(rows))
	}
	byID := map[string]Entry{}
	for _, e := range got {
		byID[e.RequestID] = e
	}
	for _, want := range rows {
		if e := byID[want.RequestID]; !sameCounts(e.Guards, want.Guards) || e.Customer != want.Customer {
			t.Errorf("%s replayed with guards %#v customer %q, want %#v %q", want.RequestID, e.Guards, e.Customer, want.Guards, want.Customer)
		}
	}
}

// TestReportByGuard: group_by=guard sums the rows on which each guard
// fired (a row in each of its guards' groups, rows with none in ""), the
// totals count each row once, and guard= keeps one guard's rows; on both
// dialects.
func TestReportByGuard(t *testing.T) {
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			cl := customerLedgers(t, name, newReceiver(t).srv.URL)
			l := cl.replicas[0]
			for i, g := range []map[string]int{{"pii": 2}, {"pii": 1, "secrets": 1}, {"secrets": 1}, nil} {
				recordRow(llm.Micros(10*(i+1)))(t, l, fmt.Sprintf("req-%d", i), Entry{KeyID: "k", Model: "m", Status: 200, Guards: g})
			}
			if err := l.Store.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			rep, err := l.Store.Report(ctx, time.Time{}, time.Time{}, []string{"guard"}, ReportFilter{})
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, r := range rep.Rows {
				got[r.Group[0]] = fmt.Sprintf("%d/%d", r.Requests, r.Cost)
			}
			want := map[string]string{"": "1/40", "pii": "2/30", "secrets": "2/50"}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("rows %v, want %v", got, want)
			}
			if rep.Totals.Requests != 4 || rep.Totals.Cost != 100 {
				t.Errorf("totals %d requests %d µ$, want 4 and 100", rep.Totals.Requests, rep.Totals.Cost)
			}
			only, err := l.Store.Report(ctx, time.Time{}, time.Time{}, nil, ReportFilter{Guard: "secrets"})
			if err != nil {
				t.Fatal(err)
			}
			if only.Totals.Requests != 2 || only.Totals.Cost != 50 {
				t.Errorf("guard=secrets: %d requests %d µ$, want 2 and 50", only.Totals.Requests, only.Totals.Cost)
			}
		})
	}
}
