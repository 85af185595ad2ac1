package budget

import (
	"os"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/tollgate/tollgate/pkg/llm"
)

// lazyApply keeps journaled rows out of SQLite until a reader, Flush or
// Close asks for them.
func lazyApply(o Options, journal string) Options {
	o.JournalPath, o.ApplyInterval, o.ApplyRows = journal, time.Hour, 1<<30
	return o
}

func journalEntries(from, n int, at time.Time) []*Entry {
	var out []*Entry
	for i := from; i < from+n; i++ {
		out = append(out, &Entry{Time: at, RequestID: "req-" + strconv.Itoa(i), KeyID: "k", Route: "chat", Model: "m",
			Provider: "p", PromptTokens: 10, CompletionTokens: 5, Cost: llm.Micros(100 + i), Cache: "miss", Status: 200, Attempts: 1})
	}
	return out
}

// writeJournal writes batches as the writer would and returns the offset
// after each.
func writeJournal(t *testing.T, path string, batches ...[]*Entry) []int64 {
	t.Helper()
	var buf []byte
	var ends []int64
	for _, b := range batches {
		buf = appendBatch(buf, &batch{entries: b})
		ends = append(ends, int64(len(buf)))
	}
	if err := os.WriteFile(path, buf, 0o600); err != nil {
		t.Fatal(err)
	}
	return ends
}

func ledgerRows(t *testing.T, d *testDB) (n int, cost int64) {
	t.Helper()
	if err := d.raw(t).QueryRow(`SELECT COUNT(*), COALESCE(SUM(cost), 0) FROM budget_ledger`).Scan(&n, &cost); err != nil {
		t.Fatal(err)
	}
	return n, cost
}

func storedOffset(t *testing.T, d *testDB) int64 {
	t.Helper()
	var off int64
	if err := d.raw(t).QueryRow(`SELECT COALESCE(MAX(applied), 0) FROM budget_journal`).Scan(&off); err != nil {
		t.Fatal(err)
	}
	return off
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func sumOf(es []*Entry) (cost int64) {
	for _, e := range es {
		cost += int64(e.Cost)
	}
	return cost
}

// TestJournalRoundTrip: what the writer encodes, replay decodes to the
// same rows and alerts (a row's customer, tags and guards included).
func TestJournalRoundTrip(t *testing.T) {
	b := &batch{
		entries: []*Entry{{Time: time.UnixMilli(1_773_000_000_123), RequestID: "r", KeyID: "k", Route: "chat", RequestedModel: "a",
			Model: "b", Provider: "p", PromptTokens: 1, CompletionTokens: 2, CachedTokens: 3, Cost: -4, Saved: 5, Estimated: true,
			Cache: "hit", Status: 499, Latency: 7 * time.Millisecond, Attempts: 8}, {Time: time.UnixMilli(0), Unpriced: true},
			{Time: time.UnixMilli(1), Cache: "semantic-hit", Cost: 12, Saved: 900, Judge: JudgeYes, JudgeCost: 12},
			{Time: time.UnixMilli(2), Cache: "miss", Judge: JudgeFailed},
			{Time: time.UnixMilli(3), Status: 400, Guards: map[string]int{"pii": 2, "secrets": 1}},
			{Time: time.UnixMilli(4), Judge: JudgeNo, Customer: "acme", Tags: map[string]string{"team": "a"}, Guards: map[string]int{"pii": 1}},
			{Time: time.UnixMilli(5), Customer: "acme", Tags: map[string]string{"env": "prod", "team": "b"}}},
		alerts: []alertRow{{uid: "u", keyID: "k", key: alertKey{period: Daily, start: 9, event: EventThreshold, ppm: 500_000, limit: 10},
			created: 11, payload: []byte(`{"a":1}`), deliveries: []delivery{{url: "http://x", body: []byte("{}")}, {url: "http://s", slack: true, body: []byte(`{"text":"t"}`)}}}},
	}
	rec := appendBatch(nil, b)
	payload := rec[recordHeader:]
	got, err := decodeBatch(payload)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.entries, b.entries) || !reflect.DeepEqual(got.alerts, b.alerts) {
		t.Fatalf("decoded\n%+v %+v\nwant\n%+v %+v", got.entries, got.alerts, b.entries, b.alerts)
	}
}

// TestJournalReaderSeesSettle: with nothing applied in the background,
// Spend, Report and the CSV report still see a row as soon as Settle
// returns, to the micro-dollar of the in-memory spend.
func TestJournalReaderSeesSettle(t *testing.T) {
	clk := newClock("2026-03-10T12:00:00Z")
	d := newTestDB(t)
	journal := d.path + ".journal"
	l, _ := d.open(t, lazyApply(Options{Now: clk.Now}, journal))
	for i := range 3 {
		r, err := l.Accounts.Reserve(ctx, "k", "req-"+strconv.Itoa(i), 1000)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Accounts.Settle(ctx, r, Entry{Cost: llm.Micros(333 + i), Status: 200}); err != nil {
			t.Fatal(err)
		}
		if fileSize(t, journal) == 0 {
			t.Fatal("settled, but the journal is empty")
		}
		rows, err := l.Store.Spend(ctx, "k", time.Time{}, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != i+1 || rows[i].RequestID != "req-"+strconv.Itoa(i) {
			t.Fatalf("after settle %d: %d rows", i, len(rows))
		}
		if fileSize(t, journal) != 0 || storedOffset(t, d) != 0 {
			t.Fatalf("applied, but the journal holds %d bytes, offset %d", fileSize(t, journal), storedOffset(t, d))
		}
	}
	r, err := l.Accounts.Reserve(ctx, "k", "req-last", 1000)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Accounts.Settle(ctx, r, Entry{Cost: 7, Status: 200}); err != nil {
		t.Fatal(err)
	}
	rep, err := l.Store.Report(ctx, time.Time{}, time.Time{}, nil, ReportFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if spent := period(t, l.Accounts.Status("k"), Daily).Spent; rep.Totals.Cost != spent || spent != 333+334+335+7 || rep.Totals.Requests != 4 {
		t.Fatalf("report %+v, in-memory spend %s", rep.Totals, spent)
	}
}

// TestJournalReplayTornTail: a crash cut the last record; reopening
// applies the whole records, drops the tail and empties the file.
func TestJournalReplayTornTail(t *testing.T) {
	now := time.Now()
	d := newTestDB(t)
	journal := d.path + ".journal"
	_, closeL := d.open(t, Options{JournalPath: journal})
	closeL()
	b1, b2, torn := journalEntries(0, 3, now), journalEntries(3, 2, now), journalEntries(5, 4, now)
	ends := writeJournal(t, journal, b1, b2, torn)
	cut := ends[1] + (ends[2]-ends[1])/2
	if err := os.Truncate(journal, cut); err != nil {
		t.Fatal(err)
	}

	l, _ := d.open(t, Options{JournalPath: journal})
	if n, cost := ledgerRows(t, d); n != 5 || cost != sumOf(b1)+sumOf(b2) {
		t.Fatalf("%d rows costing %d after replay, want 5 costing %d", n, cost, sumOf(b1)+sumOf(b2))
	}
	if got := period(t, l.Accounts.Status("k"), Daily).Spent; int64(got) != sumOf(b1)+sumOf(b2) {
		t.Fatalf("rebuilt spend %s", got)
	}
	if fileSize(t, journal) != 0 || storedOffset(t, d) != 0 {
		t.Fatalf("after replay: journal %d bytes, offset %d", fileSize(t, journal), storedOffset(t, d))
	}
}

// TestJournalReplayCorrupt: a record whose checksum does not match ends
// the replay like a torn one.
func TestJournalReplayCorrupt(t *testing.T) {
	now := time.Now()
	d := newTestDB(t)
	journal := d.path + ".journal"
	_, closeL := d.open(t, Options{JournalPath: journal})
	closeL()
	b1, b2 := journalEntries(0, 2, now), journalEntries(2, 2, now)
	ends := writeJournal(t, journal, b1, b2)
	raw, err := os.ReadFile(journal)
	if err != nil {
		t.Fatal(err)
	}
	raw[ends[0]+recordHeader+3] ^= 0xff
	if err := os.WriteFile(journal, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	d.open(t, Options{JournalPath: journal})
	if n, cost := ledgerRows(t, d); n != 2 || cost != sumOf(b1) {
		t.Fatalf("%d rows costing %d, want 2 costing %d", n, cost, sumOf(b1))
	}
}

// TestJournalReplayExactlyOnce: the stored offset says what is applied;
// reopening, again and again, never inserts a record twice, and a crash
// between applying and truncating (offset == size, offset > size) replays
// nothing.
func TestJournalReplayExactlyOnce(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		name    string
		applied func(ends []int64) int64 // stored offset at the crash
		size    func(ends []int64) int64 // journal size at the crash
		want    int                      // rows after the reopen, 3 of them applied already
	}{
		{"nothing applied", func([]int64) int64 { return 0 }, func(e []int64) int64 { return e[1] }, 5},
		{"first batch applied", func(e []int64) int64 { return e[0] }, func(e []int64) int64 { return e[1] }, 5},
		{"all applied, not truncated", func(e []int64) int64 { return e[1] }, func(e []int64) int64 { return e[1] }, 3},
		{"truncated, offset not reset", func(e []int64) int64 { return e[1] }, func([]int64) int64 { return 0 }, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newTestDB(t)
			journal := d.path + ".journal"
			_, closeL := d.open(t, Options{JournalPath: journal})
			closeL()
			b1, b2 := journalEntries(0, 3, now), journalEntries(3, 2, now)
			ends := writeJournal(t, journal, b1, b2)
			raw := d.raw(t)
			applied := tc.applied(ends)
			if applied > 0 {
				// The state an apply of b1 (and b2) left in SQLite.
				tx, err := raw.Begin()
				if err != nil {
					t.Fatal(err)
				}
				insert, err := tx.Prepare(insertEntry)
				if err != nil {
					t.Fatal(err)
				}
				rows := b1
				if applied == ends[1] {
					rows = append(append([]*Entry{}, b1...), b2...)
				}
				if err := insertRows(ctx, tx, insert, rows, nil); err != nil {
					t.Fatal(err)
				}
				if _, err := tx.Exec(setOffset, applied); err != nil {
					t.Fatal(err)
				}
				if err := tx.Commit(); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Truncate(journal, tc.size(ends)); err != nil {
				t.Fatal(err)
			}
			want := tc.want
			if applied == ends[1] {
				want = 5 // b2 was applied too
			}
			for reopen := range 3 {
				l, closeL := d.open(t, Options{JournalPath: journal})
				n, cost := ledgerRows(t, d)
				if n != want {
					t.Fatalf("reopen %d: %d rows, want %d", reopen, n, want)
				}
				if got := period(t, l.Accounts.Status("k"), Daily).Spent; int64(got) != cost {
					t.Fatalf("reopen %d: spend %s, rows sum to %d", reopen, got, cost)
				}
				if fileSize(t, journal) != 0 || storedOffset(t, d) != 0 {
					t.Fatalf("reopen %d: journal %d bytes, offset %d", reopen, fileSize(t, journal), storedOffset(t, d))
				}
				closeL()
			}
			// The journal works after such a recovery, and survives a
			// reopen without duplicates.
			l, closeL := d.open(t, lazyApply(Options{}, journal))
			l.Accounts.Record(Entry{KeyID: "k", RequestID: "after", Cost: 1})
			if err := l.Store.add(nil, nil).wait(ctx); err != nil {
				t.Fatal(err)
			}
			closeL()
			if n, _ := ledgerRows(t, d); n != want+1 {
				t.Fatalf("%d rows after one more, want %d", n, want+1)
			}
			d.open(t, Options{JournalPath: journal})
			if n, _ := ledgerRows(t, d); n != want+1 {
				t.Fatalf("%d rows after another reopen, want %d", n, want+1)
			}
		})
	}
}

// TestJournalAlertsDelivered: alerts go through the journal into the
// outbox, and the applier wakes the deliverer (whose own interval is too
// long to be what delivers them).
func TestJournalAlertsDelivered(t *testing.T) {
	clk := newClock("2026-03-10T12:00:00Z")
	d := newTestDB(t)
	rcv := newReceiver(t)
	l, _ := d.open(t, Options{Now: clk.Now, Webhooks: []Webhook{{URL: rcv.srv.URL}}, WebhookSecret: secret, DeliveryInterval: time.Hour,
		JournalPath: d.path + ".journal", ApplyInterval: 10 * time.Millisecond})
	if err := l.Accounts.SetPolicy(ctx, "k", daily(1)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-rcv.notify:
		t.Fatal("delivered before any spend")
	case <-time.After(50 * time.Millisecond): // the deliverer's first round is done
	}
	settle(t, l, "k", "req", 500_000)
	select {
	case <-rcv.notify:
	case <-time.After(10 * time.Second):
		t.Fatal("the 50% alert was not delivered")
	}
	if got := events(t, rcv.take(), clk.Now()); len(got) == 0 || got[0].Event != EventThreshold || got[0].Threshold != 0.5 {
		t.Fatalf("delivered %+v", got)
	}
}

// FuzzJournalRecord: any payload decodes or fails without panicking.
func FuzzJournalRecord(f *testing.F) {
	f.Add(appendBatch(nil, &batch{entries: journalEntries(0, 2, time.UnixMilli(0))})[recordHeader:])
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, payload []byte) {
		_, _ = decodeBatch(payload)
	})
}
