package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestReadEvents(t *testing.T) {
	long := strings.Repeat("x", 3*maxLine)
	for _, tc := range []struct {
		name     string
		in       string
		maxBytes int64
		how      string
		events   int
		detail   string
	}{
		{"done", "data: {\"a\":1}\n\ndata: {\"a\":2}\n\ndata: [DONE]\n\n", 1 << 20, endDone, 2, ""},
		{"error event", "data: {\"a\":1}\n\ndata: {\"error\":{\"message\":\"too big\"}}\n\n", 1 << 20, endErrorEvent, 1, "too big"},
		{"cut", "data: {\"a\":1}\n\n", 1 << 20, endCut, 1, ""},
		{"comments and CRLF", ": ping\r\ndata:{\"a\":1}\r\n\r\ndata: [DONE]\r\n\r\n", 1 << 20, endDone, 1, ""},
		{"a line longer than the buffer", "data: {\"a\":\"" + long + "\"}\n\ndata: [DONE]\n\n", 1 << 20, endDone, 1, ""},
		{"an error event in a long line", "data: {\"error\":{\"message\":\"" + long + "\"}}\n\n", 1 << 20, endErrorEvent, 0, "{\"error\""},
		{"the suite gives up", "data: {\"a\":\"" + long + "\"}\n\ndata: [DONE]\n\n", maxLine, endGaveUp, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r streamResult
			var started int
			readEvents(strings.NewReader(tc.in), &r, tc.maxBytes, func(streamResult) { started++ })
			if r.how != tc.how || r.events != tc.events || !strings.Contains(r.detail, tc.detail) {
				t.Fatalf("got %q, %d events, detail %q; want %q, %d, %q", r.how, r.events, r.detail, tc.how, tc.events, tc.detail)
			}
			if (tc.events > 0) != (started == 1) || started > 1 {
				t.Fatalf("started called %d times for %d events", started, tc.events)
			}
			if r.how != endGaveUp && r.bytes != int64(len(tc.in)) && r.how != endErrorEvent && r.how != endDone {
				t.Fatalf("read %d of %d bytes", r.bytes, len(tc.in))
			}
		})
	}
}

// TestStreamAgainstAServer drives stream() through real HTTP: a refusal
// before the stream, and a stream with its request id.
func TestStreamAgainstAServer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer k" || r.URL.Path != "/v1/chat/completions" {
			t.Errorf("got %s %s", r.Header.Get("Authorization"), r.URL.Path)
		}
		var body struct {
			Stream bool   `json:"stream"`
			Model  string `json:"model"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || !body.Stream {
			t.Errorf("body: %v, stream %v", err, body.Stream)
		}
		if body.Model == "refused" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadGateway)
			w.Write([]byte(`{"error":{"message":"upstream answer too large","type":"upstream_error"}}`))
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("x-tollgate-request-id", "req_1")
		w.Write([]byte("data: {\"a\":1}\n\ndata: [DONE]\n\n"))
	}))
	defer srv.Close()
	r := stream(context.Background(), srv.URL, "k", chatBody("refused", 0, true, nil), 1<<20, nil)
	if r.how != endStatus || r.status != http.StatusBadGateway || r.detail != "upstream answer too large" || !cutOff(r) {
		t.Fatalf("refusal: %+v", r)
	}
	r = stream(context.Background(), srv.URL, "k", chatBody("m", 16, true, nil), 1<<20, nil)
	if r.how != endDone || r.requestID != "req_1" || r.events != 1 || cutOff(r) {
		t.Fatalf("stream: %+v", r)
	}
}

func TestChatBodyIsUnique(t *testing.T) {
	a, b := chatBody("m", 16, true, nil), chatBody("m", 16, true, nil)
	if string(a) == string(b) {
		t.Fatal("two bodies are the same: the second would be a cache hit")
	}
	var m map[string]any
	if err := json.Unmarshal(chatBody("m", 0, false, map[string]any{"n": 2}), &m); err != nil {
		t.Fatal(err)
	}
	if _, ok := m["max_tokens"]; ok || m["n"] != 2.0 || m["stream"] != nil {
		t.Fatalf("body %v", m)
	}
}

func TestTruncateKeepsRunesWhole(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		n    int
		want string
	}{
		{"short", "abc", 5, "abc"},
		{"cut", "abcdef", 3, "abc…"},
		{"inside a rune", "aé", 2, "a…"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := truncate(tc.in, tc.n); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}
