package httpapi

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/tollgate/tollgate/pkg/llm"
)

// FuzzResponsesDecode: whatever the body, the Responses decoder answers a
// 400 in OpenAI's shape or a request that translates into a valid chat
// request (or a 400 saying why not), and never panics; the translated
// chat body decodes as a client's would, with every message in it.
func FuzzResponsesDecode(f *testing.F) {
	for _, seed := range []string{
		`{"model":"m","input":"hi"}`,
		`{"model":"m","input":[{"role":"user","content":[{"type":"input_text","text":"a"},{"type":"input_image","image_url":"data:image/png;base64,AA","detail":"low"}]}],"instructions":"be terse"}`,
		`{"model":"m","input":[{"type":"function_call","call_id":"c","name":"f","arguments":"{}"},{"type":"function_call_output","call_id":"c","output":[{"type":"input_text","text":"ok"}]}],"tools":[{"type":"function","name":"f","parameters":{"type":"object"}}],"tool_choice":{"type":"function","name":"f"}}`,
		`{"model":"m","input":"x","text":{"format":{"type":"json_schema","name":"s","schema":{"type":"object"},"strict":true}},"reasoning":{"effort":"low"},"max_output_tokens":5,"metadata":{"a":"b"},"stream":true}`,
		`{"model":"m","input":[{"type":"reasoning","id":"r","summary":[]}]}`,
		`{"model":"m","input":"x","Input":"y"}`,
		`{"model":"m","input":[{"role":"assistant","content":[{"type":"refusal","refusal":"no"}]},{"role":"user","content":"\u00e9"}]}`,
		`{"model":"m","input":[],"tools":[{"type":"web_search"}]}`,
		`[1,2]`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := decodeResponses(body)
		if err != nil {
			badRequest(t, err, body)
			return
		}
		chat, input, err := req.chatRequest(nil)
		if err != nil {
			badRequest(t, err, body)
			return
		}
		again, err := llm.DecodeChatRequest(chat.Raw)
		if err != nil {
			t.Fatalf("the translated chat body does not decode: %v\n%s\nfrom %q", err, chat.Raw, body)
		}
		if len(again.Messages) < len(input) || again.Model != req.Model || again.Stream != req.Stream {
			t.Fatalf("the translation lost something: %s from %q", chat.Raw, body)
		}
		if _, err := json.Marshal(req.newResponse(&server{Options: Options{Now: fixedNow}})); err != nil {
			t.Fatalf("the response object does not marshal: %v", err)
		}
	})
}

func badRequest(t *testing.T, err error, body []byte) {
	t.Helper()
	e, ok := llm.AsError(err)
	if !ok || e.Status != http.StatusBadRequest || e.Message == "" {
		t.Fatalf("error %v (%T) is not a 400 with a message, for %q", err, err, body)
	}
}

func fixedNow() time.Time { return time.Unix(1_700_000_000, 0) }

// BenchmarkResponsesTranslate: decoding a Responses body with history and
// a tool, and building the chat request it becomes (on every request's
// path, before the gateway).
func BenchmarkResponsesTranslate(b *testing.B) {
	body := []byte(`{"model":"m","instructions":"You are terse.","input":[
		{"role":"user","content":[{"type":"input_text","text":"What is the weather in Paris today, and should I take an umbrella?"}]},
		{"type":"function_call","call_id":"call_1","name":"get_weather","arguments":"{\"city\":\"Paris\"}"},
		{"type":"function_call_output","call_id":"call_1","output":"sunny, 21C"},
		{"role":"user","content":"Thanks. And tomorrow?"}],
		"tools":[{"type":"function","name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}],
		"max_output_tokens":200,"temperature":0.2}`)
	b.ReportAllocs()
	for b.Loop() {
		req, err := decodeResponses(body)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := req.chatRequest(nil); err != nil {
			b.Fatal(err)
		}
	}
}
