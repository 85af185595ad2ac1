package providers

import (
	"io"
	"testing"
)

// BenchmarkAnthropicBody is the cost of translating a chat request into a
// Messages request body: system, tools, a tool call and its result, an
// image.
func BenchmarkAnthropicBody(b *testing.B) {
	chat := mustChat(b, `{"model":"claude","messages":[{"role":"system","content":"You are a helpful assistant."},`+
		`{"role":"user","content":[{"type":"text","text":"What is in this picture, and the weather in Paris?"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}}]},`+
		`{"role":"assistant","content":"Let me check.","tool_calls":[{"id":"toolu_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},`+
		`{"role":"tool","tool_call_id":"toolu_1","content":"18C and sunny"}],`+
		`"tools":[{"type":"function","function":{"name":"get_weather","description":"Weather for a city","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}],`+
		`"temperature":0.2,"stop":["END"],"user":"u1"}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := anthropicBody(chat, "claude-sonnet-4-5", 1024, false); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAnthropicStream is the translation of a streamed tool call
// (the upstream_stream_tool.sse fixture) into chunks, without HTTP.
func BenchmarkAnthropicStream(b *testing.B) {
	data := anthropicFixture(b, "upstream_stream_tool.sse")
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		s := anthropicStreamOver(data, true)
		for {
			if _, err := s.Recv(); err != nil {
				if err != io.EOF {
					b.Fatal(err)
				}
				break
			}
		}
		s.Close()
	}
}
