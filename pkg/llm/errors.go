package llm

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
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
//
// Upstream errors are translated: the client's gateway key was fine, so an
// upstream 401 is our problem (502), not theirs. And they are rewritten:
// the client gets a status, a type, a code and a message of tollgate's
// naming the provider by its configured name, never the upstream's own
// text, which can hold its address, its URL or the provider key it was
// sent (a transport error's "dial tcp 10.1.2.3:8443", an echo of
// "sk-..."). The one exception is an upstream 400, 413 or 422, which
// judges the client's request and so must say what is wrong with it: its
// message is passed on clipped and scrubbed of addresses and anything
// shaped like a credential. The upstream's error stays in Err, for the log
// (UpstreamCause).
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
	out.Err = e
	out.Code, out.Param = PlainToken(e.Code), PlainToken(e.Param)
	who := "the upstream"
	if e.Provider != "" {
		who = "upstream " + e.Provider // its configured name
	}
	switch {
	case e.Status == http.StatusTooManyRequests:
		out.Type = TypeRateLimit
		out.Message = who + " is rate limiting tollgate (429); retry later"
	case e.Status == http.StatusBadRequest || e.Status == http.StatusUnprocessableEntity || e.Status == http.StatusRequestEntityTooLarge:
		// The upstream judged the request itself invalid: the client can fix it.
		out.Status, out.Type = http.StatusBadRequest, TypeInvalidRequest
		out.Message = fmt.Sprintf("%s rejected the request (%d)", who, e.Status)
		if m := scrubForClient(e.Message); m != "" {
			out.Message += ": " + m
		}
	case e.Status == http.StatusRequestTimeout || e.Status == http.StatusGatewayTimeout:
		out.Status, out.Type = http.StatusGatewayTimeout, TypeTimeout
		out.Message = who + " did not answer in time"
		if out.Code == "" {
			out.Code = "upstream_timeout"
		}
	case e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden:
		out.Status, out.Type, out.Code = http.StatusBadGateway, TypeUpstream, "upstream_auth_failed"
		out.Message = fmt.Sprintf("%s rejected tollgate's credentials (%d); the gateway's provider configuration needs attention", who, e.Status)
	default:
		out.Status, out.Type = http.StatusBadGateway, TypeUpstream
		out.Message = who + " failed to serve the request; the details are in tollgate's log"
		if out.Code == "" {
			out.Code = "upstream_error"
		}
	}
	return &out
}

// UpstreamCause returns the upstream's own error behind e, a client's
// error that ForClient rewrote, for the server's log.
func UpstreamCause(e *Error) (*Error, bool) {
	if e == nil || !e.Upstream {
		return nil, false
	}
	cause, ok := e.Err.(*Error)
	if !ok || !cause.Upstream {
		return nil, false
	}
	return cause, true
}

// maxUpstreamMessage bounds an upstream's message passed on to a client.
const maxUpstreamMessage = 512

var (
	// secretPatterns are shapes of credentials: provider keys by their
	// prefixes (OpenAI and Anthropic sk-, tollgate tg-, Groq gsk_, xAI,
	// Perplexity, Hugging Face, Replicate, Google AIza), bearer tokens and
	// credentials in a URL's query.
	secretPatterns = []struct {
		re   *regexp.Regexp
		repl string
	}{
		{regexp.MustCompile(`\b(?:sk|tg|xai|pplx|gsk|hf|r8)[-_][A-Za-z0-9_\-]{8,}`), "<redacted>"},
		{regexp.MustCompile(`\bAIza[A-Za-z0-9_\-]{20,}`), "<redacted>"},
		{regexp.MustCompile(`(?i)\b(bearer\s+)[^\s"',;()<>]+`), "${1}<redacted>"},
		{regexp.MustCompile(`(?i)([?&](?:api[_-]?key|key|token|access_token|sig|signature|code)=)[^&\s"'<>()\[\]{},;]+`), "${1}<redacted>"},
	}
	// addressPatterns are where an upstream is: URLs, IP addresses with or
	// without a port, host:port, and dotted host names under common
	// top-level domains.
	addressPatterns = []*regexp.Regexp{
		regexp.MustCompile(`(?i)\b[a-z][a-z0-9+.\-]*://[^\s"'<>()]+`),
		regexp.MustCompile(`\[[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*\](?::\d+)?`),
		regexp.MustCompile(`\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b`),
		regexp.MustCompile(`(?i)\b[a-z0-9](?:[a-z0-9\-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9\-]*[a-z0-9])?)*:\d{2,5}\b`),
		regexp.MustCompile(`(?i)\b(?:[a-z0-9](?:[a-z0-9\-]*[a-z0-9])?\.)+(?:com|net|org|io|ai|dev|app|cloud|co|us|eu|uk|de|fr|jp|cn|internal|local|localdomain|lan|corp|svc|cluster|azure|amazonaws)\b`),
	}
	// longToken is a run of 32 or more key characters: a credential of a
	// shape no prefix above names.
	longToken = regexp.MustCompile(`[A-Za-z0-9_\-]{32,}`)
)

// RedactSecrets replaces what is shaped like a credential in s (a
// provider key, a bearer token, a key in a URL's query) with <redacted>,
// for a log line holding an upstream's error.
func RedactSecrets(s string) string {
	for _, p := range secretPatterns {
		s = p.re.ReplaceAllString(s, p.repl)
	}
	return s
}

// scrubForClient is an upstream's message as a client may see it: single
// line, clipped, with credentials, addresses and long tokens replaced.
func scrubForClient(s string) string {
	s = strings.Join(strings.Fields(strings.ToValidUTF8(s, "?")), " ")
	for _, re := range addressPatterns { // first: a URL goes whole, its query too
		s = re.ReplaceAllString(s, "<address>")
	}
	s = RedactSecrets(s)
	s = longToken.ReplaceAllStringFunc(s, func(tok string) string {
		if strings.ContainsAny(tok, "0123456789") {
			return "<redacted>"
		}
		return tok
	})
	return Clip(s, maxUpstreamMessage)
}

// PlainToken is s if it is a plain token, as an error's code, type or
// param is (letters, digits and _ . - [ ] only, at most 64 bytes), else
// "": an upstream's free text there would reach what quotes codes
// (headers, the admin view) as it is.
func PlainToken(s string) string {
	if len(s) > 64 {
		return ""
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("_.-[]", c) >= 0) {
			return ""
		}
	}
	return s
}
