package llm

import (
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
