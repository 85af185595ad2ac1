package providers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/tollgate/tollgate/internal/anthropicwire"
	"github.com/tollgate/tollgate/pkg/llm"
)

// AnthropicConfig configures one upstream speaking Anthropic's Messages API
// (POST {BaseURL}/v1/messages).
type AnthropicConfig struct {
	// Name identifies the upstream in errors, logs and metrics.
	Name string
	// BaseURL is the API root (default https://api.anthropic.com). A
	// trailing /v1 is tolerated, so the URL of Anthropic's OpenAI-compatible
	// surface works too.
	BaseURL string
	// APIKey is sent in x-api-key; Request.APIKey overrides it per call.
	APIKey string
	// Version is the anthropic-version header (default 2023-06-01).
	Version string
	// Headers are added to every request (anthropic-beta, ...).
	Headers map[string]string
	// HTTPClient replaces the shared tuned client (tests, proxies, mTLS).
	HTTPClient *http.Client
	// Timeout bounds a non-streamed call end to end and a stream until its
	// response headers; 0 leaves it to the caller's context.
	Timeout time.Duration
	// StreamIdleTimeout bounds the silence between two stream events; 0: none.
	// Request.IdleTimeout replaces it for one stream.
	StreamIdleTimeout time.Duration
	// TTFTTimeout bounds a stream from its request to its first chunk; 0:
	// none of its own (the caller's context still bounds it).
	TTFTTimeout time.Duration
	// DefaultMaxTokens is sent as max_tokens when the client set neither
	// max_tokens nor max_completion_tokens and the request carries no
	// MaxTokens: Anthropic requires one, OpenAI does not. Default 4096. The
	// gateway reserves budget for the model's own output limit when the
	// client sets none, so a value at or below it never costs more than was
	// reserved.
	DefaultMaxTokens int
	// MaxResponseBytes bounds a non-streamed answer (default
	// DefaultMaxResponseBytes); a longer one is a 502.
	MaxResponseBytes int64
	// MaxEventBytes bounds one stream line and one event's data (default
	// DefaultMaxEventBytes); MaxStreamBytes the bytes read from one stream
	// (default DefaultMaxStreamBytes). Past either the stream ends with a
	// 502.
	MaxEventBytes  int
	MaxStreamBytes int64
	// Now stamps "created" on responses and chunks (default time.Now).
	Now func() time.Time
}

// Anthropic is a client for one upstream speaking Anthropic's Messages API.
// It translates OpenAI chat completions to /v1/messages and the answers
// back, JSON and streams alike (see anthropicBody for what maps to what).
// It is safe for concurrent use. It is not an Embedder: Anthropic has no
// embeddings endpoint.
type Anthropic struct {
	upstream
	url string
	cfg AnthropicConfig
}

var _ Provider = (*Anthropic)(nil)

const (
	defaultAnthropicURL       = "https://api.anthropic.com"
	defaultAnthropicVersion   = "2023-06-01"
	defaultAnthropicMaxTokens = 4096
)

// NewAnthropic checks cfg and builds the client. Every problem is reported.
func NewAnthropic(cfg AnthropicConfig) (*Anthropic, error) {
	var errs []error
	if cfg.Name == "" {
		errs = append(errs, errors.New("name: required"))
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = defaultAnthropicURL
	}
	if err := checkBaseURL(cfg.BaseURL); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, checkHeaders(cfg.Headers)...)
	errs = append(errs, checkBounds(cfg.Timeout, cfg.StreamIdleTimeout, cfg.TTFTTimeout, cfg.MaxResponseBytes, cfg.MaxEventBytes, cfg.MaxStreamBytes)...)
	if cfg.DefaultMaxTokens < 0 {
		errs = append(errs, errors.New("default_max_tokens: must not be negative"))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("provider %q: %w", cfg.Name, errors.Join(errs...))
	}
	if cfg.Version == "" {
		cfg.Version = defaultAnthropicVersion
	}
	if cfg.DefaultMaxTokens == 0 {
		cfg.DefaultMaxTokens = defaultAnthropicMaxTokens
	}
	a := &Anthropic{cfg: cfg}
	a.upstream = upstream{name: cfg.Name, client: cfg.HTTPClient, timeout: cfg.Timeout, idleTimeout: cfg.StreamIdleTimeout,
		ttft: cfg.TTFTTimeout, maxResp: cfg.MaxResponseBytes, maxEvent: cfg.MaxEventBytes, maxStream: cfg.MaxStreamBytes,
		now: cfg.Now, format: a, keyHeader: "X-Api-Key"}
	a.fillDefaults()
	base := strings.TrimSuffix(strings.TrimRight(cfg.BaseURL, "/"), "/v1")
	a.url = base + "/v1/messages"
	h := make(http.Header, len(cfg.Headers)+4)
	for k, v := range cfg.Headers {
		h.Set(k, v)
	}
	h.Set("Content-Type", "application/json")
	h.Set("Anthropic-Version", cfg.Version)
	a.setHeaders(h, cfg.APIKey)
	return a, nil
}

// Name returns the configured upstream name.
func (a *Anthropic) Name() string { return a.name }

// Chat sends a non-streamed chat completion as a Messages call and
// translates the answer.
func (a *Anthropic) Chat(ctx context.Context, r *Request) (*llm.ChatResponse, error) {
	body, err := a.body(r, false)
	if err != nil {
		return nil, err
	}
	raw, err := a.call(ctx, a.url, a.header(false, r.APIKey), body)
	if err != nil {
		return nil, err
	}
	var msg anthropicwire.Response
	if err := decodeJSON(raw, &msg); err != nil {
		return nil, badResponse(a.name, "upstream sent a malformed message: "+snippet(string(raw)), err)
	}
	if msg.Type == "error" && msg.Error != nil {
		return nil, anthropicEventError(a.name, msg.Error)
	}
	if msg.Type != "message" {
		return nil, badResponse(a.name, "upstream sent something other than a message: "+snippet(string(raw)), nil)
	}
	return chatResponseOf(&msg, a.now()), nil
}

// body translates r to the Messages request body.
func (a *Anthropic) body(r *Request, stream bool) ([]byte, error) {
	if r.Chat == nil {
		return nil, errors.New("providers: chat request without a parsed body")
	}
	model := r.Model
	if model == "" {
		model = r.Chat.Model
	}
	maxTokens := r.OutputLimit()
	if maxTokens <= 0 {
		maxTokens = a.cfg.DefaultMaxTokens
	}
	return anthropicBody(r.Chat, model, maxTokens, stream)
}

// statusError maps a non-2xx answer. Anthropic's envelope is
// {"type":"error","error":{"type","message"},"request_id"}: its inner
// object has the OpenAI envelope's shape, so fillFromBody reads it.
func (a *Anthropic) statusError(resp *http.Response) *llm.Error {
	e := a.newStatusError(resp, anthropicHeader, statusText)
	mapAnthropicError(e)
	return e
}

func statusText(status int) string {
	if status == statusOverloaded {
		return "Overloaded"
	}
	return http.StatusText(status)
}

// statusOverloaded is Anthropic's "API temporarily overloaded" status. It is
// not a registered HTTP status, so it is reported as 503, which every
// HTTP-aware layer reads as "try again, maybe elsewhere".
const statusOverloaded = anthropicwire.StatusOverloaded

// mapAnthropicError turns Anthropic's error type into OpenAI's vocabulary,
// keeping the original type in Code so nothing is lost.
func mapAnthropicError(e *llm.Error) {
	ant := e.Type
	if e.Code == "" && ant != "" {
		e.Code = ant
	}
	switch ant {
	case "invalid_request_error", "authentication_error", "permission_error", "not_found_error",
		"rate_limit_error", "timeout_error":
		// Same name in both vocabularies.
	case "request_too_large":
		e.Type = llm.TypeInvalidRequest
	case "billing_error":
		e.Type = llm.TypeQuota
	case "api_error", "overloaded_error":
		e.Type = llm.TypeServer
	default:
		e.Type = typeForStatus(e.Status)
	}
	if e.Status == statusOverloaded || ant == "overloaded_error" {
		e.Status = http.StatusServiceUnavailable
		e.Retryable = true
	}
}

// anthropicHeader is passHeader for Anthropic's names: its rate limit
// state, retry advice and the request id support asks for.
func anthropicHeader(lower string) bool {
	return strings.HasPrefix(lower, "anthropic-ratelimit-") || lower == "retry-after" || lower == "request-id" ||
		lower == "x-request-id" || lower == "x-should-retry"
}

// eventError maps an error delivered after a 200: a stream's error event,
// or an error object in a 2xx body. Its status is inferred from the type.
func anthropicEventError(provider string, obj *antError) *llm.Error {
	e := &llm.Error{Upstream: true, Provider: provider, Type: obj.Type, Message: obj.Message, Status: anthropicwire.StatusFor(obj.Type)}
	e.Retryable = retryableStatus(e.Status)
	if e.Message == "" {
		e.Message = "upstream sent an error event"
		if obj.Type != "" {
			e.Message += " (" + obj.Type + ")"
		}
	}
	mapAnthropicError(e)
	return e
}
