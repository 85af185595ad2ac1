package providers

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/pkg/llm"
)

func TestOpenAIServesResponses(t *testing.T) {
	on, off := true, false
	for _, tc := range []struct {
		name    string
		cfg     OpenAIConfig
		want    bool
		wantErr string
	}{
		{"openai by default", OpenAIConfig{BaseURL: "https://api.openai.com/v1"}, true, ""},
		{"openai turned off", OpenAIConfig{BaseURL: "https://API.openai.com/v1", ResponsesAPI: &off}, false, ""},
		{"other hosts off by default", OpenAIConfig{BaseURL: "https://api.groq.com/openai/v1"}, false, ""},
		{"other host turned on", OpenAIConfig{BaseURL: "http://localhost:8000/v1", ResponsesAPI: &on}, true, ""},
		{"azure flavor refused", OpenAIConfig{BaseURL: "https://x.openai.azure.com", Flavor: FlavorAzure, APIVersion: "v", ResponsesAPI: &on}, false, "responses_api: not served by the azure flavor"},
		{"azure flavor off by default", OpenAIConfig{BaseURL: "https://x.openai.azure.com", Flavor: FlavorAzure, APIVersion: "v"}, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Name = "up"
			c, err := NewOpenAI(tc.cfg)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := c.ServesResponses(); got != tc.want {
				t.Errorf("ServesResponses = %v, want %v", got, tc.want)
			}
		})
	}
}

// responsesUpstream serves POST /v1/responses with answer (JSON, or SSE
// when the body asks for a stream) and records what it receives.
type responsesUpstream struct {
	mu     sync.Mutex
	path   string
	header http.Header
	body   map[string]any
}

func (u *responsesUpstream) serve(t *testing.T, status int, answer string) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.path, u.header = r.URL.Path, r.Header.Clone()
		u.body = nil
		_ = json.Unmarshal(b, &u.body)
		u.mu.Unlock()
		if strings.HasPrefix(answer, "event:") {
			w.Header().Set("Content-Type", "text/event-stream")
		} else {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Retry-After", "7")
		}
		w.WriteHeader(status)
		io.WriteString(w, answer)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/v1"
}

func responder(t *testing.T, base string) *OpenAI {
	t.Helper()
	on := true
	c, err := NewOpenAI(OpenAIConfig{Name: "up", BaseURL: base, APIKey: "sk-test-123456", ResponsesAPI: &on})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// nativeRequest is a Responses call as the gateway makes it: the chat
// translation says the client's cap is 300, the gateway reserved max.
func nativeRequest(t testing.TB, max int) *Request {
	chat := mustChat(t, `{"model":"alias","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":300}`)
	chat.ResponsesBody = json.RawMessage(`{"model":"alias","input":[{"type":"reasoning","id":"rs_0","summary":[],"encrypted_content":"gAAA"},{"role":"user","content":"hi"}],"max_output_tokens":300,"store":false,"include":["reasoning.encrypted_content"],"x_unknown":{"kept":true}}`)
	return &Request{Chat: chat, Model: "gpt-5-2025", MaxTokens: max}
}

const nativeOutput = `[{"type":"reasoning","id":"rs_1","summary":[{"type":"summary_text","text":"Thinking."}],"encrypted_content":"gAAAAB"},` +
	`{"type":"message","id":"msg_1","status":"completed","role":"assistant","content":[{"type":"output_text","text":"Hello","annotations":[{"type":"url_citation","url":"https://x"}],"logprobs":[]}]}]`

const nativeUsage = `{"input_tokens":20,"input_tokens_details":{"cached_tokens":8},"output_tokens":9,"output_tokens_details":{"reasoning_tokens":4},"total_tokens":29}`

func TestOpenAIRespond(t *testing.T) {
	answer := func(status, extra, output string) string {
		return `{"id":"resp_up","object":"response","created_at":1700000000,"model":"gpt-5-2025","status":"` + status + `"` + extra + `,"output":` + output + `,"usage":` + nativeUsage + `}`
	}
	call := `[{"type":"function_call","id":"fc_1","call_id":"call_9","name":"get_weather","arguments":"{\"city\":\"Paris\"}","status":"completed"}]`
	for _, tc := range []struct {
		name      string
		status    int
		answer    string
		max       int
		wantLimit float64
		check     func(t *testing.T, resp *llm.ChatResponse, err error)
	}{
		{"text with reasoning, cap lowered to the reservation", 200, answer("completed", "", nativeOutput), 100, 100, func(t *testing.T, resp *llm.ChatResponse, err error) {
			if err != nil {
				t.Fatal(err)
			}
			m := resp.Choices[0].Message
			if m.Content.String() != "Hello" || m.ReasoningContent != "Thinking." || resp.Choices[0].FinishReason != "stop" || resp.Model != "gpt-5-2025" || resp.Raw != nil {
				t.Errorf("response = %+v", resp)
			}
			u := resp.Usage
			if u.PromptTokens != 20 || u.CompletionTokens != 9 || u.TotalTokens != 29 || u.CachedTokens() != 8 || u.CompletionTokensDetails.ReasoningTokens != 4 {
				t.Errorf("usage = %+v", u)
			}
			if string(resp.ResponsesOutput) != nativeOutput {
				t.Errorf("output = %s, want the upstream's bytes", resp.ResponsesOutput)
			}
		}},
		{"the client's cap when it is lower", 200, answer("completed", "", nativeOutput), 1000, 300, nil},
		{"function call", 200, answer("completed", "", call), 100, 100, func(t *testing.T, resp *llm.ChatResponse, err error) {
			if err != nil {
				t.Fatal(err)
			}
			m := resp.Choices[0].Message
			if resp.Choices[0].FinishReason != "tool_calls" || len(m.ToolCalls) != 1 || m.ToolCalls[0].ID != "call_9" || m.ToolCalls[0].Function.Arguments != `{"city":"Paris"}` || !m.Content.Null {
				t.Errorf("message = %+v, finish %q", m, resp.Choices[0].FinishReason)
			}
		}},
		{"incomplete at the cap", 200, answer("incomplete", `,"incomplete_details":{"reason":"max_output_tokens"}`, nativeOutput), 100, 100, func(t *testing.T, resp *llm.ChatResponse, err error) {
			if err != nil || resp.Choices[0].FinishReason != "length" {
				t.Errorf("%v %+v", err, resp)
			}
		}},
		{"failed response", 200, answer("failed", `,"error":{"code":"server_error","message":"boom"}`, "[]"), 100, 100, func(t *testing.T, resp *llm.ChatResponse, err error) {
			e := asLLMError(t, err)
			if e.Status != 502 || !e.Retryable || e.Code != "server_error" || !strings.Contains(e.Message, "boom") {
				t.Errorf("error = %+v", e)
			}
		}},
		{"rate limited", 429, `{"error":{"message":"slow down","type":"rate_limit_error","code":"rate_limit_exceeded"}}`, 100, 100, func(t *testing.T, resp *llm.ChatResponse, err error) {
			e := asLLMError(t, err)
			if e.Status != 429 || !e.Retryable || e.RetryAfter != 7*time.Second || e.Type != "rate_limit_error" {
				t.Errorf("error = %+v", e)
			}
		}},
		{"server error", 500, `{"error":{"message":"oops","type":"server_error"}}`, 100, 100, func(t *testing.T, resp *llm.ChatResponse, err error) {
			if e := asLLMError(t, err); e.Status != 500 || !e.Retryable {
				t.Errorf("error = %+v", e)
			}
		}},
		{"malformed answer", 200, `{"id":"resp_up","status":"completed"}`, 100, 100, func(t *testing.T, resp *llm.ChatResponse, err error) {
			if e := asLLMError(t, err); e.Status != 502 {
				t.Errorf("error = %+v", e)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := &responsesUpstream{}
			c := responder(t, up.serve(t, tc.status, tc.answer))
			resp, err := c.Respond(context.Background(), nativeRequest(t, tc.max))
			up.mu.Lock()
			defer up.mu.Unlock()
			if up.path != "/v1/responses" || up.header.Get("Authorization") != "Bearer sk-test-123456" {
				t.Errorf("path %q, auth %q", up.path, up.header.Get("Authorization"))
			}
			b := up.body
			if b["model"] != "gpt-5-2025" || b["max_output_tokens"] != tc.wantLimit || b["store"] != false || b["stream"] != nil {
				t.Errorf("model %v, max_output_tokens %v (want %v), store %v, stream %v", b["model"], b["max_output_tokens"], tc.wantLimit, b["store"], b["stream"])
			}
			if in, _ := b["input"].([]any); len(in) != 2 || b["x_unknown"] == nil || b["include"] == nil {
				t.Errorf("the client's fields did not pass untouched: %v", b)
			}
			if tc.check != nil {
				tc.check(t, resp, err)
			}
		})
	}
}

// sse renders events in the Responses stream shape.
func sse(events ...string) string {
	var b strings.Builder
	for _, e := range events {
		var head struct {
			Type string `json:"type"`
		}
		_ = json.Unmarshal([]byte(e), &head)
		b.WriteString("event: " + head.Type + "\ndata: " + e + "\n\n")
	}
	return b.String()
}

const (
	evCreated    = `{"type":"response.created","sequence_number":0,"response":{"id":"resp_up","object":"response","status":"in_progress","model":"gpt-5-2025","output":[]}}`
	evInProgress = `{"type":"response.in_progress","sequence_number":1,"response":{"id":"resp_up","object":"response","status":"in_progress","model":"gpt-5-2025","output":[]}}`
)

func TestOpenAIStreamResponse(t *testing.T) {
	completed := `{"type":"response.completed","sequence_number":9,"response":{"id":"resp_up","object":"response","status":"completed","model":"gpt-5-2025","output":[],"usage":` + nativeUsage + `}}`
	for _, tc := range []struct {
		name  string
		body  string
		check func(t *testing.T, chunks []*llm.ChatChunk, err error)
	}{
		{"text and a function call", sse(evCreated, evInProgress,
			`{"type":"response.output_item.added","sequence_number":2,"output_index":0,"item":{"type":"reasoning","id":"rs_1","summary":[]}}`,
			`{"type":"response.output_item.added","sequence_number":3,"output_index":1,"item":{"type":"message","id":"msg_1","role":"assistant","content":[]}}`,
			`{"type":"response.output_text.delta","sequence_number":4,"item_id":"msg_1","output_index":1,"content_index":0,"delta":"Hel"}`,
			`{"type":"response.output_text.delta","sequence_number":5,"item_id":"msg_1","output_index":1,"content_index":0,"delta":"lo"}`,
			`{"type":"response.output_item.added","sequence_number":6,"output_index":2,"item":{"type":"function_call","id":"fc_1","call_id":"call_9","name":"get_weather","arguments":""}}`,
			`{"type":"response.function_call_arguments.delta","sequence_number":7,"item_id":"fc_1","output_index":2,"delta":"{\"city\":\"Paris\"}"}`,
			`{"type":"response.output_item.done","sequence_number":8,"output_index":2,"item":{"type":"function_call","id":"fc_1","call_id":"call_9","name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}`,
			completed), func(t *testing.T, chunks []*llm.ChatChunk, err error) {
			if err != nil {
				t.Fatal(err)
			}
			if len(chunks) != 10 {
				t.Fatalf("%d chunks, want one per event (10)", len(chunks))
			}
			var text, args string
			for i, c := range chunks {
				if len(c.ResponsesEvent) == 0 || c.ID != "resp_up" || c.Model != "gpt-5-2025" {
					t.Errorf("chunk %d: event %q, id %q, model %q", i, c.ResponsesEvent, c.ID, c.Model)
				}
				for _, ch := range c.Choices {
					if ch.Delta.Content != nil {
						text += *ch.Delta.Content
					}
					for _, tc := range ch.Delta.ToolCalls {
						if *tc.Index != 0 {
							t.Errorf("tool call index %d, want 0 (the first call, whatever its output_index)", *tc.Index)
						}
						args += tc.Function.Arguments
					}
				}
			}
			if !strings.Contains(string(chunks[0].ResponsesEvent), `"response.created"`) {
				t.Errorf("first event = %s", chunks[0].ResponsesEvent)
			}
			if text != "Hello" || args != `{"city":"Paris"}` {
				t.Errorf("text %q, arguments %q", text, args)
			}
			last := chunks[len(chunks)-1]
			if last.Usage == nil || last.Usage.PromptTokens != 20 || last.Usage.CachedTokens() != 8 || *last.Choices[0].FinishReason != "tool_calls" {
				t.Errorf("last chunk = %+v", last)
			}
		}},
		{"failed at once: an error before the first chunk", sse(evCreated, evInProgress,
			`{"type":"response.failed","sequence_number":2,"response":{"id":"resp_up","status":"failed","output":[],"error":{"code":"server_error","message":"overloaded"}}}`),
			func(t *testing.T, chunks []*llm.ChatChunk, err error) {
				if len(chunks) != 0 {
					t.Errorf("%d chunks before the failure, want none (created and in_progress are held)", len(chunks))
				}
				if e := asLLMError(t, err); e.Status != 502 || !e.Retryable || e.Code != "server_error" {
					t.Errorf("error = %+v", e)
				}
			}},
		{"error event", sse(evCreated, `{"type":"error","sequence_number":1,"code":"rate_limit_exceeded","message":"slow down","param":null}`),
			func(t *testing.T, chunks []*llm.ChatChunk, err error) {
				if e := asLLMError(t, err); e.Status != 429 || e.Code != "rate_limit_exceeded" || !e.Retryable {
					t.Errorf("error = %+v", e)
				}
			}},
		{"no terminal event", sse(evCreated, `{"type":"response.output_text.delta","sequence_number":1,"output_index":0,"content_index":0,"delta":"Hi"}`),
			func(t *testing.T, chunks []*llm.ChatChunk, err error) {
				if e := asLLMError(t, err); e.Status != 502 || !strings.Contains(e.Message, "response.completed") || len(chunks) != 2 {
					t.Errorf("chunks %d, error = %+v", len(chunks), e)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := &responsesUpstream{}
			c := responder(t, up.serve(t, 200, tc.body))
			st, err := c.StreamResponse(context.Background(), nativeRequest(t, 100))
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			var chunks []*llm.ChatChunk
			for {
				ch, rerr := st.Recv()
				if rerr != nil {
					if rerr == io.EOF {
						rerr = nil
					}
					err = rerr
					break
				}
				chunks = append(chunks, ch)
			}
			up.mu.Lock()
			if up.body["stream"] != true || up.body["max_output_tokens"] != float64(100) || up.header.Get("Accept") != "text/event-stream" {
				t.Errorf("stream %v, max_output_tokens %v, accept %q", up.body["stream"], up.body["max_output_tokens"], up.header.Get("Accept"))
			}
			up.mu.Unlock()
			tc.check(t, chunks, err)
		})
	}
}

// TestOpenAIRespondNeedsItsSetting: an upstream not configured for the
// Responses API is never sent a Responses body.
func TestOpenAIRespondNeedsItsSetting(t *testing.T) {
	up := &responsesUpstream{}
	c, err := NewOpenAI(OpenAIConfig{Name: "up", BaseURL: up.serve(t, 200, "{}")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Respond(context.Background(), nativeRequest(t, 100)); err == nil || !strings.Contains(err.Error(), "not configured") {
		t.Errorf("err = %v", err)
	}
	if up.path != "" {
		t.Errorf("the upstream was called at %q", up.path)
	}
}

// FuzzResponsesEvents: whatever an upstream sends as Responses stream
// events, the decoder returns chunks or an error, never panics, and every
// chunk carries the event it came from.
func FuzzResponsesEvents(f *testing.F) {
	for _, e := range []string{evCreated, evInProgress,
		`{"type":"response.output_item.added","output_index":3,"item":{"type":"function_call","call_id":"c","name":"n","arguments":""}}`,
		`{"type":"response.function_call_arguments.delta","output_index":3,"delta":"{}"}`,
		`{"type":"response.output_text.delta","delta":"hi"}`,
		`{"type":"response.completed","response":{"status":"incomplete","incomplete_details":{"reason":"content_filter"},"usage":{"input_tokens":1}}}`,
		`{"type":"response.failed","response":{"status":"failed","error":{"code":42,"message":"x"}}}`,
		`{"type":"error","code":null,"message":""}`, `[DONE]`, `{"type":"response.completed"}`, `nonsense`} {
		f.Add([]byte(e), []byte(""))
	}
	f.Fuzz(func(t *testing.T, data, event []byte) {
		d := &responsesEvents{}
		for range 2 { // twice: the second sees the state the first left
			out, _, err := d.decode("up", data, event, nil)
			if err != nil && len(out) > 0 {
				t.Fatalf("chunks and an error: %v", err)
			}
			for _, c := range out {
				if len(c.ResponsesEvent) == 0 {
					t.Fatal("a chunk without its event")
				}
			}
		}
	})
}
