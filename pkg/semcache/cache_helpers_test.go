package semcache

import (
	"context"
	"database/sql"
	"encoding/json"
	"hash/fnv"
	"maps"
	"math"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"

	"github.com/tollgate/tollgate/pkg/llm"
	"github.com/tollgate/tollgate/pkg/sqlite"
)

// wordsEmbedder is a tiny deterministic embedder: a normalised bag of
// lowercased words hashed into 64 buckets. Same words, same vector.
type wordsEmbedder struct{}

func (wordsEmbedder) Dim() int     { return 64 }
func (wordsEmbedder) Name() string { return "test-words-64" }
func (wordsEmbedder) Embed(_ context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, len(texts))
	for i, t := range texts {
		v := make([]float32, 64)
		for _, w := range strings.FieldsFunc(strings.ToLower(t), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
			h := fnv.New32a()
			h.Write([]byte(w))
			v[h.Sum32()%64]++
		}
		var n float64
		for _, f := range v {
			n += float64(f * f)
		}
		if n > 0 {
			for j := range v {
				v[j] /= float32(math.Sqrt(n))
			}
		}
		out[i] = v
	}
	return out, nil
}

// scanIndex is an exact-scan Index: the reference any index must equal.
// Like Qdrant it keeps Point.Entry and returns it in Hit.Entry, unless
// dropEntries (like vecindex).
type scanIndex struct {
	mu          sync.Mutex
	points      map[uint64]Point
	dropEntries bool
}

func newScanIndex() *scanIndex { return &scanIndex{points: map[uint64]Point{}} }

func (x *scanIndex) KeepsEntries() bool { return !x.dropEntries }

func (x *scanIndex) Search(_ context.Context, scope string, vec []float32, threshold float32, now time.Time) (Hit, bool, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	var best Hit
	found := false
	for _, p := range x.points {
		if p.Scope != scope || !now.Before(p.ExpiresAt) {
			continue
		}
		var s float32
		for i := range vec {
			s += vec[i] * p.Vector[i]
		}
		if s >= threshold && (!found || s > best.Score) {
			best, found = Hit{ID: p.ID, Score: s, Entry: string(p.Entry)}, true
		}
	}
	return best, found, nil
}

func (x *scanIndex) Upsert(_ context.Context, points ...Point) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, p := range points {
		if x.dropEntries {
			p.Entry = nil
		}
		x.points[p.ID] = p
	}
	return nil
}

func (x *scanIndex) Delete(_ context.Context, ids ...uint64) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, id := range ids {
		delete(x.points, id)
	}
	return nil
}

func (x *scanIndex) DeleteWhere(_ context.Context, f Filter) (int, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	n := 0
	for id, p := range x.points {
		if (f.Tenant == "" || p.Tenant == f.Tenant) && (f.Model == "" || p.Model == f.Model) {
			delete(x.points, id)
			n++
		}
	}
	return n, nil
}

func (x *scanIndex) DeleteExpired(_ context.Context, now time.Time) (int, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	n := 0
	for id, p := range x.points {
		if !now.Before(p.ExpiresAt) {
			delete(x.points, id)
			n++
		}
	}
	return n, nil
}

func (x *scanIndex) Len() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.points)
}

func (x *scanIndex) Close() error { return nil }

// testClock is an injected clock moved by hand.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newTestClock() *testClock {
	return &testClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// allowAll is a guard allowing and aligning every candidate: tests of the
// cache's own rules, without the guard's.
type allowAll struct{}

func (allowAll) Prepare(prompt string) any { return prompt }
func (allowAll) Decide(query, cached any) (allow, aligned bool, reason string) {
	return true, true, ""
}

// refuseNumbers is a guard refusing candidates whose digits differ and
// aligning the others.
type refuseNumbers struct{}

func (refuseNumbers) Prepare(prompt string) any { return prompt }
func (refuseNumbers) Decide(query, cached any) (bool, bool, string) {
	if digits(query.(string)) != digits(cached.(string)) {
		return false, false, "numbers differ"
	}
	return true, true, ""
}

func digits(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsDigit(r) {
			return r
		}
		return -1
	}, s)
}

// wordGuard refuses candidates whose digits differ, aligns those with the
// same set of words and leaves the others uncertain. It counts the prompts
// it prepares.
type wordGuard struct {
	mu       sync.Mutex
	prepared map[string]int
}

// wordSet is wordGuard's prepared prompt.
type wordSet struct {
	digits string
	words  map[string]bool
}

func (g *wordGuard) Prepare(prompt string) any {
	g.mu.Lock()
	if g.prepared == nil {
		g.prepared = map[string]int{}
	}
	g.prepared[prompt]++
	g.mu.Unlock()
	w := &wordSet{digits: digits(prompt), words: map[string]bool{}}
	for _, f := range strings.FieldsFunc(strings.ToLower(prompt), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
		w.words[f] = true
	}
	return w
}

func (g *wordGuard) Decide(query, cached any) (bool, bool, string) {
	q, c := query.(*wordSet), cached.(*wordSet)
	if q.digits != c.digits {
		return false, false, "number"
	}
	if !maps.Equal(q.words, c.words) {
		return true, false, "unaligned word"
	}
	return true, true, "aligned"
}

// preparations is how often prompt was prepared.
func (g *wordGuard) preparations(prompt string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.prepared[prompt]
}

type testEnv struct {
	db    *sql.DB
	path  string
	clock *testClock
	index *scanIndex
}

func newTestEnv(t testing.TB) *testEnv {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tollgate.db")
	db, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &testEnv{db: db, path: path, clock: newTestClock(), index: newScanIndex()}
}

// open opens a semantic cache on the environment; edit adjusts options.
func (env *testEnv) open(t testing.TB, edit func(*Options)) *Cache {
	t.Helper()
	o := Options{
		DB: env.db, Embedder: wordsEmbedder{}, Index: env.index, Checker: allowAll{}, Threshold: 0.9,
		TTL: time.Hour, Now: env.clock.Now,
	}
	if edit != nil {
		edit(&o)
	}
	c, err := Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func chat(t testing.TB, body string) *llm.ChatRequest {
	t.Helper()
	r, err := llm.DecodeChatRequest([]byte(body))
	if err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	return r
}

func req(t testing.TB, tenant, body string) Request {
	t.Helper()
	return Request{Tenant: tenant, Model: "gpt-4o-mini", Chat: chat(t, body)}
}

func userBody(text string) string {
	return `{"model":"gpt-4o-mini","messages":[{"role":"user","content":` + quote(text) + `}]}`
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func llmDecode(body string) (*llm.ChatRequest, error) { return llm.DecodeChatRequest([]byte(body)) }

func answer(text string) *llm.ChatResponse {
	return &llm.ChatResponse{
		ID: "chatcmpl-1", Object: "chat.completion", Created: 1700000000, Model: "gpt-4o-mini-2024-07-18",
		Choices: []llm.Choice{{Index: 0, Message: llm.Message{Role: "assistant", Content: llm.TextContent(text)}, FinishReason: "stop"}},
		Usage:   &llm.Usage{PromptTokens: 12, CompletionTokens: 5, TotalTokens: 17},
	}
}

func mustStore(t testing.TB, c *Cache, r Request, ctl Controls, resp *llm.ChatResponse) {
	t.Helper()
	if err := c.Store(context.Background(), c.Prepare(r, ctl), resp, "gpt-4o-mini-2024-07-18", 150); err != nil {
		t.Fatal(err)
	}
}

func lookup(t testing.TB, c *Cache, r Request, ctl Controls) (*Entry, Result) {
	t.Helper()
	e, res, err := c.Lookup(context.Background(), c.Prepare(r, ctl))
	if err != nil {
		t.Fatal(err)
	}
	if (e != nil) != (res.Kind == KindHit || res.Kind == KindSemanticHit) {
		t.Fatalf("entry %v with result %+v", e != nil, res)
	}
	return e, res
}

// countedCache opens a cache on a fresh environment with a counting
// embedder and the refuseNumbers guard (prompts differing in their number
// never serve each other, whatever the hashed vectors say); shared: the
// index keeps entries, as one shared between replicas does; inner: the
// embedder counted (nil: wordsEmbedder).
func countedCache(tb testing.TB, shared bool, inner Embedder) (*testEnv, *countingEmbedder, *Cache) {
	tb.Helper()
	env := newTestEnv(tb)
	env.index.dropEntries = !shared
	emb := &countingEmbedder{inner: inner}
	return env, emb, env.open(tb, func(o *Options) { o.Embedder, o.Checker = emb, refuseNumbers{} })
}

// missAndStore looks r up, which must miss, and stores resp for it, as the
// gateway does on a miss.
func missAndStore(tb testing.TB, c *Cache, r Request, resp *llm.ChatResponse) {
	tb.Helper()
	ctx := context.Background()
	q := c.Prepare(r, Controls{})
	if _, res, err := c.Lookup(ctx, q); err != nil || res.Kind != KindMiss {
		tb.Fatalf("%+v %v", res, err)
	}
	if err := c.Store(ctx, q, resp, "gpt-4o-mini", 150); err != nil {
		tb.Fatal(err)
	}
}
