package providers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tollgate/tollgate/pkg/llm"
)

// maxErrorBody bounds how much of an error answer is read: enough for any
// OpenAI envelope, small enough that a misbehaving upstream cannot make the
// gateway buffer megabytes of HTML.
const maxErrorBody = 64 << 10

// snippetLen bounds the piece of a non-JSON body quoted in a message.
const snippetLen = 256

// retryableStatus reports whether another attempt (maybe elsewhere) may
// succeed: timeouts, conflicts, rate limits and server faults.
func retryableStatus(status int) bool {
	switch {
	case status == http.StatusRequestTimeout, status == http.StatusConflict,
		status == http.StatusTooManyRequests, status >= 500:
		return true
	}
	return false
}

// errorEnvelope is OpenAI's {"error":{...}}; code and param may be strings,
// numbers or null depending on the upstream, so they stay raw. Some
// OpenAI-compatible servers send {"error":"text"} or a top-level message.
type errorEnvelope struct {
	Error   json.RawMessage `json:"error"`
	Message string          `json:"message"`
	Detail  json.RawMessage `json:"detail"` // FastAPI-based servers (vLLM)
}

type errorObject struct {
	Message string          `json:"message"`
	Type    string          `json:"type"`
	Code    json.RawMessage `json:"code"`
	Param   json.RawMessage `json:"param"`
	Status  json.RawMessage `json:"status"`
}

// rawString renders a JSON string, number or null as plain text.
func rawString(r json.RawMessage) string {
	r = bytes.TrimSpace(r)
	if len(r) == 0 || string(r) == "null" {
		return ""
	}
	if r[0] == '"' {
		var s string
		if json.Unmarshal(r, &s) == nil {
			return s
		}
	}
	return string(r)
}

// fillFromBody copies the upstream's error envelope into e. It reports
// whether the body held one.
func fillFromBody(e *llm.Error, body []byte) bool {
	var env errorEnvelope
	if json.Unmarshal(body, &env) != nil {
		return false
	}
	raw := bytes.TrimSpace(env.Error)
	switch {
	case len(raw) > 0 && raw[0] == '{':
		var obj errorObject
		if json.Unmarshal(raw, &obj) != nil {
			return false
		}
		e.Message = obj.Message
		e.Type, e.Code, e.Param = plain(e, "type", obj.Type), plain(e, "code", rawString(obj.Code)), plain(e, "param", rawString(obj.Param))
		return obj.Message != "" || obj.Type != "" || rawString(obj.Code) != ""
	case len(raw) > 0 && raw[0] == '"':
		e.Message = rawString(raw)
		return true
	case env.Message != "":
		e.Message = env.Message
		return true
	case len(env.Detail) > 0 && string(env.Detail) != "null":
		e.Message = snippet(rawString(env.Detail))
		return true
	}
	return false
}

// plain is an upstream's type, code or param when it is a plain token
// (llm.PlainToken), else "": codes are quoted where the client sees them
// (x-tollgate-fallback) and in the admin view, so free text there could
// carry the upstream's address. What is dropped is added to the message,
// which only the server's log shows.
func plain(e *llm.Error, name, v string) string {
	if t := llm.PlainToken(v); t != "" || v == "" {
		return t
	}
	e.Message += " (upstream " + name + ": " + snippet(v) + ")"
	return ""
}

// snippet returns a bounded, single-line, valid-UTF-8 piece of s for a message.
func snippet(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > snippetLen {
		cut := snippetLen
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	s = strings.ToValidUTF8(s, "?")
	return strings.Join(strings.Fields(s), " ")
}

// statusError maps a non-2xx upstream answer to *llm.Error.
func (c *OpenAI) statusError(resp *http.Response) *llm.Error {
	e := c.newStatusError(resp, passHeader, http.StatusText)
	if e.Type == "" {
		e.Type = typeForStatus(resp.StatusCode)
	}
	return e
}

func typeForStatus(status int) string {
	switch {
	case status == http.StatusUnauthorized:
		return llm.TypeAuthentication
	case status == http.StatusForbidden:
		return llm.TypePermission
	case status == http.StatusNotFound:
		return llm.TypeNotFound
	case status == http.StatusTooManyRequests:
		return llm.TypeRateLimit
	case status == http.StatusGatewayTimeout:
		return llm.TypeTimeout
	case status >= 500:
		return llm.TypeServer
	}
	return llm.TypeInvalidRequest
}

func readLimited(resp *http.Response, n int64) ([]byte, error) {
	var b bytes.Buffer
	_, err := b.ReadFrom(http.MaxBytesReader(nil, resp.Body, n))
	return b.Bytes(), err
}

// passHeader reports, for a lowercase header name, whether a caller may
// act on that header of an error answer: rate-limit state, retry advice,
// request ids for support tickets.
func passHeader(lower string) bool {
	return strings.HasPrefix(lower, "x-ratelimit-") || lower == "retry-after" || lower == "retry-after-ms" ||
		lower == "x-request-id" || lower == "apim-request-id"
}

// keepHeaders copies the headers keep accepts by lowercase name; nil when
// there are none.
func keepHeaders(h http.Header, keep func(lower string) bool) http.Header {
	var out http.Header
	for k, v := range h {
		if keep(strings.ToLower(k)) {
			if out == nil {
				out = make(http.Header)
			}
			out[k] = v
		}
	}
	return out
}

// retryAfter parses retry-after-ms (OpenAI's and Azure's precise form, so
// it wins) and Retry-After (delta-seconds or an HTTP-date). Unparseable,
// negative or past values give 0, meaning "no advice".
func retryAfter(h http.Header, now time.Time) time.Duration {
	if v := h.Get("Retry-After-Ms"); v != "" {
		if ms, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil && ms > 0 && !math.IsInf(ms, 0) {
			return time.Duration(ms * float64(time.Millisecond))
		}
	}
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		if secs > 0 && secs < 1e9 {
			return time.Duration(secs * float64(time.Second))
		}
		return 0
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

func connError(provider string, err error, timedOut bool) *llm.Error {
	var ne net.Error
	if timedOut || errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return &llm.Error{Status: http.StatusGatewayTimeout, Type: llm.TypeTimeout, Upstream: true, Provider: provider,
			Retryable: true, Message: "upstream timed out", Err: err}
	}
	return &llm.Error{Status: http.StatusBadGateway, Type: llm.TypeUpstream, Upstream: true, Provider: provider,
		Retryable: true, Message: "upstream connection failed: " + redactURL(err), Err: err}
}

// redactURL renders a transport error without the URL's query string, which
// can carry credentials on some upstreams.
func redactURL(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		return ue.Err.Error()
	}
	return err.Error()
}

// redactKey replaces the provider key in an upstream's message, which the
// server logs (the client never sees it: llm.ForClient).
func redactKey(msg, key string) string {
	if len(key) < 8 {
		return msg // no key, or one too short to tell from ordinary text
	}
	return strings.ReplaceAll(msg, key, "<redacted>")
}

// badResponse is a 2xx answer tollgate could not understand.
func badResponse(provider, what string, err error) *llm.Error {
	return &llm.Error{Status: http.StatusBadGateway, Type: llm.TypeUpstream, Upstream: true, Provider: provider,
		Retryable: true, Message: what, Err: err}
}
