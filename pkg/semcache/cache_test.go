package semcache

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/safe"
	"github.com/tollgate/tollgate/pkg/llm"
)

func TestExactHit(t *testing.T) {
	env := newTestEnv(t)
	c := env.open(t, nil)
	r := req(t, "t1", baseBody)
	if _, res := lookup(t, c, r, Controls{}); res.Kind != KindMiss {
		t.Fatalf("empty cache: %+v", res)
	}
	resp := answer("Paris.")
	resp.Raw = []byte(`{"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"Paris."},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17},"provider_extra":{"x":1}}`)
	mustStore(t, c, r, Controls{}, resp)

	// The same request spelled differently and streamed: an exact hit.
	again := req(t, "t1", strings.Replace(with(`"stream":true`), `"max_tokens":64`, `"max_tokens": 64`, 1))
	e, res := lookup(t, c, again, Controls{})
	if res.Kind != KindHit {
		t.Fatalf("got %+v, want hit", res)
	}
	if string(e.Response.Raw) != string(resp.Raw) {
		t.Errorf("raw answer changed:\n got %s\nwant %s", e.Response.Raw, resp.Raw)
	}
	if e.Response.Choices[0].Message.Content.String() != "Paris." || e.Model != "gpt-4o-mini-2024-07-18" || e.Cost != 150 {
		t.Errorf("entry %+v", e)
	}
	if e.Usage == nil || e.Usage.TotalTokens != 17 {
		t.Errorf("usage %+v", e.Usage)
	}
}

func TestTenantIsolation(t *testing.T) {
	env := newTestEnv(t)
	c := env.open(t, nil)
	a := req(t, "tenant-a", userBody("What is the capital of France?"))
	mustStore(t, c, a, Controls{}, answer("A's secret answer"))

	tests := []struct {
		name string
		body string
	}{
		{"exact", userBody("What is the capital of France?")},
		{"semantic", userBody("what is the capital of france")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Tenant A gets it...
			if _, res := lookup(t, c, req(t, "tenant-a", tt.body), Controls{}); res.Kind == KindMiss {
				t.Fatalf("tenant A: %+v, want a hit", res)
			}
			// ...tenant B never does.
			e, res := lookup(t, c, req(t, "tenant-b", tt.body), Controls{})
			if e != nil || res.Kind != KindMiss {
				t.Fatalf("tenant B was served %+v (%+v)", e, res)
			}
		})
	}
}

func TestSemanticHit(t *testing.T) {
	env := newTestEnv(t)
	c := env.open(t, func(o *Options) { o.Checker = refuseNumbers{} })
	mustStore(t, c, req(t, "t1", userBody("How do I reverse a list in Python 3 with only the standard library and no loops?")), Controls{}, answer("Use reversed()."))

	tests := []struct {
		name   string
		query  string
		ctl    Controls
		kind   string
		reason string
	}{
		{"same words reordered", "In Python 3 with only the standard library and no loops, how do I reverse a list?", Controls{}, KindSemanticHit, ""},
		{"below threshold", "How do I sort a dict in Go?", Controls{}, KindMiss, ""},
		{"guard refuses different numbers", "How do I reverse a list in Python 2 with only the standard library and no loops?", Controls{}, KindMiss, "guard"},
		{"client tightens the threshold", "reverse a list in Python 3 with only the standard library and no loops, how do I?", Controls{Threshold: 1.01}, KindMiss, ""},
		{"client cannot loosen the threshold", "How do I sort a dict in Go?", Controls{Threshold: 0.01}, KindMiss, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, res := lookup(t, c, req(t, "t1", userBody(tt.query)), tt.ctl)
			if res.Kind != tt.kind || !strings.Contains(res.Reason, tt.reason) {
				t.Fatalf("got %+v, want %s (%s)", res, tt.kind, tt.reason)
			}
			if tt.kind == KindSemanticHit {
				if res.Similarity < 0.9 || e.Response.Choices[0].Message.Content.String() != "Use reversed()." {
					t.Errorf("hit %+v similarity %v", e, res.Similarity)
				}
			}
		})
	}
	if s := c.Stats(); s.GuardRefusals != 1 {
		t.Errorf("guard refusals %d, want 1", s.GuardRefusals)
	}
}

// TestSemanticRespectsOutputLimit: a paraphrase asking for a shorter answer
// than the cached one (5 completion tokens) is not served it.
func TestSemanticRespectsOutputLimit(t *testing.T) {
	env := newTestEnv(t)
	c := env.open(t, nil)
	mustStore(t, c, req(t, "t1", userBody("Tell me the history of Rome")), Controls{}, answer("Rome was founded long ago."))
	tests := []struct {
		name, limit, kind string
	}{
		{"no limit", "", KindSemanticHit},
		{"limit above the answer", `,"max_tokens":5`, KindSemanticHit},
		{"limit below the answer", `,"max_tokens":4`, KindMiss},
		{"max_completion_tokens too", `,"max_completion_tokens":2`, KindMiss},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := `{"model":"gpt-4o-mini"` + tt.limit + `,"messages":[{"role":"user","content":"tell me the history of rome"}]}`
			if _, res := lookup(t, c, req(t, "t1", body), Controls{}); res.Kind != tt.kind {
				t.Fatalf("%+v, want %s", res, tt.kind)
			}
		})
	}
}

func TestSemanticRefusesTruncatedAnswer(t *testing.T) {
	env := newTestEnv(t)
	c := env.open(t, nil)
	cut := answer("The history of Rome begins")
	cut.Choices[0].FinishReason = "length"
	mustStore(t, c, req(t, "t1", userBody("Tell me the history of Rome")), Controls{}, cut)
	if _, res := lookup(t, c, req(t, "t1", userBody("tell me the history of rome")), Controls{}); res.Kind != KindMiss {
		t.Errorf("semantic: %+v, want miss", res)
	}
	if _, res := lookup(t, c, req(t, "t1", userBody("Tell me the history of Rome")), Controls{}); res.Kind != KindHit {
		t.Errorf("exact: %+v, want hit", res)
	}
}

func TestControls(t *testing.T) {
	tests := []struct {
		name      string
		storeCtl  Controls
		lookupCtl Controls
		age       time.Duration
		want      string
	}{
		{"default", Controls{}, Controls{}, 0, KindHit},
		{"no-store does not store", Controls{NoStore: true}, Controls{}, 0, KindMiss},
		{"no-cache skips the lookup", Controls{}, Controls{NoCache: true}, 0, KindBypass},
		{"no-cache still stores", Controls{NoCache: true}, Controls{}, 0, KindHit},
		{"max-age young enough", Controls{}, Controls{MaxAge: time.Minute}, 30 * time.Second, KindHit},
		{"max-age too old", Controls{}, Controls{MaxAge: time.Minute}, 2 * time.Minute, KindMiss},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newTestEnv(t)
			c := env.open(t, nil)
			r := req(t, "t1", baseBody)
			mustStore(t, c, r, tt.storeCtl, answer("Paris."))
			env.clock.Advance(tt.age)
			if _, res := lookup(t, c, r, tt.lookupCtl); res.Kind != tt.want {
				t.Errorf("got %+v, want %s", res, tt.want)
			}
		})
	}
}

func TestUncacheableBypasses(t *testing.T) {
	env := newTestEnv(t)
	c := env.open(t, nil)
	r := req(t, "t1", with(`"n":3`))
	mustStore(t, c, r, Controls{}, answer("x"))
	if _, res := lookup(t, c, r, Controls{}); res.Kind != KindBypass || res.Reason == "" {
		t.Errorf("got %+v, want bypass with a reason", res)
	}
	if s := c.Stats(); s.Entries != 0 {
		t.Errorf("stored %d uncacheable entries", s.Entries)
	}
}

// TestUnstorableAnswersNotStored: an answer that did not end normally, or
// one whose reasoning an upstream signed (Anthropic's thinking: the
// signature is not part of the stored form, and a thinking block sent
// back without it is refused on the next turn), is not kept; the same
// answer unsigned is.
func TestUnstorableAnswersNotStored(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*llm.ChatResponse)
		want   string
	}{
		{"content filtered", func(r *llm.ChatResponse) { r.Choices[0].FinishReason = "content_filter" }, KindMiss},
		{"signed reasoning", func(r *llm.ChatResponse) {
			r.Choices[0].Message.ReasoningContent, r.Choices[0].Message.ReasoningSignature = "Let me think.", "sig-abc"
		}, KindMiss},
		{"unsigned reasoning", func(r *llm.ChatResponse) { r.Choices[0].Message.ReasoningContent = "Let me think." }, KindHit},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newTestEnv(t)
			c := env.open(t, nil)
			r := req(t, "t1", baseBody)
			a := answer("Paris.")
			tc.change(a)
			mustStore(t, c, r, Controls{}, a)
			if _, res := lookup(t, c, r, Controls{}); res.Kind != tc.want {
				t.Errorf("got %+v, want %s", res, tc.want)
			}
		})
	}
}

func TestRestartPersistence(t *testing.T) {
	env := newTestEnv(t)
	c := env.open(t, nil)
	exact := req(t, "t1", baseBody)
	mustStore(t, c, exact, Controls{}, answer("Paris."))
	toolAnswer := &llm.ChatResponse{ID: "chatcmpl-2", Object: "chat.completion", Created: 1700000001, Model: "m",
		Choices: []llm.Choice{{Message: llm.Message{Role: "assistant", Content: llm.Content{Null: true},
			ToolCalls: []llm.ToolCall{{ID: "call_1", Type: "function", Function: llm.FunctionCall{Name: "get_weather", Arguments: `{"city":"Paris"}`}}}},
			FinishReason: "tool_calls"}}}
	mustStore(t, c, req(t, "t1", userBody("weather in Paris today")), Controls{}, toolAnswer)
	short := req(t, "t1", userBody("short lived"))
	if err := c.Store(context.Background(), c.Prepare(short, Controls{}), answer("soon gone"), "m", 1); err != nil {
		t.Fatal(err)
	}
	c.Close()

	// A new process: new index, same database file.
	env.index = newScanIndex()
	env.clock.Advance(30 * time.Minute)
	c2 := env.open(t, nil)
	if e, res := lookup(t, c2, exact, Controls{}); res.Kind != KindHit || e.Response.Choices[0].Message.Content.String() != "Paris." {
		t.Fatalf("exact after restart: %+v", res)
	}
	e, res := lookup(t, c2, req(t, "t1", userBody("Weather in Paris today?")), Controls{})
	if res.Kind != KindSemanticHit {
		t.Fatalf("semantic after restart: %+v", res)
	}
	want, _ := json.Marshal(toolAnswer)
	got, _ := json.Marshal(e.Response)
	if string(got) != string(want) {
		t.Errorf("tool answer after restart:\n got %s\nwant %s", got, want)
	}
	if n := env.index.Len(); n != 3 {
		t.Errorf("rebuilt index holds %d points, want 3", n)
	}
	c2.Close()

	// Past the TTL nothing is loaded or served.
	env.index = newScanIndex()
	env.clock.Advance(time.Hour)
	c3 := env.open(t, nil)
	if _, res := lookup(t, c3, exact, Controls{}); res.Kind != KindMiss {
		t.Errorf("expired entry after restart: %+v", res)
	}
	if n := env.index.Len(); n != 0 {
		t.Errorf("expired entries indexed: %d", n)
	}
}

func TestRestartWithAnotherEmbedder(t *testing.T) {
	env := newTestEnv(t)
	c := env.open(t, nil)
	r := req(t, "t1", userBody("What is the capital of France?"))
	mustStore(t, c, r, Controls{}, answer("Paris."))
	c.Close()
	env.index = newScanIndex()
	c2 := env.open(t, func(o *Options) { o.Embedder = renamedEmbedder{} })
	if n := env.index.Len(); n != 0 {
		t.Errorf("vectors of another embedder indexed: %d", n)
	}
	if _, res := lookup(t, c2, r, Controls{}); res.Kind != KindHit {
		t.Errorf("exact path after embedder change: %+v", res)
	}
}

type renamedEmbedder struct{ wordsEmbedder }

func (renamedEmbedder) Name() string { return "another" }

func TestDelete(t *testing.T) {
	tests := []struct {
		name     string
		filter   Filter
		deleted  int
		survives []string // tenant/model pairs still served
	}{
		{"all", Filter{}, 4, nil},
		{"by tenant", Filter{Tenant: "a"}, 2, []string{"b/m1", "b/m2"}},
		{"by model", Filter{Model: "m1"}, 2, []string{"a/m2", "b/m2"}},
		{"by tenant and model", Filter{Tenant: "a", Model: "m1"}, 1, []string{"a/m2", "b/m1", "b/m2"}},
	}
	all := []string{"a/m1", "a/m2", "b/m1", "b/m2"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newTestEnv(t)
			c := env.open(t, nil)
			mk := func(tm string) Request {
				tenant, model, _ := strings.Cut(tm, "/")
				r := req(t, tenant, userBody("What is the capital of France?"))
				r.Model = model
				return r
			}
			for _, tm := range all {
				mustStore(t, c, mk(tm), Controls{}, answer("Paris."))
			}
			n, err := c.Delete(context.Background(), tt.filter)
			if err != nil || n != tt.deleted {
				t.Fatalf("Delete = %d, %v; want %d", n, err, tt.deleted)
			}
			for _, tm := range all {
				want := false
				for _, s := range tt.survives {
					want = want || s == tm
				}
				for _, q := range []string{"What is the capital of France?", "what is the capital of france"} {
					r := mk(tm)
					r.Chat = chat(t, userBody(q))
					if _, res := lookup(t, c, r, Controls{}); (res.Kind != KindMiss) != want {
						t.Errorf("%s %q: %+v, want served %v", tm, q, res, want)
					}
				}
			}
			if s := c.Stats(); s.Entries != len(tt.survives) || s.IndexPoints != len(tt.survives) {
				t.Errorf("stats %+v, want %d entries and points", s, len(tt.survives))
			}
		})
	}
}

func TestExpiry(t *testing.T) {
	env := newTestEnv(t)
	c := env.open(t, nil)
	r := req(t, "t1", userBody("What is the capital of France?"))
	mustStore(t, c, r, Controls{}, answer("Paris."))
	env.clock.Advance(time.Hour - time.Millisecond)
	if _, res := lookup(t, c, r, Controls{}); res.Kind != KindHit {
		t.Fatalf("before expiry: %+v", res)
	}
	env.clock.Advance(time.Millisecond)
	for _, q := range []string{"What is the capital of France?", "what is the capital of france"} {
		if _, res := lookup(t, c, req(t, "t1", userBody(q)), Controls{}); res.Kind != KindMiss {
			t.Errorf("%q at expiry: %+v", q, res)
		}
	}
	n, err := c.SweepExpired(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("SweepExpired = %d, %v; want 1", n, err)
	}
	var rows int
	if err := env.db.QueryRow(`SELECT count(*) FROM semcache_entries`).Scan(&rows); err != nil || rows != 0 {
		t.Errorf("rows after sweep %d, %v", rows, err)
	}
	if s := c.Stats(); s.Entries != 0 || s.IndexPoints != 0 {
		t.Errorf("stats after sweep %+v", s)
	}
}

func TestStoreReplacesSameKey(t *testing.T) {
	env := newTestEnv(t)
	c := env.open(t, nil)
	r := req(t, "t1", baseBody)
	mustStore(t, c, r, Controls{}, answer("old"))
	mustStore(t, c, r, Controls{NoCache: true}, answer("new"))
	e, res := lookup(t, c, r, Controls{})
	if res.Kind != KindHit || e.Response.Choices[0].Message.Content.String() != "new" {
		t.Errorf("got %+v %v, want the new answer", res, e)
	}
	if s := c.Stats(); s.Entries != 1 || s.IndexPoints != 1 {
		t.Errorf("stats %+v, want 1 entry", s)
	}
}

func TestStats(t *testing.T) {
	env := newTestEnv(t)
	c := env.open(t, nil)
	r := req(t, "t1", userBody("What is the capital of France?"))
	lookup(t, c, r, Controls{})                                                       // miss
	mustStore(t, c, r, Controls{}, answer("Paris."))                                  // cost 150
	lookup(t, c, r, Controls{})                                                       // hit
	lookup(t, c, req(t, "t1", userBody("what is the capital of france")), Controls{}) // semantic hit
	lookup(t, c, r, Controls{NoCache: true})                                          // bypass
	s := c.Stats()
	want := Stats{Embedder: "test-words-64", Entries: 1, IndexPoints: 1, Hits: 1, SemanticHits: 1, Misses: 1, Bypasses: 1, SavedMicros: 300, SavedUSD: 0.0003}
	want.Bytes = s.Bytes
	if s != want || s.Bytes <= 0 {
		t.Errorf("stats %+v, want %+v", s, want)
	}
	b, _ := json.Marshal(s)
	for _, k := range []string{`"entries":1`, `"semantic_hits":1`, `"saved_micros":300`} {
		if !strings.Contains(string(b), k) {
			t.Errorf("JSON %s lacks %s", b, k)
		}
	}
}

func TestWithoutSemantic(t *testing.T) {
	env := newTestEnv(t)
	c := env.open(t, func(o *Options) { o.Embedder, o.Index = nil, nil })
	mustStore(t, c, req(t, "t1", userBody("What is the capital of France?")), Controls{}, answer("Paris."))
	if _, res := lookup(t, c, req(t, "t1", userBody("What is the capital of France?")), Controls{}); res.Kind != KindHit {
		t.Errorf("exact: %+v", res)
	}
	if _, res := lookup(t, c, req(t, "t1", userBody("what is the capital of france")), Controls{}); res.Kind != KindMiss {
		t.Errorf("semantic without an embedder: %+v", res)
	}
}

func TestOpenRequiresGuardWithSemanticCache(t *testing.T) {
	env := newTestEnv(t)
	tests := []struct {
		name    string
		edit    func(*Options)
		wantErr bool
	}{
		{"semantic without guard", func(o *Options) { o.Checker = nil }, true},
		{"semantic with guard", nil, false},
		{"exact only, no guard needed", func(o *Options) { o.Embedder, o.Index, o.Checker = nil, nil, nil }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := Options{DB: env.db, Embedder: wordsEmbedder{}, Index: newScanIndex(), Checker: allowAll{}}
			if tt.edit != nil {
				tt.edit(&o)
			}
			c, err := Open(context.Background(), o)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Open: %v, want error %v", err, tt.wantErr)
			}
			if c != nil {
				c.Close()
			}
		})
	}
}

// sweepPanicIndex panics in DeleteExpired while panics is positive.
type sweepPanicIndex struct {
	*scanIndex
	panics atomic.Int32
}

func (x *sweepPanicIndex) DeleteExpired(ctx context.Context, now time.Time) (int, error) {
	if x.panics.Add(-1) >= 0 {
		panic("injected sweep panic")
	}
	return x.scanIndex.DeleteExpired(ctx, now)
}

// TestSweeperPanics: the sweeper runs under the supervisor. A few panics
// in a row are logged and the sweeper restarted, and it then sweeps; a
// sweeper that always panics is given up and reported, and Close does not
// wait for it.
func TestSweeperPanics(t *testing.T) {
	tests := []struct {
		name   string
		panics int32
		failed bool
	}{
		{"restarted after two panics", 2, false},
		{"given up after five", 1 << 30, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newTestEnv(t)
			ix := &sweepPanicIndex{scanIndex: env.index}
			ix.panics.Store(tt.panics)
			sup := safe.New(safe.Options{Logger: slog.New(slog.DiscardHandler), Pause: time.Millisecond})
			c := env.open(t, func(o *Options) {
				o.Index, o.Supervisor, o.SweepInterval = ix, sup, time.Millisecond
			})
			mustStore(t, c, req(t, "t1", userBody("What is the capital of France?")), Controls{}, answer("Paris."))
			env.clock.Advance(2 * time.Hour) // past the TTL
			deadline := time.Now().Add(10 * time.Second)
			for (tt.failed && sup.Err() == nil) || (!tt.failed && ix.Len() > 0) {
				if time.Now().After(deadline) {
					t.Fatalf("after 10s: %d panics, err %v, %d points", sup.Panics(), sup.Err(), ix.Len())
				}
				time.Sleep(time.Millisecond)
			}
			if tt.failed {
				if err := sup.Err(); !strings.Contains(err.Error(), "semcache sweeper") {
					t.Fatalf("err %v, want the sweeper named", err)
				}
				if ix.Len() != 1 {
					t.Fatalf("%d points, want the unswept one", ix.Len())
				}
			} else if sup.Panics() != 2 || sup.Err() != nil {
				t.Fatalf("%d panics, err %v; want 2 and none", sup.Panics(), sup.Err())
			}
			c.Close()
		})
	}
}
