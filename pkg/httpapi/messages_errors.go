package httpapi

import (
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/tollgate/tollgate/internal/anthropicwire"
	"github.com/tollgate/tollgate/pkg/llm"
)

// anthropicRoute reports whether the request is on Anthropic's surface,
// whose errors are answered in Anthropic's envelope (authentication
// failures included, which happen before the handler).
func anthropicRoute(c *gin.Context) bool {
	return strings.HasPrefix(c.FullPath(), "/v1/messages")
}

// anthropicError is e in Anthropic's envelope. The status stays
// tollgate's; the type follows it (anthropicwire.ErrorTypeFor): a spent
// budget (402) is billing_error, which Anthropic's SDKs do not retry; 503
// (no healthy candidate) overloaded_error; 502 api_error. tollgate's code
// (budget_exceeded, ...) is in error.details.error_code.
func anthropicError(e *llm.Error, requestID string) anthropicwire.ErrorBody {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	if e.Param != "" && !strings.HasPrefix(msg, e.Param) {
		msg = e.Param + ": " + msg
	}
	obj := anthropicwire.ErrorObject{Type: anthropicwire.ErrorTypeFor(e.Status), Message: msg}
	if e.Code != "" {
		obj.Details = &anthropicwire.ErrorDetails{ErrorCode: e.Code}
	}
	return anthropicwire.ErrorBody{Type: "error", RequestID: requestID, Error: obj}
}

func anthropicErrorBody(c *gin.Context, e *llm.Error) []byte {
	id := callOf(c).id
	c.Writer.Header().Set(headerAnthropicRequestID, id)
	b, err := llm.MarshalNoEscape(anthropicError(e, id))
	if err != nil {
		return []byte(`{"type":"error","error":{"type":"api_error","message":"error"}}`)
	}
	return b
}
