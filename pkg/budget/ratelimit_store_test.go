package budget

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/internal/pgtest"
	"github.com/tollgate/tollgate/pkg/llm"
)

// rateBackend is a RateStore implementation under test. shared returns a
// function making stores that share one state (as replicas do: each a
// pool or client of its own, on one table or key prefix unique to the
// test, dropped when it ends). now nil: the store's own clock.
type rateBackend struct {
	name   string
	shared func(tb testing.TB, now func() time.Time, conns int) func() RateStore
}

var rateTestSeq atomic.Int64

func rateBackends() []rateBackend {
	return []rateBackend{
		{"memory", func(tb testing.TB, now func() time.Time, _ int) func() RateStore {
			s := NewMemoryRateStore(now)
			return func() RateStore { return s }
		}},
		{"postgres", postgresShared},
		{"redis", redisShared},
	}
}

// forEachRateBackend runs f as a subtest per backend.
func forEachRateBackend(t *testing.T, f func(t *testing.T, b rateBackend)) {
	for _, b := range rateBackends() {
		t.Run(b.name, func(t *testing.T) { f(t, b) })
	}
}

// postgresShared makes stores on the default table of a schema of the
// test's own.
func postgresShared(tb testing.TB, now func() time.Time, conns int) func() RateStore {
	schema := pgtest.NewSchema(tb)
	newStore := func() *PostgresRateStore {
		s, err := NewPostgresRateStore(schema.Pool(tb, conns), PostgresRateOptions{Now: now})
		if err != nil {
			tb.Fatal(err)
		}
		return s
	}
	if err := newStore().CreateRateLimitTable(ctx); err != nil {
		tb.Fatal(err)
	}
	return func() RateStore { return newStore() }
}

func redisShared(tb testing.TB, now func() time.Time, conns int) func() RateStore {
	opt, err := redis.ParseURL(pgtest.RedisURL(tb))
	if err != nil {
		tb.Fatal(err)
	}
	if conns > 0 {
		opt.PoolSize = conns
	}
	prefix := fmt.Sprintf("tollgate-test:ratelimit:%d:%d:", os.Getpid(), rateTestSeq.Add(1))
	newClient := func() *redis.Client {
		c := redis.NewClient(opt)
		tb.Cleanup(func() { c.Close() })
		return c
	}
	admin := newClient()
	if err := admin.Ping(ctx).Err(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		iter := admin.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			admin.Del(ctx, iter.Val())
		}
		if err := iter.Err(); err != nil {
			tb.Error(err)
		}
	})
	return func() RateStore {
		return NewRedisRateStore(newClient(), RedisRateOptions{Prefix: prefix, Now: now})
	}
}

// TestRateStoresOwnClock checks the stores' own clocks (PostgreSQL's
// clock_timestamp(), Redis's TIME) against the window: the first request
// of an rpm 3 key leaves 2 and a reset of at most 20 s.
func TestRateStoresOwnClock(t *testing.T) {
	forEachRateBackend(t, func(t *testing.T, b rateBackend) {
		l := newRateLimitsStore(Options{Now: time.Now}, b.shared(t, nil, 0)())
		l.set("k", Policy{RPM: 3, TPM: 1000})
		st, err := l.Allow("k", 500)
		if err != nil {
			t.Fatal(err)
		}
		if st.RemainingRequests != 2 || st.ResetRequests <= 0 || st.ResetRequests > 20*time.Second ||
			st.RemainingTokens != 500 || st.ResetTokens <= 0 || st.ResetTokens > 30*time.Second {
			t.Fatalf("state %+v", st)
		}
	})
}

// TestRateStoresReplicas is the shared rate limit: rpm 10, three
// RateLimits (three replicas, each with its own connections) on one store,
// 200 concurrent requests → exactly 10 served, the rest 429 with a
// Retry-After. The clock stands still, so no unit refills meanwhile.
func TestRateStoresReplicas(t *testing.T) {
	forEachRateBackend(t, func(t *testing.T, b rateBackend) {
		clk := newClock("2026-03-10T12:00:00Z")
		newStore := b.shared(t, clk.Now, 0)
		var replicas []*RateLimits
		for range 3 {
			replicas = append(replicas, newRateLimitsStore(Options{Now: clk.Now, Defaults: Policy{RPM: 10, TPM: 1000}}, newStore()))
		}
		var served atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, 200)
		for i := range 200 {
			wg.Go(func() {
				_, err := replicas[i%3].Allow("shared", 1)
				if err == nil {
					served.Add(1)
					return
				}
				if e, ok := llm.AsError(err); !errors.Is(err, ErrRateLimited) || !ok || e.Status != http.StatusTooManyRequests || e.RetryAfter <= 0 {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("refusal %v", err)
		}
		if n := served.Load(); n != 10 {
			t.Fatalf("served %d, want 10", n)
		}
		// tpm was charged for the 10 served only: both or neither.
		st, err := replicas[0].Allow("other", 1)
		if err != nil || st.RemainingTokens != 999 {
			t.Fatalf("a fresh key: %+v %v", st, err)
		}
		_, err = replicas[1].Allow("shared", 990)
		if e, ok := llm.AsError(err); !ok || !strings.Contains(e.Message, "requests per minute") || e.Header.Get("x-ratelimit-remaining-tokens") != "990" {
			t.Fatalf("after the 10: %v", err)
		}
	})
}

// BenchmarkAllowStores measures Allow against each store over 1,000 keys
// from many goroutines (a network store needs many requests in flight:
// with 4 connections, pgxpool's default on this machine, and with 64).
func BenchmarkAllowStores(b *testing.B) {
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = fmt.Sprintf("key-%d", i)
	}
	for _, be := range rateBackends() {
		for _, conns := range []int{4, 64} {
			name := fmt.Sprintf("%s/conns=%d", be.name, conns)
			if be.name == "memory" {
				if conns != 4 {
					continue
				}
				name = be.name
			}
			b.Run(name, func(b *testing.B) { benchmarkAllowStore(b, be, keys, conns) })
		}
	}
}

// benchmarkAllowStore runs Allow with conns connections and as many
// requests in flight (or GOMAXPROCS goroutines in memory).
func benchmarkAllowStore(b *testing.B, be rateBackend, keys []string, conns int) {
	l := newRateLimitsStore(Options{Defaults: Policy{RPM: 1 << 30, TPM: 1 << 30}}, be.shared(b, nil, conns)())
	network := be.name != "memory"
	if network {
		b.SetParallelism(max(conns/runtime.GOMAXPROCS(0), 1))
		// Open the connections first: a replica's steady state.
		var wg sync.WaitGroup
		for i := range conns {
			wg.Go(func() {
				if _, err := l.Allow(keys[i%len(keys)], 120); err != nil {
					b.Error(err)
				}
			})
		}
		wg.Wait()
	}
	var seq atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration // of every Allow, network stores only
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(seq.Add(1)) * 7919
		var mine []time.Duration
		for pb.Next() {
			i++
			var start time.Time
			if network {
				start = time.Now()
			}
			if _, err := l.Allow(keys[i%len(keys)], 120); err != nil {
				b.Error(err)
				return
			}
			if network {
				mine = append(mine, time.Since(start))
			}
		}
		mu.Lock()
		lat = append(lat, mine...)
		mu.Unlock()
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
	if len(lat) > 0 {
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	}
}
