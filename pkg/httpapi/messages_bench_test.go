package httpapi

import (
	"io"
	"testing"

	"github.com/tollgate/tollgate/pkg/llm"
)

// BenchmarkMessagesStream is the cost of rendering a streamed answer
// (thinking, text, a tool call, usage) as Anthropic's events.
func BenchmarkMessagesStream(b *testing.B) {
	idx := 0
	str := func(s string) *string { return &s }
	finish := "tool_calls"
	chunks := []*llm.ChatChunk{
		{ID: "chatcmpl-1", Model: "gpt-up", Choices: []llm.ChunkChoice{{Delta: llm.Delta{Role: "assistant", Content: str("")}}}},
		{Choices: []llm.ChunkChoice{{Delta: llm.Delta{ReasoningContent: str("Think about it.")}}}},
		{Choices: []llm.ChunkChoice{{Delta: llm.Delta{ReasoningSignature: "sig"}}}},
		{Choices: []llm.ChunkChoice{{Delta: llm.Delta{Content: str("Let me check ")}}}},
		{Choices: []llm.ChunkChoice{{Delta: llm.Delta{Content: str("Rome.")}}}},
		{Choices: []llm.ChunkChoice{{Delta: llm.Delta{ToolCalls: []llm.ToolCall{{Index: &idx, ID: "call_1", Type: "function", Function: llm.FunctionCall{Name: "get_weather"}}}}}}},
		{Choices: []llm.ChunkChoice{{Delta: llm.Delta{ToolCalls: []llm.ToolCall{{Index: &idx, Function: llm.FunctionCall{Arguments: `{"city":"Rome"}`}}}}}}},
		{Choices: []llm.ChunkChoice{{FinishReason: &finish}}},
		{Choices: []llm.ChunkChoice{}, Usage: &llm.Usage{PromptTokens: 120, CompletionTokens: 30, TotalTokens: 150}},
	}
	b.ReportAllocs()
	for b.Loop() {
		e := &msgEncoder{w: io.Discard, model: "gpt-up", prompt: 100, requestID: "req_1"}
		for _, c := range chunks {
			if err := e.chunk(c); err != nil {
				b.Fatal(err)
			}
		}
		if err := e.end(); err != nil {
			b.Fatal(err)
		}
	}
}
