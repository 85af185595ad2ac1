package vecindex

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/tollgate/tollgate/pkg/semcache"
)

// benchSet is an index filled once per shape and a mix of queries: half
// near-duplicates of stored points (cosine 0.9-1), half fresh vectors.
type benchSet struct {
	x       *Index
	scopes  []string
	queries [][]float32
}

var benchSets = map[string]*benchSet{}

func loadBench(b *testing.B, n int, dist string, nScopes int) *benchSet {
	key := fmt.Sprint(n, dist, nScopes)
	if s, ok := benchSets[key]; ok {
		return s
	}
	const dim = 512
	r := rand.New(rand.NewPCG(uint64(n), uint64(nScopes)))
	next := func() []float32 { return randomUnit(r, dim) }
	if dist == "realistic" {
		next = newRealistic(r, dim).next
	}
	s := &benchSet{x: New(dim)}
	for i := range nScopes {
		s.scopes = append(s.scopes, fmt.Sprint("scope-", i))
	}
	far := t0.Add(time.Hour)
	var kept [][]float32
	batch := make([]semcache.Point, 0, 1000)
	for i := range n {
		v := next()
		if i > 0 && i%4 == 0 {
			v = near(r, kept[r.IntN(len(kept))], 0.9+0.09*r.Float64()) // paraphrases
		}
		if i%97 == 0 {
			kept = append(kept, v)
		}
		batch = append(batch, semcache.Point{ID: uint64(i + 1), Scope: s.scopes[i%nScopes], Vector: v, ExpiresAt: far})
		if len(batch) == cap(batch) {
			if err := s.x.Upsert(context.Background(), batch...); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if err := s.x.Upsert(context.Background(), batch...); err != nil {
		b.Fatal(err)
	}
	for i := range 1000 {
		if i%2 == 0 {
			s.queries = append(s.queries, near(r, kept[r.IntN(len(kept))], 0.9+0.1*r.Float64()))
		} else {
			s.queries = append(s.queries, next())
		}
	}
	benchSets[key] = s
	return s
}

type searchFunc func(context.Context, string, []float32, float32, time.Time) (semcache.Hit, bool, error)

// BenchmarkSearch compares the exact scan with Search at threshold 0.85 and
// reports per-query p50/p99 (ns) alongside the mean.
func BenchmarkSearch(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		for _, dist := range []string{"random", "realistic"} {
			for _, nScopes := range []int{1, 100} {
				for _, method := range []string{"exact", "fast"} {
					name := fmt.Sprintf("n=%dk/%s/scopes=%d/%s", n/1000, dist, nScopes, method)
					b.Run(name, func(b *testing.B) {
						s := loadBench(b, n, dist, nScopes)
						search := searchFunc(s.x.Search)
						if method == "exact" {
							search = s.x.ExactSearch
						}
						ctx := context.Background()
						lat := make([]time.Duration, 0, b.N)
						b.ReportAllocs()
						b.ResetTimer()
						for i := 0; b.Loop(); i++ {
							start := time.Now()
							if _, _, err := search(ctx, s.scopes[i%len(s.scopes)], s.queries[i%len(s.queries)], 0.85, t0); err != nil {
								b.Fatal(err)
							}
							lat = append(lat, time.Since(start))
						}
						slices.Sort(lat)
						b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
						b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
					})
				}
			}
		}
	}
}

func BenchmarkUpsert(b *testing.B) {
	const dim = 512
	r := rand.New(rand.NewPCG(1, 1))
	vecs := make([][]float32, 1024)
	for i := range vecs {
		vecs[i] = randomUnit(r, dim)
	}
	x := New(dim)
	ctx := context.Background()
	far := t0.Add(time.Hour)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		p := semcache.Point{ID: uint64(i), Scope: "A", Vector: vecs[i%len(vecs)], ExpiresAt: far}
		if err := x.Upsert(ctx, p); err != nil {
			b.Fatal(err)
		}
	}
}

// TestSameAnswersOnBenchData checks, on the benchmark's 10k shapes, that
// Search and the exact scan agree for every benchmark query.
func TestSameAnswersOnBenchData(t *testing.T) {
	if testing.Short() {
		t.Skip("builds 10k-point indexes")
	}
	for _, dist := range []string{"random", "realistic"} {
		n, queries := 10_000, 1000
		if raceEnabled {
			// The race detector slows this test about tenfold (80 s);
			// a smaller index still takes the bounded path (smallScope),
			// and TestMatchesExactScan still runs in full.
			n, queries = 3000, 200
		}
		s := loadBench(nil, n, dist, 1)
		for _, q := range s.queries[:queries] {
			for _, th := range []float32{0.7, 0.85, 0.95} {
				mustSearch(t, s.x, s.scopes[0], q, th, t0)
			}
		}
	}
}
