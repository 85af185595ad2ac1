package providers

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/pkg/llm"
)

// repeating yields prefix, then unit over and over, for ever; read counts
// what was taken. An endless upstream without holding it in memory.
type repeating struct {
	prefix, unit []byte
	off          int // into prefix, then into unit
	read         int64
}

func (r *repeating) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		var c int
		if r.off < len(r.prefix) {
			c = copy(p[n:], r.prefix[r.off:])
		} else {
			c = copy(p[n:], r.unit[(r.off-len(r.prefix))%len(r.unit):])
		}
		n += c
		r.off += c
	}
	r.read += int64(n)
	return n, nil
}

// TestSSEReaderBounds: a line or an event longer than the bound is
// errEventTooLarge, found without reading much past the bound or holding
// more than it; lines and events up to the bound are read.
func TestSSEReaderBounds(t *testing.T) {
	const max = 64 << 10
	const slack = 2 * (16 << 10) // what the bufio buffer may hold beyond the bound
	tests := []struct {
		name     string
		in       io.Reader
		wantData int // the first event's length when it is read
		wantErr  error
	}{
		{"an endless line", &repeating{prefix: []byte("data: "), unit: []byte("x")}, 0, errEventTooLarge},
		{"an endless event of short lines", &repeating{unit: []byte("data: " + strings.Repeat("y", 1000) + "\n")}, 0, errEventTooLarge},
		{"an endless comment", &repeating{prefix: []byte(":"), unit: []byte(" keep-alive")}, 0, errEventTooLarge},
		{"a line one byte past the bound", strings.NewReader("data: " + strings.Repeat("x", max-5) + "\n\n"), 0, errEventTooLarge},
		{"a line of exactly the bound", strings.NewReader("data: " + strings.Repeat("x", max-6) + "\n\n"), max - 6, nil},
		{"a line of exactly the bound with CRLF", strings.NewReader("data: " + strings.Repeat("x", max-6) + "\r\n\r\n"), max - 6, nil},
		{"a final line of exactly the bound", strings.NewReader("data: " + strings.Repeat("x", max-6)), max - 6, nil},
		{"an event of exactly the bound in two lines", strings.NewReader("data: " + strings.Repeat("x", max/2) + "\ndata: " + strings.Repeat("x", max/2-1) + "\n\n"), max, nil},
		{"an event one byte past the bound in two lines", strings.NewReader("data: " + strings.Repeat("x", max/2) + "\ndata: " + strings.Repeat("x", max/2) + "\n\n"), 0, errEventTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newSSEReader(tt.in, max)
			data, _, err := r.next()
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err %v, want %v", err, tt.wantErr)
			}
			if err == nil && len(data) != tt.wantData {
				t.Fatalf("event of %d bytes, want %d", len(data), tt.wantData)
			}
			if rep, ok := tt.in.(*repeating); ok && rep.read > max+slack {
				t.Errorf("read %d bytes of an endless input, want at most %d", rep.read, max+slack)
			}
			if cap(r.line) > max+2 || cap(r.data) > max {
				t.Errorf("buffers of %d (line) and %d (data) bytes, bound %d", cap(r.line), cap(r.data), max)
			}
		})
	}
}

const boundChunk = `{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"` +
	`lorem ipsum dolor sit amet"},"finish_reason":null}]}`

// endlessChunks streams chunk events until the client leaves.
func endlessChunks(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/event-stream")
	event := []byte("data: " + boundChunk + "\n\n")
	for r.Context().Err() == nil {
		if _, err := w.Write(event); err != nil {
			return
		}
	}
}

// hugeLine streams one event whose line is n bytes long, written in
// pieces, so neither side of the test holds it.
func hugeLine(n int64) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: ")
		piece := bytes.Repeat([]byte("x"), 64<<10)
		for sent := int64(0); sent < n; sent += int64(len(piece)) {
			if _, err := w.Write(piece); err != nil {
				return
			}
		}
		io.WriteString(w, "\n\n")
	}
}

// paced streams a chunk, waits pause, then another and [DONE].
func paced(pause time.Duration) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: "+boundChunk+"\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-time.After(pause):
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "data: "+boundChunk+"\n\ndata: [DONE]\n\n")
	}
}

// hangGuard bounds a wait that must end on its own: it fails the test
// instead of hanging it. It is no timing threshold: it only catches a
// stream nothing would ever end.
const hangGuard = 30 * time.Second

// readAll reads st to its end, under the hang guard: the chunks and the
// error it ended with (io.EOF for a clean end).
func readAll(t *testing.T, st Stream) (chunks int, err error) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if _, err = st.Recv(); err != nil {
				return
			}
			chunks++
		}
	}()
	select {
	case <-done:
		return chunks, err
	case <-time.After(hangGuard):
		st.Close()
		<-done
		t.Fatalf("the stream did not end within %s (%d chunks read)", hangGuard, chunks)
		return 0, nil
	}
}

// TestStreamBounds: against real upstreams, an endless stream ends at
// max_stream_bytes, an endless line at max_event_bytes, a silent stream at
// the idle timeout (the request's replacing the provider's) or, before its
// first chunk, at the time-to-first-token bound; each with a 502 or 504 in
// OpenAI's shape. Bounds that are not passed cut nothing.
func TestStreamBounds(t *testing.T) {
	oneChunk := "data: " + boundChunk + "\n\n"
	tests := []struct {
		name       string
		handler    func(t *testing.T) http.HandlerFunc
		cfg        OpenAIConfig
		idle       time.Duration // Request.IdleTimeout
		wantChunks int           // -1: some
		wantStatus int           // 0: a clean end
		wantCode   string
		wantMsg    string
	}{
		{name: "an endless stream ends at max_stream_bytes", handler: func(*testing.T) http.HandlerFunc { return endlessChunks },
			cfg: OpenAIConfig{MaxStreamBytes: 64 << 10}, wantChunks: -1, wantStatus: 502, wantCode: "upstream_stream_too_large",
			wantMsg: "past the limit of 65536 bytes"},
		{name: "a 300 MB line is refused at max_event_bytes", handler: func(*testing.T) http.HandlerFunc { return hugeLine(300 << 20) },
			wantStatus: 502, wantCode: "upstream_event_too_large", wantMsg: "larger than the limit of 1048576 bytes"},
		{name: "a small max_event_bytes refuses a normal chunk", handler: func(*testing.T) http.HandlerFunc { return paced(0) },
			cfg: OpenAIConfig{MaxEventBytes: 64}, wantStatus: 502, wantCode: "upstream_event_too_large"},
		{name: "a stream that stalls after its first chunk ends at the idle timeout",
			handler: func(t *testing.T) http.HandlerFunc { h, _ := holdStream(oneChunk); return h },
			cfg:     OpenAIConfig{StreamIdleTimeout: 200 * time.Millisecond}, wantChunks: 1, wantStatus: 504, wantCode: "upstream_timeout",
			wantMsg: "idle for 200ms"},
		{name: "the request's idle timeout applies where the provider has none",
			handler: func(t *testing.T) http.HandlerFunc { h, _ := holdStream(oneChunk); return h },
			idle:    200 * time.Millisecond, wantChunks: 1, wantStatus: 504, wantCode: "upstream_timeout", wantMsg: "idle for 200ms"},
		{name: "the request's longer idle timeout replaces the provider's", handler: func(*testing.T) http.HandlerFunc { return paced(400 * time.Millisecond) },
			cfg: OpenAIConfig{StreamIdleTimeout: 50 * time.Millisecond}, idle: 10 * time.Second, wantChunks: 2},
		{name: "a stream whose first chunk does not come ends at ttft_timeout",
			handler: func(t *testing.T) http.HandlerFunc { h, _ := holdStream(""); return h },
			cfg:     OpenAIConfig{TTFTTimeout: 200 * time.Millisecond}, wantStatus: 504, wantCode: "upstream_timeout",
			wantMsg: "no first chunk within 200ms"},
		{name: "ttft_timeout does not bound the rest of the stream", handler: func(*testing.T) http.HandlerFunc { return paced(800 * time.Millisecond) },
			cfg: OpenAIConfig{TTFTTimeout: 500 * time.Millisecond}, wantChunks: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(tt.handler(t))
			defer srv.Close()
			cfg := tt.cfg
			cfg.Name, cfg.BaseURL = "up", srv.URL
			c, err := NewOpenAI(cfg)
			if err != nil {
				t.Fatal(err)
			}
			req := &Request{Chat: mustChat(t, `{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}`), IdleTimeout: tt.idle}
			st, err := c.Stream(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			chunks, err := readAll(t, st)
			switch {
			case tt.wantChunks >= 0 && chunks != tt.wantChunks:
				t.Errorf("%d chunks, want %d", chunks, tt.wantChunks)
			case tt.wantChunks < 0 && chunks == 0:
				t.Errorf("no chunk before the end")
			}
			if tt.wantStatus == 0 {
				if err != io.EOF {
					t.Fatalf("ended with %v, want a clean end", err)
				}
				return
			}
			e := asLLMError(t, err)
			if e.Status != tt.wantStatus || e.Code != tt.wantCode || !e.Upstream || !strings.Contains(e.Message, tt.wantMsg) {
				t.Errorf("got %d %q %q, want %d %q with %q", e.Status, e.Code, e.Message, tt.wantStatus, tt.wantCode, tt.wantMsg)
			}
			if tt.wantStatus == 502 && e.Type != llm.TypeUpstream {
				t.Errorf("type %q, want %q", e.Type, llm.TypeUpstream)
			}
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("%v wraps a context error: the gateway would take it for the client leaving or its own deadline", err)
			}
		})
	}
}

// TestStreamRelaysAtMostMaxStreamBytes: the chunks of a stream cut at
// max_stream_bytes hold no more than that many bytes.
func TestStreamRelaysAtMostMaxStreamBytes(t *testing.T) {
	const limit = 32 << 10
	srv := httptest.NewServer(http.HandlerFunc(endlessChunks))
	defer srv.Close()
	c, _ := NewOpenAI(OpenAIConfig{Name: "up", BaseURL: srv.URL, MaxStreamBytes: limit})
	st, err := c.Stream(context.Background(), &Request{Chat: mustChat(t, `{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}`)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	relayed := 0
	for {
		ch, err := st.Recv()
		if err != nil {
			if e := asLLMError(t, err); e.Code != "upstream_stream_too_large" {
				t.Fatalf("ended with %v", err)
			}
			break
		}
		relayed += len("data: \n\n") + len(ch.Raw)
	}
	if relayed > limit || relayed < limit/2 {
		t.Fatalf("relayed %d bytes, want close to and at most %d", relayed, limit)
	}
}

// TestChatResponseBound: a non-streamed answer past max_response_bytes is
// a 502 upstream_response_too_large, whether its length is declared (then
// it is refused unread) or not (then reading stops one byte past the
// bound); an answer of exactly the bound is served.
func TestChatResponseBound(t *testing.T) {
	const limit = 1 << 20
	answer := `{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}]}`
	exact := answer + strings.Repeat(" ", limit-len(answer))
	tests := []struct {
		name     string
		handler  http.HandlerFunc
		wantCode string // "": served
	}{
		{"a 100 MB answer of unknown length", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"id":"x","choices":[],"pad":"`)
			piece := bytes.Repeat([]byte("x"), 64<<10)
			for sent := 0; sent < 100<<20; sent += len(piece) {
				if _, err := w.Write(piece); err != nil {
					return
				}
			}
			io.WriteString(w, `"}`)
		}, "upstream_response_too_large"},
		{"a declared 100 MB answer", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", strconv.Itoa(100<<20))
			w.WriteHeader(200)
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		}, "upstream_response_too_large"},
		{"an answer of exactly the bound, unknown length", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, exact[:limit/2])
			w.(http.Flusher).Flush()
			io.WriteString(w, exact[limit/2:])
		}, ""},
		{"an answer of exactly the bound, declared", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", strconv.Itoa(limit))
			io.WriteString(w, exact)
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(tt.handler)
			defer srv.Close()
			c, _ := NewOpenAI(OpenAIConfig{Name: "up", BaseURL: srv.URL, MaxResponseBytes: limit})
			resp, err := c.Chat(context.Background(), &Request{Chat: mustChat(t, `{"model":"m","messages":[{"role":"user","content":"hi"}]}`)})
			if tt.wantCode == "" {
				if err != nil || len(resp.Raw) != limit {
					t.Fatalf("err %v, want the %d-byte answer", err, limit)
				}
				return
			}
			e := asLLMError(t, err)
			if e.Status != 502 || e.Type != llm.TypeUpstream || e.Code != tt.wantCode || !strings.Contains(e.Message, "limit of 1048576 bytes") {
				t.Errorf("%+v", e)
			}
		})
	}
}

// TestReadCappedNeverHoldsMoreThanTheBound: however long the input, the
// buffer's capacity stays within the bound plus the one byte that tells
// "exactly the bound" from "longer".
func TestReadCappedNeverHoldsMoreThanTheBound(t *testing.T) {
	for _, bound := range []int64{1, 1000, 4 << 10, 1<<20 - 3, 1 << 20} {
		t.Run(strconv.FormatInt(bound, 10), func(t *testing.T) {
			in := &repeating{unit: bytes.Repeat([]byte("0123456789"), 1000)}
			buf, err := readCapped(in, nil, bound)
			if !errors.Is(err, errTooLarge) || cap(buf) > int(bound)+1 || in.read > bound+1 {
				t.Fatalf("err %v, capacity %d, read %d; bound %d", err, cap(buf), in.read, bound)
			}
			buf, err = readCapped(io.LimitReader(&repeating{unit: bytes.Repeat([]byte("x"), 4096)}, bound), nil, bound)
			if err != nil || int64(len(buf)) != bound {
				t.Fatalf("exactly the bound: %d bytes, %v", len(buf), err)
			}
		})
	}
}

// TestNewRejectsNegativeBounds: negative timeouts and size limits are
// configuration errors.
func TestNewRejectsNegativeBounds(t *testing.T) {
	_, err := NewOpenAI(OpenAIConfig{Name: "o", BaseURL: "http://h/v1", TTFTTimeout: -1, MaxEventBytes: -1})
	wantRejected(t, err, []string{"timeouts must not be negative", "size limits must not be negative"})
	_, err = NewAnthropic(AnthropicConfig{Name: "a", MaxStreamBytes: -1, StreamIdleTimeout: -1})
	wantRejected(t, err, []string{"timeouts must not be negative", "size limits must not be negative"})
}
