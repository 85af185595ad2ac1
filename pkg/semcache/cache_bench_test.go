package semcache

import (
	"context"
	"strconv"
	"testing"

	"github.com/tollgate/tollgate/internal/testmodel"
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

// BenchmarkMiss is the cache's share of a miss: Prepare, Lookup (a miss)
// and Store of a new prompt, in one scope shared by every prompt and with
// every prompt in its own scope (each conversation its own scope), with a
// fast fake embedder and with USE-lite (skipped when the model cannot be
// had). embeds/op counts the texts embedded.
func BenchmarkMiss(b *testing.B) {
	for _, bm := range []struct {
		name      string
		ownScopes bool
		shared    bool
		use       bool
	}{
		{"one scope/own index/fake", false, false, false},
		{"own scopes/own index/fake", true, false, false},
		{"own scopes/shared index/fake", true, true, false},
		{"one scope/own index/use-lite", false, false, true},
		{"own scopes/own index/use-lite", true, false, true},
	} {
		b.Run(bm.name, func(b *testing.B) {
			var inner Embedder
			if bm.use {
				inner = testmodel.Open(b)
			}
			_, emb, c := countedCache(b, bm.shared, inner)
			resp := answer("Day 1: Alfama and the castle. Day 2: Belém. Day 3: Gulbenkian. Day 4: LX Factory.")
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				i++
				tenant := "t1"
				if bm.ownScopes {
					tenant = "conversation-" + strconv.Itoa(i)
				}
				body := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Plan trip number ` + strconv.Itoa(i) + ` to Lisbon, four days, food and museums."}]}`
				missAndStore(b, c, Request{Tenant: tenant, Model: "gpt-4o-mini", Chat: chat(b, body)}, resp)
			}
			b.ReportMetric(float64(emb.count())/float64(i), "embeds/op")
		})
	}
}
