package vecindex

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/tollgate/tollgate/pkg/semcache"
)

// How a cache's entries spread over scopes: all in one, over a thousand
// (tenant × model), or one conversation each.
var layouts = []struct {
	name   string
	scopes func(n int) int
}{
	{"one-scope", func(int) int { return 1 }},
	{"1000-scopes", func(n int) int { return min(n, 1000) }},
	{"scope-each", func(n int) int { return n }},
}

const scaleDim = 512

// scaleGen makes USE-like vectors: a common direction with 60% of the
// energy and a decaying spectrum, so unrelated pairs sit near cosine 0.6.
func scaleGen(seed uint64) func() []float32 {
	return newLowRank(rand.New(rand.NewPCG(seed, 77)), scaleDim, 0.6).next
}

// fillScaled adds n points spread round-robin over nScopes scopes, one in
// four a paraphrase of an earlier one, 500 at a time, each time waiting for
// background rebuilds (a gateway stores far slower than this loop).
func fillScaled(tb testing.TB, x *Index, n, nScopes int) {
	tb.Helper()
	r := rand.New(rand.NewPCG(uint64(n), uint64(nScopes)))
	next := scaleGen(uint64(n))
	far := t0.Add(time.Hour)
	var kept [][]float32
	batch := make([]semcache.Point, 0, 500)
	for i := range n {
		v := next()
		if i > 0 && i%4 == 0 {
			v = near(r, kept[r.IntN(len(kept))], 0.9+0.09*r.Float64())
		}
		if i%97 == 0 {
			kept = append(kept, v)
		}
		batch = append(batch, semcache.Point{ID: uint64(i + 1), Scope: fmt.Sprint("s", i%nScopes), Tenant: "t", Model: "m", Vector: v, ExpiresAt: far})
		if len(batch) == cap(batch) || i == n-1 {
			if err := x.Upsert(context.Background(), batch...); err != nil {
				tb.Fatal(err)
			}
			batch = batch[:0]
			x.builds.Wait()
		}
	}
}

// heapBytes is the live heap after a full collection.
func heapBytes() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// bytesPerEntry is the heap an index of n points in the layout holds, per
// point.
func bytesPerEntry(tb testing.TB, n, nScopes int) float64 {
	before := heapBytes()
	x := New(scaleDim)
	fillScaled(tb, x, n, nScopes)
	after := heapBytes()
	runtime.KeepAlive(x)
	return float64(int64(after)-int64(before)) / float64(n)
}

// TestMemoryPerEntry holds an index's heap to a small multiple of what its
// points' vectors take, however the points spread over scopes: a scope's
// first storage is sized for one point and grows geometrically.
func TestMemoryPerEntry(t *testing.T) {
	if testing.Short() {
		t.Skip("builds 10k-point indexes")
	}
	const n = 10_000
	vec := float64(scaleDim * 4)
	for _, l := range layouts {
		t.Run(l.name, func(t *testing.T) {
			got := bytesPerEntry(t, n, l.scopes(n))
			t.Logf("%s: %.0f bytes per entry (vector %.0f)", l.name, got, vec)
			if got > 2*vec {
				t.Errorf("%.0f bytes per entry, want at most %.0f (twice the vector)", got, 2*vec)
			}
		})
	}
}

// BenchmarkMemory reports the heap per entry of 10k-point indexes in each
// layout.
func BenchmarkMemory(b *testing.B) {
	for _, l := range layouts {
		b.Run(l.name, func(b *testing.B) {
			var per float64
			for b.Loop() {
				per = bytesPerEntry(b, 10_000, l.scopes(10_000))
			}
			b.ReportMetric(per, "B/entry")
		})
	}
}

// eachScale runs body as a sub-benchmark on an index of n points in each
// layout, for n of 1k, 10k and 100k, with 512 fresh USE-like vectors and
// the layout's scope names (b.Loop leaves what body does before it out).
func eachScale(b *testing.B, body func(b *testing.B, x *Index, n int, scopes []string, vecs [][]float32)) {
	for _, n := range []int{1_000, 10_000, 100_000} {
		for _, l := range layouts {
			b.Run(fmt.Sprintf("n=%dk/%s", n/1000, l.name), func(b *testing.B) {
				x := New(scaleDim)
				scopes := make([]string, l.scopes(n))
				for i := range scopes {
					scopes[i] = fmt.Sprint("s", i)
				}
				fillScaled(b, x, n, len(scopes))
				next := scaleGen(999)
				vecs := make([][]float32, 512)
				for i := range vecs {
					vecs[i] = next()
				}
				runtime.GC()
				b.ReportAllocs()
				body(b, x, n, scopes, vecs)
				b.StopTimer()
				x.builds.Wait()
				x.Close()
			})
		}
	}
}

// BenchmarkSearchScale measures a search that misses (a fresh USE-like
// vector at threshold 0.85) in a random scope, at 1k, 10k and 100k points
// in each layout, to show that its cost follows the scope's size and not
// the index's. It reports the p50 and p99 per query.
func BenchmarkSearchScale(b *testing.B) {
	eachScale(b, func(b *testing.B, x *Index, n int, scopes []string, queries [][]float32) {
		r := rand.New(rand.NewPCG(5, 5))
		ctx := context.Background()
		lat := make([]time.Duration, 0, 1<<16)
		for i := 0; b.Loop(); i++ {
			scope := scopes[r.IntN(len(scopes))]
			start := time.Now()
			if _, _, err := x.Search(ctx, scope, queries[i%len(queries)], 0.85, t0); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(start))
		}
		reportLatency(b, lat)
	})
}

// reportLatency reports the p50 and p99 of per-operation latencies.
func reportLatency(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
}

// BenchmarkUpsertScale measures adding one point to an index already
// holding n points in each layout: to the one scope, round-robin to the
// thousand, or (scope-each) to a new scope every time, whose name costs
// one small allocation. It reports the p50 and p99 per upsert.
func BenchmarkUpsertScale(b *testing.B) {
	eachScale(b, func(b *testing.B, x *Index, n int, scopes []string, vecs [][]float32) {
		ctx := context.Background()
		far := t0.Add(time.Hour)
		lat := make([]time.Duration, 0, 1<<16)
		for i := 0; b.Loop(); i++ {
			scope := scopes[i%len(scopes)]
			if len(scopes) == n {
				scope = fmt.Sprint("new", i) // a new conversation
			}
			p := semcache.Point{ID: uint64(n + 1 + i), Scope: scope, Tenant: "t", Model: "m", Vector: vecs[i%len(vecs)], ExpiresAt: far}
			start := time.Now()
			if err := x.Upsert(ctx, p); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(start))
		}
		reportLatency(b, lat)
	})
}

// BenchmarkSweepScale measures DeleteExpired when nothing has expired (the
// common sweep), which holds the writers' lock throughout.
func BenchmarkSweepScale(b *testing.B) {
	eachScale(b, func(b *testing.B, x *Index, n int, scopes []string, vecs [][]float32) {
		ctx := context.Background()
		for b.Loop() {
			if k, err := x.DeleteExpired(ctx, t0); err != nil || k != 0 {
				b.Fatal(k, err)
			}
		}
	})
}
