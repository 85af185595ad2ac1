package llm

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// OpenAI error types used in the envelope's "type" field.
const (
	TypeInvalidRequest = "invalid_request_error"
	TypeAuthentication = "authentication_error"
	TypePermission     = "permission_error"
	TypeNotFound       = "not_found_error"
	TypeRateLimit      = "rate_limit_error"
	TypeQuota          = "insufficient_quota"
	TypeUpstream       = "upstream_error"
	TypeServer         = "server_error"
	TypeTimeout        = "timeout_error"
)

// StatusClientClosed is the status logged when the client went away before
// the answer (nginx's 499). It is never retried or held against an upstream.
const StatusClientClosed = 499

// Error is an error with an HTTP meaning. The HTTP layer renders it as
// OpenAI's envelope {"error":{"message","type","param","code"}}.
//
// Upstream errors (Upstream true) carry the status the provider answered;
// the HTTP layer decides what the client sees (see httpapi).
type Error struct {
	Status     int
	Type       string
	Code       string
	Param      string
	Message    string
	RetryAfter time.Duration // 0: the answer carries no Retry-After
	Retryable  bool          // an upstream fault another attempt may not hit
	Upstream   bool          // the error came from a provider
	Provider   string        // which provider, when Upstream
	Header     http.Header   // extra response headers (x-ratelimit-*, ...)
	Err        error         // cause
}

func (e *Error) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	if e.Upstream && e.Provider != "" {
		msg = fmt.Sprintf("upstream %s: %d: %s", e.Provider, e.Status, msg)
	}
	if e.Err != nil && e.Message == "" {
		return fmt.Sprintf("%s: %v", msg, e.Err)
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// AsError returns the *Error in err's chain, if any.
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// InvalidParam is a 400 invalid_request_error naming the parameter.
func InvalidParam(param, msg string) *Error {
	return &Error{Status: http.StatusBadRequest, Type: TypeInvalidRequest, Param: param, Message: msg}
}

// Errorf builds an *Error with a formatted message.
func Errorf(status int, typ, code, format string, args ...any) *Error {
	return &Error{Status: status, Type: typ, Code: code, Message: fmt.Sprintf(format, args...)}
}

// ForClient is the one place where an error becomes what the client sees
// (the HTTP layer renders it; the ledger records its status).
// Upstream errors are translated: the client's gateway key was fine, so an
// upstream 401 is our problem (502), not theirs.
func ForClient(err error) *Error {
	if errors.Is(err, context.Canceled) {
		return &Error{Status: StatusClientClosed, Type: TypeInvalidRequest, Message: "client closed the request", Err: err}
	}
	e, ok := AsError(err)
	if !ok {
		if errors.Is(err, context.DeadlineExceeded) {
			return &Error{Status: http.StatusGatewayTimeout, Type: TypeTimeout, Code: "upstream_timeout", Message: "the request timed out", Err: err}
		}
		return &Error{Status: http.StatusInternalServerError, Type: TypeServer, Code: "internal_error",
			Message: "tollgate failed to handle the request; the error is in its log", Err: err}
	}
	if !e.Upstream {
		return e
	}
	out := *e
	from := fmt.Sprintf("upstream %s answered %d: %s", e.Provider, e.Status, e.Message)
	switch {
	case e.Status == http.StatusTooManyRequests:
		out.Type, out.Message = TypeRateLimit, from
	case e.Status == http.StatusBadRequest || e.Status == http.StatusUnprocessableEntity || e.Status == http.StatusRequestEntityTooLarge:
		// The upstream judged the request itself invalid: the client can fix it.
		out.Status, out.Type, out.Message = http.StatusBadRequest, TypeInvalidRequest, from
	case e.Status == http.StatusRequestTimeout || e.Status == http.StatusGatewayTimeout:
		out.Status, out.Type, out.Message = http.StatusGatewayTimeout, TypeTimeout, from
		if out.Code == "" {
			out.Code = "upstream_timeout"
		}
	case e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden:
		out.Status, out.Type, out.Code = http.StatusBadGateway, TypeUpstream, "upstream_auth_failed"
		out.Message = fmt.Sprintf("upstream %s rejected tollgate's credentials (%d); the gateway's provider configuration needs attention", e.Provider, e.Status)
	default:
		out.Status, out.Type, out.Message = http.StatusBadGateway, TypeUpstream, from
		if out.Code == "" {
			out.Code = "upstream_error"
		}
	}
	return &out
}
