package httpapi

import (
	"reflect"
	"testing"

	"github.com/tollgate/tollgate/pkg/llm"
)

// FuzzDecodeChatMatchesEncodingJSON: the fast decoder accepts exactly what
// encoding/json accepts and reads the same request from it.
func FuzzDecodeChatMatchesEncodingJSON(f *testing.F) {
	f.Add([]byte(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`))
	f.Add([]byte(`{"model":"m","messages":[{"role":"user","content":"caf\u00e9 \"q\""}],"stop":["a"],"n":2}`))
	f.Add([]byte(`{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"}]}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}]}`))
	f.Add([]byte(`{"model":"m","messages":[{"role":"user","content":"x"}],"tool_choice":"auto","response_format":{"type":"json_schema","json_schema":{"name":"s","schema":{"enum":["é"]}}}}`))
	f.Add([]byte(`{"MODEL":"m","messages":[{"role":"user","content":"\xff"}]}`))
	f.Add([]byte(`{"model":"m","model":"n","messages":[{"role":"user","content":"x"}]} `))
	f.Fuzz(func(t *testing.T, body []byte) {
		fast, errFast := decodeChat(body)
		std, errStd := llm.DecodeChatRequest(body)
		if (errFast == nil) != (errStd == nil) {
			t.Fatalf("fast err %v, std err %v for %q", errFast, errStd, body)
		}
		if errStd != nil {
			if errFast.Error() != errStd.Error() {
				t.Fatalf("messages differ: %q vs %q", errFast, errStd)
			}
			return
		}
		fast.Raw, std.Raw = nil, nil
		if !reflect.DeepEqual(fast, std) {
			t.Fatalf("decoded differently:\nfast %+v\nstd  %+v\nfrom %q", fast, std, body)
		}
	})
}

// TestDecodeChatInvalidUTF8: a body with invalid UTF-8 decodes as
// encoding/json decodes it: strings get U+FFFD, raw values (tool parameters,
// json_schema, tool_choice, stop) keep the client's bytes, as Raw does.
// sonic alone rewrote the raw values too (FuzzDecodeChatMatchesEncodingJSON).
func TestDecodeChatInvalidUTF8(t *testing.T) {
	const user = `"messages":[{"role":"user","content":"x"}]`
	tests := []struct {
		name string
		body string
		raw  func(*llm.ChatRequest) string // the raw value that must survive
		want string
	}{
		{"tool parameters", `{"model":"m",` + user + `,"tools":[{"type":"function","function":{"name":"f","parameters":{"a":"` + "\xff" + `"}}}]}`,
			func(r *llm.ChatRequest) string { return string(r.Tools[0].Function.Parameters) }, `{"a":"` + "\xff" + `"}`},
		{"json schema surrogate", `{"model":"m",` + user + `,"response_format":{"type":"json_schema","json_schema":{"a":"` + "\xed\xa0\x80" + `"}}}`,
			func(r *llm.ChatRequest) string { return string(r.ResponseFormat.JSONSchema) }, `{"a":"` + "\xed\xa0\x80" + `"}`},
		{"tool choice key", `{"model":"m",` + user + `,"tool_choice":{"` + "\xc3" + `":1}}`,
			func(r *llm.ChatRequest) string { return string(r.ToolChoice) }, `{"` + "\xc3" + `":1}`},
		{"stop", `{"model":"m",` + user + `,"stop":"` + "\xff" + `"}`,
			func(r *llm.ChatRequest) string { return string(r.Stop) }, `"` + "\xff" + `"`},
		{"content string", `{"model":"m","messages":[{"role":"user","content":"a` + "\xff" + `b"}]}`,
			func(r *llm.ChatRequest) string { return r.Messages[0].Content.Text }, "a\uFFFDb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fast, err := decodeChat([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			std, err := llm.DecodeChatRequest([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if got := tt.raw(fast); got != tt.want {
				t.Errorf("fast decoder: %q, want %q", got, tt.want)
			}
			if got := tt.raw(std); got != tt.want {
				t.Errorf("encoding/json: %q, want %q", got, tt.want)
			}
			if !reflect.DeepEqual(fast, std) {
				t.Errorf("decoded differently:\nfast %+v\nstd  %+v", fast, std)
			}
		})
	}
}
