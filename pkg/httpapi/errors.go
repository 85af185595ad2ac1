package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/tollgate/tollgate/pkg/llm"
)

// envelope is OpenAI's error body.
type envelope struct {
	Error envelopeError `json:"error"`
}

type envelopeError struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

// writeError renders err as OpenAI's envelope with its status and headers.
// Nothing is written for a client that went away.
func writeError(c *gin.Context, err error) *llm.Error {
	e := llm.ForClient(err)
	callOf(c).err = e
	if e.Status == llm.StatusClientClosed || c.Writer.Written() {
		return e
	}
	h := c.Writer.Header()
	for k, vs := range e.Header {
		for _, v := range vs {
			h.Add(k, v)
		}
	}
	if e.RetryAfter > 0 {
		secs := int64((e.RetryAfter + 999_999_999) / 1_000_000_000)
		h.Set("Retry-After", strconv.FormatInt(secs, 10))
	}
	if anthropicRoute(c) {
		c.Data(e.Status, "application/json", anthropicErrorBody(c, e))
		return e
	}
	c.Data(e.Status, "application/json", errorBody(e))
	return e
}

func errorBody(e *llm.Error) []byte {
	body := envelope{Error: envelopeError{Message: e.Message, Type: e.Type}}
	if body.Error.Message == "" {
		body.Error.Message = http.StatusText(e.Status)
	}
	if body.Error.Type == "" {
		body.Error.Type = llm.TypeServer
	}
	if e.Param != "" {
		body.Error.Param = &e.Param
	}
	if e.Code != "" {
		body.Error.Code = &e.Code
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // messages quote <key> and code; keep them readable
	_ = enc.Encode(body)
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}
