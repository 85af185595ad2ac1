package providers

import (
	"context"
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

// eventDecoder turns one wire format's stream events into OpenAI chunks.
type eventDecoder interface {
	// decode appends what one event translates to (often one chunk, maybe
	// none) to out; done reports the format's final event. provider names
	// the upstream in errors.
	decode(provider string, data, event []byte, out []*llm.ChatChunk) (_ []*llm.ChatChunk, done bool, _ error)
	// final names the final event, for the error when a stream ends
	// without it.
	final() string
}

// stream sends a streaming request and returns once the upstream answered
// with its headers. Errors before the first event (status, auth, rate
// limits) come from here, so the gateway can still fall back; after that,
// Recv yields what dec makes of each event.
func (u *upstream) stream(ctx context.Context, url string, header http.Header, body []byte, dec eventDecoder) (Stream, error) {
	s, sctx := newSSEStream(ctx, u, dec)
	if u.timeout > 0 {
		s.timer = time.AfterFunc(u.timeout, s.expire)
	}
	req, err := u.newRequest(sctx, url, header, body)
	if err != nil {
		s.Close()
		return nil, err
	}
	resp, err := u.client.Do(req)
	if err != nil {
		err = u.transportError(ctx, err, s.timedOut.Load())
		s.Close()
		return nil, err
	}
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	s.body = resp.Body
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		err := u.format.statusError(resp)
		s.Close()
		return nil, err
	}
	if ct := resp.Header.Get("Content-Type"); strings.HasPrefix(ct, "application/json") {
		// Some servers answer an error, or ignore stream, with plain JSON.
		b, _ := readLimited(resp, maxErrorBody)
		s.Close()
		return nil, u.format.streamJSONError(b)
	}
	s.sse = newSSEReader(resp.Body)
	if u.idleTimeout > 0 {
		s.timer = time.AfterFunc(u.idleTimeout, s.expire)
	}
	return s, nil
}

// sseStream is a stream's lifecycle, whatever its wire format: the idle
// timer, Close from another goroutine, the drain that hands the connection
// back, and a queue for events that translate to several chunks.
type sseStream struct {
	u        *upstream
	dec      eventDecoder
	parent   context.Context
	cancel   context.CancelFunc
	body     io.ReadCloser
	sse      *sseReader
	timer    *time.Timer
	timedOut atomic.Bool
	closed   atomic.Bool // Close may run on another goroutine than Recv
	err      error       // sticky, owned by the Recv goroutine
	once     sync.Once
	queue    []*llm.ChatChunk // decoded, not yet returned
	head     int
	done     bool              // the final event was seen
	first    [1]*llm.ChatChunk // queue's backing until an event decodes to more than one chunk, so the usual one costs no allocation
}

// newSSEStream returns a stream of u's decoded by dec, and the context its
// request must carry: the stream owns a cancel so Close aborts the body
// read and the timeouts can interrupt it without a goroutine of our own.
func newSSEStream(ctx context.Context, u *upstream, dec eventDecoder) (*sseStream, context.Context) {
	sctx, cancel := context.WithCancel(ctx)
	s := &sseStream{u: u, dec: dec, parent: ctx, cancel: cancel}
	s.queue = s.first[:0]
	return s, sctx
}

var errStreamClosed = fmt.Errorf("providers: stream closed: %w", io.ErrClosedPipe)

func (s *sseStream) expire() {
	s.timedOut.Store(true)
	s.cancel()
}

// Recv returns the next chunk, io.EOF after the final event.
func (s *sseStream) Recv() (*llm.ChatChunk, error) {
	if s.err != nil {
		return nil, s.err
	}
	if s.closed.Load() {
		return nil, errStreamClosed
	}
	for s.head == len(s.queue) {
		if s.done {
			s.err = io.EOF
			s.drain()
			s.Close()
			return nil, io.EOF
		}
		if s.timer != nil {
			s.timer.Reset(s.u.idleTimeout)
		}
		if err := s.fill(); err != nil {
			s.err = err
			s.Close()
			return nil, err
		}
	}
	c := s.queue[s.head]
	s.queue[s.head] = nil
	s.head++
	return c, nil
}

// fill reads one event and queues what it decodes to.
func (s *sseStream) fill() error {
	data, event, err := s.sse.next()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return &llm.Error{Status: http.StatusBadGateway, Type: llm.TypeUpstream, Upstream: true, Provider: s.u.name,
				Retryable: true, Message: "upstream stream ended without " + s.dec.final(), Err: io.ErrUnexpectedEOF}
		}
		if s.closed.Load() {
			return errStreamClosed
		}
		return s.u.transportError(s.parent, err, s.timedOut.Load())
	}
	s.queue, s.head = s.queue[:0], 0
	s.queue, s.done, err = s.dec.decode(s.u.name, data, event, s.queue)
	return err
}

// drainWait bounds the wait for the end of the body after the final event.
const drainWait = 100 * time.Millisecond

// drain reads what little follows the final event (the chunked terminator)
// so an HTTP/1.1 connection goes back to the pool instead of being torn
// down. The wait is bounded: an upstream that keeps the body open costs a
// connection, not a stuck Recv.
func (s *sseStream) drain() {
	if s.sse == nil {
		return
	}
	t := time.AfterFunc(drainWait, s.cancel)
	_, _ = io.CopyN(io.Discard, s.sse.br, 4<<10)
	t.Stop()
}

// Close releases the upstream connection. Safe to call twice.
func (s *sseStream) Close() error {
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
