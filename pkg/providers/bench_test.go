package providers

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
)

const benchAnswer = `{"id":"chatcmpl-abc123","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"The capital of France is Paris. It is known for the Eiffel Tower, the Louvre and its cafes.","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":24,"completion_tokens":22,"total_tokens":46,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0}},"system_fingerprint":"fp_0ba0d124f1"}`

const benchRequest = `{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"What is the capital of France? Answer in two sentences."}],"temperature":0.2,"max_tokens":256}`

func benchUpstream(b *testing.B, h http.HandlerFunc) *OpenAI {
	srv := httptest.NewServer(h)
	b.Cleanup(srv.Close)
	c, err := NewOpenAI(OpenAIConfig{Name: "bench", BaseURL: srv.URL + "/v1", APIKey: "sk-bench",
		HTTPClient: &http.Client{Transport: newTransport()}})
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// BenchmarkOpenAIChat is one non-streamed round trip against an in-process
// upstream that answers instantly: the client's share of the hot path
// (body patch, request, response read and parse), plus loopback HTTP.
func BenchmarkOpenAIChat(b *testing.B) {
	answer := []byte(benchAnswer)
	c := benchUpstream(b, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(answer)))
		w.Write(answer)
	})
	req := &Request{Chat: mustChat(b, benchRequest), Model: "gpt-4o-mini-2024-07-18"}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Chat(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenAIStream is one streamed round trip of 50 content events.
func BenchmarkOpenAIStream(b *testing.B) {
	body := sseBody(50)
	c := benchUpstream(b, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		w.Write(body)
	})
	req := &Request{Chat: mustChat(b, `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}`), Model: "gpt-4o-mini-2024-07-18", IncludeUsage: true}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		st, err := c.Stream(ctx, req)
		if err != nil {
			b.Fatal(err)
		}
		for {
			if _, err := st.Recv(); err != nil {
				if err != io.EOF {
					b.Fatal(err)
				}
				break
			}
		}
		st.Close()
	}
}

// BenchmarkReverseProxyFloor is the same round trip through a bare
// http.Client, with no body patch and no parse: the floor to compare
// BenchmarkOpenAIChat with.
func BenchmarkReverseProxyFloor(b *testing.B) {
	answer := []byte(benchAnswer)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Length", strconv.Itoa(len(answer)))
		w.Write(answer)
	}))
	defer srv.Close()
	client := &http.Client{Transport: newTransport()}
	b.ReportAllocs()
	for b.Loop() {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/chat/completions", stringsReader(benchRequest))
		req.Header.Set("Authorization", "Bearer sk-bench")
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

func BenchmarkSimChat(b *testing.B) {
	s, _ := newTestSim(b, SimConfig{})
	req := &Request{Chat: mustChat(b, benchRequest)}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Chat(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
}
