package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/tollgate/tollgate/internal/testmodel"
	"github.com/tollgate/tollgate/pkg/budget"
	"github.com/tollgate/tollgate/pkg/gateway"
	"github.com/tollgate/tollgate/pkg/httpapi"
	"github.com/tollgate/tollgate/pkg/llm"
	"github.com/tollgate/tollgate/pkg/providers"
	"github.com/tollgate/tollgate/pkg/semcache"
	"github.com/tollgate/tollgate/pkg/semcache/use"
)

// cachedStack is a stack with the response cache on, served by a counting
// simulator.
func cachedStack(t *testing.T, o stackOptions) (*stack, *counting) {
	t.Helper()
	up := &counting{Provider: exactSim(t)}
	o.models, o.cache = simModels(up), true
	return newStack(t, o), up
}

// chat sends a completion through the SDK and returns it with the response
// headers.
func chat(t *testing.T, s *stack, secret string, p openai.ChatCompletionNewParams, opts ...option.RequestOption) (*openai.ChatCompletion, http.Header) {
	t.Helper()
	var raw *http.Response
	c, err := s.client(secret).Chat.Completions.New(context.Background(), p, append(opts, option.WithResponseInto(&raw))...)
	if err != nil {
		t.Fatal(err)
	}
	return c, raw.Header
}

// streamChat streams a completion through the SDK and returns its chunks,
// the accumulated completion and the response headers.
func streamChat(t *testing.T, s *stack, secret string, p openai.ChatCompletionNewParams) ([]openai.ChatCompletionChunk, openai.ChatCompletion, http.Header) {
	t.Helper()
	var raw *http.Response
	st := s.client(secret).Chat.Completions.NewStreaming(context.Background(), p, option.WithResponseInto(&raw))
	var chunks []openai.ChatCompletionChunk
	var acc openai.ChatCompletionAccumulator
	for st.Next() {
		c := st.Current()
		chunks = append(chunks, c)
		if !acc.AddChunk(c) {
			t.Fatalf("chunk %d does not accumulate", len(chunks))
		}
	}
	if err := st.Err(); err != nil {
		t.Fatal(err)
	}
	return chunks, acc.ChatCompletion, raw.Header
}

func TestCacheExactHitThroughSDK(t *testing.T) {
	s, up := cachedStack(t, stackOptions{})
	p := ask("sim-small", "What is the capital of France?")
	first, h1 := chat(t, s, s.secret, p)
	if got := h1.Get(httpapi.HeaderCache); got != semcache.KindMiss {
		t.Fatalf("first: x-tollgate-cache %q, want miss", got)
	}
	second, h2 := chat(t, s, s.secret, p)
	if got := h2.Get(httpapi.HeaderCache); got != semcache.KindHit {
		t.Fatalf("second: x-tollgate-cache %q, want hit", got)
	}
	if n := up.calls.Load(); n != 1 {
		t.Fatalf("upstream called %d times, want 1", n)
	}
	if second.ID != first.ID || second.Choices[0].Message.Content != first.Choices[0].Message.Content || second.Model != first.Model {
		t.Fatalf("hit differs from the original:\n%+v\n%+v", first, second)
	}
	if h2.Get(httpapi.HeaderCacheID) == "" || h2.Get(httpapi.HeaderCacheSimilarity) != "1.0000" {
		t.Fatalf("hit headers: id %q similarity %q", h2.Get(httpapi.HeaderCacheID), h2.Get(httpapi.HeaderCacheSimilarity))
	}
	if h2.Get(httpapi.HeaderCost) != "0.000000" || h2.Get(httpapi.HeaderCacheSaved) != h1.Get(httpapi.HeaderCost) || h1.Get(httpapi.HeaderCost) == "0.000000" {
		t.Fatalf("cost: miss %q, hit %q saving %q", h1.Get(httpapi.HeaderCost), h2.Get(httpapi.HeaderCost), h2.Get(httpapi.HeaderCacheSaved))
	}
	if h2.Get(httpapi.HeaderProvider) != gateway.CacheProvider || h2.Get(httpapi.HeaderModel) != "sim-small" {
		t.Fatalf("hit provider %q model %q", h2.Get(httpapi.HeaderProvider), h2.Get(httpapi.HeaderModel))
	}

	// The same request in other JSON clothes: key order and whitespace.
	resp, body := postChat(t, s, s.secret, "{\n  \"messages\" : [ { \"content\": \"What is the capital of France?\", \"role\": \"user\" } ],\n\t\"model\": \"sim-small\" }")
	if resp.StatusCode != 200 || resp.Header.Get(httpapi.HeaderCache) != semcache.KindHit {
		t.Fatalf("reordered JSON: %d %q %s", resp.StatusCode, resp.Header.Get(httpapi.HeaderCache), body)
	}
	// Any output-changing parameter is another request.
	for name, body := range map[string]string{
		"max_tokens":  `{"model":"sim-small","max_tokens":7,"messages":[{"role":"user","content":"What is the capital of France?"}]}`,
		"other model": `{"model":"sim-large","messages":[{"role":"user","content":"What is the capital of France?"}]}`,
		"system":      `{"model":"sim-small","messages":[{"role":"system","content":"Answer in French."},{"role":"user","content":"What is the capital of France?"}]}`,
		"seed":        `{"model":"sim-small","seed":3,"messages":[{"role":"user","content":"What is the capital of France?"}]}`,
	} {
		resp, _ := postChat(t, s, s.secret, body)
		if got := resp.Header.Get(httpapi.HeaderCache); got != semcache.KindMiss {
			t.Errorf("%s: x-tollgate-cache %q, want miss", name, got)
		}
	}
}

func TestCacheStreamReplayMatchesOriginal(t *testing.T) {
	tests := []struct {
		name                   string
		streamFirst, streamHit bool
	}{
		{"json answer replayed as a stream", false, true},
		{"streamed answer replayed as a stream", true, true},
		{"streamed answer served as JSON", true, false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, up := cachedStack(t, stackOptions{})
			p := ask("sim-small", fmt.Sprintf("Write two sentences about harbours, case %d.", i))
			p.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
			get := func(stream bool) (openai.ChatCompletion, []openai.ChatCompletionChunk, http.Header) {
				if stream {
					chunks, acc, h := streamChat(t, s, s.secret, p)
					return acc, chunks, h
				}
				q := p
				q.StreamOptions = openai.ChatCompletionStreamOptionsParam{}
				c, h := chat(t, s, s.secret, q)
				return *c, nil, h
			}
			orig, _, h1 := get(tt.streamFirst)
			again, chunks, h2 := get(tt.streamHit)
			if h1.Get(httpapi.HeaderCache) != semcache.KindMiss || h2.Get(httpapi.HeaderCache) != semcache.KindHit {
				t.Fatalf("x-tollgate-cache: %q then %q", h1.Get(httpapi.HeaderCache), h2.Get(httpapi.HeaderCache))
			}
			if n := up.calls.Load(); n != 1 {
				t.Fatalf("upstream called %d times", n)
			}
			o, a := orig.Choices[0], again.Choices[0]
			if orig.ID != again.ID || orig.Model != again.Model || o.Message.Content != a.Message.Content || o.FinishReason != a.FinishReason || o.Message.Role != a.Message.Role {
				t.Fatalf("replay differs:\noriginal %+v\nreplayed %+v", orig, again)
			}
			if orig.Usage.CompletionTokens != again.Usage.CompletionTokens || orig.Usage.PromptTokens != again.Usage.PromptTokens {
				t.Fatalf("usage: %+v vs %+v", orig.Usage, again.Usage)
			}
			if tt.streamHit {
				if len(chunks) < 3 {
					t.Fatalf("%d chunks: a replay is a stream", len(chunks))
				}
				for _, c := range chunks {
					if c.ID != orig.ID || c.Model != orig.Model || c.Object != "chat.completion.chunk" {
						t.Fatalf("chunk %+v", c)
					}
				}
			}
		})
	}
}

// TestCacheStreamHitWithoutUsage: a replay sends no usage chunk unless asked,
// and ends with [DONE].
func TestCacheStreamHitWithoutUsage(t *testing.T) {
	s, _ := cachedStack(t, stackOptions{})
	body := `{"model":"sim-small","stream":true,"messages":[{"role":"user","content":"List three rivers."}]}`
	postChat(t, s, s.secret, body)
	resp, out := postChat(t, s, s.secret, body)
	if resp.Header.Get(httpapi.HeaderCache) != semcache.KindHit || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("%q %q", resp.Header.Get(httpapi.HeaderCache), resp.Header.Get("Content-Type"))
	}
	if strings.Contains(out, `"usage"`) || !strings.HasSuffix(out, "data: [DONE]\n\n") {
		t.Fatalf("replay:\n%s", out)
	}
}

func TestCacheTenantIsolation(t *testing.T) {
	s, up := newStackWithTenants(t)
	p := ask("sim-small", "What is the capital of France?")
	want := int32(0)
	steps := []struct {
		name, secret, cache string
	}{
		{"tenant A asks", s.a, semcache.KindMiss},
		{"tenant A asks again", s.a, semcache.KindHit},
		{"key B, its own tenant, is never served A's answer", s.b, semcache.KindMiss},
		{"key C of shared tenant team asks", s.c, semcache.KindMiss},
		{"key D of the same tenant is served C's answer", s.d, semcache.KindHit},
	}
	for _, st := range steps {
		_, h := chat(t, s.stack, st.secret, p)
		if got := h.Get(httpapi.HeaderCache); got != st.cache {
			t.Fatalf("%s: x-tollgate-cache %q, want %q", st.name, got, st.cache)
		}
		if st.cache == semcache.KindMiss {
			want++
		}
		if n := up.calls.Load(); n != want {
			t.Fatalf("%s: upstream calls %d, want %d", st.name, n, want)
		}
	}
}

type tenantStack struct {
	*stack
	a, b, c, d string
}

func newStackWithTenants(t *testing.T) (*tenantStack, *counting) {
	t.Helper()
	ts := &tenantStack{}
	up := &counting{Provider: exactSim(t)}
	// Key ids are made by the store, so the tenants map is filled after the
	// keys exist (the gateway reads it per request).
	tenants := map[string]string{}
	ts.stack = newStack(t, stackOptions{models: simModels(up), cache: true, tenants: tenants})
	ts.a = ts.secret
	_, ts.b = ts.newKey()
	kc, c := ts.newKey()
	kd, d := ts.newKey()
	ts.c, ts.d = c, d
	tenants[kc.ID], tenants[kd.ID] = "team", "team"
	return ts, up
}

func TestCachePolicyAndControls(t *testing.T) {
	const q = `{"model":"sim-small","messages":[{"role":"user","content":"Name a prime number."}]%s}`
	tests := []struct {
		name    string
		extra   string // body members
		header  map[string]string
		cache   string // x-tollgate-cache of this request, made after the plain one was stored
		status  int
		message string
	}{
		{name: "plain request hits", cache: semcache.KindHit, status: 200},
		{name: "no-cache skips the lookup", header: map[string]string{"Cache-Control": "no-cache"}, cache: semcache.KindBypass, status: 200},
		{name: "max-age=0 is no-cache", header: map[string]string{"Cache-Control": "max-age=0"}, cache: semcache.KindBypass, status: 200},
		{name: "a generous max-age hits", header: map[string]string{"Cache-Control": "max-age=3600"}, cache: semcache.KindHit, status: 200},
		{name: "n > 1 bypasses", extra: `,"n":2`, cache: semcache.KindBypass, status: 200},
		{name: "logprobs bypass", extra: `,"logprobs":true`, cache: semcache.KindBypass, status: 200},
		{name: "high temperature bypasses", extra: `,"temperature":1.5`, cache: semcache.KindBypass, status: 200},
		{name: "bad max-age", header: map[string]string{"Cache-Control": "max-age=soon"}, status: 400, message: "invalid Cache-Control header"},
		{name: "bad threshold", header: map[string]string{"x-tollgate-cache-threshold": "1.5"}, status: 400, message: "invalid x-tollgate-cache-threshold header"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, up := cachedStack(t, stackOptions{})
			plain := fmt.Sprintf(q, "")
			postChat(t, s, s.secret, plain)
			req, _ := http.NewRequest("POST", s.srv.URL+"/v1/chat/completions", strings.NewReader(fmt.Sprintf(q, tt.extra)))
			req.Header.Set("Authorization", "Bearer "+s.secret)
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			if tt.status != 200 {
				var e struct {
					Error struct {
						Message, Type string
						Code, Param   *string
					}
				}
				if json.Unmarshal(body, &e) != nil || e.Error.Type != llm.TypeInvalidRequest || !strings.Contains(e.Error.Message, tt.message) {
					t.Fatalf("error body %s", body)
				}
				return
			}
			if got := resp.Header.Get(httpapi.HeaderCache); got != tt.cache {
				t.Fatalf("x-tollgate-cache %q, want %q (reason %q)", got, tt.cache, resp.Header.Get(httpapi.HeaderCacheReason))
			}
			if tt.cache == semcache.KindBypass && resp.Header.Get(httpapi.HeaderCacheReason) == "" {
				t.Fatal("a bypass says why")
			}
			wantCalls := int32(1)
			if tt.cache != semcache.KindHit {
				wantCalls = 2
			}
			if n := up.calls.Load(); n != wantCalls {
				t.Fatalf("upstream calls %d, want %d", n, wantCalls)
			}
		})
	}
}

func TestCacheNoStoreAndNoCacheStore(t *testing.T) {
	s, up := cachedStack(t, stackOptions{})
	send := func(body, cacheControl string) string {
		req, _ := http.NewRequest("POST", s.srv.URL+"/v1/chat/completions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+s.secret)
		if cacheControl != "" {
			req.Header.Set("Cache-Control", cacheControl)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Header.Get(httpapi.HeaderCache)
	}
	a := `{"model":"sim-small","messages":[{"role":"user","content":"alpha"}]}`
	b := `{"model":"sim-small","messages":[{"role":"user","content":"beta"}]}`
	steps := []struct {
		body, cc, want string
	}{
		{a, "no-store", semcache.KindMiss}, // answered, not kept
		{a, "", semcache.KindMiss},         // so this one misses (and is kept)
		{a, "", semcache.KindHit},
		{b, "no-cache", semcache.KindBypass}, // skips the lookup, still stores
		{b, "", semcache.KindHit},
	}
	for i, st := range steps {
		if got := send(st.body, st.cc); got != st.want {
			t.Fatalf("step %d (%s): %q, want %q", i, st.cc, got, st.want)
		}
	}
	if n := up.calls.Load(); n != 3 {
		t.Fatalf("upstream calls %d, want 3", n)
	}
}

func TestCacheMaxAge(t *testing.T) {
	now := time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s, _ := cachedStack(t, stackOptions{clock: clock})
	body := `{"model":"sim-small","messages":[{"role":"user","content":"gamma"}]}`
	postChat(t, s, s.secret, body)
	mu.Lock()
	now = now.Add(10 * time.Minute)
	mu.Unlock()
	for _, tt := range []struct {
		cc, want string
	}{{"max-age=300", semcache.KindMiss}, {"max-age=900", semcache.KindHit}} {
		req, _ := http.NewRequest("POST", s.srv.URL+"/v1/chat/completions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+s.secret)
		req.Header.Set("Cache-Control", tt.cc)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get(httpapi.HeaderCache); got != tt.want {
			t.Fatalf("%s: %q, want %q", tt.cc, got, tt.want)
		}
	}
}

// TestCacheHitsCostNothingButCountAgainstRateLimits: hits are recorded in the
// ledger at no cost with what they saved, are served with the budget spent,
// and count against the key's requests per minute.
func TestCacheHitsCostNothingButCountAgainstRateLimits(t *testing.T) {
	s, up := cachedStack(t, stackOptions{budgets: true})
	k, secret := s.newKey()
	ctx := context.Background()
	q := `{"model":"sim-small","max_tokens":5,"messages":[{"role":"user","content":"%s"}]}`
	if err := s.ledger.Accounts.SetPolicy(ctx, k.ID, budget.Policy{RPM: 3}); err != nil {
		t.Fatal(err)
	}
	r1, _ := postChat(t, s, secret, fmt.Sprintf(q, "delta"))
	if r1.StatusCode != 200 || r1.Header.Get(httpapi.HeaderCache) != semcache.KindMiss {
		t.Fatalf("miss: %d %q", r1.StatusCode, r1.Header.Get(httpapi.HeaderCache))
	}
	missCost := r1.Header.Get(httpapi.HeaderCost)
	// A daily budget below what was spent: every new call is refused.
	if err := s.ledger.Accounts.SetPolicy(ctx, k.ID, budget.Policy{RPM: 3, Limits: []budget.Limit{{Period: budget.Daily, Amount: 1}}}); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name   string
		text   string
		status int
		cache  string
	}{
		{"a new question does not fit the budget", "epsilon", 402, ""},
		{"a cached one is served anyway", "delta", 200, semcache.KindHit},
		{"the fourth request in the minute is rate limited (rpm 3), hit or not", "delta", 429, ""},
	}
	for _, st := range steps {
		resp, body := postChat(t, s, secret, fmt.Sprintf(q, st.text))
		if resp.StatusCode != st.status || resp.Header.Get(httpapi.HeaderCache) != st.cache {
			t.Fatalf("%s: %d %q: %s", st.name, resp.StatusCode, resp.Header.Get(httpapi.HeaderCache), body)
		}
		if st.status == 200 && (resp.Header.Get(httpapi.HeaderCost) != "0.000000" || resp.Header.Get(httpapi.HeaderCacheSaved) != missCost) {
			t.Fatalf("%s: cost %q saved %q (miss cost %q)", st.name, resp.Header.Get(httpapi.HeaderCost), resp.Header.Get(httpapi.HeaderCacheSaved), missCost)
		}
	}
	if n := up.calls.Load(); n != 1 {
		t.Fatalf("upstream calls %d, want 1", n)
	}
	if err := s.ledger.Store.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	rows, err := s.db.Query(`SELECT cache, cost, saved, status FROM budget_ledger WHERE key_id = ? ORDER BY id`, k.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var cache string
		var cost, saved, status int64
		if err := rows.Scan(&cache, &cost, &saved, &status); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s/%d/%v/%d", cache, status, cost > 0, saved))
	}
	saved, _ := budget.ParseUSD(missCost)
	want := []string{
		"miss/200/true/0",
		"miss/402/false/0",
		fmt.Sprintf("hit/200/false/%d", saved),
		"bypass/429/false/0",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("ledger rows\n got %v\nwant %v", got, want)
	}
}

// gatedSim is a simulator whose every call waits in its latency until
// release is closed; entered counts the calls that reached it.
func gatedSim(t *testing.T) (*providers.Sim, chan struct{}, *atomic.Int32) {
	release := make(chan struct{})
	entered := new(atomic.Int32)
	sim := newSim(t, providers.SimConfig{Latency: providers.Dist{Kind: "fixed", Value: time.Millisecond}, Sleep: func(ctx context.Context, d time.Duration) error {
		entered.Add(1)
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}})
	return sim, release, entered
}

// countedEmbedder counts the texts it embeds.
type countedEmbedder struct {
	semcache.Embedder
	texts atomic.Int64
}

func (c *countedEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	c.texts.Add(int64(len(texts)))
	return c.Embedder.Embed(ctx, texts)
}

// TestCacheCollapsesIdenticalMisses: identical concurrent misses make one
// upstream call; the others are served its answer as hits, and embed
// nothing (their leader embedded the same text). A semantic entry is
// stored first so that the scope is searched, not skipped as empty.
func TestCacheCollapsesIdenticalMisses(t *testing.T) {
	const earlier = 2 // calls that pass the gate: they fill the scope
	release := make(chan struct{})
	entered := new(atomic.Int32)
	sim := newSim(t, providers.SimConfig{Latency: providers.Dist{Kind: "fixed", Value: time.Millisecond}, Sleep: func(ctx context.Context, d time.Duration) error {
		if entered.Add(1) <= earlier {
			return nil
		}
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}})
	up := &counting{Provider: sim}
	emb := &countedEmbedder{Embedder: use.NewHashed(64)}
	s := newStack(t, stackOptions{models: simModels(up), cache: true, embedder: emb})
	chat(t, s, s.secret, ask("sim-small", "an earlier question about green tea"))
	chat(t, s, s.secret, ask("sim-small", "another earlier question about black coffee"))
	embedded, calls0 := emb.texts.Load(), up.calls.Load()
	const n = 6
	var wg sync.WaitGroup
	kinds := make(chan string, n)
	contents := make(chan string, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, body := postChat(t, s, s.secret, `{"model":"sim-small","messages":[{"role":"user","content":"same question"}]}`)
			if resp == nil || resp.StatusCode != 200 {
				t.Errorf("status %v: %s", resp, body)
				return
			}
			kinds <- resp.Header.Get(httpapi.HeaderCache)
			var c llm.ChatResponse
			json.Unmarshal([]byte(body), &c)
			contents <- c.Choices[0].Message.Content.String()
		}()
	}
	// Let every request reach the gateway before the one upstream call ends.
	deadline := time.Now().Add(10 * time.Second) // a hang guard
	for entered.Load() < earlier+1 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	close(release)
	wg.Wait()
	close(kinds)
	close(contents)
	count := map[string]int{}
	for k := range kinds {
		count[k]++
	}
	var first string
	for c := range contents {
		if first == "" {
			first = c
		}
		if c != first {
			t.Fatalf("answers differ: %q vs %q", c, first)
		}
	}
	if calls := up.calls.Load() - calls0; calls != 1 || count[semcache.KindMiss] != 1 || count[semcache.KindHit] != n-1 {
		t.Fatalf("upstream calls %d, kinds %v", calls, count)
	}
	// The leader embeds at most its text and the scope's entries (3 texts:
	// none with the gate at the shipped defaults, where no cached prompt
	// shares its words); the followers nothing.
	if got := emb.texts.Load() - embedded; got > earlier+1 {
		t.Fatalf("%d texts embedded for %d identical requests, want the leader's alone (at most %d)", got, n, earlier+1)
	}
}

func TestAdminCache(t *testing.T) {
	s, up := newStackWithTenants(t)
	for _, secret := range []string{s.a, s.b, s.c} {
		chat(t, s.stack, secret, ask("sim-small", "What is the capital of France?"))
	}
	chat(t, s.stack, s.a, ask("sim-small", "What is the capital of France?")) // a hit
	st, body, _ := adminDo(t, s.stack, "GET", "/admin/cache", "")
	stats, _ := body["stats"].(map[string]any)
	if st != 200 || stats["entries"] != 3.0 || stats["hits"] != 1.0 || stats["misses"] != 3.0 || stats["saved_micros"].(float64) <= 0 {
		t.Fatalf("GET /admin/cache: %d %v", st, body)
	}
	kb, _ := s.keys.Authenticate(s.b)
	steps := []struct {
		query   string
		deleted float64
	}{
		{"?tenant=team", 1},
		{"?key=" + kb.ID, 1},
		{"?model=sim-large", 0},
		{"", 1},
	}
	for _, stp := range steps {
		st, body, _ := adminDo(t, s.stack, "DELETE", "/admin/cache"+stp.query, "")
		if st != 200 || body["deleted"] != stp.deleted {
			t.Fatalf("DELETE %s: %d %v", stp.query, st, body)
		}
	}
	calls := up.calls.Load()
	if _, h := chat(t, s.stack, s.a, ask("sim-small", "What is the capital of France?")); h.Get(httpapi.HeaderCache) != semcache.KindMiss || up.calls.Load() != calls+1 {
		t.Fatalf("after DELETE: %q", h.Get(httpapi.HeaderCache))
	}
	if st, body, _ := adminDo(t, s.stack, "DELETE", "/admin/cache?tenant=x&key=y", ""); st != 400 {
		t.Fatalf("tenant and key: %d %v", st, body)
	}
	if st, _, _ := adminDo(t, newStack(t, stackOptions{}), "GET", "/admin/cache", ""); st != 404 {
		t.Fatalf("cache off: %d", st)
	}
}

func TestCacheSemanticHitThroughSDK(t *testing.T) {
	emb := testmodel.Open(t)
	up := &counting{Provider: exactSim(t)}
	s := newStack(t, stackOptions{models: simModels(up), cache: true, embedder: emb})
	orig, _ := chat(t, s, s.secret, ask("sim-small", "What is the capital of France?"))
	_, b := s.newKey()
	tests := []struct {
		name, secret, text, threshold, cache string
	}{
		{"a paraphrase is a semantic hit", s.secret, "What is France's capital?", "", semcache.KindSemanticHit},
		{"another tenant never gets it", b, "What is France's capital?", "", semcache.KindMiss},
		{"a near-miss is refused by the guard", s.secret, "What is the capital of Germany?", "", semcache.KindMiss},
		{"the client may tighten the threshold", s.secret, "What is France's capital?", "0.999", semcache.KindMiss},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var opts []option.RequestOption
			if tt.threshold != "" {
				opts = append(opts, option.WithHeader("x-tollgate-cache-threshold", tt.threshold), option.WithHeader("Cache-Control", "no-store"))
			}
			c, h := chat(t, s, tt.secret, ask("sim-small", tt.text), opts...)
			if got := h.Get(httpapi.HeaderCache); got != tt.cache {
				t.Fatalf("x-tollgate-cache %q, want %q (similarity %q, reason %q)", got, tt.cache, h.Get(httpapi.HeaderCacheSimilarity), h.Get(httpapi.HeaderCacheReason))
			}
			if tt.cache == semcache.KindSemanticHit {
				if c.Choices[0].Message.Content != orig.Choices[0].Message.Content || h.Get(httpapi.HeaderCacheID) == "" {
					t.Fatalf("semantic hit: %q, id %q", c.Choices[0].Message.Content, h.Get(httpapi.HeaderCacheID))
				}
				if sim := h.Get(httpapi.HeaderCacheSimilarity); sim == "" || sim >= "1" || sim < fmt.Sprintf("%.4f", semcache.DefaultThreshold) {
					t.Fatalf("similarity %q", sim)
				}
			}
		})
	}
	if n := up.calls.Load(); n != 4 {
		t.Fatalf("upstream calls %d, want 4 (the original and three misses)", n)
	}
}

// failing answers until down is set, then fails every call with a 503.
type failing struct {
	providers.Provider
	down atomic.Bool
}

func (f *failing) Chat(ctx context.Context, r *providers.Request) (*llm.ChatResponse, error) {
	if f.down.Load() {
		return nil, &llm.Error{Status: 503, Type: llm.TypeServer, Upstream: true, Retryable: true, Provider: "sim", Message: "overloaded"}
	}
	return f.Provider.Chat(ctx, r)
}

// TestCacheServesWhileUpstreamsAreDown: a hit needs no upstream.
func TestCacheServesWhileUpstreamsAreDown(t *testing.T) {
	up := &failing{Provider: exactSim(t)}
	s := newStack(t, stackOptions{models: simModels(up), cache: true})
	body := `{"model":"sim-small","messages":[{"role":"user","content":"zeta"}]}`
	if resp, _ := postChat(t, s, s.secret, body); resp.StatusCode != 200 {
		t.Fatalf("while up: %d", resp.StatusCode)
	}
	up.down.Store(true)
	for i := 0; i < 10; i++ { // enough failures to open the breaker too
		postChat(t, s, s.secret, fmt.Sprintf(`{"model":"sim-small","messages":[{"role":"user","content":"new %d"}]}`, i))
	}
	resp, out := postChat(t, s, s.secret, body)
	if resp.StatusCode != 200 || resp.Header.Get(httpapi.HeaderCache) != semcache.KindHit {
		t.Fatalf("cached answer while down: %d %q %s", resp.StatusCode, resp.Header.Get(httpapi.HeaderCache), out)
	}
}
