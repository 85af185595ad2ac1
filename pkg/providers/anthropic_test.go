package providers

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/pkg/llm"
)

func anthropicFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "providers", "anthropic", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fakeAnthropic is an httptest upstream that checks every request has
// Anthropic's shape (path, auth and version headers, no OpenAI auth),
// records it, and answers with reply.
func fakeAnthropic(t *testing.T, wantKey string, reply http.HandlerFunc) (*httptest.Server, func() captured) {
	t.Helper()
	var mu sync.Mutex
	var last captured
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		last = captured{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), body}
		mu.Unlock()
		if r.Method != http.MethodPost || r.URL.Path != "/v1/messages" || r.URL.RawQuery != "" {
			t.Errorf("upstream got %s %s?%s, want POST /v1/messages", r.Method, r.URL.Path, r.URL.RawQuery)
		}
		for k, want := range map[string]string{"X-Api-Key": wantKey, "Anthropic-Version": "2023-06-01",
			"Content-Type": "application/json", "Authorization": ""} {
			if got := r.Header.Get(k); got != want {
				t.Errorf("header %s = %q, want %q", k, got, want)
			}
		}
		if !json.Valid(body) {
			t.Errorf("upstream got invalid JSON: %s", body)
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		reply(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, func() captured { mu.Lock(); defer mu.Unlock(); return last }
}

func replyJSON(body []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Request-Id", "req_011CSHoEeqs5C35K2UUqR7Fy")
		w.Write(body)
	}
}

func replySSE(body []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Write(body)
	}
}

func newTestAnthropic(t testing.TB, cfg AnthropicConfig) *Anthropic {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "claude"
	}
	if cfg.Now == nil {
		cfg.Now = fixedNow
	}
	a, err := NewAnthropic(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestAnthropicRequestGolden pins the exact Messages body sent for a table
// of OpenAI requests.
func TestAnthropicRequestGolden(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		model  string
		stream bool
		apiKey string
	}{
		{name: "plain", model: "claude-haiku-4-5",
			body: `{"model":"cheap","messages":[{"role":"user","content":"Hello"}]}`},
		{name: "system_multiturn", model: "claude-sonnet-4-5",
			body: `{"model":"smart","messages":[` +
				`{"role":"system","content":"You are terse."},` +
				`{"role":"user","content":"Hi <b>there</b> & welcome"},` +
				`{"role":"assistant","content":"Hello."},` +
				`{"role":"developer","content":[{"type":"text","text":"Answer in French."}]},` +
				`{"role":"user","content":"What is 2+2?"},{"role":"user","content":[{"type":"text","text":"Be brief."},{"type":"text","text":""}]},` +
				`{"role":"assistant","content":""}],` +
				`"temperature":1.4,"top_p":0.9,"max_completion_tokens":256,"max_tokens":999,"user":"user-hash-42",` +
				`"seed":7,"logprobs":true,"frequency_penalty":0.5,"x_vendor":{"keep":false}}`},
		{name: "single_system_parts", model: "claude-haiku-4-5",
			body: `{"model":"m","messages":[{"role":"system","content":[{"type":"text","text":"Rule one."},{"type":"text","text":"Rule two."}]},{"role":"user","content":"go"}],"temperature":0.2}`},
		{name: "names", model: "claude-haiku-4-5",
			body: `{"model":"m","messages":[{"role":"system","name":"policy","content":"Be kind."},{"role":"user","name":"alice","content":"Hi, I'm Alice."},{"role":"user","name":"bob","content":"And I'm Bob."}]}`},
		{name: "images", model: "claude-sonnet-4-5",
			body: `{"model":"m","messages":[{"role":"user","content":[` +
				`{"type":"text","text":"Compare these."},` +
				`{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==","detail":"high"}},` +
				`{"type":"image_url","image_url":{"url":"https://example.com/cat.jpg?size=large&v=2"}}]}]}`},
		{name: "tools_auto", model: "claude-haiku-4-5",
			body: `{"model":"m","messages":[{"role":"user","content":"Weather in Paris?"}],"tools":[` +
				`{"type":"function","function":{"name":"get_weather","description":"Current weather","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]},"strict":true}},` +
				`{"type":"function","function":{"name":"get_time"}}]}`},
		{name: "tool_choice_required", model: "claude-haiku-4-5",
			body: `{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],"tool_choice":"required"}`},
		{name: "tool_choice_none", model: "claude-haiku-4-5",
			body: `{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],"tool_choice":"none","parallel_tool_calls":false}`},
		{name: "tool_choice_function", model: "claude-haiku-4-5",
			body: `{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],"tool_choice":{"type":"function","function":{"name":"f"}}}`},
		{name: "parallel_tool_calls_false", model: "claude-haiku-4-5",
			body: `{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],"parallel_tool_calls":false}`},
		{name: "tool_choice_without_tools", model: "claude-haiku-4-5",
			body: `{"model":"m","messages":[{"role":"user","content":"x"}],"tool_choice":"auto","parallel_tool_calls":false}`},
		{name: "tool_results", model: "claude-sonnet-4-5",
			body: `{"model":"m","messages":[` +
				`{"role":"user","content":"Weather and time in Paris?"},` +
				`{"role":"assistant","content":null,"tool_calls":[` +
				`{"id":"toolu_01A","type":"function","function":{"name":"get_weather","arguments":"{\"city\": \"Paris\"}"}},` +
				`{"id":"toolu_01B","type":"function","function":{"name":"get_time","arguments":""}}]},` +
				`{"role":"tool","tool_call_id":"toolu_01A","content":"18°C, cloudy <light rain>"},` +
				`{"role":"tool","tool_call_id":"toolu_01B","content":[{"type":"text","text":"14:05"}]},` +
				`{"role":"user","content":"Thanks. Summarise."},` +
				`{"role":"assistant","content":"Checking once more.","tool_calls":[{"id":"toolu_01C","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Lyon\"}"}}]},` +
				`{"role":"tool","tool_call_id":"toolu_01C","content":""}],` +
				`"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}},{"type":"function","function":{"name":"get_time","parameters":{"type":"object"}}}]}`},
		{name: "stop_string", model: "claude-haiku-4-5",
			body: `{"model":"m","messages":[{"role":"user","content":"count"}],"stop":"\n\n"}`},
		{name: "stop_array", model: "claude-haiku-4-5",
			body: `{"model":"m","messages":[{"role":"user","content":"count"}],"stop":["END","STOP"],"max_tokens":50}`},
		{name: "json_schema", model: "claude-sonnet-4-5",
			body: `{"model":"m","messages":[{"role":"user","content":"Extract the person."}],"response_format":{"type":"json_schema","json_schema":{"name":"person","strict":true,"schema":{"type":"object","properties":{"name":{"type":"string"}},"required":["name"],"additionalProperties":false}}}}`},
		{name: "stream", model: "claude-haiku-4-5", stream: true, apiKey: "sk-ant-byok",
			body: `{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Hello"}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantKey := "sk-ant-config"
			if tt.apiKey != "" {
				wantKey = tt.apiKey
			}
			reply := replyJSON(anthropicFixture(t, "upstream_text.json"))
			if tt.stream {
				reply = replySSE(anthropicFixture(t, "upstream_stream_text.sse"))
			}
			srv, last := fakeAnthropic(t, wantKey, reply)
			a := newTestAnthropic(t, AnthropicConfig{BaseURL: srv.URL, APIKey: "sk-ant-config"})
			req := &Request{Chat: mustChat(t, tt.body), Model: tt.model, APIKey: tt.apiKey}
			if tt.stream {
				streamToEnd(t, a, req)
				if got := last().header.Get("Accept"); got != "text/event-stream" {
					t.Errorf("stream Accept = %q", got)
				}
			} else if _, err := a.Chat(context.Background(), req); err != nil {
				t.Fatal(err)
			}
			golden(t, "anthropic/request_"+tt.name+".json", append(last().body, '\n'))
		})
	}
}

// TestAnthropicMaxTokens: max_tokens is the client's cap lowered to the
// request's MaxTokens (what the gateway reserved); without a client cap,
// MaxTokens; without either, DefaultMaxTokens.
func TestAnthropicMaxTokens(t *testing.T) {
	tests := []struct {
		name       string
		body       string
		maxTokens  int // Request.MaxTokens
		defaultMax int // AnthropicConfig.DefaultMaxTokens
		want       int
	}{
		{name: "request cap", body: `{"model":"m","messages":[{"role":"user","content":"x"}]}`, maxTokens: 64000, defaultMax: 1000, want: 64000},
		{name: "configured default", body: `{"model":"m","messages":[{"role":"user","content":"x"}]}`, defaultMax: 1000, want: 1000},
		{name: "built-in default", body: `{"model":"m","messages":[{"role":"user","content":"x"}]}`, want: 4096},
		{name: "client max_tokens wins", body: `{"model":"m","max_tokens":50,"messages":[{"role":"user","content":"x"}]}`, maxTokens: 64000, want: 50},
		{name: "client max_completion_tokens wins", body: `{"model":"m","max_tokens":999,"max_completion_tokens":70,"messages":[{"role":"user","content":"x"}]}`, maxTokens: 64000, want: 70},
		{name: "client max_tokens above the reservation is lowered", body: `{"model":"m","max_tokens":5000,"messages":[{"role":"user","content":"x"}]}`, maxTokens: 100, want: 100},
		{name: "client max_completion_tokens above the reservation is lowered", body: `{"model":"m","max_completion_tokens":5000,"messages":[{"role":"user","content":"x"}]}`, maxTokens: 100, defaultMax: 1000, want: 100},
		{name: "the reservation wins over a larger default", body: `{"model":"m","messages":[{"role":"user","content":"x"}]}`, maxTokens: 10, defaultMax: 1000, want: 10},
	}
	for _, tt := range tests {
		runJSONAndStream(t, tt.name, func(t *testing.T, stream bool) {
			reply := replyJSON(anthropicFixture(t, "upstream_text.json"))
			if stream {
				reply = replySSE(anthropicFixture(t, "upstream_stream_text.sse"))
			}
			srv, last := fakeAnthropic(t, "", reply)
			a := newTestAnthropic(t, AnthropicConfig{BaseURL: srv.URL, DefaultMaxTokens: tt.defaultMax})
			req := &Request{Chat: mustChat(t, tt.body), Model: "claude", MaxTokens: tt.maxTokens}
			if stream {
				streamToEnd(t, a, req)
			} else if _, err := a.Chat(context.Background(), req); err != nil {
				t.Fatal(err)
			}
			var sent struct {
				MaxTokens int `json:"max_tokens"`
			}
			if err := json.Unmarshal(last().body, &sent); err != nil {
				t.Fatal(err)
			}
			if sent.MaxTokens != tt.want {
				t.Errorf("max_tokens = %d, want %d", sent.MaxTokens, tt.want)
			}
		})
	}
}

func TestAnthropicRequestRejects(t *testing.T) {
	tests := []struct {
		name, body, param string
	}{
		{"n > 1", `{"model":"m","n":2,"messages":[{"role":"user","content":"x"}]}`, "n"},
		{"invalid tool arguments", `{"model":"m","messages":[{"role":"user","content":"x"},{"role":"assistant","tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":"{\"city\":"}}]}]}`,
			"messages[1].tool_calls[0].function.arguments"},
		{"non-object tool arguments", `{"model":"m","messages":[{"role":"user","content":"x"},{"role":"assistant","tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":"[1]"}}]}]}`,
			"messages[1].tool_calls[0].function.arguments"},
		{"json_object", `{"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_object"}}`, "response_format"},
		{"json_schema without schema", `{"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","json_schema":{"name":"x"}}}`, "response_format.json_schema.schema"},
		{"custom tool", `{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"custom","custom":{"name":"g"}}]}`, "tools[0].type"},
		{"audio part", `{"model":"m","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"AAA","format":"wav"}}]}]}`, "messages[0].content[0].type"},
		{"ftp image", `{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"ftp://x/y.png"}}]}]}`, "messages[0].content[0].image_url.url"},
		{"non-base64 data url", `{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/svg+xml,<svg/>"}}]}]}`, "messages[0].content[0].image_url.url"},
		{"function role", `{"model":"m","messages":[{"role":"user","content":"x"},{"role":"function","name":"f","content":"1"}]}`, "messages[1].role"},
		{"image in system", `{"model":"m","messages":[{"role":"system","content":[{"type":"image_url","image_url":{"url":"https://x/y.png"}}]},{"role":"user","content":"x"}]}`, "messages[0].content[0].type"},
		{"allowed_tools choice", `{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":{"type":"allowed_tools","allowed_tools":{"mode":"auto","tools":[]}}}`, "tool_choice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			called := false
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { called = true }))
			defer srv.Close()
			a := newTestAnthropic(t, AnthropicConfig{BaseURL: srv.URL})
			for _, stream := range []bool{false, true} {
				var err error
				if stream {
					_, err = a.Stream(context.Background(), &Request{Chat: mustChat(t, tt.body), Model: "claude"})
				} else {
					_, err = a.Chat(context.Background(), &Request{Chat: mustChat(t, tt.body), Model: "claude"})
				}
				e := asLLMError(t, err)
				if e.Status != 400 || e.Type != llm.TypeInvalidRequest || e.Param != tt.param || e.Upstream || e.Retryable {
					t.Errorf("stream=%v: got %+v, want a 400 naming %q", stream, e, tt.param)
				}
			}
			if called {
				t.Error("a rejected request reached the upstream")
			}
		})
	}
}

// TestAnthropicResponseGolden pins the OpenAI completion produced from
// recorded Anthropic answers.
func TestAnthropicResponseGolden(t *testing.T) {
	tests := []struct {
		name       string
		wantFinish string
		wantUsage  llm.Usage
	}{
		{"text", "stop", llm.Usage{PromptTokens: 12, CompletionTokens: 11, TotalTokens: 23, PromptTokensDetails: &llm.PromptTokensDetails{}}},
		{"tool_use", "tool_calls", llm.Usage{PromptTokens: 402, CompletionTokens: 96, TotalTokens: 498, PromptTokensDetails: &llm.PromptTokensDetails{}}},
		{"text_and_tool", "tool_calls", llm.Usage{PromptTokens: 50, CompletionTokens: 20, TotalTokens: 70, PromptTokensDetails: &llm.PromptTokensDetails{}}},
		{"max_tokens", "length", llm.Usage{PromptTokens: 15, CompletionTokens: 8, TotalTokens: 23, PromptTokensDetails: &llm.PromptTokensDetails{}}},
		{"cache_usage", "stop", llm.Usage{PromptTokens: 21 + 52000 + 1800, CompletionTokens: 14, TotalTokens: 21 + 52000 + 1800 + 14,
			PromptTokensDetails: &llm.PromptTokensDetails{CachedTokens: 52000, CacheWriteTokens: 1800}}},
		{"refusal", "content_filter", llm.Usage{PromptTokens: 30, TotalTokens: 30, PromptTokensDetails: &llm.PromptTokensDetails{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := fakeAnthropic(t, "k", replyJSON(anthropicFixture(t, "upstream_"+tt.name+".json")))
			a := newTestAnthropic(t, AnthropicConfig{BaseURL: srv.URL, APIKey: "k"})
			resp, err := a.Chat(context.Background(), &Request{Chat: mustChat(t, `{"model":"m","messages":[{"role":"user","content":"x"}]}`), Model: "claude"})
			if err != nil {
				t.Fatal(err)
			}
			if resp.Raw != nil {
				t.Error("Raw is set: the gateway would send Anthropic's bytes to an OpenAI client")
			}
			if got := resp.Choices[0].FinishReason; got != tt.wantFinish {
				t.Errorf("finish_reason %q, want %q", got, tt.wantFinish)
			}
			if !reflect.DeepEqual(*resp.Usage, tt.wantUsage) {
				t.Errorf("usage %+v %+v, want %+v %+v", *resp.Usage, resp.Usage.PromptTokensDetails, tt.wantUsage, tt.wantUsage.PromptTokensDetails)
			}
			out, err := json.MarshalIndent(resp, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			golden(t, "anthropic/response_"+tt.name+".json", append(out, '\n'))
		})
	}
}

// collectChunks reads a stream to its end.
func collectChunks(t *testing.T, st Stream) ([]*llm.ChatChunk, error) {
	t.Helper()
	var chunks []*llm.ChatChunk
	for {
		c, err := st.Recv()
		if err != nil {
			st.Close()
			return chunks, err
		}
		if c.Raw != nil {
			t.Error("chunk Raw is set: the gateway would send Anthropic's bytes to an OpenAI client")
		}
		chunks = append(chunks, c)
	}
}

// sseOf renders chunks the way the gateway sends them, for golden files.
func sseOf(t *testing.T, chunks []*llm.ChatChunk) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, c := range chunks {
		j, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString("data: ")
		b.Write(j)
		b.WriteString("\n\n")
	}
	b.WriteString("data: [DONE]\n\n")
	return b.Bytes()
}

// TestAnthropicStreamGolden pins the OpenAI chunks produced from recorded
// Anthropic event streams, and checks they agree with themselves.
func TestAnthropicStreamGolden(t *testing.T) {
	tests := []struct {
		name, upstream string
		includeUsage   bool
		clientUsage    bool
		wantText       string
		wantArgs       []string
		wantFinish     string
		wantUsage      *llm.Usage
	}{
		{name: "tool_usage", upstream: "upstream_stream_tool.sse", includeUsage: true,
			wantText: "Let me check the weather <now>.", wantArgs: []string{`{"city": "Paris"}`, `{}`}, wantFinish: "tool_calls",
			wantUsage: &llm.Usage{PromptTokens: 4325, CompletionTokens: 89, TotalTokens: 4414,
				PromptTokensDetails: &llm.PromptTokensDetails{CachedTokens: 4000, CacheWriteTokens: 300}}},
		{name: "text_client_usage", upstream: "upstream_stream_text.sse", clientUsage: true,
			wantText: `Hi there, "friend"!`, wantFinish: "length",
			wantUsage: &llm.Usage{PromptTokens: 10, CompletionTokens: 5, TotalTokens: 15, PromptTokensDetails: &llm.PromptTokensDetails{}}},
		{name: "text_no_usage", upstream: "upstream_stream_text.sse",
			wantText: `Hi there, "friend"!`, wantFinish: "length"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, last := fakeAnthropic(t, "k", replySSE(anthropicFixture(t, tt.upstream)))
			a := newTestAnthropic(t, AnthropicConfig{BaseURL: srv.URL, APIKey: "k"})
			body := `{"model":"m","stream":true,"messages":[{"role":"user","content":"x"}]}`
			if tt.clientUsage {
				body = `{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"x"}]}`
			}
			st, err := a.Stream(context.Background(), &Request{Chat: mustChat(t, body), Model: "claude", IncludeUsage: tt.includeUsage})
			if err != nil {
				t.Fatal(err)
			}
			chunks, err := collectChunks(t, st)
			if err != io.EOF {
				t.Fatalf("stream ended with %v, want io.EOF", err)
			}
			if !bytes.Contains(last().body, []byte(`"stream":true`)) {
				t.Errorf("request lacks stream:true: %s", last().body)
			}
			if len(chunks) == 0 || chunks[0].Choices[0].Delta.Role != "assistant" {
				t.Fatalf("first chunk does not carry the assistant role: %+v", chunks)
			}
			var text strings.Builder
			var args []string
			var finish string
			var usage *llm.Usage
			for i, c := range chunks {
				if c.Usage != nil {
					if i != len(chunks)-1 || len(c.Choices) != 0 {
						t.Errorf("usage chunk %d of %d has %d choices; want the last, with none", i, len(chunks), len(c.Choices))
					}
					usage = c.Usage
					continue
				}
				d := c.Choices[0].Delta
				if d.Content != nil {
					text.WriteString(*d.Content)
				}
				for _, tc := range d.ToolCalls {
					if tc.Index == nil {
						t.Fatal("tool call delta without index")
					}
					if *tc.Index == len(args) {
						args = append(args, "")
					}
					args[*tc.Index] += tc.Function.Arguments
				}
				if f := c.Choices[0].FinishReason; f != nil {
					finish = *f
				}
			}
			if text.String() != tt.wantText || finish != tt.wantFinish || strings.Join(args, "|") != strings.Join(tt.wantArgs, "|") {
				t.Errorf("got text %q args %q finish %q, want %q %q %q", text.String(), args, finish, tt.wantText, tt.wantArgs, tt.wantFinish)
			}
			if !reflect.DeepEqual(usage, tt.wantUsage) {
				t.Errorf("usage %+v, want %+v", usage, tt.wantUsage)
			}
			golden(t, "anthropic/stream_"+tt.name+".sse", sseOf(t, chunks))
		})
	}
}

func TestAnthropicStatusErrors(t *testing.T) {
	tests := []struct {
		name   string
		status int
		header map[string]string
		body   string
		want   llm.Error // Status, Type, Code, Message, RetryAfter, Retryable compared
	}{
		{name: "400", status: 400,
			body: `{"type":"error","error":{"type":"invalid_request_error","message":"messages: roles must alternate"},"request_id":"req_1"}`,
			want: llm.Error{Status: 400, Type: llm.TypeInvalidRequest, Code: "invalid_request_error", Message: "messages: roles must alternate"}},
		{name: "401", status: 401,
			body: `{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}`,
			want: llm.Error{Status: 401, Type: llm.TypeAuthentication, Code: "authentication_error", Message: "invalid x-api-key"}},
		{name: "403", status: 403,
			body: `{"type":"error","error":{"type":"permission_error","message":"not allowed"}}`,
			want: llm.Error{Status: 403, Type: llm.TypePermission, Code: "permission_error", Message: "not allowed"}},
		{name: "404", status: 404,
			body: `{"type":"error","error":{"type":"not_found_error","message":"model: claude-nope"}}`,
			want: llm.Error{Status: 404, Type: llm.TypeNotFound, Code: "not_found_error", Message: "model: claude-nope"}},
		{name: "413 from the edge", status: 413,
			body: `{"type":"error","error":{"type":"request_too_large","message":"Request exceeds the maximum allowed number of bytes."}}`,
			want: llm.Error{Status: 413, Type: llm.TypeInvalidRequest, Code: "request_too_large", Message: "Request exceeds the maximum allowed number of bytes."}},
		{name: "429 retry-after", status: 429,
			header: map[string]string{"Retry-After": "12", "Anthropic-Ratelimit-Requests-Remaining": "0", "Anthropic-Ratelimit-Tokens-Reset": "2026-01-02T03:05:00Z"},
			body:   `{"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"}}`,
			want: llm.Error{Status: 429, Type: llm.TypeRateLimit, Code: "rate_limit_error", Message: "Number of request tokens has exceeded your per-minute rate limit",
				RetryAfter: 12 * time.Second, Retryable: true}},
		{name: "500", status: 500,
			body: `{"type":"error","error":{"type":"api_error","message":"Internal server error"}}`,
			want: llm.Error{Status: 500, Type: llm.TypeServer, Code: "api_error", Message: "Internal server error", Retryable: true}},
		{name: "529 overloaded", status: 529,
			body: `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`,
			want: llm.Error{Status: 503, Type: llm.TypeServer, Code: "overloaded_error", Message: "Overloaded", Retryable: true}},
		{name: "502 html from a proxy", status: 502, body: "<html>Bad Gateway</html>",
			want: llm.Error{Status: 502, Type: llm.TypeServer, Message: "upstream answered 502 Bad Gateway: <html>Bad Gateway</html>", Retryable: true}},
	}
	for _, tt := range tests {
		runJSONAndStream(t, tt.name, func(t *testing.T, stream bool) {
			srv, _ := fakeAnthropic(t, "sk-ant-secret", func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Request-Id", "req_018EeWyXxfu5pfWkrYcMdjWG")
				w.Header().Set("Content-Type", "application/json")
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			})
			a := newTestAnthropic(t, AnthropicConfig{BaseURL: srv.URL, APIKey: "sk-ant-secret"})
			chat := `{"model":"m","messages":[{"role":"user","content":"x"}]}`
			var err error
			if stream {
				_, err = a.Stream(context.Background(), &Request{Chat: mustChat(t, chat), Model: "claude"})
			} else {
				_, err = a.Chat(context.Background(), &Request{Chat: mustChat(t, chat), Model: "claude"})
			}
			e := asLLMError(t, err)
			if !e.Upstream || e.Provider != "claude" {
				t.Errorf("upstream=%v provider=%q", e.Upstream, e.Provider)
			}
			got := llm.Error{Status: e.Status, Type: e.Type, Code: e.Code, Message: e.Message, RetryAfter: e.RetryAfter, Retryable: e.Retryable}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
			if e.Header.Get("Request-Id") != "req_018EeWyXxfu5pfWkrYcMdjWG" {
				t.Errorf("request-id not kept: %v", e.Header)
			}
			for k, v := range tt.header {
				if e.Header.Get(k) != v {
					t.Errorf("header %s = %q, want %q", k, e.Header.Get(k), v)
				}
			}
			if strings.Contains(e.Error(), "sk-ant-secret") {
				t.Error("error leaks the API key")
			}
		})
	}
}

const (
	antStart = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-x\",\"content\":[],\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n"
	antText  = "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n"
	antEnd   = "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":2}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
)

func TestAnthropicStreamEvents(t *testing.T) {
	tests := []struct {
		name       string
		body       string
		ctype      string
		wantChunks int
		wantErr    error      // io.EOF for a clean end
		wantLLM    *llm.Error // Status, Type, Retryable compared; Message when set
		contains   string
	}{
		{name: "clean", body: antStart + antText + antEnd, wantChunks: 3, wantErr: io.EOF},
		{name: "unknown events and comments ignored", body: ": keepalive\n\n" + antStart + "event: future_event\ndata: {\"type\":\"future_event\",\"x\":1}\n\n" + antText + "event: ping\ndata: {\"type\":\"ping\"}\n\n" + antEnd,
			wantChunks: 3, wantErr: io.EOF},
		{name: "error event mid-stream: overloaded", body: antStart + antText + "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
			wantChunks: 2, wantLLM: &llm.Error{Status: 503, Type: llm.TypeServer, Retryable: true, Message: "Overloaded"}},
		{name: "error event: rate limit", body: antStart + "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":\"slow down\"}}\n\n",
			wantChunks: 1, wantLLM: &llm.Error{Status: 429, Type: llm.TypeRateLimit, Retryable: true, Message: "slow down"}},
		{name: "error event: invalid request", body: "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\":\"bad\"}}\n\n",
			wantLLM: &llm.Error{Status: 400, Type: llm.TypeInvalidRequest, Retryable: false, Message: "bad"}},
		{name: "cut before message_stop", body: antStart + antText,
			wantChunks: 2, wantLLM: &llm.Error{Status: 502, Type: llm.TypeUpstream, Retryable: true, Message: "upstream stream ended without message_stop"}},
		{name: "cut after message_delta", body: antStart + antText + "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":2}}\n\n",
			wantChunks: 3, wantLLM: &llm.Error{Status: 502, Type: llm.TypeUpstream, Retryable: true}},
		{name: "malformed event", body: antStart + "event: content_block_delta\ndata: {oops\n\n", contains: "malformed stream event",
			wantChunks: 1, wantLLM: &llm.Error{Status: 502, Type: llm.TypeUpstream, Retryable: true}},
		{name: "json error instead of sse", ctype: "application/json", body: `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`,
			wantLLM: &llm.Error{Status: 503, Type: llm.TypeServer, Retryable: true, Message: "Overloaded"}},
		{name: "json message instead of sse", ctype: "application/json", body: `{"type":"message","id":"msg_1","content":[]}`,
			contains: "answered JSON to a streaming request", wantLLM: &llm.Error{Status: 502, Type: llm.TypeUpstream, Retryable: false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := fakeAnthropic(t, "", func(w http.ResponseWriter, r *http.Request) {
				ct := tt.ctype
				if ct == "" {
					ct = "text/event-stream"
				}
				w.Header().Set("Content-Type", ct)
				io.WriteString(w, tt.body)
			})
			a := newTestAnthropic(t, AnthropicConfig{BaseURL: srv.URL})
			st, err := a.Stream(context.Background(), &Request{Chat: mustChat(t, `{"model":"m","stream":true,"messages":[{"role":"user","content":"x"}]}`), Model: "claude"})
			var chunks []*llm.ChatChunk
			if err == nil {
				chunks, err = collectChunks(t, st)
				if _, again := st.Recv(); again == nil {
					t.Error("Recv after the end returned a chunk")
				}
			}
			if len(chunks) != tt.wantChunks {
				t.Errorf("got %d chunks, want %d", len(chunks), tt.wantChunks)
			}
			if tt.wantLLM == nil {
				if err != tt.wantErr {
					t.Fatalf("err %v, want %v", err, tt.wantErr)
				}
				return
			}
			e := asLLMError(t, err)
			if e.Status != tt.wantLLM.Status || e.Type != tt.wantLLM.Type || e.Retryable != tt.wantLLM.Retryable || !e.Upstream ||
				(tt.wantLLM.Message != "" && e.Message != tt.wantLLM.Message) || !strings.Contains(e.Message, tt.contains) {
				t.Errorf("got %+v, want %+v", e, tt.wantLLM)
			}
		})
	}
}

func TestAnthropicCancel(t *testing.T) {
	chat := `{"model":"m","messages":[{"role":"user","content":"x"}]}`

	t.Run("client cancel", func(t *testing.T) {
		started, seen := make(chan struct{}), make(chan struct{}, 1)
		srv, _ := fakeAnthropic(t, "", func(w http.ResponseWriter, r *http.Request) {
			close(started)
			<-r.Context().Done()
			seen <- struct{}{}
		})
		a := newTestAnthropic(t, AnthropicConfig{BaseURL: srv.URL})
		ctx, cancel := context.WithCancel(context.Background())
		go func() { <-started; cancel() }()
		_, err := a.Chat(ctx, &Request{Chat: mustChat(t, chat), Model: "claude"})
		wantClientCancel(t, err)
		<-seen // the upstream saw its request cancelled
	})

	anthropicHolding := func(t *testing.T, events string, idle time.Duration) (*Anthropic, <-chan struct{}) {
		h, seen := holdStream(events)
		srv, _ := fakeAnthropic(t, "", h)
		return newTestAnthropic(t, AnthropicConfig{BaseURL: srv.URL, StreamIdleTimeout: idle}), seen
	}

	t.Run("client cancel mid-stream", func(t *testing.T) {
		a, seen := anthropicHolding(t, antStart, 0)
		cancelMidStream(t, a, &Request{Chat: mustChat(t, chat), Model: "claude"})
		<-seen
	})

	t.Run("close mid-stream releases the upstream", func(t *testing.T) {
		a, seen := anthropicHolding(t, antStart, 0)
		closeMidStream(t, a, &Request{Chat: mustChat(t, chat), Model: "claude"})
		<-seen
	})

	t.Run("stream idle timeout", func(t *testing.T) {
		a, seen := anthropicHolding(t, "", 20*time.Millisecond)
		wantIdleTimeout(t, a, &Request{Chat: mustChat(t, chat), Model: "claude"})
		<-seen
	})
}

func TestNewAnthropic(t *testing.T) {
	t.Run("defaults", func(t *testing.T) {
		a, err := NewAnthropic(AnthropicConfig{Name: "a"})
		if err != nil {
			t.Fatal(err)
		}
		if a.url != "https://api.anthropic.com/v1/messages" || a.cfg.Version != "2023-06-01" || a.cfg.DefaultMaxTokens != 4096 {
			t.Errorf("url %q version %q max %d", a.url, a.cfg.Version, a.cfg.DefaultMaxTokens)
		}
	})
	t.Run("tolerates /v1 and keeps beta headers", func(t *testing.T) {
		a, err := NewAnthropic(AnthropicConfig{Name: "a", BaseURL: "https://api.anthropic.com/v1/", Version: "2024-01-01",
			Headers: map[string]string{"anthropic-beta": "context-1m-2025-08-07"}})
		if err != nil {
			t.Fatal(err)
		}
		if a.url != "https://api.anthropic.com/v1/messages" || a.jsonHeader.Get("Anthropic-Beta") != "context-1m-2025-08-07" ||
			a.sseHeader.Get("Anthropic-Version") != "2024-01-01" || a.jsonHeader.Get("X-Api-Key") != "" {
			t.Errorf("url %q headers %v", a.url, a.jsonHeader)
		}
	})
	tests := []struct {
		name string
		cfg  AnthropicConfig
		want []string
	}{
		{"empty name", AnthropicConfig{}, []string{"name: required"}},
		{"bad scheme", AnthropicConfig{Name: "x", BaseURL: "ftp://h"}, []string{"scheme"}},
		{"query", AnthropicConfig{Name: "x", BaseURL: "https://h/?k=v"}, []string{"query"}},
		{"bad header and negatives", AnthropicConfig{Name: "x", Headers: map[string]string{"a b": "c"}, Timeout: -1, DefaultMaxTokens: -1},
			[]string{"headers", "timeouts", "default_max_tokens"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewAnthropic(tt.cfg)
			wantRejected(t, err, tt.want)
		})
	}
}

// anthropicStreamOver runs the stream's translation over raw bytes.
func anthropicStreamOver(data []byte, includeUsage bool) *sseStream {
	return sseStreamOver(data, &antTranslator{includeUsage: includeUsage})
}

func FuzzAnthropicSSE(f *testing.F) {
	for _, name := range []string{"upstream_stream_tool.sse", "upstream_stream_text.sse"} {
		f.Add(anthropicFixture(f, name))
	}
	f.Add([]byte(antStart + antText + antEnd))
	f.Add([]byte("event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n"))
	f.Add([]byte("data: {\"type\":\"content_block_delta\",\"index\":-1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\"}}\n\n"))
	f.Add([]byte("data: {\"type\":\"content_block_start\",\"content_block\":null}\n\ndata: {\"type\":\"message_delta\",\"usage\":null,\"delta\":null}\n\ndata: {\"type\":\"message_stop\"}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s := anthropicStreamOver(data, true)
		for range 1 << 16 {
			c, err := s.Recv()
			if err != nil {
				if err != io.EOF {
					if _, ok := llm.AsError(err); !ok {
						t.Fatalf("error %v is not an *llm.Error", err)
					}
				}
				break
			}
			if c == nil || (c.Usage == nil && len(c.Choices) != 1) {
				t.Fatalf("malformed chunk %+v", c)
			}
			if _, err := json.Marshal(c); err != nil {
				t.Fatalf("chunk does not marshal: %v", err)
			}
		}
		s.Close()
	})
}
