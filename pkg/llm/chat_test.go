package llm

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestDecodeChatRequest(t *testing.T) {
	tests := []struct {
		name  string
		body  string
		param string // expected error param; "" with msg "" means valid
		msg   string
	}{
		{"minimal", `{"model":"m","messages":[{"role":"user","content":"hi"}]}`, "", ""},
		{"parts and image", `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AA","detail":"low"}}]}]}`, "", ""},
		{"assistant tool call with null content", `{"model":"m","messages":[{"role":"user","content":"x"},{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c1","content":"r"}]}`, "", ""},
		{"stop as string", `{"model":"m","messages":[{"role":"user","content":"x"}],"stop":"\n"}`, "", ""},
		{"unknown fields ignored here", `{"model":"m","messages":[{"role":"user","content":"x","extra":1}],"top_k":3,"metadata":{"a":"b"}}`, "", ""},
		{"not json", `{"model":`, "", "could not parse the JSON body"},
		{"array body", `[1,2]`, "", "must be a JSON object"},
		{"missing model", `{"messages":[{"role":"user","content":"x"}]}`, "model", "you must provide a model"},
		{"missing messages", `{"model":"m"}`, "messages", "missing required parameter: 'messages'"},
		{"empty messages", `{"model":"m","messages":[]}`, "messages", "at least one message"},
		{"messages wrong type", `{"model":"m","messages":"hi"}`, "messages", "invalid type for 'messages'"},
		{"bad role", `{"model":"m","messages":[{"role":"robot","content":"x"}]}`, "messages[0].role", `invalid role "robot"`},
		{"missing role", `{"model":"m","messages":[{"content":"x"}]}`, "messages[0].role", "missing required parameter"},
		{"content number", `{"model":"m","messages":[{"role":"user","content":5}]}`, "", "content must be a string"},
		{"null user content", `{"model":"m","messages":[{"role":"user","content":null}]}`, "messages[0].content", "missing content"},
		{"tool without id", `{"model":"m","messages":[{"role":"tool","content":"x"}]}`, "messages[0].tool_call_id", "must have a 'tool_call_id'"},
		{"part without type", `{"model":"m","messages":[{"role":"user","content":[{"text":"a"}]}]}`, "messages[0].content[0].type", "missing content part type"},
		{"image without url", `{"model":"m","messages":[{"role":"user","content":[{"type":"image_url"}]}]}`, "messages[0].content[0].image_url", "need an image_url.url"},
		{"max_tokens string", `{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":"10"}`, "max_tokens", "invalid type for 'max_tokens'"},
		{"max_tokens zero", `{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":0}`, "max_tokens", "at least 1"},
		{"n too big", `{"model":"m","messages":[{"role":"user","content":"x"}],"n":1000}`, "n", "between 1 and 128"},
		{"stream_options without stream", `{"model":"m","messages":[{"role":"user","content":"x"}],"stream_options":{"include_usage":true}}`, "stream_options", "only allowed when stream is true"},
		{"stop number", `{"model":"m","messages":[{"role":"user","content":"x"}],"stop":5}`, "stop", "string or an array"},
		{"tool without name", `{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{}}]}`, "tools[0].function.name", "function name"},
		{"tool bad type", `{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"magic","function":{"name":"f"}}]}`, "tools[0].type", "invalid tool type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := DecodeChatRequest([]byte(tt.body))
			if tt.msg == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if string(req.Raw) != tt.body {
					t.Fatal("Raw is not the body")
				}
				return
			}
			e, ok := AsError(err)
			if !ok || e.Status != 400 || e.Type != TypeInvalidRequest {
				t.Fatalf("want a 400 invalid_request_error, got %#v", err)
			}
			if e.Param != tt.param || !strings.Contains(e.Message, tt.msg) {
				t.Fatalf("got param %q message %q; want %q containing %q", e.Param, e.Message, tt.param, tt.msg)
			}
		})
	}
}

func TestContentRoundTrip(t *testing.T) {
	for _, in := range []string{`"hi"`, `null`, `[{"type":"text","text":"a"}]`, `[]`, `""`} {
		var c Content
		if err := json.Unmarshal([]byte(in), &c); err != nil {
			t.Fatal(err)
		}
		out, _ := json.Marshal(c)
		if string(out) != in {
			t.Errorf("%s → %s", in, out)
		}
	}
	req, _ := DecodeChatRequest([]byte(`{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"u"}},{"type":"text","text":"b"}]}],"max_tokens":5,"max_completion_tokens":7,"stop":["x","y"]}`))
	if got := req.Messages[0].Content.String(); got != "a\nb" {
		t.Errorf("String() = %q", got)
	}
	if !req.HasImages() || req.OutputLimit() != 7 || req.Choices() != 1 || strings.Join(req.StopSequences(), ",") != "x,y" {
		t.Errorf("helpers wrong: %v %v %v %v", req.HasImages(), req.OutputLimit(), req.Choices(), req.StopSequences())
	}
}

func TestMicros(t *testing.T) {
	tests := []struct {
		usd  float64
		want Micros
		str  string
	}{{0, 0, "0.000000"}, {1.5, 1_500_000, "1.500000"}, {0.0000015, 2, "0.000002"}, {-2.25, -2_250_000, "-2.250000"}, {123.456789, 123_456_789, "123.456789"}}
	for _, tt := range tests {
		if got := USD(tt.usd); got != tt.want || got.String() != tt.str {
			t.Errorf("USD(%v) = %d %q, want %d %q", tt.usd, got, got.String(), tt.want, tt.str)
		}
	}
}

func TestDecodeEmbeddingRequest(t *testing.T) {
	tests := []struct {
		name string
		body string
		n    int
		msg  string
	}{
		{"string", `{"model":"e","input":"hello"}`, 1, ""},
		{"strings", `{"model":"e","input":["a","b"]}`, 2, ""},
		{"tokens", `{"model":"e","input":[1,2,3]}`, 1, ""},
		{"token arrays", `{"model":"e","input":[[1],[2]]}`, 2, ""},
		{"empty", `{"model":"e","input":[]}`, 0, "non-empty"},
		{"empty string", `{"model":"e","input":[""]}`, 0, "must not be empty"},
		{"bad format", `{"model":"e","input":"x","encoding_format":"hex"}`, 0, "encoding_format"},
		{"object input", `{"model":"e","input":{"a":1}}`, 0, "input must be"},
		{"no model", `{"input":"x"}`, 0, "model"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := DecodeEmbeddingRequest([]byte(tt.body))
			if tt.msg != "" {
				if err == nil || !strings.Contains(err.Error(), tt.msg) {
					t.Fatalf("err = %v, want %q", err, tt.msg)
				}
				if e, ok := AsError(err); !ok || e.Status != 400 {
					t.Fatalf("not a 400: %#v", err)
				}
				return
			}
			if err != nil || req.Input.Len() != tt.n {
				t.Fatalf("req %+v err %v", req, err)
			}
			out, _ := json.Marshal(req.Input)
			var a, b any
			_ = json.Unmarshal(out, &a)
			var m map[string]json.RawMessage
			_ = json.Unmarshal([]byte(tt.body), &m)
			_ = json.Unmarshal(m["input"], &b)
			if string(mustJSON(a)) != string(mustJSON(b)) {
				t.Fatalf("input round trip %s != %s", out, m["input"])
			}
		})
	}
}

func mustJSON(v any) []byte { b, _ := json.Marshal(v); return b }

// FuzzDecodeChatRequest: no input panics, and every rejection is a 400 in
// the OpenAI shape.
func FuzzDecodeChatRequest(f *testing.F) {
	f.Add([]byte(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`))
	f.Add([]byte(`{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}],"stop":["a"],"tools":[{"type":"function","function":{"name":"f","parameters":{}}}]}`))
	f.Add([]byte(`{"model":"m","messages":[{"role":"assistant","content":null,"tool_calls":[{"function":{"arguments":"{}"}}]}],"n":2,"stream":true,"stream_options":{"include_usage":true}}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"messages":{"0":1}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := DecodeChatRequest(body)
		if err != nil {
			e, ok := AsError(err)
			if !ok || e.Status != 400 || e.Type != TypeInvalidRequest || e.Message == "" {
				t.Fatalf("rejection not a 400 envelope: %#v", err)
			}
			return
		}
		_ = req.OutputLimit()
		_ = req.StopSequences()
		_ = req.HasImages()
		for _, m := range req.Messages {
			_ = m.Content.String()
		}
		if _, err := SetField(req.Raw, "model", []byte(`"x"`)); err != nil {
			t.Fatalf("decoded body cannot be patched: %v", err)
		}
	})
}
