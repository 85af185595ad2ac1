package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"

	"github.com/tollgate/tollgate/pkg/budget"
	"github.com/tollgate/tollgate/pkg/gateway"
	"github.com/tollgate/tollgate/pkg/providers"
	"github.com/tollgate/tollgate/pkg/router"
)

// upstream is an httptest upstream that records what it receives and
// answers with reply (set per test).
type upstream struct {
	t     *testing.T
	srv   *httptest.Server
	mu    sync.Mutex
	got   []json.RawMessage
	reply func(w http.ResponseWriter, req map[string]any)
}

func newUpstream(t *testing.T) *upstream {
	u := &upstream{t: t}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req map[string]any
		if err := json.Unmarshal(body, &req); err != nil {
			t.Errorf("upstream got a body that is not JSON: %s", body)
		}
		u.mu.Lock()
		u.got = append(u.got, body)
		reply := u.reply
		u.mu.Unlock()
		if reply == nil {
			t.Errorf("upstream called with no reply set: %s", body)
			w.WriteHeader(500)
			return
		}
		reply(w, req)
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *upstream) set(reply func(w http.ResponseWriter, req map[string]any)) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.got, u.reply = nil, reply
}

// last is the last body received (nil: none).
func (u *upstream) last() json.RawMessage {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.got) == 0 {
		return nil
	}
	return u.got[len(u.got)-1]
}

func (u *upstream) calls() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.got)
}

// msgStack is a gateway with two models: gpt-up served by an OpenAI-style
// upstream and claude-up by an Anthropic one.
type msgStack struct {
	*stack
	oa, an *upstream
}

func newMsgStack(t *testing.T, o stackOptions) *msgStack {
	t.Helper()
	oa, an := newUpstream(t), newUpstream(t)
	clock := func() time.Time { return time.Unix(1767323045, 0) }
	op, err := providers.NewOpenAI(providers.OpenAIConfig{Name: "oa", BaseURL: oa.srv.URL, APIKey: "sk-upstream-oa"})
	if err != nil {
		t.Fatal(err)
	}
	ap, err := providers.NewAnthropic(providers.AnthropicConfig{Name: "an", BaseURL: an.srv.URL, APIKey: "sk-ant-upstream", Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	gpt, claude := renamed("gpt-up", "gpt-4o-mini"), renamed("claude-up", "claude-sonnet-4-5")
	o.routes = routesOver(t, []router.Model{gpt, claude})
	o.models = []*gateway.Model{
		{Name: "gpt-up", Spec: &gpt, Chat: true, Deployments: []gateway.Deployment{{Provider: op, Upstream: "gpt-up"}}},
		{Name: "claude-up", Spec: &claude, Chat: true, Deployments: []gateway.Deployment{{Provider: ap, Upstream: "claude-up"}}},
	}
	return &msgStack{stack: newStack(t, o), oa: oa, an: an}
}

// anthropicClient is the official Anthropic SDK, unmodified but for its
// base URL, the key and no retries (each test sees exactly one attempt).
func (s *msgStack) anthropicClient(secret string, opts ...option.RequestOption) *anthropic.Client {
	c := anthropic.NewClient(append([]option.RequestOption{
		option.WithBaseURL(s.srv.URL + "/"),
		option.WithAPIKey(secret),
		option.WithMaxRetries(0),
		option.WithHTTPClient(&http.Client{Timeout: 30 * time.Second}),
	}, opts...)...)
	return &c
}

func writeJSON(w http.ResponseWriter, v string) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, v)
}

func writeSSE(w http.ResponseWriter, events ...string) {
	w.Header().Set("Content-Type", "text/event-stream")
	for _, e := range events {
		_, _ = io.WriteString(w, e)
		_, _ = io.WriteString(w, "\n\n")
	}
}

// oaAnswer is an OpenAI chat completion carrying message.
func oaAnswer(message, finish string) string {
	return `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-up","choices":[{"index":0,"message":` + message +
		`,"finish_reason":"` + finish + `"}],"usage":{"prompt_tokens":40,"completion_tokens":12,"total_tokens":52,"prompt_tokens_details":{"cached_tokens":30}}}`
}

// anAnswer is an Anthropic message carrying content.
func anAnswer(content, stop string) string {
	return `{"id":"msg_up1","type":"message","role":"assistant","model":"claude-up","content":` + content +
		`,"stop_reason":"` + stop + `","stop_sequence":null,"usage":{"input_tokens":10,"output_tokens":12,"cache_read_input_tokens":25,"cache_creation_input_tokens":5}}`
}

// golden compares got with testdata/httpapi/messages/name (compareGolden).
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	compareGolden(t, filepath.Join("..", "..", "testdata", "httpapi", "messages", name), got)
}

func indent(t *testing.T, raw []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		t.Fatalf("%v: %s", err, raw)
	}
	return append(b.Bytes(), '\n')
}

// jfield digs a value out of a decoded JSON body by path (keys and
// indexes).
func jfield(t *testing.T, raw json.RawMessage, path ...any) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				t.Fatalf("%v: no object at %q in %s", path, k, raw)
			}
			v = m[k]
		case int:
			a, ok := v.([]any)
			if !ok || k >= len(a) {
				t.Fatalf("%v: no element %d in %s", path, k, raw)
			}
			v = a[k]
		}
	}
	return v
}

const pdfData = "JVBERi0xLjQKJcOkw7zDtsOfCjEgMCBvYmoKPDwvVHlwZS9DYXRhbG9nPj4KZW5kb2JqCnRyYWlsZXIKPDwvUm9vdCAxIDAgUj4+CiUlRU9G"
const pngData = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="

var anthropicWeatherTool = anthropic.ToolUnionParam{OfTool: &anthropic.ToolParam{
	Name: "get_weather", Description: anthropic.String("Weather for a city"),
	InputSchema: anthropic.ToolInputSchemaParam{Properties: map[string]any{"city": map[string]any{"type": "string"}}, Required: []string{"city"}},
}}

// TestMessagesSDK drives tollgate with the official Anthropic SDK in front
// of an OpenAI-style and an Anthropic upstream, each asserting what it
// receives; what the OpenAI upstream receives is pinned by golden files.
func TestMessagesSDK(t *testing.T) {
	s := newMsgStack(t, stackOptions{})
	client := s.anthropicClient(s.secret)
	ctx := context.Background()

	type upstreamCase struct {
		kind  string // "openai" | "anthropic"
		model string
		up    *upstream
	}
	ups := []upstreamCase{{"openai", "gpt-up", s.oa}, {"anthropic", "claude-up", s.an}}

	tests := []struct {
		name    string
		params  anthropic.MessageNewParams
		openai  string // the OpenAI upstream's answer
		anthro  string // the Anthropic upstream's answer
		checkOA func(t *testing.T, got json.RawMessage)
		checkAN func(t *testing.T, got json.RawMessage)
		check   func(t *testing.T, kind string, m *anthropic.Message)
	}{
		{
			name: "text",
			params: anthropic.MessageNewParams{MaxTokens: 300, System: []anthropic.TextBlockParam{{Text: "You are terse."}},
				Messages:      []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Capital of France?"))},
				StopSequences: []string{"\n\n"}, Metadata: anthropic.MetadataParam{UserID: anthropic.String("u-1")}},
			openai: oaAnswer(`{"role":"assistant","content":"Paris."}`, "stop"),
			anthro: anAnswer(`[{"type":"text","text":"Paris."}]`, "end_turn"),
			checkAN: func(t *testing.T, got json.RawMessage) {
				if jfield(t, got, "max_tokens") != 300.0 || jfield(t, got, "system", 0, "text") != "You are terse." ||
					jfield(t, got, "messages", 0, "content", 0, "text") != "Capital of France?" || jfield(t, got, "stop_sequences", 0) != "\n\n" || jfield(t, got, "metadata", "user_id") != "u-1" {
					t.Errorf("anthropic upstream got %s", got)
				}
			},
			check: func(t *testing.T, kind string, m *anthropic.Message) {
				if len(m.Content) != 1 || m.Content[0].Text != "Paris." || m.StopReason != anthropic.StopReasonEndTurn {
					t.Errorf("message %s", m.RawJSON())
				}
				want := anthropic.Usage{InputTokens: 10, OutputTokens: 12, CacheReadInputTokens: 30}
				if kind == "anthropic" {
					want = anthropic.Usage{InputTokens: 10, OutputTokens: 12, CacheReadInputTokens: 25, CacheCreationInputTokens: 5}
				}
				if m.Usage.InputTokens != want.InputTokens || m.Usage.OutputTokens != want.OutputTokens ||
					m.Usage.CacheReadInputTokens != want.CacheReadInputTokens || m.Usage.CacheCreationInputTokens != want.CacheCreationInputTokens {
					t.Errorf("usage %s", m.Usage.RawJSON())
				}
			},
		},
		{
			name: "tool use",
			params: anthropic.MessageNewParams{MaxTokens: 300, Tools: []anthropic.ToolUnionParam{anthropicWeatherTool},
				ToolChoice: anthropic.ToolChoiceUnionParam{OfAny: &anthropic.ToolChoiceAnyParam{DisableParallelToolUse: anthropic.Bool(true)}},
				Messages:   []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Weather in Paris?"))}},
			openai: oaAnswer(`{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]}`, "tool_calls"),
			anthro: anAnswer(`[{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city":"Paris"}}]`, "tool_use"),
			checkAN: func(t *testing.T, got json.RawMessage) {
				if jfield(t, got, "tools", 0, "name") != "get_weather" || jfield(t, got, "tools", 0, "input_schema", "required", 0) != "city" ||
					jfield(t, got, "tool_choice", "type") != "any" || jfield(t, got, "tool_choice", "disable_parallel_tool_use") != true {
					t.Errorf("anthropic upstream got %s", got)
				}
			},
			check: func(t *testing.T, kind string, m *anthropic.Message) {
				if len(m.Content) != 1 || m.Content[0].Type != "tool_use" || m.Content[0].Name != "get_weather" ||
					string(m.Content[0].Input) != `{"city":"Paris"}` || m.StopReason != anthropic.StopReasonToolUse {
					t.Errorf("message %s", m.RawJSON())
				}
			},
		},
		{
			name: "tool result",
			params: anthropic.MessageNewParams{MaxTokens: 300, Tools: []anthropic.ToolUnionParam{anthropicWeatherTool},
				Messages: []anthropic.MessageParam{
					anthropic.NewUserMessage(anthropic.NewTextBlock("Weather in Paris?")),
					anthropic.NewAssistantMessage(anthropic.NewTextBlock("Checking."), anthropic.NewToolUseBlock("toolu_1", map[string]any{"city": "Paris"}, "get_weather")),
					anthropic.NewUserMessage(anthropic.NewToolResultBlock("toolu_1", "18C and sunny", false), anthropic.NewTextBlock("And tomorrow?")),
				}},
			openai: oaAnswer(`{"role":"assistant","content":"Sunny, 18C."}`, "stop"),
			anthro: anAnswer(`[{"type":"text","text":"Sunny, 18C."}]`, "end_turn"),
			checkAN: func(t *testing.T, got json.RawMessage) {
				if jfield(t, got, "messages", 1, "content", 1, "type") != "tool_use" || jfield(t, got, "messages", 1, "content", 1, "input", "city") != "Paris" ||
					jfield(t, got, "messages", 2, "content", 0, "type") != "tool_result" || jfield(t, got, "messages", 2, "content", 0, "tool_use_id") != "toolu_1" ||
					jfield(t, got, "messages", 2, "content", 0, "content", 0, "text") != "18C and sunny" || jfield(t, got, "messages", 2, "content", 1, "text") != "And tomorrow?" {
					t.Errorf("anthropic upstream got %s", got)
				}
			},
			check: func(t *testing.T, kind string, m *anthropic.Message) {
				if m.Content[0].Text != "Sunny, 18C." {
					t.Errorf("message %s", m.RawJSON())
				}
			},
		},
		{
			name: "image and pdf",
			params: anthropic.MessageNewParams{MaxTokens: 300, Messages: []anthropic.MessageParam{anthropic.NewUserMessage(
				anthropic.NewImageBlockBase64("image/png", pngData),
				anthropic.NewDocumentBlock(anthropic.Base64PDFSourceParam{Data: pdfData}),
				anthropic.NewTextBlock("Describe both."))}},
			openai: oaAnswer(`{"role":"assistant","content":"A pixel and a PDF."}`, "stop"),
			anthro: anAnswer(`[{"type":"text","text":"A pixel and a PDF."}]`, "end_turn"),
			checkAN: func(t *testing.T, got json.RawMessage) {
				if jfield(t, got, "messages", 0, "content", 0, "source", "data") != pngData || jfield(t, got, "messages", 0, "content", 0, "source", "media_type") != "image/png" ||
					jfield(t, got, "messages", 0, "content", 1, "type") != "document" || jfield(t, got, "messages", 0, "content", 1, "source", "data") != pdfData ||
					jfield(t, got, "messages", 0, "content", 1, "source", "media_type") != "application/pdf" {
					t.Errorf("anthropic upstream got %s", got)
				}
			},
			check: func(t *testing.T, kind string, m *anthropic.Message) {
				if m.Content[0].Text != "A pixel and a PDF." {
					t.Errorf("message %s", m.RawJSON())
				}
			},
		},
		{
			name: "thinking",
			params: anthropic.MessageNewParams{MaxTokens: 5000, Thinking: anthropic.ThinkingConfigParamOfEnabled(2048),
				Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Is 97 prime?"))}},
			openai: oaAnswer(`{"role":"assistant","content":"Yes.","reasoning_content":"97 has no divisor up to 9."}`, "stop"),
			anthro: anAnswer(`[{"type":"thinking","thinking":"97 has no divisor up to 9.","signature":"sig-abc"},{"type":"text","text":"Yes."}]`, "end_turn"),
			checkAN: func(t *testing.T, got json.RawMessage) {
				if jfield(t, got, "thinking", "type") != "enabled" || jfield(t, got, "thinking", "budget_tokens") != 2048.0 || jfield(t, got, "max_tokens") != 5000.0 {
					t.Errorf("anthropic upstream got %s", got)
				}
			},
			check: func(t *testing.T, kind string, m *anthropic.Message) {
				if len(m.Content) != 2 || m.Content[0].Type != "thinking" || m.Content[0].Thinking != "97 has no divisor up to 9." || m.Content[1].Text != "Yes." {
					t.Fatalf("message %s", m.RawJSON())
				}
				if kind == "anthropic" && m.Content[0].Signature != "sig-abc" {
					t.Errorf("signature %q", m.Content[0].Signature)
				}
			},
		},
		{
			name: "max tokens",
			params: anthropic.MessageNewParams{MaxTokens: 5,
				Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Count to 100."))}},
			openai: oaAnswer(`{"role":"assistant","content":"1, 2, 3"}`, "length"),
			anthro: anAnswer(`[{"type":"text","text":"1, 2, 3"}]`, "max_tokens"),
			check: func(t *testing.T, kind string, m *anthropic.Message) {
				if m.StopReason != anthropic.StopReasonMaxTokens {
					t.Errorf("stop reason %q", m.StopReason)
				}
			},
		},
		{
			name: "stop sequence",
			params: anthropic.MessageNewParams{MaxTokens: 50, StopSequences: []string{"END"},
				Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Say hi then END."))}},
			openai: oaAnswer(`{"role":"assistant","content":"hi "}`, "stop"),
			anthro: `{"id":"msg_up1","type":"message","role":"assistant","model":"claude-up","content":[{"type":"text","text":"hi "}],"stop_reason":"stop_sequence","stop_sequence":"END","usage":{"input_tokens":10,"output_tokens":2}}`,
			check: func(t *testing.T, kind string, m *anthropic.Message) {
				// OpenAI reports only "stop": which sequence hit is unknown.
				want, seq := anthropic.StopReasonEndTurn, ""
				if kind == "anthropic" {
					want, seq = anthropic.StopReasonStopSequence, "END"
				}
				if m.StopReason != want || m.StopSequence != seq {
					t.Errorf("stop %q %q", m.StopReason, m.StopSequence)
				}
			},
		},
	}
	for _, u := range ups {
		for _, tc := range tests {
			t.Run(u.kind+"/"+tc.name, func(t *testing.T) {
				answer := tc.openai
				if u.kind == "anthropic" {
					answer = tc.anthro
				}
				u.up.set(func(w http.ResponseWriter, _ map[string]any) { writeJSON(w, answer) })
				p := tc.params
				p.Model = anthropic.Model(u.model)
				m, err := client.Messages.New(ctx, p)
				if err != nil {
					t.Fatal(err)
				}
				got := u.up.last()
				if u.kind == "openai" {
					golden(t, "openai_request_"+strings.ReplaceAll(tc.name, " ", "_")+".json", indent(t, got))
				} else if tc.checkAN != nil {
					tc.checkAN(t, got)
				}
				if !strings.HasPrefix(m.ID, "msg_") || m.Role != "assistant" {
					t.Errorf("message %s", m.RawJSON())
				}
				tc.check(t, u.kind, m)
			})
		}
	}
}

// TestMessagesToolRoundTripKeepsThinkingSignature: an Anthropic
// upstream's signed thinking reaches the client, and the client's next
// turn carries it back to the upstream, as Anthropic requires with
// thinking and tool use; an OpenAI-style upstream never sees it.
func TestMessagesToolRoundTripKeepsThinkingSignature(t *testing.T) {
	s := newMsgStack(t, stackOptions{})
	client := s.anthropicClient(s.secret)
	ctx := context.Background()
	s.an.set(func(w http.ResponseWriter, _ map[string]any) {
		writeJSON(w, anAnswer(`[{"type":"thinking","thinking":"Need the tool.","signature":"sig-1"},{"type":"tool_use","id":"toolu_9","name":"get_weather","input":{"city":"Oslo"}}]`, "tool_use"))
	})
	params := anthropic.MessageNewParams{Model: "claude-up", MaxTokens: 4000, Thinking: anthropic.ThinkingConfigParamOfEnabled(1024),
		Tools: []anthropic.ToolUnionParam{anthropicWeatherTool}, Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Weather in Oslo?"))}}
	first, err := client.Messages.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	params.Messages = append(params.Messages, first.ToParam(), anthropic.NewUserMessage(anthropic.NewToolResultBlock("toolu_9", "-3C", false)))
	s.an.set(func(w http.ResponseWriter, _ map[string]any) {
		writeJSON(w, anAnswer(`[{"type":"text","text":"Cold."}]`, "end_turn"))
	})
	if _, err := client.Messages.New(ctx, params); err != nil {
		t.Fatal(err)
	}
	got := s.an.last()
	if jfield(t, got, "messages", 1, "content", 0, "type") != "thinking" || jfield(t, got, "messages", 1, "content", 0, "signature") != "sig-1" ||
		jfield(t, got, "messages", 1, "content", 1, "id") != "toolu_9" || jfield(t, got, "messages", 2, "content", 0, "tool_use_id") != "toolu_9" {
		t.Fatalf("anthropic upstream got %s", got)
	}

	params.Model = "gpt-up"
	s.oa.set(func(w http.ResponseWriter, _ map[string]any) {
		writeJSON(w, oaAnswer(`{"role":"assistant","content":"Cold."}`, "stop"))
	})
	if _, err := client.Messages.New(ctx, params); err != nil {
		t.Fatal(err)
	}
	got = s.oa.last()
	if bytes.Contains(got, []byte("sig-1")) || bytes.Contains(got, []byte("Need the tool.")) ||
		jfield(t, got, "messages", 1, "tool_calls", 0, "id") != "toolu_9" || jfield(t, got, "messages", 2, "role") != "tool" {
		t.Fatalf("openai upstream got %s", got)
	}
}

// oaStream is an OpenAI stream: thinking, text, a tool call, and usage.
var oaStream = []string{
	`data: {"id":"chatcmpl-s","object":"chat.completion.chunk","created":1,"model":"gpt-up","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}`,
	`data: {"id":"chatcmpl-s","object":"chat.completion.chunk","created":1,"model":"gpt-up","choices":[{"index":0,"delta":{"reasoning_content":"Think "},"finish_reason":null}]}`,
	`data: {"id":"chatcmpl-s","object":"chat.completion.chunk","created":1,"model":"gpt-up","choices":[{"index":0,"delta":{"reasoning_content":"twice."},"finish_reason":null}]}`,
	`data: {"id":"chatcmpl-s","object":"chat.completion.chunk","created":1,"model":"gpt-up","choices":[{"index":0,"delta":{"content":"Let me "},"finish_reason":null}]}`,
	`data: {"id":"chatcmpl-s","object":"chat.completion.chunk","created":1,"model":"gpt-up","choices":[{"index":0,"delta":{"content":"check."},"finish_reason":null}]}`,
	`data: {"id":"chatcmpl-s","object":"chat.completion.chunk","created":1,"model":"gpt-up","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_7","type":"function","function":{"name":"get_weather","arguments":""}}]},"finish_reason":null}]}`,
	`data: {"id":"chatcmpl-s","object":"chat.completion.chunk","created":1,"model":"gpt-up","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]},"finish_reason":null}]}`,
	`data: {"id":"chatcmpl-s","object":"chat.completion.chunk","created":1,"model":"gpt-up","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"Rome\"}"}}]},"finish_reason":null}]}`,
	`data: {"id":"chatcmpl-s","object":"chat.completion.chunk","created":1,"model":"gpt-up","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}`,
	`data: {"id":"chatcmpl-s","object":"chat.completion.chunk","created":1,"model":"gpt-up","choices":[],"usage":{"prompt_tokens":50,"completion_tokens":20,"total_tokens":70,"prompt_tokens_details":{"cached_tokens":10}}}`,
	`data: [DONE]`,
}

// anStream is the same answer from an Anthropic upstream.
var anStream = []string{
	"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_s\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-up\",\"content\":[],\"stop_reason\":null,\"usage\":{\"input_tokens\":40,\"output_tokens\":1,\"cache_read_input_tokens\":10,\"cache_creation_input_tokens\":0}}}",
	"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}}",
	"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"Think \"}}",
	"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"twice.\"}}",
	"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\",\"signature\":\"sig-s\"}}",
	"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}",
	"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}",
	"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"Let me \"}}",
	"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"check.\"}}",
	"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}",
	"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"tool_use\",\"id\":\"call_7\",\"name\":\"get_weather\",\"input\":{}}}",
	"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"city\\\":\"}}",
	"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\\\"Rome\\\"}\"}}",
	"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":2}",
	"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":20}}",
	"event: message_stop\ndata: {\"type\":\"message_stop\"}",
}

// TestMessagesStreamSDK: the SDK accumulates tollgate's event stream into
// the same message from either upstream; the events tollgate emits are
// pinned by a golden file.
func TestMessagesStreamSDK(t *testing.T) {
	s := newMsgStack(t, stackOptions{})
	client := s.anthropicClient(s.secret)
	for _, tc := range []struct {
		name      string
		model     string
		up        *upstream
		events    []string
		signature string
		usage     anthropic.Usage
	}{
		{"openai", "gpt-up", s.oa, oaStream, "", anthropic.Usage{InputTokens: 40, OutputTokens: 20, CacheReadInputTokens: 10}},
		{"anthropic", "claude-up", s.an, anStream, "sig-s", anthropic.Usage{InputTokens: 40, OutputTokens: 20, CacheReadInputTokens: 10}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.up.set(func(w http.ResponseWriter, req map[string]any) {
				if req["stream"] != true {
					t.Errorf("upstream got a non-streamed request: %v", req)
				}
				writeSSE(w, tc.events...)
			})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second) // a hang guard
			defer cancel()
			stream := client.Messages.NewStreaming(ctx, anthropic.MessageNewParams{Model: anthropic.Model(tc.model), MaxTokens: 3000,
				Thinking: anthropic.ThinkingConfigParamOfEnabled(1024), Tools: []anthropic.ToolUnionParam{anthropicWeatherTool},
				Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Weather in Rome?"))}})
			var m anthropic.Message
			var types []string
			for stream.Next() {
				ev := stream.Current()
				types = append(types, ev.Type)
				if err := m.Accumulate(ev); err != nil {
					t.Fatal(err)
				}
			}
			if err := stream.Err(); err != nil {
				t.Fatal(err)
			}
			if tc.name == "openai" && jfield(t, tc.up.last(), "stream_options", "include_usage") != true {
				t.Errorf("openai upstream got %s", tc.up.last())
			}
			if len(m.Content) != 3 || m.Content[0].Thinking != "Think twice." || m.Content[0].Signature != tc.signature ||
				m.Content[1].Text != "Let me check." || m.Content[2].Name != "get_weather" || string(m.Content[2].Input) != `{"city":"Rome"}` ||
				m.StopReason != anthropic.StopReasonToolUse {
				t.Fatalf("accumulated %s (events %v)", m.RawJSON(), types)
			}
			if m.Usage.InputTokens != tc.usage.InputTokens || m.Usage.OutputTokens != tc.usage.OutputTokens || m.Usage.CacheReadInputTokens != tc.usage.CacheReadInputTokens {
				t.Errorf("usage %s", m.Usage.RawJSON())
			}
			if types[0] != "message_start" || types[len(types)-1] != "message_stop" {
				t.Errorf("events %v", types)
			}
		})
	}

	// The exact bytes tollgate emits for the OpenAI upstream's stream.
	s.oa.set(func(w http.ResponseWriter, _ map[string]any) { writeSSE(w, oaStream...) })
	body := `{"model":"gpt-up","max_tokens":3000,"stream":true,"messages":[{"role":"user","content":"Weather in Rome?"}]}`
	resp, raw := postMessages(t, s.stack, "/v1/messages", map[string]string{"x-api-key": s.secret, "anthropic-version": "2023-06-01"}, body)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" || resp.Header.Get("request-id") == "" {
		t.Fatalf("%d %v %s", resp.StatusCode, resp.Header, raw)
	}
	golden(t, "stream_openai_upstream.sse", []byte(raw))
}

// postMessages posts body to path with headers.
func postMessages(t *testing.T, s *stack, path string, headers map[string]string, body string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", s.srv.URL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp, string(raw)
}

// TestMessagesCountTokens: counted by tollgate for the model, no upstream
// called, more tokens for a longer prompt; unknown model 404.
func TestMessagesCountTokens(t *testing.T) {
	s := newMsgStack(t, stackOptions{})
	client := s.anthropicClient(s.secret)
	ctx := context.Background()
	count := func(model, text string) (int64, error) {
		n, err := client.Messages.CountTokens(ctx, anthropic.MessageCountTokensParams{Model: anthropic.Model(model),
			System:   anthropic.MessageCountTokensParamsSystemUnion{OfString: anthropic.String("Be brief.")},
			Tools:    []anthropic.MessageCountTokensToolUnionParam{{OfTool: anthropicWeatherTool.OfTool}},
			Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock(text))}})
		if err != nil {
			return 0, err
		}
		return n.InputTokens, nil
	}
	short, err := count("gpt-up", "Hello there.")
	if err != nil {
		t.Fatal(err)
	}
	long, err := count("claude-up", "Hello there. "+strings.Repeat("More words here. ", 20))
	if err != nil {
		t.Fatal(err)
	}
	if short <= 0 || long <= short+40 {
		t.Errorf("counts %d %d", short, long)
	}
	if s.oa.calls()+s.an.calls() != 0 {
		t.Errorf("count_tokens called an upstream")
	}
	_, err = count("no-such-model", "x")
	if apiErr := assertAnthropicError(t, err, 404, "not_found_error"); apiErr.ErrorCode() != "model_not_found" {
		t.Errorf("code %q", apiErr.ErrorCode())
	}
}

// assertAnthropicError checks err is the SDK's error with status and type,
// and that the request id reached it.
func assertAnthropicError(t *testing.T, err error, status int, typ string) *anthropic.Error {
	t.Helper()
	var apiErr *anthropic.Error
	if !errors.As(err, &apiErr) {
		t.Fatalf("want an API error, got %v", err)
	}
	if apiErr.StatusCode != status || string(apiErr.Type()) != typ || !strings.HasPrefix(apiErr.RequestID, "req_") {
		t.Fatalf("status %d type %q request id %q: %s", apiErr.StatusCode, apiErr.Type(), apiErr.RequestID, apiErr.RawJSON())
	}
	return apiErr
}

// TestMessagesErrorsSDK: every error the SDK can meet comes in
// Anthropic's envelope with the right status and type.
func TestMessagesErrorsSDK(t *testing.T) {
	s := newMsgStack(t, stackOptions{budgets: true})
	ctx := context.Background()
	s.oa.set(func(w http.ResponseWriter, _ map[string]any) {
		writeJSON(w, oaAnswer(`{"role":"assistant","content":"ok"}`, "stop"))
	})
	params := anthropic.MessageNewParams{Model: "gpt-up", MaxTokens: 100, Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))}}

	limited, limitedSecret := s.newKey()
	if err := s.ledger.Accounts.SetPolicy(ctx, limited.ID, budget.Policy{RPM: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.anthropicClient(limitedSecret).Messages.New(ctx, params); err != nil {
		t.Fatal(err)
	}
	_, _, created := adminDo(t, s.stack, "POST", "/admin/keys", `{"name":"broke","budgets":[{"period":"monthly","limit_usd":0.000001}]}`)
	var broke struct {
		Key string `json:"key"`
	}
	if err := json.Unmarshal([]byte(created), &broke); err != nil || broke.Key == "" {
		t.Fatalf("created %s", created)
	}
	_, onlyClaude := s.newKey("claude-up")

	for _, tc := range []struct {
		name   string
		secret string
		model  string
		status int
		typ    string
		code   string
	}{
		{"bad key", "tg-not-a-key-0000000000", "gpt-up", 401, "authentication_error", "invalid_api_key"},
		{"unknown model", s.secret, "claude-nope", 404, "not_found_error", "model_not_found"},
		{"model not allowed", onlyClaude, "gpt-up", 403, "permission_error", ""},
		{"rate limited", limitedSecret, "gpt-up", 429, "rate_limit_error", ""},
		{"budget spent", broke.Key, "gpt-up", 402, "billing_error", "budget_exceeded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := params
			p.Model = anthropic.Model(tc.model)
			_, err := s.anthropicClient(tc.secret).Messages.New(ctx, p)
			apiErr := assertAnthropicError(t, err, tc.status, tc.typ)
			if tc.code != "" && string(apiErr.ErrorCode()) != tc.code {
				t.Errorf("code %q, want %q: %s", apiErr.ErrorCode(), tc.code, apiErr.RawJSON())
			}
			if apiErr.Message == "" {
				t.Errorf("no message: %s", apiErr.RawJSON())
			}
		})
	}
}

// TestMessagesBadBodies: strict decoding, answered 400 in Anthropic's
// envelope naming the field, never forwarded.
func TestMessagesBadBodies(t *testing.T) {
	s := newMsgStack(t, stackOptions{maxBodyBytes: 4096})
	hdr := map[string]string{"x-api-key": s.secret}
	msgs := `"messages":[{"role":"user","content":"hi"}]`
	for _, tc := range []struct {
		name, path, body string
		status           int
		typ, inMessage   string
	}{
		{"unknown field", "/v1/messages", `{"model":"gpt-up","max_tokens":10,` + msgs + `,"frequency_penalty":1}`, 400, "invalid_request_error", "frequency_penalty: Extra inputs are not permitted"},
		{"unknown block field", "/v1/messages", `{"model":"gpt-up","max_tokens":10,"messages":[{"role":"user","content":[{"type":"text","text":"x","colour":"red"}]}]}`, 400, "invalid_request_error", "colour"},
		{"missing max_tokens", "/v1/messages", `{"model":"gpt-up",` + msgs + `}`, 400, "invalid_request_error", "max_tokens: Field required"},
		{"bad role", "/v1/messages", `{"model":"gpt-up","max_tokens":10,"messages":[{"role":"system","content":"x"}]}`, 400, "invalid_request_error", "messages.0.role"},
		{"wrong type", "/v1/messages", `{"model":"gpt-up","max_tokens":"ten",` + msgs + `}`, 400, "invalid_request_error", "max_tokens"},
		{"not json", "/v1/messages", `{"model":`, 400, "invalid_request_error", "not valid JSON"},
		{"repeated key", "/v1/messages", `{"model":"gpt-up","model":"claude-up","max_tokens":10,` + msgs + `}`, 400, "invalid_request_error", "model"},
		{"server tool", "/v1/messages", `{"model":"gpt-up","max_tokens":10,` + msgs + `,"tools":[{"type":"web_search_20250305","name":"web_search"}]}`, 400, "invalid_request_error", "server tools"},
		{"small thinking budget", "/v1/messages", `{"model":"gpt-up","max_tokens":2000,"thinking":{"type":"enabled","budget_tokens":100},` + msgs + `}`, 400, "invalid_request_error", "budget_tokens"},
		{"pdf by url", "/v1/messages", `{"model":"gpt-up","max_tokens":10,"messages":[{"role":"user","content":[{"type":"document","source":{"type":"url","url":"https://example.com/a.pdf"}}]}]}`, 400, "invalid_request_error", "base64 PDFs"},
		{"too large", "/v1/messages", `{"model":"gpt-up","max_tokens":10,"messages":[{"role":"user","content":"` + strings.Repeat("a", 5000) + `"}]}`, 413, "request_too_large", "larger than the limit"},
		{"count with max_tokens", "/v1/messages/count_tokens", `{"model":"gpt-up","max_tokens":10,` + msgs + `}`, 400, "invalid_request_error", "max_tokens: Extra inputs"},
		{"no key", "/v1/messages/count_tokens", `{"model":"gpt-up",` + msgs + `}`, 401, "authentication_error", "API key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := hdr
			if tc.name == "no key" {
				h = nil
			}
			resp, raw := postMessages(t, s.stack, tc.path, h, tc.body)
			var env struct {
				Type  string `json:"type"`
				Error struct {
					Type    string `json:"type"`
					Message string `json:"message"`
				} `json:"error"`
				RequestID string `json:"request_id"`
			}
			if err := json.Unmarshal([]byte(raw), &env); err != nil {
				t.Fatalf("%v: %s", err, raw)
			}
			if resp.StatusCode != tc.status || env.Type != "error" || env.Error.Type != tc.typ || !strings.Contains(env.Error.Message, tc.inMessage) ||
				env.RequestID == "" || resp.Header.Get("request-id") != env.RequestID {
				t.Fatalf("%d %s (request-id %q)", resp.StatusCode, raw, resp.Header.Get("request-id"))
			}
		})
	}
	if s.oa.calls() != 0 {
		t.Errorf("a bad body reached the upstream")
	}
}

// TestMessagesUpstreamFailures: an upstream's failure reaches the SDK in
// Anthropic's envelope, before the stream starts as a status, after it as
// an error event that ends the stream.
func TestMessagesUpstreamFailures(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second) // a hang guard
	defer cancel()
	params := anthropic.MessageNewParams{Model: "claude-up", MaxTokens: 100, Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))}}
	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   int
		typ    string
	}{
		{"rate limited", 429, `{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}`, 429, "rate_limit_error"},
		// As for chat, an upstream's 5xx is tollgate's 502; its own type
		// is the error_code.
		{"overloaded", 529, `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`, 502, "api_error"},
		{"bad request", 400, `{"type":"error","error":{"type":"invalid_request_error","message":"messages: bad"}}`, 400, "invalid_request_error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newMsgStack(t, stackOptions{}) // each its own: a 429 cools the deployment down
			client := s.anthropicClient(s.secret)
			s.an.set(func(w http.ResponseWriter, _ map[string]any) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, tc.body)
			})
			_, err := client.Messages.New(ctx, params)
			assertAnthropicError(t, err, tc.want, tc.typ)
		})
	}

	s := newMsgStack(t, stackOptions{})
	client := s.anthropicClient(s.secret)
	s.an.set(func(w http.ResponseWriter, _ map[string]any) {
		writeSSE(w, anStream[0], anStream[6], anStream[7],
			"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}")
	})
	stream := client.Messages.NewStreaming(ctx, params)
	var text string
	for stream.Next() {
		if ev := stream.Current(); ev.Type == "content_block_delta" {
			text += ev.Delta.Text
		}
	}
	if err := stream.Err(); err == nil || !strings.Contains(err.Error(), "overloaded_error") || text != "Let me " {
		t.Fatalf("stream ended with %v after %q", err, text)
	}
}

// richMessages is a Messages body using most of what the API offers.
const richMessages = `{"model":"claude-up","max_tokens":4000,"stream":false,
"system":[{"type":"text","text":"You are a careful assistant.","cache_control":{"type":"ephemeral"}}],
"metadata":{"user_id":"user-42"},"stop_sequences":["###"],"temperature":1,"top_k":40,"top_p":0.9,
"thinking":{"type":"enabled","budget_tokens":2000},
"tools":[{"name":"get_weather","description":"Weather","input_schema":{"type":"object","properties":{"city":{"type":"string"}}},"cache_control":{"type":"ephemeral"}}],
"tool_choice":{"type":"auto","disable_parallel_tool_use":true},
"messages":[
 {"role":"user","content":"What is in this picture, and the weather in Oslo?"},
 {"role":"assistant","content":[{"type":"thinking","thinking":"I should call the tool.","signature":"sig-9"},{"type":"text","text":"Let me look."},{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city":"Oslo"}}]},
 {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"-3C","is_error":false,"cache_control":{"type":"ephemeral"}},
  {"type":"image","source":{"type":"base64","media_type":"image/png","data":"` + pngData + `"}},
  {"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"` + pdfData + `"},"title":"report.pdf","context":"Q3","citations":{"enabled":true}},
  {"type":"text","text":"Answer briefly.","cache_control":{"type":"ephemeral"}}]}
]}`

// TestMessagesToAnthropicUpstream pins what an Anthropic upstream
// receives for richMessages (through the internal request and the
// provider's translator), so how close it stays to the client's body is
// on record: the golden file beside richMessages shows what survives.
func TestMessagesToAnthropicUpstream(t *testing.T) {
	s := newMsgStack(t, stackOptions{})
	s.an.set(func(w http.ResponseWriter, _ map[string]any) {
		writeJSON(w, anAnswer(`[{"type":"text","text":"Cold."}]`, "end_turn"))
	})
	resp, raw := postMessages(t, s.stack, "/v1/messages", map[string]string{"x-api-key": s.secret}, richMessages)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, raw)
	}
	golden(t, "anthropic_upstream_request.json", indent(t, s.an.last()))
}
