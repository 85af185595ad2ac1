package semcache

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/pkg/llm"
)

func TestReplayAssembleRoundTrip(t *testing.T) {
	refusal := "I can't help with that."
	long := strings.Repeat("Ünïcödé text — with 🌍 emoji, split across pieces. ", 12)
	tests := []struct {
		name string
		resp *llm.ChatResponse
	}{
		{"text", answer("Paris is the capital of France.")},
		{"long unicode text", answer(long)},
		{"empty text", answer("")},
		{"no usage", func() *llm.ChatResponse { r := answer("x"); r.Usage = nil; return r }()},
		{"tool calls", &llm.ChatResponse{ID: "chatcmpl-t", Object: "chat.completion", Created: 1700000002, Model: "m", SystemFingerprint: "fp_1",
			Choices: []llm.Choice{{Message: llm.Message{Role: "assistant", Content: llm.Content{Null: true}, ToolCalls: []llm.ToolCall{
				{ID: "call_a", Type: "function", Function: llm.FunctionCall{Name: "get_weather", Arguments: `{"city":"Paris","unit":"c","detail":"` + strings.Repeat("x", 150) + `"}`}},
				{ID: "call_b", Type: "function", Function: llm.FunctionCall{Name: "get_time", Arguments: `{}`}},
			}}, FinishReason: "tool_calls"}},
			Usage: &llm.Usage{PromptTokens: 30, CompletionTokens: 20, TotalTokens: 50, PromptTokensDetails: &llm.PromptTokensDetails{CachedTokens: 10}}}},
		{"text and tool call", &llm.ChatResponse{ID: "c", Object: "chat.completion", Model: "m",
			Choices: []llm.Choice{{Message: llm.Message{Role: "assistant", Content: llm.TextContent("Let me check."), ToolCalls: []llm.ToolCall{
				{ID: "call_a", Type: "function", Function: llm.FunctionCall{Name: "f", Arguments: `{"a":1}`}}}}, FinishReason: "tool_calls"}}}},
		{"refusal", &llm.ChatResponse{ID: "c", Object: "chat.completion", Model: "m",
			Choices: []llm.Choice{{Message: llm.Message{Role: "assistant", Content: llm.Content{Null: true}, Refusal: &refusal}, FinishReason: "stop"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			chunks := Replay(tt.resp)
			var content strings.Builder
			for i, c := range chunks {
				if c.Raw != nil || c.ID != tt.resp.ID || c.Object != "chat.completion.chunk" || c.Model != tt.resp.Model || c.Created != tt.resp.Created {
					t.Fatalf("chunk %d header %+v", i, c)
				}
				for _, ch := range c.Choices {
					if ch.Delta.Content != nil {
						content.WriteString(*ch.Delta.Content)
						if len(*ch.Delta.Content) > replayPiece {
							t.Errorf("chunk %d carries %d bytes", i, len(*ch.Delta.Content))
						}
					}
				}
				if _, err := json.Marshal(c); err != nil {
					t.Fatal(err)
				}
			}
			if got := content.String(); got != tt.resp.Choices[0].Message.Content.String() {
				t.Errorf("replayed content %q", got)
			}
			last := chunks[len(chunks)-1]
			if tt.resp.Usage != nil && (last.Usage == nil || len(last.Choices) != 0) {
				t.Errorf("last chunk %+v, want usage only", last)
			}
			back, err := Assemble(chunks)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := json.Marshal(tt.resp)
			got, _ := json.Marshal(back)
			if string(got) != string(want) {
				t.Errorf("round trip:\n got %s\nwant %s", got, want)
			}
		})
	}
}

// A streamed answer as OpenAI sends it, assembled, replays as the same
// stream content.
func TestAssembleUpstreamStream(t *testing.T) {
	events := []string{
		`{"id":"chatcmpl-9","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}`,
		`{"id":"chatcmpl-9","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}`,
		`{"id":"chatcmpl-9","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":"lo!"},"finish_reason":null}]}`,
		`{"id":"chatcmpl-9","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`,
		`{"id":"chatcmpl-9","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}`,
	}
	var chunks []llm.ChatChunk
	for _, e := range events {
		var c llm.ChatChunk
		if err := json.Unmarshal([]byte(e), &c); err != nil {
			t.Fatal(err)
		}
		chunks = append(chunks, c)
	}
	resp, err := Assemble(chunks)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(resp)
	want := `{"id":"chatcmpl-9","object":"chat.completion","created":1,"model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"Hello!"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}`
	if string(got) != want {
		t.Errorf("assembled\n got %s\nwant %s", got, want)
	}
	if _, err := Assemble(nil); err == nil {
		t.Error("no chunks: no error")
	}
}

// TestAssembledSignedReasoningNotStorable: a streamed answer whose
// reasoning the upstream signed assembles into an answer the cache does
// not keep; the same stream unsigned is kept.
func TestAssembledSignedReasoningNotStorable(t *testing.T) {
	stop := "stop"
	text := func(s string) *string { return &s }
	for _, tc := range []struct {
		name      string
		signature string
		storable  bool
	}{
		{"signed", "sig-abc", false},
		{"unsigned", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var as Assembler
			for _, d := range []llm.Delta{{Role: "assistant", ReasoningContent: text("Let me think.")}, {ReasoningSignature: tc.signature}, {Content: text("Paris.")}} {
				as.Add(&llm.ChatChunk{ID: "c1", Model: "m", Choices: []llm.ChunkChoice{{Delta: d}}})
			}
			as.Add(&llm.ChatChunk{ID: "c1", Model: "m", Choices: []llm.ChunkChoice{{FinishReason: &stop}}})
			resp, err := as.Response()
			if err != nil {
				t.Fatal(err)
			}
			if got := storable(resp); got != tc.storable {
				t.Errorf("storable = %v, want %v", got, tc.storable)
			}
		})
	}
}
