package budget

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tollgate/tollgate/internal/migrate"
	"github.com/tollgate/tollgate/internal/pgtest"
	"github.com/tollgate/tollgate/pkg/llm"
)

// staticPolicies is a PolicySource for tests.
type staticPolicies map[string]Policy

func (p staticPolicies) Policy(keyID string) (Policy, bool) {
	pol, ok := p[keyID]
	return pol, ok
}

// sharedSchema creates a schema of its own for the test, migrated, dropped
// at Cleanup, and returns a function opening pools (one per replica, conns
// connections at most; 0: pgxpool's default) whose search_path is it.
func sharedSchema(tb testing.TB) func(conns int) *pgxpool.Pool {
	tb.Helper()
	s := pgtest.NewSchema(tb)
	db := s.DB(tb)
	if err := migrate.Up(ctx, db); err != nil {
		tb.Fatal(err)
	}
	db.Close()
	return func(conns int) *pgxpool.Pool { return s.Pool(tb, conns) }
}

// sharedCounter reads one counter row (zero if there is none).
func sharedCounter(t *testing.T, pool *pgxpool.Pool, key string, p Period, at time.Time) (spent, reserved llm.Micros) {
	t.Helper()
	var start int64
	if p != Total {
		s, _ := p.Window(at, time.UTC)
		start = s.UnixMilli()
	}
	err := pool.QueryRow(ctx, `SELECT coalesce(sum(spent), 0), coalesce(sum(reserved), 0) FROM budget_counters
		WHERE key_id = $1 AND period = $2 AND period_start = $3`, key, string(p), start).Scan(&spent, &reserved)
	if err != nil {
		t.Fatal(err)
	}
	return spent, reserved
}

// TestSharedAccounts: Accounts' semantics, step by step, on one key per
// case.
func TestSharedAccounts(t *testing.T) {
	open := sharedSchema(t)
	pool := open(4)
	clk := newClock("2026-03-10T12:00:00Z")
	pols := staticPolicies{}
	s := NewSharedAccounts(pool, pols, SharedOptions{Now: clk.Now})
	daily := func(amount llm.Micros) Policy { return Policy{Limits: []Limit{{Period: Daily, Amount: amount}}} }

	tests := []struct {
		name   string
		policy Policy
		run    func(t *testing.T, key string)
	}{
		{"reserve within the limit holds it", daily(1000), func(t *testing.T, key string) {
			r, err := s.Reserve(ctx, key, key+"-a", 400)
			if err != nil {
				t.Fatal(err)
			}
			if r.Amount != 400 || r.KeyID != key || !r.At.Equal(clk.Now()) {
				t.Fatalf("reservation %+v", r)
			}
			if rem, limited, err := s.Remaining(ctx, key); err != nil || !limited || rem != 600 {
				t.Fatalf("remaining %s %v %v, want 600", rem, limited, err)
			}
			if ok, err := s.Fits(ctx, key, 600); err != nil || !ok {
				t.Fatalf("600 fits: %v %v", ok, err)
			}
			if ok, err := s.Fits(ctx, key, 601); err != nil || ok {
				t.Fatalf("601 fits: %v %v", ok, err)
			}
		}},
		{"a reservation that does not fit is a 402 with Retry-After", daily(1000), func(t *testing.T, key string) {
			if _, err := s.Reserve(ctx, key, key+"-a", 700); err != nil {
				t.Fatal(err)
			}
			_, err := s.Reserve(ctx, key, key+"-b", 301)
			var ex *Exhausted
			if !errors.Is(err, ErrExhausted) || !errors.As(err, &ex) {
				t.Fatalf("err %v", err)
			}
			e, _ := llm.AsError(err)
			if e.Status != http.StatusPaymentRequired || e.Code != "budget_exceeded" || e.RetryAfter != 12*time.Hour {
				t.Fatalf("error %+v", e)
			}
			if got := e.Header.Get(HeaderRemaining); got != "0.000300" {
				t.Fatalf("remaining header %q", got)
			}
			if len(ex.Limits) != 1 || ex.Limits[0].Period != Daily || ex.Limits[0].Reserved != 700 || ex.Remaining != 300 {
				t.Fatalf("exhausted %+v", ex)
			}
		}},
		{"all or nothing across limits", Policy{Limits: []Limit{{Period: Daily, Amount: 1000}, {Period: Total, Amount: 500}}}, func(t *testing.T, key string) {
			_, err := s.Reserve(ctx, key, key+"-a", 600)
			var ex *Exhausted
			if !errors.As(err, &ex) || len(ex.Limits) != 1 || ex.Limits[0].Period != Total {
				t.Fatalf("err %v", err)
			}
			if e, _ := llm.AsError(err); e.RetryAfter != 0 {
				t.Fatalf("a total budget never resets: Retry-After %v", e.RetryAfter)
			}
			for _, p := range []Period{Daily, Weekly, Monthly, Total} {
				if _, reserved := sharedCounter(t, pool, key, p, clk.Now()); reserved != 0 {
					t.Fatalf("%s reserved %s after a refusal", p, reserved)
				}
			}
		}},
		{"reserving a held id returns its reservation", daily(1000), func(t *testing.T, key string) {
			r1, err := s.Reserve(ctx, key, key+"-a", 400)
			if err != nil {
				t.Fatal(err)
			}
			r2, err := s.Reserve(ctx, key, key+"-a", 900)
			if err != nil || r2 != r1 {
				t.Fatalf("second reserve %+v %v, want %+v", r2, err, r1)
			}
			if _, reserved := sharedCounter(t, pool, key, Daily, clk.Now()); reserved != 400 {
				t.Fatalf("reserved %s", reserved)
			}
		}},
		{"settle charges once; a settled id cannot reserve", daily(1000), func(t *testing.T, key string) {
			r, err := s.Reserve(ctx, key, key+"-a", 400)
			if err != nil {
				t.Fatal(err)
			}
			for range 2 {
				if err := s.Settle(ctx, r, 250); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := s.Reserve(ctx, key, key+"-a", 1); !errors.Is(err, ErrSettled) {
				t.Fatalf("reserve a settled id: %v", err)
			}
			for _, p := range []Period{Daily, Weekly, Monthly, Total} {
				if spent, reserved := sharedCounter(t, pool, key, p, clk.Now()); spent != 250 || reserved != 0 {
					t.Fatalf("%s spent %s reserved %s", p, spent, reserved)
				}
			}
		}},
		{"a released id reserves again; settle after release", daily(1000), func(t *testing.T, key string) {
			r, err := s.Reserve(ctx, key, key+"-a", 900)
			if err != nil {
				t.Fatal(err)
			}
			for range 2 {
				if err := s.Release(ctx, r); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Settle(ctx, r, 10); !errors.Is(err, ErrNoReservation) {
				t.Fatalf("settle after release: %v", err)
			}
			clk.Advance(time.Millisecond)
			r2, err := s.Reserve(ctx, key, key+"-a", 800)
			if err != nil || r2.Amount != 800 {
				t.Fatalf("reserve again %+v %v", r2, err)
			}
			if err := s.Release(ctx, r); err != nil { // the old attempt's release leaves the new one
				t.Fatal(err)
			}
			if _, reserved := sharedCounter(t, pool, key, Daily, clk.Now()); reserved != 800 {
				t.Fatalf("reserved %s", reserved)
			}
		}},
		{"settle without a reservation", daily(1000), func(t *testing.T, key string) {
			err := s.Settle(ctx, Reservation{KeyID: key, RequestID: key + "-none", At: clk.Now()}, 1)
			if !errors.Is(err, ErrNoReservation) {
				t.Fatalf("err %v", err)
			}
		}},
		{"a cost above the reservation is charged and blocks the key", daily(1000), func(t *testing.T, key string) {
			r, err := s.Reserve(ctx, key, key+"-a", 100)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Settle(ctx, r, 1500); err != nil {
				t.Fatal(err)
			}
			if spent, reserved := sharedCounter(t, pool, key, Daily, clk.Now()); spent != 1500 || reserved != 0 {
				t.Fatalf("spent %s reserved %s", spent, reserved)
			}
			if rem, _, _ := s.Remaining(ctx, key); rem != 0 {
				t.Fatalf("remaining %s", rem)
			}
			if _, err := s.Reserve(ctx, key, key+"-b", 0); !errors.Is(err, ErrExhausted) {
				t.Fatalf("reserve over the limit: %v", err)
			}
		}},
		{"saturating arithmetic", daily(1000), func(t *testing.T, key string) {
			var rs []Reservation
			for _, id := range []string{"a", "b"} { // both held before either settles
				r, err := s.Reserve(ctx, key, key+id, 0)
				if err != nil {
					t.Fatal(err)
				}
				rs = append(rs, r)
			}
			for _, r := range rs {
				if err := s.Settle(ctx, r, math.MaxInt64); err != nil {
					t.Fatal(err)
				}
			}
			if spent, _ := sharedCounter(t, pool, key, Daily, clk.Now()); spent != math.MaxInt64 {
				t.Fatalf("spent %d", spent)
			}
			if _, err := s.Reserve(ctx, key, key+"-huge", math.MaxInt64); !errors.Is(err, ErrExhausted) {
				t.Fatalf("reserve MaxInt64: %v", err)
			}
		}},
		{"a key without limits never refuses and never wraps", Policy{}, func(t *testing.T, key string) {
			for _, id := range []string{"x", "y"} {
				if _, err := s.Reserve(ctx, key, key+id, math.MaxInt64); err != nil {
					t.Fatal(err)
				}
			}
			if _, reserved := sharedCounter(t, pool, key, Daily, clk.Now()); reserved != math.MaxInt64 {
				t.Fatalf("reserved %d", reserved)
			}
			if _, limited, err := s.Remaining(ctx, key); err != nil || limited {
				t.Fatalf("limited %v %v", limited, err)
			}
		}},
		{"record charges without a limit", daily(1000), func(t *testing.T, key string) {
			yesterday := clk.Now().Add(-24 * time.Hour)
			for _, at := range []time.Time{{}, yesterday, clk.Now()} {
				if err := s.Record(ctx, key, at, 600); err != nil {
					t.Fatal(err)
				}
			}
			if spent, reserved := sharedCounter(t, pool, key, Daily, clk.Now()); spent != 1200 || reserved != 0 {
				t.Fatalf("today spent %s reserved %s, want 1200", spent, reserved)
			}
			if spent, _ := sharedCounter(t, pool, key, Daily, yesterday); spent != 600 {
				t.Fatalf("yesterday spent %s, want 600", spent)
			}
			if spent, _ := sharedCounter(t, pool, key, Total, clk.Now()); spent != 1800 {
				t.Fatalf("total spent %s, want 1800", spent)
			}
			if _, err := s.Reserve(ctx, key, key+"-a", 0); !errors.Is(err, ErrExhausted) {
				t.Fatalf("reserve over the limit: %v", err)
			}
		}},
		{"a negative reservation is an error", daily(1000), func(t *testing.T, key string) {
			if _, err := s.Reserve(ctx, key, key+"-a", -1); err == nil || errors.Is(err, ErrExhausted) {
				t.Fatalf("err %v", err)
			}
		}},
	}
	for i, tc := range tests {
		key := fmt.Sprintf("k%d", i)
		pols[key] = tc.policy
		t.Run(tc.name, func(t *testing.T) { tc.run(t, key) })
	}
}

// reserveFunc is the reserve of the exactness tests.
type reserveFunc func(s *SharedAccounts, key, id string, amount llm.Micros) (Reservation, error)

// exactFit is the acceptance test: three replicas (three pools),
// 600 concurrent requests whose costs are all in (L/(N+1), L/N], each
// settling at its reservation: exactly N are served whatever the
// interleaving, and the spend is the sum of the settled costs, at most L.
func exactFit(t *testing.T, durability Durability, reserve reserveFunc) (served int64, spent, limit llm.Micros) {
	const n, requests = 20, 600
	open := sharedSchema(t)
	clk := newClock("2026-03-10T12:00:00Z")
	// sizes 1000..1049: 20 × 1049 = 20980 <= limit < 21 × 1000.
	limit = 20980
	pols := staticPolicies{"k": {Limits: []Limit{{Period: Daily, Amount: limit}, {Period: Monthly, Amount: 10 * limit}}}}
	replicas := make([]*SharedAccounts, 3)
	for i := range replicas {
		replicas[i] = NewSharedAccounts(open(8), pols, SharedOptions{Now: clk.Now, Durability: durability})
	}
	var ok, refused, other atomic.Int64
	var settled atomic.Int64
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range requests {
		wg.Go(func() {
			s := replicas[i%len(replicas)]
			size := llm.Micros(1000 + i%50)
			<-start
			r, err := reserve(s, "k", fmt.Sprintf("req-%d", i), size)
			switch {
			case errors.Is(err, ErrExhausted):
				if e, _ := llm.AsError(err); e == nil || e.Status != http.StatusPaymentRequired {
					other.Add(1)
				}
				refused.Add(1)
				return
			case err != nil:
				t.Error(err)
				other.Add(1)
				return
			}
			if err := s.Settle(ctx, r, size); err != nil {
				t.Error(err)
				other.Add(1)
				return
			}
			ok.Add(1)
			settled.Add(int64(size))
		})
	}
	close(start)
	wg.Wait()
	if other.Load() != 0 || ok.Load()+refused.Load() != requests {
		t.Fatalf("%d served, %d refused, %d other errors", ok.Load(), refused.Load(), other.Load())
	}
	pool := replicas[0].pool
	daily, reserved := sharedCounter(t, pool, "k", Daily, clk.Now())
	var ledger llm.Micros
	if err := pool.QueryRow(ctx, `SELECT coalesce(sum(cost), 0) FROM budget_reservations WHERE state = 'settled'`).Scan(&ledger); err != nil {
		t.Fatal(err)
	}
	if daily != llm.Micros(settled.Load()) || daily != ledger || reserved != 0 {
		t.Fatalf("daily spent %s, reserved %s; settled costs %d, settled rows %s", daily, reserved, settled.Load(), ledger)
	}
	return ok.Load(), daily, limit
}

func TestSharedExactFit(t *testing.T) {
	tests := []struct {
		name       string
		durability Durability
	}{
		{"durable settles", DurableSettles},
		{"durable all", DurableAll},
		{"durable none", DurableNone},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			served, spent, limit := exactFit(t, tc.durability, func(s *SharedAccounts, key, id string, amount llm.Micros) (Reservation, error) {
				return s.Reserve(ctx, key, id, amount)
			})
			if served != 20 || spent > limit {
				t.Fatalf("%d served, spent %s of %s; want exactly 20 within the limit", served, spent, limit)
			}
		})
	}
}

// TestSharedExactFitCatchesARace: the same test against a reserve that
// reads the counters and then writes without the atomic condition (what
// SharedAccounts must not do) admits more than N: the test above would
// catch the race. Every request reads before any writes (a barrier), the
// interleaving the atomic condition exists for.
func TestSharedExactFitCatchesARace(t *testing.T) {
	var read sync.WaitGroup
	read.Add(600)
	served, spent, limit := exactFit(t, DurableSettles, func(s *SharedAccounts, key, id string, amount llm.Micros) (Reservation, error) {
		ok, err := s.Fits(ctx, key, amount)
		read.Done()
		read.Wait()
		if err != nil {
			return Reservation{}, err
		}
		if !ok {
			return Reservation{}, &llm.Error{Status: http.StatusPaymentRequired, Err: ErrExhausted}
		}
		return racyReserve(s, key, id, amount)
	})
	if served <= 20 || spent <= limit {
		t.Fatalf("the racy reserve served %d, spent %s of %s: the exactness test would not catch a race", served, spent, limit)
	}
}

// racyReserve holds amount without any condition: the write half of a
// read-then-write reserve.
func racyReserve(s *SharedAccounts, key, id string, amount llm.Micros) (Reservation, error) {
	now := time.UnixMilli(s.now().UnixMilli())
	w := s.windowsAt(now)
	if _, err := s.pool.Exec(ctx, `INSERT INTO budget_reservations (request_id, key_id, amount, admitted_at, lease_expires_at, state)
		VALUES ($1, $2, $3, $4, $4, 'held')`, id, key, int64(amount), now.UnixMilli()); err != nil {
		return Reservation{}, err
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO budget_counters AS k (key_id, period, period_start, period_end, reserved)
		SELECT $1, p.period, p.start, p.stop, $2 FROM unnest($3::text[], $4::bigint[], $5::bigint[]) AS p (period, start, stop)
		ORDER BY p.period
		ON CONFLICT (key_id, period, period_start) DO UPDATE SET reserved = k.reserved + excluded.reserved`,
		key, int64(amount), w.names[:], w.starts[:], w.ends[:])
	return Reservation{KeyID: key, RequestID: id, Amount: amount, At: now}, err
}

// TestSharedIdempotentAcrossReplicas: one request id reserved, settled and
// released concurrently from three replicas holds one reservation and
// charges one cost.
func TestSharedIdempotentAcrossReplicas(t *testing.T) {
	open := sharedSchema(t)
	clk := newClock("2026-03-10T12:00:00Z")
	pols := staticPolicies{"k": {Limits: []Limit{{Period: Daily, Amount: 1000}}}}
	replicas := []*SharedAccounts{
		NewSharedAccounts(open(4), pols, SharedOptions{Now: clk.Now}),
		NewSharedAccounts(open(4), pols, SharedOptions{Now: clk.Now}),
		NewSharedAccounts(open(4), pols, SharedOptions{Now: clk.Now}),
	}
	var wg sync.WaitGroup
	got := make([]Reservation, 60)
	for i := range got {
		wg.Go(func() {
			r, err := replicas[i%3].Reserve(ctx, "k", "same", llm.Micros(100+i))
			if err != nil {
				t.Error(err)
			}
			got[i] = r
		})
	}
	wg.Wait()
	for _, r := range got {
		if r != got[0] {
			t.Fatalf("reservations differ: %+v and %+v", r, got[0])
		}
	}
	if _, reserved := sharedCounter(t, replicas[0].pool, "k", Daily, clk.Now()); reserved != got[0].Amount {
		t.Fatalf("reserved %s, want %s", reserved, got[0].Amount)
	}
	for i := range 30 {
		wg.Go(func() {
			if err := replicas[i%3].Settle(ctx, got[0], 70); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if spent, reserved := sharedCounter(t, replicas[0].pool, "k", Daily, clk.Now()); spent != 70 || reserved != 0 {
		t.Fatalf("spent %s reserved %s, want 70 and 0", spent, reserved)
	}
}

// TestSharedLeaseExpiry: a replica dies holding the only reservation that
// fits; the others refuse until its lease expires, then ReleaseExpired
// (run by every survivor at once) returns the hold exactly once. A settle
// arriving after the expiry (the replica was only slow) charges its cost
// without returning the hold twice.
func TestSharedLeaseExpiry(t *testing.T) {
	open := sharedSchema(t)
	clk := newClock("2026-03-10T12:00:00Z")
	pols := staticPolicies{"k": {Limits: []Limit{{Period: Daily, Amount: 1000}}}}
	o := SharedOptions{Now: clk.Now, Lease: time.Minute, ExpireBatch: 7}
	deadPool := open(2)
	dead := NewSharedAccounts(deadPool, pols, o)
	alive := []*SharedAccounts{NewSharedAccounts(open(4), pols, o), NewSharedAccounts(open(4), pols, o)}

	// 50 reservations of other keys expire with it, released in batches.
	for i := range 50 {
		if _, err := dead.Reserve(ctx, fmt.Sprintf("other-%d", i%5), fmt.Sprintf("o-%d", i), 10); err != nil {
			t.Fatal(err)
		}
	}
	held, err := dead.Reserve(ctx, "k", "dying", 900)
	if err != nil {
		t.Fatal(err)
	}
	deadPool.Close()

	if _, err := alive[0].Reserve(ctx, "k", "next", 900); !errors.Is(err, ErrExhausted) {
		t.Fatalf("reserve while the dead replica holds the budget: %v", err)
	}
	clk.Advance(59 * time.Second)
	if n, err := alive[0].ReleaseExpired(ctx); err != nil || n != 0 {
		t.Fatalf("released %d before the lease expired: %v", n, err)
	}
	clk.Advance(time.Second)
	var released atomic.Int64
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Go(func() {
			n, err := alive[i%2].ReleaseExpired(ctx)
			if err != nil {
				t.Error(err)
			}
			released.Add(int64(n))
		})
	}
	wg.Wait()
	if released.Load() != 51 {
		t.Fatalf("released %d, want 51", released.Load())
	}
	for i := range 5 {
		if _, reserved := sharedCounter(t, alive[0].pool, fmt.Sprintf("other-%d", i), Daily, clk.Now()); reserved != 0 {
			t.Fatalf("other-%d reserved %s", i, reserved)
		}
	}
	next, err := alive[1].Reserve(ctx, "k", "next", 900)
	if err != nil {
		t.Fatalf("reserve after the expiry: %v", err)
	}

	// The "dead" replica was only slow: its settle arrives now.
	if err := alive[0].Settle(ctx, held, 300); err != nil {
		t.Fatal(err)
	}
	if spent, reserved := sharedCounter(t, alive[0].pool, "k", Daily, clk.Now()); spent != 300 || reserved != 900 {
		t.Fatalf("spent %s reserved %s, want 300 and 900 (next's)", spent, reserved)
	}
	if err := alive[1].Settle(ctx, next, 600); err != nil {
		t.Fatal(err)
	}
	if spent, reserved := sharedCounter(t, alive[0].pool, "k", Daily, clk.Now()); spent != 900 || reserved != 0 {
		t.Fatalf("spent %s reserved %s, want 900 and 0", spent, reserved)
	}
	// An expired reservation is not released twice, and the id now settled
	// cannot reserve again.
	if n, err := alive[0].ReleaseExpired(ctx); err != nil || n != 0 {
		t.Fatalf("released %d again: %v", n, err)
	}
	if _, err := alive[0].Reserve(ctx, "k", "dying", 1); !errors.Is(err, ErrSettled) {
		t.Fatalf("reserve a settled id: %v", err)
	}
}

// TestSharedRollover: a request admitted at 23:59:59 and settled after
// midnight is charged to the day that admitted it; the new day starts with
// its whole budget, the month keeps both; periods follow the Location.
func TestSharedRollover(t *testing.T) {
	open := sharedSchema(t)
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Skip(err)
	}
	tests := []struct {
		name  string
		loc   *time.Location
		start string // one second before local midnight
	}{
		{"utc", time.UTC, "2026-03-10T23:59:59Z"},
		{"paris", paris, "2026-03-10T22:59:59Z"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock(tc.start)
			key := "k-" + tc.name
			pols := staticPolicies{key: {Limits: []Limit{{Period: Daily, Amount: 1000}, {Period: Monthly, Amount: 5000}}}}
			s := NewSharedAccounts(open(2), pols, SharedOptions{Now: clk.Now, Location: tc.loc})
			r, err := s.Reserve(ctx, key, key+"-late", 1000)
			if err != nil {
				t.Fatal(err)
			}
			clk.Advance(2 * time.Second)
			if rem, _, err := s.Remaining(ctx, key); err != nil || rem != 1000 {
				t.Fatalf("remaining on the new day %s %v, want 1000", rem, err)
			}
			if err := s.Settle(ctx, r, 800); err != nil {
				t.Fatal(err)
			}
			w0, w1 := s.windowsAt(r.At), s.windowsAt(clk.Now())
			read := func(w windows) [len(periods)]counter {
				cs, err := s.counters(ctx, key, w)
				if err != nil {
					t.Fatal(err)
				}
				return cs
			}
			day := periodIndex(w0, Daily)
			month := periodIndex(w0, Monthly)
			if c := read(w0)[day]; c.spent != 800 || c.reserved != 0 {
				t.Fatalf("yesterday %+v", c)
			}
			if c := read(w1)[day]; c.spent != 0 || c.reserved != 0 {
				t.Fatalf("today %+v", c)
			}
			if c := read(w1)[month]; c.spent != 800 {
				t.Fatalf("month %+v", c)
			}
			if _, err := s.Reserve(ctx, key, key+"-today", 1000); err != nil {
				t.Fatalf("a full day's budget on the new day: %v", err)
			}
		})
	}
}

func periodIndex(w windows, p Period) int {
	for i, q := range w.at {
		if q == p {
			return i
		}
	}
	return -1
}

// TestSharedMixed: what production does, from three replicas at once:
// requests on five keys reserve, then settle below their reservation,
// release, or die holding it, while every replica releases the expired
// reservations a dead replica left an hour ago (locking counters of the
// same keys). Nothing deadlocks or fails; each key's spend stays within
// its limit and equals the sum of its settled costs; what stays reserved
// is exactly what the dying requests hold.
func TestSharedMixed(t *testing.T) {
	open := sharedSchema(t)
	clk := newClock("2026-03-10T12:00:00Z")
	const keys, limit = 5, 50_000
	pols := staticPolicies{}
	for k := range keys {
		pols[fmt.Sprintf("k%d", k)] = Policy{Limits: []Limit{{Period: Daily, Amount: limit}, {Period: Weekly, Amount: 3 * limit}}}
	}
	earlier := func() time.Time { return clk.Now().Add(-time.Hour) }
	dead := NewSharedAccounts(open(2), pols, SharedOptions{Now: earlier})
	for i := range 200 {
		if _, err := dead.Reserve(ctx, fmt.Sprintf("k%d", i%keys), fmt.Sprintf("dead-%d", i), 10); err != nil {
			t.Fatal(err)
		}
	}
	o := SharedOptions{Now: clk.Now, ExpireBatch: 16}
	replicas := []*SharedAccounts{NewSharedAccounts(open(6), pols, o), NewSharedAccounts(open(6), pols, o), NewSharedAccounts(open(6), pols, o)}

	var wg sync.WaitGroup
	var expired atomic.Int64
	for _, s := range replicas {
		wg.Go(func() {
			n, err := s.ReleaseExpired(ctx)
			if err != nil {
				t.Error(err)
			}
			expired.Add(int64(n))
		})
	}
	held := make([]atomic.Int64, keys)
	for i := range 600 {
		wg.Go(func() {
			s, k := replicas[i%3], i%keys
			key := fmt.Sprintf("k%d", k)
			amount := llm.Micros(500 + i%700)
			r, err := s.Reserve(ctx, key, fmt.Sprintf("req-%d", i), amount)
			if errors.Is(err, ErrExhausted) {
				return
			}
			if err != nil {
				t.Error(err)
				return
			}
			switch i % 4 {
			case 0:
				err = s.Release(ctx, r)
			case 1:
				held[k].Add(int64(amount)) // dies holding it
			default:
				err = s.Settle(ctx, r, amount*llm.Micros(i%10)/10)
			}
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if expired.Load() != 200 {
		t.Fatalf("released %d expired reservations, want 200", expired.Load())
	}
	pool := replicas[0].pool
	for k := range keys {
		key := fmt.Sprintf("k%d", k)
		spent, reserved := sharedCounter(t, pool, key, Daily, clk.Now())
		var settled llm.Micros
		if err := pool.QueryRow(ctx, `SELECT coalesce(sum(cost), 0) FROM budget_reservations WHERE key_id = $1 AND state = 'settled'`,
			key).Scan(&settled); err != nil {
			t.Fatal(err)
		}
		if spent > limit || spent != settled || reserved != llm.Micros(held[k].Load()) {
			t.Errorf("%s: spent %s (settled rows %s, limit %d), reserved %s, want %d", key, spent, settled, limit, reserved, held[k].Load())
		}
	}
}
