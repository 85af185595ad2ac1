package semcache

import (
	"context"
	"strconv"
	"testing"

	"github.com/tollgate/tollgate/pkg/semcache/guard"
)

// gatedCache opens a cache at the shipped unaligned threshold with the
// guard (and its lexicon), so that candidates come from the gate; edit
// adjusts the options.
func gatedCache(t *testing.T, env *testEnv, emb Embedder, edit func(*Options)) *Cache {
	t.Helper()
	env.index.dropEntries = true // an embedded index: the cache is this process's own
	return env.open(t, func(o *Options) {
		o.Embedder, o.Checker, o.Threshold = emb, guard.New(), 0.05
		if edit != nil {
			edit(o)
		}
	})
}

func TestGatedLookup(t *testing.T) {
	for _, tc := range []struct {
		name, cached, asked string
		kind                string
		embedded            int // texts embedded by the lookup
		refusals            int64
	}{
		{"nothing shares the query's words: no embedding", "How do I bake sourdough bread at home?", "How do I fix a flat bicycle tire?", KindMiss, 0, 0},
		{"a typo is aligned: query and candidate embedded in one call", "What is the capital of France?", "What is the captial of France?", KindSemanticHit, 2, 0},
		{"clauses reordered", "Before bed, is it bad to drink coffee?", "Is it bad to drink coffee before bed?", KindSemanticHit, 2, 0},
		{"a refused near-miss is never embedded", "How do I zoom in on a photo?", "How do I zoom out on a photo?", KindMiss, 0, 1},
		{"another number is another bucket", "How many hosts are in a /24 subnet?", "How many hosts are in a /26 subnet?", KindMiss, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newTestEnv(t)
			emb := &countingEmbedder{}
			c := gatedCache(t, env, emb, nil)
			if !c.gated {
				t.Fatal("the cache does not use the gate at the shipped defaults")
			}
			missAndStore(t, c, req(t, "t", userBody(tc.cached)), answer("cached"))
			if emb.texts != 0 {
				t.Fatalf("a lookup and store in an empty scope embedded %d texts", emb.texts)
			}
			_, res := lookup(t, c, req(t, "t", userBody(tc.asked)), Controls{})
			if res.Kind != tc.kind {
				t.Fatalf("kind %v (%s), want %v", res.Kind, res.Reason, tc.kind)
			}
			if emb.texts != tc.embedded || (tc.embedded > 0 && len(emb.calls) != 1) {
				t.Errorf("embedded %d texts in calls %v, want %d in one", emb.texts, emb.calls, tc.embedded)
			}
			if got := c.Stats().GuardRefusals; got != tc.refusals {
				t.Errorf("guard refusals %d, want %d", got, tc.refusals)
			}
		})
	}
}

func TestGatedVectorsKeptAndStored(t *testing.T) {
	env := newTestEnv(t)
	emb := &countingEmbedder{}
	c := gatedCache(t, env, emb, nil)
	ctx := context.Background()
	missAndStore(t, c, req(t, "t", userBody("What is the capital of France?")), answer("Paris"))
	// A paraphrase that misses (its own answer is stored) embeds itself
	// and the candidate; the next lookup reuses both vectors.
	q := c.Prepare(req(t, "t", userBody("What is the captial of France?")), Controls{Threshold: 0.999})
	if _, res, _ := c.Lookup(ctx, q); res.Kind != KindMiss {
		t.Fatalf("kind %v, want a miss above the threshold", res.Kind)
	}
	if err := c.Store(ctx, q, answer("Paris."), "m", 1); err != nil {
		t.Fatal(err)
	}
	if emb.texts != 2 {
		t.Fatalf("embedded %d texts, want 2", emb.texts)
	}
	if _, res := lookup(t, c, req(t, "t", userBody("What is the capitol of France?")), Controls{}); res.Kind != KindSemanticHit {
		t.Fatalf("kind %v (%s)", res.Kind, res.Reason)
	}
	if emb.texts != 3 {
		t.Errorf("embedded %d texts in all, want 3: the two cached vectors reused", emb.texts)
	}
	if s := c.Stats(); s.GateEntries != 2 || s.IndexPoints != 2 {
		t.Errorf("stats %+v: want 2 gate entries, 2 embedded", s)
	}
}

func TestGatedRestartAndDelete(t *testing.T) {
	env := newTestEnv(t)
	c := gatedCache(t, env, wordsEmbedder{}, nil)
	missAndStore(t, c, req(t, "t", userBody("What is the capital of France?")), answer("Paris"))
	other := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"},{"role":"user","content":"What is the capital of Spain?"}]}`
	missAndStore(t, c, req(t, "t", other), answer("Madrid"))
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c = gatedCache(t, env, wordsEmbedder{}, nil)
	if n := c.Stats().GateEntries; n != 2 {
		t.Fatalf("gate entries after restart %d, want 2", n)
	}
	if _, res := lookup(t, c, req(t, "t", userBody("What is the captial of France?")), Controls{}); res.Kind != KindSemanticHit {
		t.Fatalf("after restart: kind %v (%s)", res.Kind, res.Reason)
	}
	// Only the scope looked up was sketched.
	c.mu.RLock()
	scopes := 0
	for _, sc := range c.gate.scopes {
		if len(sc.buckets) > 0 {
			scopes++
		}
	}
	c.mu.RUnlock()
	if scopes != 1 {
		t.Errorf("%d scopes sketched, want 1", scopes)
	}
	if _, err := c.Delete(context.Background(), Filter{}); err != nil {
		t.Fatal(err)
	}
	if n := c.Stats().GateEntries; n != 0 {
		t.Errorf("gate entries after delete %d", n)
	}
	if _, res := lookup(t, c, req(t, "t", userBody("What is the captial of France?")), Controls{}); res.Kind != KindMiss {
		t.Errorf("after delete: kind %v", res.Kind)
	}
}

func TestGateOnlyWhenOnlyAlignedServe(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edit  func(*Options)
		share bool
		gated bool
	}{
		{"shipped defaults", nil, false, true},
		{"a judge", func(o *Options) { o.Verify = true }, false, false},
		{"an unaligned threshold", func(o *Options) { o.UnalignedThreshold = 0.95 }, false, false},
		{"a route's unaligned threshold", func(o *Options) { o.RouteThresholds = map[string]Thresholds{"r": {Unaligned: 0.9}} }, false, false},
		{"a checker that cannot sketch", func(o *Options) { o.Checker = allowAll{} }, false, false},
		{"a guard without its lexicon", func(o *Options) { o.Checker = guard.WithLexicon(nil) }, false, false},
		{"a shared index", nil, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newTestEnv(t)
			c := gatedCache(t, env, wordsEmbedder{}, tc.edit)
			if tc.share {
				env2 := newTestEnv(t)
				c = env2.open(t, func(o *Options) { o.Checker = guard.New() })
			}
			if c.gated != tc.gated {
				t.Errorf("gated %v, want %v", c.gated, tc.gated)
			}
		})
	}
}

func TestGateCompacts(t *testing.T) {
	g := newGate()
	sk := func(keys ...uint64) *guard.Sketch { return &guard.Sketch{Bucket: 1, Keys: keys} }
	for id := uint64(1); id <= 300; id++ {
		g.add(id, "s", sk(7, 100+id))
	}
	for id := uint64(1); id <= 200; id++ {
		g.remove(id)
	}
	b := g.scopes["s"].buckets[1]
	if len(b.post[7]) >= 300 || len(b.ids) != 100 {
		t.Fatalf("not compacted: %d postings of key 7, %d ids", len(b.post[7]), len(b.ids))
	}
	got := g.candidates("s", &guard.Sketch{Bucket: 1, Need: [][]uint64{{7}}}, 1000)
	if len(got) != 100 || got[0] != 300 || got[99] != 201 {
		t.Fatalf("candidates %d, first %d, last %d: want 100, newest first", len(got), got[0], got[len(got)-1])
	}
	if got := g.candidates("s", &guard.Sketch{Bucket: 1, Need: [][]uint64{{7}, {100 + 250}}}, 1000); len(got) != 1 || got[0] != 250 {
		t.Fatalf("every need must be met: %v", got)
	}
	if got := g.candidates("s", &guard.Sketch{Bucket: 2, Need: [][]uint64{{7}}}, 1000); len(got) != 0 {
		t.Fatalf("another bucket: %v", got)
	}
	for id := uint64(201); id <= 300; id++ {
		g.remove(id)
	}
	if len(g.scopes) != 0 || g.len() != 0 {
		t.Fatalf("empty gate holds %d scopes, %d entries", len(g.scopes), g.len())
	}
}

// BenchmarkGatedMiss is the cache's share of a miss with the gate: Prepare,
// Lookup (a miss) and Store of a new prompt in one scope already holding
// n prompts made of the same vocabulary, so that many share words with
// the request. embeds/op counts the texts embedded; decided/op the
// candidates the guard decided.
func BenchmarkGatedMiss(b *testing.B) {
	verbs := []string{"fix", "clean", "paint", "sell", "build", "repair", "store", "move", "insure", "heat", "light", "cool"}
	things := []string{"kitchen", "garden", "roof", "window", "floor", "garage", "fence", "boat", "bike", "piano", "sofa", "oven", "desk", "lamp", "door", "wall", "shed", "pool", "car", "van"}
	adjs := []string{"old", "small", "wooden", "metal", "broken", "cheap", "large", "red", "white", "noisy", "heavy", "rusty"}
	prompt := func(i int) string {
		return "How do I " + verbs[i%len(verbs)] + " a " + adjs[(i/len(verbs))%len(adjs)] + " " +
			things[(i/(len(verbs)*len(adjs)))%len(things)] + " in " + strconv.Itoa(i/(len(verbs)*len(adjs)*len(things))) + " days?"
	}
	for _, n := range []int{0, 1000, 10000} {
		b.Run("entries="+strconv.Itoa(n), func(b *testing.B) {
			env := newTestEnv(b)
			env.index.dropEntries = true
			emb := &countingEmbedder{}
			c := env.open(b, func(o *Options) { o.Embedder, o.Checker, o.Threshold = emb, guard.New(), 0.05 })
			if !c.gated {
				b.Fatal("not gated")
			}
			resp := answer("Sand it, prime it, paint it.")
			ctx := context.Background()
			store := func(i int) {
				q := c.Prepare(req(b, "t", userBody(prompt(i))), Controls{})
				if _, _, err := c.Lookup(ctx, q); err != nil {
					b.Fatal(err)
				}
				if err := c.Store(ctx, q, resp, "m", 1); err != nil {
					b.Fatal(err)
				}
			}
			for i := range n {
				store(i)
			}
			emb0, ref0 := emb.count(), c.Stats().GuardRefusals
			i := n
			b.ReportAllocs()
			for b.Loop() {
				store(i)
				i++
			}
			b.ReportMetric(float64(emb.count()-emb0)/float64(i-n), "embeds/op")
			b.ReportMetric(float64(c.Stats().GuardRefusals-ref0)/float64(i-n), "refusals/op")
		})
	}
}
