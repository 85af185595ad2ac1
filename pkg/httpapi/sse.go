package httpapi

import (
	"encoding/json"
	"io"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/tollgate/tollgate/pkg/gateway"
	"github.com/tollgate/tollgate/pkg/llm"
)

// streamWriter renders a stream's chunks in one wire format: OpenAI's
// data-only events (dataStream: chat and legacy completions), the
// Responses event sequence (responsesStreamer) or Anthropic's events
// (msgEncoder). The relay owns everything else.
type streamWriter interface {
	chunk(c *llm.ChatChunk) error
	end() error        // the stream ended well
	fail(e *llm.Error) // it failed after its first byte (also a panic mid-stream)
}

// startSSE writes the headers of an event stream and its 200.
func startSSE(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	h.Set("X-Accel-Buffering", "no") // proxies in front must not buffer the stream
	c.Status(http.StatusOK)
}

// relay serves a streamed completion through the writer it makes,
// flushing after every chunk, each write bounded by WriteTimeout. The
// first chunk is pulled before anything is written, so a failure before
// the first byte still gets a proper status code (in the route's error
// shape, see writeError); after it, the writer ends the stream with its
// own error event. The upstream stops when the client goes.
func (s *server) relay(c *gin.Context, caller gateway.Caller, req *llm.ChatRequest, writer func(*gateway.Meta) streamWriter) {
	rc := http.NewResponseController(c.Writer)
	st, meta, err := s.Gateway.Stream(c.Request.Context(), caller, req)
	if err != nil {
		s.routed(c, meta) // what happened before it failed: guards, enrichment
		s.writeDeadline(rc)
		writeError(c, err)
		return
	}
	defer st.Close()
	s.routed(c, st.Meta)
	first, err := st.Recv()
	if err != nil && err != io.EOF {
		s.writeDeadline(rc)
		writeError(c, err)
		return
	}
	startSSE(c)
	w := writer(st.Meta)
	callOf(c).stream = w // so a panic mid-stream ends it in this surface's shape (internalError)
	for chunk := first; err == nil; chunk, err = st.Recv() {
		s.writeDeadline(rc)
		if werr := w.chunk(chunk); werr != nil {
			return // the client went away or stopped reading; the deferred Close stops the upstream
		}
		if werr := rc.Flush(); werr != nil {
			return
		}
	}
	s.writeDeadline(rc)
	if err != io.EOF {
		// Too late for a status code: end the stream with an error event.
		e := llm.ForClient(err)
		callOf(c).err = e
		if e.Status != llm.StatusClientClosed {
			w.fail(e)
			_ = rc.Flush()
		}
		return
	}
	_ = w.end()
	_ = rc.Flush()
}

// dataStream writes OpenAI's data-only events, each chunk rendered by
// write (chat's own bytes, or a legacy text_completion), ending with
// [DONE]; an error ends it with an error event and no [DONE], so the
// client knows it is incomplete, as OpenAI does.
type dataStream struct {
	w     gin.ResponseWriter
	write func(io.Writer, *llm.ChatChunk) error
}

func (s dataStream) chunk(c *llm.ChatChunk) error { return s.write(s.w, c) }
func (s dataStream) fail(e *llm.Error)            { writeErrorEvent(s.w, e) }
func (s dataStream) end() error {
	_, err := s.w.Write(sseDone)
	return err
}

// sseLine is a data-only event (chat and legacy completions).
func sseLine(w io.Writer, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	buf := make([]byte, 0, len(data)+len(sseData)+len(sseEnd))
	buf = append(append(append(buf, sseData...), data...), sseEnd...)
	_, err = w.Write(buf)
	return err
}

// sseEvent is a named event (Responses and Anthropic's Messages).
func sseEvent(w io.Writer, name string, data []byte) error {
	buf := make([]byte, 0, len(name)+len(data)+16)
	buf = append(buf, "event: "...)
	buf = append(buf, name...)
	buf = append(buf, "\ndata: "...)
	buf = append(buf, data...)
	buf = append(buf, "\n\n"...)
	_, err := w.Write(buf)
	return err
}
