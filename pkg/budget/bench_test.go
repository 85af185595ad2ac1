package budget

import (
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/stdlib"

	"github.com/tollgate/tollgate/internal/pgtest"
)

// BenchmarkReserveSettle measures reserve + settle (a durable ledger row
// per request, group commit) from many goroutines over many keys, each
// with a daily and a monthly limit. The figure to read is settled/s.
// store=sqlite is one process on a real SQLite file
// (TOLLGATE_BUDGET_JOURNAL=1 measures the journal, the gateway's mode,
// instead of a transaction per batch); store=postgres is one replica of
// several (Options.Shared, a pool of 16 connections as cmd/server opens)
// on $TOLLGATE_TEST_POSTGRES, skipped without it.
func BenchmarkReserveSettle(b *testing.B) {
	defaults := Policy{Limits: []Limit{{Period: Daily, Amount: 1 << 50}, {Period: Monthly, Amount: 1 << 52}}}
	for _, bc := range []struct {
		name        string
		parallelism int // goroutines per GOMAXPROCS
		keys        int
		postgres    bool
	}{
		{"store=sqlite/goroutines=16xP/keys=1000", 16, 1000, false},
		{"store=sqlite/goroutines=64xP/keys=1000", 64, 1000, false},
		{"store=sqlite/goroutines=64xP/keys=1", 64, 1, false},
		{"store=postgres/goroutines=16xP/keys=1000", 16, 1000, true},
		{"store=postgres/goroutines=64xP/keys=1000", 64, 1000, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var l *Ledger
			if bc.postgres {
				// As cmd/server opens it: database/sql on the pgx pool.
				pool := pgtest.NewSchema(b).Pool(b, 16)
				var err error
				l, err = Open(ctx, stdlib.OpenDBFromPool(pool), Options{Defaults: defaults, Shared: &Shared{Pool: pool}})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { l.Close() })
			} else {
				l, _ = newTestDB(b).open(b, Options{Defaults: defaults})
			}
			var seq atomic.Int64
			b.ReportAllocs()
			b.SetParallelism(bc.parallelism)
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := seq.Add(1)
					key := "key-" + strconv.Itoa(int(i)%bc.keys)
					id := "req-" + strconv.FormatInt(i, 10)
					r, err := l.Accounts.Reserve(ctx, key, id, 5_000)
					if err != nil {
						b.Error(err)
						return
					}
					if err := l.Accounts.Settle(ctx, r, Entry{Route: "chat", RequestedModel: "gpt-4o-mini", Model: "gpt-4o-mini", Provider: "openai",
						PromptTokens: 120, CompletionTokens: 80, Cost: 3_210, Cache: "miss", Status: 200, Latency: 800 * time.Millisecond, Attempts: 1}); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "settled/s")
		})
	}
}

// BenchmarkOpenRebuild measures Open on a ledger of 1M rows over 1000
// keys: the startup rebuild of every key's period spend is one scan of the
// ledger.
func BenchmarkOpenRebuild(b *testing.B) {
	const rows, keys = 1_000_000, 1000
	d := newTestDB(b)
	l, closeL := d.open(b, Options{})
	tx, err := l.Store.db.Begin()
	if err != nil {
		b.Fatal(err)
	}
	stmt, err := tx.Prepare(insertEntry)
	if err != nil {
		b.Fatal(err)
	}
	t0 := time.Now().Add(-90 * 24 * time.Hour).UnixMilli()
	for i := range rows {
		if _, err := stmt.Exec(t0+int64(i)*7776, "req-"+strconv.Itoa(i), "key-"+strconv.Itoa(i%keys), "chat", "m", "m", "p",
			100, 50, 0, 1000+i%777, 0, false, false, "miss", 200, 500, 1, "", 0); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	closeL()
	b.ResetTimer()
	for b.Loop() {
		l, closeL := d.open(b, Options{})
		if st := l.Accounts.Status("key-7"); st.Periods[3].Spent == 0 {
			b.Fatal("nothing rebuilt")
		}
		closeL()
	}
}

// BenchmarkAllow measures the rate-limit check of every request (rpm and
// tpm of the key's policy, in memory) over many keys from many goroutines.
func BenchmarkAllow(b *testing.B) {
	l, _ := newTestDB(b).open(b, Options{Defaults: Policy{RPM: 1 << 30, TPM: 1 << 30}})
	overKeys(b, func(key, _ string) error {
		_, err := l.Limits.Allow(key, 120)
		return err
	})
}

// BenchmarkReserveRelease measures the in-memory half of a request's
// accounting (reserve, then release: no ledger row), so that changes to
// the counters are not hidden behind the disk.
func BenchmarkReserveRelease(b *testing.B) {
	l, _ := newTestDB(b).open(b, Options{Defaults: Policy{Limits: []Limit{
		{Period: Daily, Amount: 1 << 50}, {Period: Monthly, Amount: 1 << 52}}}})
	overKeys(b, func(key, id string) error {
		r, err := l.Accounts.Reserve(ctx, key, id, 5_000)
		if err == nil {
			l.Accounts.Release(r)
		}
		return err
	})
}

// overKeys runs fn from 16 goroutines per GOMAXPROCS, each call with one of
// 1000 keys and a new request id.
func overKeys(b *testing.B, fn func(key, requestID string) error) {
	var seq atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := seq.Add(1)
			if err := fn("key-"+strconv.Itoa(int(i)%1000), "req-"+strconv.FormatInt(i, 10)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkReserveReleaseCustomer is BenchmarkReserveRelease for requests
// of one of 100 customers of keys with customer budgets: the second
// account's cost.
func BenchmarkReserveReleaseCustomer(b *testing.B) {
	l, _ := newTestDB(b).open(b, Options{Defaults: Policy{
		Limits:    []Limit{{Period: Daily, Amount: 1 << 50}, {Period: Monthly, Amount: 1 << 52}},
		Customers: &CustomerBudgets{Default: []Limit{{Period: Daily, Amount: 1 << 50}}},
	}})
	customers := make([]string, 100)
	for i := range customers {
		customers[i] = "customer-" + strconv.Itoa(i)
	}
	overKeys(b, func(key, id string) error {
		c := customers[(int(id[len(id)-1])*31+int(id[len(id)-2]))%len(customers)] // by the id's last digits
		r, err := l.Accounts.ReserveFor(ctx, key, c, id, 5_000)
		if err == nil {
			l.Accounts.Release(r)
		}
		return err
	})
}
