package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/tollgate/tollgate/pkg/gateway"
	"github.com/tollgate/tollgate/pkg/providers"
	"github.com/tollgate/tollgate/pkg/tokens"
)

// fakeUpstream answers every call with the given usage (nil: none) and
// records what it received.
type fakeUpstream struct {
	srv      *httptest.Server
	calls    atomic.Int32
	lastBody atomic.Value // map[string]json.RawMessage
}

func newFakeUpstream(t *testing.T, usage string) *fakeUpstream {
	f := &fakeUpstream{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.calls.Add(1)
		body, _ := io.ReadAll(r.Body)
		var m map[string]json.RawMessage
		_ = json.Unmarshal(body, &m)
		f.lastBody.Store(m)
		usageField := ""
		if usage != "" {
			usageField = `,"usage":` + usage
		}
		if string(m["stream"]) == "true" {
			w.Header().Set("Content-Type", "text/event-stream")
			for _, piece := range []string{"Hello", " there", ", friend"} {
				fmt.Fprintf(w, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"up\",\"choices\":[{\"index\":0,\"delta\":{\"content\":%q},\"finish_reason\":null}]}\n\n", piece)
			}
			fmt.Fprint(w, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"up\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n")
			if usage != "" {
				fmt.Fprintf(w, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"up\",\"choices\":[]%s}\n\n", usageField)
			}
			fmt.Fprint(w, "data: [DONE]\n\n")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"c","object":"chat.completion","created":1,"model":"up","choices":[{"index":0,"message":{"role":"assistant","content":"Hello there, friend"},"finish_reason":"stop"}]%s}`, usageField)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeUpstream) stack(t *testing.T, logs io.Writer) *stack {
	up, err := providers.NewOpenAI(providers.OpenAIConfig{Name: "openai", BaseURL: f.srv.URL + "/v1", APIKey: "sk-x"})
	if err != nil {
		t.Fatal(err)
	}
	return newStack(t, stackOptions{log: logs, models: []*gateway.Model{
		{Name: "gpt-4o-mini", Spec: spec("gpt-4o-mini"), Chat: true, Deployments: []gateway.Deployment{{Provider: up, Upstream: "gpt-4o-mini"}}},
	}})
}

func headerCapture(h *http.Header) option.RequestOption {
	return option.WithMiddleware(func(r *http.Request, next option.MiddlewareNext) (*http.Response, error) {
		resp, err := next(r)
		if resp != nil {
			*h = resp.Header
		}
		return resp, err
	})
}

func TestCostHeadersFromReportedUsage(t *testing.T) {
	// gpt-4o-mini: $0.15 in, $0.075 cached in, $0.60 out per 1M tokens.
	// 600 uncached x 0.15 + 400 cached x 0.075 + 500 out x 0.60 = 90 + 30 + 300 = 420 micro-dollars.
	f := newFakeUpstream(t, `{"prompt_tokens":1000,"completion_tokens":500,"total_tokens":1500,"prompt_tokens_details":{"cached_tokens":400},"completion_tokens_details":{"reasoning_tokens":100}}`)
	s := f.stack(t, nil)
	var h http.Header
	messages := []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("You are a helpful assistant."), openai.UserMessage("Hello!")}
	if _, err := s.client(s.secret, headerCapture(&h)).Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{Model: "gpt-4o-mini", Messages: messages}); err != nil {
		t.Fatal(err)
	}
	if got := h.Get("x-tollgate-cost-usd"); got != "0.000420" {
		t.Errorf("cost = %q, want 0.000420", got)
	}
	if h.Get("x-tollgate-cost-estimated") != "" {
		t.Error("reported usage marked estimated")
	}
	// Counted before the call: 2 messages x 3 + "You are a helpful assistant." (6) + "system" (1)
	// + "Hello!" (2) + "user" (1) + 3 reply priming = 19 in o200k_base.
	if got := h.Get("x-tollgate-prompt-tokens"); got != "19" {
		t.Errorf("prompt tokens = %q, want 19", got)
	}
}

func TestCostEstimatedWhenUpstreamReportsNoUsage(t *testing.T) {
	f := newFakeUpstream(t, "")
	var logs syncBuffer
	s := f.stack(t, &logs)
	var h http.Header
	client := s.client(s.secret, headerCapture(&h))
	params := openai.ChatCompletionNewParams{Model: "gpt-4o-mini", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hello!")}}
	if _, err := client.Chat.Completions.New(context.Background(), params); err != nil {
		t.Fatal(err)
	}
	// Counted: prompt 3 + 2 + 1 + 3 = 9 tokens, completion "Hello there, friend" = 4 tokens:
	// 9 x 0.15 + 4 x 0.60 = 1.35 + 2.4 = 3.75 micro-dollars, rounded up to 4.
	if got, est := h.Get("x-tollgate-cost-usd"), h.Get("x-tollgate-cost-estimated"); got != "0.000004" || est != "true" {
		t.Errorf("cost = %q estimated = %q, want 0.000004 true", got, est)
	}

	// A stream without usage is priced the same way; the cost goes to the log.
	stream := client.Chat.Completions.NewStreaming(context.Background(), params)
	for stream.Next() {
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	stream.Close()
	last := lastLogLine(t, logs.String())
	if last["cost_usd"] != "0.000004" || last["cost_estimated"] != true || last["completion_tokens"] != float64(4) {
		t.Errorf("stream log line = %v", last)
	}
	if m := f.lastBody.Load().(map[string]json.RawMessage); string(m["stream_options"]) != `{"include_usage":true}` {
		t.Errorf("upstream was not asked for usage: %s", m["stream_options"])
	}
}

func lastLogLine(t *testing.T, logs string) map[string]any {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(logs), "\n")
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestStreamUsageChunkCarriesCost(t *testing.T) {
	f := newFakeUpstream(t, `{"prompt_tokens":1000,"completion_tokens":500,"total_tokens":1500,"prompt_tokens_details":{"cached_tokens":400}}`)
	s := f.stack(t, nil)
	stream := s.client(s.secret).Chat.Completions.NewStreaming(context.Background(), openai.ChatCompletionNewParams{
		Model: "gpt-4o-mini", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hello!")},
		StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
	})
	defer stream.Close()
	var cost string
	var usage openai.CompletionUsage
	for stream.Next() {
		c := stream.Current()
		if c.Usage.TotalTokens > 0 {
			usage = c.Usage
			cost = c.Usage.JSON.ExtraFields["cost_usd"].Raw()
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if usage.PromptTokens != 1000 || usage.PromptTokensDetails.CachedTokens != 400 || cost != "0.000420" {
		t.Fatalf("usage %+v cost %q, want the upstream's usage and cost 0.000420", usage, cost)
	}
}

func TestContextWindowCheckedBeforeTheCall(t *testing.T) {
	f := newFakeUpstream(t, `{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}`)
	s := f.stack(t, nil)
	long := strings.Repeat("lorem ipsum dolor sit amet ", 10000) // about 50k tokens
	n, _ := tokens.NewCounter().Count(tokens.O200K, long)
	if n < 40_000 {
		t.Fatalf("test text too short: %d tokens", n)
	}
	nearlyFull := strings.Repeat("lorem ipsum dolor sit amet ", 23000)
	nf, _ := tokens.NewCounter().Count(tokens.O200K, nearlyFull)
	if nf+8 >= 128_000 || nf+8+16_000 <= 128_000 {
		t.Fatalf("nearlyFull has %d tokens; the case needs prompt < window < prompt + 16000", nf)
	}
	client := s.client(s.secret)
	tests := []struct {
		name      string
		text      string
		maxTokens int64
		message   string
		param     string
	}{
		{"prompt plus completion over the window", long + long + long, 0, "maximum context length is 128000 tokens", "messages"},
		{"completion pushes it over the window", nearlyFull, 16_000, "maximum context length is 128000 tokens", "messages"},
		{"max_tokens over the model's output limit", "hi", 20_000, "max_tokens is too large: 20000", "max_tokens"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := f.calls.Load()
			params := openai.ChatCompletionNewParams{Model: "gpt-4o-mini", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(tt.text)}}
			if tt.maxTokens > 0 {
				params.MaxTokens = openai.Int(tt.maxTokens)
			}
			_, err := client.Chat.Completions.New(context.Background(), params, option.WithRequestTimeout(0))
			apiErr := assertAPIError(t, err, 400, tt.message)
			if apiErr.Code != "context_length_exceeded" || apiErr.Param != tt.param {
				t.Errorf("code %q param %q", apiErr.Code, apiErr.Param)
			}
			if f.calls.Load() != before {
				t.Error("the upstream was called for a request that cannot fit")
			}
		})
	}
	// Just inside the window: served.
	if _, err := client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model: "gpt-4o-mini", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(long)}, MaxTokens: openai.Int(16_000),
	}); err != nil {
		t.Fatal(err)
	}
}
