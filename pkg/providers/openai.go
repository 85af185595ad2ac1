package providers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
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
	StreamIdleTimeout time.Duration
	// NoStreamOptions is for upstreams that reject stream_options: it is
	// removed from stream requests, and usage then has to be counted.
	NoStreamOptions bool
	// MaxTokensField renames the output cap for upstreams that accept only
	// one spelling: "max_tokens" (older servers) or "max_completion_tokens"
	// (OpenAI reasoning models). Empty sends what the client sent.
	MaxTokensField string
	// MaxResponseBytes bounds a non-streamed answer (default 256 MiB).
	MaxResponseBytes int64
}

// OpenAI is a client for one OpenAI-compatible upstream. It is safe for
// concurrent use.
type OpenAI struct {
	name       string
	client     *http.Client
	base       string // BaseURL without its trailing slash
	azure      bool
	apiVersion string
	chatURL    string // "" for Azure, whose URL depends on the model
	embedURL   string
	authHeader string // canonical header name for the key
	bearer     bool
	jsonHeader http.Header // template, cloned per request
	sseHeader  http.Header
	cfg        OpenAIConfig
	maxResp    int64
	now        func() time.Time
}

// DefaultTransport is the transport every OpenAI client shares unless given
// its own http.Client: one connection pool per process keeps TLS sessions
// and HTTP/2 connections warm across deployments on the same host.
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

// NewOpenAI checks cfg and builds the client. Every problem is reported.
func NewOpenAI(cfg OpenAIConfig) (*OpenAI, error) {
	var errs []error
	if cfg.Name == "" {
		errs = append(errs, errors.New("name: required"))
	}
	u, err := url.Parse(cfg.BaseURL)
	switch {
	case cfg.BaseURL == "":
		errs = append(errs, errors.New("base_url: required"))
	case err != nil:
		errs = append(errs, fmt.Errorf("base_url: %w", err))
	case u.Scheme != "http" && u.Scheme != "https":
		errs = append(errs, fmt.Errorf("base_url: scheme must be http or https, got %q", u.Scheme))
	case u.Host == "":
		errs = append(errs, errors.New("base_url: missing host"))
	case u.RawQuery != "" || u.Fragment != "":
		errs = append(errs, errors.New("base_url: must not carry a query or fragment"))
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
	for k := range cfg.Headers {
		if k == "" || strings.ContainsAny(k, " \t\r\n:") {
			errs = append(errs, fmt.Errorf("headers: invalid header name %q", k))
		}
	}
	if cfg.Timeout < 0 || cfg.StreamIdleTimeout < 0 {
		errs = append(errs, errors.New("timeouts must not be negative"))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("provider %q: %w", cfg.Name, errors.Join(errs...))
	}

	c := &OpenAI{
		name:       cfg.Name,
		client:     cfg.HTTPClient,
		base:       strings.TrimRight(cfg.BaseURL, "/"),
		azure:      cfg.Flavor == FlavorAzure,
		apiVersion: cfg.APIVersion,
		cfg:        cfg,
		maxResp:    cfg.MaxResponseBytes,
		now:        time.Now,
	}
	if c.client == nil {
		c.client = defaultClient
	}
	if c.maxResp <= 0 {
		c.maxResp = 256 << 20
	}
	if c.azure {
		c.base = strings.TrimSuffix(c.base, "/openai")
	} else {
		c.chatURL = c.base + "/chat/completions"
		c.embedURL = c.base + "/embeddings"
	}
	switch {
	case cfg.AuthHeader != "":
		c.authHeader = http.CanonicalHeaderKey(cfg.AuthHeader)
	case c.azure:
		c.authHeader = "Api-Key"
	default:
		c.authHeader, c.bearer = "Authorization", true
	}
	h := make(http.Header, len(cfg.Headers)+3)
	h.Set("Content-Type", "application/json")
	for k, v := range cfg.Headers {
		h.Set(k, v)
	}
	if cfg.APIKey != "" {
		c.setAuth(h, cfg.APIKey)
	}
	c.jsonHeader = h
	c.sseHeader = h.Clone()
	c.jsonHeader.Set("Accept", "application/json")
	c.sseHeader.Set("Accept", "text/event-stream")
	c.sseHeader.Set("Cache-Control", "no-cache")
	return c, nil
}

// Name returns the configured upstream name.
func (c *OpenAI) Name() string { return c.name }

func (c *OpenAI) setAuth(h http.Header, key string) {
	if c.bearer {
		h[c.authHeader] = []string{"Bearer " + key}
	} else {
		h[c.authHeader] = []string{key}
	}
}

func (c *OpenAI) url(op, model string) string {
	if !c.azure {
		if op == "embeddings" {
			return c.embedURL
		}
		return c.chatURL
	}
	return c.base + "/openai/deployments/" + url.PathEscape(model) + "/" + op + "?api-version=" + url.QueryEscape(c.apiVersion)
}

func (c *OpenAI) newRequest(ctx context.Context, op, model, apiKey string, body []byte, stream bool) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url(op, model), bytes.NewReader(body))
	if err != nil {
		return nil, badResponse(c.name, "building the upstream request failed", err)
	}
	if stream {
		req.Header = c.sseHeader.Clone()
	} else {
		req.Header = c.jsonHeader.Clone()
	}
	if apiKey != "" {
		c.setAuth(req.Header, apiKey)
	}
	return req, nil
}

// Chat sends a non-streamed chat completion.
func (c *OpenAI) Chat(ctx context.Context, r *Request) (*llm.ChatResponse, error) {
	body, err := c.chatBody(r, false)
	if err != nil {
		return nil, err
	}
	callCtx := ctx
	if c.cfg.Timeout > 0 {
		var cancel context.CancelFunc
		callCtx, cancel = context.WithTimeout(ctx, c.cfg.Timeout)
		defer cancel()
	}
	raw, err := c.do(callCtx, ctx, "chat/completions", r.Model, r.APIKey, body)
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
	callCtx := ctx
	if c.cfg.Timeout > 0 {
		var cancel context.CancelFunc
		callCtx, cancel = context.WithTimeout(ctx, c.cfg.Timeout)
		defer cancel()
	}
	raw, err := c.do(callCtx, ctx, "embeddings", r.Model, r.APIKey, body)
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

// do runs a JSON round trip and returns the 2xx body. callCtx may carry the
// per-call timeout; parent is the caller's, to tell a client cancel from
// our own deadline.
func (c *OpenAI) do(callCtx, parent context.Context, op, model, apiKey string, body []byte) ([]byte, error) {
	req, err := c.newRequest(callCtx, op, model, apiKey, body, false)
	if err != nil {
		return nil, err
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, c.transportError(parent, err, callCtx.Err() != nil && parent.Err() == nil)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, c.statusError(resp)
	}
	raw, err := c.readBody(resp)
	if err != nil {
		if errors.Is(err, errTooLarge) {
			return nil, badResponse(c.name, "upstream answer exceeds the size limit", err)
		}
		return nil, c.transportError(parent, err, callCtx.Err() != nil && parent.Err() == nil)
	}
	return raw, nil
}

var errTooLarge = errors.New("response too large")

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// readBody returns the whole body in a slice the caller owns. With a known
// length it is read straight into an exact allocation; otherwise through a
// pooled buffer, so unknown lengths cost one copy rather than a series of
// growing allocations.
func (c *OpenAI) readBody(resp *http.Response) ([]byte, error) {
	if n := resp.ContentLength; n >= 0 {
		if n > c.maxResp {
			return nil, errTooLarge
		}
		buf := make([]byte, n)
		if _, err := io.ReadFull(resp.Body, buf); err != nil {
			return nil, err
		}
		return buf, nil
	}
	b := bufPool.Get().(*bytes.Buffer)
	defer func() {
		if b.Cap() <= 1<<20 { // keep the pool from pinning huge buffers
			b.Reset()
			bufPool.Put(b)
		}
	}()
	b.Reset()
	if _, err := b.ReadFrom(io.LimitReader(resp.Body, c.maxResp+1)); err != nil {
		return nil, err
	}
	if int64(b.Len()) > c.maxResp {
		return nil, errTooLarge
	}
	return bytes.Clone(b.Bytes()), nil
}

func quote(s string) []byte {
	return strconv.AppendQuote(make([]byte, 0, len(s)+2), s)
}

// chatBody is the client's body with only what this call must change:
// model, stream, stream_options and the configured quirks. Everything else
// is passed on byte for byte.
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
	switch c.cfg.MaxTokensField {
	case "max_tokens":
		if r.Chat.MaxCompletionTokens != nil {
			set("max_completion_tokens", nil)
			set("max_tokens", strconv.AppendInt(nil, int64(*r.Chat.MaxCompletionTokens), 10))
		}
	case "max_completion_tokens":
		if r.Chat.MaxTokens != nil {
			set("max_tokens", nil)
			if r.Chat.MaxCompletionTokens == nil {
				set("max_completion_tokens", strconv.AppendInt(nil, int64(*r.Chat.MaxTokens), 10))
			}
		}
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
