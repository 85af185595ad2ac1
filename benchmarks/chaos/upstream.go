package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// upstream is the hostile OpenAI-compatible upstream of one probe: an HTTP
// server on 127.0.0.1 answering POST /v1/chat/completions with one
// behaviour. It counts requests and the body bytes it wrote, keeps what
// the first requests carried, and stops by itself: Close ends every
// handler, and every behaviour is bounded in bytes and time.
type upstream struct {
	URL string // base_url for the gateway: http://127.0.0.1:port/v1

	srv      *http.Server
	ln       net.Listener
	behave   behaviour
	handlers sync.WaitGroup
	requests atomic.Int64
	inFlight atomic.Int64
	written  atomic.Int64

	mu   sync.Mutex
	seen []seenRequest
}

// seenRequest is what the upstream received: headers and the body (at most
// maxSeenBody bytes of it).
type seenRequest struct {
	header http.Header
	body   []byte
}

const (
	maxSeen     = 256
	maxSeenBody = 64 << 10
	maxReqBody  = 8 << 20
)

// upstreamRequest is what a behaviour needs of a chat request.
type upstreamRequest struct {
	Stream    bool   `json:"stream"`
	MaxTokens *int64 `json:"max_tokens"`
	MaxCompl  *int64 `json:"max_completion_tokens"`
}

// behaviour answers one request; w counts what it writes. It must return
// when r's context ends.
type behaviour func(w http.ResponseWriter, r *http.Request, req upstreamRequest)

func startUpstream(b behaviour) (*upstream, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	u := &upstream{ln: ln, behave: b, URL: "http://" + ln.Addr().String() + "/v1"}
	u.srv = &http.Server{Handler: u, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = u.srv.Serve(ln) }()
	return u, nil
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.handlers.Add(1)
	defer u.handlers.Done()
	u.inFlight.Add(1)
	defer u.inFlight.Add(-1)
	u.requests.Add(1)
	if r.Method != http.MethodPost || r.URL.Path != "/v1/chat/completions" {
		http.Error(w, `{"error":{"message":"the chaos upstream serves only POST /v1/chat/completions","type":"invalid_request_error"}}`, http.StatusNotFound)
		return
	}
	// The configured key, or a caller's own (BYOK): anything but none.
	if r.Header.Get("Authorization") == "" {
		http.Error(w, `{"error":{"message":"no API key","type":"authentication_error"}}`, http.StatusUnauthorized)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxReqBody))
	if err != nil {
		return
	}
	u.mu.Lock()
	if len(u.seen) < maxSeen {
		u.seen = append(u.seen, seenRequest{header: r.Header.Clone(), body: bytes.Clone(body[:min(len(body), maxSeenBody)])})
	}
	u.mu.Unlock()
	var req upstreamRequest
	if err := json.Unmarshal(body, &req); err != nil {
		http.Error(w, `{"error":{"message":"not JSON","type":"invalid_request_error"}}`, http.StatusBadRequest)
		return
	}
	b := u.behave
	if bytes.Contains(body, []byte(warmUpMarker)) {
		b = answer(3)
	}
	b(&countingWriter{ResponseWriter: w, n: &u.written}, r, req)
}

// warmUpMarker in a prompt gets an ordinary answer from every upstream:
// the requests that bring a gateway to its working size before its RSS
// baseline is taken.
const warmUpMarker = "chaos warm-up"

// seenRequests returns what the upstream received so far.
func (u *upstream) seenRequests() []seenRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]seenRequest(nil), u.seen...)
}

// Close stops the server and waits (boundedly) for its handlers.
func (u *upstream) Close() {
	_ = u.srv.Close() // closes the listener and every connection: handlers see their context end
	done := make(chan struct{})
	go func() { u.handlers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
}

// countingWriter counts body bytes and keeps Flush reachable.
type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n.Add(int64(n))
	return n, err
}

func (c *countingWriter) Flush() {
	if f, ok := c.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Wire fragments. Every chunk is a well-formed chat.completion.chunk: the
// hostility is in the sizes and the timing, not in the syntax.
const (
	chunkHead = `{"id":"chatcmpl-chaos","object":"chat.completion.chunk","created":1700000000,"model":"chaos-upstream","choices":[{"index":0,"delta":`
	chunkTail = `,"finish_reason":null}]}`
)

func chunk(delta string) []byte { return []byte(chunkHead + delta + chunkTail) }

func usageChunk(prompt, completion int) []byte {
	return fmt.Appendf(nil, `{"id":"chatcmpl-chaos","object":"chat.completion.chunk","created":1700000000,"model":"chaos-upstream","choices":[],"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}}`,
		prompt, completion, prompt+completion)
}

func completion(content string, prompt, completion int) []byte {
	c, _ := json.Marshal(content)
	return fmt.Appendf(nil, `{"id":"chatcmpl-chaos","object":"chat.completion","created":1700000000,"model":"chaos-upstream","choices":[{"index":0,"message":{"role":"assistant","content":%s},"finish_reason":"stop"}],"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}}`,
		c, prompt, completion, prompt+completion)
}

// sse writes server-sent events, flushing each.
type sse struct {
	w http.ResponseWriter
}

func startSSE(w http.ResponseWriter) sse {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	return sse{w}
}

func (s sse) event(data []byte) error {
	if _, err := s.w.Write([]byte("data: ")); err != nil {
		return err
	}
	if _, err := s.w.Write(data); err != nil {
		return err
	}
	if _, err := s.w.Write([]byte("\n\n")); err != nil {
		return err
	}
	s.w.(http.Flusher).Flush()
	return nil
}

func (s sse) done() { _ = s.event([]byte("[DONE]")) }

// floodChunk carries 4 KiB in a delta field no tokenizer counts
// (reasoning_content), so that only a byte bound, not the output-token
// reservation, can stop a stream made of it.
var floodChunk = chunk(`{"reasoning_content":"` + string(bytes.Repeat([]byte("a"), 4<<10)) + `"}`)

// flood streams floodChunk until limit bytes are written or the gateway
// leaves. finish ends the stream properly (usage, [DONE]) at the limit;
// otherwise it just stops there, the limit being the suite's own bound on
// a stream meant to be endless.
func flood(limit int64, finish bool) behaviour {
	return func(w http.ResponseWriter, r *http.Request, _ upstreamRequest) {
		s := startSSE(w)
		for n := int64(0); n < limit; n += int64(len(floodChunk)) {
			if s.event(floodChunk) != nil || r.Context().Err() != nil {
				return
			}
		}
		if finish {
			_ = s.event(usageChunk(20, 0))
			s.done()
		}
	}
}

// giantLine streams one event whose data line is n bytes of content, with
// no newline until its end, then [DONE].
func giantLine(n int64) behaviour {
	return func(w http.ResponseWriter, r *http.Request, _ upstreamRequest) {
		s := startSSE(w)
		if _, err := io.WriteString(w, "data: "+chunkHead+`{"content":"`); err != nil {
			return
		}
		if _, err := io.CopyN(w, repeatReader('a'), n); err != nil {
			return
		}
		if _, err := io.WriteString(w, `"}`+chunkTail+"\n\n"); err != nil {
			return
		}
		s.done()
	}
}

// stall streams the start of an answer, then stays silent, connection
// open, until the gateway leaves or hold passes.
func stall(hold time.Duration) behaviour {
	return func(w http.ResponseWriter, r *http.Request, _ upstreamRequest) {
		s := startSSE(w)
		if s.event(chunk(`{"role":"assistant","content":""}`)) != nil || s.event(chunk(`{"content":"The answer is"}`)) != nil {
			return
		}
		t := time.NewTimer(hold)
		defer t.Stop()
		select {
		case <-r.Context().Done():
		case <-t.C:
		}
	}
}

// hugeJSON answers a non-streamed completion whose content is n bytes,
// chunked (no Content-Length), so only a bound on what is read stops it.
func hugeJSON(n int64) behaviour {
	return func(w http.ResponseWriter, r *http.Request, _ upstreamRequest) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		head := `{"id":"chatcmpl-chaos","object":"chat.completion","created":1700000000,"model":"chaos-upstream","choices":[{"index":0,"message":{"role":"assistant","content":"`
		if _, err := io.WriteString(w, head); err != nil {
			return
		}
		if _, err := io.CopyN(w, repeatReader('a'), n); err != nil {
			return
		}
		_, _ = io.WriteString(w, `"},"finish_reason":"stop"}],"usage":{"prompt_tokens":20,"completion_tokens":10,"total_tokens":30}}`)
	}
}

// answer is an honest-looking answer, JSON or streamed, that reports
// completionTokens of usage whatever max_tokens said: with a large number
// it is an upstream that ignores the output limit and bills for it.
func answer(completionTokens int) behaviour {
	return func(w http.ResponseWriter, r *http.Request, req upstreamRequest) {
		if !req.Stream {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(completion("ok", 20, completionTokens))
			return
		}
		s := startSSE(w)
		if s.event(chunk(`{"role":"assistant","content":"ok"}`)) != nil {
			return
		}
		_ = s.event(usageChunk(20, completionTokens))
		s.done()
	}
}

// ticker streams one short content chunk every period for length, then
// ends properly: a stream that outlives a drain timeout.
func ticker(period, length time.Duration) behaviour {
	return func(w http.ResponseWriter, r *http.Request, _ upstreamRequest) {
		s := startSSE(w)
		if s.event(chunk(`{"role":"assistant","content":""}`)) != nil {
			return
		}
		t := time.NewTicker(period)
		defer t.Stop()
		end := time.Now().Add(length)
		n := 0
		for time.Now().Before(end) {
			select {
			case <-r.Context().Done():
				return
			case <-t.C:
			}
			if s.event(chunk(`{"content":" tick"}`)) != nil {
				return
			}
			n++
		}
		_ = s.event(usageChunk(20, n))
		s.done()
	}
}

// repeatReader is an endless reader of one byte.
type repeatReader byte

func (r repeatReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}

// errGaveUp marks a wait the probe bounded itself.
var errGaveUp = errors.New("gave up")

// waitFor polls cond every 20ms until it holds, ctx ends or limit passes.
func waitFor(ctx context.Context, limit time.Duration, cond func() bool) error {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return errGaveUp
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
