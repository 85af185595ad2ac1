package providers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tollgate/tollgate/pkg/llm"
)

var doneData = []byte("[DONE]")

// Stream sends a streamed chat completion and returns once the upstream
// answered with its headers. Errors before the first event (status, auth,
// rate limits) come from Stream itself, so the gateway can still fall back.
func (c *OpenAI) Stream(ctx context.Context, r *Request) (Stream, error) {
	body, err := c.chatBody(r, true)
	if err != nil {
		return nil, err
	}
	// The stream owns a cancel so Close aborts the body read and the
	// timeouts below can interrupt it without a goroutine of our own.
	sctx, cancel := context.WithCancel(ctx)
	s := &openAIStream{c: c, parent: ctx, cancel: cancel}
	if c.cfg.Timeout > 0 {
		s.timer = time.AfterFunc(c.cfg.Timeout, s.expire)
	}
	req, err := c.newRequest(sctx, "chat/completions", r.Model, r.APIKey, body, true)
	if err != nil {
		s.Close()
		return nil, err
	}
	resp, err := c.client.Do(req)
	if err != nil {
		err = c.transportError(ctx, err, s.timedOut.Load())
		s.Close()
		return nil, err
	}
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	s.body = resp.Body
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		err := c.statusError(resp)
		s.Close()
		return nil, err
	}
	if ct := resp.Header.Get("Content-Type"); strings.HasPrefix(ct, "application/json") {
		// Some servers answer an error, or ignore stream, with plain JSON.
		b, _ := readLimited(resp, maxErrorBody)
		s.Close()
		e := badResponse(c.name, "upstream answered JSON to a streaming request", nil)
		e.Retryable = false
		if fillFromBody(e, b) {
			e.Type = llm.TypeUpstream
		}
		return nil, e
	}
	s.sse = newSSEReader(resp.Body)
	if c.cfg.StreamIdleTimeout > 0 {
		s.timer = time.AfterFunc(c.cfg.StreamIdleTimeout, s.expire)
	}
	return s, nil
}

type openAIStream struct {
	c        *OpenAI
	parent   context.Context
	cancel   context.CancelFunc
	body     io.ReadCloser
	sse      *sseReader
	timer    *time.Timer
	timedOut atomic.Bool
	closed   atomic.Bool // Close may run on another goroutine than Recv
	err      error       // sticky, owned by the Recv goroutine
	once     sync.Once
}

var errStreamClosed = fmt.Errorf("providers: stream closed: %w", io.ErrClosedPipe)

func (s *openAIStream) expire() {
	s.timedOut.Store(true)
	s.cancel()
}

// Recv returns the next chunk, io.EOF after [DONE].
func (s *openAIStream) Recv() (*llm.ChatChunk, error) {
	if s.err != nil {
		return nil, s.err
	}
	if s.closed.Load() {
		return nil, errStreamClosed
	}
	if s.timer != nil {
		s.timer.Reset(s.c.cfg.StreamIdleTimeout)
	}
	chunk, err := s.next()
	if err != nil {
		s.err = err
		if err == io.EOF {
			s.drain()
		}
		s.Close()
		return nil, err
	}
	return chunk, nil
}

func (s *openAIStream) next() (*llm.ChatChunk, error) {
	for {
		data, event, err := s.sse.next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil, &llm.Error{Status: http.StatusBadGateway, Type: llm.TypeUpstream, Upstream: true,
					Provider: s.c.name, Retryable: true, Message: "upstream stream ended without [DONE]", Err: io.ErrUnexpectedEOF}
			}
			if s.closed.Load() {
				return nil, errStreamClosed
			}
			return nil, s.c.transportError(s.parent, err, s.timedOut.Load())
		}
		data = bytes.TrimSpace(data)
		if len(data) == 0 {
			continue
		}
		if bytes.Equal(data, doneData) {
			return nil, io.EOF
		}
		if string(event) == "error" {
			return nil, streamError(s.c.name, data)
		}
		raw := bytes.Clone(data)
		chunk := &llm.ChatChunk{}
		if err := decodeJSON(raw, chunk); err != nil {
			return nil, badResponse(s.c.name, "upstream sent a malformed stream event: "+snippet(string(raw)), err)
		}
		// An OpenAI chunk always has an id; an event without one and
		// without choices may be an {"error":...} sent mid-stream.
		if chunk.ID == "" && len(chunk.Choices) == 0 && chunk.Usage == nil && bytes.Contains(raw, []byte(`"error"`)) {
			return nil, streamError(s.c.name, raw)
		}
		chunk.Raw = raw
		return chunk, nil
	}
}

// streamError maps an error event. The HTTP status was already 200, so the
// status is 502 unless the envelope says otherwise (429, 5xx).
func streamError(provider string, data []byte) *llm.Error {
	e := &llm.Error{Status: http.StatusBadGateway, Upstream: true, Provider: provider}
	if !fillFromBody(e, data) {
		e.Message = "upstream sent an error event: " + snippet(string(data))
	}
	var withStatus struct {
		Error struct {
			Code   json.RawMessage `json:"code"`
			Status json.RawMessage `json:"status"`
		} `json:"error"`
	}
	_ = json.Unmarshal(data, &withStatus)
	for _, r := range []json.RawMessage{withStatus.Error.Status, withStatus.Error.Code} {
		var n int
		if json.Unmarshal(r, &n) == nil && n >= 400 && n <= 599 {
			e.Status = n
			break
		}
	}
	switch e.Type {
	case "", llm.TypeServer, llm.TypeRateLimit, llm.TypeTimeout, "overloaded_error", "api_error":
		e.Retryable = true
	default:
		e.Retryable = retryableStatus(e.Status) && e.Status != http.StatusBadGateway
	}
	if e.Type == "" {
		e.Type = llm.TypeUpstream
	}
	return e
}

// drainWait bounds the wait for the end of the body after [DONE].
const drainWait = 100 * time.Millisecond

// drain reads what little follows [DONE] (the chunked terminator) so an
// HTTP/1.1 connection goes back to the pool instead of being torn down. The
// wait is bounded: an upstream that keeps the body open costs a connection,
// not a stuck Recv.
func (s *openAIStream) drain() {
	if s.sse == nil {
		return
	}
	t := time.AfterFunc(drainWait, s.cancel)
	_, _ = io.CopyN(io.Discard, s.sse.br, 4<<10)
	t.Stop()
}

// Close releases the upstream connection. Safe to call twice.
func (s *openAIStream) Close() error {
	s.once.Do(func() {
		if s.timer != nil {
			s.timer.Stop()
		}
		s.closed.Store(true)
		if s.body != nil {
			s.body.Close()
		}
		s.cancel()
	})
	return nil
}
