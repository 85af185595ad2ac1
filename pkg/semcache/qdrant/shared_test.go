package qdrant

import (
	"context"
	"database/sql"
	"encoding/json"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"

	"github.com/tollgate/tollgate/pkg/llm"
	"github.com/tollgate/tollgate/pkg/semcache"
	"github.com/tollgate/tollgate/pkg/semcache/guard"
	"github.com/tollgate/tollgate/pkg/sqlite"
)

// Gateway replicas, each with its own SQLite file, sharing one Qdrant
// collection (the in-process fake): the scale-out the adapter is for.

const wordsDim = 64

// wordsEmbedder is a deterministic embedder: a normalised bag of
// lowercased words hashed into 64 buckets.
type wordsEmbedder struct{}

func (wordsEmbedder) Dim() int     { return wordsDim }
func (wordsEmbedder) Name() string { return "test-words-64" }
func (wordsEmbedder) Embed(_ context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, len(texts))
	for i, t := range texts {
		v := make([]float32, wordsDim)
		for _, w := range strings.FieldsFunc(strings.ToLower(t), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
			h := fnv.New32a()
			h.Write([]byte(w))
			v[h.Sum32()%wordsDim]++
		}
		var n float64
		for _, f := range v {
			n += float64(f * f)
		}
		for j := range v {
			v[j] /= float32(math.Sqrt(n))
		}
		out[i] = v
	}
	return out, nil
}

type manualClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *manualClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// seededIDs is a deterministic Options.NewID.
func seededIDs(seed uint64) func() uint64 {
	var mu sync.Mutex
	r := rand.New(rand.NewPCG(seed, seed))
	return func() uint64 {
		mu.Lock()
		defer mu.Unlock()
		return r.Uint64()
	}
}

func openDB(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "tollgate.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func newSharedIndex(t *testing.T) *Index {
	t.Helper()
	ix, _ := newFakeIndex(t, func(c *Config) { c.Embedder, c.Dim = wordsEmbedder{}.Name(), wordsDim })
	return ix
}

func openReplica(t *testing.T, db *sql.DB, ix *Index, clock *manualClock, seed uint64) *semcache.Cache {
	t.Helper()
	c, err := semcache.Open(t.Context(), semcache.Options{
		DB: db, Embedder: wordsEmbedder{}, Index: ix, Checker: guard.New(),
		Threshold: 0.9, TTL: time.Hour, Now: clock.Now, NewID: seededIDs(seed),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func chatReq(t *testing.T, tenant, model, text string) semcache.Request {
	t.Helper()
	body := `{"model":"` + model + `","messages":[{"role":"user","content":"` + text + `"}]}`
	r, err := llm.DecodeChatRequest([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return semcache.Request{Tenant: tenant, Model: model, Chat: r}
}

const (
	storedQ = "How many moons does Jupiter have according to the 2023 survey?"
	rawA    = `{"id":"chatcmpl-A","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"95 <known> moons & counting."},"finish_reason":"stop"}],"usage":{"prompt_tokens":20,"completion_tokens":6,"total_tokens":26}}`
)

func answerA(t *testing.T, finish string) *llm.ChatResponse {
	t.Helper()
	raw := strings.Replace(rawA, `"stop"`, `"`+finish+`"`, 1)
	resp := new(llm.ChatResponse)
	if err := json.Unmarshal([]byte(raw), resp); err != nil {
		t.Fatal(err)
	}
	resp.Raw = []byte(raw)
	return resp
}

func TestReplicasShareEntriesThroughQdrant(t *testing.T) {
	tests := []struct {
		name    string
		finish  string        // of A's answer (default stop)
		advance time.Duration // between A's store and B's lookup
		tenant  string        // of B's request (default acme)
		model   string        // asked of B (default gpt-4o-mini)
		query   string
		ctl     semcache.Controls
		kind    string
		reason  string
	}{
		{name: "same tenant and scope gets A's answer", query: "According to the 2023 survey, how many moons does Jupiter have?", kind: semcache.KindSemanticHit},
		{name: "A's exact question is a semantic hit on B", query: storedQ, kind: semcache.KindSemanticHit},
		{name: "just before expiry", advance: time.Hour - time.Millisecond, query: storedQ, kind: semcache.KindSemanticHit},
		{name: "another tenant never", tenant: "globex", query: storedQ, kind: semcache.KindMiss},
		{name: "another model asked for never", model: "gpt-4o", query: storedQ, kind: semcache.KindMiss},
		{name: "expired never", advance: time.Hour, query: storedQ, kind: semcache.KindMiss},
		{name: "older than max-age never", advance: 10 * time.Minute, ctl: semcache.Controls{MaxAge: time.Minute}, query: storedQ, kind: semcache.KindMiss, reason: "max-age"},
		{name: "guard refuses a near miss", query: "How many moons does Jupiter have according to the 2013 survey?", kind: semcache.KindMiss, reason: "guard"},
		{name: "cut at its length limit never", finish: "length", query: storedQ, kind: semcache.KindMiss, reason: "length limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ix := newSharedIndex(t)
			clock := &manualClock{t: t0}
			a := openReplica(t, openDB(t), ix, clock, 1)
			b := openReplica(t, openDB(t), ix, clock, 2)
			finish := tt.finish
			if finish == "" {
				finish = "stop"
			}
			if err := a.Store(t.Context(), a.Prepare(chatReq(t, "acme", "gpt-4o-mini", storedQ), semcache.Controls{}), answerA(t, finish), "gpt-4o-mini-2024-07-18", 250); err != nil {
				t.Fatal(err)
			}
			clock.Advance(tt.advance)
			tenant, model := tt.tenant, tt.model
			if tenant == "" {
				tenant = "acme"
			}
			if model == "" {
				model = "gpt-4o-mini"
			}
			e, res, err := b.Lookup(t.Context(), b.Prepare(chatReq(t, tenant, model, tt.query), tt.ctl))
			if err != nil {
				t.Fatal(err)
			}
			if res.Kind != tt.kind || !strings.Contains(res.Reason, tt.reason) {
				t.Fatalf("B: %+v, want %s (%s)", res, tt.kind, tt.reason)
			}
			st := b.Stats()
			if tt.kind != semcache.KindSemanticHit {
				if e != nil || st.SemanticHits != 0 {
					t.Fatalf("B served %+v (stats %+v)", e, st)
				}
				return
			}
			if string(e.Response.Raw) != strings.Replace(rawA, `"stop"`, `"`+finish+`"`, 1) {
				t.Errorf("B served\n%s\nwant A's answer byte for byte\n%s", e.Response.Raw, rawA)
			}
			if e.Model != "gpt-4o-mini-2024-07-18" || e.Cost != 250 || e.Usage == nil || e.Usage.TotalTokens != 26 ||
				!e.CreatedAt.Equal(t0) || !e.ExpiresAt.Equal(t0.Add(time.Hour)) || e.ID == 0 {
				t.Errorf("B served entry %+v", e)
			}
			if st.SemanticHits != 1 || st.SavedMicros != 250 || st.Entries != 0 {
				t.Errorf("B stats %+v", st)
			}
		})
	}
}

// TestReplicasNeverOverwriteEachOther: both replicas store the same
// questions with different answers; with SQLite's sequential ids they
// overwrote each other's points.
func TestReplicasNeverOverwriteEachOther(t *testing.T) {
	ix := newSharedIndex(t)
	clock := &manualClock{t: t0}
	a := openReplica(t, openDB(t), ix, clock, 1)
	b := openReplica(t, openDB(t), ix, clock, 2)
	questions := []string{"What is the capital of France?", "How tall is the Eiffel tower?", "Who painted the Mona Lisa?"}
	for _, q := range questions {
		for _, c := range []*semcache.Cache{a, b} {
			if err := c.Store(t.Context(), c.Prepare(chatReq(t, "acme", "gpt-4o-mini", q), semcache.Controls{}), answerA(t, "stop"), "m", 1); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n := ix.Len(); n != 2*len(questions) {
		t.Errorf("collection holds %d points, want %d", n, 2*len(questions))
	}
}

// TestReplicaRebuildSharesEntries: a replica restarted on a new collection
// (or after Qdrant lost it) re-upserts its entries with their payload, and
// the others serve them.
func TestReplicaRebuildSharesEntries(t *testing.T) {
	clock := &manualClock{t: t0}
	dbA := openDB(t)
	a := openReplica(t, dbA, newSharedIndex(t), clock, 1)
	if err := a.Store(t.Context(), a.Prepare(chatReq(t, "acme", "gpt-4o-mini", storedQ), semcache.Controls{}), answerA(t, "stop"), "m", 250); err != nil {
		t.Fatal(err)
	}
	a.Close()
	ix := newSharedIndex(t)
	openReplica(t, dbA, ix, clock, 3) // A restarted: load() rebuilds ix
	b := openReplica(t, openDB(t), ix, clock, 2)
	e, res, err := b.Lookup(t.Context(), b.Prepare(chatReq(t, "acme", "gpt-4o-mini", storedQ), semcache.Controls{}))
	if err != nil || res.Kind != semcache.KindSemanticHit || string(e.Response.Raw) != rawA {
		t.Fatalf("B after A's rebuild: %+v, %v", res, err)
	}
}

// TestReplicaDeleteIsShared documents DELETE /admin/cache across replicas:
// it removes the tenant's points from the shared collection, so no replica
// serves them semantically any more, but each replica's own SQLite still
// serves its own exact hits (and re-indexes them when it restarts).
func TestReplicaDeleteIsShared(t *testing.T) {
	ix := newSharedIndex(t)
	clock := &manualClock{t: t0}
	a := openReplica(t, openDB(t), ix, clock, 1)
	b := openReplica(t, openDB(t), ix, clock, 2)
	r := chatReq(t, "acme", "gpt-4o-mini", storedQ)
	if err := a.Store(t.Context(), a.Prepare(r, semcache.Controls{}), answerA(t, "stop"), "m", 250); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Delete(t.Context(), semcache.Filter{Tenant: "acme"}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		replica *semcache.Cache
		kind    string
	}{
		{"B no longer serves A's entry", b, semcache.KindMiss},
		{"A still serves its own entry exactly", a, semcache.KindHit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, res, err := tt.replica.Lookup(t.Context(), tt.replica.Prepare(r, semcache.Controls{}))
			if err != nil || res.Kind != tt.kind {
				t.Fatalf("%+v, %v; want %s", res, err, tt.kind)
			}
		})
	}
}
