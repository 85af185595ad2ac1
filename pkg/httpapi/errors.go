package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
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

// toHTTP is the one place where an error becomes what the client sees.
// Upstream errors are translated: the client's gateway key was fine, so an
// upstream 401 is our problem (502), not theirs.
func toHTTP(err error) *llm.Error {
	if errors.Is(err, context.Canceled) {
		return &llm.Error{Status: llm.StatusClientClosed, Type: llm.TypeInvalidRequest, Message: "client closed the request", Err: err}
	}
	e, ok := llm.AsError(err)
	if !ok {
		if errors.Is(err, context.DeadlineExceeded) {
			return &llm.Error{Status: http.StatusGatewayTimeout, Type: llm.TypeTimeout, Code: "upstream_timeout", Message: "the request timed out", Err: err}
		}
		return &llm.Error{Status: http.StatusInternalServerError, Type: llm.TypeServer, Code: "internal_error",
			Message: "tollgate failed to handle the request; the error is in its log", Err: err}
	}
	if !e.Upstream {
		return e
	}
	out := *e
	from := fmt.Sprintf("upstream %s answered %d: %s", e.Provider, e.Status, e.Message)
	switch {
	case e.Status == http.StatusTooManyRequests:
		out.Type, out.Message = llm.TypeRateLimit, from
	case e.Status == http.StatusBadRequest || e.Status == http.StatusUnprocessableEntity || e.Status == http.StatusRequestEntityTooLarge:
		// The upstream judged the request itself invalid: the client can fix it.
		out.Status, out.Type, out.Message = http.StatusBadRequest, llm.TypeInvalidRequest, from
	case e.Status == http.StatusRequestTimeout || e.Status == http.StatusGatewayTimeout:
		out.Status, out.Type, out.Message = http.StatusGatewayTimeout, llm.TypeTimeout, from
		if out.Code == "" {
			out.Code = "upstream_timeout"
		}
	case e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden:
		out.Status, out.Type, out.Code = http.StatusBadGateway, llm.TypeUpstream, "upstream_auth_failed"
		out.Message = fmt.Sprintf("upstream %s rejected tollgate's credentials (%d); the gateway's provider configuration needs attention", e.Provider, e.Status)
	default:
		out.Status, out.Type, out.Message = http.StatusBadGateway, llm.TypeUpstream, from
		if out.Code == "" {
			out.Code = "upstream_error"
		}
	}
	return &out
}

// writeError renders err as OpenAI's envelope with its status and headers.
// Nothing is written for a client that went away.
func writeError(c *gin.Context, err error) *llm.Error {
	e := toHTTP(err)
	c.Set(ctxError, e)
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
