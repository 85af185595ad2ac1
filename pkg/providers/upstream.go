package providers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tollgate/tollgate/pkg/llm"
)

// upstream is the HTTP side every wire format shares: one configured
// upstream's name, client, timeouts and answer bound, how a call is sent
// and its failures mapped, and the lifecycle of its event streams
// (sseStream). What differs between formats stays with the format: URL,
// headers and body, the error envelope (format) and the stream events
// (eventDecoder).
type upstream struct {
	name        string
	client      *http.Client
	timeout     time.Duration // a non-streamed call end to end, a stream until its headers; 0: none
	idleTimeout time.Duration // the silence between two stream events; 0: none
	ttft        time.Duration // a stream until its first chunk; 0: none
	maxResp     int64         // bound on a non-streamed answer
	maxEvent    int           // bound on a stream's line and event; 0: DefaultMaxEventBytes
	maxStream   int64         // bound on the bytes read from one stream; 0: DefaultMaxStreamBytes
	now         func() time.Time
	format      format
	keyHeader   string      // canonical name of the header the API key travels in
	keyPrefix   string      // what precedes the key there ("Bearer ", or nothing)
	jsonHeader  http.Header // request header templates, cloned per request (setHeaders)
	sseHeader   http.Header
}

// format is what a wire format decides about an answer that is not what
// was asked for.
type format interface {
	// statusError maps a non-2xx answer.
	statusError(resp *http.Response) *llm.Error
	// streamJSONError maps a JSON answer to a streaming request: an error
	// envelope, or an upstream that ignored stream.
	streamJSONError(body []byte) *llm.Error
}

// DefaultTransport is the transport every client shares unless given its
// own http.Client: one connection pool per process keeps TLS sessions and
// HTTP/2 connections warm across deployments on the same host.
var DefaultTransport = newTransport()

var defaultClient = &http.Client{Transport: DefaultTransport}

func newTransport() *http.Transport {
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:             http.ProxyFromEnvironment,
		DialContext:       dialer.DialContext,
		ForceAttemptHTTP2: true, // a custom dialer turns automatic HTTP/2 off; ask for it back
		// A gateway sends many concurrent requests to few hosts; the default
		// of 2 idle connections per host would churn TCP and TLS handshakes.
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		// No ResponseHeaderTimeout: a non-streamed completion sends its
		// headers only when generation ends, which can take minutes; the
		// per-call Timeout and the caller's context bound it instead.
		ReadBufferSize:  32 << 10,
		WriteBufferSize: 32 << 10,
	}
}

// checkBaseURL reports what is wrong with an upstream's base URL, or nil.
func checkBaseURL(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case raw == "":
		return errors.New("base_url: required")
	case err != nil:
		return fmt.Errorf("base_url: %w", err)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("base_url: scheme must be http or https, got %q", u.Scheme)
	case u.Host == "":
		return errors.New("base_url: missing host")
	case u.RawQuery != "" || u.Fragment != "":
		return errors.New("base_url: must not carry a query or fragment")
	}
	return nil
}

// checkHeaders reports every name among the configured headers that
// cannot be sent.
func checkHeaders(h map[string]string) []error {
	var errs []error
	for k := range h {
		if k == "" || strings.ContainsAny(k, " \t\r\n:") {
			errs = append(errs, fmt.Errorf("headers: invalid header name %q", k))
		}
	}
	return errs
}

// checkBounds reports what is wrong with an upstream's timeouts and size
// bounds: none may be negative (0 is "none" for a timeout, the default for
// a bound).
func checkBounds(timeout, idle, ttft time.Duration, maxResp int64, maxEvent int, maxStream int64) []error {
	var errs []error
	if timeout < 0 || idle < 0 || ttft < 0 {
		errs = append(errs, errors.New("timeouts must not be negative"))
	}
	if maxResp < 0 || maxEvent < 0 || maxStream < 0 {
		errs = append(errs, errors.New("size limits must not be negative"))
	}
	return errs
}

// DefaultMaxResponseBytes bounds a non-streamed answer when the config
// does not.
const DefaultMaxResponseBytes = 32 << 20

// fillDefaults sets what the config left out: the shared client, the
// answer bound and the clock.
func (u *upstream) fillDefaults() {
	if u.client == nil {
		u.client = defaultClient
	}
	if u.maxResp <= 0 {
		u.maxResp = DefaultMaxResponseBytes
	}
	if u.now == nil {
		u.now = time.Now
	}
}

// setHeaders makes the request header templates from h, the headers every
// call carries, with the configured key when there is one.
func (u *upstream) setHeaders(h http.Header, key string) {
	if key != "" {
		u.setKey(h, key)
	}
	u.jsonHeader = h
	u.sseHeader = h.Clone()
	u.jsonHeader.Set("Accept", "application/json")
	u.sseHeader.Set("Accept", "text/event-stream")
	u.sseHeader.Set("Cache-Control", "no-cache")
}

func (u *upstream) setKey(h http.Header, key string) {
	h[u.keyHeader] = []string{u.keyPrefix + key}
}

// header is a request's headers: the template for a JSON call or a
// stream, with a per-request key in place of the configured one.
func (u *upstream) header(stream bool, apiKey string) http.Header {
	h := u.jsonHeader
	if stream {
		h = u.sseHeader
	}
	h = h.Clone()
	if apiKey != "" {
		u.setKey(h, apiKey)
	}
	return h
}

// newRequest builds a POST of body; header becomes the request's own.
func (u *upstream) newRequest(ctx context.Context, url string, header http.Header, body []byte) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, badResponse(u.name, "building the upstream request failed", err)
	}
	req.Header = header
	return req, nil
}

// call runs a non-streamed round trip under the configured timeout and
// returns the 2xx body.
func (u *upstream) call(ctx context.Context, url string, header http.Header, body []byte) ([]byte, error) {
	callCtx := ctx
	if u.timeout > 0 {
		var cancel context.CancelFunc
		callCtx, cancel = context.WithTimeout(ctx, u.timeout)
		defer cancel()
	}
	req, err := u.newRequest(callCtx, url, header, body)
	if err != nil {
		return nil, err
	}
	resp, err := u.client.Do(req)
	if err != nil {
		return nil, u.transportError(ctx, err, ownDeadline(callCtx, ctx))
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, u.format.statusError(resp)
	}
	raw, err := u.readBody(resp)
	if err != nil {
		if errors.Is(err, errTooLarge) {
			return nil, tooLarge(u.name, "upstream_response_too_large",
				"upstream answer is larger than the limit of "+strconv.FormatInt(u.maxResp, 10)+" bytes", err)
		}
		return nil, u.transportError(ctx, err, ownDeadline(callCtx, ctx))
	}
	return raw, nil
}

// ownDeadline reports whether callCtx ended through the configured timeout
// rather than through the caller's ctx it derives from.
func ownDeadline(callCtx, ctx context.Context) bool {
	return callCtx.Err() != nil && ctx.Err() == nil
}

var errTooLarge = errors.New("response too large")

// tooLarge is an upstream answer, stream or event past its size bound.
func tooLarge(provider, code, msg string, err error) *llm.Error {
	return &llm.Error{Status: http.StatusBadGateway, Type: llm.TypeUpstream, Code: code, Upstream: true, Provider: provider,
		Message: msg, Err: err}
}

// pooledMax is the largest read buffer the pool keeps, so it does not pin
// the memory of a rare large answer.
const pooledMax = 1 << 20

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

// readBody returns the whole body in a slice the caller owns, never
// holding more than maxResp+1 bytes of it: a longer body is errTooLarge.
// With a known length it is read straight into an exact allocation;
// otherwise into a pooled buffer, so the usual small answer costs one
// copy rather than a series of growing allocations.
func (u *upstream) readBody(resp *http.Response) ([]byte, error) {
	if n := resp.ContentLength; n >= 0 {
		if n > u.maxResp {
			return nil, errTooLarge
		}
		buf := make([]byte, n)
		if _, err := io.ReadFull(resp.Body, buf); err != nil {
			return nil, err
		}
		return buf, nil
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf, err := readCapped(resp.Body, (*bp)[:0], u.maxResp)
	if err != nil {
		return nil, err
	}
	if cap(buf) > pooledMax {
		return buf, nil // too big to pool: the answer keeps it
	}
	*bp = buf[:0] // the pool keeps the grown buffer
	return bytes.Clone(buf), nil
}

// readCapped appends r to buf until EOF. Its capacity never grows past
// bound+1: a reader with more than bound bytes is errTooLarge as soon as
// bound+1 of them are read.
func readCapped(r io.Reader, buf []byte, bound int64) ([]byte, error) {
	// One byte past the bound tells a body of exactly bound bytes from a
	// longer one.
	limit := int(min(bound, math.MaxInt-1)) + 1
	for {
		if len(buf) == cap(buf) {
			grown := make([]byte, len(buf), min(max(2*cap(buf), 4<<10), limit))
			copy(grown, buf)
			buf = grown
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		switch {
		case len(buf) >= limit:
			return buf, errTooLarge
		case errors.Is(err, io.EOF):
			return buf, nil
		case err != nil:
			return buf, err
		}
	}
}

// transportError maps a failure to reach or read the upstream. Client
// cancellation stays a context error so the gateway neither retries it nor
// holds it against the upstream.
func (u *upstream) transportError(ctx context.Context, err error, timedOut bool) error {
	if ctxErr := ctx.Err(); errors.Is(ctxErr, context.Canceled) && !timedOut {
		return fmt.Errorf("upstream %s: %w", u.name, context.Canceled)
	}
	return connError(u.name, err, timedOut || errors.Is(ctx.Err(), context.DeadlineExceeded))
}

// newStatusError is the part of a non-2xx answer's mapping that formats
// share: the status and retry advice, the headers keep accepts, and the
// envelope's message (both formats' error objects have OpenAI's shape, so
// fillFromBody reads either), else a message naming the status with text.
// The format then maps its error type.
func (u *upstream) newStatusError(resp *http.Response, keep func(lower string) bool, text func(int) string) *llm.Error {
	body, _ := readLimited(resp, maxErrorBody)
	e := &llm.Error{
		Status:     resp.StatusCode,
		Upstream:   true,
		Provider:   u.name,
		Retryable:  retryableStatus(resp.StatusCode),
		RetryAfter: retryAfter(resp.Header, u.now()),
		Header:     keepHeaders(resp.Header, keep),
	}
	if !fillFromBody(e, body) {
		e.Message = fmt.Sprintf("upstream answered %d %s", resp.StatusCode, text(resp.StatusCode))
		if s := snippet(string(body)); s != "" {
			e.Message += ": " + s
		}
	}
	if resp.Request != nil { // an upstream that echoes the key it was sent
		key := strings.TrimPrefix(resp.Request.Header.Get(u.keyHeader), u.keyPrefix)
		e.Message, e.Code = redactKey(e.Message, key), redactKey(e.Code, key)
	}
	return e
}
