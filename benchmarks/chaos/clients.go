package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// nonce makes every prompt of a run unique, so that no request is
// answered from the cache another one filled.
func nonce() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// chatBody is a chat request for model asking for at most maxTokens (0:
// none). extra fields are added (and win).
func chatBody(model string, maxTokens int64, stream bool, extra map[string]any) []byte {
	m := map[string]any{
		"model":    model,
		"messages": []any{map[string]any{"role": "user", "content": "chaos probe " + nonce()}},
	}
	if maxTokens > 0 {
		m["max_tokens"] = maxTokens
	}
	if stream {
		m["stream"] = true
		m["stream_options"] = map[string]any{"include_usage": true}
	}
	for k, v := range extra {
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err) // the suite's own literals
	}
	return b
}

// client has no overall timeout: streams are bounded by the probes'
// contexts, which every request carries.
var client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}}

func newChatRequest(ctx context.Context, base, key string, body []byte) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/chat/completions", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	return req, nil
}

// reply is a non-streamed answer: its status, headers and the first
// maxReplyBody bytes of its body (size counts all of it).
type reply struct {
	status int
	header http.Header
	body   []byte
	size   int64
}

const maxReplyBody = 1 << 20

func doRequest(req *http.Request) (reply, error) {
	resp, err := client.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	n, err := io.Copy(&buf, io.LimitReader(resp.Body, maxReplyBody))
	if err == nil {
		var rest int64
		rest, err = io.Copy(io.Discard, resp.Body)
		n += rest
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: buf.Bytes(), size: n}, err
}

func postChat(ctx context.Context, base, key string, body []byte) (reply, error) {
	req, err := newChatRequest(ctx, base, key, body)
	if err != nil {
		return reply{}, err
	}
	return doRequest(req)
}

// How a stream ended, as the client saw it.
const (
	endDone       = "[DONE]"
	endErrorEvent = "error event"
	endCut        = "cut without [DONE]"
	endStatus     = "status"
	endGaveUp     = "still open when the suite gave up"
)

// streamResult is what a client saw of one streamed request.
type streamResult struct {
	status     int
	requestID  string
	events     int   // data events before the end
	bytes      int64 // body bytes read
	start      time.Time
	firstEvent time.Time // zero if none came
	end        time.Time
	how        string
	detail     string // the error event's or non-200 body's start
}

// afterFirst is how long the stream lasted after its first event.
func (r streamResult) afterFirst() time.Duration {
	if r.firstEvent.IsZero() {
		return 0
	}
	return r.end.Sub(r.firstEvent)
}

func (r streamResult) String() string {
	s := r.how
	if r.how == endStatus {
		s = fmt.Sprintf("HTTP %d", r.status)
	}
	if r.detail != "" {
		s += ": " + r.detail
	}
	return s
}

// maxLine is the longest SSE line the client keeps; longer ones are read
// and counted, not held, so that the suite's own memory stays small
// whatever the gateway relays.
const maxLine = 64 << 10

// stream posts a streaming chat request and reads the answer until it
// ends, maxBytes were read (the suite gives up) or ctx ends. started, if
// set, is called with the result so far when the first event arrives.
func stream(ctx context.Context, base, key string, body []byte, maxBytes int64, started func(streamResult)) streamResult {
	r := streamResult{start: time.Now()}
	req, err := newChatRequest(ctx, base, key, body)
	if err != nil {
		r.how, r.detail, r.end = endCut, err.Error(), time.Now()
		return r
	}
	resp, err := client.Do(req)
	if err != nil {
		r.how, r.detail, r.end = endCut, err.Error(), time.Now()
		if ctx.Err() != nil {
			r.how, r.detail = endGaveUp, ""
		}
		return r
	}
	defer resp.Body.Close()
	r.status, r.requestID = resp.StatusCode, resp.Header.Get("x-tollgate-request-id")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		r.how, r.detail, r.end = endStatus, errorMessage(b), time.Now()
		return r
	}
	stop := context.AfterFunc(ctx, func() { resp.Body.Close() })
	defer stop()
	readEvents(resp.Body, &r, maxBytes, started)
	if r.how == endCut && ctx.Err() != nil {
		r.how, r.detail = endGaveUp, ""
	}
	return r
}

// readEvents reads server-sent events into r until the stream ends or
// maxBytes were read.
func readEvents(body io.Reader, r *streamResult, maxBytes int64, started func(streamResult)) {
	br := bufio.NewReaderSize(body, maxLine)
	var long []byte // the start of a line longer than the buffer
	for {
		if r.bytes >= maxBytes {
			r.how, r.end = endGaveUp, time.Now()
			return
		}
		line, err := br.ReadSlice('\n')
		r.bytes += int64(len(line))
		if errors.Is(err, bufio.ErrBufferFull) {
			if long == nil {
				long = bytes.Clone(line[:min(len(line), 512)])
			}
			continue
		}
		if long != nil {
			line, long = long, nil
		}
		if err != nil {
			r.how, r.end = endCut, time.Now()
			if !errors.Is(err, io.EOF) {
				r.detail = err.Error()
			}
			return
		}
		data, ok := bytes.CutPrefix(bytes.TrimRight(line, "\r\n"), []byte("data:"))
		if !ok {
			continue
		}
		data = bytes.TrimSpace(data)
		switch {
		case string(data) == "[DONE]":
			r.how, r.end = endDone, time.Now()
			return
		case bytes.HasPrefix(data, []byte(`{"error"`)):
			r.how, r.detail, r.end = endErrorEvent, errorMessage(data), time.Now()
			return
		}
		r.events++
		if r.firstEvent.IsZero() {
			r.firstEvent = time.Now()
			if started != nil {
				started(*r)
			}
		}
	}
}

// snippet is the start of a body, for a report.
func snippet(b []byte) string {
	return truncate(strings.TrimSpace(string(b)), 200)
}

// errorMessage is the message of an OpenAI error envelope, or the body's
// start.
func errorMessage(b []byte) string {
	var e struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(b, &e) == nil && e.Error.Message != "" {
		return truncate(e.Error.Message, 200)
	}
	return snippet(b)
}

// rawHead is the head of an HTTP/1.1 chat request with a body of
// contentLength bytes.
func rawHead(addr, key string, contentLength int) []byte {
	return fmt.Appendf(nil, "POST /v1/chat/completions HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n",
		addr, key, contentLength)
}

// smallReceiveBuffer sets SO_RCVBUF before connecting, so the kernel
// advertises a small window: a client that does not read stops the
// gateway's writes after a few KiB rather than megabytes.
func smallReceiveBuffer(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
	})
	if err != nil {
		return err
	}
	return serr
}

// dialNonReader sends a whole streaming request and returns the
// connection, which the caller holds without ever reading from it.
func dialNonReader(ctx context.Context, addr, key string, body []byte) (net.Conn, error) {
	d := net.Dialer{Timeout: 5 * time.Second, Control: smallReceiveBuffer}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if _, err := c.Write(append(rawHead(addr, key, len(body)), body...)); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// dripResult is what a client feeding its body one byte at a time saw.
type dripResult struct {
	start  time.Time
	closed time.Time // when the gateway answered or closed; zero if it did neither
	sent   int       // body bytes sent
	answer string    // the status line, or how the connection ended
}

// drip announces a 4 KiB body and sends it one byte every period until the
// gateway answers or closes the connection, or limit passes.
func drip(ctx context.Context, addr, key string, period, limit time.Duration, connected *atomic.Int64) dripResult {
	r := dripResult{start: time.Now()}
	d := net.Dialer{Timeout: 5 * time.Second}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		r.answer = err.Error()
		return r
	}
	defer c.Close()
	const size = 4096
	if _, err := c.Write(rawHead(addr, key, size)); err != nil {
		r.answer = err.Error()
		return r
	}
	connected.Add(1)
	ended := make(chan string, 1)
	go func() {
		br := bufio.NewReader(c)
		line, err := br.ReadString('\n')
		switch {
		case line != "":
			ended <- strings.TrimSpace(line)
		default:
			ended <- "closed (" + err.Error() + ")"
		}
	}()
	t := time.NewTicker(period)
	defer t.Stop()
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	body := []byte(`{"model":"` + chaosModel + `","messages":[{"role":"user","content":"` + strings.Repeat("x", size) + `"}]}`)
	for {
		select {
		case a := <-ended:
			r.closed, r.answer = time.Now(), a
			return r
		case <-deadline.C:
			r.answer = "still open when the suite gave up"
			return r
		case <-ctx.Done():
			r.answer = "still open when the suite gave up"
			return r
		case <-t.C:
			if r.sent < size-1 {
				if _, err := c.Write(body[r.sent : r.sent+1]); err == nil {
					r.sent++
				}
			}
		}
	}
}
