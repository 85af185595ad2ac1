package budget

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/stdlib"

	"github.com/tollgate/tollgate/internal/pgtest"
	"github.com/tollgate/tollgate/pkg/llm"
)

// customerLedger is one way of keeping the ledger: its replicas (one for
// SQLite) and a connection to read the ledger table behind their back.
type customerLedger struct {
	replicas []*Ledger
	raw      *sql.DB
}

func customerLedgers(t *testing.T, name, hook string) customerLedger {
	t.Helper()
	switch name {
	case "sqlite":
		db := newTestDB(t)
		l, _ := db.open(t, Options{Webhooks: []Webhook{{URL: hook}}})
		return customerLedger{replicas: []*Ledger{l}, raw: db.raw(t)}
	case "sqlite-journal":
		db := newTestDB(t)
		l, _ := db.open(t, Options{Webhooks: []Webhook{{URL: hook}}, JournalPath: db.path + ".journal"})
		return customerLedger{replicas: []*Ledger{l}, raw: db.raw(t)}
	case "postgres":
		s := pgtest.NewSchema(t)
		a, b := openReplica(t, s, hook, nil), openReplica(t, s, hook, nil)
		return customerLedger{replicas: []*Ledger{a, b}, raw: stdlib.OpenDBFromPool(s.Pool(t, 2))}
	}
	t.Fatalf("unknown ledger %s", name)
	return customerLedger{}
}

// TestCustomerBudgetConcurrent is the "must show": a customer
// budget that fits exactly n requests, under 200 concurrent requests of
// that customer, serves exactly n and refuses the others with the
// customer's 402; the key's budget holds those n and nothing more; another
// customer of the key is served; reports by customer and by tag equal the
// ledger table's own sums to the micro-dollar.
func TestCustomerBudgetConcurrent(t *testing.T) {
	for _, name := range []string{"sqlite", "sqlite-journal", "postgres"} {
		t.Run(name, func(t *testing.T) {
			rcv := newReceiver(t)
			cl := customerLedgers(t, name, rcv.srv.URL)
			const key, n, total, each = "k1", 7, 200, llm.Micros(123_457)
			p := Policy{
				Limits: []Limit{{Period: Monthly, Amount: llm.USD(1000)}},
				Customers: &CustomerBudgets{
					Default:   []Limit{{Period: Daily, Amount: n * each, Thresholds: []float64{0.5}}},
					Customers: map[string][]Limit{"vip": {{Period: Total, Amount: llm.USD(100)}}},
				},
			}
			if err := cl.replicas[0].Accounts.SetPolicy(ctx, key, p); err != nil {
				t.Fatal(err)
			}
			var served, refused atomic.Int64
			var wg sync.WaitGroup
			for i := range total {
				wg.Go(func() {
					l := cl.replicas[i%len(cl.replicas)]
					id := fmt.Sprintf("req-%d", i)
					r, err := l.Accounts.ReserveFor(ctx, key, "acme", id, each)
					if err != nil {
						var ex *Exhausted
						if !errors.As(err, &ex) || ex.Customer != "acme" || !strings.Contains(err.Error(), `customer "acme"`) {
							t.Errorf("reserve %s: %v, want the customer's 402", id, err)
						}
						if e, ok := llm.AsError(err); !ok || e.Status != 402 || e.Code != "budget_exceeded" {
							t.Errorf("reserve %s: %v, want a 402 budget_exceeded", id, err)
						}
						refused.Add(1)
						return
					}
					if r.Customer != "acme" {
						t.Errorf("reservation %+v does not name its customer", r)
					}
					k := served.Add(1) // in the order served, so that both tags are served
					tags := map[string]string{"team": "search", "env": []string{"prod", "dev"}[k%2]}
					if err := l.Accounts.Settle(ctx, r, Entry{Model: "m", Cost: each, Status: 200, Customer: "acme", Tags: tags}); err != nil {
						t.Errorf("settle %s: %v", id, err)
					}
				})
			}
			wg.Wait()
			if served.Load() != n || refused.Load() != total-n {
				t.Fatalf("served %d, refused %d; want exactly %d served", served.Load(), refused.Load(), n)
			}
			a := cl.replicas[0].Accounts
			// The key's own budget holds the n requests, nothing else.
			if st := a.Status(key); st.Budgets[0].Spent != n*each || st.Budgets[0].Reserved != 0 {
				t.Fatalf("key's budget after the burst: %+v, want %s spent, nothing reserved", st.Budgets[0], n*each)
			}
			cs := a.CustomerStatus(key, "acme")
			if !cs.Counted || len(cs.Budgets) != 1 || cs.Budgets[0].Spent != n*each || cs.Budgets[0].Remaining != 0 || cs.Budgets[0].Reserved != 0 {
				t.Fatalf("acme's status: %+v", cs)
			}
			// Another customer has its own budget; a request without a
			// customer has none but the key's.
			for _, c := range []string{"vip", "other", ""} {
				r, err := a.ReserveFor(ctx, key, c, "req-"+c+"-x", each)
				if err != nil {
					t.Fatalf("customer %q refused: %v", c, err)
				}
				if err := a.Settle(ctx, r, Entry{Model: "m", Cost: each, Status: 200, Customer: c}); err != nil {
					t.Fatal(err)
				}
			}
			if rem, _ := a.RemainingFor(key, "acme"); rem != 0 {
				t.Fatalf("remaining for acme %s, want 0", rem)
			}
			if rem, _ := a.RemainingFor(key, "vip"); rem != llm.USD(100)-each {
				t.Fatalf("remaining for vip %s, want %s", rem, llm.USD(100)-each)
			}

			checkReports(t, cl)
		})
	}
}

// checkReports compares reports by customer and by tag with the ledger
// table's own sums.
func checkReports(t *testing.T, cl customerLedger) {
	t.Helper()
	store := cl.replicas[0].Store
	byCustomer, err := store.Report(ctx, time.Time{}, time.Time{}, []string{"customer"}, ReportFilter{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][2]int64{}
	rows, err := cl.raw.Query(`SELECT customer, COUNT(*), SUM(cost) FROM budget_ledger GROUP BY customer`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var c string
		var n, cost int64
		if err := rows.Scan(&c, &n, &cost); err != nil {
			t.Fatal(err)
		}
		want[c] = [2]int64{n, cost}
	}
	rows.Close()
	if len(byCustomer.Rows) != len(want) {
		t.Fatalf("report by customer has %d groups, the ledger %d: %+v", len(byCustomer.Rows), len(want), byCustomer.Rows)
	}
	var sum llm.Micros
	for _, r := range byCustomer.Rows {
		if w := want[r.Group[0]]; r.Requests != w[0] || int64(r.Cost) != w[1] {
			t.Errorf("customer %q: report %d requests costing %d, ledger %v", r.Group[0], r.Requests, r.Cost, w)
		}
		sum += r.Cost
	}
	if sum != byCustomer.Totals.Cost {
		t.Errorf("customer groups add up to %s, totals %s", sum, byCustomer.Totals.Cost)
	}

	// By tag: each tag's group is the rows carrying it.
	byTag, err := store.Report(ctx, time.Time{}, time.Time{}, []string{"tag"}, ReportFilter{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]ReportRow{}
	for _, r := range byTag.Rows {
		got[r.Group[0]] = r
	}
	for _, tag := range []string{"env=prod", "env=dev", "team=search", ""} {
		var n, cost int64
		q := `SELECT COUNT(*), COALESCE(SUM(cost), 0) FROM budget_ledger WHERE tags LIKE '%"' || $1 || '"%'`
		if tag == "" {
			q = `SELECT COUNT(*), COALESCE(SUM(cost), 0) FROM budget_ledger WHERE tags = '[]' AND $1 = ''`
		}
		if err := cl.raw.QueryRow(q, tag).Scan(&n, &cost); err != nil {
			t.Fatal(err)
		}
		if g := got[tag]; g.Requests != n || int64(g.Cost) != cost || n == 0 {
			t.Errorf("tag %q: report %d requests costing %d, ledger %d costing %d", tag, g.Requests, g.Cost, n, cost)
		}
	}
	if bt, bc := byTag.Totals, byCustomer.Totals; bt.Requests != bc.Requests || bt.Cost != bc.Cost || bt.Saved != bc.Saved {
		t.Errorf("totals by tag %+v differ from the ledger's %+v: a row with two tags must count once", byTag.Totals, byCustomer.Totals)
	}

	// A key's history shows each row's customer and tags.
	hist, err := store.Spend(ctx, "k1", time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	acmeRows := 0
	for _, e := range hist {
		if e.Customer != "acme" {
			continue
		}
		acmeRows++
		if e.Tags["team"] != "search" || (e.Tags["env"] != "prod" && e.Tags["env"] != "dev") || len(e.Tags) != 2 {
			t.Errorf("acme's row %s reads back with tags %v", e.RequestID, e.Tags)
		}
	}
	if acmeRows != int(want["acme"][0]) {
		t.Errorf("the key's history has %d rows of acme, the ledger %d", acmeRows, want["acme"][0])
	}

	// Filters.
	acme := "acme"
	f, err := store.Report(ctx, time.Time{}, time.Time{}, []string{"tag"}, ReportFilter{Customer: &acme, Tag: "env=dev"})
	if err != nil {
		t.Fatal(err)
	}
	var n, cost int64
	if err := cl.raw.QueryRow(`SELECT COUNT(*), SUM(cost) FROM budget_ledger WHERE customer = 'acme' AND tags LIKE '%"env=dev"%'`).Scan(&n, &cost); err != nil {
		t.Fatal(err)
	}
	if f.Totals.Requests != n || int64(f.Totals.Cost) != cost {
		t.Errorf("filtered totals %+v, ledger %d costing %d", f.Totals, n, cost)
	}
	var csv strings.Builder
	if err := store.WriteReportCSV(ctx, &csv, time.Time{}, time.Time{}, []string{"customer", "tag"}, ReportFilter{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(csv.String(), "acme,env=dev,") || !strings.HasPrefix(csv.String(), "customer,tag,requests,") {
		t.Errorf("CSV by customer and tag:\n%s", csv.String())
	}
}

// TestCustomerBudgetHolds: a customer's reservation is held against its
// key and itself and returned to both on release; a refusal by the key's
// own limit names the key's budget; a customer's threshold alert fires
// once, naming the key and the customer; after a restart the customer's
// spend is rebuilt from the ledger.
func TestCustomerBudgetHolds(t *testing.T) {
	rcv := newReceiver(t)
	db := newTestDB(t)
	clock := newClock("2026-03-10T12:00:00Z")
	l, closeFn := db.open(t, Options{Webhooks: []Webhook{{URL: rcv.srv.URL}}, Now: clock.Now})
	const key = "k1"
	p := Policy{
		Limits:    []Limit{{Period: Daily, Amount: llm.USD(10)}},
		Customers: &CustomerBudgets{Default: []Limit{{Period: Daily, Amount: llm.USD(1), Thresholds: []float64{0.5}}}},
	}
	if err := l.Accounts.SetPolicy(ctx, key, p); err != nil {
		t.Fatal(err)
	}
	a := l.Accounts

	r, err := a.ReserveFor(ctx, key, "acme", "r1", llm.USD(0.8))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.ReserveFor(ctx, key, "acme", "r2", llm.USD(0.3)); !errors.Is(err, ErrExhausted) {
		t.Fatalf("a second hold past acme's $1: %v, want refused", err)
	}
	if got := a.Status(key).Budgets[0].Reserved; got != llm.USD(0.8) {
		t.Fatalf("the key holds %s, want the customer's 0.8 (the refused one held nowhere)", got)
	}
	a.Release(r)
	if cs := a.CustomerStatus(key, "acme"); cs.Budgets[0].Reserved != 0 || a.Status(key).Budgets[0].Reserved != 0 {
		t.Fatalf("release left holds: customer %+v, key %+v", cs.Budgets[0], a.Status(key).Budgets[0])
	}
	// Settle twice crosses acme's 50% once.
	for _, id := range []string{"r3", "r4"} {
		r, err := a.ReserveFor(ctx, key, "acme", id, llm.USD(0.3))
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Settle(ctx, r, Entry{Cost: llm.USD(0.3), Customer: "acme"}); err != nil {
			t.Fatal(err)
		}
	}
	// The key's own limit refuses a customer whose budget has room.
	if _, err := a.ReserveFor(ctx, key, "bob", "r5", llm.USD(9.5)); err == nil || strings.Contains(err.Error(), "customer") {
		t.Fatalf("a hold past the key's $10: %v, want the key's own 402", err)
	}
	if _, err := l.Alerts.DeliverDue(ctx); err != nil {
		t.Fatal(err)
	}
	var thresholds []Event
	for _, g := range rcv.take() {
		var ev Event
		if err := json.Unmarshal(g.body, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Event == EventThreshold {
			thresholds = append(thresholds, ev)
		}
	}
	if len(thresholds) != 1 || thresholds[0].KeyID != key || thresholds[0].Customer != "acme" || thresholds[0].LimitUSD != "1.000000" {
		t.Fatalf("threshold alerts %+v, want one for acme's $1 of key %s", thresholds, key)
	}

	// A restart rebuilds acme's spend (0.6) and remembers the alert.
	closeFn()
	l, _ = db.open(t, Options{Webhooks: []Webhook{{URL: rcv.srv.URL}}, Now: clock.Now})
	cs := l.Accounts.CustomerStatus(key, "acme")
	if cs.Budgets[0].Spent != llm.USD(0.6) {
		t.Fatalf("acme's spend after a restart: %+v, want 0.6", cs.Budgets[0])
	}
	if _, err := l.Accounts.ReserveFor(ctx, key, "acme", "r6", llm.USD(0.5)); !errors.Is(err, ErrExhausted) {
		t.Fatalf("after a restart acme reserved past its budget: %v", err)
	}
	r, err = l.Accounts.ReserveFor(ctx, key, "acme", "r7", llm.USD(0.1))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Accounts.Settle(ctx, r, Entry{Cost: llm.USD(0.1), Customer: "acme"}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Alerts.DeliverDue(ctx); err != nil {
		t.Fatal(err)
	}
	for _, g := range rcv.take() {
		if strings.Contains(string(g.body), EventThreshold) {
			t.Fatalf("the 50%% alert fired again after a restart: %s", g.body)
		}
	}
}

// TestCustomerBudgetsSetLater: customer budgets given to a key that had
// none count what its customers spent earlier in the period.
func TestCustomerBudgetsSetLater(t *testing.T) {
	db := newTestDB(t)
	l, _ := db.open(t, Options{})
	a := l.Accounts
	a.Record(Entry{KeyID: "k1", RequestID: "old", Cost: llm.USD(0.7), Customer: "acme"})
	if err := a.SetPolicy(ctx, "k1", Policy{Customers: &CustomerBudgets{Default: []Limit{{Period: Monthly, Amount: llm.USD(1)}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.ReserveFor(ctx, "k1", "acme", "new", llm.USD(0.5)); !errors.Is(err, ErrExhausted) {
		t.Fatalf("acme spent 0.7 of 1 before its budget was set, yet 0.5 more was held: %v", err)
	}
}

func TestCustomerBudgetsValidate(t *testing.T) {
	tests := []struct {
		name, json, want string
	}{
		{"unknown period", `{"budgets": [], "customer_budgets": {"default": [{"period": "hourly", "limit_usd": "1"}]}}`, "customer_budgets.default[0].period"},
		{"negative limit", `{"budgets": [], "customer_budgets": {"customers": {"acme": [{"period": "daily", "limit_usd": "-1"}]}}}`, `customer_budgets.customers["acme"][0].limit_usd`},
		{"empty name", `{"budgets": [], "customer_budgets": {"customers": {"": [{"period": "daily", "limit_usd": "1"}]}}}`, `customer_budgets.customers[""]`},
		{"bad threshold", `{"budgets": [], "customer_budgets": {"default": [{"period": "daily", "limit_usd": "1", "alert_thresholds": [2]}]}}`, "customer_budgets.default[0].alert_thresholds[0]"},
		{"two dailies", `{"budgets": [], "customer_budgets": {"default": [{"period": "daily", "limit_usd": "1"}, {"period": "daily", "limit_usd": "2"}]}}`, "a second daily budget"},
		{"ok", `{"budgets": [], "customer_budgets": {"default": [{"period": "daily", "limit_usd": "1"}], "customers": {"acme": []}}}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p Policy
			if err := json.Unmarshal([]byte(tt.json), &p); err != nil {
				t.Fatal(err)
			}
			err := p.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("valid policy refused: %v", err)
				}
				// "acme": [] means acme has no limit, whatever the default.
				if lims := p.Customers.limits("acme"); lims == nil || len(lims) != 0 {
					t.Fatalf("acme's limits %v, want none", lims)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one naming %s", err, tt.want)
			}
		})
	}
}

// TestSharedCustomerHolds: in PostgreSQL a customer's reservation is held
// in its key's counters and its own, and is returned to both by a release,
// by a lease's expiry, and charged to both by a settle; a refusal holds
// nothing anywhere.
func TestSharedCustomerHolds(t *testing.T) {
	pools := sharedSchema(t)
	pool := pools(4)
	clock := newClock("2026-03-10T12:00:00Z")
	policies := staticPolicies{"k1": {
		Limits:    []Limit{{Period: Daily, Amount: llm.USD(10)}},
		Customers: &CustomerBudgets{Default: []Limit{{Period: Daily, Amount: llm.USD(1)}}},
	}}
	s := NewSharedAccounts(pool, policies, SharedOptions{Now: clock.Now, Lease: time.Minute})
	acct := accountOf("k1", "acme")
	held := func(want llm.Micros) {
		t.Helper()
		for _, a := range []string{"k1", acct} {
			if _, r := sharedCounter(t, pool, a, Daily, clock.Now()); r != want {
				t.Fatalf("%q holds %s, want %s", a, r, want)
			}
		}
	}
	tests := []struct {
		name string
		end  func(r Reservation)
	}{
		{"release", func(r Reservation) {
			if err := s.Release(ctx, r); err != nil {
				t.Fatal(err)
			}
		}},
		{"lease expiry", func(r Reservation) {
			clock.Advance(2 * time.Minute)
			if n, err := s.ReleaseExpired(ctx); err != nil || n != 1 {
				t.Fatalf("released %d expired, err %v; want 1", n, err)
			}
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := s.ReserveFor(ctx, "k1", "acme", fmt.Sprintf("r%d", i), llm.USD(0.8))
			if err != nil {
				t.Fatal(err)
			}
			held(llm.USD(0.8))
			if _, err := s.ReserveFor(ctx, "k1", "acme", fmt.Sprintf("x%d", i), llm.USD(0.3)); !errors.Is(err, ErrExhausted) ||
				!strings.Contains(err.Error(), "customer") {
				t.Fatalf("past acme's budget: %v, want the customer's 402", err)
			}
			held(llm.USD(0.8))
			tt.end(r)
			held(0)
		})
	}
	r, err := s.ReserveFor(ctx, "k1", "acme", "settled", llm.USD(0.5))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Settle(ctx, r, llm.USD(0.4)); err != nil {
		t.Fatal(err)
	}
	held(0)
	for _, a := range []string{"k1", acct} {
		if spent, _ := sharedCounter(t, pool, a, Daily, clock.Now()); spent != llm.USD(0.4) {
			t.Fatalf("%q spent %s, want 0.4", a, spent)
		}
	}
}

// TestCustomersPerKeyBounded: a key counts at most MaxCustomersPerKey
// customers; a request of one more is a 429 too_many_customers, while the
// customers already counted, requests without a customer and keys without
// customer budgets are served as before.
func TestCustomersPerKeyBounded(t *testing.T) {
	old := MaxCustomersPerKey
	MaxCustomersPerKey = 3
	t.Cleanup(func() { MaxCustomersPerKey = old })
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			rcv := newReceiver(t)
			cl := customerLedgers(t, name, rcv.srv.URL)
			a := cl.replicas[0].Accounts
			p := Policy{Customers: &CustomerBudgets{Default: []Limit{{Period: Daily, Amount: llm.USD(1)}}}}
			if err := a.SetPolicy(ctx, "k1", p); err != nil {
				t.Fatal(err)
			}
			seq := 0
			serve := func(key, customer string) error {
				seq++
				r, err := a.ReserveFor(ctx, key, customer, fmt.Sprintf("r%d", seq), 10)
				if err != nil {
					return err
				}
				return a.Settle(ctx, r, Entry{Model: "m", Cost: 10, Status: 200, Customer: customer})
			}
			for _, c := range []string{"c1", "c2", "c3"} {
				if err := serve("k1", c); err != nil {
					t.Fatalf("customer %s: %v", c, err)
				}
			}
			for _, tc := range []struct {
				name, key, customer string
				refused             bool
			}{
				{"a fourth customer", "k1", "c4", true},
				{"a customer already counted", "k1", "c2", false},
				{"no customer", "k1", "", false},
				{"a key without customer budgets", "k2", "c4", false},
			} {
				err := serve(tc.key, tc.customer)
				e, _ := llm.AsError(err)
				switch {
				case tc.refused && (e == nil || e.Status != 429 || e.Code != "too_many_customers"):
					t.Errorf("%s: %v, want a 429 too_many_customers", tc.name, err)
				case !tc.refused && err != nil:
					t.Errorf("%s: %v, want served", tc.name, err)
				}
			}
		})
	}
}
