package budget

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate/pkg/llm"
)

// BenchmarkSharedReserveSettle: one replica (a pool of 8 connections) reserving
// and settling requests of 1,000 keys, each with a daily and a monthly
// limit large enough never to refuse; settled/s is the throughput of the
// pair (three round trips: BEGIN + reserve, COMMIT, settle).
func BenchmarkSharedReserveSettle(b *testing.B) {
	open := sharedSchema(b)
	const keys = 1000
	pols := staticPolicies{}
	names := make([]string, keys)
	for i := range names {
		names[i] = fmt.Sprintf("key-%04d", i)
		pols[names[i]] = Policy{Limits: []Limit{{Period: Daily, Amount: 1 << 50}, {Period: Monthly, Amount: 1 << 52}}}
	}
	for _, bc := range []struct {
		conns      int
		durability Durability
		name       string
	}{{8, DurableSettles, "settles"}, {8, DurableAll, "all"}, {8, DurableNone, "none"}, {24, DurableSettles, "settles"}} {
		pool := open(bc.conns) // one pool for every run of the sub-benchmark
		b.Run(fmt.Sprintf("conns=%d/durable=%s", bc.conns, bc.name), func(b *testing.B) {
			s := NewSharedAccounts(pool, pols, SharedOptions{Durability: bc.durability})
			benchmarkReserveSettle(b, s, names, bc.conns)
		})
		pool.Close()
	}
}

// benchSeq numbers the benchmark's request ids: unique across runs, since
// a settled id cannot reserve again.
var benchSeq atomic.Int64

func benchmarkReserveSettle(b *testing.B, s *SharedAccounts, keys []string, conns int) {
	seq := &benchSeq
	b.ReportAllocs()
	b.SetParallelism(max(conns/runtime.GOMAXPROCS(0), 1)) // a goroutine per connection
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := seq.Add(1)
			key := keys[i%int64(len(keys))]
			r, err := s.Reserve(ctx, key, fmt.Sprintf("b-%d", i), 1000)
			if err != nil {
				b.Error(err)
				return
			}
			if err := s.Settle(ctx, r, llm.Micros(500+i%500)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "settled/s")
}
