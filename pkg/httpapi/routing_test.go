package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/tollgate/tollgate/pkg/gateway"
	"github.com/tollgate/tollgate/pkg/keys"
	"github.com/tollgate/tollgate/pkg/llm"
	"github.com/tollgate/tollgate/pkg/providers"
	"github.com/tollgate/tollgate/pkg/router"
)

// counting wraps a provider and counts its calls.
type counting struct {
	providers.Provider
	calls atomic.Int32
}

func (c *counting) Chat(ctx context.Context, r *providers.Request) (*llm.ChatResponse, error) {
	c.calls.Add(1)
	return c.Provider.Chat(ctx, r)
}

func (c *counting) Stream(ctx context.Context, r *providers.Request) (providers.Stream, error) {
	c.calls.Add(1)
	return c.Provider.Stream(ctx, r)
}

// twoModelStack serves route "ha" (priority: first, then second) from two
// providers.
func twoModelStack(t *testing.T, first, second providers.Provider, route router.Route, o stackOptions) *stack {
	a, b := renamed("model-a", "sim-small"), renamed("model-b", "sim-large")
	route.Name, route.Candidates = "ha", []string{"model-a", "model-b"}
	o.routes = routesOver(t, []router.Model{a, b}, route)
	o.models = []*gateway.Model{
		{Name: "model-a", Spec: &a, Chat: true, Deployments: []gateway.Deployment{{Provider: first, Upstream: "model-a"}}},
		{Name: "model-b", Spec: &b, Chat: true, Deployments: []gateway.Deployment{{Provider: second, Upstream: "model-b"}}},
	}
	return newStack(t, o)
}

func ask(model, text string) openai.ChatCompletionNewParams {
	return openai.ChatCompletionNewParams{Model: model, Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(text)}}
}

func TestFlakyProviderWithHealthyFallbackHasNoClientErrors(t *testing.T) {
	flaky := &counting{Provider: newSim(t, providers.SimConfig{Name: "flaky", Seed: 7, ErrorRate: 0.5, ErrorKinds: []string{providers.SimError500, providers.SimError503}})}
	steady := &counting{Provider: newSim(t, providers.SimConfig{Name: "steady"})}
	// A breaker that never opens, so every request exercises retries and fallbacks.
	breakers, _ := router.NewBreakers(router.BreakerConfig{Default: router.BreakerSettings{ConsecutiveFailures: 1 << 30, MinRequests: 1 << 30}})
	s := twoModelStack(t, flaky, steady, router.Route{Strategy: router.StrategyPriority}, stackOptions{breakers: breakers})
	var h http.Header
	client := s.client(s.secret, headerCapture(&h))
	fallbacks := 0
	for i := 0; i < 60; i++ {
		resp, err := client.Chat.Completions.New(context.Background(), ask("ha", "question number "+string(rune('a'+i%26))))
		if err != nil {
			t.Fatalf("request %d failed: %v", i, err)
		}
		if resp.Choices[0].Message.Content == "" {
			t.Fatal("empty answer")
		}
		if h.Get("x-tollgate-model") == "model-b" {
			fallbacks++
			if !strings.Contains(h.Get("x-tollgate-fallback"), "flaky/model-a") {
				t.Errorf("fallback without a reason: %q", h.Get("x-tollgate-fallback"))
			}
		}
	}
	// 50% failures with 3 attempts: about 1 in 8 requests needs the fallback.
	if flaky.calls.Load() <= 60 || fallbacks == 0 || steady.calls.Load() != int32(fallbacks) {
		t.Fatalf("flaky calls %d, fallbacks %d, steady calls %d: retries or fallbacks not exercised", flaky.calls.Load(), fallbacks, steady.calls.Load())
	}
}

func TestHangingProviderFallsBackWithinTheRouteTimeout(t *testing.T) {
	hang := newSim(t, providers.SimConfig{Name: "hang", ErrorRate: 1, ErrorKinds: []string{providers.SimErrorTimeout},
		Sleep: func(ctx context.Context, d time.Duration) error { <-ctx.Done(); return ctx.Err() }})
	steady := newSim(t, providers.SimConfig{Name: "steady"})
	// The route allows 2s in all; each attempt gets at most half of what is
	// left while another candidate remains, so the hang costs 1s, not all,
	// and a timed-out deployment is not retried.
	s := twoModelStack(t, hang, steady, router.Route{Strategy: router.StrategyPriority, Timeout: 2 * time.Second}, stackOptions{})
	var h http.Header
	for _, stream := range []bool{false, true} {
		client := s.client(s.secret, headerCapture(&h))
		if stream {
			st := client.Chat.Completions.NewStreaming(context.Background(), ask("ha", "hello"))
			for st.Next() {
			}
			if err := st.Err(); err != nil {
				t.Fatal(err)
			}
		} else if _, err := client.Chat.Completions.New(context.Background(), ask("ha", "hello")); err != nil {
			t.Fatal(err)
		}
		if h.Get("x-tollgate-model") != "model-b" || !strings.Contains(h.Get("x-tollgate-fallback"), "504 upstream_timeout") {
			t.Fatalf("stream=%v: model %q fallback %q", stream, h.Get("x-tollgate-model"), h.Get("x-tollgate-fallback"))
		}
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	var calls atomic.Int32
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.Header().Set("Retry-After", "3")
			w.WriteHeader(http.StatusTooManyRequests)
			io.WriteString(w, `{"error":{"message":"slow down","type":"rate_limit_error"}}`)
			return
		}
		io.WriteString(w, `{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`)
	}))
	defer upstream.Close()
	up, _ := providers.NewOpenAI(providers.OpenAIConfig{Name: "openai", BaseURL: upstream.URL + "/v1"})
	var (
		mu    sync.Mutex
		waits []time.Duration
	)
	s := newStack(t, stackOptions{
		models: []*gateway.Model{{Name: "gpt-4o-mini", Spec: spec("gpt-4o-mini"), Chat: true, Deployments: []gateway.Deployment{{Provider: up, Upstream: "gpt-4o-mini"}}}},
		sleep: func(ctx context.Context, d time.Duration) error {
			mu.Lock()
			waits = append(waits, d)
			mu.Unlock()
			return nil
		},
	})
	var h http.Header
	if _, err := s.client(s.secret, headerCapture(&h)).Chat.Completions.New(context.Background(), ask("gpt-4o-mini", "hi")); err != nil {
		t.Fatal(err)
	}
	if len(waits) != 1 || waits[0] < 3*time.Second || h.Get("x-tollgate-attempts") != "2" {
		t.Fatalf("waits %v attempts %s: want one wait of at least the Retry-After (3s), then a second attempt", waits, h.Get("x-tollgate-attempts"))
	}
}

func TestStreamThatDiesAfterItsFirstChunkIsNotRetried(t *testing.T) {
	cut := &counting{Provider: newSim(t, providers.SimConfig{Name: "cut", ErrorRate: 1, ErrorKinds: []string{providers.SimErrorStreamCut}})}
	steady := &counting{Provider: newSim(t, providers.SimConfig{Name: "steady"})}
	s := twoModelStack(t, cut, steady, router.Route{Strategy: router.StrategyPriority}, stackOptions{})
	st := s.client(s.secret).Chat.Completions.NewStreaming(context.Background(), ask("ha", "tell me a story"))
	chunks := 0
	for st.Next() {
		chunks++
	}
	if st.Err() == nil || chunks == 0 {
		t.Fatalf("want some chunks then an error; got %d chunks, err %v", chunks, st.Err())
	}
	if cut.calls.Load() != 1 || steady.calls.Load() != 0 {
		t.Fatalf("the cut stream was retried: cut %d, steady %d calls", cut.calls.Load(), steady.calls.Load())
	}
}

func TestCheapestCapableRouting(t *testing.T) {
	small := &counting{Provider: newSim(t, providers.SimConfig{Name: "sim"})}
	s := newStack(t, stackOptions{models: simModels(small),
		routes: routesOver(t, []router.Model{*spec("sim-small"), *spec("sim-large")}, router.Route{Name: "auto", Candidates: []string{"sim-small", "sim-large"}})})
	var h http.Header
	client := s.client(s.secret, headerCapture(&h))
	if _, err := client.Chat.Completions.New(context.Background(), ask("auto", "hi")); err != nil {
		t.Fatal(err)
	}
	if h.Get("x-tollgate-model") != "sim-small" || !strings.HasPrefix(h.Get("x-tollgate-route"), "cheapest of 2 capable: sim-small") {
		t.Fatalf("model %q route %q", h.Get("x-tollgate-model"), h.Get("x-tollgate-route"))
	}
	// An image needs vision: only sim-large has it.
	img := openai.ChatCompletionNewParams{Model: "auto", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage([]openai.ChatCompletionContentPartUnionParam{
		openai.TextContentPart("what is this?"),
		openai.ImageContentPart(openai.ChatCompletionContentPartImageImageURLParam{URL: "https://example.com/cat.png", Detail: "low"}),
	})}}
	if _, err := client.Chat.Completions.New(context.Background(), img); err != nil {
		t.Fatal(err)
	}
	if h.Get("x-tollgate-model") != "sim-large" || !strings.Contains(h.Get("x-tollgate-route"), "sim-small (vision)") {
		t.Fatalf("model %q route %q", h.Get("x-tollgate-model"), h.Get("x-tollgate-route"))
	}
	// Nothing can take 40k prompt tokens with a 100k completion: a 400 naming why.
	big := ask("auto", strings.Repeat("lorem ipsum dolor sit amet ", 8000))
	big.MaxTokens = openai.Int(100_000)
	_, err := client.Chat.Completions.New(context.Background(), big)
	assertAPIError(t, err, 400, "no model of route auto can serve this request")
	// The key's allowed models are respected inside a route.
	_, onlyLarge := s.newKey("sim-large")
	if _, err := s.client(onlyLarge, headerCapture(&h)).Chat.Completions.New(context.Background(), ask("auto", "hi")); err != nil {
		t.Fatal(err)
	}
	if h.Get("x-tollgate-model") != "sim-large" {
		t.Fatalf("a key allowed only sim-large was served by %q", h.Get("x-tollgate-model"))
	}
}

func TestRateLimitedKeyMovesTrafficToTheOtherKey(t *testing.T) {
	var limited, healthy atomic.Int32
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "Bearer key-1" {
			limited.Add(1)
			w.Header().Set("Retry-After", "60")
			w.WriteHeader(http.StatusTooManyRequests)
			io.WriteString(w, `{"error":{"message":"rate limited","type":"rate_limit_error"}}`)
			return
		}
		healthy.Add(1)
		io.WriteString(w, `{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`)
	}))
	defer upstream.Close()
	k1, _ := providers.NewOpenAI(providers.OpenAIConfig{Name: "openai", BaseURL: upstream.URL + "/v1", APIKey: "key-1"})
	k2, _ := providers.NewOpenAI(providers.OpenAIConfig{Name: "openai", BaseURL: upstream.URL + "/v1", APIKey: "key-2"})
	s := newStack(t, stackOptions{
		rand: func() float64 { return 0 }, // the balancer's first pick is always key 1
		models: []*gateway.Model{{Name: "gpt-4o-mini", Spec: spec("gpt-4o-mini"), Chat: true, Deployments: []gateway.Deployment{
			{ID: "openai#1", Provider: k1, Upstream: "gpt-4o-mini"}, {ID: "openai#2", Provider: k2, Upstream: "gpt-4o-mini"},
		}}},
	})
	for i := 0; i < 10; i++ {
		if _, err := s.client(s.secret).Chat.Completions.New(context.Background(), ask("gpt-4o-mini", "hi")); err != nil {
			t.Fatal(err)
		}
	}
	if limited.Load() != 1 || healthy.Load() != 10 {
		t.Fatalf("rate-limited key called %d times, healthy %d: traffic did not move", limited.Load(), healthy.Load())
	}
	status, _, raw := adminDo(t, s, "GET", "/admin/providers", "")
	if status != 200 || !strings.Contains(raw, `"id":"openai#1"`) || !strings.Contains(raw, `"rate_limited_until"`) {
		t.Fatalf("admin providers: %d %s", status, raw)
	}
}

func TestBringYourOwnKey(t *testing.T) {
	var got atomic.Value
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got.Store(r.Header.Get("Authorization") + " " + string(body))
		io.WriteString(w, `{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`)
	}))
	defer upstream.Close()
	up, _ := providers.NewOpenAI(providers.OpenAIConfig{Name: "openai", BaseURL: upstream.URL + "/v1", APIKey: "sk-gateway"})
	var logs syncBuffer
	s := newStack(t, stackOptions{log: &logs, models: []*gateway.Model{{Name: "gpt-4o-mini", Spec: spec("gpt-4o-mini"), Chat: true,
		Deployments: []gateway.Deployment{{Provider: up, Upstream: "gpt-4o-mini"}}}}})
	_, byok, err := s.keys.Create(context.Background(), keys.New{Name: "byok", AllowBYOK: true})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		secret string
		opts   []option.RequestOption
		status int
		auth   string
	}{
		{"header", byok, []option.RequestOption{option.WithHeader("x-tollgate-provider-key-openai", "sk-customer-1")}, 200, "Bearer sk-customer-1"},
		{"body field, stripped", byok, []option.RequestOption{option.WithJSONSet("customer_credentials", map[string]string{"openai": "sk-customer-2"})}, 200, "Bearer sk-customer-2"},
		{"other provider's key ignored", byok, []option.RequestOption{option.WithHeader("x-tollgate-provider-key-anthropic", "sk-ant")}, 200, "Bearer sk-gateway"},
		{"key not allowed", s.secret, []option.RequestOption{option.WithHeader("x-tollgate-provider-key-openai", "sk-customer-3")}, 403, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.client(tt.secret).Chat.Completions.New(context.Background(), ask("gpt-4o-mini", "hi"), tt.opts...)
			if tt.status != 200 {
				assertAPIError(t, err, tt.status, "may not send provider credentials")
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			seen := got.Load().(string)
			if !strings.HasPrefix(seen, tt.auth+" ") || strings.Contains(seen, "customer_credentials") {
				t.Fatalf("upstream saw %q", seen)
			}
		})
	}
	for _, secret := range []string{"sk-customer-1", "sk-customer-2", "sk-customer-3"} {
		if strings.Contains(logs.String(), secret) {
			t.Fatalf("a per-request credential reached the log")
		}
	}
}

func TestAdminProvidersShowsOpenBreaker(t *testing.T) {
	broken := newSim(t, providers.SimConfig{Name: "broken", ErrorRate: 1, ErrorKinds: []string{providers.SimError500}})
	steady := newSim(t, providers.SimConfig{Name: "steady"})
	breakers, _ := router.NewBreakers(router.BreakerConfig{Default: router.BreakerSettings{ConsecutiveFailures: 2}})
	s := twoModelStack(t, broken, steady, router.Route{Strategy: router.StrategyPriority}, stackOptions{breakers: breakers})
	var h http.Header
	for i := 0; i < 3; i++ {
		if _, err := s.client(s.secret, headerCapture(&h)).Chat.Completions.New(context.Background(), ask("ha", "hi")); err != nil {
			t.Fatal(err)
		}
	}
	if !strings.Contains(h.Get("x-tollgate-route"), "model-a (breaker open)") || h.Get("x-tollgate-attempts") != "1" {
		t.Fatalf("open breaker not skipped: route %q attempts %s", h.Get("x-tollgate-route"), h.Get("x-tollgate-attempts"))
	}
	status, body, raw := adminDo(t, s, "GET", "/admin/providers", "")
	if status != 200 {
		t.Fatal(raw)
	}
	var found bool
	for _, d := range body["data"].([]any) {
		m := d.(map[string]any)
		if m["id"] == "broken/model-a#0" {
			found = true
			if m["state"] != "open" || !strings.HasPrefix(m["last_error"].(string), "500") {
				b, _ := json.Marshal(m)
				t.Fatalf("breaker status %s", b)
			}
		}
	}
	if !found {
		t.Fatalf("deployment missing: %s", raw)
	}
}
