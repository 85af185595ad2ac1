package budget

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tollgate/tollgate/pkg/llm"
)

// ledgerEntry is a ledger row for the shared ledger's tests.
func ledgerEntry(key, id string, at time.Time, cost llm.Micros) *Entry {
	return &Entry{Time: at, RequestID: id, KeyID: key, Route: "/v1/chat/completions", RequestedModel: "gpt-x", Model: "gpt-x",
		Provider: "openai", PromptTokens: 10, CompletionTokens: 5, CachedTokens: 2, Cost: cost, Saved: 1, Estimated: true,
		Cache: "miss", Judge: JudgeNo, JudgeCost: 3, Status: 200, Latency: 42 * time.Millisecond, Attempts: 1}
}

// newSharedLedger opens a SharedLedger on pool, closed at Cleanup.
func newSharedLedger(t testing.TB, pool *pgxpool.Pool, now func() time.Time) *SharedLedger {
	l := NewSharedLedger(pool, SharedLedgerOptions{Now: now})
	t.Cleanup(func() { l.Close() })
	return l
}

// TestSharedLedgerAppendReplicas: three replicas (three pools) appending
// concurrently write every row exactly once, with every column, and Spend
// sums them.
func TestSharedLedgerAppendReplicas(t *testing.T) {
	open := sharedSchema(t)
	const replicas, callers, perCaller = 3, 8, 25
	at := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	ledgers := make([]*SharedLedger, replicas)
	for i := range ledgers {
		ledgers[i] = newSharedLedger(t, open(4), nil)
	}
	var want atomic.Int64
	var wg sync.WaitGroup
	for r, l := range ledgers {
		for c := range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range perCaller {
					cost := llm.Micros(100 + r*callers*perCaller + c*perCaller + i)
					e := ledgerEntry(fmt.Sprintf("key-%d", c%3), fmt.Sprintf("r%d-c%d-%d", r, c, i), at, cost)
					if err := l.Append(ctx, e); err != nil {
						t.Error(err)
						return
					}
					want.Add(int64(cost))
				}
			}()
		}
	}
	wg.Wait()

	check := open(1)
	var rows, ids int
	if err := check.QueryRow(ctx, `SELECT count(*), count(DISTINCT request_id) FROM budget_ledger`).Scan(&rows, &ids); err != nil {
		t.Fatal(err)
	}
	if n := replicas * callers * perCaller; rows != n || ids != n {
		t.Errorf("ledger has %d rows of %d request ids, want %d of each", rows, ids, n)
	}
	var got Entry
	var ts, latency int64
	var cost, saved, judgeCost int64
	err := check.QueryRow(ctx, `SELECT ts, request_id, key_id, route, requested_model, model, provider, prompt_tokens,
		completion_tokens, cached_tokens, cost, saved, estimated, unpriced, cache, status, latency_ms, attempts, judge, judge_cost
		FROM budget_ledger WHERE request_id = 'r1-c2-3'`).Scan(&ts, &got.RequestID, &got.KeyID, &got.Route, &got.RequestedModel,
		&got.Model, &got.Provider, &got.PromptTokens, &got.CompletionTokens, &got.CachedTokens, &cost, &saved, &got.Estimated,
		&got.Unpriced, &got.Cache, &got.Status, &latency, &got.Attempts, &got.Judge, &judgeCost)
	if err != nil {
		t.Fatal(err)
	}
	got.Time, got.Cost, got.Saved, got.JudgeCost, got.Latency = time.UnixMilli(ts).UTC(), llm.Micros(cost), llm.Micros(saved),
		llm.Micros(judgeCost), time.Duration(latency)*time.Millisecond
	if w := ledgerEntry("key-2", "r1-c2-3", at, llm.Micros(100+1*callers*perCaller+2*perCaller+3)); got != *w {
		t.Errorf("row r1-c2-3 = %+v, want %+v", got, *w)
	}

	var total llm.Micros
	for k := range 3 {
		s, err := ledgers[k].Spend(ctx, fmt.Sprintf("key-%d", k), at)
		if err != nil {
			t.Fatal(err)
		}
		total += s
	}
	if total != llm.Micros(want.Load()) {
		t.Errorf("spend of the keys = %d, want %d", total, want.Load())
	}
}

// TestSharedLedgerDurableOnReturn: a row is committed when Append
// returns: another pool (another replica) reads it at once.
func TestSharedLedgerDurableOnReturn(t *testing.T) {
	open := sharedSchema(t)
	l := newSharedLedger(t, open(4), nil)
	other := open(4)
	var wg sync.WaitGroup
	for c := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				id := fmt.Sprintf("c%d-%d", c, i)
				if err := l.Append(ctx, ledgerEntry("k", id, time.Now(), 1)); err != nil {
					t.Error(err)
					return
				}
				var n int
				if err := other.QueryRow(ctx, `SELECT count(*) FROM budget_ledger WHERE request_id = $1`, id).Scan(&n); err != nil {
					t.Error(err)
					return
				}
				if n != 1 {
					t.Errorf("row %s: %d rows right after Append returned, want 1", id, n)
				}
			}
		}()
	}
	wg.Wait()
}

func TestSharedLedgerSpend(t *testing.T) {
	open := sharedSchema(t)
	l := newSharedLedger(t, open(2), nil)
	day := time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)
	big := llm.Micros(1) << 40 // sums past int32 and far past what numeric would need a cast for
	rows := []*Entry{
		ledgerEntry("a", "1", day.Add(-time.Hour), 7),
		ledgerEntry("a", "2", day, big),
		ledgerEntry("a", "3", day.Add(5*time.Hour), big),
		ledgerEntry("b", "4", day.Add(time.Hour), 11),
	}
	if err := l.Append(ctx, rows...); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		key   string
		since time.Time
		want  llm.Micros
	}{
		{"all of a", "a", day.Add(-24 * time.Hour), 7 + 2*big},
		{"since is inclusive", "a", day, 2 * big},
		{"after the last row", "a", day.Add(6 * time.Hour), 0},
		{"other key", "b", day, 11},
		{"unknown key", "c", day, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := l.Spend(ctx, tc.key, tc.since)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("Spend(%s, %v) = %d, want %d", tc.key, tc.since, got, tc.want)
			}
		})
	}
}

func TestSharedLedgerClosed(t *testing.T) {
	open := sharedSchema(t)
	l := NewSharedLedger(open(1), SharedLedgerOptions{})
	if err := l.Append(ctx, ledgerEntry("k", "before", time.Now(), 1)); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Append(ctx, ledgerEntry("k", "after", time.Now(), 1)); !errors.Is(err, errClosed) {
		t.Errorf("Append after Close: %v, want %v", err, errClosed)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// sharedClock is a clock tests move; replicas share it.
type sharedClock struct{ ms atomic.Int64 }

func (c *sharedClock) now() time.Time          { return time.UnixMilli(c.ms.Load()) }
func (c *sharedClock) advance(d time.Duration) { c.ms.Add(d.Milliseconds()) }

// outboxAlerts returns n alerts of key, each with deliveries to two
// webhooks, created at created.
func outboxAlerts(key string, n int, created time.Time) []alertRow {
	out := make([]alertRow, n)
	for i := range out {
		out[i] = alertRow{uid: fmt.Sprintf("%s-%d", key, i), keyID: key,
			key:     alertKey{period: Daily, start: created.UnixMilli(), event: EventThreshold, ppm: int64(i), limit: 1000},
			created: created.UnixMilli(), payload: []byte(`{"id":"x"}`),
			deliveries: []delivery{{url: "http://a.example/hook", body: []byte("a")}, {url: "http://b.example/hook", slack: true, body: []byte("b")}}}
	}
	return out
}

// TestSharedOutboxDisjointClaims: two replicas claiming concurrently never
// get the same row, together get every row, and acked rows are not
// claimed again.
func TestSharedOutboxDisjointClaims(t *testing.T) {
	open := sharedSchema(t)
	clock := &sharedClock{}
	clock.ms.Store(time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC).UnixMilli())
	a, b := newSharedLedger(t, open(2), clock.now), newSharedLedger(t, open(2), clock.now)
	const alerts = 150
	if err := a.appendAlerts(ctx, outboxAlerts("k", alerts, clock.now())); err != nil {
		t.Fatal(err)
	}
	// The same alerts again (another replica deciding them too) add no
	// deliveries.
	if err := b.appendAlerts(ctx, outboxAlerts("k", alerts, clock.now())); err != nil {
		t.Fatal(err)
	}
	claims := make([][]int64, 2)
	var wg sync.WaitGroup
	for r, l := range []*SharedLedger{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				items, err := l.ClaimOutbox(ctx, 7, time.Minute)
				if err != nil {
					t.Error(err)
					return
				}
				if len(items) == 0 {
					return
				}
				ids := make([]int64, len(items))
				for i, it := range items {
					ids[i] = it.ID
					if it.Attempts != 1 {
						t.Errorf("row %d: attempts %d on its first claim", it.ID, it.Attempts)
					}
				}
				claims[r] = append(claims[r], ids...)
				if n, err := l.AckOutbox(ctx, ids); err != nil || n != len(ids) {
					t.Errorf("AckOutbox(%d rows) = %d, %v", len(ids), n, err)
				}
				runtime.Gosched()
			}
		}()
	}
	wg.Wait()
	seen := map[int64]int{}
	for r := range claims {
		for _, id := range claims[r] {
			seen[id]++
		}
	}
	if len(seen) != 2*alerts {
		t.Errorf("%d rows claimed (%d by a, %d by b), want %d", len(seen), len(claims[0]), len(claims[1]), 2*alerts)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("row %d claimed %d times", id, n)
		}
	}
	clock.advance(time.Hour)
	if items, err := a.ClaimOutbox(ctx, 100, time.Minute); err != nil || len(items) != 0 {
		t.Errorf("after every row was acked: claimed %d rows, %v", len(items), err)
	}
}

// TestSharedOutboxLease: a claim holds a row for its lease; unacked, the
// row is claimable again once the lease ends, and acked it never is.
func TestSharedOutboxLease(t *testing.T) {
	open := sharedSchema(t)
	clock := &sharedClock{}
	start := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	clock.ms.Store(start.UnixMilli())
	a, b := newSharedLedger(t, open(1), clock.now), newSharedLedger(t, open(1), clock.now)
	if err := a.appendAlerts(ctx, outboxAlerts("k", 1, start)); err != nil {
		t.Fatal(err)
	}
	const lease = time.Minute
	first, err := a.ClaimOutbox(ctx, 10, lease)
	if err != nil || len(first) != 2 {
		t.Fatalf("first claim: %d rows, %v; want 2", len(first), err)
	}
	if first[0].URL != "http://a.example/hook" || first[0].Slack || string(first[0].Body) != "a" || !first[1].Slack {
		t.Errorf("claimed %+v", first)
	}
	for _, step := range []struct {
		name    string
		advance time.Duration
		ack     bool // b acks what it claims
		want    int  // rows b claims
		attempt int
	}{
		{"held during the lease", 0, false, 0, 0},
		{"held until its last millisecond", lease - time.Millisecond, false, 0, 0},
		{"claimable when the lease ends", time.Millisecond, false, 2, 2},
		{"held by the new claim", lease / 2, false, 0, 0},
		{"claimable again, then acked", lease, true, 2, 3},
		{"never again once acked", 24 * time.Hour, false, 0, 0},
	} {
		t.Run(step.name, func(t *testing.T) {
			clock.advance(step.advance)
			items, err := b.ClaimOutbox(ctx, 10, lease)
			if err != nil {
				t.Fatal(err)
			}
			if len(items) != step.want {
				t.Fatalf("claimed %d rows, want %d", len(items), step.want)
			}
			for _, it := range items {
				if it.Attempts != step.attempt {
					t.Errorf("row %d: attempts %d, want %d", it.ID, it.Attempts, step.attempt)
				}
			}
			if step.ack {
				if n, err := b.AckOutbox(ctx, []int64{items[0].ID, items[1].ID}); err != nil || n != 2 {
					t.Errorf("AckOutbox = %d, %v; want 2", n, err)
				}
			}
		})
	}
	// The first claimer's late ack finds the rows delivered.
	if n, err := a.AckOutbox(ctx, []int64{first[0].ID, first[1].ID}); err != nil || n != 0 {
		t.Errorf("late AckOutbox = %d, %v; want 0", n, err)
	}
}

// BenchmarkSharedLedgerAppend: one replica (a pool of 4 connections)
// appending one row per call from many goroutines; rows/s is what group
// commit sustains with every Append durable.
func BenchmarkSharedLedgerAppend(b *testing.B) {
	open := sharedSchema(b)
	pool := open(4)
	for _, par := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("callers=%d", par*runtime.GOMAXPROCS(0)), func(b *testing.B) {
			l := NewSharedLedger(pool, SharedLedgerOptions{})
			defer l.Close()
			var seq atomic.Int64
			at := time.Now()
			b.ReportAllocs()
			b.SetParallelism(par)
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := seq.Add(1)
					if err := l.Append(ctx, ledgerEntry("k", fmt.Sprintf("b-%d", i), at, 1)); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "rows/s")
			b.ReportMetric(float64(b.N)/float64(max(l.commits.Load(), 1)), "rows/commit")
		})
	}
}

// sharedCrashEnv names the schema TestSharedLedgerCrashHelper appends in.
const sharedCrashEnv = "TOLLGATE_BUDGET_SHARED_CRASH_SCHEMA"

// TestSharedLedgerCrashHelper is the child process of
// TestSharedLedgerKill9: it appends rows from several goroutines as fast
// as it can and prints "ack <request id> <cost> ." for each Append that
// returned nil (what the gateway would acknowledge), until killed.
func TestSharedLedgerCrashHelper(t *testing.T) {
	schema := os.Getenv(sharedCrashEnv)
	if schema == "" {
		t.Skip("the child process of TestSharedLedgerKill9")
	}
	cfg, err := pgxpool.ParseConfig(os.Getenv(envTestPostgres))
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	cfg.MaxConns = 4
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	l := NewSharedLedger(pool, SharedLedgerOptions{})
	var out sync.Mutex
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := 0; ; i++ {
				id := fmt.Sprintf("%d-%d-%d", os.Getpid(), g, i)
				cost := llm.Micros(1 + (g*7919+i*104729)%5000)
				if err := l.Append(ctx, ledgerEntry("k", id, time.Now(), cost)); err != nil {
					panic(err)
				}
				out.Lock()
				fmt.Fprintf(os.Stdout, "ack %s %d .\n", id, cost) // unbuffered: on the pipe before the next row
				out.Unlock()
			}
		})
	}
	wg.Wait()
}

// TestSharedLedgerKill9 kills a replica appending rows with SIGKILL:
// every row it acknowledged is in the ledger, with its cost, once.
func TestSharedLedgerKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a process")
	}
	pool := sharedSchema(t)(2)
	var schema string
	if err := pool.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestSharedLedgerCrashHelper$")
	cmd.Env = append(os.Environ(), sharedCrashEnv+"="+schema)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[string]int64{}
	sc := bufio.NewScanner(stdout)
	killed := false
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 4 || f[0] != "ack" || f[3] != "." {
			continue // a line cut by the kill was never acknowledged
		}
		acked[f[1]], _ = strconv.ParseInt(f[2], 10, 64)
		if len(acked) == 2000 && !killed {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	err = cmd.Wait()
	if !killed {
		t.Fatalf("child exited before the kill: %v", err)
	}
	stored := map[string]int64{}
	rows, err := pool.Query(ctx, `SELECT request_id, cost FROM budget_ledger`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		var cost int64
		if err := rows.Scan(&id, &cost); err != nil {
			t.Fatal(err)
		}
		if _, dup := stored[id]; dup {
			t.Errorf("row %s stored twice", id)
		}
		stored[id] = cost
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	missing := 0
	for id, cost := range acked {
		if got, ok := stored[id]; !ok || got != cost {
			if missing++; missing < 5 {
				t.Errorf("acknowledged %s (cost %d) stored as %d, %v", id, cost, got, ok)
			}
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged rows missing from the ledger", missing, len(acked))
	}
	t.Logf("%d acknowledged, %d rows in the ledger", len(acked), len(stored))
}
