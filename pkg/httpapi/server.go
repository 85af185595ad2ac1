// Package httpapi is tollgate's HTTP surface: Gin routes for the
// OpenAI-compatible API, the admin API and the ops endpoints; request ids,
// body limits and authentication; the SSE writer; the access log; and the
// one mapper from errors to OpenAI's error envelope. It parses and renders;
// the request flow itself is in package gateway.
package httpapi

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/tollgate/tollgate/pkg/budget"
	"github.com/tollgate/tollgate/pkg/gateway"
	"github.com/tollgate/tollgate/pkg/keys"
	"github.com/tollgate/tollgate/pkg/llm"
	"github.com/tollgate/tollgate/pkg/metrics"
	"github.com/tollgate/tollgate/pkg/responses"
	"github.com/tollgate/tollgate/pkg/semcache"
)

// Options wires the HTTP API.
type Options struct {
	Gateway      *gateway.Gateway
	Keys         *keys.Store
	Budget       *budget.Ledger  // nil: budgets disabled
	Cache        *semcache.Cache // nil: no response cache (GET/DELETE /admin/cache answer 404)
	AdminKey     string          // empty: the admin API is disabled
	MaxBodyBytes int64
	// WriteTimeout bounds each write to a client: a stream's event, an
	// answer's body (0: none). A client that stops reading is cut after it.
	WriteTimeout time.Duration
	Logger       *slog.Logger
	AccessLog    bool
	// Ready reports whether the gateway can serve (GET /readyz).
	Ready func(ctx context.Context) error
	// Degraded lists what works less well while the gateway still serves
	// (e.g. its semantic cache index is unreachable): GET /readyz stays 200
	// and names them. nil: none.
	Degraded func() []string
	Now      func() time.Time

	// BodyReadTimeout bounds reading a request's body (0: none): a client
	// that sends it slower gets a 408 and its connection closed.
	BodyReadTimeout time.Duration

	// Audit records every admin action that changed something and serves
	// GET /admin/audit (audit.Store); nil: no audit log (it answers 404).
	Audit Auditor

	// Observer is told of every request once it is answered (nil: none).
	// Metrics serves GET /metrics behind the admin key (nil: 404).
	Observer Observer
	Metrics  http.Handler

	// Responses keeps the answers of POST /v1/responses with store (nil:
	// none are kept; previous_response_id, GET and DELETE find nothing).
	Responses *responses.Store
}

// Observer is told of every request once it is answered, where its
// access-log line is written (metrics.Metrics). It must be quick: it runs
// on the request's goroutine.
type Observer interface {
	Request(e metrics.Exchange)
}

// exchangeOf is what an Observer is told of a request: its route pattern,
// status and latency, the error the client got and what the gateway did.
func exchangeOf(c *gin.Context, r *call, status int, latency time.Duration) metrics.Exchange {
	e := metrics.Exchange{Route: c.FullPath(), Status: status, Total: latency, Err: r.err}
	m := r.meta
	if m == nil {
		return e
	}
	e.Model, e.Provider, e.Cache, e.Similarity = m.Model, m.Provider, m.Cache, m.CacheSimilarity
	e.CacheReason, e.Upstream, e.FirstToken = m.CacheReason, m.Upstream, m.FirstToken
	e.PromptTokens, e.CompletionTokens = m.PromptTokens, m.CompletionTokens
	if m.Usage != nil {
		e.PromptTokens = m.Usage.PromptTokens
	}
	e.Cost, e.Unpriced, e.Saved = m.Cost.Micros, m.Cost.Unpriced, m.Saved
	e.Attempts, e.Fallback = m.Attempts, m.Fallback != ""
	e.Blocked = m.Blocked
	if len(m.Guards) > 0 { // only a request a guard matched pays for the copy
		e.Guards = make([]metrics.GuardHit, len(m.Guards))
		for i, h := range m.Guards {
			e.Guards[i] = metrics.GuardHit{Guard: h.Guard, Direction: h.Direction, Action: h.Action, Count: h.Count}
		}
	}
	return e
}

// call is what the HTTP layer learns of one request as it is served, for
// its access-log line: set by begin, filled by authentication, the handler
// and the error mapper. It travels with the response writer (one
// allocation per request), not in Gin's string-keyed bag.
type call struct {
	gin.ResponseWriter
	id   string
	key  *keys.Key     // the authenticated key, if any
	meta *gateway.Meta // what the gateway did, if it got that far
	err  *llm.Error    // the error the client got, if any
	// stream renders the response once its event stream has started, so
	// a panic mid-stream ends it with this surface's error event.
	stream streamWriter
	// seeds are the request's seed fields, taken from its body before it
	// was decoded (seeds.go); nil when it had none.
	seeds *seeds
}

// Unwrap lets http.ResponseController reach the connection (deadlines,
// flushes) through the record.
func (r *call) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// callOf returns the request's call record (a zero one outside begin, so
// handlers tested alone still work).
func callOf(c *gin.Context) *call {
	if r, ok := c.Writer.(*call); ok {
		return r
	}
	return &call{ResponseWriter: c.Writer}
}

// Header names.
const (
	HeaderRequestID = "x-tollgate-request-id"
	// HeaderOpenAIRequestID carries the same id under the name OpenAI
	// uses, which its SDKs read into a response's request id (Python's
	// _request_id, Node's _request_id).
	HeaderOpenAIRequestID = "x-request-id"
	HeaderModel           = "x-tollgate-model"
	HeaderProvider        = "x-tollgate-provider"
	HeaderAttempts        = "x-tollgate-attempts"
	HeaderPromptTokens    = "x-tollgate-prompt-tokens"
	HeaderRoute           = "x-tollgate-route"    // why this model: the plan's explanation
	HeaderFallback        = "x-tollgate-fallback" // why earlier candidates did not serve
	// HeaderCost is the call's cost in USD with six decimals ("unknown" when
	// the model has no price); HeaderCostEstimated says it was counted by
	// tollgate because the provider reported no usage.
	HeaderCost          = "x-tollgate-cost-usd"
	HeaderCostEstimated = "x-tollgate-cost-estimated"
	// HeaderCache is hit, semantic-hit, miss or bypass on every completion;
	// a hit also has the cached entry's id and its similarity (1 for an
	// exact hit), and what the original call cost (the money it saved).
	HeaderCache           = "x-tollgate-cache"
	HeaderCacheSimilarity = "x-tollgate-cache-similarity"
	HeaderCacheID         = "x-tollgate-cache-id"
	HeaderCacheSaved      = "x-tollgate-cache-saved-usd"
	// HeaderCacheVerified is "judge" on a semantic hit a judge model
	// confirmed (cache.semantic.verify).
	HeaderCacheVerified = "x-tollgate-cache-verified"
	// HeaderCacheReason says why the cache was bypassed or a semantic
	// candidate refused ("judge: not the same request" when the judge
	// refused it, "judge: no verdict" when it could not be asked or did
	// not answer yes or no).
	HeaderCacheReason  = "x-tollgate-cache-reason"
	headerAuthenticate = "WWW-Authenticate"
)

type server struct {
	Options
	adminHash [sha256.Size]byte
	ids       *idSource
	patchMu   sync.Mutex // PATCH /admin/keys/{id}: one read-change-write of a policy at a time
}

func init() { gin.SetMode(gin.ReleaseMode) }

// New returns the HTTP handler.
func New(o Options) http.Handler {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Ready == nil {
		o.Ready = func(context.Context) error { return nil }
	}
	s := &server{Options: o, ids: newIDSource()}
	if o.AdminKey != "" {
		s.adminHash = sha256.Sum256([]byte(o.AdminKey))
	}

	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.Use(s.begin)
	r.NoRoute(func(c *gin.Context) {
		writeError(c, &llm.Error{Status: http.StatusNotFound, Type: llm.TypeNotFound, Code: "not_found",
			Message: "no such endpoint: " + llm.Clip(c.Request.Method+" "+c.Request.URL.Path, maxLogField)})
	})
	r.NoMethod(func(c *gin.Context) {
		writeError(c, &llm.Error{Status: http.StatusMethodNotAllowed, Type: llm.TypeInvalidRequest, Code: "method_not_allowed",
			Message: c.Request.Method + " is not allowed on " + c.Request.URL.Path})
	})

	r.GET("/healthz", func(c *gin.Context) { c.Data(http.StatusOK, "application/json", []byte(`{"status":"ok"}`)) })
	r.GET("/readyz", s.readyz)

	v1 := r.Group("/v1", s.authenticate)
	v1.POST("/chat/completions", s.chatCompletions)
	v1.POST("/embeddings", s.embeddings)
	v1.POST("/responses", s.createResponse)
	v1.GET("/responses/:id", s.getResponse)
	v1.DELETE("/responses/:id", s.deleteResponse)
	v1.POST("/completions", s.completions)
	v1.POST("/messages", s.messages) // Anthropic's Messages API (messages.go)
	v1.POST("/messages/count_tokens", s.countTokens)
	v1.GET("/models", s.listModels)
	v1.GET("/models/*model", s.getModel) // model ids may contain slashes

	admin := r.Group("/admin", s.authenticateAdmin)
	admin.POST("/keys", s.createKey)
	admin.GET("/keys", s.listKeys)
	admin.GET("/keys/:id", s.getKey)
	admin.PATCH("/keys/:id", s.patchKey)
	admin.DELETE("/keys/:id", s.revokeKey)
	admin.GET("/providers", s.providersHealth)
	admin.GET("/guards", s.listGuards)
	admin.PUT("/keys/:id/budget", s.setBudget)
	admin.GET("/keys/:id/spend", s.keySpend)
	admin.GET("/keys/:id/customers/:customer", s.customerBudget)
	admin.GET("/reports/cost", s.costReport)
	admin.GET("/cache", s.cacheStats)
	admin.DELETE("/cache", s.cacheDelete)
	admin.GET("/audit", s.listAudit)
	admin.GET("/overview", s.overview)
	r.GET("/ui", s.ui) // the dashboard's shell; its data comes from the admin API
	r.GET("/ui/*file", s.ui)
	if o.Metrics != nil {
		r.GET("/metrics", s.authenticateAdmin, gin.WrapH(o.Metrics))
	}
	return r
}

// begin stamps the request id and, deferred so that it runs when a panic
// unwinds too, answers a panic with a 500 in OpenAI's shape (or an error
// event, when a stream has started) and writes the request's one
// access-log line.
func (s *server) begin(c *gin.Context) {
	start := s.Now()
	r := &call{ResponseWriter: c.Writer, id: s.ids.next()}
	c.Writer = r
	h := c.Writer.Header()
	h.Set(HeaderRequestID, r.id)
	h.Set(HeaderOpenAIRequestID, r.id)
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v) // net/http's own way to abort a response: not a bug
			}
			s.Logger.Error("panic while serving a request", "id", r.id, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			s.internalError(c)
		}
		if s.AccessLog || s.Observer != nil {
			status, latency := r.status(c), s.Now().Sub(start)
			if s.Observer != nil {
				s.Observer.Request(exchangeOf(c, r, status, latency))
			}
			if s.AccessLog {
				s.accessLog(c, r, status, latency)
			}
		}
	}()
	c.Next()
}

// internalError tells the client that the request failed inside tollgate:
// a 500 in the route's error shape, or, when a stream's first bytes are
// already out, the stream's own error event ending it (OpenAI's without
// [DONE], Responses' response.failed, Anthropic's error event), so the
// client knows it is incomplete.
func (s *server) internalError(c *gin.Context) {
	e := &llm.Error{Status: http.StatusInternalServerError, Type: llm.TypeServer, Code: "internal_error",
		Message: "tollgate hit an internal error while serving this request; it was logged with the request id"}
	if !c.Writer.Written() {
		writeError(c, e)
		return
	}
	r := callOf(c)
	r.err = e
	if r.stream != nil {
		r.stream.fail(e)
		_ = http.NewResponseController(c.Writer).Flush()
	}
}

// maxLogField bounds each string of an access-log line: the path, the
// model and the error can quote what the client sent (a 100 KB model name
// is logged as its first 256 bytes and how many more there were).
const maxLogField = 256

// logString is a log attribute holding at most maxLogField bytes of v.
func logString(key, v string) slog.Attr { return slog.String(key, llm.Clip(v, maxLogField)) }

// accessLog writes the request's one access-log line. An upstream's own
// error, which the client is not shown (llm.ForClient), is logged as
// upstream_error, with anything shaped like a credential redacted.
func (s *server) accessLog(c *gin.Context, r *call, status int, latency time.Duration) {
	attrs := make([]slog.Attr, 0, 17)
	attrs = append(attrs,
		slog.String("id", r.id),
		logString("method", c.Request.Method),
		logString("path", c.Request.URL.Path),
		slog.Int("status", status),
		slog.Duration("latency", latency),
	)
	if r.key != nil {
		attrs = append(attrs, slog.String("key_id", r.key.ID))
	}
	if m := r.meta; m != nil && m.Model != "" {
		attrs = append(attrs, logString("model", m.Model), logString("provider", m.Provider), slog.Int("attempts", m.Attempts))
		if m.Cache != "" {
			attrs = append(attrs, logString("cache", m.Cache))
		}
		if m.Judge != "" {
			attrs = append(attrs, logString("judge", m.Judge), slog.String("judge_cost_usd", m.JudgeCost.String()))
		}
		prompt := m.PromptTokens
		if m.Usage != nil {
			prompt = m.Usage.PromptTokens
		}
		attrs = append(attrs, slog.Int("prompt_tokens", prompt), slog.Int("completion_tokens", m.CompletionTokens))
		if !m.Cost.Unpriced && (m.Usage != nil || m.CompletionTokens > 0) {
			attrs = append(attrs, slog.String("cost_usd", m.Cost.Micros.String()), slog.Bool("cost_estimated", m.Cost.Estimated))
		}
	}
	if m := r.meta; m != nil {
		if len(m.Guards) > 0 {
			attrs = append(attrs, slog.String("guards", guardsField(m.Guards)))
		}
		if m.Blocked != "" {
			attrs = append(attrs, slog.String("blocked", m.Blocked))
		}
	}
	if r.err != nil {
		attrs = append(attrs, logString("error", r.err.Error()))
		if up, ok := llm.UpstreamCause(r.err); ok {
			attrs = append(attrs, logString("upstream_error", llm.RedactSecrets(up.Error())))
		}
	}
	level := slog.LevelInfo
	if status >= 500 && status != llm.StatusClientClosed {
		level = slog.LevelWarn
	}
	s.Logger.LogAttrs(c.Request.Context(), level, "request", attrs...)
}

// guardsField is the access log's guards: each guard that matched with
// its matches summed over both directions, in the order they fired
// ("pii:2,secrets:1"). Names come from the config; what they matched is
// never logged.
func guardsField(hits []gateway.GuardHit) string {
	b := make([]byte, 0, 16*len(hits))
	for i, h := range hits {
		if slices.ContainsFunc(hits[:i], func(p gateway.GuardHit) bool { return p.Guard == h.Guard }) {
			continue // counted with its first appearance
		}
		n := 0
		for _, o := range hits[i:] {
			if o.Guard == h.Guard {
				n += o.Count
			}
		}
		if len(b) > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(append(append(b, h.Guard...), ':'), int64(n), 10)
	}
	return string(b)
}

// status is the request's outcome as logged and counted: what was
// written, or the error of a stream cut after its 200 or of a client gone.
func (r *call) status(c *gin.Context) int {
	if r.err != nil && (r.err.Status == llm.StatusClientClosed || (c.Writer.Written() && r.err.Status >= 500)) {
		return r.err.Status
	}
	return c.Writer.Status()
}

// authenticate accepts `Authorization: Bearer <key>` or `x-api-key: <key>`.
func (s *server) authenticate(c *gin.Context) {
	secret := bearer(c.Request)
	if secret == "" {
		c.Header(headerAuthenticate, `Bearer realm="tollgate"`)
		writeError(c, &llm.Error{Status: http.StatusUnauthorized, Type: llm.TypeAuthentication, Code: "missing_api_key",
			Message: "You didn't provide an API key. Send it as 'Authorization: Bearer <key>' or 'x-api-key: <key>'."})
		c.Abort()
		return
	}
	k, err := s.Keys.Authenticate(secret)
	if err != nil && !errors.Is(err, keys.ErrUnknown) && !errors.Is(err, keys.ErrRevoked) {
		// The key store could not be asked (a shared database down): not
		// the caller's fault, and nothing of the error (which may name the
		// database) is shown.
		s.Logger.Error("authenticate: the key store failed", "err", err)
		writeError(c, &llm.Error{Status: http.StatusServiceUnavailable, Type: llm.TypeServer, Code: "key_store_unavailable",
			Message: "The gateway cannot check API keys right now; retry shortly."})
		c.Abort()
		return
	}
	if err != nil {
		c.Header(headerAuthenticate, `Bearer realm="tollgate"`)
		// Nothing of the secret is echoed, not even a part: it may be
		// another credential sent here by mistake (the admin key).
		writeError(c, &llm.Error{Status: http.StatusUnauthorized, Type: llm.TypeAuthentication, Code: "invalid_api_key",
			Message: "Incorrect API key provided. Send a valid tollgate key as 'Authorization: Bearer <key>' or 'x-api-key: <key>'."})
		c.Abort()
		return
	}
	callOf(c).key = k
}

func (s *server) authenticateAdmin(c *gin.Context) {
	secret := bearer(c.Request)
	h := sha256.Sum256([]byte(secret))
	if s.AdminKey == "" || secret == "" || subtle.ConstantTimeCompare(h[:], s.adminHash[:]) != 1 {
		// As for gateway keys, nothing of what was presented is echoed.
		msg := "invalid admin key: send the admin key as 'Authorization: Bearer <admin key>'"
		if s.AdminKey == "" {
			msg = "the admin API is disabled: set TOLLGATE_ADMIN_KEY (or admin_key in the config) and restart"
		}
		c.Header(headerAuthenticate, `Bearer realm="tollgate-admin"`)
		writeError(c, &llm.Error{Status: http.StatusUnauthorized, Type: llm.TypeAuthentication, Code: "invalid_admin_key", Message: msg})
		c.Abort()
	}
}

func bearer(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
			return strings.TrimSpace(h[7:])
		}
		return ""
	}
	return strings.TrimSpace(r.Header.Get("x-api-key"))
}

func (s *server) readyz(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
	defer cancel()
	if err := s.Ready(ctx); err != nil {
		// The endpoint is unauthenticated: the cause (a database path, a
		// worker's panic) goes to the log, not to whoever asks.
		s.Logger.Warn("not ready", "err", err)
		writeError(c, &llm.Error{Status: http.StatusServiceUnavailable, Type: llm.TypeServer, Code: "not_ready",
			Message: "not ready: a dependency or background worker is failing; the gateway's log says which"})
		return
	}
	if s.Degraded != nil {
		if why := s.Degraded(); len(why) > 0 {
			// Still 200: this replica serves every request (a load balancer
			// must not pull it out); the body says what is impaired.
			c.JSON(http.StatusOK, gin.H{"status": "degraded", "degraded": why})
			return
		}
	}
	c.Data(http.StatusOK, "application/json", []byte(`{"status":"ready"}`))
}

// readBody reads the request body up to the configured limit, within
// BodyReadTimeout. The deadline is set on the connection for the body only:
// cleared once the body is read, so that it never bounds what follows (a
// long stream's answer), and left in place after a failed read, so that
// net/http's drain of the unread body when the handler returns cannot wait
// on the client either.
func (s *server) readBody(c *gin.Context) ([]byte, error) {
	limit := s.MaxBodyBytes
	tooLarge := &llm.Error{Status: http.StatusRequestEntityTooLarge, Type: llm.TypeInvalidRequest, Code: "request_too_large",
		Message: "the request body is larger than the limit of " + strconv.FormatInt(limit, 10) + " bytes"}
	if c.Request.ContentLength > limit {
		return nil, tooLarge
	}
	clearDeadline := func() {}
	if s.BodyReadTimeout > 0 {
		// Gin's writer unwraps to the server's, which reaches the connection;
		// a writer that cannot (a test recorder) reads without a deadline.
		rc := http.NewResponseController(c.Writer)
		if rc.SetReadDeadline(s.Now().Add(s.BodyReadTimeout)) == nil {
			clearDeadline = func() { _ = rc.SetReadDeadline(time.Time{}) }
		}
	}
	size := c.Request.ContentLength
	if size <= 0 {
		size = 4096
	}
	buf := make([]byte, 0, size+1)
	body := http.MaxBytesReader(c.Writer, c.Request.Body, limit)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			clearDeadline()
			break
		}
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return nil, tooLarge
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				// The read failed on the connection, so it cannot carry
				// another request: it is closed after this answer.
				return nil, &llm.Error{Status: http.StatusRequestTimeout, Type: llm.TypeInvalidRequest, Code: "request_timeout",
					Header:  http.Header{"Connection": {"close"}},
					Message: "the request body did not arrive within " + s.BodyReadTimeout.String()}
			}
			if ctxErr := c.Request.Context().Err(); ctxErr != nil {
				return nil, ctxErr
			}
			return nil, &llm.Error{Status: http.StatusBadRequest, Type: llm.TypeInvalidRequest, Message: "could not read the request body: " + err.Error()}
		}
	}
	if len(buf) == 0 {
		return nil, &llm.Error{Status: http.StatusBadRequest, Type: llm.TypeInvalidRequest, Message: "the request body is empty; send a JSON object"}
	}
	return buf, nil
}

// idSource makes request ids: a random per-process prefix and a counter,
// unique without a syscall per request.
type idSource struct {
	prefix string
	n      atomic.Uint64
}

func newIDSource() *idSource {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return &idSource{prefix: "req_" + hex.EncodeToString(b[:])}
}

func (s *idSource) next() string {
	var buf [32]byte
	b := append(buf[:0], s.prefix...)
	b = strconv.AppendUint(append(b, '_'), s.n.Add(1), 36)
	return string(b)
}
