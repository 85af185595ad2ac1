package budget

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// spendFixture writes n rows of key_p and, between them, rows of another
// key, through Record; three rows share each millisecond, so the row id
// breaks ties. It returns the request ids of key_p's rows in ledger order
// and their times.
func spendFixture(t *testing.T, n int) (*Ledger, []string, time.Time) {
	t.Helper()
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	l, _ := newTestDB(t).open(t, Options{Now: func() time.Time { return start.Add(24 * time.Hour) }})
	var ids []string
	for i := range n {
		at := start.Add(time.Duration(i/3) * time.Millisecond)
		id := fmt.Sprintf("req-%05d", i)
		l.Accounts.Record(Entry{Time: at, RequestID: id, KeyID: "key_p", Model: "m", Status: 200, Attempts: 1})
		if i%5 == 0 {
			l.Accounts.Record(Entry{Time: at, RequestID: "other-" + id, KeyID: "key_q", Model: "m", Status: 200, Attempts: 1})
		}
		ids = append(ids, id)
	}
	if err := l.Store.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	return l, ids, start
}

// TestSpendPagesCoverEveryRowOnce: 2,500 rows in a real SQLite file, read
// in pages of several sizes, from the start and within a range: each row
// once, in ledger order, and a last page without a next cursor.
func TestSpendPagesCoverEveryRowOnce(t *testing.T) {
	l, ids, start := spendFixture(t, 2500)
	tests := []struct {
		name     string
		limit    int
		from, to time.Time
		want     []string
	}{
		{"pages of 100", 100, time.Time{}, time.Time{}, ids},
		{"pages of 1000", 1000, time.Time{}, time.Time{}, ids},
		{"pages of 7, ties inside pages and across them", 7, time.Time{}, time.Time{}, ids},
		{"pages of 1 over the first 13 ms", 1, time.Time{}, start.Add(13 * time.Millisecond), ids[:39]},
		{"one page holds all", 5000, time.Time{}, time.Time{}, ids},
		{"a range", 64, start.Add(100 * time.Millisecond), start.Add(700 * time.Millisecond), ids[300:2100]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			var after SpendCursor
			pages := 0
			for {
				pages++
				if pages > len(ids)+2 {
					t.Fatal("paging does not end")
				}
				n := 0
				next, err := l.Store.SpendPage(ctx, "key_p", tt.from, tt.to, after, tt.limit, func(e Entry) error {
					n++
					got = append(got, e.RequestID)
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				if n > tt.limit {
					t.Fatalf("page of %d rows, limit %d", n, tt.limit)
				}
				if next == nil {
					break
				}
				if n != tt.limit {
					t.Fatalf("a page of %d rows before the last, limit %d", n, tt.limit)
				}
				// The cursor goes through its text form, as a client's does.
				if after, err = ParseSpendCursor(next.String()); err != nil {
					t.Fatal(err)
				}
			}
			if len(got) != len(tt.want) {
				t.Fatalf("%d rows, want %d", len(got), len(tt.want))
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("row %d is %s, want %s", i, got[i], tt.want[i])
				}
			}
			if wantPages := (len(tt.want) + tt.limit - 1) / tt.limit; pages != wantPages {
				t.Errorf("%d pages, want %d", pages, wantPages)
			}
		})
	}
	all, err := l.Store.Spend(ctx, "key_p", time.Time{}, time.Time{})
	if err != nil || len(all) != len(ids) {
		t.Fatalf("Spend: %d rows, %v", len(all), err)
	}
}

func TestSpendPageStopsOnError(t *testing.T) {
	l, _, _ := spendFixture(t, 30)
	boom := errors.New("boom")
	n := 0
	next, err := l.Store.SpendPage(ctx, "key_p", time.Time{}, time.Time{}, SpendCursor{}, 10, func(Entry) error {
		if n++; n == 4 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) || next != nil || n != 4 {
		t.Fatalf("next %v, err %v after %d rows", next, err, n)
	}
	if _, err := l.Store.SpendPage(ctx, "key_p", time.Time{}, time.Time{}, SpendCursor{}, 0, func(Entry) error { return nil }); err == nil {
		t.Fatal("limit 0 accepted")
	}
}

func TestParseSpendCursor(t *testing.T) {
	good := SpendCursor{ts: 1772323200123, id: 42}
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"round trip", good.String(), true},
		{"empty", "", false},
		{"not base64", "!!!", false},
		{"no separator", "MTIz", false},                     // "123"
		{"id not a number", "MTIzLmFi", false},              // "123.ab"
		{"id zero", "MTIzLjA", false},                       // "123.0"
		{"padding is not ours", good.String() + "=", false}, // RawURLEncoding has none
		{"too long", "MTExMTExMTExMTExMTExMTExMTExMTExMTExMTExMTExMTEuMQ", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseSpendCursor(tt.in)
			if tt.ok != (err == nil) {
				t.Fatalf("ParseSpendCursor(%q) = %v, %v", tt.in, c, err)
			}
			if tt.ok && c != good {
				t.Fatalf("round trip gave %+v", c)
			}
			if !tt.ok && !errors.Is(err, ErrBadCursor) {
				t.Fatalf("error %v is not ErrBadCursor", err)
			}
		})
	}
}
