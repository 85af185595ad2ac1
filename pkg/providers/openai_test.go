package providers

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/pkg/llm"
)

// captured is what an upstream received.
type captured struct {
	method, path, query string
	header              http.Header
	body                []byte
}

// recordingUpstream serves the sim over HTTP and records every request.
func recordingUpstream(t *testing.T) (*httptest.Server, func() captured) {
	t.Helper()
	sim, _ := newTestSim(t, SimConfig{Seed: 1})
	inner := SimHandler(sim)
	var mu sync.Mutex
	var last captured
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		last = captured{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), body}
		mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		inner.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, func() captured { mu.Lock(); defer mu.Unlock(); return last }
}

const clientBody = `{"model":"gw-alias","messages":[{"role":"user","content":"Say hi","x_part_meta":{"keep":[1.50,null]}}],"temperature":0.50,"x_vendor":{"nested":{"model":"inner-untouched"},"list":[1e3,"a\u00e9"]}}`

func TestOpenAIRequestShape(t *testing.T) {
	srv, last := recordingUpstream(t)
	tests := []struct {
		name       string
		cfg        OpenAIConfig
		body       string
		model      string
		stream     bool
		usage      bool
		apiKey     string
		wantPath   string
		wantQuery  string
		wantHeader map[string]string // "" means the header must be absent
		golden     string
	}{
		{
			name: "openai", cfg: OpenAIConfig{BaseURL: srv.URL + "/v1", APIKey: "sk-config"},
			body: clientBody, model: "gpt-4o-mini",
			wantPath: "/v1/chat/completions",
			wantHeader: map[string]string{"Authorization": "Bearer sk-config", "Content-Type": "application/json",
				"Accept": "application/json", "Api-Key": ""},
			golden: "request_chat_openai.json",
		},
		{
			name: "azure", cfg: OpenAIConfig{BaseURL: srv.URL + "/", Flavor: FlavorAzure, APIVersion: "2024-10-21", APIKey: "az-key"},
			body: clientBody, model: "gpt-4o-prod",
			wantPath: "/openai/deployments/gpt-4o-prod/chat/completions", wantQuery: "api-version=2024-10-21",
			wantHeader: map[string]string{"Api-Key": "az-key", "Authorization": ""},
		},
		{
			name: "azure per-request key", cfg: OpenAIConfig{BaseURL: srv.URL + "/openai", Flavor: FlavorAzure, APIVersion: "2024-10-21", APIKey: "az-key"},
			body: clientBody, model: "dep", apiKey: "az-user",
			wantPath: "/openai/deployments/dep/chat/completions", wantQuery: "api-version=2024-10-21",
			wantHeader: map[string]string{"Api-Key": "az-user", "Authorization": ""},
		},
		{
			name: "extra headers", cfg: OpenAIConfig{BaseURL: srv.URL + "/v1", APIKey: "sk-or",
				Headers: map[string]string{"HTTP-Referer": "https://tollgate.example", "X-Title": "tollgate"}},
			body: clientBody, model: "openai/gpt-4o",
			wantPath:   "/v1/chat/completions",
			wantHeader: map[string]string{"Http-Referer": "https://tollgate.example", "X-Title": "tollgate", "Authorization": "Bearer sk-or"},
		},
		{
			name: "keyless upstream", cfg: OpenAIConfig{BaseURL: srv.URL + "/v1"},
			body: clientBody, model: "llama3.2",
			wantPath: "/v1/chat/completions", wantHeader: map[string]string{"Authorization": "", "Api-Key": ""},
		},
		{
			name: "per-request key overrides", cfg: OpenAIConfig{BaseURL: srv.URL + "/v1", APIKey: "sk-config"},
			body: clientBody, model: "gpt-4o-mini", apiKey: "sk-byok",
			wantPath: "/v1/chat/completions", wantHeader: map[string]string{"Authorization": "Bearer sk-byok"},
		},
		{
			name: "custom auth header", cfg: OpenAIConfig{BaseURL: srv.URL + "/v1", APIKey: "k1", AuthHeader: "x-api-key"},
			body: clientBody, model: "m",
			wantPath: "/v1/chat/completions", wantHeader: map[string]string{"X-Api-Key": "k1", "Authorization": ""},
		},
		{
			name: "stream merges stream_options", cfg: OpenAIConfig{BaseURL: srv.URL + "/v1", APIKey: "sk"},
			body:  `{"model":"a","stream":true,"stream_options":{"include_usage":false,"continuous_usage_stats":true},"messages":[{"role":"user","content":"hi"}],"x":{"y":[]}}`,
			model: "b", stream: true, usage: true,
			wantPath:   "/v1/chat/completions",
			wantHeader: map[string]string{"Accept": "text/event-stream"},
			golden:     "request_stream_merged_options.json",
		},
		{
			name: "stream adds stream_options", cfg: OpenAIConfig{BaseURL: srv.URL + "/v1"},
			body:  `{"model":"a","stream":true,"messages":[{"role":"user","content":"hi"}]}`,
			model: "b", stream: true, usage: true,
			wantPath: "/v1/chat/completions",
			golden:   "request_stream_added_options.json",
		},
		{
			name: "stream keeps client's usage choice", cfg: OpenAIConfig{BaseURL: srv.URL + "/v1"},
			body:  `{"model":"b","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`,
			model: "b", stream: true, usage: true,
			wantPath: "/v1/chat/completions",
			golden:   "request_stream_untouched.json",
		},
		{
			name: "quirk: no stream_options", cfg: OpenAIConfig{BaseURL: srv.URL + "/v1", NoStreamOptions: true},
			body:  `{"model":"a","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`,
			model: "b", stream: true, usage: true,
			wantPath: "/v1/chat/completions",
			golden:   "request_stream_no_options.json",
		},
		{
			name: "quirk: max_tokens spelling", cfg: OpenAIConfig{BaseURL: srv.URL + "/v1", MaxTokensField: "max_tokens"},
			body:  `{"model":"a","max_completion_tokens":64,"messages":[{"role":"user","content":"hi"}]}`,
			model: "b", wantPath: "/v1/chat/completions",
			golden: "request_max_tokens_renamed.json",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Name = "up"
			c, err := NewOpenAI(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			req := &Request{Chat: mustChat(t, tt.body), Model: tt.model, IncludeUsage: tt.usage, APIKey: tt.apiKey}
			if tt.stream {
				st, err := c.Stream(context.Background(), req)
				if err != nil {
					t.Fatal(err)
				}
				n := 0
				for {
					_, err := st.Recv()
					if err == io.EOF {
						break
					}
					if err != nil {
						t.Fatal(err)
					}
					n++
				}
				st.Close()
				if n < 3 {
					t.Fatalf("got %d chunks", n)
				}
			} else if _, err := c.Chat(context.Background(), req); err != nil {
				t.Fatal(err)
			}
			got := last()
			if got.method != http.MethodPost || got.path != tt.wantPath || got.query != tt.wantQuery {
				t.Errorf("got %s %s?%s, want POST %s?%s", got.method, got.path, got.query, tt.wantPath, tt.wantQuery)
			}
			for k, v := range tt.wantHeader {
				if got.header.Get(k) != v {
					t.Errorf("header %s = %q, want %q", k, got.header.Get(k), v)
				}
			}
			var m map[string]json.RawMessage
			if err := json.Unmarshal(got.body, &m); err != nil {
				t.Fatalf("upstream got invalid JSON: %v\n%s", err, got.body)
			}
			if string(m["model"]) != `"`+tt.model+`"` {
				t.Errorf("model = %s, want %q", m["model"], tt.model)
			}
			if tt.body == clientBody {
				// Unknown fields, top-level and nested, arrive byte for byte.
				for _, frag := range []string{
					`"x_vendor":{"nested":{"model":"inner-untouched"},"list":[1e3,"a\u00e9"]}`,
					`"x_part_meta":{"keep":[1.50,null]}`, `"temperature":0.50`,
				} {
					if !bytes.Contains(got.body, []byte(frag)) {
						t.Errorf("upstream body lost %s:\n%s", frag, got.body)
					}
				}
			}
			if tt.golden != "" {
				golden(t, tt.golden, got.body)
			}
		})
	}
}

// TestOpenAIOutputLimit: every call carries the output cap the gateway
// reserved (Request.MaxTokens), lowered further only by the client's own,
// in exactly one member: the one the client used, else the upstream's
// spelling (max_completion_tokens for OpenAI and Azure, max_tokens for
// the rest, or the configured MaxTokensField). The upstream must get
// exactly the body in want.
func TestOpenAIOutputLimit(t *testing.T) {
	srv, last := recordingUpstream(t)
	// openaiHost reaches the test server under OpenAI's own host name.
	openaiHost := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "tcp", srv.Listener.Addr().String())
	}}}
	t.Cleanup(openaiHost.CloseIdleConnections)
	other := OpenAIConfig{BaseURL: srv.URL + "/v1"}
	openai := OpenAIConfig{BaseURL: "http://api.openai.com/v1", HTTPClient: openaiHost}
	azure := OpenAIConfig{BaseURL: srv.URL, Flavor: FlavorAzure, APIVersion: "2024-10-21"}
	const msgs = `"messages":[{"role":"user","content":"hi"}]`
	tests := []struct {
		name     string
		cfg      OpenAIConfig
		body     string
		reserved int // Request.MaxTokens
		stream   bool
		want     string // the body the upstream must get
		// undecoded: the body reaches the provider as it is, without the
		// HTTP layer's decoder, which refuses a key sent twice.
		undecoded bool
	}{
		{name: "client max_tokens within the reservation", cfg: other, reserved: 64,
			body: `{"model":"m","max_tokens":64,` + msgs + `}`,
			want: `{"model":"m",` + msgs + `,"max_tokens":64}`},
		{name: "client max_tokens above the reservation is lowered", cfg: openai, reserved: 100,
			body: `{"model":"m","max_tokens":5000,` + msgs + `}`,
			want: `{"model":"m",` + msgs + `,"max_tokens":100}`},
		{name: "client max_completion_tokens keeps its spelling on another upstream", cfg: other, reserved: 100,
			body: `{"model":"m","max_completion_tokens":5000,` + msgs + `}`,
			want: `{"model":"m",` + msgs + `,"max_completion_tokens":100}`},
		{name: "client max_completion_tokens below the reservation is kept", cfg: openai, reserved: 100,
			body: `{"model":"m","max_completion_tokens":30,` + msgs + `}`,
			want: `{"model":"m",` + msgs + `,"max_completion_tokens":30}`},
		{name: "neither: openai gets max_completion_tokens", cfg: openai, reserved: 8192,
			body: `{"model":"m",` + msgs + `}`,
			want: `{"model":"m",` + msgs + `,"max_completion_tokens":8192}`},
		{name: "neither: azure gets max_completion_tokens", cfg: azure, reserved: 8192,
			body: `{"model":"m",` + msgs + `}`,
			want: `{"model":"m",` + msgs + `,"max_completion_tokens":8192}`},
		{name: "neither: another upstream gets max_tokens", cfg: other, reserved: 8192,
			body: `{"model":"m",` + msgs + `}`,
			want: `{"model":"m",` + msgs + `,"max_tokens":8192}`},
		{name: "neither, stream: another upstream gets max_tokens", cfg: other, reserved: 8192, stream: true,
			body: `{"model":"m","stream":true,` + msgs + `}`,
			want: `{"model":"m","stream":true,` + msgs + `,"max_tokens":8192}`},
		{name: "neither, configured spelling", cfg: OpenAIConfig{BaseURL: srv.URL + "/v1", MaxTokensField: "max_completion_tokens"}, reserved: 8192,
			body: `{"model":"m",` + msgs + `}`,
			want: `{"model":"m",` + msgs + `,"max_completion_tokens":8192}`},
		{name: "configured spelling renames the client's", cfg: OpenAIConfig{BaseURL: "http://api.openai.com/v1", HTTPClient: openaiHost, MaxTokensField: "max_tokens"}, reserved: 100,
			body: `{"model":"m","max_completion_tokens":5000,` + msgs + `}`,
			want: `{"model":"m",` + msgs + `,"max_tokens":100}`},
		{name: "both: never sent both, another upstream", cfg: other, reserved: 50,
			body: `{"model":"m","max_tokens":999,"max_completion_tokens":70,` + msgs + `}`,
			want: `{"model":"m",` + msgs + `,"max_tokens":50}`},
		{name: "both: never sent both, azure", cfg: azure, reserved: 500,
			body: `{"model":"m","max_tokens":999,"max_completion_tokens":70,` + msgs + `}`,
			want: `{"model":"m",` + msgs + `,"max_completion_tokens":70}`},
		{name: "a key sent twice is sent once", cfg: other, reserved: 10, undecoded: true,
			body: `{"model":"m","max_tokens":100000,` + msgs + `,"max_tokens":10}`,
			want: `{"model":"m",` + msgs + `,"max_tokens":10}`},
		{name: "nothing reserved, no client cap: untouched", cfg: other,
			body: `{"model":"m",` + msgs + `}`,
			want: `{"model":"m",` + msgs + `}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Name = "up"
			c, err := NewOpenAI(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			req := &Request{Model: "m", MaxTokens: tt.reserved}
			if tt.undecoded {
				req.Chat = &llm.ChatRequest{Raw: []byte(tt.body)}
				if err := json.Unmarshal(req.Chat.Raw, req.Chat); err != nil {
					t.Fatal(err)
				}
			} else {
				req.Chat = mustChat(t, tt.body)
			}
			if tt.stream {
				streamToEnd(t, c, req)
			} else if _, err := c.Chat(context.Background(), req); err != nil {
				t.Fatal(err)
			}
			if got := string(last().body); got != tt.want {
				t.Errorf("upstream got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestDefaultMaxTokensField(t *testing.T) {
	tests := []struct {
		name, base string
		azure      bool
		want       string
	}{
		{"openai", "https://api.openai.com/v1", false, "max_completion_tokens"},
		{"openai, upper case and port", "https://API.OpenAI.com:443/v1", false, "max_completion_tokens"},
		{"azure flavor", "https://x.example", true, "max_completion_tokens"},
		{"azure's /openai/v1 surface", "https://res.openai.azure.com/openai/v1", false, "max_completion_tokens"},
		{"groq", "https://api.groq.com/openai/v1", false, "max_tokens"},
		{"ollama", "http://localhost:11434/v1", false, "max_tokens"},
		{"a look-alike host", "https://api.openai.com.evil.example/v1", false, "max_tokens"},
		{"openai in the path only", "https://proxy.example/api.openai.com/v1", false, "max_tokens"},
		{"ipv6", "http://[::1]:8000/v1", false, "max_tokens"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := defaultMaxTokensField(tt.base, tt.azure); got != tt.want {
				t.Errorf("defaultMaxTokensField(%q, %v) = %q, want %q", tt.base, tt.azure, got, tt.want)
			}
		})
	}
}

func TestOpenAIChatResponseKeepsRaw(t *testing.T) {
	const answer = `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hey"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4},"vendor_extra":{"x":1}}`
	for _, chunked := range []bool{false, true} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			if chunked {
				w.Write([]byte(answer[:10]))
				w.(http.Flusher).Flush()
				w.Write([]byte(answer[10:]))
				return
			}
			w.Write([]byte(answer))
		}))
		c, _ := NewOpenAI(OpenAIConfig{Name: "up", BaseURL: srv.URL})
		resp, err := c.Chat(context.Background(), &Request{Chat: mustChat(t, clientBody), Model: "m"})
		srv.Close()
		if err != nil {
			t.Fatal(err)
		}
		if string(resp.Raw) != answer || resp.Choices[0].Message.Content.String() != "hey" || resp.Usage.TotalTokens != 4 {
			t.Fatalf("chunked=%v: got %+v raw %s", chunked, resp, resp.Raw)
		}
	}
}

func TestOpenAIEmbed(t *testing.T) {
	srv, last := recordingUpstream(t)
	tests := []struct {
		name, wantPath, wantQuery string
		cfg                       OpenAIConfig
	}{
		{"openai", "/v1/embeddings", "", OpenAIConfig{Name: "e", BaseURL: srv.URL + "/v1", APIKey: "k"}},
		{"azure", "/openai/deployments/emb-dep/embeddings", "api-version=2024-10-21", OpenAIConfig{Name: "e", BaseURL: srv.URL, Flavor: FlavorAzure, APIVersion: "2024-10-21"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewOpenAI(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			body := `{"model":"alias","input":["hello world","bye"],"dimensions":8,"x_extra":{"k":[1]}}`
			resp, err := c.Embed(context.Background(), &EmbedRequest{Embedding: mustEmbedding(t, body), Model: "emb-dep"})
			if err != nil {
				t.Fatal(err)
			}
			got := last()
			if got.path != tt.wantPath || got.query != tt.wantQuery {
				t.Errorf("got %s?%s", got.path, got.query)
			}
			if !bytes.Contains(got.body, []byte(`"x_extra":{"k":[1]}`)) || !bytes.Contains(got.body, []byte(`"model":"emb-dep"`)) {
				t.Errorf("body %s", got.body)
			}
			if len(resp.Data) != 2 || resp.Usage == nil || len(resp.Raw) == 0 {
				t.Fatalf("resp %+v", resp)
			}
			var v []float32
			if err := json.Unmarshal(resp.Data[0].Embedding, &v); err != nil || len(v) != 8 {
				t.Fatalf("vector %s: %v", resp.Data[0].Embedding, err)
			}
		})
	}
}

func TestNewOpenAIValidates(t *testing.T) {
	tests := []struct {
		name string
		cfg  OpenAIConfig
		want []string
	}{
		{"empty", OpenAIConfig{}, []string{"name: required", "base_url: required"}},
		{"bad scheme", OpenAIConfig{Name: "x", BaseURL: "ftp://h/v1"}, []string{"scheme"}},
		{"azure without version", OpenAIConfig{Name: "x", BaseURL: "https://r.openai.azure.com", Flavor: FlavorAzure}, []string{"api_version"}},
		{"bad flavor and quirk", OpenAIConfig{Name: "x", BaseURL: "https://h", Flavor: "anthropic", MaxTokensField: "tokens"}, []string{"flavor", "max_tokens_field"}},
		{"bad header", OpenAIConfig{Name: "x", BaseURL: "https://h", Headers: map[string]string{"a b": "c"}}, []string{"headers"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewOpenAI(tt.cfg)
			wantRejected(t, err, tt.want)
		})
	}
}

func TestOpenAIStatusErrors(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		status    int
		header    map[string]string
		body      string
		want      llm.Error // Status, Type, Code, Param, Message, RetryAfter, Retryable compared
		msgSubstr string    // when Message is not compared exactly
	}{
		{name: "400 envelope", status: 400,
			body: `{"error":{"message":"Invalid 'messages'.","type":"invalid_request_error","param":"messages","code":null}}`,
			want: llm.Error{Status: 400, Type: "invalid_request_error", Param: "messages", Message: "Invalid 'messages'."}},
		{name: "401", status: 401,
			body: `{"error":{"message":"Incorrect API key provided.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}`,
			want: llm.Error{Status: 401, Type: "invalid_request_error", Code: "invalid_api_key", Message: "Incorrect API key provided."}},
		{name: "404", status: 404,
			body: `{"error":{"message":"The model does not exist","type":"invalid_request_error","code":"model_not_found"}}`,
			want: llm.Error{Status: 404, Type: "invalid_request_error", Code: "model_not_found", Message: "The model does not exist"}},
		{name: "408 retryable", status: 408, body: `{"error":{"message":"timeout","type":"timeout"}}`,
			want: llm.Error{Status: 408, Type: "timeout", Message: "timeout", Retryable: true}},
		{name: "409 retryable", status: 409, body: `{"error":{"message":"busy","type":"conflict"}}`,
			want: llm.Error{Status: 409, Type: "conflict", Message: "busy", Retryable: true}},
		{name: "422 not retryable", status: 422, body: `{"detail":"bad field"}`,
			want: llm.Error{Status: 422, Type: llm.TypeInvalidRequest, Message: "bad field"}},
		{name: "429 retry-after seconds", status: 429, header: map[string]string{"Retry-After": "7", "X-Ratelimit-Remaining-Requests": "0"},
			body: `{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}`,
			want: llm.Error{Status: 429, Type: "requests", Code: "rate_limit_exceeded", Message: "Rate limit reached", RetryAfter: 7 * time.Second, Retryable: true}},
		{name: "429 retry-after http-date", status: 429, header: map[string]string{"Retry-After": now.Add(30 * time.Second).Format(http.TimeFormat)},
			body: `{"error":{"message":"slow down","type":"rate_limit_error"}}`,
			want: llm.Error{Status: 429, Type: "rate_limit_error", Message: "slow down", RetryAfter: 30 * time.Second, Retryable: true}},
		{name: "429 retry-after-ms wins", status: 429, header: map[string]string{"Retry-After": "2", "Retry-After-Ms": "1500"},
			body: `{"error":{"message":"slow down","type":"rate_limit_error"}}`,
			want: llm.Error{Status: 429, Type: "rate_limit_error", Message: "slow down", RetryAfter: 1500 * time.Millisecond, Retryable: true}},
		{name: "429 past date and garbage", status: 429, header: map[string]string{"Retry-After": "Mon, 01 Jan 2001 00:00:00 GMT", "Retry-After-Ms": "soon"},
			body: `{"error":"too many requests"}`,
			want: llm.Error{Status: 429, Type: llm.TypeRateLimit, Message: "too many requests", Retryable: true}},
		{name: "500 non-JSON body", status: 500, body: "<html><body>Internal Server Error\n\n" + strings.Repeat("x", 5000) + "</body></html>",
			want: llm.Error{Status: 500, Type: llm.TypeServer, Retryable: true}, msgSubstr: "upstream answered 500 Internal Server Error: <html><body>Internal Server Error x"},
		{name: "502 empty body", status: 502,
			want: llm.Error{Status: 502, Type: llm.TypeServer, Retryable: true}, msgSubstr: "upstream answered 502 Bad Gateway"},
		{name: "503 envelope", status: 503, header: map[string]string{"Retry-After": "3"},
			body: `{"error":{"message":"The engine is currently overloaded","type":"server_error","code":503}}`,
			want: llm.Error{Status: 503, Type: "server_error", Code: "503", Message: "The engine is currently overloaded", RetryAfter: 3 * time.Second, Retryable: true}},
	}
	for _, tt := range tests {
		runJSONAndStream(t, tt.name, func(t *testing.T, stream bool) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			}))
			defer srv.Close()
			c, _ := NewOpenAI(OpenAIConfig{Name: "up", BaseURL: srv.URL + "/v1", APIKey: "sk-secret-key"})
			c.now = func() time.Time { return now }
			var err error
			if stream {
				_, err = c.Stream(context.Background(), &Request{Chat: mustChat(t, `{"model":"m","stream":true,"messages":[{"role":"user","content":"x"}]}`)})
			} else {
				_, err = c.Chat(context.Background(), &Request{Chat: mustChat(t, clientBody)})
			}
			e := asLLMError(t, err)
			if !e.Upstream || e.Provider != "up" {
				t.Errorf("upstream=%v provider=%q", e.Upstream, e.Provider)
			}
			got := llm.Error{Status: e.Status, Type: e.Type, Code: e.Code, Param: e.Param, Message: e.Message, RetryAfter: e.RetryAfter, Retryable: e.Retryable}
			want := tt.want
			if tt.msgSubstr != "" {
				if !strings.HasPrefix(e.Message, tt.msgSubstr) || len(e.Message) > 400 {
					t.Errorf("message %q (len %d) should start with %q and be bounded", e.Message, len(e.Message), tt.msgSubstr)
				}
				want.Message = e.Message
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}
			if strings.Contains(e.Error(), "sk-secret-key") {
				t.Error("error leaks the API key")
			}
		})
	}
}

func TestOpenAITransportErrors(t *testing.T) {
	chat := func(t *testing.T) *Request { return &Request{Chat: mustChat(t, clientBody), Model: "m"} }

	t.Run("connection refused", func(t *testing.T) {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		addr := ln.Addr().String()
		ln.Close()
		c, _ := NewOpenAI(OpenAIConfig{Name: "up", BaseURL: "http://" + addr + "/v1", APIKey: "sk-secret"})
		for _, stream := range []bool{false, true} {
			var err error
			if stream {
				_, err = c.Stream(context.Background(), chat(t))
			} else {
				_, err = c.Chat(context.Background(), chat(t))
			}
			e := asLLMError(t, err)
			if e.Status != 502 || !e.Retryable || !e.Upstream || e.Provider != "up" || strings.Contains(e.Error(), "sk-secret") {
				t.Errorf("stream=%v: %+v", stream, e)
			}
		}
	})

	hang := func(seen chan<- struct{}) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body) // the server notices a disconnect only once the body is read
			<-r.Context().Done()
			seen <- struct{}{}
		}
	}

	t.Run("configured timeout", func(t *testing.T) {
		seen := make(chan struct{}, 2)
		srv := httptest.NewServer(hang(seen))
		defer srv.Close()
		c, _ := NewOpenAI(OpenAIConfig{Name: "up", BaseURL: srv.URL, Timeout: 20 * time.Millisecond})
		_, err := c.Chat(context.Background(), chat(t))
		if e := asLLMError(t, err); e.Status != 504 || !e.Retryable || e.Type != llm.TypeTimeout {
			t.Errorf("chat: %+v", e)
		}
		_, err = c.Stream(context.Background(), chat(t))
		if e := asLLMError(t, err); e.Status != 504 || !e.Retryable {
			t.Errorf("stream: %+v", e)
		}
		<-seen
		<-seen
	})

	t.Run("caller deadline", func(t *testing.T) {
		seen := make(chan struct{}, 1)
		srv := httptest.NewServer(hang(seen))
		defer srv.Close()
		c, _ := NewOpenAI(OpenAIConfig{Name: "up", BaseURL: srv.URL})
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		_, err := c.Chat(ctx, chat(t))
		if e := asLLMError(t, err); e.Status != 504 || !e.Retryable {
			t.Errorf("%+v", e)
		}
		<-seen
	})

	t.Run("client cancel", func(t *testing.T) {
		started, seen := make(chan struct{}), make(chan struct{}, 1)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			close(started)
			io.Copy(io.Discard, r.Body) // the server notices a disconnect only once the body is read
			<-r.Context().Done()
			seen <- struct{}{}
		}))
		defer srv.Close()
		c, _ := NewOpenAI(OpenAIConfig{Name: "up", BaseURL: srv.URL})
		ctx, cancel := context.WithCancel(context.Background())
		go func() { <-started; cancel() }()
		_, err := c.Chat(ctx, chat(t))
		wantClientCancel(t, err)
		<-seen // the upstream saw its request cancelled
	})

	openAIHolding := func(t *testing.T, events string, idle time.Duration) (*OpenAI, <-chan struct{}) {
		h, seen := holdStream(events)
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		c, _ := NewOpenAI(OpenAIConfig{Name: "up", BaseURL: srv.URL, StreamIdleTimeout: idle})
		return c, seen
	}

	t.Run("client cancel mid-stream", func(t *testing.T) {
		c, seen := openAIHolding(t, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"},\"finish_reason\":null}]}\n\n", 0)
		cancelMidStream(t, c, chat(t))
		<-seen
	})

	t.Run("close mid-stream releases the upstream", func(t *testing.T) {
		c, seen := openAIHolding(t, "data: {\"id\":\"c1\",\"choices\":[]}\n\n", 0)
		closeMidStream(t, c, chat(t))
		<-seen
	})

	t.Run("stream idle timeout", func(t *testing.T) {
		c, seen := openAIHolding(t, "", 20*time.Millisecond)
		wantIdleTimeout(t, c, chat(t))
		<-seen
	})
}

func TestOpenAIStreamEvents(t *testing.T) {
	const c1 = `{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}`
	const c2 = `{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":"stop"}]}`
	const usage = `{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}`
	tests := []struct {
		name     string
		body     string
		ctype    string
		wantRaw  []string
		wantErr  error      // io.EOF for a clean end
		wantLLM  *llm.Error // Status, Retryable, Message compared
		contains string
	}{
		{name: "clean", body: "data: " + c1 + "\n\ndata: " + c2 + "\n\ndata: " + usage + "\n\ndata: [DONE]\n\n",
			wantRaw: []string{c1, c2, usage}, wantErr: io.EOF},
		{name: "crlf, no space, comments, event lines", body: ": OPENROUTER PROCESSING\r\n\r\nevent: message\r\ndata:" + c1 + "\r\n\r\n:keepalive\r\ndata: " + c2 + "\r\n\r\ndata: [DONE]\r\n\r\n",
			wantRaw: []string{c1, c2}, wantErr: io.EOF},
		{name: "multi-line data", body: "data: {\"id\":\"c1\",\ndata: \"choices\":[]}\n\ndata: [DONE]\n\n",
			wantRaw: []string{"{\"id\":\"c1\",\n\"choices\":[]}"}, wantErr: io.EOF},
		{name: "done without trailing blank line", body: "data: " + c1 + "\n\ndata: [DONE]", wantRaw: []string{c1}, wantErr: io.EOF},
		{name: "mid-stream error event", body: "data: " + c1 + "\n\ndata: {\"error\":{\"message\":\"The server had an error\",\"type\":\"server_error\"}}\n\n",
			wantRaw: []string{c1}, wantLLM: &llm.Error{Status: 502, Retryable: true, Message: "The server had an error"}},
		{name: "typed error event", body: "data: " + c1 + "\n\nevent: error\ndata: {\"error\":{\"message\":\"rate limited\",\"type\":\"rate_limit_error\",\"code\":429}}\n\n",
			wantRaw: []string{c1}, wantLLM: &llm.Error{Status: 429, Retryable: true, Message: "rate limited"}},
		{name: "invalid request error event", body: "data: {\"error\":{\"message\":\"bad\",\"type\":\"invalid_request_error\"}}\n\n",
			wantLLM: &llm.Error{Status: 502, Retryable: false, Message: "bad"}},
		{name: "ends without done", body: "data: " + c1 + "\n\n",
			wantRaw: []string{c1}, wantLLM: &llm.Error{Status: 502, Retryable: true, Message: "upstream stream ended without [DONE]"}},
		{name: "malformed chunk", body: "data: {not json\n\n", contains: "malformed stream event",
			wantLLM: &llm.Error{Status: 502, Retryable: true}},
		{name: "json instead of sse", ctype: "application/json", body: `{"error":{"message":"stream unsupported","type":"invalid_request_error"}}`,
			wantLLM: &llm.Error{Status: 502, Retryable: false, Message: "stream unsupported"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				ct := tt.ctype
				if ct == "" {
					ct = "text/event-stream"
				}
				w.Header().Set("Content-Type", ct)
				io.WriteString(w, tt.body)
			}))
			defer srv.Close()
			c, _ := NewOpenAI(OpenAIConfig{Name: "up", BaseURL: srv.URL})
			st, err := c.Stream(context.Background(), &Request{Chat: mustChat(t, clientBody)})
			var raws []string
			for err == nil {
				var ch *llm.ChatChunk
				ch, err = st.Recv()
				if err == nil {
					raws = append(raws, string(ch.Raw))
				}
			}
			if st != nil {
				st.Close()
				if _, again := st.Recv(); again == nil {
					t.Error("Recv after the end returned a chunk")
				}
			}
			if strings.Join(raws, "|") != strings.Join(tt.wantRaw, "|") {
				t.Errorf("chunks\n got %q\nwant %q", raws, tt.wantRaw)
			}
			if tt.wantLLM == nil {
				if err != tt.wantErr {
					t.Fatalf("err %v, want %v", err, tt.wantErr)
				}
				return
			}
			e := asLLMError(t, err)
			if e.Status != tt.wantLLM.Status || e.Retryable != tt.wantLLM.Retryable || !e.Upstream ||
				(tt.wantLLM.Message != "" && e.Message != tt.wantLLM.Message) || !strings.Contains(e.Message, tt.contains) {
				t.Errorf("got %+v, want %+v", e, tt.wantLLM)
			}
		})
	}
}

// TestOpenAIReusesConnections guards the drain after [DONE]: streams that
// end cleanly must hand their connection back to the pool.
func TestOpenAIReusesConnections(t *testing.T) {
	sim, _ := newTestSim(t, SimConfig{})
	var mu sync.Mutex
	conns := map[string]bool{}
	srv := httptest.NewUnstartedServer(SimHandler(sim))
	srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateNew {
			mu.Lock()
			conns[c.RemoteAddr().String()] = true
			mu.Unlock()
		}
	}
	srv.Start()
	defer srv.Close()
	c, _ := NewOpenAI(OpenAIConfig{Name: "up", BaseURL: srv.URL + "/v1", HTTPClient: &http.Client{Transport: newTransport()}})
	for range 5 {
		streamToEnd(t, c, &Request{Chat: mustChat(t, `{"model":"m","stream":true,"messages":[{"role":"user","content":"x"}]}`)})
	}
	mu.Lock()
	defer mu.Unlock()
	if len(conns) != 1 {
		t.Errorf("5 sequential streams used %d connections, want 1", len(conns))
	}
}
