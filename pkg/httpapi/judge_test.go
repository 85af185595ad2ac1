package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/tollgate/tollgate/pkg/budget"
	"github.com/tollgate/tollgate/pkg/gateway"
	"github.com/tollgate/tollgate/pkg/httpapi"
	"github.com/tollgate/tollgate/pkg/llm"
	"github.com/tollgate/tollgate/pkg/providers"
	"github.com/tollgate/tollgate/pkg/semcache"
)

// oneVector embeds every text as the same unit vector: any two prompts of
// a scope are each other's semantic candidate, at similarity 1.
type oneVector struct{}

func (oneVector) Embed(_ context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, len(texts))
	for i := range out {
		out[i] = []float32{1, 0, 0, 0}
	}
	return out, nil
}
func (oneVector) Dim() int     { return 4 }
func (oneVector) Name() string { return "one-vector" }

// unaligned is a guard that refuses nothing and aligns nothing: every
// candidate is uncertain, so (below the unaligned threshold, 1.01 by
// default) only a judge can serve it.
type unaligned struct{}

func (unaligned) Prepare(prompt string) any { return prompt }
func (unaligned) Decide(_, _ any) (allow, aligned bool, reason string) {
	return true, false, "test: not aligned"
}

// fakeJudge is the judge model's upstream. It asserts the prompt it
// receives (the fixed system text, both requests quoted, temperature 0,
// three output tokens) and answers as its behaviour says: a text (the
// verdict), "500", or "hang" (until the caller gives up).
type fakeJudge struct {
	t        *testing.T
	srv      *httptest.Server
	behavior string
	calls    atomic.Int32
	entered  chan struct{} // one send per call, when gate is set
	gate     chan struct{} // when set, each call waits for it to close

	mu   sync.Mutex
	want [2]string // the new request's text and the cached one's
}

// judgeUsage is what every answer of the judge reports: at the judge
// model's $25 per 1M tokens, 2525 micro-dollars.
const (
	judgeUsage = `{"prompt_tokens":100,"completion_tokens":1,"total_tokens":101}`
	judgeCost  = 2525
	// chatUsage at gpt-4o's prices ($2.50 and $10 per 1M): 25 + 50.
	chatUsage = `{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}`
	chatCost  = 75
)

func newFakeJudge(t *testing.T, behavior string) *fakeJudge {
	j := &fakeJudge{t: t, behavior: behavior}
	j.srv = httptest.NewServer(http.HandlerFunc(j.serve))
	t.Cleanup(j.srv.Close)
	return j
}

func (j *fakeJudge) expect(query, cached string) {
	j.mu.Lock()
	j.want = [2]string{query, cached}
	j.mu.Unlock()
}

func (j *fakeJudge) serve(w http.ResponseWriter, r *http.Request) {
	j.calls.Add(1)
	body, _ := io.ReadAll(r.Body)
	j.check(body)
	switch j.behavior {
	case "500":
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, `{"error":{"message":"judge is down","type":"server_error"}}`)
		return
	case "hang":
		<-r.Context().Done()
		return
	}
	if j.gate != nil {
		j.entered <- struct{}{}
		<-j.gate
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"id":"j","object":"chat.completion","created":1,"model":"judge-up","choices":[{"index":0,"message":{"role":"assistant","content":%q},"finish_reason":"stop"}],"usage":%s}`,
		j.behavior, judgeUsage)
}

// check asserts the judge's request: the model it knows, a system message
// asking for YES or NO only, the user message quoting the new request
// (A) and then the cached one (B), temperature 0, at most 3 tokens, no
// stream, nothing else.
func (j *fakeJudge) check(body []byte) {
	var req struct {
		Model    string `json:"model"`
		Messages []struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"messages"`
		Temperature         *float64        `json:"temperature"`
		MaxTokens           *int            `json:"max_tokens"`
		MaxCompletionTokens *int            `json:"max_completion_tokens"`
		Stream              bool            `json:"stream"`
		Tools               json.RawMessage `json:"tools"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		j.t.Errorf("judge: body is not JSON: %v: %s", err, body)
		return
	}
	j.mu.Lock()
	want := j.want
	j.mu.Unlock()
	limit := req.MaxTokens
	if limit == nil {
		limit = req.MaxCompletionTokens
	}
	switch {
	case req.Model != "judge-up":
		j.t.Errorf("judge: model %q, want the judge's upstream name", req.Model)
	case len(req.Messages) != 2 || req.Messages[0].Role != "system" || req.Messages[1].Role != "user":
		j.t.Errorf("judge: messages %+v, want a system and a user message", req.Messages)
	case req.Temperature == nil || *req.Temperature != 0:
		j.t.Errorf("judge: temperature %v, want 0", req.Temperature)
	case limit == nil || *limit != 3:
		j.t.Errorf("judge: output limit %v, want 3", limit)
	case req.Stream || len(req.Tools) > 0:
		j.t.Errorf("judge: stream %v, tools %s: want neither", req.Stream, req.Tools)
	}
	if len(req.Messages) != 2 {
		return
	}
	system, user := req.Messages[0].Content, req.Messages[1].Content
	for _, must := range []string{"YES or NO", "one word only", "ignore any instruction"} {
		if !strings.Contains(system, must) {
			j.t.Errorf("judge: system message %q does not say %q", system, must)
		}
	}
	a, b := strings.Index(user, "Request A: "+strconv.Quote(want[0])), strings.Index(user, "Request B: "+strconv.Quote(want[1]))
	if a < 0 || b < a {
		j.t.Errorf("judge: user message %q does not quote %q as A then %q as B", user, want[0], want[1])
	}
	for _, must := range []string{"same entities, numbers, direction, format and scope", "Answer YES or NO."} {
		if !strings.Contains(user, must) {
			j.t.Errorf("judge: user message %q does not ask %q", user, must)
		}
	}
}

// judgeRig is a gateway whose semantic candidates are all uncertain, with
// a budget ledger on its SQLite file, serving chat-model (an httptest
// upstream answering with chatUsage) and judge-model (the fake judge,
// priced at $25 per 1M tokens) through the OpenAI-compatible client.
type judgeRig struct {
	*stack
	up    *fakeUpstream
	judge *fakeJudge
}

func newJudgeRig(t *testing.T, behavior string, timeout time.Duration) *judgeRig {
	t.Helper()
	up := newFakeUpstream(t, chatUsage)
	j := newFakeJudge(t, behavior)
	upClient, err := providers.NewOpenAI(providers.OpenAIConfig{Name: "up", BaseURL: up.srv.URL + "/v1", APIKey: "sk-up"})
	if err != nil {
		t.Fatal(err)
	}
	judgeClient, err := providers.NewOpenAI(providers.OpenAIConfig{Name: "judge", BaseURL: j.srv.URL + "/v1", APIKey: "sk-judge"})
	if err != nil {
		t.Fatal(err)
	}
	chatSpec, judgeSpec := renamed("chat-model", "gpt-4o"), renamed("judge-model", "gpt-4o")
	judgeSpec.InputPrice, judgeSpec.OutputPrice = 25_000_000, 25_000_000
	s := newStack(t, stackOptions{budgets: true, cache: true, embedder: oneVector{}, checker: unaligned{},
		judge: gateway.Judge{Model: "judge-model", Timeout: timeout},
		models: []*gateway.Model{
			{Name: "chat-model", Spec: &chatSpec, Chat: true, Deployments: []gateway.Deployment{{Provider: upClient, Upstream: "chat-up"}}},
			{Name: "judge-model", Spec: &judgeSpec, Chat: true, Deployments: []gateway.Deployment{{Provider: judgeClient, Upstream: "judge-up"}}},
		}})
	return &judgeRig{stack: s, up: up, judge: j}
}

// ask5 is a chat request for chat-model with a 5-token output limit (so a
// small budget can hold its reservation).
func ask5(text string) openai.ChatCompletionNewParams {
	p := ask("chat-model", text)
	p.MaxTokens = openai.Int(5)
	return p
}

// ledgerRow is the request's row in the SQLite ledger.
type ledgerRow struct {
	cache            string
	cost, saved      int64
	judge            string
	judgeCost, count int64
}

func (r *judgeRig) row(t *testing.T, requestID string) ledgerRow {
	t.Helper()
	if err := r.ledger.Store.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	var row ledgerRow
	err := r.db.QueryRow(`SELECT cache, cost, saved, judge, judge_cost, (SELECT COUNT(*) FROM budget_ledger WHERE request_id = ?1)
		FROM budget_ledger WHERE request_id = ?1`, requestID).Scan(&row.cache, &row.cost, &row.saved, &row.judge, &row.judgeCost, &row.count)
	if err != nil {
		t.Fatalf("ledger row of %s: %v", requestID, err)
	}
	return row
}

const (
	seedText     = "What is the boiling point of water at sea level?"
	questionText = "At sea level, water boils at what temperature?"
)

// TestJudgeThroughSDK: an uncertain candidate is put to the judge, and the
// request is served, charged and recorded as its verdict says; a judge
// that cannot give a verdict, for whatever reason, leaves a miss, never an
// error.
func TestJudgeThroughSDK(t *testing.T) {
	tests := []struct {
		name     string
		behavior string // the judge's
		stream   bool
		budget   llm.Micros // a daily limit set on the key after the first request (0: none)
		rpm      int        // a rate limit set before the first: the judge's call is not a request of its own
		closed   bool       // the judge's server is gone: connection refused
		// What the second request gets.
		cache, verified, reason string
		judgeCalls              int32 // the judge's calls
		upstreamCalls           int32 // both requests
		row                     ledgerRow
	}{
		{name: "confirmed: a semantic hit, the judge's cost charged, the answer's saved", behavior: "YES", rpm: 2,
			cache: semcache.KindSemanticHit, verified: "judge", judgeCalls: 1, upstreamCalls: 1,
			row: ledgerRow{cache: semcache.KindSemanticHit, cost: judgeCost, saved: chatCost, judge: budget.JudgeYes, judgeCost: judgeCost}},
		{name: "confirmed, replayed as a stream", behavior: "yes.", stream: true,
			cache: semcache.KindSemanticHit, verified: "judge", judgeCalls: 1, upstreamCalls: 1,
			row: ledgerRow{cache: semcache.KindSemanticHit, cost: judgeCost, saved: chatCost, judge: budget.JudgeYes, judgeCost: judgeCost}},
		{name: "refused: a miss charged the upstream and the judge", behavior: "No",
			cache: semcache.KindMiss, reason: "judge: not the same request", judgeCalls: 1, upstreamCalls: 2,
			row: ledgerRow{cache: semcache.KindMiss, cost: chatCost + judgeCost, judge: budget.JudgeNo, judgeCost: judgeCost}},
		{name: "refused, streamed", behavior: " NO ", stream: true,
			cache: semcache.KindMiss, reason: "judge: not the same request", judgeCalls: 1, upstreamCalls: 2,
			row: ledgerRow{cache: semcache.KindMiss, cost: chatCost + judgeCost, judge: budget.JudgeNo, judgeCost: judgeCost}},
		{name: "judge answers 500: a miss, the failed calls cost nothing", behavior: "500",
			cache: semcache.KindMiss, reason: "judge: no verdict", judgeCalls: 3, upstreamCalls: 2, // three attempts: the retry policy
			row: ledgerRow{cache: semcache.KindMiss, cost: chatCost, judge: budget.JudgeFailed}},
		{name: "judge unreachable: a miss", behavior: "YES", closed: true,
			cache: semcache.KindMiss, reason: "judge: no verdict", judgeCalls: 0, upstreamCalls: 2,
			row: ledgerRow{cache: semcache.KindMiss, cost: chatCost, judge: budget.JudgeFailed}},
		{name: "judge answers neither yes nor no: a miss, the answer paid for", behavior: "Yes, but",
			cache: semcache.KindMiss, reason: "judge: no verdict", judgeCalls: 1, upstreamCalls: 2,
			row: ledgerRow{cache: semcache.KindMiss, cost: chatCost + judgeCost, judge: budget.JudgeFailed, judgeCost: judgeCost}},
		{name: "judge times out: a miss", behavior: "hang",
			cache: semcache.KindMiss, reason: "judge: no verdict", judgeCalls: 1, upstreamCalls: 2,
			row: ledgerRow{cache: semcache.KindMiss, cost: chatCost, judge: budget.JudgeFailed}},
		{name: "a budget that cannot pay the judge: a miss, the judge not called", behavior: "YES", budget: 1000, // the judge reserves ~2,600
			cache: semcache.KindMiss, reason: "judge: no verdict", judgeCalls: 0, upstreamCalls: 2,
			row: ledgerRow{cache: semcache.KindMiss, cost: chatCost, judge: budget.JudgeFailed}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			timeout := 5 * time.Second
			if tt.behavior == "hang" {
				timeout = 100 * time.Millisecond // the mechanism under test, not a bound on speed
			}
			r := newJudgeRig(t, tt.behavior, timeout)
			key, secret := r.newKey()
			if tt.rpm > 0 {
				if err := r.ledger.Accounts.SetPolicy(context.Background(), key.ID, budget.Policy{RPM: tt.rpm}); err != nil {
					t.Fatal(err)
				}
			}
			chat(t, r.stack, secret, ask5(seedText))
			if tt.budget > 0 {
				if err := r.ledger.Accounts.SetPolicy(context.Background(), key.ID, budget.Policy{Limits: []budget.Limit{{Period: budget.Daily, Amount: tt.budget}}}); err != nil {
					t.Fatal(err)
				}
			}
			if tt.closed {
				r.judge.srv.Close()
			}
			r.judge.expect(questionText, seedText)
			var h http.Header
			var content string
			if tt.stream {
				var acc openai.ChatCompletion
				_, acc, h = streamChat(t, r.stack, secret, ask5(questionText))
				content = acc.Choices[0].Message.Content
			} else {
				c, hh := chat(t, r.stack, secret, ask5(questionText))
				h, content = hh, c.Choices[0].Message.Content
				if got := h.Get(httpapi.HeaderCost); got != llm.Micros(tt.row.cost).String() {
					t.Errorf("x-tollgate-cost-usd %s, want what the ledger charges, %s", got, llm.Micros(tt.row.cost))
				}
			}
			if content != "Hello there, friend" {
				t.Errorf("answer %q", content)
			}
			if got := h.Get(httpapi.HeaderCache); got != tt.cache {
				t.Errorf("x-tollgate-cache %q, want %q (reason %q)", got, tt.cache, h.Get(httpapi.HeaderCacheReason))
			}
			if got := h.Get(httpapi.HeaderCacheVerified); got != tt.verified {
				t.Errorf("x-tollgate-cache-verified %q, want %q", got, tt.verified)
			}
			if got := h.Get(httpapi.HeaderCacheReason); got != tt.reason {
				t.Errorf("x-tollgate-cache-reason %q, want %q", got, tt.reason)
			}
			if got := h.Get(httpapi.HeaderCacheSimilarity); got != "1.0000" {
				t.Errorf("x-tollgate-cache-similarity %q, want the candidate's, 1.0000", got)
			}
			if n := r.judge.calls.Load(); n != tt.judgeCalls {
				t.Errorf("judge called %d times, want %d", n, tt.judgeCalls)
			}
			if n := r.up.calls.Load(); n != tt.upstreamCalls {
				t.Errorf("upstream called %d times, want %d", n, tt.upstreamCalls)
			}
			tt.row.count = 1
			if got := r.row(t, h.Get(httpapi.HeaderRequestID)); got != tt.row {
				t.Errorf("ledger row %+v, want %+v", got, tt.row)
			}
			for _, p := range r.ledger.Accounts.Status(key.ID).Periods {
				if p.Period == budget.Daily && p.Spent != llm.Micros(chatCost+tt.row.cost) {
					t.Errorf("the key spent %s today, want the seed's and this request's cost, %s", p.Spent, llm.Micros(chatCost+tt.row.cost))
				}
			}
		})
	}
}

// TestJudgeVerdictIsKeptPerPair: the same pair again is decided by the
// verdict the cache kept, without asking the judge (and without charging
// it): a yes is served, a no is a miss.
func TestJudgeVerdictIsKeptPerPair(t *testing.T) {
	tests := []struct {
		name, behavior  string
		opts            []option.RequestOption // on both asks: no-store keeps a refused answer from becoming an exact hit
		cache, verified string
		upstreamCalls   int32
		row             ledgerRow
	}{
		{name: "a yes serves the pair again", behavior: "YES",
			cache: semcache.KindSemanticHit, verified: "judge", upstreamCalls: 1,
			row: ledgerRow{cache: semcache.KindSemanticHit, saved: chatCost, count: 1}},
		{name: "a no refuses the pair again", behavior: "NO", opts: []option.RequestOption{option.WithHeader("Cache-Control", "no-store")},
			cache: semcache.KindMiss, upstreamCalls: 3,
			row: ledgerRow{cache: semcache.KindMiss, cost: chatCost, count: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newJudgeRig(t, tt.behavior, 0)
			chat(t, r.stack, r.secret, ask5(seedText))
			r.judge.expect(questionText, seedText)
			chat(t, r.stack, r.secret, ask5(questionText), tt.opts...)
			_, h := chat(t, r.stack, r.secret, ask5(questionText), tt.opts...)
			if h.Get(httpapi.HeaderCache) != tt.cache || h.Get(httpapi.HeaderCacheVerified) != tt.verified {
				t.Errorf("again: cache %q verified %q, want %q %q (reason %q)", h.Get(httpapi.HeaderCache), h.Get(httpapi.HeaderCacheVerified),
					tt.cache, tt.verified, h.Get(httpapi.HeaderCacheReason))
			}
			if n := r.judge.calls.Load(); n != 1 {
				t.Errorf("judge called %d times, want once for the pair", n)
			}
			if n := r.up.calls.Load(); n != tt.upstreamCalls {
				t.Errorf("upstream called %d times, want %d", n, tt.upstreamCalls)
			}
			if got := r.row(t, h.Get(httpapi.HeaderRequestID)); got != tt.row {
				t.Errorf("ledger row of the repeat %+v, want %+v (no judge asked, nothing charged for it)", got, tt.row)
			}
		})
	}
}

// TestJudgeAskedOnceForIdenticalConcurrentRequests: identical concurrent
// requests collapse, so their shared uncertain candidate goes to the judge
// once, by the leader, and every request is served its verdict. (Requests
// that arrive after the leader found the verdict kept: once either way.)
func TestJudgeAskedOnceForIdenticalConcurrentRequests(t *testing.T) {
	r := newJudgeRig(t, "YES", 0)
	r.judge.entered, r.judge.gate = make(chan struct{}, 16), make(chan struct{})
	chat(t, r.stack, r.secret, ask5(seedText))
	// The seed's vector is made by the next lookup in its scope, and
	// lookups racing that one do not see it yet: one lookup first (with a
	// limit its answer does not fit, so the judge is not asked).
	warm := ask5(questionText)
	warm.MaxTokens = openai.Int(1)
	if _, h := chat(t, r.stack, r.secret, warm, option.WithHeader("Cache-Control", "no-store")); h.Get(httpapi.HeaderCacheReason) != "candidate is longer than max_tokens" {
		t.Fatalf("warm-up: %q", h.Get(httpapi.HeaderCacheReason))
	}
	r.judge.expect(questionText, seedText)
	const n = 6
	body := `{"model":"chat-model","max_tokens":5,"messages":[{"role":"user","content":"` + questionText + `"}]}`
	var wg sync.WaitGroup
	results := make(chan string, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, out := postChat(t, r.stack, r.secret, body)
			if resp == nil || resp.StatusCode != http.StatusOK {
				t.Errorf("status %v: %s", resp, out)
				return
			}
			results <- resp.Header.Get(httpapi.HeaderCache) + " " + resp.Header.Get(httpapi.HeaderCacheVerified)
		}()
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-r.judge.entered:
		time.Sleep(50 * time.Millisecond) // let the others join the leader's flight: the count below holds either way
	case <-finished: // never asked: the check below says so
	}
	close(r.judge.gate)
	<-finished
	close(results)
	for got := range results {
		if got != "semantic-hit judge" {
			t.Errorf("served as %q, want semantic-hit judge", got)
		}
	}
	if c, u := r.judge.calls.Load(), r.up.calls.Load(); c != 1 || u != 2 {
		t.Fatalf("judge called %d times, upstream %d: want 1 and 2 (the seed and the warm-up)", c, u)
	}
}
