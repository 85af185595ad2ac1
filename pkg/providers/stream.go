package providers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
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
// Recv yields what dec makes of each event. r.IdleTimeout, when set,
// replaces the configured idle timeout for this stream.
func (u *upstream) stream(ctx context.Context, r *Request, url string, header http.Header, body []byte, dec eventDecoder) (Stream, error) {
	s, sctx := newSSEStream(ctx, u, dec)
	s.idle = u.idleTimeout
	if r.IdleTimeout > 0 {
		s.idle = r.IdleTimeout
	}
	if u.timeout > 0 {
		s.timer = time.AfterFunc(u.timeout, func() { s.expire(expiredHeaders) })
	}
	if u.ttft > 0 {
		s.ttft = time.AfterFunc(u.ttft, func() { s.expire(expiredTTFT) })
	}
	req, err := u.newRequest(sctx, url, header, body)
	if err != nil {
		s.Close()
		return nil, err
	}
	resp, err := u.client.Do(req)
	if err != nil {
		err = s.transportError(err)
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
	s.maxStream = u.maxStream
	if s.maxStream <= 0 {
		s.maxStream = DefaultMaxStreamBytes
	}
	s.capped = cappedReader{r: resp.Body, left: s.maxStream}
	s.sse = newSSEReader(&s.capped, u.maxEvent)
	if s.idle > 0 {
		s.timer = time.AfterFunc(s.idle, func() { s.expire(expiredIdle) })
	}
	return s, nil
}

// DefaultMaxStreamBytes bounds the bytes read from one stream when the
// config does not.
const DefaultMaxStreamBytes = 64 << 20

// errStreamTooLarge is a stream that went on past its byte bound.
var errStreamTooLarge = errors.New("stream too large")

// cappedReader reads at most left bytes of r, then fails with
// errStreamTooLarge: an endless stream ends instead of being relayed for
// as long as the request may last.
type cappedReader struct {
	r    io.Reader
	left int64
}

func (c *cappedReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, errStreamTooLarge
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

// Why a stream's timer cut it.
const (
	expiredHeaders int32 = iota + 1 // the upstream's timeout, before the headers
	expiredTTFT                     // no first chunk within the time-to-first-token bound
	expiredIdle                     // silence between two events
)

// sseStream is a stream's lifecycle, whatever its wire format: the idle
// timer, Close from another goroutine, the drain that hands the connection
// back, and a queue for events that translate to several chunks.
type sseStream struct {
	u         *upstream
	dec       eventDecoder
	parent    context.Context
	cancel    context.CancelFunc
	body      io.ReadCloser
	sse       *sseReader
	idle      time.Duration // this stream's idle timeout; 0: none
	maxStream int64         // bound on the bytes read from the body
	capped    cappedReader  // the body, cut at maxStream (held here to spare an allocation)
	timer     *time.Timer   // the upstream's timeout until the headers, then the idle timeout
	ttft      *time.Timer   // the time-to-first-token bound, stopped by the first chunk
	expired   atomic.Int32  // which timer cut the stream (expired*), 0 while none has
	first     bool          // a chunk was returned, owned by the Recv goroutine
	closed    atomic.Bool   // Close may run on another goroutine than Recv
	err       error         // sticky, owned by the Recv goroutine
	once      sync.Once
	queue     []*llm.ChatChunk // decoded, not yet returned
	head      int
	done      bool              // the final event was seen
	one       [1]*llm.ChatChunk // queue's backing until an event decodes to more than one chunk, so the usual one costs no allocation
}

// newSSEStream returns a stream of u's decoded by dec, and the context its
// request must carry: the stream owns a cancel so Close aborts the body
// read and the timeouts can interrupt it without a goroutine of our own.
func newSSEStream(ctx context.Context, u *upstream, dec eventDecoder) (*sseStream, context.Context) {
	sctx, cancel := context.WithCancel(ctx)
	s := &sseStream{u: u, dec: dec, parent: ctx, cancel: cancel}
	s.queue = s.one[:0]
	return s, sctx
}

var errStreamClosed = fmt.Errorf("providers: stream closed: %w", io.ErrClosedPipe)

// expire cuts the stream for the reason why; the first reason stays.
func (s *sseStream) expire(why int32) {
	s.expired.CompareAndSwap(0, why)
	s.cancel()
}

// errStreamTimeout is the cause of a stream cut by one of its own bounds.
// The read error it replaces is the context.Canceled of the cut, which
// callers would take for the client leaving.
var errStreamTimeout = errors.New("stream timed out")

// transportError maps a failure to reach or read the upstream, saying
// which of the stream's own bounds cut it, if one did.
func (s *sseStream) transportError(err error) error {
	why := s.expired.Load()
	err = s.u.transportError(s.parent, err, why != 0)
	e, ok := err.(*llm.Error)
	if !ok || e.Status != http.StatusGatewayTimeout || why == 0 {
		return err
	}
	e.Err = errStreamTimeout
	switch why {
	case expiredTTFT:
		e.Code, e.Message = "upstream_timeout", fmt.Sprintf("upstream sent no first chunk within %s", s.u.ttft)
	case expiredIdle:
		e.Code, e.Message = "upstream_timeout", fmt.Sprintf("upstream stream was idle for %s", s.idle)
	}
	return e
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
			s.timer.Reset(s.idle)
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
	if !s.first {
		s.first = true
		if s.ttft != nil {
			s.ttft.Stop()
		}
	}
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
		switch {
		case errors.Is(err, errEventTooLarge):
			return tooLarge(s.u.name, "upstream_event_too_large",
				fmt.Sprintf("upstream sent a stream event larger than the limit of %d bytes", s.sse.max), err)
		case errors.Is(err, errStreamTooLarge):
			return tooLarge(s.u.name, "upstream_stream_too_large",
				"upstream stream went on past the limit of "+strconv.FormatInt(s.maxStream, 10)+" bytes", err)
		}
		return s.transportError(err)
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
		if s.ttft != nil {
			s.ttft.Stop()
		}
		s.closed.Store(true)
		if s.body != nil {
			s.body.Close()
		}
		s.cancel()
	})
	return nil
}
