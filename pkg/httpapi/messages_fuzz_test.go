package httpapi

import (
	"bytes"
	"net/http"
	"reflect"
	"testing"

	"github.com/tollgate/tollgate/pkg/llm"
)

// FuzzMessagesDecode: whatever the body, decoding a Messages request
// never panics and fails only with a 400 (or 413-free) *llm.Error; what it
// accepts translates to an internal request whose body is a valid chat
// completion that decodes back to the same request, the same every time.
func FuzzMessagesDecode(f *testing.F) {
	for _, seed := range []string{
		`{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"m","max_tokens":10,"stream":true,"system":[{"type":"text","text":"s"}],"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"AAAA"}}]}]}`,
		`{"model":"m","max_tokens":5000,"thinking":{"type":"enabled","budget_tokens":2048},"messages":[{"role":"user","content":"q"},{"role":"assistant","content":[{"type":"thinking","thinking":"t","signature":"s"},{"type":"tool_use","id":"t1","name":"f","input":{"a":1}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":[{"type":"text","text":"r"},{"type":"image","source":{"type":"url","url":"https://x/y.png"}}]}]}],"tools":[{"name":"f","input_schema":{"type":"object"}}],"tool_choice":{"type":"tool","name":"f"}}`,
		`{"model":"m","max_tokens":10,"messages":[{"role":"user","content":[{"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"JVBE"},"title":"a.pdf"}]}],"output_config":{"effort":"max","format":{"type":"json_schema","schema":{"type":"object"}}}}`,
		`{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"x"}],"extra":1}`,
		`{"model":"m","max_tokens":"x","messages":[]}`,
		`{"model":"m","Model":"n","max_tokens":1,"messages":[{"role":"user","content":"\xff"}]}`,
		`[1]`, `{"messages":[{"role":"user","content":[{"type":"tool_result"}]}]}`,
		`{"model":"m","max_tokens":9,"system":[{"type":"text","text":"s","cache_control":{"type":"ephemeral"}}],"tools":[{"name":"f","input_schema":{},"cache_control":{"type":"ephemeral"}}],"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"a","content":"r","cache_control":{"type":"ephemeral"}},{"type":"text","text":"x","cache_control":{"type":"ephemeral"}}]}]}`,
	} {
		f.Add([]byte(seed), false)
	}
	f.Add([]byte(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`), true)
	f.Fuzz(func(t *testing.T, body []byte, count bool) {
		m, err := decodeMessagesBody(body, count)
		if err != nil {
			e, ok := llm.AsError(err)
			if !ok || e.Status != http.StatusBadRequest || e.Message == "" {
				t.Fatalf("error %#v for %q", err, body)
			}
			return
		}
		again, err := decodeMessagesBody(body, count)
		if err != nil || !bytes.Equal(again.chat.Raw, m.chat.Raw) {
			t.Fatalf("not deterministic: %v\n%s\n%s", err, m.chat.Raw, again.chat.Raw)
		}
		back, err := llm.DecodeChatRequest(m.chat.Raw)
		if err != nil {
			t.Fatalf("translated body is not a valid chat request: %v\n%s", err, m.chat.Raw)
		}
		got := *m.chat
		got.Raw, back.Raw, got.ThinkingBudget = nil, nil, 0
		got.Messages = append([]llm.Message(nil), got.Messages...)
		for i := range got.Messages { // in process only, never in the body
			m := &got.Messages[i]
			m.ReasoningContent, m.ReasoningSignature, m.CacheControl = "", "", nil
			if len(m.Content.Parts) > 0 {
				m.Content.Parts = append([]llm.ContentPart(nil), m.Content.Parts...)
				for j := range m.Content.Parts {
					m.Content.Parts[j].CacheControl = nil
				}
			}
		}
		got.Tools = append([]llm.Tool(nil), got.Tools...)
		for i := range got.Tools {
			got.Tools[i].CacheControl = nil
		}
		if got.Tools == nil || len(got.Tools) == 0 {
			got.Tools = back.Tools
		}
		if !reflect.DeepEqual(&got, back) {
			t.Fatalf("the body reads back differently:\n%+v\n%+v", &got, back)
		}
		if m.stream != (back.StreamOptions != nil && back.StreamOptions.IncludeUsage && back.Stream) {
			t.Fatalf("stream %v but %s", m.stream, m.chat.Raw)
		}
	})
}

// BenchmarkMessagesDecode is the cost of the Anthropic surface on a
// request's way in: strict decode, translation to the internal request
// and its decode (the chat path pays only the last).
func BenchmarkMessagesDecode(b *testing.B) {
	body := []byte(`{"model":"claude-up","max_tokens":1024,"system":[{"type":"text","text":"You are a helpful assistant.","cache_control":{"type":"ephemeral"}}],` +
		`"tools":[{"name":"get_weather","description":"Weather for a city","input_schema":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}],` +
		`"messages":[{"role":"user","content":"What is the weather in Paris and in Rome today?"},` +
		`{"role":"assistant","content":[{"type":"text","text":"Let me check."},{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city":"Paris"}}]},` +
		`{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"18C and sunny"},{"type":"text","text":"And Rome?"}]}]}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := decodeMessages(body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMessagesEncode is the cost on the way out: a chat answer with
// text and a tool call rendered as an Anthropic message.
func BenchmarkMessagesEncode(b *testing.B) {
	resp := &llm.ChatResponse{ID: "chatcmpl-1", Model: "gpt-up", Usage: &llm.Usage{PromptTokens: 120, CompletionTokens: 30, TotalTokens: 150},
		Choices: []llm.Choice{{FinishReason: "tool_calls", Message: llm.Message{Role: "assistant", Content: llm.TextContent("Let me check Rome."),
			ToolCalls: []llm.ToolCall{{ID: "call_1", Type: "function", Function: llm.FunctionCall{Name: "get_weather", Arguments: `{"city":"Rome"}`}}}}}}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := llm.MarshalNoEscape(messageOf(resp, "gpt-up", 0, 0)); err != nil {
			b.Fatal(err)
		}
	}
}
