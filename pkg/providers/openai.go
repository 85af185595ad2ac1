package providers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate/tollgate/pkg/llm"
)

// Flavor selects the URL and auth shape of an OpenAI-compatible upstream.
type Flavor string

const (
	// FlavorOpenAI: POST {BaseURL}/chat/completions, Authorization: Bearer.
	// OpenAI, OpenRouter, Groq, Together, Mistral, DeepSeek, Ollama, vLLM,
	// and Azure's /openai/v1 surface.
	FlavorOpenAI Flavor = "openai"
	// FlavorAzure: POST {BaseURL}/openai/deployments/{model}/chat/completions?api-version=V,
	// key in the api-key header.
	FlavorAzure Flavor = "azure"
)

// OpenAIConfig configures one OpenAI-compatible upstream.
type OpenAIConfig struct {
	// Name identifies the upstream in errors, logs and metrics.
	Name string
	// BaseURL is everything before /chat/completions, usually ending in /v1
	// (https://api.openai.com/v1, http://localhost:11434/v1). For Azure it is
	// the resource endpoint, https://{resource}.openai.azure.com.
	BaseURL string
	// APIKey is sent as "Authorization: Bearer" (api-key for Azure); no auth
	// header is sent when it is empty (Ollama, local vLLM).
	APIKey string
	// AuthHeader overrides the header the key travels in, sent as the bare
	// key (e.g. "api-key" for Azure's /openai/v1 surface, "x-api-key").
	AuthHeader string
	// Headers are added to every request (OpenRouter's HTTP-Referer and
	// X-Title, OpenAI-Organization, ...).
	Headers map[string]string
	// Flavor is FlavorOpenAI (default) or FlavorAzure.
	Flavor Flavor
	// APIVersion is Azure's api-version query parameter (required for Azure).
	APIVersion string
	// HTTPClient replaces the shared tuned client (tests, proxies, mTLS).
	HTTPClient *http.Client
	// Timeout bounds a non-streamed call end to end and a stream until its
	// response headers; 0 leaves it to the caller's context.
	Timeout time.Duration
	// StreamIdleTimeout bounds the silence between two stream events, so a
	// stalled upstream is noticed without capping long generations; 0: none.
	// Request.IdleTimeout replaces it for one stream.
	StreamIdleTimeout time.Duration
	// TTFTTimeout bounds a stream from its request to its first chunk; 0:
	// none of its own (the caller's context still bounds it).
	TTFTTimeout time.Duration
	// NoStreamOptions is for upstreams that reject stream_options: it is
	// removed from stream requests, and usage then has to be counted.
	NoStreamOptions bool
	// MaxTokensField is the one spelling of the output cap the upstream
	// is sent: "max_tokens" (older servers) or "max_completion_tokens"
	// (OpenAI reasoning models). Empty keeps the client's spelling and,
	// when the client sent none, uses max_completion_tokens for OpenAI
	// and Azure, max_tokens for every other upstream.
	MaxTokensField string
	// MaxResponseBytes bounds a non-streamed answer (default
	// DefaultMaxResponseBytes); a longer one is a 502.
	MaxResponseBytes int64
	// MaxEventBytes bounds one stream line and one event's data (default
	// DefaultMaxEventBytes); MaxStreamBytes the bytes read from one stream
	// (default DefaultMaxStreamBytes). Past either the stream ends with a
	// 502.
	MaxEventBytes  int
	MaxStreamBytes int64
	// ResponsesAPI says whether the upstream serves OpenAI's Responses
	// API at {BaseURL}/responses: Responses requests are then passed
	// through to it rather than translated to chat completions. nil: on
	// for api.openai.com, off for every other host. Not for FlavorAzure
	// (Azure's /openai/v1 surface, FlavorOpenAI, has it).
	ResponsesAPI *bool
}

// OpenAI is a client for one OpenAI-compatible upstream. It is safe for
// concurrent use.
type OpenAI struct {
	upstream
	base       string // BaseURL without its trailing slash
	azure      bool
	apiVersion string
	chatURL    string // "" for Azure, whose URL depends on the model
	embedURL   string
	respURL    string // "" when the upstream is not sent Responses bodies
	cfg        OpenAIConfig
}

// NewOpenAI checks cfg and builds the client. Every problem is reported.
func NewOpenAI(cfg OpenAIConfig) (*OpenAI, error) {
	var errs []error
	if cfg.Name == "" {
		errs = append(errs, errors.New("name: required"))
	}
	if err := checkBaseURL(cfg.BaseURL); err != nil {
		errs = append(errs, err)
	}
	switch cfg.Flavor {
	case "", FlavorOpenAI:
	case FlavorAzure:
		if cfg.APIVersion == "" {
			errs = append(errs, errors.New("api_version: required for azure"))
		}
	default:
		errs = append(errs, fmt.Errorf("flavor: must be %q or %q, got %q", FlavorOpenAI, FlavorAzure, cfg.Flavor))
	}
	switch cfg.MaxTokensField {
	case "", "max_tokens", "max_completion_tokens":
	default:
		errs = append(errs, fmt.Errorf("max_tokens_field: must be max_tokens or max_completion_tokens, got %q", cfg.MaxTokensField))
	}
	if cfg.Flavor == FlavorAzure && cfg.ResponsesAPI != nil && *cfg.ResponsesAPI {
		errs = append(errs, errors.New("responses_api: not served by the azure flavor (use Azure's /openai/v1 base URL with flavor openai)"))
	}
	errs = append(errs, checkHeaders(cfg.Headers)...)
	errs = append(errs, checkBounds(cfg.Timeout, cfg.StreamIdleTimeout, cfg.TTFTTimeout, cfg.MaxResponseBytes, cfg.MaxEventBytes, cfg.MaxStreamBytes)...)
	if len(errs) > 0 {
		return nil, fmt.Errorf("provider %q: %w", cfg.Name, errors.Join(errs...))
	}

	c := &OpenAI{
		base:       strings.TrimRight(cfg.BaseURL, "/"),
		azure:      cfg.Flavor == FlavorAzure,
		apiVersion: cfg.APIVersion,
		cfg:        cfg,
	}
	c.upstream = upstream{name: cfg.Name, client: cfg.HTTPClient, timeout: cfg.Timeout, idleTimeout: cfg.StreamIdleTimeout,
		ttft: cfg.TTFTTimeout, maxResp: cfg.MaxResponseBytes, maxEvent: cfg.MaxEventBytes, maxStream: cfg.MaxStreamBytes, format: c}
	c.fillDefaults()
	if c.azure {
		c.base = strings.TrimSuffix(c.base, "/openai")
	} else {
		c.chatURL = c.base + "/chat/completions"
		c.embedURL = c.base + "/embeddings"
		if servesResponses(cfg) {
			c.respURL = c.base + "/responses"
		}
	}
	switch {
	case cfg.AuthHeader != "":
		c.keyHeader = http.CanonicalHeaderKey(cfg.AuthHeader)
	case c.azure:
		c.keyHeader = "Api-Key"
	default:
		c.keyHeader, c.keyPrefix = "Authorization", "Bearer "
	}
	h := make(http.Header, len(cfg.Headers)+3)
	h.Set("Content-Type", "application/json")
	for k, v := range cfg.Headers {
		h.Set(k, v)
	}
	c.setHeaders(h, cfg.APIKey)
	return c, nil
}

// Name returns the configured upstream name.
func (c *OpenAI) Name() string { return c.name }

func (c *OpenAI) url(op, model string) string {
	if !c.azure {
		if op == "embeddings" {
			return c.embedURL
		}
		return c.chatURL
	}
	return c.base + "/openai/deployments/" + url.PathEscape(model) + "/" + op + "?api-version=" + url.QueryEscape(c.apiVersion)
}

// Chat sends a non-streamed chat completion.
func (c *OpenAI) Chat(ctx context.Context, r *Request) (*llm.ChatResponse, error) {
	body, err := c.chatBody(r, false)
	if err != nil {
		return nil, err
	}
	raw, err := c.call(ctx, c.url("chat/completions", r.Model), c.header(false, r.APIKey), body)
	if err != nil {
		return nil, err
	}
	resp := &llm.ChatResponse{}
	if err := decodeJSON(raw, resp); err != nil {
		return nil, badResponse(c.name, "upstream sent a malformed chat completion: "+snippet(string(raw)), err)
	}
	resp.Raw = raw
	return resp, nil
}

// Embed sends an embeddings request.
func (c *OpenAI) Embed(ctx context.Context, r *EmbedRequest) (*llm.EmbeddingResponse, error) {
	if r.Embedding == nil || len(r.Embedding.Raw) == 0 {
		return nil, errors.New("providers: embed request without a raw body")
	}
	body := []byte(r.Embedding.Raw)
	if r.Model != "" && r.Model != r.Embedding.Model {
		var err error
		if body, err = llm.SetField(body, "model", quote(r.Model)); err != nil {
			return nil, fmt.Errorf("providers: patching the embeddings body: %w", err)
		}
	}
	raw, err := c.call(ctx, c.url("embeddings", r.Model), c.header(false, r.APIKey), body)
	if err != nil {
		return nil, err
	}
	resp := &llm.EmbeddingResponse{}
	if err := decodeJSON(raw, resp); err != nil {
		return nil, badResponse(c.name, "upstream sent a malformed embeddings answer: "+snippet(string(raw)), err)
	}
	resp.Raw = raw
	return resp, nil
}

func quote(s string) []byte {
	return strconv.AppendQuote(make([]byte, 0, len(s)+2), s)
}

// chatBody is the client's body with only what this call must change:
// model, stream, stream_options, the output cap and the configured quirks.
// Everything else is passed on byte for byte. The output cap is always
// sent when there is one (r.OutputLimit: the client's, lowered to what the
// gateway reserved), in one spelling (see patchOutputLimit), so an honest
// upstream cannot bill past the reservation.
func (c *OpenAI) chatBody(r *Request, stream bool) ([]byte, error) {
	if r.Chat == nil || len(r.Chat.Raw) == 0 {
		return nil, errors.New("providers: chat request without a raw body")
	}
	body := []byte(r.Chat.Raw)
	var err error
	set := func(key string, val []byte) {
		if err == nil {
			body, err = llm.SetField(body, key, val)
		}
	}
	if r.Model != "" && r.Model != r.Chat.Model {
		set("model", quote(r.Model))
	}
	if stream != r.Chat.Stream {
		if stream {
			set("stream", []byte("true"))
		} else {
			set("stream", nil)
		}
	}
	switch {
	case !stream || c.cfg.NoStreamOptions:
		if r.Chat.StreamOptions != nil {
			set("stream_options", nil)
		}
	case r.IncludeUsage && (r.Chat.StreamOptions == nil || !r.Chat.StreamOptions.IncludeUsage):
		set("stream_options", mergeIncludeUsage(r.Chat))
	}
	if err == nil {
		body, err = patchOutputLimit(body, r, c.cfg.MaxTokensField, defaultMaxTokensField(c.cfg.BaseURL, c.azure))
	}
	if err != nil {
		return nil, fmt.Errorf("providers: patching the chat body: %w", err)
	}
	return body, nil
}

// mergeIncludeUsage returns the client's stream_options with
// include_usage=true, keeping any other member it sent.
func mergeIncludeUsage(chat *llm.ChatRequest) []byte {
	const plain = `{"include_usage":true}`
	if chat.StreamOptions == nil {
		return []byte(plain)
	}
	var v struct {
		StreamOptions json.RawMessage `json:"stream_options"`
	}
	if json.Unmarshal(chat.Raw, &v) != nil {
		return []byte(plain)
	}
	merged, err := llm.SetField(v.StreamOptions, "include_usage", []byte("true"))
	if err != nil {
		return []byte(plain)
	}
	return merged
}
