package budget

import (
	"errors"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/pkg/llm"
)

// TestOverspend: an upstream that ignores the output limit bills $2.40
// against a $0.01 daily limit whose request reserved $0.001. The whole
// cost is charged to every period, the key is refused (402) until the
// day resets, and one overspend alert reaches the webhook, signed, with
// what was reserved and what it cost.
func TestOverspend(t *testing.T) {
	rcv := newReceiver(t)
	clk := newClock("2026-03-10T12:00:00Z")
	d := newTestDB(t)
	l, _ := d.open(t, Options{Now: clk.Now, Webhooks: []Webhook{{URL: rcv.srv.URL + "/json"}, {URL: rcv.srv.URL + "/slack", Slack: true}},
		WebhookSecret: secret, KeyName: func(id string) string { return "team " + id }, ProjectionMinElapsed: 1})
	policy := Policy{Limits: []Limit{
		{Period: Daily, Amount: 10_000, Thresholds: []float64{}},
		{Period: Monthly, Amount: 5_000_000, Thresholds: []float64{}},
	}}
	if err := l.Accounts.SetPolicy(ctx, "k", policy); err != nil {
		t.Fatal(err)
	}

	// Within the reservation: no overspend.
	r, err := l.Accounts.Reserve(ctx, "k", "honest", 1_000)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Accounts.Settle(ctx, r, Entry{Cost: 1_000}); err != nil {
		t.Fatal(err)
	}
	if n := deliver(t, l); n != 0 {
		t.Fatalf("%d deliveries for a settle within its reservation", n)
	}

	r, err = l.Accounts.Reserve(ctx, "k", "overrun", 1_000)
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	if err := l.Accounts.Settle(ctx, r, Entry{Cost: 2_400_000, CompletionTokens: 100_000}); err != nil {
		t.Fatal(err)
	}
	// Settling again is a no-op: no second charge, no second alert.
	if err := l.Accounts.Settle(ctx, r, Entry{Cost: 2_400_000}); err != nil {
		t.Fatal(err)
	}

	if err := l.Store.Flush(ctx); err != nil { // with a journal, the rows reach SQLite later
		t.Fatal(err)
	}
	const spent = 2_401_000
	for _, p := range periods {
		if s := period(t, l.Accounts.Status("k"), p); s.Spent != spent || s.Reserved != 0 {
			t.Errorf("%s: spent %d reserved %d, want %d and 0", p, s.Spent, s.Reserved, spent)
		}
	}
	if got := sumCost(t, d.raw(t), "k", time.Time{}); got != spent {
		t.Errorf("ledger sum %d, want %d", got, spent)
	}
	if rem, _ := l.Accounts.Remaining("k"); rem != 0 {
		t.Errorf("remaining %d, want 0", rem)
	}

	// Blocked: any reservation, even of nothing, is a 402 until the day
	// resets.
	for _, amount := range []llm.Micros{0, 1, math.MaxInt64} {
		_, err := l.Accounts.Reserve(ctx, "k", "after", amount)
		e, ok := llm.AsError(err)
		if !errors.Is(err, ErrExhausted) || !ok || e.Status != http.StatusPaymentRequired || e.Code != "budget_exceeded" {
			t.Fatalf("reserve %d after the overspend: %v", amount, err)
		}
	}

	// One overspend alert, for the daily limit (the monthly has room).
	if err := l.Store.Flush(ctx); err != nil { // and the refused Reserves' budget_exhausted
		t.Fatal(err)
	}
	var n int
	var payload string
	if err := d.raw(t).QueryRow(`SELECT COUNT(*), MAX(payload) FROM budget_alerts WHERE event = 'overspend'`).Scan(&n, &payload); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("%d overspend alerts, want 1", n)
	}
	deliver(t, l)
	var over []Event
	got := rcv.take()
	for _, ev := range events(t, got, clk.Now()) {
		if ev.Event == EventOverspend {
			over = append(over, ev)
		}
	}
	if len(over) != 1 {
		t.Fatalf("overspend deliveries %+v", over)
	}
	ev := over[0]
	start, end := Daily.Window(clk.Now(), time.UTC)
	if ev.KeyID != "k" || ev.KeyName != "team k" || ev.Period != Daily || ev.LimitUSD != "0.010000" || ev.SpentUSD != "2.401000" ||
		ev.ReservedUSD != "0.001000" || ev.ActualUSD != "2.400000" || ev.RequestID != "overrun" || ev.Threshold != 0 ||
		!ev.PeriodStart.Equal(start) || !ev.ResetsAt.Equal(end) || !strings.HasPrefix(ev.ID, "alert_") {
		t.Errorf("overspend event %+v", ev)
	}
	slack := 0
	for _, g := range got {
		if g.path == "/slack" && strings.Contains(string(g.body), "cost $2.400000, more than the $0.001000 reserved") &&
			strings.Contains(string(g.body), "requests are refused until 2026-03-11T00:00:00Z") {
			slack++
		}
	}
	if slack != 1 {
		t.Errorf("%d Slack overspend messages", slack)
	}

	// The next day the key is back within its limit.
	clk.Set(end)
	if _, err := l.Accounts.Reserve(ctx, "k", "next-day", 1_000); err != nil {
		t.Fatalf("reserve the next day: %v", err)
	}
}

// TestOverspendSaturates: an absurd cost (math.MaxInt64, what a 2^62-token
// usage prices at) saturates the counters instead of wrapping them
// negative, the key stays blocked, and the ledger still opens after a
// restart with the spend saturated.
func TestOverspendSaturates(t *testing.T) {
	clk := newClock("2026-03-10T12:00:00Z")
	d := newTestDB(t)
	o := Options{Now: clk.Now, ProjectionMinElapsed: 1}
	l, closeL := d.open(t, o)
	if err := l.Accounts.SetPolicy(ctx, "k", daily(0.001)); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b"} {
		r, err := l.Accounts.Reserve(ctx, "k", id, 0)
		if err != nil {
			t.Fatalf("reserve %s: %v", id, err)
		}
		if id == "a" {
			if err := l.Accounts.Settle(ctx, r, Entry{Cost: 500}); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := l.Accounts.Settle(ctx, r, Entry{Cost: math.MaxInt64}); err != nil {
			t.Fatal(err)
		}
	}
	// A cost recorded after saturation keeps the counter saturated.
	l.Accounts.Record(Entry{KeyID: "k", RequestID: "c", Cost: math.MaxInt64})
	check := func(l *Ledger) {
		t.Helper()
		if s := period(t, l.Accounts.Status("k"), Daily); s.Spent != math.MaxInt64 || s.Remaining != 0 {
			t.Errorf("daily %+v, want spent saturated and nothing left", s)
		}
		if _, err := l.Accounts.Reserve(ctx, "k", "later", 0); !errors.Is(err, ErrExhausted) {
			t.Errorf("reserve after saturation: %v", err)
		}
	}
	check(l)
	closeL()
	l, _ = d.open(t, o)
	check(l)
}

// TestReserveNeverWraps: a reservation of math.MaxInt64 (a 2^62-token
// output limit) on a key with spend is refused, not wrapped into a fit.
func TestReserveNeverWraps(t *testing.T) {
	clk := newClock("2026-03-10T12:00:00Z")
	l, _ := newTestDB(t).open(t, Options{Now: clk.Now})
	if err := l.Accounts.SetPolicy(ctx, "k", daily(0.001)); err != nil {
		t.Fatal(err)
	}
	settle(t, l, "k", "a", 10)
	held, err := l.Accounts.Reserve(ctx, "k", "b", 100)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Accounts.Reserve(ctx, "k", "huge", math.MaxInt64); !errors.Is(err, ErrExhausted) {
		t.Fatalf("reserve MaxInt64: %v", err)
	}
	if l.Accounts.Fits("k", math.MaxInt64) {
		t.Fatal("MaxInt64 fits")
	}
	l.Accounts.Release(held)
	// A key without limits holds it, and a second one, without wrapping
	// its counters negative.
	for _, id := range []string{"x", "y"} {
		if _, err := l.Accounts.Reserve(ctx, "free", id, math.MaxInt64); err != nil {
			t.Fatal(err)
		}
	}
	if s := period(t, l.Accounts.Status("free"), Daily); s.Reserved != math.MaxInt64 {
		t.Fatalf("free key daily %+v", s)
	}
}

func TestAddSat(t *testing.T) {
	tests := []struct {
		name    string
		a, b, w llm.Micros
	}{
		{"small", 2, 3, 5},
		{"negative", 2, -3, -1},
		{"up to max", math.MaxInt64 - 1, 1, math.MaxInt64},
		{"past max", math.MaxInt64, 1, math.MaxInt64},
		{"max + max", math.MaxInt64, math.MaxInt64, math.MaxInt64},
		{"past min", math.MinInt64, -1, math.MinInt64},
		{"max + min", math.MaxInt64, math.MinInt64, -1},
		{"zero", math.MaxInt64, 0, math.MaxInt64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := addSat(tt.a, tt.b); got != tt.w {
				t.Errorf("addSat(%d, %d) = %d, want %d", tt.a, tt.b, got, tt.w)
			}
		})
	}
}
