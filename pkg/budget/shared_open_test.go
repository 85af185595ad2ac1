package budget

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/stdlib"

	"github.com/tollgate/tollgate/internal/pgtest"
	"github.com/tollgate/tollgate/pkg/llm"
)

// openReplica opens a Ledger on the schema as one replica would: its own
// pools, the shared store.
func openReplica(t *testing.T, s pgtest.Schema, hook string, now func() time.Time) *Ledger {
	t.Helper()
	pool := s.Pool(t, 8)
	l, err := Open(ctx, stdlib.OpenDBFromPool(pool), Options{
		Shared:           &Shared{Pool: pool, Lease: time.Minute},
		Webhooks:         []Webhook{{URL: hook}},
		DeliveryInterval: -1, // the test delivers
		Now:              now,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// TestSharedLedgerReplicas: two Ledgers on one PostgreSQL schema, as two
// replicas: a policy set on one applies on the other; concurrent
// reservations spread over both fit the limit exactly; the ledger rows
// are the spend; each alert is delivered once whichever replica crossed
// its threshold and whichever delivers it.
func TestSharedLedgerReplicas(t *testing.T) {
	s := pgtest.NewSchema(t)
	rcv := newReceiver(t)
	a := openReplica(t, s, rcv.srv.URL, nil)
	b := openReplica(t, s, rcv.srv.URL, nil)
	replicas := []*Ledger{a, b}

	const key, n, each = "k1", 10, llm.Micros(100_000)
	limit := n * each
	if err := a.Accounts.SetPolicy(ctx, key, Policy{Limits: []Limit{{Period: Daily, Amount: limit, Thresholds: []float64{0.5}}}}); err != nil {
		t.Fatal(err)
	}
	if p, own := b.Accounts.Policy(key); !own || len(p.Limits) != 1 || p.Limits[0].Amount != limit {
		t.Fatalf("replica b sees policy %+v (own %v)", p, own)
	}

	var served, refused atomic.Int64
	var wg sync.WaitGroup
	for i := range 60 {
		wg.Go(func() {
			l := replicas[i%2]
			id := fmt.Sprintf("req-%d", i)
			r, err := l.Accounts.Reserve(ctx, key, id, each)
			if err != nil {
				if !errorsIsExhausted(err) {
					t.Errorf("reserve %s: %v", id, err)
				}
				refused.Add(1)
				return
			}
			if err := l.Accounts.Settle(ctx, r, Entry{Model: "m", Cost: each, Status: 200}); err != nil {
				t.Errorf("settle %s: %v", id, err)
			}
			served.Add(1)
		})
	}
	wg.Wait()
	if served.Load() != n || refused.Load() != 60-n {
		t.Fatalf("served %d, refused %d; want exactly %d served", served.Load(), refused.Load(), n)
	}
	for name, l := range map[string]*Ledger{"a": a, "b": b} {
		rep, err := l.Store.Report(ctx, time.Time{}, time.Time{}, []string{"model"}, ReportFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Totals.Requests != n || rep.Totals.Cost != limit {
			t.Fatalf("report through %s: %d requests costing %s, want %d costing %s", name, rep.Totals.Requests, rep.Totals.Cost, n, limit)
		}
		st := l.Accounts.Status(key)
		if st.Budgets[0].Spent != limit || st.Budgets[0].Reserved != 0 {
			t.Fatalf("status through %s: %+v", name, st.Budgets[0])
		}
	}

	// Both replicas deliver at once; every alert arrives once.
	for _, l := range replicas {
		wg.Go(func() {
			if _, err := l.Alerts.DeliverDue(ctx); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	kinds, ids := map[string]int{}, map[string]int{}
	for _, g := range rcv.take() {
		var ev Event
		if err := json.Unmarshal(g.body, &ev); err != nil {
			t.Fatalf("delivery is not an event: %s", g.body)
		}
		if ids[ev.ID]++; ids[ev.ID] > 1 {
			t.Errorf("alert %s (%s) delivered again", ev.ID, ev.Event)
		}
		kinds[ev.Event]++
	}
	if kinds[EventThreshold] != 1 || kinds[EventExhausted] != 1 {
		t.Fatalf("alerts delivered by kind: %v; want one threshold and one budget_exhausted", kinds)
	}
}

func errorsIsExhausted(err error) bool { return errors.Is(err, ErrExhausted) }

// TestSharedPrune: Prune deletes the finished reservations admitted before
// its time and only those; a held one stays held, and a pruned id may
// reserve again.
func TestSharedPrune(t *testing.T) {
	s := pgtest.NewSchema(t)
	pool := s.Pool(t, 4)
	db := s.DB(t)
	clk := newClock("2026-03-10T12:00:00Z")
	l, err := Open(ctx, db, Options{Shared: &Shared{Pool: pool}, Now: clk.Now, DeliveryInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	acc := l.Accounts
	settled, _ := acc.Reserve(ctx, "k", "settled", 10)
	if err := acc.Settle(ctx, settled, Entry{Cost: 5}); err != nil {
		t.Fatal(err)
	}
	released, _ := acc.Reserve(ctx, "k", "released", 10)
	acc.Release(released)
	if _, err := acc.Reserve(ctx, "k", "held", 10); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute)
	late, _ := acc.Reserve(ctx, "k", "late", 10)
	if err := acc.Settle(ctx, late, Entry{Cost: 5}); err != nil {
		t.Fatal(err)
	}

	n, err := acc.shared.Prune(ctx, clk.Now().Add(-time.Second))
	if err != nil || n != 2 {
		t.Fatalf("pruned %d (%v), want the settled and the released one", n, err)
	}
	var left []string
	rows, err := pool.Query(ctx, `SELECT request_id || ':' || state FROM budget_reservations ORDER BY request_id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s string
		rows.Scan(&s)
		left = append(left, s)
	}
	if fmt.Sprint(left) != "[held:held late:settled]" {
		t.Fatalf("left %v", left)
	}
	if _, err := acc.Reserve(ctx, "k", "settled", 10); err != nil {
		t.Fatalf("a pruned id reserves again: %v", err)
	}
}

// TestSharedCommitAllOrNothing: a batch is one transaction although it is
// sent without BEGIN and COMMIT: when its last statement fails (an alert
// whose deliveries do not fit their column), none of its rows is written.
func TestSharedCommitAllOrNothing(t *testing.T) {
	pool := sharedSchema(t)(2)
	at := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	rows := []*Entry{ledgerEntry("k", "1", at, 5), ledgerEntry("k", "2", at, 6)}
	bad := []alertRow{{uid: "u", keyID: "k", key: alertKey{period: Daily, event: EventThreshold}, created: at.UnixMilli(), payload: []byte("{}"),
		deliveries: []delivery{{url: "http://x", body: []byte("\x00")}}}} // NUL: not valid in text
	if err := commitShared(ctx, pool, rows, bad); err == nil {
		t.Fatal("no error from a batch whose alert cannot be stored")
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM budget_ledger`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d ledger rows after a failed batch (%v), want none", n, err)
	}
	if err := commitShared(ctx, pool, rows, nil); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM budget_ledger`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("%d ledger rows (%v), want 2", n, err)
	}
}

// ledgerEntry is a ledger row for the shared store's tests.
func ledgerEntry(key, id string, at time.Time, cost llm.Micros) *Entry {
	return &Entry{Time: at, RequestID: id, KeyID: key, Route: "/v1/chat/completions", RequestedModel: "gpt-x", Model: "gpt-x",
		Provider: "openai", PromptTokens: 10, CompletionTokens: 5, CachedTokens: 2, Cost: cost, Saved: 1, Estimated: true,
		Cache: "miss", Judge: JudgeNo, JudgeCost: 3, Status: 200, Latency: 42 * time.Millisecond, Attempts: 1}
}
