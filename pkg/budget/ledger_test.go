package budget

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/pkg/llm"
)

var ctx = context.Background()

// The gateway declares the interfaces it consumes (its Limiter and
// Accounts); these are their method sets, which the parts keep.
var (
	_ interface {
		Allow(keyID string, promptTokens int) (RateState, error)
	} = (*RateLimits)(nil)
	_ interface {
		Reserve(ctx context.Context, keyID, requestID string, amount llm.Micros) (Reservation, error)
		Settle(ctx context.Context, r Reservation, e Entry) error
		Release(r Reservation)
		Record(e Entry)
		Remaining(keyID string) (llm.Micros, bool)
		Policy(keyID string) (Policy, bool)
	} = (*Accounts)(nil)
)

func TestReserveSettle(t *testing.T) {
	clk := newClock("2026-03-10T12:00:00Z")
	d := newTestDB(t)
	l, _ := d.open(t, Options{Now: clk.Now})
	if err := l.Accounts.SetPolicy(ctx, "k1", daily(1)); err != nil {
		t.Fatal(err)
	}
	r, err := l.Accounts.Reserve(ctx, "k1", "req-1", 400_000)
	if err != nil {
		t.Fatal(err)
	}
	s := period(t, l.Accounts.Status("k1"), Daily)
	if s.Reserved != 400_000 || s.Spent != 0 || s.Remaining != 600_000 {
		t.Fatalf("after reserve: %+v", s)
	}
	if rem, limited := l.Accounts.Remaining("k1"); rem != 600_000 || !limited {
		t.Fatalf("Remaining = %v, %v", rem, limited)
	}
	clk.Advance(1500 * time.Millisecond)
	if err := l.Accounts.Settle(ctx, r, Entry{Model: "gpt-4o-mini", Provider: "openai", PromptTokens: 10, CompletionTokens: 20, Cost: 300_000, Status: 200, Latency: 1500 * time.Millisecond, Attempts: 1}); err != nil {
		t.Fatal(err)
	}
	s = period(t, l.Accounts.Status("k1"), Daily)
	if s.Reserved != 0 || s.Spent != 300_000 || s.Remaining != 700_000 {
		t.Fatalf("after settle: %+v", s)
	}
	rows, err := l.Store.Spend(ctx, "k1", time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 {
		t.Fatalf("%d rows", len(rows))
	}
	got := rows[0]
	if got.RequestID != "req-1" || got.KeyID != "k1" || got.Cost != 300_000 || got.Model != "gpt-4o-mini" || got.Latency != 1500*time.Millisecond ||
		!got.Time.Equal(r.At) || got.Status != 200 || got.PromptTokens != 10 || got.CompletionTokens != 20 {
		t.Fatalf("row = %+v (reserved at %s)", got, r.At)
	}
	// A key without a limit is never refused, and still counted.
	r2, err := l.Accounts.Reserve(ctx, "free", "req-2", 5_000_000_000)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Accounts.Settle(ctx, r2, Entry{Cost: 42}); err != nil {
		t.Fatal(err)
	}
	if _, limited := l.Accounts.Remaining("free"); limited {
		t.Fatal("free key limited")
	}
	if s := period(t, l.Accounts.Status("free"), Total); s.Spent != 42 || s.Limited {
		t.Fatalf("free key total: %+v", s)
	}
}

func TestReserveRefused(t *testing.T) {
	clk := newClock("2026-03-10T18:00:00Z") // a Tuesday
	tests := []struct {
		name        string
		policy      Policy
		spend       llm.Micros // settled before the refused request
		ask         llm.Micros
		wantPeriods []Period
		wantRetry   time.Duration
		wantReset   string
		wantRemain  string
	}{
		{"daily", daily(1), 900_000, 200_000, []Period{Daily}, 6 * time.Hour, "2026-03-11T00:00:00Z", "0.100000"},
		{"monthly tighter than daily", Policy{Limits: []Limit{{Period: Daily, Amount: 5_000_000}, {Period: Monthly, Amount: 1_000_000}}},
			950_000, 100_000, []Period{Monthly}, (21*24 + 6) * time.Hour, "2026-04-01T00:00:00Z", "0.050000"},
		{"both refuse: retry when both have reset", Policy{Limits: []Limit{{Period: Daily, Amount: 1_000_000}, {Period: Weekly, Amount: 1_000_000}}},
			1_000_000, 1, []Period{Daily, Weekly}, (5*24 + 6) * time.Hour, "2026-03-16T00:00:00Z", "0.000000"},
		{"total never resets", Policy{Limits: []Limit{{Period: Total, Amount: 1_000_000}}}, 1_000_000, 1, []Period{Total}, 0, "", "0.000000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, _ := newTestDB(t).open(t, Options{Now: clk.Now})
			if err := l.Accounts.SetPolicy(ctx, "k", tt.policy); err != nil {
				t.Fatal(err)
			}
			r, err := l.Accounts.Reserve(ctx, "k", "first", tt.spend)
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Accounts.Settle(ctx, r, Entry{Cost: tt.spend}); err != nil {
				t.Fatal(err)
			}
			_, err = l.Accounts.Reserve(ctx, "k", "second", tt.ask)
			if !errors.Is(err, ErrExhausted) {
				t.Fatalf("err = %v, want ErrExhausted", err)
			}
			e, ok := llm.AsError(err)
			if !ok || e.Status != http.StatusPaymentRequired || e.Type != llm.TypeQuota || e.Code != "budget_exceeded" {
				t.Fatalf("error = %#v", e)
			}
			if e.RetryAfter != tt.wantRetry {
				t.Errorf("RetryAfter = %s, want %s", e.RetryAfter, tt.wantRetry)
			}
			if got := e.Header.Get(HeaderReset); got != tt.wantReset {
				t.Errorf("reset header = %q, want %q", got, tt.wantReset)
			}
			if got := e.Header.Get(HeaderRemaining); got != tt.wantRemain {
				t.Errorf("remaining header = %q, want %q", got, tt.wantRemain)
			}
			var ex *Exhausted
			if !errors.As(err, &ex) || len(ex.Limits) != len(tt.wantPeriods) {
				t.Fatalf("details = %+v", ex)
			}
			for i, p := range tt.wantPeriods {
				if ex.Limits[i].Period != p {
					t.Errorf("refusing limit %d = %s, want %s", i, ex.Limits[i].Period, p)
				}
			}
			if s := period(t, l.Accounts.Status("k"), Daily); s.Reserved != 0 {
				t.Errorf("a refused request holds %s", s.Reserved)
			}
		})
	}
}

func TestIdempotency(t *testing.T) {
	clk := newClock("2026-03-10T12:00:00Z")
	l, _ := newTestDB(t).open(t, Options{Now: clk.Now, Defaults: daily(1)})
	rows := func() int {
		t.Helper()
		if err := l.Store.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		es, err := l.Store.Spend(ctx, "k", time.Time{}, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		return len(es)
	}
	t.Run("double reserve returns the same reservation", func(t *testing.T) {
		a, err := l.Accounts.Reserve(ctx, "k", "dup", 100)
		if err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Second)
		b, err := l.Accounts.Reserve(ctx, "k", "dup", 999)
		if err != nil {
			t.Fatal(err)
		}
		if a != b {
			t.Fatalf("second reservation %+v, first %+v", b, a)
		}
		if s := period(t, l.Accounts.Status("k"), Daily); s.Reserved != 100 {
			t.Fatalf("reserved %s", s.Reserved)
		}
	})
	t.Run("double settle charges once and writes one row", func(t *testing.T) {
		r := Reservation{KeyID: "k", RequestID: "dup"}
		for range 3 {
			if err := l.Accounts.Settle(ctx, r, Entry{Cost: 60}); err != nil {
				t.Fatal(err)
			}
		}
		if s := period(t, l.Accounts.Status("k"), Daily); s.Reserved != 0 || s.Spent != 60 {
			t.Fatalf("status %+v", s)
		}
		if n := rows(); n != 1 {
			t.Fatalf("%d rows", n)
		}
	})
	t.Run("reserve after settle is refused", func(t *testing.T) {
		if _, err := l.Accounts.Reserve(ctx, "k", "dup", 1); !errors.Is(err, ErrSettled) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("release on failure frees the money, twice is a no-op", func(t *testing.T) {
		r, err := l.Accounts.Reserve(ctx, "k", "fails", 500_000)
		if err != nil {
			t.Fatal(err)
		}
		l.Accounts.Release(r)
		l.Accounts.Release(r)
		if s := period(t, l.Accounts.Status("k"), Daily); s.Reserved != 0 || s.Spent != 60 {
			t.Fatalf("status %+v", s)
		}
		if err := l.Accounts.Settle(ctx, r, Entry{Cost: 1}); !errors.Is(err, ErrNoReservation) {
			t.Fatalf("settle after release: %v", err)
		}
	})
	t.Run("a released id may reserve again (fallback)", func(t *testing.T) {
		r, err := l.Accounts.Reserve(ctx, "k", "fails", 300)
		if err != nil || r.Amount != 300 {
			t.Fatalf("%+v, %v", r, err)
		}
		l.Accounts.Release(r)
	})
	t.Run("settle without reservation", func(t *testing.T) {
		if err := l.Accounts.Settle(ctx, Reservation{KeyID: "k", RequestID: "never"}, Entry{}); !errors.Is(err, ErrNoReservation) {
			t.Fatalf("err = %v", err)
		}
	})
	if n := rows(); n != 1 {
		t.Fatalf("%d rows at the end", n)
	}
}

func TestFits(t *testing.T) {
	clk := newClock("2026-03-10T12:00:00Z")
	l, _ := newTestDB(t).open(t, Options{Now: clk.Now})
	if err := l.Accounts.SetPolicy(ctx, "k", Policy{Limits: []Limit{{Period: Daily, Amount: 1000}}, OnExhausted: Downgrade}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Accounts.Reserve(ctx, "k", "big", 700); err != nil {
		t.Fatal(err)
	}
	// The downgrade path: the requested model's 500 does not fit, the
	// cheaper candidate's 300 does, and reserving it succeeds.
	tests := []struct {
		amount llm.Micros
		want   bool
	}{{500, false}, {301, false}, {300, true}, {0, true}}
	for _, tt := range tests {
		if got := l.Accounts.Fits("k", tt.amount); got != tt.want {
			t.Errorf("Fits(%d) = %v", tt.amount, got)
		}
	}
	if _, err := l.Accounts.Reserve(ctx, "k", "req", 500); !errors.Is(err, ErrExhausted) {
		t.Fatalf("500: %v", err)
	}
	if _, err := l.Accounts.Reserve(ctx, "k", "req", 300); err != nil {
		t.Fatalf("downgraded: %v", err)
	}
	if l.Accounts.Fits("k", 1) {
		t.Fatal("full budget fits")
	}
	if p, own := l.Accounts.Policy("k"); !own || p.OnExhausted != Downgrade {
		t.Fatalf("policy %+v %v", p, own)
	}
}

// TestRollover: a request admitted in one period and settled in the next
// is charged to the period it was admitted in, in memory and after a
// restart; the new period starts empty.
func TestRollover(t *testing.T) {
	clk := newClock("2026-03-10T23:59:59Z")
	d := newTestDB(t)
	l, closeL := d.open(t, Options{Now: clk.Now, Defaults: Policy{Limits: []Limit{{Period: Daily, Amount: 1000}, {Period: Monthly, Amount: 5000}}}})
	r, err := l.Accounts.Reserve(ctx, "k", "late", 900)
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Second) // 2026-03-11T00:00:01Z
	// The new day's budget is whole: the open reservation belongs to the
	// day before.
	if !l.Accounts.Fits("k", 1000) {
		t.Fatal("new day does not have its full budget")
	}
	if err := l.Accounts.Settle(ctx, r, Entry{Cost: 800}); err != nil {
		t.Fatal(err)
	}
	check := func(l *Ledger) {
		t.Helper()
		ks := l.Accounts.Status("k")
		if s := period(t, ks, Daily); s.Spent != 0 || s.Reserved != 0 || s.Remaining != 1000 || s.ResetsAt.Format(time.RFC3339) != "2026-03-12T00:00:00Z" {
			t.Errorf("daily %+v", s)
		}
		if s := period(t, ks, Monthly); s.Spent != 800 || s.Reserved != 0 {
			t.Errorf("monthly %+v", s)
		}
	}
	check(l)
	closeL()
	l, _ = d.open(t, Options{Now: clk.Now, Defaults: Policy{Limits: []Limit{{Period: Daily, Amount: 1000}, {Period: Monthly, Amount: 5000}}}})
	check(l)
	rows, err := l.Store.Spend(ctx, "k", time.Time{}, time.Time{})
	if err != nil || len(rows) != 1 || rows[0].Time.UTC().Format(time.RFC3339) != "2026-03-10T23:59:59Z" {
		t.Fatalf("rows %+v, %v", rows, err)
	}
}

// TestRestartRebuildsSpend: after a reopen, each period's spend is the sum
// of the key's rows since the period's start.
func TestRestartRebuildsSpend(t *testing.T) {
	ny := mustLoad(t, "America/New_York")
	clk := newClock("2026-02-27T15:00:00Z")
	d := newTestDB(t)
	o := Options{Now: clk.Now, Location: ny}
	l, closeL := d.open(t, o)
	n := 0
	for day := range 6 { // Feb 27 .. Mar 4 (a month end and a Monday)
		for _, key := range []string{"a", "b"} {
			for range 3 {
				n++
				r, err := l.Accounts.Reserve(ctx, key, "r"+string(rune('A'+n%26))+time.Duration(n).String(), 1000)
				if err != nil {
					t.Fatal(err)
				}
				if err := l.Accounts.Settle(ctx, r, Entry{Cost: llm.Micros(100*day + n)}); err != nil {
					t.Fatal(err)
				}
			}
			l.Accounts.Record(Entry{KeyID: key, RequestID: "cache", Cache: "hit", Saved: 5})
		}
		clk.Advance(24 * time.Hour)
	}
	want := map[string]map[Period]llm.Micros{}
	for _, key := range []string{"a", "b"} {
		ks := l.Accounts.Status(key)
		want[key] = map[Period]llm.Micros{}
		for _, p := range periods {
			want[key][p] = period(t, ks, p).Spent
		}
	}
	closeL()
	l, _ = d.open(t, o)
	raw := d.raw(t)
	now := clk.Now()
	for _, key := range []string{"a", "b"} {
		ks := l.Accounts.Status(key)
		for _, p := range periods {
			start, _ := p.Window(now, ny)
			s := period(t, ks, p)
			if s.Spent != want[key][p] || s.Spent != sumCost(t, raw, key, start) {
				t.Errorf("%s %s: spent %s, before restart %s, rows since %s sum to %s", key, p, s.Spent, want[key][p], start, sumCost(t, raw, key, start))
			}
		}
	}
}

func TestRecord(t *testing.T) {
	clk := newClock("2026-03-10T12:00:00Z")
	d := newTestDB(t)
	l, closeL := d.open(t, Options{Now: clk.Now, Defaults: daily(1)})
	l.Accounts.Record(Entry{KeyID: "k", RequestID: "hit", Cache: "hit", Saved: 1234, Status: 200})
	l.Accounts.Record(Entry{KeyID: "k", RequestID: "fail", Status: 502, Attempts: 3})
	l.Accounts.Record(Entry{KeyID: "k", RequestID: "after-the-fact", Cost: 77, Status: 200})
	if s := period(t, l.Accounts.Status("k"), Daily); s.Spent != 77 {
		t.Fatalf("spent %s", s.Spent)
	}
	closeL() // Close flushes what Record left pending
	var n, saved, cost int64
	if err := d.raw(t).QueryRow(`SELECT COUNT(*), SUM(saved), SUM(cost) FROM budget_ledger`).Scan(&n, &saved, &cost); err != nil {
		t.Fatal(err)
	}
	if n != 3 || saved != 1234 || cost != 77 {
		t.Fatalf("rows %d saved %d cost %d", n, saved, cost)
	}
	// A closed ledger refuses to pretend.
	if err := l.Store.Flush(ctx); err == nil {
		t.Fatal("flush after close succeeded")
	}
}

// TestLedgerKeepsTheJudge: a request whose semantic candidate went to the
// judge keeps one row, with the verdict and the judge's cost next to the
// cost and saving, whether it was settled (the judge was paid) or
// recorded, and read back from SQLite or from the journal.
func TestLedgerKeepsTheJudge(t *testing.T) {
	for _, journal := range []bool{false, true} {
		t.Run(fmt.Sprintf("journal=%v", journal), func(t *testing.T) {
			clk := newClock("2026-03-10T12:00:00Z")
			d := newTestDB(t)
			o := Options{Now: clk.Now, Defaults: daily(1)}
			if journal {
				o.JournalPath = filepath.Join(t.TempDir(), "journal")
			}
			l, closeL := d.open(t, o)
			defer closeL()
			r, err := l.Accounts.Reserve(ctx, "k", "confirmed", 50)
			if err != nil {
				t.Fatal(err)
			}
			want := []Entry{
				{RequestID: "confirmed", Cache: "semantic-hit", Cost: 12, Saved: 900, Judge: JudgeYes, JudgeCost: 12, Status: 200},
				{RequestID: "refused", Cache: "miss", Cost: 512, Judge: JudgeNo, JudgeCost: 12, Status: 200},
				{RequestID: "down", Cache: "miss", Cost: 500, Judge: JudgeFailed, Status: 200},
				{RequestID: "plain", Cache: "miss", Cost: 500, Status: 200},
			}
			if err := l.Accounts.Settle(ctx, r, want[0]); err != nil {
				t.Fatal(err)
			}
			for _, e := range want[1:] {
				e.KeyID = "k"
				l.Accounts.Record(e)
			}
			got, err := l.Store.Spend(ctx, "k", time.Time{}, time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("%d rows, want %d", len(got), len(want))
			}
			for i, w := range want {
				g := got[i]
				if g.RequestID != w.RequestID || g.Cache != w.Cache || g.Cost != w.Cost || g.Saved != w.Saved || g.Judge != w.Judge || g.JudgeCost != w.JudgeCost {
					t.Errorf("row %d: %+v, want %+v", i, g, w)
				}
			}
		})
	}
}

func TestPolicy(t *testing.T) {
	tests := []struct {
		name    string
		json    string
		wantErr []string // substrings, each a path
	}{
		{"full", `{"budgets":[{"period":"daily","limit_usd":5.0,"alert_thresholds":[0.5,0.8,1.0]},{"period":"total","limit_usd":100}],"rpm":60,"tpm":100000,"on_exhausted":"downgrade","alert_webhooks":[{"url":"https://hooks.example.com/x","slack":true}]}`, nil},
		{"exact decimals", `{"budgets":[{"period":"monthly","limit_usd":0.000001}]}`, nil},
		{"empty", `{}`, nil},
		{"everything wrong", `{"budgets":[{"period":"hourly","limit_usd":1},{"period":"daily","limit_usd":0,"alert_thresholds":[1.5]},{"period":"daily","limit_usd":1}],"rpm":-1,"tpm":-2,"on_exhausted":"beg","alert_webhooks":[{"url":"ftp://x"}]}`,
			[]string{"budgets[0].period", "budgets[1].limit_usd", "budgets[1].alert_thresholds[0]", "budgets[2].period", "rpm", "tpm", "on_exhausted", "alert_webhooks[0].url"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p Policy
			if err := json.Unmarshal([]byte(tt.json), &p); err != nil {
				t.Fatal(err)
			}
			err := p.Validate()
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				out, _ := json.Marshal(p)
				var q Policy
				if err := json.Unmarshal(out, &q); err != nil {
					t.Fatal(err)
				}
				back, _ := json.Marshal(q)
				if string(out) != string(back) {
					t.Fatalf("round trip\n%s\n%s", out, back)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w+":") {
					t.Errorf("error does not name %s: %v", w, err)
				}
			}
		})
	}
	var l Limit
	for _, bad := range []string{`{"period":"daily","limit_usd":0.0000001}`, `{"period":"daily","limit_usd":"x"}`, `{"period":"daily","limit":1}`} {
		if err := json.Unmarshal([]byte(bad), &l); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	if err := json.Unmarshal([]byte(`{"period":"daily","limit_usd":5.25}`), &l); err != nil || l.Amount != 5_250_000 {
		t.Fatalf("%+v %v", l, err)
	}
}

func TestSetPolicyPersists(t *testing.T) {
	clk := newClock("2026-03-10T12:00:00Z")
	d := newTestDB(t)
	defaults := daily(2)
	l, closeL := d.open(t, Options{Now: clk.Now, Defaults: defaults})
	if p, own := l.Accounts.Policy("new"); own || p.Limits[0].Amount != 2_000_000 {
		t.Fatalf("defaults: %+v %v", p, own)
	}
	want := Policy{Limits: []Limit{{Period: Weekly, Amount: 3_000_000, Thresholds: []float64{0.9}}}, RPM: 5, OnExhausted: Downgrade}
	if err := l.Accounts.SetPolicy(ctx, "k", want); err != nil {
		t.Fatal(err)
	}
	if err := l.Accounts.SetPolicy(ctx, "k", Policy{RPM: -1}); err == nil {
		t.Fatal("invalid policy stored")
	}
	closeL()
	l, _ = d.open(t, Options{Now: clk.Now, Defaults: defaults})
	got, own := l.Accounts.Policy("k")
	a, _ := json.Marshal(got)
	b, _ := json.Marshal(want)
	if !own || string(a) != string(b) {
		t.Fatalf("after restart %s, want %s", a, b)
	}
	js, _ := json.Marshal(l.Accounts.Status("k").Budgets)
	if string(js) != `[{"period":"weekly","limit_usd":3.000000,"spent_usd":0.000000,"reserved_usd":0.000000,"remaining_usd":3.000000,"resets_at":"2026-03-16T00:00:00Z","alert_thresholds":[0.9]}]` {
		t.Fatalf("status JSON %s", js)
	}
}
