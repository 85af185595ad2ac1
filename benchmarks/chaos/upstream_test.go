package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// postUpstream sends a chat request straight to a hostile upstream.
func postUpstream(t *testing.T, ctx context.Context, u *upstream, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.URL+"/chat/completions", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+upstreamAPIKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// events reads a whole SSE body into its data payloads.
func events(t *testing.T, body io.Reader) []string {
	t.Helper()
	var out []string
	br := bufio.NewReaderSize(body, 1<<20)
	for {
		line, err := br.ReadString('\n')
		if d, ok := strings.CutPrefix(strings.TrimRight(line, "\n"), "data: "); ok {
			out = append(out, d)
		}
		if err != nil {
			return out
		}
	}
}

func mustUpstream(t *testing.T, b behaviour) *upstream {
	t.Helper()
	u, err := startUpstream(b)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(u.Close)
	return u
}

const streamReq = `{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`

func TestFloodFinishedStream(t *testing.T) {
	const limit = 64 << 10
	u := mustUpstream(t, flood(limit, true))
	resp := postUpstream(t, context.Background(), u, streamReq)
	defer resp.Body.Close()
	ev := events(t, resp.Body)
	if len(ev) < 3 || ev[len(ev)-1] != "[DONE]" {
		t.Fatalf("%d events, last %q: want chunks, usage, [DONE]", len(ev), ev[len(ev)-1])
	}
	var chunks int
	for _, e := range ev[:len(ev)-2] {
		var c struct {
			Choices []struct {
				Delta struct {
					Content   *string `json:"content"`
					Reasoning string  `json:"reasoning_content"`
				} `json:"delta"`
			} `json:"choices"`
		}
		if err := json.Unmarshal([]byte(e), &c); err != nil || len(c.Choices) != 1 {
			t.Fatalf("chunk %q: %v", e[:min(len(e), 80)], err)
		}
		if c.Choices[0].Delta.Content != nil || len(c.Choices[0].Delta.Reasoning) != 4<<10 {
			t.Fatalf("a flood chunk must carry only 4 KiB of reasoning_content: %q", e[:80])
		}
		chunks++
	}
	if want := (limit + len(floodChunk) - 1) / len(floodChunk); chunks != want {
		t.Fatalf("%d chunks, want %d for a %d-byte limit", chunks, want, limit)
	}
	if !strings.Contains(ev[len(ev)-2], `"usage"`) {
		t.Fatalf("no usage chunk before [DONE]: %q", ev[len(ev)-2])
	}
}

// TestFloodStopsWhenTheClientLeaves: an endless stream ends with its
// reader, far below its own bound.
func TestFloodStopsWhenTheClientLeaves(t *testing.T) {
	u := mustUpstream(t, flood(1<<40, false))
	resp := postUpstream(t, context.Background(), u, streamReq)
	if _, err := io.CopyN(io.Discard, resp.Body, 1<<20); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if err := waitFor(context.Background(), time.Minute, func() bool { return u.inFlight.Load() == 0 }); err != nil {
		t.Fatal("the handler is still running after its client left")
	}
	if w := u.written.Load(); w >= 1<<40 {
		t.Fatalf("wrote %d bytes", w)
	}
}

func TestGiantLineIsOneLine(t *testing.T) {
	const n = 3 << 20
	u := mustUpstream(t, giantLine(n))
	resp := postUpstream(t, context.Background(), u, streamReq)
	defer resp.Body.Close()
	ev := events(t, resp.Body)
	if len(ev) != 2 || ev[1] != "[DONE]" {
		t.Fatalf("want one event and [DONE], got %d events", len(ev))
	}
	var c struct {
		Choices []struct {
			Delta struct {
				Content string `json:"content"`
			} `json:"delta"`
		} `json:"choices"`
	}
	if err := json.Unmarshal([]byte(ev[0]), &c); err != nil {
		t.Fatal(err)
	}
	if got := len(c.Choices[0].Delta.Content); got != n {
		t.Fatalf("content of %d bytes, want %d", got, n)
	}
}

// TestStallHoldsUntilTheClientLeaves: two chunks, then silence with the
// connection open; cancelling the client ends the handler.
func TestStallHoldsUntilTheClientLeaves(t *testing.T) {
	u := mustUpstream(t, stall(time.Hour))
	ctx, cancel := context.WithCancel(context.Background())
	resp := postUpstream(t, ctx, u, streamReq)
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	var got []string
	for len(got) < 2 {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("after %v: %v", got, err)
		}
		if d, ok := strings.CutPrefix(strings.TrimSpace(line), "data: "); ok {
			got = append(got, d)
		}
	}
	if !strings.Contains(got[1], "The answer is") {
		t.Fatalf("second chunk %q", got[1])
	}
	if u.inFlight.Load() != 1 {
		t.Fatalf("in flight %d, want the stalled handler", u.inFlight.Load())
	}
	cancel()
	if err := waitFor(context.Background(), time.Minute, func() bool { return u.inFlight.Load() == 0 }); err != nil {
		t.Fatal("the stalled handler outlived its client")
	}
}

func TestHugeJSONIsChunkedAndValid(t *testing.T) {
	const n = 1 << 20
	u := mustUpstream(t, hugeJSON(n))
	resp := postUpstream(t, context.Background(), u, `{"model":"m"}`)
	defer resp.Body.Close()
	if resp.ContentLength != -1 {
		t.Fatalf("Content-Length %d: a bound must not be able to refuse it up front", resp.ContentLength)
	}
	var c struct {
		Choices []struct {
			Message struct {
				Content string `json:"content"`
			} `json:"message"`
		} `json:"choices"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&c); err != nil {
		t.Fatal(err)
	}
	if len(c.Choices) != 1 || len(c.Choices[0].Message.Content) != n {
		t.Fatalf("want one choice of %d bytes", n)
	}
}

func TestAnswerBillsWhatItIsTold(t *testing.T) {
	u := mustUpstream(t, answer(100_000))
	for _, tc := range []struct {
		name string
		body string
	}{
		{"json", `{"model":"m","max_tokens":16}`},
		{"stream", `{"model":"m","max_tokens":16,"stream":true}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := postUpstream(t, context.Background(), u, tc.body)
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if !bytes.Contains(b, []byte(`"completion_tokens":100000`)) {
				t.Fatalf("no billed usage in %s", b)
			}
		})
	}
	seen := u.seenRequests()
	if len(seen) != 2 || !bytes.Contains(seen[0].body, []byte(`"max_tokens":16`)) || seen[0].header.Get("Authorization") != "Bearer "+upstreamAPIKey {
		t.Fatalf("the upstream did not keep what it received: %+v", seen)
	}
}

func TestTickerEndsProperly(t *testing.T) {
	u := mustUpstream(t, ticker(time.Millisecond, 20*time.Millisecond))
	resp := postUpstream(t, context.Background(), u, streamReq)
	defer resp.Body.Close()
	ev := events(t, resp.Body)
	if len(ev) < 3 || ev[len(ev)-1] != "[DONE]" || !strings.Contains(ev[len(ev)-2], `"usage"`) {
		t.Fatalf("want role chunk, ticks, usage, [DONE]; got %d events", len(ev))
	}
}

// TestWarmUpIsAnsweredNormally: any behaviour answers a warm-up prompt
// like an honest upstream.
func TestWarmUpIsAnsweredNormally(t *testing.T) {
	u := mustUpstream(t, giantLine(1<<30))
	resp := postUpstream(t, context.Background(), u, `{"model":"m","stream":true,"messages":[{"role":"user","content":"`+warmUpMarker+` 1"}]}`)
	defer resp.Body.Close()
	ev := events(t, resp.Body)
	if len(ev) != 3 || ev[2] != "[DONE]" {
		t.Fatalf("warm-up answer: %q", ev)
	}
}

func TestUpstreamRefusals(t *testing.T) {
	u := mustUpstream(t, answer(1))
	for _, tc := range []struct {
		name, method, path, auth string
		want                     int
	}{
		{"other path", http.MethodPost, "/v1/embeddings", "Bearer x", http.StatusNotFound},
		{"GET", http.MethodGet, "/v1/chat/completions", "Bearer x", http.StatusNotFound},
		{"no key", http.MethodPost, "/v1/chat/completions", "", http.StatusUnauthorized},
		{"not JSON", http.MethodPost, "/v1/chat/completions", "Bearer x", http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, strings.TrimSuffix(u.URL, "/v1")+tc.path, strings.NewReader("{"))
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}
}
