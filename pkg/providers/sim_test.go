package providers

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/pkg/llm"
)

func simChat(t *testing.T, s *Sim, body string) *llm.ChatResponse {
	t.Helper()
	resp, err := s.Chat(context.Background(), &Request{Chat: mustChat(t, body), Model: "sim-small"})
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func drain(t *testing.T, st Stream) ([]*llm.ChatChunk, error) {
	t.Helper()
	var out []*llm.ChatChunk
	for {
		c, err := st.Recv()
		if err != nil {
			st.Close()
			return out, err
		}
		out = append(out, c)
	}
}

func TestSimDeterministicAndEncodesPrompt(t *testing.T) {
	const body = `{"model":"x","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"What is the capital of France?"}]}`
	a, _ := newTestSim(t, SimConfig{Seed: 42})
	b, _ := newTestSim(t, SimConfig{Seed: 42})
	ra, rb := simChat(t, a, body), simChat(t, b, body)
	if !bytes.Equal(ra.Raw, rb.Raw) {
		t.Fatalf("same seed, same prompt, different answers:\n%s\n%s", ra.Raw, rb.Raw)
	}
	text := ra.Choices[0].Message.Content.String()
	hash := SimPromptHash(mustChat(t, body))
	if !strings.HasPrefix(text, "[sim-small] reply to "+hash+": What is the capital of France?") {
		t.Errorf("answer does not encode the prompt: %q", text)
	}
	// Formatting of the client's JSON does not matter; content does.
	spaced := simChat(t, a, strings.ReplaceAll(body, `,"`, `, "`))
	if spaced.Choices[0].Message.Content.String() != text {
		t.Error("whitespace in the request changed the answer")
	}
	other := simChat(t, a, strings.Replace(body, "France", "Germany", 1)).Choices[0].Message.Content.String()
	if other == text || strings.Contains(other, hash) {
		t.Errorf("different prompts, same hash: %q", other)
	}
	golden(t, "sim_chat.json", append(ra.Raw, '\n'))
	u := ra.Usage
	if u.CompletionTokens != len(simTokens(text)) || u.PromptTokens != SimPromptTokens(mustChat(t, body)) || u.TotalTokens != u.PromptTokens+u.CompletionTokens {
		t.Errorf("usage %+v inconsistent with %q", u, text)
	}
}

func TestSimAnswers(t *testing.T) {
	weather := `"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"},"unit":{"type":"string","enum":["c","f"]},"days":{"type":"integer"},"hourly":{"type":"boolean"}},"required":["city","unit","days"]}}},{"type":"function","function":{"name":"get_time","parameters":{"type":"object","properties":{"tz":{"type":"string"}},"required":["tz"]}}}]`
	tests := []struct {
		name  string
		body  string
		check func(t *testing.T, r *llm.ChatResponse)
	}{
		{"max_tokens truncates", `{"model":"x","max_tokens":5,"messages":[{"role":"user","content":"tell me a long story about tokens"}]}`,
			func(t *testing.T, r *llm.ChatResponse) {
				c := r.Choices[0]
				if c.FinishReason != "length" || r.Usage.CompletionTokens != 5 || len(simTokens(c.Message.Content.String())) != 5 {
					t.Errorf("finish %q usage %+v text %q", c.FinishReason, r.Usage, c.Message.Content.String())
				}
			}},
		{"max_completion_tokens wins", `{"model":"x","max_tokens":50,"max_completion_tokens":3,"messages":[{"role":"user","content":"hi there"}]}`,
			func(t *testing.T, r *llm.ChatResponse) {
				if r.Usage.CompletionTokens != 3 || r.Choices[0].FinishReason != "length" {
					t.Errorf("usage %+v", r.Usage)
				}
			}},
		{"stop", `{"model":"x","stop":["reply"],"messages":[{"role":"user","content":"hi"}]}`,
			func(t *testing.T, r *llm.ChatResponse) {
				if got := r.Choices[0].Message.Content.String(); got != "[x] " || r.Choices[0].FinishReason != "stop" {
					t.Errorf("got %q", got)
				}
			}},
		{"n choices differ", `{"model":"x","n":3,"messages":[{"role":"user","content":"hi"}]}`,
			func(t *testing.T, r *llm.ChatResponse) {
				if len(r.Choices) != 3 {
					t.Fatalf("%d choices", len(r.Choices))
				}
				sum := 0
				for i, c := range r.Choices {
					if c.Index != i {
						t.Errorf("index %d at %d", c.Index, i)
					}
					sum += len(simTokens(c.Message.Content.String()))
				}
				if r.Choices[0].Message.Content.String() == r.Choices[1].Message.Content.String() {
					t.Error("choices are identical")
				}
				if r.Usage.CompletionTokens != sum {
					t.Errorf("usage %d, tokens %d", r.Usage.CompletionTokens, sum)
				}
			}},
		{"tool call from required properties", `{"model":"x","messages":[{"role":"user","content":"weather in Paris?"}],` + weather + `}`,
			func(t *testing.T, r *llm.ChatResponse) {
				c := r.Choices[0]
				if c.FinishReason != "tool_calls" || len(c.Message.ToolCalls) != 1 || !c.Message.Content.Null {
					t.Fatalf("%+v", c)
				}
				tc := c.Message.ToolCalls[0]
				if tc.Function.Name != "get_weather" || !strings.HasPrefix(tc.ID, "call_") || tc.Type != "function" {
					t.Errorf("%+v", tc)
				}
				if tc.Function.Arguments != `{"city":"sim","days":1,"unit":"c"}` {
					t.Errorf("arguments %s", tc.Function.Arguments)
				}
			}},
		{"tool_choice names the function", `{"model":"x","tool_choice":{"type":"function","function":{"name":"get_time"}},"messages":[{"role":"user","content":"time?"}],` + weather + `}`,
			func(t *testing.T, r *llm.ChatResponse) {
				if tc := r.Choices[0].Message.ToolCalls; len(tc) != 1 || tc[0].Function.Name != "get_time" || tc[0].Function.Arguments != `{"tz":"sim"}` {
					t.Errorf("%+v", tc)
				}
			}},
		{"tool_choice none answers text", `{"model":"x","tool_choice":"none","messages":[{"role":"user","content":"weather?"}],` + weather + `}`,
			func(t *testing.T, r *llm.ChatResponse) {
				if len(r.Choices[0].Message.ToolCalls) != 0 || r.Choices[0].FinishReason != "stop" {
					t.Errorf("%+v", r.Choices[0])
				}
			}},
		{"tool result is quoted", `{"model":"x","messages":[{"role":"user","content":"weather?"},{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{}"}}]},{"role":"tool","tool_call_id":"call_1","content":"18C and sunny"}],` + weather + `}`,
			func(t *testing.T, r *llm.ChatResponse) {
				if got := r.Choices[0].Message.Content.String(); !strings.Contains(got, `the tool returned "18C and sunny"`) {
					t.Errorf("got %q", got)
				}
			}},
		{"json_object", `{"model":"x","response_format":{"type":"json_object"},"messages":[{"role":"user","content":"json please"}]}`,
			func(t *testing.T, r *llm.ChatResponse) {
				var v map[string]string
				if err := json.Unmarshal([]byte(r.Choices[0].Message.Content.String()), &v); err != nil || v["prompt_hash"] == "" {
					t.Errorf("not the JSON answer: %v %q", err, r.Choices[0].Message.Content.String())
				}
			}},
		{"json_schema", `{"model":"x","response_format":{"type":"json_schema","json_schema":{"name":"p","strict":true,"schema":{"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"},"tags":{"type":"array","items":{"type":"string"}},"addr":{"type":"object","properties":{"zip":{"type":["string","null"]}}}}}}},"messages":[{"role":"user","content":"a person"}]}`,
			func(t *testing.T, r *llm.ChatResponse) {
				var v struct {
					Name string   `json:"name"`
					Age  *int     `json:"age"`
					Tags []string `json:"tags"`
					Addr *struct {
						Zip *string `json:"zip"`
					} `json:"addr"`
				}
				if err := json.Unmarshal([]byte(r.Choices[0].Message.Content.String()), &v); err != nil || v.Name == "" || v.Age == nil || len(v.Tags) != 1 || v.Addr == nil || v.Addr.Zip == nil {
					t.Errorf("%v %q", err, r.Choices[0].Message.Content.String())
				}
			}},
		{"answer length varies with the prompt", `{"model":"x","messages":[{"role":"user","content":"a"}]}`,
			func(t *testing.T, r *llm.ChatResponse) {
				s, _ := newTestSim(t, SimConfig{})
				lengths := map[int]bool{}
				for _, p := range []string{"a", "b", "c", "d", "e", "f"} {
					lengths[simChat(t, s, `{"model":"x","messages":[{"role":"user","content":"`+p+`"}]}`).Usage.CompletionTokens] = true
				}
				if len(lengths) < 2 {
					t.Errorf("all answers have the same length")
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newTestSim(t, SimConfig{Seed: 7})
			resp, err := s.Chat(context.Background(), &Request{Chat: mustChat(t, tt.body)})
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, resp)
		})
	}
}

func TestSimStreamShapes(t *testing.T) {
	const body = `{"model":"x","stream":true,"messages":[{"role":"user","content":"Stream me something"}]}`
	tests := []struct {
		name  string
		body  string
		usage bool
	}{
		{"text with usage", body, true},
		{"text without usage", body, false},
		{"client asked for usage", `{"model":"x","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Stream me something"}]}`, false},
		{"tool call", `{"model":"x","stream":true,"messages":[{"role":"user","content":"weather?"}],"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}]}`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newTestSim(t, SimConfig{Seed: 3})
			chat := mustChat(t, tt.body)
			plain := strings.NewReplacer(`"stream":true,`, "", `"stream_options":{"include_usage":true},`, "").Replace(tt.body)
			want := simChat(t, s, plain)
			st, err := s.Stream(context.Background(), &Request{Chat: chat, Model: "sim-small", IncludeUsage: tt.usage})
			if err != nil {
				t.Fatal(err)
			}
			chunks, err := drain(t, st)
			if err != io.EOF {
				t.Fatal(err)
			}
			if d := chunks[0].Choices[0].Delta; d.Role != "assistant" {
				t.Errorf("first chunk %s", chunks[0].Raw)
			}
			var text, args strings.Builder
			var finish string
			var usage *llm.Usage
			for i, c := range chunks {
				var m map[string]json.RawMessage
				if err := json.Unmarshal(c.Raw, &m); err != nil || string(m["object"]) != `"chat.completion.chunk"` {
					t.Fatalf("chunk %d raw %s", i, c.Raw)
				}
				if c.Usage != nil {
					usage = c.Usage
					if string(m["choices"]) != "[]" || i != len(chunks)-1 {
						t.Errorf("usage chunk must be last with choices []: %s", c.Raw)
					}
					continue
				}
				ch := c.Choices[0]
				if ch.Delta.Content != nil {
					text.WriteString(*ch.Delta.Content)
				}
				for _, tc := range ch.Delta.ToolCalls {
					args.WriteString(tc.Function.Arguments)
				}
				if ch.FinishReason != nil {
					finish = *ch.FinishReason
				}
			}
			if (usage != nil) != (tt.usage || chat.StreamOptions != nil) {
				t.Errorf("usage chunk present=%v", usage != nil)
			}
			wc := want.Choices[0]
			if finish != wc.FinishReason || text.String() != wc.Message.Content.String() {
				t.Errorf("stream says %q/%q, chat says %q/%q", text.String(), finish, wc.Message.Content.String(), wc.FinishReason)
			}
			if len(wc.Message.ToolCalls) > 0 && args.String() != wc.Message.ToolCalls[0].Function.Arguments {
				t.Errorf("streamed arguments %q, want %q", args.String(), wc.Message.ToolCalls[0].Function.Arguments)
			}
			if usage != nil && *usage != *want.Usage {
				t.Errorf("stream usage %+v, chat usage %+v", usage, want.Usage)
			}
		})
	}
}

// TestSimStreamGolden pins the exact SSE bytes SimHandler produces.
func TestSimStreamGolden(t *testing.T) {
	s, _ := newTestSim(t, SimConfig{Seed: 1, ChunkTokens: 4})
	srv := httptest.NewServer(SimHandler(s))
	defer srv.Close()
	for _, tc := range []struct{ name, body string }{
		{"sim_stream_text.sse", `{"model":"sim-small","stream":true,"stream_options":{"include_usage":true},"max_tokens":12,"messages":[{"role":"user","content":"Hello, sim!"}]}`},
		{"sim_stream_tool.sse", `{"model":"sim-small","stream":true,"messages":[{"role":"user","content":"weather?"}],"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}]}`},
	} {
		resp, err := http.Post(srv.URL+"/v1/chat/completions", "application/json", strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
			t.Errorf("content type %q", ct)
		}
		golden(t, tc.name, got)
	}
}

func TestSimFaults(t *testing.T) {
	const body = `{"model":"x","messages":[{"role":"user","content":"hi"}]}`
	tests := []struct {
		kind       string
		status     int
		retryAfter time.Duration
	}{
		{SimError429, 429, 2 * time.Second},
		{SimError500, 500, 0},
		{SimError503, 503, 0},
		{SimErrorTimeout, 504, 0},
		{SimErrorStreamCut, 502, 0},
	}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			s, clock := newTestSim(t, SimConfig{ErrorRate: 1, ErrorKinds: []string{tt.kind}, RetryAfter: 2 * time.Second, HangTimeout: time.Minute})
			_, err := s.Chat(context.Background(), &Request{Chat: mustChat(t, body)})
			e := asLLMError(t, err)
			if e.Status != tt.status || !e.Retryable || !e.Upstream || e.RetryAfter != tt.retryAfter {
				t.Errorf("%+v", e)
			}
			if tt.kind == SimErrorTimeout {
				if got := clock.Sleeps(); len(got) != 1 || got[0] != time.Minute {
					t.Errorf("timeout hung for %v, want [1m]", got)
				}
			}
		})
	}

	t.Run("stream_cut after the first chunk", func(t *testing.T) {
		s, _ := newTestSim(t, SimConfig{ErrorRate: 1, ErrorKinds: []string{SimErrorStreamCut}})
		st, err := s.Stream(context.Background(), &Request{Chat: mustChat(t, `{"model":"x","stream":true,"messages":[{"role":"user","content":"hi"}]}`)})
		if err != nil {
			t.Fatal(err)
		}
		chunks, err := drain(t, st)
		if e := asLLMError(t, err); e.Status != 502 || !e.Retryable || len(chunks) < 1 {
			t.Errorf("%d chunks then %+v", len(chunks), e)
		}
	})

	t.Run("timeout hangs until the client leaves", func(t *testing.T) {
		s, err := NewSim(SimConfig{ErrorRate: 1, ErrorKinds: []string{SimErrorTimeout}}) // real sleep: returns only on ctx
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err = s.Chat(ctx, &Request{Chat: mustChat(t, body)})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v", err)
		}
		if _, ok := llm.AsError(err); ok {
			t.Fatal("client cancel became an llm.Error")
		}
	})

	t.Run("error rate is a rate and reproducible", func(t *testing.T) {
		run := func() []bool {
			s, _ := newTestSim(t, SimConfig{Seed: 9, ErrorRate: 0.3, ErrorKinds: []string{SimError500, SimError429}})
			var out []bool
			for range 200 {
				_, err := s.Chat(context.Background(), &Request{Chat: mustChat(t, body)})
				out = append(out, err != nil)
			}
			return out
		}
		a, b := run(), run()
		fails := 0
		for i := range a {
			if a[i] != b[i] {
				t.Fatal("same seed, different fault sequence")
			}
			if a[i] {
				fails++
			}
		}
		if fails == 0 || fails == len(a) {
			t.Errorf("%d of %d failed", fails, len(a))
		}
	})
}

func TestSimCountPromptInjected(t *testing.T) {
	s, _ := newTestSim(t, SimConfig{CountPrompt: func(*llm.ChatRequest) int { return 1234 }})
	r := simChat(t, s, `{"model":"x","messages":[{"role":"user","content":"hi"}]}`)
	if r.Usage.PromptTokens != 1234 || r.Usage.TotalTokens != 1234+r.Usage.CompletionTokens {
		t.Errorf("%+v", r.Usage)
	}
	// A request built in code without messages must not panic.
	if _, err := s.Chat(context.Background(), &Request{Chat: &llm.ChatRequest{Model: "x"}}); err != nil {
		t.Fatal(err)
	}
}

func TestSimTiming(t *testing.T) {
	s, clock := newTestSim(t, SimConfig{
		Latency: Dist{Value: 300 * time.Millisecond}, TTFT: Dist{Value: 150 * time.Millisecond},
		TokensPerSecond: 100, ChunkTokens: 2,
	})
	simChat(t, s, `{"model":"x","messages":[{"role":"user","content":"hi"}]}`)
	if got := clock.Sleeps(); len(got) != 1 || got[0] != 300*time.Millisecond {
		t.Fatalf("chat slept %v", got)
	}
	st, err := s.Stream(context.Background(), &Request{Chat: mustChat(t, `{"model":"x","stream":true,"max_tokens":6,"messages":[{"role":"user","content":"hi"}]}`)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := drain(t, st); err != io.EOF {
		t.Fatal(err)
	}
	// TTFT before the role chunk, then 2 tokens at 100 tok/s per content chunk.
	want := []time.Duration{300 * time.Millisecond, 150 * time.Millisecond, 20 * time.Millisecond, 20 * time.Millisecond, 20 * time.Millisecond}
	if got := clock.Sleeps(); !equalDurations(got, want) {
		t.Errorf("sleeps %v, want %v", got, want)
	}
}

func equalDurations(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestDist(t *testing.T) {
	rng := func() *rand.Rand { return rand.New(rand.NewPCG(1, 2)) }
	tests := []struct {
		name     string
		d        Dist
		min, max time.Duration
	}{
		{"zero", Dist{}, 0, 0},
		{"fixed", Dist{Value: time.Second}, time.Second, time.Second},
		{"uniform", Dist{Kind: "uniform", Min: time.Second, Max: 2 * time.Second}, time.Second, 2 * time.Second},
		{"normal never negative", Dist{Kind: "normal", Mean: time.Millisecond, Stddev: time.Second}, 0, time.Hour},
		{"lognormal capped", Dist{Kind: "lognormal", P50: time.Second, P99: 10 * time.Second, Max: 3 * time.Second}, 0, 3 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.d.validate("d"); err != nil {
				t.Fatal(err)
			}
			r1, r2 := rng(), rng()
			for range 1000 {
				v := tt.d.Sample(r1)
				if v < tt.min || v > tt.max {
					t.Fatalf("sample %v outside [%v, %v]", v, tt.min, tt.max)
				}
				if v != tt.d.Sample(r2) {
					t.Fatal("not reproducible")
				}
			}
		})
	}
	// The lognormal's median is P50: about half the samples fall below it.
	d, r, below := Dist{Kind: "lognormal", P50: time.Second, P99: 4 * time.Second}, rng(), 0
	for range 10000 {
		if d.Sample(r) < time.Second {
			below++
		}
	}
	if below < 4500 || below > 5500 {
		t.Errorf("%d of 10000 below p50", below)
	}
	if _, err := NewSim(SimConfig{Latency: Dist{Kind: "weibull"}, ErrorRate: 2, ErrorKinds: []string{"418"}}); err == nil ||
		!strings.Contains(err.Error(), "latency") || !strings.Contains(err.Error(), "error_rate") || !strings.Contains(err.Error(), "error_kinds[0]") {
		t.Errorf("bad config accepted or reported incompletely: %v", err)
	}
}

func cosine(a, b []float32) float64 {
	var d float64
	for i := range a {
		d += float64(a[i]) * float64(b[i])
	}
	return d
}

func TestSimEmbed(t *testing.T) {
	s, _ := newTestSim(t, SimConfig{Seed: 5})
	embed := func(body string) *llm.EmbeddingResponse {
		r, err := s.Embed(context.Background(), &EmbedRequest{Embedding: mustEmbedding(t, body)})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	vec := func(e llm.Embedding) []float32 {
		var v []float32
		if err := json.Unmarshal(e.Embedding, &v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	r := embed(`{"model":"emb","input":["How do I reset my password?","how can I reset my password","Best pizza in Naples"]}`)
	a, b, c := vec(r.Data[0]), vec(r.Data[1]), vec(r.Data[2])
	if len(a) != 256 || math.Abs(cosine(a, a)-1) > 1e-5 {
		t.Fatalf("len %d norm² %v", len(a), cosine(a, a))
	}
	if cosine(a, b) <= cosine(a, c)+0.3 {
		t.Errorf("similar %.3f vs unrelated %.3f", cosine(a, b), cosine(a, c))
	}
	if r.Usage == nil || r.Usage.PromptTokens == 0 || r.Model != "emb" || r.Object != "list" {
		t.Errorf("%+v", r)
	}
	if again := embed(`{"model":"emb","input":["How do I reset my password?","how can I reset my password","Best pizza in Naples"]}`); !bytes.Equal(again.Raw, r.Raw) {
		t.Error("embeddings are not deterministic")
	}
	b64 := embed(`{"model":"emb","input":"How do I reset my password?","encoding_format":"base64","dimensions":64}`)
	var s64 string
	if err := json.Unmarshal(b64.Data[0].Embedding, &s64); err != nil {
		t.Fatal(err)
	}
	raw, err := base64.StdEncoding.DecodeString(s64)
	if err != nil || len(raw) != 64*4 {
		t.Fatalf("%v, %d bytes", err, len(raw))
	}
	want := SimEmbedding("How do I reset my password?", 64, 5)
	for i := range want {
		if math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:])) != want[i] {
			t.Fatalf("component %d differs", i)
		}
	}
	if tok := embed(`{"model":"emb","input":[[1,2,3]]}`); tok.Usage.PromptTokens != 3 || len(tok.Data) != 1 {
		t.Errorf("token input: %+v", tok.Usage)
	}
}

// TestSimOverHTTP runs the OpenAI client against SimHandler: the sim as a
// real upstream, errors included.
func TestSimOverHTTP(t *testing.T) {
	ok, _ := newTestSim(t, SimConfig{Seed: 1})
	limited, _ := newTestSim(t, SimConfig{ErrorRate: 1, ErrorKinds: []string{SimError429}, RetryAfter: 1500 * time.Millisecond})
	cut, _ := newTestSim(t, SimConfig{ErrorRate: 1, ErrorKinds: []string{SimErrorStreamCut}})
	client := func(s *Sim) *OpenAI {
		srv := httptest.NewServer(SimHandler(s))
		t.Cleanup(srv.Close)
		c, err := NewOpenAI(OpenAIConfig{Name: "sim-http", BaseURL: srv.URL + "/v1"})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	chat := mustChat(t, `{"model":"sim-small","messages":[{"role":"user","content":"hello over http"}]}`)
	streamChat := mustChat(t, `{"model":"sim-small","stream":true,"messages":[{"role":"user","content":"hello over http"}]}`)

	t.Run("chat matches in-process", func(t *testing.T) {
		resp, err := client(ok).Chat(context.Background(), &Request{Chat: chat, Model: "sim-small"})
		if err != nil {
			t.Fatal(err)
		}
		direct, _ := newTestSim(t, SimConfig{Seed: 1})
		want := simChat(t, direct, string(chat.Raw))
		if !bytes.Equal(resp.Raw, want.Raw) {
			t.Errorf("over HTTP:\n%s\nin process:\n%s", resp.Raw, want.Raw)
		}
	})
	t.Run("stream with usage", func(t *testing.T) {
		st, err := client(ok).Stream(context.Background(), &Request{Chat: streamChat, Model: "sim-small", IncludeUsage: true})
		if err != nil {
			t.Fatal(err)
		}
		chunks, err := drain(t, st)
		if err != io.EOF || len(chunks) < 4 || chunks[len(chunks)-1].Usage == nil {
			t.Fatalf("%d chunks, %v", len(chunks), err)
		}
	})
	t.Run("429 with retry-after", func(t *testing.T) {
		_, err := client(limited).Chat(context.Background(), &Request{Chat: chat})
		if e := asLLMError(t, err); e.Status != 429 || e.RetryAfter != 1500*time.Millisecond || !e.Retryable || e.Code != "rate_limit_exceeded" || e.Provider != "sim-http" {
			t.Errorf("%+v", e)
		}
	})
	t.Run("stream cut is a retryable 502 after the first chunk", func(t *testing.T) {
		st, err := client(cut).Stream(context.Background(), &Request{Chat: streamChat})
		if err != nil {
			t.Fatal(err)
		}
		chunks, err := drain(t, st)
		if e := asLLMError(t, err); e.Status != 502 || !e.Retryable || len(chunks) < 1 {
			t.Errorf("%d chunks then %+v", len(chunks), e)
		}
	})
	t.Run("bad request is a 400 envelope", func(t *testing.T) {
		c := client(ok)
		bad := &llm.ChatRequest{Raw: []byte(`{"model":"m","messages":[]}`)}
		_, err := c.Chat(context.Background(), &Request{Chat: bad})
		if e := asLLMError(t, err); e.Status != 400 || e.Retryable || e.Param != "messages" {
			t.Errorf("%+v", e)
		}
	})
}
