package semcache

import (
	"context"
	"sync"
	"testing"
)

// countingEmbedder counts the texts it is asked to embed.
type countingEmbedder struct {
	wordsEmbedder
	mu    sync.Mutex
	texts int
}

func (e *countingEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	e.mu.Lock()
	e.texts += len(texts)
	e.mu.Unlock()
	return e.wordsEmbedder.Embed(ctx, texts)
}

func (e *countingEmbedder) count() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.texts
}

// TestVectorsArePerTenant: the vectors of recent queries are reused within
// a tenant only. A tenant asking a text another tenant just sent is
// embedded afresh (so it cannot time the answer to learn what the other
// sent), while each tenant's own repeat reuses its vector.
func TestVectorsArePerTenant(t *testing.T) {
	env := newTestEnv(t)
	emb := &countingEmbedder{}
	c := env.open(t, func(o *Options) { o.Embedder = emb })
	const text = "What did the board decide about the acquisition?"
	steps := []struct {
		name      string
		tenant    string
		store     bool // Store an answer (which embeds too) rather than look up
		wantEmbed bool
	}{
		{"tenant A asks: embedded", "tenant-a", false, true},
		{"tenant B asks the same text: embedded again, not A's vector", "tenant-b", false, true},
		{"tenant A repeats: its vector is reused", "tenant-a", false, false},
		{"tenant B repeats: its own vector is reused", "tenant-b", false, false},
		{"tenant A stores the answer: reuses its vector", "tenant-a", true, false},
		{"a tenant whose name and text spell A's key differently: embedded", "tenant-", false, true},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			before := emb.count()
			body := userBody(text)
			if st.tenant == "tenant-" {
				body = userBody("a" + text)
			}
			r := req(t, st.tenant, body)
			if st.store {
				mustStore(t, c, r, Controls{}, answer("no decision yet"))
			} else {
				lookup(t, c, r, Controls{})
			}
			c.vecs.Wait() // ristretto applies sets asynchronously
			if embedded := emb.count() > before; embedded != st.wantEmbed {
				t.Fatalf("embedded = %v, want %v (%d texts embedded before, %d after)", embedded, st.wantEmbed, before, emb.count())
			}
		})
	}
}

func TestVectorKeyIsUnambiguous(t *testing.T) {
	tests := []struct {
		name           string
		tenantA, textA string
		tenantB, textB string
	}{
		{"text moved into the tenant", "ab", "c", "a", "bc"},
		{"empty tenant", "", "1:xy", "1", ":xy"},
		{"digits in the tenant", "1", "0:abc", "10", ":abc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if a, b := vectorKey(tt.tenantA, tt.textA), vectorKey(tt.tenantB, tt.textB); a == b {
				t.Fatalf("(%q, %q) and (%q, %q) share the key %q", tt.tenantA, tt.textA, tt.tenantB, tt.textB, a)
			}
		})
	}
}
