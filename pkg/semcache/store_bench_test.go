package semcache

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
)

// BenchmarkStore is Store of a new prompt (every request a miss with a new
// answer), on a real SQLite file: exact only, with the semantic cache and
// its own index, and from concurrent callers, as the gateway under load.
// Close is part of the timing (a b.N loop, not b.Loop, for that), so rows
// a write-behind store still holds are counted as written.
func BenchmarkStore(b *testing.B) {
	for _, bm := range []struct {
		name     string
		semantic bool
		parallel bool
	}{
		{"exact", false, false},
		{"semantic", true, false},
		{"semantic/parallel", true, true},
	} {
		b.Run(bm.name, func(b *testing.B) {
			env := newTestEnv(b)
			c := env.open(b, func(o *Options) {
				if !bm.semantic {
					o.Embedder, o.Index, o.Checker = nil, nil, nil
				}
			})
			resp := answer("Day 1: Alfama and the castle. Day 2: Belém. Day 3: Gulbenkian. Day 4: LX Factory.")
			ctx := context.Background()
			var n atomic.Int64
			store := func(b *testing.B) {
				i := n.Add(1)
				body := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Plan trip number ` + strconv.FormatInt(i, 10) + ` to Lisbon, four days, food and museums."}]}`
				q := c.Prepare(Request{Tenant: "t1", Model: "gpt-4o-mini", Chat: chat(b, body)}, Controls{})
				if err := c.Store(ctx, q, resp, "gpt-4o-mini", 150); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			if bm.parallel {
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						store(b)
					}
				})
			} else {
				for range b.N {
					store(b)
				}
			}
			if err := c.Close(); err != nil {
				b.Fatal(err)
			}
		})
	}
}
