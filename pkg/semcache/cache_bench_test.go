package semcache

import (
	"context"
	"testing"
)

const benchBody = `{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a helpful assistant that answers briefly and precisely."},{"role":"user","content":"Hello! Can you help me plan a trip to Lisbon?"},{"role":"assistant","content":"Of course. How many days will you stay, and what do you enjoy?"},{"role":"user","content":"Four days; I like food, museums and walking. Give me a day-by-day plan."}],"temperature":0.7,"max_tokens":512,"stream":true}`

func BenchmarkExactKey(b *testing.B) {
	env := newTestEnv(b)
	c := env.open(b, nil)
	r := req(b, "t1", benchBody)
	b.SetBytes(int64(len(benchBody)))
	b.ReportAllocs()
	for b.Loop() {
		if c.ExactKey(r) == "" {
			b.Fatal("no key")
		}
	}
}

func BenchmarkLookupExactHit(b *testing.B) {
	env := newTestEnv(b)
	c := env.open(b, nil)
	r := req(b, "t1", benchBody)
	mustStore(b, c, r, Controls{}, answer("Day 1: Alfama and the castle. Day 2: Belém. Day 3: Gulbenkian. Day 4: LX Factory."))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, res, _ := c.Lookup(ctx, c.Prepare(r, Controls{})); res.Kind != KindHit {
			b.Fatal(res)
		}
	}
}
