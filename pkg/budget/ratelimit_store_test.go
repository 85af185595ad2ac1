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

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/pkg/llm"
)

// The shared stores are tested against real servers when these name them,
// e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable and
// redis://127.0.0.1:6379/0; otherwise their tests skip.
const (
	envTestPostgres = "TOLLGATE_TEST_POSTGRES"
	envTestRedis    = "TOLLGATE_TEST_REDIS"
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

func postgresShared(tb testing.TB, now func() time.Time, conns int) func() RateStore {
	url := os.Getenv(envTestPostgres)
	if url == "" {
		tb.Skipf("%s is not set (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable)", envTestPostgres)
	}
	table := fmt.Sprintf("budget_rate_limits_test_%d_%d", os.Getpid(), rateTestSeq.Add(1))
	newStore := func() *PostgresRateStore {
		cfg, err := pgxpool.ParseConfig(url)
		if err != nil {
			tb.Fatal(err)
		}
		if conns > 0 {
			cfg.MaxConns = int32(conns)
		}
		pool, err := pgxpool.NewWithConfig(ctx, cfg)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(pool.Close)
		s, err := NewPostgresRateStore(pool, PostgresRateOptions{Table: table, Now: now})
		if err != nil {
			tb.Fatal(err)
		}
		return s
	}
	admin := newStore() // its cleanup (close) runs after the drop below
	if err := admin.CreateRateLimitTable(ctx); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if _, err := admin.pool.Exec(ctx, "DROP TABLE IF EXISTS "+table); err != nil {
			tb.Error(err)
		}
	})
	return func() RateStore { return newStore() }
}

func redisShared(tb testing.TB, now func() time.Time, conns int) func() RateStore {
	url := os.Getenv(envTestRedis)
	if url == "" {
		tb.Skipf("%s is not set (e.g. redis://127.0.0.1:6379/0)", envTestRedis)
	}
	opt, err := redis.ParseURL(url)
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

// TestRateStores is TestAllow's sequence against every store, on an
// injected clock, plus what only a store can get wrong.
func TestRateStores(t *testing.T) {
	forEachRateBackend(t, func(t *testing.T, b rateBackend) {
		clk := newClock("2026-03-10T12:00:00Z")
		l := newRateLimitsStore(Options{Now: clk.Now}, b.shared(t, clk.Now, 0)())
		l.set("k", Policy{RPM: 3, TPM: 1000})
		l.set("fresh", Policy{RPM: 3, TPM: 1000})
		// rpm 3: a request unit refills every 20 s; tpm 1000: a token every 60 ms.
		steps := []struct {
			name       string
			key        string
			advance    time.Duration
			tokens     int
			ok         bool
			remReq     int
			remTok     int
			resetReq   string
			resetTok   string
			retryAfter time.Duration
			message    string
		}{
			{"first request", "k", 0, 100, true, 2, 900, "20s", "6s", 0, ""},
			{"second request", "k", 0, 100, true, 1, 800, "40s", "12s", 0, ""},
			{"too many tokens for now", "k", 0, 900, false, 1, 800, "40s", "12s", 6 * time.Second, "tokens per minute"},
			{"the refused request cost nothing", "k", 0, 100, true, 0, 700, "1m0s", "18s", 0, ""},
			{"too many requests", "k", 0, 1, false, 0, 700, "1m0s", "18s", 20 * time.Second, "requests per minute"},
			{"a request unit refilled", "k", 20 * time.Second, 1, true, 0, 999, "1m0s", "60ms", 0, ""},
			{"more than the tpm in one prompt never fits", "k", 60 * time.Second, 1001, false, 3, 1000, "0s", "0s", 0, "Request too large"},
			{"full again after a minute", "k", 0, 1000, true, 2, 0, "20s", "1m0s", 0, ""},
			{"a whole minute of tokens again: retry in a minute", "k", 0, 1000, false, 2, 0, "20s", "1m0s", time.Minute, "tokens per minute"},
			{"a new key's refused first request", "fresh", 0, 1001, false, 3, 1000, "0s", "0s", 0, "Request too large"},
			{"charged nothing", "fresh", 0, 1000, true, 2, 0, "20s", "1m0s", 0, ""},
		}
		for _, s := range steps {
			t.Run(s.name, func(t *testing.T) {
				clk.Advance(s.advance)
				st, err := l.Allow(s.key, s.tokens)
				h := http.Header{}
				st.SetHeaders(h)
				if s.ok != (err == nil) {
					t.Fatalf("err = %v, want ok %v", err, s.ok)
				}
				if !s.ok {
					if !errors.Is(err, ErrRateLimited) {
						t.Fatalf("err %v not ErrRateLimited", err)
					}
					e, _ := llm.AsError(err)
					if e.Status != http.StatusTooManyRequests || e.Type != llm.TypeRateLimit || e.Code != "rate_limit_exceeded" || e.RetryAfter != s.retryAfter ||
						!strings.Contains(e.Message, s.message) {
						t.Fatalf("error %+v", e)
					}
					h = e.Header
				}
				want := map[string]string{
					"x-ratelimit-limit-requests": "3", "x-ratelimit-remaining-requests": itoa(s.remReq), "x-ratelimit-reset-requests": s.resetReq,
					"x-ratelimit-limit-tokens": "1000", "x-ratelimit-remaining-tokens": itoa(s.remTok), "x-ratelimit-reset-tokens": s.resetTok,
				}
				for k, v := range want {
					if got := h.Get(k); got != v {
						t.Errorf("%s = %q, want %q", k, got, v)
					}
				}
			})
		}
		t.Run("no limits: always allowed, no headers", func(t *testing.T) {
			for range 100 {
				st, err := l.Allow("unlimited", 1_000_000)
				if err != nil {
					t.Fatal(err)
				}
				if st != (RateState{}) {
					t.Fatalf("state %+v", st)
				}
			}
		})
		t.Run("only rpm", func(t *testing.T) {
			l.set("rpm-only", Policy{RPM: 60})
			for i := range 61 {
				_, err := l.Allow("rpm-only", 1_000_000)
				if (err == nil) != (i < 60) {
					t.Fatalf("request %d: %v", i, err)
				}
			}
			clk.Advance(time.Second) // one request refills per second
			if _, err := l.Allow("rpm-only", 0); err != nil {
				t.Fatal(err)
			}
		})
		t.Run("only tpm", func(t *testing.T) {
			l.set("tpm-only", Policy{TPM: 100})
			for i := range 11 {
				st, err := l.Allow("tpm-only", 10)
				if (err == nil) != (i < 10) || st.LimitRequests != 0 {
					t.Fatalf("request %d: %+v %v", i, st, err)
				}
			}
		})
	})
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
