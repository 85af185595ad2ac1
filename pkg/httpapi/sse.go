package httpapi

import (
	"encoding/json"
	"io"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/tollgate/tollgate/pkg/gateway"
	"github.com/tollgate/tollgate/pkg/llm"
)

// startSSE writes the headers of an event stream and its 200.
func startSSE(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	h.Set("X-Accel-Buffering", "no") // proxies in front must not buffer the stream
	c.Status(http.StatusOK)
}

// relayChat opens the gateway stream for req and relays its chunks to
// emit, as chat's stream does: the first chunk is pulled before anything
// is written, so a failure before it still gets a proper status code;
// every write is bounded by WriteTimeout; the upstream stops when the
// client goes. emit returns false when the client is gone. It returns the
// stream (for its Meta) and the error that ended it after the first byte
// (nil at a clean end); started is false when nothing was written.
func (s *server) relayChat(c *gin.Context, caller gateway.Caller, req *llm.ChatRequest, begin func(), emit func(*llm.ChatChunk) bool) (meta *gateway.Meta, started bool, err error) {
	rc := http.NewResponseController(c.Writer)
	st, err := s.Gateway.Stream(c.Request.Context(), caller, req)
	if err != nil {
		s.writeDeadline(rc)
		writeError(c, err)
		return nil, false, nil
	}
	defer st.Close()
	s.routed(c, st.Meta)
	first, err := st.Recv()
	if err != nil && err != io.EOF {
		s.writeDeadline(rc)
		writeError(c, err)
		return st.Meta, false, nil
	}
	startSSE(c)
	s.writeDeadline(rc)
	begin()
	for chunk := first; err == nil; chunk, err = st.Recv() {
		s.writeDeadline(rc)
		if !emit(chunk) {
			return st.Meta, true, nil // the client went away; Close stops the upstream
		}
	}
	s.writeDeadline(rc)
	if err != io.EOF {
		e := llm.ForClient(err)
		callOf(c).err = e
		return st.Meta, true, e
	}
	return st.Meta, true, nil
}

// streamData relays a streamed chat completion as data-only events, each
// chunk written by write (chat's own bytes, or a legacy text_completion),
// flushed as it comes, ending with [DONE]; an error after the first byte
// ends it with an error event and no [DONE], so the client knows it is
// incomplete, as OpenAI does.
func (s *server) streamData(c *gin.Context, caller gateway.Caller, req *llm.ChatRequest, write func(io.Writer, *llm.ChatChunk) error) {
	rc := http.NewResponseController(c.Writer)
	w := c.Writer
	gone := false
	_, started, err := s.relayChat(c, caller, req, func() {}, func(chunk *llm.ChatChunk) bool {
		if write(w, chunk) != nil || rc.Flush() != nil {
			gone = true // the client went away or stopped reading
		}
		return !gone
	})
	if !started || gone {
		return
	}
	if err != nil {
		if e, _ := llm.AsError(err); e != nil && e.Status != llm.StatusClientClosed {
			writeErrorEvent(w, e)
		}
		return
	}
	_, _ = w.Write(sseDone)
	_ = rc.Flush()
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
