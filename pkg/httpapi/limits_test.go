package httpapi_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/tollgate/tollgate/pkg/budget"
	"github.com/tollgate/tollgate/pkg/llm"
	"github.com/tollgate/tollgate/pkg/providers"
)

// recording remembers the output limit of every call it gets.
type recording struct {
	providers.Provider
	mu     sync.Mutex
	limits []int
}

func (r *recording) note(req *providers.Request) {
	r.mu.Lock()
	r.limits = append(r.limits, req.MaxTokens)
	r.mu.Unlock()
}

func (r *recording) Chat(ctx context.Context, req *providers.Request) (*llm.ChatResponse, error) {
	r.note(req)
	return r.Provider.Chat(ctx, req)
}

func (r *recording) Stream(ctx context.Context, req *providers.Request) (providers.Stream, error) {
	r.note(req)
	return r.Provider.Stream(ctx, req)
}

func (r *recording) last() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.limits) == 0 {
		return -1
	}
	return r.limits[len(r.limits)-1]
}

// TestEveryCallCarriesTheReservedOutputLimit: the upstream is always told
// the most it may generate per choice, the same figure the budget
// reserved: the client's cap, else the model's own limit, never more than
// the context window leaves.
func TestEveryCallCarriesTheReservedOutputLimit(t *testing.T) {
	long := strings.Repeat("word ", 30_000) // ~30k tokens of sim-small's 32,768 window
	tests := []struct {
		name, body string
		want       func(int) bool
		wantText   string
	}{
		{"the client's max_tokens", `{"model":"sim-small","max_tokens":50,"messages":[{"role":"user","content":"hi"}]}`, func(n int) bool { return n == 50 }, "50"},
		{"the client's max_completion_tokens, streamed", `{"model":"sim-small","stream":true,"max_completion_tokens":70,"messages":[{"role":"user","content":"hi"}]}`, func(n int) bool { return n == 70 }, "70"},
		{"none: the model's output limit", `{"model":"sim-small","messages":[{"role":"user","content":"hi"}]}`, func(n int) bool { return n == 8_192 }, "8192"},
		{"none, long prompt: what the window leaves", `{"model":"sim-small","messages":[{"role":"user","content":"` + long + `"}]}`, func(n int) bool { return n > 0 && n < 8_192 }, "under 8192"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := &recording{Provider: newSim(t, providers.SimConfig{})}
			s := newStack(t, stackOptions{models: simModels(up), budgets: true})
			resp, got := postChat(t, s, s.secret, tt.body)
			if resp == nil || resp.StatusCode != 200 {
				t.Fatalf("%v: %s", resp, got)
			}
			if n := up.last(); !tt.want(n) {
				t.Fatalf("the upstream was sent an output limit of %d, want %s", n, tt.wantText)
			}
		})
	}
}

// TestMaxTokensAboveTheModelsLimitIsRefusedOnEveryPath: a cap the model
// cannot honour is a 400, even when the cache holds the prompt's answer.
func TestMaxTokensAboveTheModelsLimitIsRefusedOnEveryPath(t *testing.T) {
	s, up := cachedStack(t, stackOptions{})
	if resp, got := postChat(t, s, s.secret, `{"model":"sim-small","messages":[{"role":"user","content":"What is a gateway?"}]}`); resp.StatusCode != 200 {
		t.Fatalf("priming: %d %s", resp.StatusCode, got)
	}
	tests := []struct {
		name, body string
	}{
		{"a completion", `{"model":"sim-small","max_tokens":1000000,"messages":[{"role":"user","content":"What is a gateway?"}]}`},
		{"a stream", `{"model":"sim-small","stream":true,"max_completion_tokens":1000000,"messages":[{"role":"user","content":"What is a gateway?"}]}`},
		{"2^62 with n=2", `{"model":"sim-small","max_tokens":4611686018427387904,"n":2,"messages":[{"role":"user","content":"What is a gateway?"}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, got := postChat(t, s, s.secret, tt.body)
			if resp.StatusCode != 400 || !strings.Contains(got, `"param":"max_tokens"`) {
				t.Fatalf("%d %s, want a 400 on max_tokens", resp.StatusCode, got)
			}
		})
	}
	if n := up.calls.Load(); n != 1 {
		t.Fatalf("upstream calls %d, want only the priming one", n)
	}
}

// TestAnHonestStreamAtItsLimitIsNotCut: chunk-by-chunk counts overcount,
// so the stream guard counts the whole text before it stops anything.
func TestAnHonestStreamAtItsLimitIsNotCut(t *testing.T) {
	s := newStack(t, stackOptions{models: simModels(newSim(t, providers.SimConfig{})), budgets: true})
	k, secret := s.newKey()
	if err := s.ledger.Accounts.SetPolicy(context.Background(), k.ID, budget.Policy{Limits: []budget.Limit{{Period: budget.Daily, Amount: 1_000_000}}}); err != nil {
		t.Fatal(err)
	}
	for _, limit := range []string{"1", "16", "200", "2000"} {
		resp, got := postChat(t, s, secret, `{"model":"sim-small","stream":true,"max_tokens":`+limit+`,"messages":[{"role":"user","content":"tell me a long story about gateways"}]}`)
		if resp.StatusCode != 200 || !strings.HasSuffix(strings.TrimSpace(got), "data: [DONE]") {
			t.Fatalf("max_tokens %s: %d, body ends %q", limit, resp.StatusCode, got[max(0, len(got)-200):])
		}
	}
}

// endless streams words for ever, whatever output limit it is sent.
type endless struct{ providers.Provider }

func (e *endless) Stream(ctx context.Context, req *providers.Request) (providers.Stream, error) {
	return &endlessStream{ctx: ctx}, nil
}

type endlessStream struct {
	ctx context.Context
	n   int
}

func (e *endlessStream) Recv() (*llm.ChatChunk, error) {
	if err := e.ctx.Err(); err != nil {
		return nil, err
	}
	e.n++
	text := "lorem ipsum dolor sit amet "
	return &llm.ChatChunk{ID: "x", Object: "chat.completion.chunk", Model: "sim-small",
		Choices: []llm.ChunkChoice{{Index: 0, Delta: llm.Delta{Content: &text}}}}, nil
}

func (e *endlessStream) Close() error { return nil }

// TestAStreamPastItsReservationIsStopped: an upstream that ignores the
// output limit it was sent is cut once it has generated more than was
// reserved, and the request is charged for what it generated, which stays
// within one chunk of the reservation.
func TestAStreamPastItsReservationIsStopped(t *testing.T) {
	s := newStack(t, stackOptions{models: simModels(&endless{Provider: newSim(t, providers.SimConfig{})}), budgets: true})
	k, secret := s.newKey()
	if err := s.ledger.Accounts.SetPolicy(context.Background(), k.ID, budget.Policy{Limits: []budget.Limit{{Period: budget.Daily, Amount: 1_000_000}}}); err != nil {
		t.Fatal(err)
	}
	resp, got := postChat(t, s, secret, `{"model":"sim-small","stream":true,"max_tokens":40,"messages":[{"role":"user","content":"write for ever"}]}`)
	events := sseData(got)
	if resp.StatusCode != 200 || len(events) < 2 || strings.Contains(got, "[DONE]") || !strings.Contains(events[len(events)-1], "output_limit_exceeded") {
		t.Fatalf("%d, events %q: want chunks then an output_limit_exceeded error event", resp.StatusCode, events)
	}
	if err := s.ledger.Store.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	var completion int
	var cost int64
	id := resp.Header.Get("x-tollgate-request-id")
	if err := s.db.QueryRow(`SELECT completion_tokens, cost FROM budget_ledger WHERE request_id = ?`, id).Scan(&completion, &cost); err != nil {
		t.Fatal(err)
	}
	// Stopped past the 40 reserved plus the margin for tokenizer
	// differences (64), within one chunk.
	if completion <= 40+64 || completion > 40+64+10 || cost <= 0 {
		t.Fatalf("charged %d completion tokens (%d micros), want just over the 40 reserved and the 64-token margin", completion, cost)
	}
}
