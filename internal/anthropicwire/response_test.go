package anthropicwire

import (
	"encoding/json"
	"testing"

	"github.com/tollgate/tollgate/pkg/llm"
)

// TestResponseRoundTrip: answers and stream events as Anthropic sends
// them decode and encode back to the same bytes: each block and delta
// type keeps its fields, empty or not, and message_delta its null
// stop_sequence.
func TestResponseRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		v          any
	}{
		{"message", `{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[` +
			`{"type":"thinking","thinking":"Hmm <b>","signature":"sig=="},{"type":"text","text":"It is 18C & sunny."},` +
			`{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city":"Paris"}}],` +
			`"stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":10,"output_tokens":5,"cache_creation_input_tokens":2,"cache_read_input_tokens":3}}`, &Response{}},
		{"stop sequence", `{"id":"msg_2","type":"message","role":"assistant","model":"m","content":[{"type":"text","text":"a"}],` +
			`"stop_reason":"stop_sequence","stop_sequence":"END","usage":{"input_tokens":1,"output_tokens":1,"cache_creation_input_tokens":0,"cache_read_input_tokens":0}}`, &Response{}},
		{"message_start", `{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[],"stop_reason":null,"stop_sequence":null,` +
			`"usage":{"input_tokens":11,"output_tokens":1,"cache_creation_input_tokens":0,"cache_read_input_tokens":0}}}`, &Event{}},
		{"ping", `{"type":"ping"}`, &Event{}},
		{"text block start", `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`, &Event{}},
		{"thinking block start", `{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}`, &Event{}},
		{"tool_use block start", `{"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{}}}`, &Event{}},
		{"redacted thinking block start", `{"type":"content_block_start","index":1,"content_block":{"type":"redacted_thinking"}}`, &Event{}},
		{"text_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi <there>"}}`, &Event{}},
		{"thinking_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Let me"}}`, &Event{}},
		{"signature_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQB"}}`, &Event{}},
		{"input_json_delta", `{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"city\":"}}`, &Event{}},
		{"content_block_stop", `{"type":"content_block_stop","index":0}`, &Event{}},
		{"message_delta", `{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":15}}`, &Event{}},
		{"message_delta with sequence and input", `{"type":"message_delta","delta":{"stop_reason":"stop_sequence","stop_sequence":"END"},` +
			`"usage":{"input_tokens":40,"output_tokens":20,"cache_creation_input_tokens":0,"cache_read_input_tokens":10}}`, &Event{}},
		{"message_stop", `{"type":"message_stop"}`, &Event{}},
		{"error", `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`, &Event{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := json.Unmarshal([]byte(tc.body), tc.v); err != nil {
				t.Fatalf("decode: %v", err)
			}
			got, err := llm.MarshalNoEscape(tc.v)
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			if string(got) != tc.body {
				t.Fatalf("the round trip changed the body\ngot:  %s\nwant: %s", got, tc.body)
			}
		})
	}
}
