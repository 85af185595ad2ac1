package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/tollgate/tollgate/pkg/budget"
	"github.com/tollgate/tollgate/pkg/gateway"
	"github.com/tollgate/tollgate/pkg/llm"
	"github.com/tollgate/tollgate/pkg/providers"
	"github.com/tollgate/tollgate/pkg/router"
)

// greedyUpstream is an OpenAI-compatible upstream that ignores the output
// limit it is sent and bills 100,000 completion tokens for every answer,
// JSON or stream. It records the output caps it was sent.
type greedyUpstream struct {
	srv  *httptest.Server
	hits atomic.Int32
	mu   sync.Mutex
	caps []string // per request: the cap members it got, e.g. "max_tokens=100"
}

const greedyUsage = `{"prompt_tokens":12,"completion_tokens":100000,"total_tokens":100012}`

func newGreedyUpstream(t *testing.T) *greedyUpstream {
	g := &greedyUpstream{}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.hits.Add(1)
		body, _ := io.ReadAll(r.Body)
		var m map[string]json.RawMessage
		if err := json.Unmarshal(body, &m); err != nil {
			t.Errorf("upstream got invalid JSON: %s", body)
		}
		var caps []string
		for _, f := range []string{"max_tokens", "max_completion_tokens"} {
			if v, ok := m[f]; ok {
				caps = append(caps, f+"="+string(v))
			}
		}
		g.mu.Lock()
		g.caps = append(g.caps, strings.Join(caps, ","))
		g.mu.Unlock()
		if string(m["stream"]) == "true" {
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"up\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"on and on\"},\"finish_reason\":null}]}\n\n")
			fmt.Fprint(w, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"up\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n")
			fmt.Fprintf(w, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"up\",\"choices\":[],\"usage\":%s}\n\n", greedyUsage)
			fmt.Fprint(w, "data: [DONE]\n\n")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"c","object":"chat.completion","created":1,"model":"up","choices":[{"index":0,"message":{"role":"assistant","content":"on and on"},"finish_reason":"stop"}],"usage":%s}`, greedyUsage)
	}))
	t.Cleanup(g.srv.Close)
	return g
}

func (g *greedyUpstream) sent() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.caps...)
}

// overrunModel is gpt-4o-mini's price ($0.15 in, $0.60 out per 1M
// tokens) and limits (16,384 out, 128,000 window) under another name.
func overrunModel(name string) router.Model {
	m := renamed(name, "gpt-4o-mini")
	m.CachedInputPrice = router.PriceUnknown
	return m
}

// greedyActual is what each greedy answer costs: 12 × $0.15/1M +
// 100,000 × $0.60/1M = 1.8 + 60,000 µ$, rounded up.
const greedyActual llm.Micros = 60_002

func limitKey(t *testing.T, s *stack, limit llm.Micros) (id, secret string) {
	t.Helper()
	k, secret := s.newKey()
	if err := s.ledger.Accounts.SetPolicy(context.Background(), k.ID, budget.Policy{Limits: []budget.Limit{{Period: budget.Daily, Amount: limit}}}); err != nil {
		t.Fatal(err)
	}
	return k.ID, secret
}

// TestUpstreamOverrunIsBounded: an upstream that ignores max_tokens and
// bills 100,000 tokens ($0.06) for every answer, against a $0.01 daily
// limit. The upstream is sent the reserved limit; the first answer is
// charged in full (an overspend alert fires); every later request is
// refused with a 402 before reaching the upstream, so the spend stays
// within the limit plus the overage of the responses that were in flight,
// instead of growing with every request.
func TestUpstreamOverrunIsBounded(t *testing.T) {
	const limit llm.Micros = 10_000
	tests := []struct {
		name      string
		maxTokens int // 0: the client sets none
		stream    bool
		inFlight  int    // requests sent at once in the first round
		wantCap   string // what the upstream is sent
	}{
		{name: "client max_tokens", maxTokens: 100, inFlight: 1, wantCap: "max_tokens=100"},
		// No client cap: the model's output limit is reserved (16,384 ×
		// $0.60/1M ≈ $0.0098, within $0.01) and sent.
		{name: "no client cap", inFlight: 1, wantCap: "max_tokens=16384"},
		{name: "stream", maxTokens: 100, stream: true, inFlight: 1, wantCap: "max_tokens=100"},
		{name: "eight in flight", maxTokens: 100, inFlight: 8, wantCap: "max_tokens=100"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := newGreedyUpstream(t)
			client, err := providers.NewOpenAI(providers.OpenAIConfig{Name: "greedy", BaseURL: up.srv.URL + "/v1", APIKey: "sk-x"})
			if err != nil {
				t.Fatal(err)
			}
			spec := overrunModel("greedy")
			s := newStack(t, stackOptions{budgets: true, models: []*gateway.Model{{Name: "greedy", Spec: &spec, Chat: true,
				Deployments: []gateway.Deployment{{Provider: client, Upstream: "greedy"}}}}})
			keyID, secret := limitKey(t, s, limit)

			body := `{"model":"greedy","messages":[{"role":"user","content":"Tell me everything."}]`
			if tt.maxTokens > 0 {
				body += fmt.Sprintf(`,"max_tokens":%d`, tt.maxTokens)
			}
			if tt.stream {
				body += `,"stream":true,"stream_options":{"include_usage":true}`
			}
			body += "}"

			// The first round: tt.inFlight requests at once, each within
			// the limit when admitted; each overruns.
			var wg sync.WaitGroup
			var ok atomic.Int32
			for range tt.inFlight {
				wg.Add(1)
				go func() {
					defer wg.Done()
					resp, b := postChat(t, s, secret, body)
					switch {
					case resp == nil:
					case resp.StatusCode == 200:
						ok.Add(1)
					case resp.StatusCode != 402:
						t.Errorf("first round: %d %s", resp.StatusCode, b)
					}
				}()
			}
			wg.Wait()
			admitted := int(ok.Load())
			if admitted < 1 {
				t.Fatal("no request of the first round was served")
			}
			// Then ten more, one after another: all refused, none reaches
			// the upstream.
			for i := range 10 {
				resp, b := postChat(t, s, secret, body)
				if resp == nil {
					t.FailNow()
				}
				if resp.StatusCode != 402 || !strings.Contains(b, "budget_exceeded") {
					t.Fatalf("request %d after the overrun: %d %s", i, resp.StatusCode, b)
				}
			}
			if hits := int(up.hits.Load()); hits != admitted {
				t.Errorf("upstream called %d times, want %d (the admitted requests only)", hits, admitted)
			}
			for i, c := range up.sent() {
				if c != tt.wantCap {
					t.Errorf("upstream request %d carried %q, want %q", i, c, tt.wantCap)
				}
			}

			// Every admitted answer is charged in full, not capped at its
			// reservation, and the spend is the limit plus at most one
			// overage per request in flight.
			if err := s.ledger.Store.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			st := s.ledger.Accounts.Status(keyID)
			var spent llm.Micros
			for _, p := range st.Periods {
				if p.Period == budget.Daily {
					spent = p.Spent
				}
			}
			if want := llm.Micros(admitted) * greedyActual; spent != want {
				t.Errorf("spent %s, want %s (%d answers at %s)", spent, want, admitted, greedyActual)
			}
			// Each reservation was at least its output cap's price.
			capPrice := spec.EstimateCost(0, capTokens(tt.wantCap)).Micros
			overage := greedyActual - capPrice
			if bound := limit + llm.Micros(admitted)*overage; spent > bound {
				t.Errorf("spent %s > limit %s + %d × overage %s", spent, limit, admitted, overage)
			}
			// One overspend alert per overrun.
			var alerts int
			if err := s.db.QueryRow(`SELECT COUNT(*) FROM budget_alerts WHERE key_id = ? AND event = 'overspend'`, keyID).Scan(&alerts); err != nil {
				t.Fatal(err)
			}
			if alerts != admitted {
				t.Errorf("%d overspend alerts, want %d", alerts, admitted)
			}
		})
	}
}

func capTokens(c string) int {
	var n int
	if _, v, ok := strings.Cut(c, "="); ok {
		fmt.Sscan(v, &n)
	}
	return n
}

// TestHugeMaxTokensIsNeverAdmitted: max_tokens = 2^62 with n = 2 on a
// model with no output limit and no window must not overflow the
// reservation into something a $0.001 budget affords, even for a key that
// has already spent some of it; the same request without max_tokens
// reserves 4,096 tokens per choice ($0.066) and is refused too.
func TestHugeMaxTokensIsNeverAdmitted(t *testing.T) {
	// $8 per 1M output tokens: 2^63-1 tokens price past math.MaxInt64
	// micro-dollars, so the reservation saturates.
	spec := overrunModel("boundless")
	spec.MaxOutputTokens, spec.MaxInputTokens, spec.OutputPrice = 0, 0, 8_000_000
	s := newStack(t, stackOptions{budgets: true, models: []*gateway.Model{{Name: "boundless", Spec: &spec, Chat: true,
		Deployments: []gateway.Deployment{{Provider: exactSim(t), Upstream: "boundless"}}}}})
	_, secret := limitKey(t, s, 1_000)

	// A little spend first, so a wrapped reservation would have to wrap
	// spent + reserved + amount too.
	if resp, b := postChat(t, s, secret, `{"model":"boundless","max_tokens":1,"messages":[{"role":"user","content":"hi"}]}`); resp == nil || resp.StatusCode != 200 {
		t.Fatalf("small request: %v %s", resp, b)
	}
	tests := []struct {
		name string
		body string
	}{
		{"max_tokens 2^62, n 2", `{"model":"boundless","max_tokens":4611686018427387904,"n":2,"messages":[{"role":"user","content":"hi"}]}`},
		{"max_completion_tokens 2^62, n 2", `{"model":"boundless","max_completion_tokens":4611686018427387904,"n":2,"messages":[{"role":"user","content":"hi"}]}`},
		{"max_tokens 2^63-1, n 128", `{"model":"boundless","max_tokens":9223372036854775807,"n":128,"messages":[{"role":"user","content":"hi"}]}`},
		{"stream, max_tokens 2^62, n 2", `{"model":"boundless","stream":true,"max_tokens":4611686018427387904,"n":2,"messages":[{"role":"user","content":"hi"}]}`},
		{"no max_tokens, n 2", `{"model":"boundless","n":2,"messages":[{"role":"user","content":"hi"}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := postChat(t, s, secret, tt.body)
			if resp == nil {
				t.FailNow()
			}
			if resp.StatusCode != 400 && resp.StatusCode != 402 {
				t.Fatalf("status %d, want 400 or 402: %s", resp.StatusCode, b)
			}
			var env struct {
				Error struct{ Type, Code, Message string }
			}
			if err := json.Unmarshal([]byte(b), &env); err != nil || env.Error.Message == "" {
				t.Fatalf("not an OpenAI error envelope: %s", b)
			}
		})
	}
}
