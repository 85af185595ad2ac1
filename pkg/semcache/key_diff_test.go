package semcache

import (
	"strings"
	"testing"

	"github.com/tollgate/tollgate/pkg/llm"
)

// sameAsReference fails unless computeKeys agrees with the reference
// implementation (key_ref_test.go) on every key, the query and the reason.
func sameAsReference(t *testing.T, r Request, turns int) {
	t.Helper()
	want, werr := refComputeKeys(r, turns)
	got, gerr := computeKeys(r, turns)
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("error %v, reference error %v", gerr, werr)
	}
	if werr != nil {
		return
	}
	if got.exact != want.exact || got.scope != want.scope || got.query != want.query || got.noSemantic != want.noSemantic {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}

func rawRequest(body string) Request {
	return Request{Tenant: "t1", Model: "gpt-4o-mini", Chat: &llm.ChatRequest{Raw: []byte(body)}}
}

// diffBodies are request bodies on which the canonicalisers must agree: the
// other tests' bodies, then the corners of JSON and of the rules.
func diffBodies() []string {
	bodies := []string{baseBody, benchBody, "{}", " \t\r\n{}", `{"messages":[]}`}
	for _, extra := range []string{
		// Strings.
		`"x":"\u00e9"`, `"x":"é"`, `"x":"\ud83d\ude00"`, `"x":"😀"`, `"x":"\ud83d"`, `"x":"\ude00\ud83d"`,
		`"x":"\ud83d\u0041"`, `"x":"\ud83dx"`, `"x":"\u0000\u001f\u007f\u0080\u00ad\u200b\ufeff\uffff\ufffd"`,
		"\"x\":\"\x7f\xff\xfe\xc3(\xed\xa0\x80\xef\xbf\xbd\"", `"x":"\"\\\/\b\f\n\r\t'"`, `"x":"\uD83D\uDE00\uDBFF\uDFFF"`,
		"\"x\":\"\U0010ffff\u2028\u00a0\"", `"\u0078":1,"x":2`, `"\ud800":1,"\ufffd":2`, "\"\xff\":1,\"\xfe\":2",
		// Numbers.
		`"n":[-0,-0.0,-0e0,0,1,1.0,1e0,10e-1,1E+2,1e400,-1e400,1e-400,0.1,1.5e-7,123456789012345678,1234567890123456789,-9223372036854775808,9223372036854775808,9007199254740993,1e15,1e21,123456789012345678901234567890]`,
		`"seed":9007199254740993`, `"seed":null`, `"seed":-0`, `"seed":"x"`,
		`"temperature":-0`, `"temperature":-0.0`, `"temperature":1e400`, `"temperature":1e308`, `"temperature":"0.5"`,
		`"temperature":null`, `"top_p":0.05`, `"top_p":0.15`, `"frequency_penalty":[1]`, `"presence_penalty":true`,
		// Scope fields, null and duplicated.
		`"tools":null`, `"tool_choice":null,"functions":[],"function_call":"auto"`, `"response_format":null`,
		`"response_format":{"b":1,"a":2}`, `"stop":null`, `"logit_bias":{"2":1,"10":2}`, `"audio":{},"verbosity":"low"`,
		`"modalities":["text"],"prediction":{"type":"content"},"web_search_options":{},"reasoning_effort":"low"`,
		`"tools":[1],"tools":[2]`, `"temperature":0.9,"temperature":0.2`, `"response_format":1,"response_format":2`,
		// Ignored and replaced members.
		`"model":"x","model":1`, `"stream":true,"stream":false`, `"user":{"a":[1,2]}`, `"metadata":null`,
		// Objects.
		`"o":{"b":1,"a":{"d":[{"z":1,"y":2}],"c":null},"b":3}`, `"o":{"a":1,"a":{"b":1,"b":2}}`, `"o":{ }`, `"o":[ ]`,
		`"o":{"ab":1,"a":2,"a\u0000":3,"A":4,"é":5,"e":6}`,
		// Messages, duplicated.
		`"messages":[{"role":"user","content":"other"}]`, `"messages":1`, `"messages":[{"role":"user","content":"a"}],"messages":{}`,
		`"messages":null`, `"messages":[]`, `"messages":[1,"x",null,[],{"role":"user","content":"a"}]`,
	} {
		bodies = append(bodies, with(extra))
	}
	msg := func(ms ...string) string { return `{"model":"m","messages":[` + strings.Join(ms, ",") + `]}` }
	for _, m := range []string{
		`{"role":"user","content":null}`, `{"role":"user"}`, `{"role":"user","content":""}`, `{"role":"user","content":" \n"}`,
		`{"role":"user","content":[]}`, `{"role":"user","content":[{"type":"text","text":"a"}]}`,
		`{"role":"user","content":[{"text":"a","type":"text"}]}`, `{"role":"user","content":[{"type":"t\u0065xt","text":"a\"b"}]}`,
		`{"role":"user","content":[{"type":"text","text":"a","x":1}]}`, `{"role":"user","content":[{"type":"text","text":1}]}`,
		`{"role":"user","content":[{"type":"text"}]}`, `{"role":"user","content":[{"type":"text","text":null}]}`,
		`{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}`,
		`{"role":"user","content":[{"type":"text","text":"a","type":"text"}]}`, `{"role":"user","content":[{"type":"text","text":"a","text":"b"}]}`,
		`{"role":"user","content":[{"type":"text","text":"a"},1]}`, `{"role":"user","content":[{"type":"image_url","image_url":{}}]}`,
		`{"role":"user","content":[[{"type":"text","text":"a"}]]}`, `{"role":"user","content":{"type":"text","text":"a"}}`,
		`{"role":"user","content":[{"type":"text","text":"a\u0000\u00e9\ud83d"}]}`, `{"role":"user","content":"\ud83d\ude00 \u200b"}`,
		`{"role":"user","content":5}`, `{"role":"user","content":"a","content":null}`, `{"role":"user","content":null,"content":"b"}`,
		`{"role":"system","role":"user","content":"a"}`, `{"role":"u\u0073er","content":"a"}`, `{"role":5,"content":"a"}`,
		`{"content":"a","role":"developer"}`, `{"role":"assistant","content":null,"tool_calls":[{"id":"1"}]}`,
		`{"role":"tool","content":"r","tool_call_id":"1"}`, `1`, `null`, `"user"`, `[]`,
	} {
		bodies = append(bodies, msg(m), msg(`{"role":"system","content":"s"}`, m), msg(m, `{"role":"user","content":"q"}`),
			msg(`{"role":"user","content":"a"}`, `{"role":"assistant","content":"b"}`, m))
	}
	// Not requests: every one must be refused by both.
	bodies = append(bodies, "", " ", "null", "[]", `"x"`, "1", "true", "{", "{}}", "{} x", `{"a":1} {`, `{"a" 1}`, `{"a":1,}`,
		`{,"a":1}`, `{"a":01}`, `{"a":-}`, `{"a":1.}`, `{"a":.5}`, `{"a":1e}`, `{"a":+1}`, `{"a":tru}`, `{"a":truex}`,
		`{"a":nul}`, `{"a":"\x"}`, `{"a":"\u12"}`, `{"a":"\u12g4"}`, `{"a":"\ud83d\u12g4"}`, "{\"a\":\"\n\"}", `{"a":"`,
		`{"a":[1,]}`, `{"a":[,1]}`, `{"a":[1 2]}`, `{"a":{"b"}}`, `{a:1}`, `{"a":'x'}`, "\ufeff{}", `{"a":NaN}`, `{"a":Infinity}`,
		`{"a":1}garbage`, `{"a":[]]}`, `{"a":1`, `{"a"`, `{"a":`, `{"a":[`, `{"a":{`)
	return bodies
}

func TestKeysMatchReference(t *testing.T) {
	for i, body := range diffBodies() {
		for turns := 0; turns <= 3; turns++ {
			r := rawRequest(body)
			sameAsReference(t, r, turns)
			r.Tenant, r.Model = "", "route/with \"quotes\" \x00 \xff é"
			sameAsReference(t, r, turns)
		}
		if t.Failed() {
			t.Fatalf("body %d: %q", i, body)
		}
	}
}

// The typed view (no Raw) goes through the same canonicaliser.
func TestKeysMatchReferenceWithoutRaw(t *testing.T) {
	for _, body := range []string{baseBody, benchBody, with(`"seed":7,"tools":[{"type":"function","function":{"name":"f"}}]`)} {
		r := req(t, "t1", body)
		r.Chat.Raw = nil
		sameAsReference(t, r, 1)
	}
	sameAsReference(t, Request{Tenant: "t1"}, 1)
}

// Nesting deeper than encoding/json's limit is refused by both.
func TestKeysMatchReferenceDepth(t *testing.T) {
	for _, depth := range []int{maxDepth - 2, maxDepth - 1, maxDepth, maxDepth + 1} {
		body := `{"a":` + strings.Repeat("[", depth-1) + strings.Repeat("]", depth-1) + `}`
		sameAsReference(t, rawRequest(body), 1)
		body = `{"a":` + strings.Repeat(`{"a":`, depth-1) + "1" + strings.Repeat("}", depth-1) + `}`
		sameAsReference(t, rawRequest(body), 1)
	}
	if _, err := computeKeys(rawRequest(`{"a":`+strings.Repeat("[", maxDepth-1)+strings.Repeat("]", maxDepth-1)+`}`), 1); err != nil {
		t.Errorf("depth %d refused: %v", maxDepth, err)
	}
}

func FuzzKeysMatchReference(f *testing.F) {
	for _, body := range diffBodies() {
		f.Add(body, uint8(1), "gpt-4o-mini")
	}
	f.Fuzz(func(t *testing.T, body string, turns uint8, model string) {
		r := rawRequest(body)
		r.Model = model
		sameAsReference(t, r, int(turns%5))
	})
}

// BenchmarkExactKeyReference is BenchmarkExactKey's request through the
// reference implementation, for before/after figures from one run.
func BenchmarkExactKeyReference(b *testing.B) {
	r := req(b, "t1", benchBody)
	b.SetBytes(int64(len(benchBody)))
	b.ReportAllocs()
	for b.Loop() {
		if k, err := refComputeKeys(r, 1); err != nil || k.exact == "" {
			b.Fatal("no key")
		}
	}
}
