package providers

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

func readEvents(in string) (events []string, types []string, err error) {
	r := newSSEReader(strings.NewReader(in), 0)
	for {
		data, ev, err := r.next()
		if err != nil {
			return events, types, err
		}
		events = append(events, string(data))
		types = append(types, string(ev))
	}
}

func TestSSEReader(t *testing.T) {
	long := strings.Repeat("x", 40<<10) // longer than the bufio buffer
	tests := []struct {
		name  string
		in    string
		want  []string
		types []string
	}{
		{"basic", "data: a\n\ndata: b\n\n", []string{"a", "b"}, []string{"", ""}},
		{"no space after colon", "data:a\n\n", []string{"a"}, nil},
		{"only one space is stripped", "data:  a\n\n", []string{" a"}, nil},
		{"crlf", "data: a\r\n\r\ndata: b\r\n\r\n", []string{"a", "b"}, nil},
		{"multi-line data", "data: a\ndata: b\n\n", []string{"a\nb"}, nil},
		{"comments ignored", ": ping\n\n:x\ndata: a\n\n", []string{"a"}, nil},
		{"event type", "event: error\ndata: {}\n\ndata: n\n\n", []string{"{}", "n"}, []string{"error", ""}},
		{"event without data dropped", "event: ping\n\ndata: a\n\n", []string{"a"}, []string{""}},
		{"id and retry ignored", "id: 7\nretry: 10\ndata: a\n\n", []string{"a"}, nil},
		{"last event without blank line", "data: a\n\ndata: [DONE]", []string{"a", "[DONE]"}, nil},
		{"empty data field", "data\n\n", []string{""}, nil},
		{"long line", "data: " + long + "\n\n", []string{long}, nil},
		{"no events", "\n\n: only comments\n", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, types, err := readEvents(tt.in)
			if err != io.EOF {
				t.Fatalf("err %v, want io.EOF", err)
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") || len(got) != len(tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if tt.types != nil && strings.Join(types, "|") != strings.Join(tt.types, "|") {
				t.Errorf("types %q, want %q", types, tt.types)
			}
		})
	}
}

// streamOver runs the OpenAI stream's event handling over raw bytes.
func streamOver(data []byte) *sseStream {
	return sseStreamOver(data, openAIEvents{})
}

func FuzzSSE(f *testing.F) {
	f.Add([]byte("data: {\"id\":\"a\",\"choices\":[]}\n\ndata: [DONE]\n\n"))
	f.Add([]byte("event: error\r\ndata: {\"error\":{\"message\":\"x\",\"code\":429}}\r\n\r\n"))
	f.Add([]byte(": c\ndata: {\"error\":\"s\"}\ndata\n\n\n"))
	f.Add([]byte("data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0}]}}]}\n\ndata: [DONE]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s := streamOver(data)
		for range 1 << 16 {
			c, err := s.Recv()
			if err != nil {
				break
			}
			if len(c.Raw) == 0 {
				t.Fatal("chunk without Raw")
			}
		}
		s.Close()
	})
}

func sseBody(events int) []byte {
	var b bytes.Buffer
	b.WriteString(`data: {"id":"chatcmpl-abc","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","system_fingerprint":"fp_x","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}` + "\n\n")
	for range events {
		b.WriteString(`data: {"id":"chatcmpl-abc","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","system_fingerprint":"fp_x","choices":[{"index":0,"delta":{"content":" token"},"logprobs":null,"finish_reason":null}]}` + "\n\n")
	}
	b.WriteString(`data: {"id":"chatcmpl-abc","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","system_fingerprint":"fp_x","choices":[],"usage":{"prompt_tokens":10,"completion_tokens":20,"total_tokens":30}}` + "\n\n")
	b.WriteString("data: [DONE]\n\n")
	return b.Bytes()
}

// BenchmarkSSEReader measures event splitting alone (no JSON).
func BenchmarkSSEReader(b *testing.B) {
	body := sseBody(100)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	rd := bytes.NewReader(body)
	r := newSSEReader(rd, 0)
	for b.Loop() {
		rd.Reset(body)
		r.br.Reset(rd)
		for {
			if _, _, err := r.next(); err != nil {
				break
			}
		}
	}
}

// BenchmarkSSEChunks measures what the gateway pays per stream event:
// splitting, copying Raw and parsing into llm.ChatChunk (op = one event).
func BenchmarkSSEChunks(b *testing.B) {
	body := sseBody(100)
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		s := streamOver(body)
		for {
			if _, err := s.Recv(); err != nil {
				break
			}
			n++
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/event")
}
