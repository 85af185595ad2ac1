package anthropicwire

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/pkg/llm"
)

// TestRequestRoundTrip: a body in canonical form (fields in the types'
// order, nothing empty) decoded strictly (as the HTTP layer decodes
// clients' bodies) and encoded again (as the provider encodes upstream
// bodies) is the same bytes, so the two agree on every field.
func TestRequestRoundTrip(t *testing.T) {
	for _, tc := range []struct{ name, body string }{
		{"text", `{"model":"claude-sonnet-4-5","max_tokens":256,"system":"Be brief.","messages":[{"role":"user","content":"Hello"}],"stream":true}`},
		{"text blocks and sampling", `{"model":"m","max_tokens":64,"system":[{"type":"text","text":"Be brief."},{"type":"text","text":"Answer in French."}],` +
			`"messages":[{"role":"user","content":[{"type":"text","text":"Hello <b>&</b>"}]},{"role":"assistant","content":"Bonjour"},{"role":"user","content":"Encore"}],` +
			`"stop_sequences":["END","\n\n"],"temperature":0.5,"top_k":40,"top_p":0.9,"metadata":{"user_id":"u-1"},"service_tier":"auto"}`},
		{"tools", `{"model":"m","max_tokens":1024,"messages":[{"role":"user","content":"Weather in Paris?"}],` +
			`"tools":[{"name":"get_weather","description":"Weather for a city","input_schema":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]},"strict":true},` +
			`{"type":"custom","name":"noop","input_schema":{"type":"object"}}],"tool_choice":{"type":"tool","name":"get_weather","disable_parallel_tool_use":true}}`},
		{"tool_use and tool_result with images", `{"model":"m","max_tokens":1024,"messages":[{"role":"user","content":"Draw a cat"},` +
			`{"role":"assistant","content":[{"type":"text","text":"Drawing."},{"type":"tool_use","id":"toolu_1","name":"draw","input":{"subject":"cat","size":[1,2]}}]},` +
			`{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":[{"type":"text","text":"done"},` +
			`{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}},{"type":"image","source":{"type":"url","url":"https://example.com/cat.png"}}],"is_error":false},` +
			`{"type":"tool_result","tool_use_id":"toolu_2","content":"plain result"},{"type":"text","text":"Nice"}]}]}`},
		{"document pdf", `{"model":"m","max_tokens":512,"messages":[{"role":"user","content":[` +
			`{"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"JVBERi0xLjQK"},"title":"report.pdf","context":"Q3","citations":{"enabled":true}},` +
			`{"type":"document","source":{"type":"text","media_type":"text/plain","data":"Plain words."}},{"type":"text","text":"Summarise both."}]}]}`},
		{"thinking with signatures", `{"model":"m","max_tokens":16000,"messages":[{"role":"user","content":"2+2?"},` +
			`{"role":"assistant","content":[{"type":"thinking","thinking":"Add them.","signature":"EqQBCkYIARgCIkD="},{"type":"redacted_thinking","data":"EmwKAhgBEgy="},{"type":"text","text":"4"}]},` +
			`{"role":"user","content":"And 3+3?"}],"thinking":{"type":"enabled","budget_tokens":8000}}`},
		{"cache_control", `{"model":"m","max_tokens":100,"system":[{"type":"text","text":"Long instructions.","cache_control":{"type":"ephemeral"}}],` +
			`"messages":[{"role":"user","content":[{"type":"text","text":"Long document.","cache_control":{"type":"ephemeral","ttl":"1h"}},` +
			`{"type":"tool_result","tool_use_id":"toolu_1","content":"r","cache_control":{"type":"ephemeral"}}]}],` +
			`"tools":[{"name":"t","input_schema":{"type":"object"},"cache_control":{"type":"ephemeral"}}],"cache_control":{"type":"ephemeral"}}`},
		{"output_config", `{"model":"m","max_tokens":100,"messages":[{"role":"user","content":"JSON please"}],` +
			`"output_config":{"effort":"high","format":{"type":"json_schema","schema":{"type":"object","properties":{"a":{"type":"integer"}}}}},"thinking":{"type":"adaptive"}}`},
		{"empty content", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[]},{"role":"assistant","content":""}]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var req Request
			if err := decodeStrict([]byte(tc.body), &req); err != nil {
				t.Fatalf("decode: %v", err)
			}
			got, err := llm.MarshalNoEscape(&req)
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			if string(got) != tc.body {
				t.Fatalf("the round trip changed the body\ngot:  %s\nwant: %s", got, tc.body)
			}
		})
	}
}

// TestRequestStrict: unknown fields are refused at every depth, blocks
// inside content included, as is content of the wrong shape.
func TestRequestStrict(t *testing.T) {
	for _, tc := range []struct{ name, body, want string }{
		{"top level", `{"model":"m","max_tokens":1,"messages":[],"frequency_penalty":1}`, `unknown field "frequency_penalty"`},
		{"message", `{"model":"m","messages":[{"role":"user","content":"x","name":"bob"}]}`, `unknown field "name"`},
		{"block", `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"x","detail":"high"}]}]}`, `unknown field "detail"`},
		{"tool_result block", `{"model":"m","messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":[{"type":"text","text":"x","extra":1}]}]}]}`, `unknown field "extra"`},
		{"source", `{"model":"m","messages":[{"role":"user","content":[{"type":"image","source":{"type":"url","url":"https://x","detail":"low"}}]}]}`, `unknown field "detail"`},
		{"system block", `{"model":"m","system":[{"type":"text","text":"x","foo":1}],"messages":[]}`, `unknown field "foo"`},
		{"tool", `{"model":"m","messages":[],"tools":[{"name":"t","input_schema":{},"parameters":{}}]}`, `unknown field "parameters"`},
		{"tool_choice", `{"model":"m","messages":[],"tool_choice":{"type":"auto","parallel":false}}`, `unknown field "parallel"`},
		{"content object", `{"model":"m","messages":[{"role":"user","content":{"type":"text"}}]}`, "content must be a string or an array of content blocks"},
		{"content null", `{"model":"m","messages":[{"role":"user","content":null}]}`, "content must be a string or an array of content blocks"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var req Request
			err := decodeStrict([]byte(tc.body), &req)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestContentMarshal: content encodes as Anthropic reads it, whichever
// encoder is used: json.Marshal escapes HTML as it always does, the
// no-escape encoder the provider uses does not.
func TestContentMarshal(t *testing.T) {
	msgs := []Message{
		{Role: "user", Content: TextContent("a <b> & c")},
		{Role: "assistant", Content: BlockContent([]Block{{Type: "text", Text: "<ok>"}})},
		{Role: "user", Content: BlockContent(nil)},
	}
	for _, tc := range []struct {
		name    string
		marshal func(any) ([]byte, error)
		want    string
	}{
		{"no escape", llm.MarshalNoEscape, `[{"role":"user","content":"a <b> & c"},{"role":"assistant","content":[{"type":"text","text":"<ok>"}]},{"role":"user","content":[]}]`},
		{"json.Marshal", json.Marshal, `[{"role":"user","content":"a \u003cb\u003e \u0026 c"},{"role":"assistant","content":[{"type":"text","text":"\u003cok\u003e"}]},{"role":"user","content":[]}]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.marshal(msgs)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}
