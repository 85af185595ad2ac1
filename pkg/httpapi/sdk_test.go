package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/tollgate/tollgate/pkg/gateway"
	"github.com/tollgate/tollgate/pkg/providers"
)

func TestSDKChatCompletion(t *testing.T) {
	s := newStack(t, stackOptions{})
	var hdr http.Header
	client := s.client(s.secret, option.WithMiddleware(func(r *http.Request, next option.MiddlewareNext) (*http.Response, error) {
		resp, err := next(r)
		if resp != nil {
			hdr = resp.Header
		}
		return resp, err
	}))
	ctx := context.Background()

	answers := map[string]string{}
	for _, prompt := range []string{"What is the capital of France?", "Name a prime number above 100."} {
		resp, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model: "sim-small",
			Messages: []openai.ChatCompletionMessageParamUnion{
				openai.SystemMessage("You are terse."),
				openai.UserMessage(prompt),
			},
			Seed: openai.Int(7),
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Choices) != 1 || resp.Choices[0].Message.Content == "" || resp.Choices[0].FinishReason != "stop" {
			t.Fatalf("unexpected answer: %+v", resp.Choices)
		}
		if !strings.Contains(resp.Choices[0].Message.Content, prompt) {
			t.Errorf("answer %q does not encode its prompt %q", resp.Choices[0].Message.Content, prompt)
		}
		if resp.Usage.PromptTokens == 0 || resp.Usage.CompletionTokens == 0 || resp.Usage.TotalTokens != resp.Usage.PromptTokens+resp.Usage.CompletionTokens {
			t.Errorf("usage = %+v", resp.Usage)
		}
		answers[prompt] = resp.Choices[0].Message.Content
		for h, want := range map[string]string{"x-tollgate-model": "sim-small", "x-tollgate-provider": "sim", "x-tollgate-attempts": "1"} {
			if got := hdr.Get(h); got != want {
				t.Errorf("%s = %q, want %q", h, got, want)
			}
		}
		if !strings.HasPrefix(hdr.Get("x-tollgate-request-id"), "req_") {
			t.Errorf("request id = %q", hdr.Get("x-tollgate-request-id"))
		}
	}
	if len(answers) != 2 {
		t.Fatal("answers collided")
	}
}

func TestSDKStreamIsIncrementalWithUsageOnlyWhenAsked(t *testing.T) {
	for _, tc := range []struct {
		name      string
		wantUsage bool
	}{{"usage asked", true}, {"usage not asked", false}} {
		t.Run(tc.name, func(t *testing.T) {
			// The sim waits in Sleep before every content chunk after the
			// first; the test opens that gate only after it has received the
			// previous chunk, so the stream can only complete if every
			// event is flushed to the client as it is produced.
			gate := make(chan struct{}, 1000) // one token per chunk the client has received
			var waits atomic.Int32
			sim := newSim(t, providers.SimConfig{TokensPerSecond: 1000, Sleep: func(ctx context.Context, d time.Duration) error {
				waits.Add(1)
				select {
				case <-gate:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			}})
			s := newStack(t, stackOptions{models: simModels(sim)})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second) // a hang guard, not a timing assertion
			defer cancel()
			params := openai.ChatCompletionNewParams{
				Model:    "sim-large",
				Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Tell me a long story about gateways.")},
			}
			if tc.wantUsage {
				params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
			}
			stream := s.client(s.secret).Chat.Completions.NewStreaming(ctx, params)
			defer stream.Close()
			var (
				content   strings.Builder
				chunks    int
				usage     *openai.CompletionUsage
				finish    string
				usageLast bool
			)
			for stream.Next() {
				c := stream.Current()
				chunks++
				usageLast = false
				if c.Usage.TotalTokens > 0 {
					u := c.Usage
					usage, usageLast = &u, true
					if len(c.Choices) != 0 {
						t.Errorf("usage chunk has choices")
					}
				}
				for _, ch := range c.Choices {
					content.WriteString(ch.Delta.Content)
					if ch.FinishReason != "" {
						finish = ch.FinishReason
					}
				}
				gate <- struct{}{} // release the upstream for exactly one more chunk
			}
			if err := stream.Err(); err != nil {
				t.Fatal(err)
			}
			if chunks < 4 || waits.Load() < 2 {
				t.Fatalf("got %d chunks after %d upstream waits; want an incremental stream", chunks, waits.Load())
			}
			if !strings.Contains(content.String(), "Tell me a long story") || finish != "stop" {
				t.Fatalf("content %q finish %q", content.String(), finish)
			}
			if tc.wantUsage && (usage == nil || !usageLast || usage.CompletionTokens == 0) {
				t.Fatalf("usage chunk missing or not last: %+v", usage)
			}
			if !tc.wantUsage && usage != nil {
				t.Fatalf("usage chunk sent although the client did not ask: %+v", usage)
			}
		})
	}
}

func TestSDKToolCall(t *testing.T) {
	s := newStack(t, stackOptions{})
	resp, err := s.client(s.secret).Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model:    "sim-large",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("What's the weather in Paris?")},
		Tools: []openai.ChatCompletionToolUnionParam{openai.ChatCompletionFunctionTool(openai.FunctionDefinitionParam{
			Name:        "get_weather",
			Description: openai.String("Current weather for a city"),
			Parameters: openai.FunctionParameters{
				"type":       "object",
				"properties": map[string]any{"city": map[string]any{"type": "string"}, "unit": map[string]any{"type": "string", "enum": []string{"c", "f"}}},
				"required":   []string{"city", "unit"},
			},
		})},
	})
	if err != nil {
		t.Fatal(err)
	}
	calls := resp.Choices[0].Message.ToolCalls
	if len(calls) != 1 || resp.Choices[0].FinishReason != "tool_calls" {
		t.Fatalf("want one tool call, got %+v (finish %q)", calls, resp.Choices[0].FinishReason)
	}
	fn := calls[0].Function
	var args map[string]any
	if fn.Name != "get_weather" || json.Unmarshal([]byte(fn.Arguments), &args) != nil || args["city"] == nil || args["unit"] == nil || calls[0].ID == "" {
		t.Fatalf("bad tool call %+v", calls[0])
	}

	// The tool's result goes back and the model answers with it.
	resp2, err := s.client(s.secret).Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model: "sim-large",
		Messages: []openai.ChatCompletionMessageParamUnion{
			openai.UserMessage("What's the weather in Paris?"),
			resp.Choices[0].Message.ToParam(),
			openai.ToolMessage(`{"temp_c": 18}`, calls[0].ID),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(resp2.Choices[0].Message.Content, "18") {
		t.Fatalf("answer does not use the tool result: %q", resp2.Choices[0].Message.Content)
	}
}

func TestSDKEmbeddings(t *testing.T) {
	s := newStack(t, stackOptions{})
	client := s.client(s.secret)
	for _, tc := range []struct {
		name   string
		format openai.EmbeddingNewParamsEncodingFormat
	}{{"float", openai.EmbeddingNewParamsEncodingFormatFloat}, {"base64", openai.EmbeddingNewParamsEncodingFormatBase64}} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := client.Embeddings.New(context.Background(), openai.EmbeddingNewParams{
				Model:          "sim-embed",
				Input:          openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"hello world", "hello there world"}},
				EncodingFormat: tc.format,
				Dimensions:     openai.Int(64),
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.Data) != 2 || resp.Usage.PromptTokens == 0 {
				t.Fatalf("resp = %+v", resp)
			}
			if tc.format == openai.EmbeddingNewParamsEncodingFormatFloat {
				if len(resp.Data[0].Embedding) != 64 {
					t.Fatalf("dims = %d", len(resp.Data[0].Embedding))
				}
			} else if resp.Data[0].JSON.Embedding.Raw() == "" || !strings.HasPrefix(resp.Data[0].JSON.Embedding.Raw(), `"`) {
				t.Fatalf("base64 embedding not a string: %s", resp.Data[0].JSON.Embedding.Raw())
			}
		})
	}
	// A model without the capability refuses the endpoint.
	_, err := client.Embeddings.New(context.Background(), openai.EmbeddingNewParams{
		Model: "sim-large", Input: openai.EmbeddingNewParamsInputUnion{OfString: openai.String("x")},
	})
	assertAPIError(t, err, 400, "does not serve embeddings")
	_, err = client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model: "sim-embed", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("x")},
	})
	assertAPIError(t, err, 400, "does not serve chat completions")
}

func TestSDKModelsListsOnlyAllowed(t *testing.T) {
	s := newStack(t, stackOptions{})
	_, secret := s.newKey("sim-small", "sim-embed")
	page, err := s.client(secret).Models.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range page.Data {
		ids = append(ids, m.ID)
	}
	if strings.Join(ids, ",") != "sim-embed,sim-small" {
		t.Fatalf("models = %v", ids)
	}
	m, err := s.client(secret).Models.Get(context.Background(), "sim-small")
	if err != nil || m.ID != "sim-small" {
		t.Fatalf("get: %+v %v", m, err)
	}
	_, err = s.client(secret).Models.Get(context.Background(), "sim-large")
	assertAPIError(t, err, 404, "does not exist or you do not have access")
}

// TestSDKErrors checks that the SDK surfaces our status and message.
func TestSDKErrors(t *testing.T) {
	s := newStack(t, stackOptions{maxBodyBytes: 64 << 10})
	_, onlySmall := s.newKey("sim-small")
	revokedKey, revoked := s.newKey()
	if _, err := s.keys.Revoke(context.Background(), revokedKey.ID); err != nil {
		t.Fatal(err)
	}
	user := func(text string) []openai.ChatCompletionMessageParamUnion {
		return []openai.ChatCompletionMessageParamUnion{openai.UserMessage(text)}
	}
	tests := []struct {
		name    string
		secret  string
		params  openai.ChatCompletionNewParams
		opts    []option.RequestOption
		status  int
		message string
		code    string
	}{
		{"unknown model", s.secret, openai.ChatCompletionNewParams{Model: "gpt-17", Messages: user("hi")}, nil, 404, "The model `gpt-17` does not exist", "model_not_found"},
		{"model not allowed", onlySmall, openai.ChatCompletionNewParams{Model: "sim-large", Messages: user("hi")}, nil, 403, "may not use the model `sim-large`", "model_not_allowed"},
		{"bad key", "tg-not-a-real-key-000000000000", openai.ChatCompletionNewParams{Model: "sim-small", Messages: user("hi")}, nil, 401, "Incorrect API key provided", "invalid_api_key"},
		{"revoked key", revoked, openai.ChatCompletionNewParams{Model: "sim-small", Messages: user("hi")}, nil, 401, "Incorrect API key provided", "invalid_api_key"},
		{"body too large", s.secret, openai.ChatCompletionNewParams{Model: "sim-small", Messages: user(strings.Repeat("big ", 20000))}, nil, 413, "larger than the limit of 65536 bytes", "request_too_large"},
		{"missing messages", s.secret, openai.ChatCompletionNewParams{Model: "sim-small"}, nil, 400, "missing required parameter: 'messages'", ""},
		{"wrong type", s.secret, openai.ChatCompletionNewParams{Model: "sim-small", Messages: user("hi")}, []option.RequestOption{option.WithJSONSet("max_tokens", "ten")}, 400, "invalid type for 'max_tokens'", ""},
		{"bad role", s.secret, openai.ChatCompletionNewParams{Model: "sim-small", Messages: user("hi")}, []option.RequestOption{option.WithJSONSet("messages.0.role", "wizard")}, 400, `invalid role "wizard"`, ""},
		{"n out of range", s.secret, openai.ChatCompletionNewParams{Model: "sim-small", Messages: user("hi"), N: openai.Int(0)}, []option.RequestOption{option.WithJSONSet("n", 0)}, 400, "n must be between 1 and 128", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.client(tt.secret).Chat.Completions.New(context.Background(), tt.params, tt.opts...)
			apiErr := assertAPIError(t, err, tt.status, tt.message)
			if apiErr != nil && tt.code != "" && apiErr.Code != tt.code {
				t.Errorf("code = %q, want %q", apiErr.Code, tt.code)
			}
		})
	}
}

func assertAPIError(t *testing.T, err error, status int, message string) *openai.Error {
	t.Helper()
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) {
		t.Fatalf("want an API error %d, got %v", status, err)
		return nil
	}
	if apiErr.StatusCode != status || !strings.Contains(apiErr.Message, message) {
		t.Fatalf("got %d %q (type %q), want %d containing %q", apiErr.StatusCode, apiErr.Message, apiErr.Type, status, message)
	}
	return apiErr
}

// TestUpstreamSeesUnknownFieldsAndCancellation uses a real OpenAI-compatible
// upstream: unknown fields reach it untouched, and a client that gives up
// cancels the upstream call.
func TestUpstreamSeesUnknownFieldsAndCancellation(t *testing.T) {
	received := make(chan map[string]json.RawMessage, 1)
	cancelled := make(chan struct{})
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var m map[string]json.RawMessage
		_ = json.Unmarshal(body, &m)
		received <- m
		if strings.Contains(string(body), "hang please") {
			<-r.Context().Done()
			close(cancelled)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"x","object":"chat.completion","created":1,"model":"up-model","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4},"provider_extra":{"kept":true}}`)
	}))
	defer upstream.Close()
	up, err := providers.NewOpenAI(providers.OpenAIConfig{Name: "up", BaseURL: upstream.URL + "/v1", APIKey: "sk-up"})
	if err != nil {
		t.Fatal(err)
	}
	s := newStack(t, stackOptions{models: []*gateway.Model{{Name: "alias", Spec: spec("gpt-4o-mini"), Chat: true, Deployments: []gateway.Deployment{{Provider: up, Upstream: "up-model"}}}}})
	client := s.client(s.secret)

	var raw []byte
	resp, err := client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model:    "alias",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
	}, option.WithJSONSet("custom_field", map[string]any{"nested": []int{1, 2}}), option.WithJSONSet("top_k", 5),
		option.WithResponseBodyInto(&raw))
	if err != nil {
		t.Fatal(err)
	}
	if resp != nil {
		t.Fatal("the raw body option should leave the typed response empty")
	}
	got := <-received
	if string(got["model"]) != `"up-model"` || string(got["custom_field"]) != `{"nested":[1,2]}` || string(got["top_k"]) != `5` {
		t.Fatalf("upstream received %v", got)
	}
	if !strings.Contains(string(raw), `"provider_extra":{"kept":true}`) {
		t.Fatalf("upstream's extra response field lost: %s", raw)
	}

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model: "alias", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hang please")},
		})
		errc <- err
	}()
	<-received // the upstream has the request
	cancel()
	select {
	case <-cancelled:
	case <-time.After(20 * time.Second): // a hang guard, not a timing assertion
		t.Fatal("the upstream call was not cancelled when the client gave up")
	}
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("client error = %v", err)
	}
}
