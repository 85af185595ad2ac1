package semcache

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
)

// countingEmbedder counts the texts it is asked to embed and the calls,
// embedding them with inner (nil: wordsEmbedder).
type countingEmbedder struct {
	inner Embedder
	mu    sync.Mutex
	texts int
	calls []int // texts per call
}

func (e *countingEmbedder) embedder() Embedder {
	if e.inner == nil {
		return wordsEmbedder{}
	}
	return e.inner
}

func (e *countingEmbedder) Dim() int     { return e.embedder().Dim() }
func (e *countingEmbedder) Name() string { return e.embedder().Name() }

func (e *countingEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	e.mu.Lock()
	e.texts += len(texts)
	e.calls = append(e.calls, len(texts))
	e.mu.Unlock()
	return e.embedder().Embed(ctx, texts)
}

func (e *countingEmbedder) count() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.texts
}

// callsSince returns the sizes of the calls made after the first n.
func (e *countingEmbedder) callsSince(n int) []int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.calls[n:])
}

func (e *countingEmbedder) ncalls() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.calls)
}

// windowEmbedder reads only its first window bytes.
type windowEmbedder struct {
	*countingEmbedder
	window int
}

func (e windowEmbedder) Fits(text string) bool { return len(text) <= e.window }

// TestOneEmbeddingPerMiss: a miss is embedded once, by its lookup; Store
// reuses the lookup's vector, however many distinct prompts came before
// (the vector cache this replaced was full after about 3,300). A store
// without a lookup (Cache-Control: no-cache) embeds at most once too.
func TestOneEmbeddingPerMiss(t *testing.T) {
	const n = 3400
	tests := []struct {
		name string
		// shared: the index keeps entries (Qdrant-like), so every
		// lookup embeds; else the cache's own index, where an empty
		// scope's first lookup embeds nothing and the second embeds the
		// first's entry with itself.
		shared        bool
		noCacheEmbeds int
	}{
		{name: "index shared between replicas", shared: true, noCacheEmbeds: 1},
		{name: "embedded index", shared: false, noCacheEmbeds: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, emb, c := countedCache(t, tt.shared, nil)
			for i := range n {
				missAndStore(t, c, req(t, "t1", userBody(fmt.Sprintf("how do I deploy service number %d", i))), answer("like this"))
			}
			if got, misses := emb.count(), c.Stats().Misses; got != n || misses != n {
				t.Fatalf("%d texts embedded for %d misses, want %d", got, misses, n)
			}
			before := emb.count()
			mustStore(t, c, req(t, "t1", userBody("how do I deploy without a lookup")), Controls{NoCache: true}, answer("so"))
			if got := emb.count() - before; got != tt.noCacheEmbeds {
				t.Errorf("a store without a lookup embedded %d texts, want %d", got, tt.noCacheEmbeds)
			}
		})
	}
}

// TestNoSemanticPastTheWindow: a query longer than the embedder's window
// is neither embedded nor searched, at lookup or store; exact matching
// still serves it.
func TestNoSemanticPastTheWindow(t *testing.T) {
	const window = 40
	short := "what is the capital of france"
	long := short + " and what else should a first-time visitor see there"
	longParaphrase := "what else should a first-time visitor see there and what is the capital of france"
	tests := []struct {
		name, store, ask string
		kind, reason     string
		// Whether the lookup embeds, with a shared index and with the
		// cache's own (which knows the scope holds no vector).
		embedsShared, embedsOwn bool
	}{
		{name: "short: semantic", store: short, ask: "the capital of france is what", kind: KindSemanticHit, embedsShared: true, embedsOwn: true},
		{name: "long paraphrase: no semantic lookup", store: long, ask: longParaphrase, kind: KindMiss,
			reason: "no semantic lookup: longer than the embedder's window"},
		{name: "long, asked again: exact hit", store: long, ask: long, kind: KindHit},
		{name: "short asked, long stored: the long entry has no vector", store: long, ask: short, kind: KindMiss, embedsShared: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, shared := range []bool{false, true} {
				env := newTestEnv(t)
				env.index.dropEntries = !shared
				emb := &countingEmbedder{}
				c := env.open(t, func(o *Options) { o.Embedder = windowEmbedder{emb, window} })
				mustStore(t, c, req(t, "t1", userBody(tt.store)), Controls{}, answer("Paris."))
				if len(tt.store) > window && emb.count() != 0 {
					t.Fatalf("shared %v: storing a long prompt embedded %d texts", shared, emb.count())
				}
				_, res := lookup(t, c, req(t, "t1", userBody(tt.ask)), Controls{})
				if res.Kind != tt.kind || res.Reason != tt.reason {
					t.Fatalf("shared %v: got %+v, want %s (%q)", shared, res, tt.kind, tt.reason)
				}
				if embeds := emb.count() > 0; embeds != (shared && tt.embedsShared || !shared && tt.embedsOwn) {
					t.Errorf("shared %v: embedded %d texts", shared, emb.count())
				}
			}
		})
	}
}

// TestEmptyScopesCostNoEmbedding: with the cache's own index, a lookup in
// a scope that holds nothing embeds nothing and its entry is stored
// pending; the next lookup in the scope embeds itself and the pending
// entry in one call and finds it; a restart keeps that right.
func TestEmptyScopesCostNoEmbedding(t *testing.T) {
	const scopes = 1000
	env := newTestEnv(t)
	env.index.dropEntries = true
	emb := &countingEmbedder{}
	edit := func(o *Options) { o.Embedder = emb }
	c := env.open(t, edit)
	question := func(i int) string { return fmt.Sprintf("what did we decide about item %d", i) }
	paraphrase := func(i int) string { return fmt.Sprintf("about item %d, what did we decide", i) }
	tenant := func(i int) string { return fmt.Sprint("conversation-", i) }
	for i := range scopes {
		missAndStore(t, c, req(t, tenant(i), userBody(question(i))), answer(fmt.Sprint("answer ", i)))
	}
	if n := emb.count(); n != 0 || env.index.Len() != 0 {
		t.Fatalf("%d single-entry scopes: %d texts embedded, %d points indexed, want 0", scopes, n, env.index.Len())
	}
	if st := c.Stats(); st.PendingEntries != scopes || st.IndexPoints != 0 {
		t.Fatalf("stats %+v, want %d pending entries", st, scopes)
	}

	steps := []struct {
		name   string
		cache  func() *Cache
		scope  int
		ask    string
		calls  []int // texts per Embed call
		kind   string
		answer string
	}{
		{name: "second request in a scope: one call for it and the pending entry", scope: 5, ask: paraphrase(5),
			calls: []int{2}, kind: KindSemanticHit, answer: "answer 5"},
		{name: "third request there: itself only", scope: 5, ask: "what did we decide about item 5 then",
			calls: []int{1}, kind: KindSemanticHit, answer: "answer 5"},
		{name: "exact repeat: no embedding", scope: 6, ask: question(6), calls: []int{}, kind: KindHit, answer: "answer 6"},
		{name: "after a restart, a pending scope: one call of two", cache: func() *Cache {
			c.Close()
			env.index = newScanIndex()
			env.index.dropEntries = true
			c = env.open(t, edit)
			return c
		}, scope: 7, ask: paraphrase(7), calls: []int{2}, kind: KindSemanticHit, answer: "answer 7"},
		{name: "after a restart, an embedded scope: its vector was kept", scope: 5, ask: paraphrase(5),
			calls: []int{1}, kind: KindSemanticHit, answer: "answer 5"},
		{name: "after a restart, an empty scope: nothing", scope: 9999, ask: paraphrase(9999), calls: []int{}, kind: KindMiss},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if st.cache != nil {
				st.cache()
			}
			before := emb.ncalls()
			e, res := lookup(t, c, req(t, tenant(st.scope), userBody(st.ask)), Controls{})
			if res.Kind != st.kind {
				t.Fatalf("got %+v, want %s", res, st.kind)
			}
			if e != nil && e.Response.Choices[0].Message.Content.String() != st.answer {
				t.Errorf("served %s", e.Response.Raw)
			}
			if calls := emb.callsSince(before); !slices.Equal(calls, st.calls) {
				t.Errorf("embed calls %v, want %v", calls, st.calls)
			}
		})
	}
	// Scopes 5 and 7 were embedded; 6's exact hit and 9999 embed nothing.
	if st := c.Stats(); st.PendingEntries != scopes-2 || st.IndexPoints != 2 {
		t.Errorf("stats at the end %+v, want %d pending entries and 2 points", st, scopes-2)
	}
	if n := emb.count(); n != 2+1+2+1 {
		t.Errorf("%d texts embedded in all, want 6", n)
	}
}
