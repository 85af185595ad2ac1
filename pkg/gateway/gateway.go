// Package gateway is tollgate's request flow and nothing else: given an
// authenticated key and a parsed request, it resolves the model, calls the
// upstream and reports what happened (Meta). It reads top to bottom in Chat,
// Stream and Embed; the leaf packages do the work.
package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/tollgate/tollgate/pkg/keys"
	"github.com/tollgate/tollgate/pkg/llm"
	"github.com/tollgate/tollgate/pkg/providers"
	"github.com/tollgate/tollgate/pkg/router"
)

// TokenCounter counts tokens the way a model's provider bills them
// (tokens.Counter).
type TokenCounter interface {
	CountChat(tokenizer, model string, req *llm.ChatRequest) (int, error)
	CountText(tokenizer, text string) int
}

// Deployment is one way to serve a model: an upstream and the name it knows
// the model by.
type Deployment struct {
	Provider providers.Provider
	Upstream string
}

// Model is a model the gateway serves.
type Model struct {
	Name        string
	Spec        *router.Model // catalog entry: prices, context window, tokenizer
	Chat        bool          // serves /v1/chat/completions
	Embeddings  bool          // serves /v1/embeddings
	OwnedBy     string
	Deployments []Deployment
}

// Options wires a Gateway.
type Options struct {
	Models []*Model
	Tokens TokenCounter
	// RequestTimeout bounds one request end to end; 0 means none.
	RequestTimeout time.Duration
	Logger         *slog.Logger
	Now            func() time.Time
}

// Gateway serves chat, stream and embedding requests. Safe for concurrent use.
type Gateway struct {
	tokens  TokenCounter
	models  map[string]*Model
	names   []string
	timeout time.Duration
	log     *slog.Logger
	now     func() time.Time
}

// New builds a Gateway.
func New(o Options) (*Gateway, error) {
	if o.Tokens == nil {
		return nil, errors.New("gateway: a token counter is required")
	}
	g := &Gateway{tokens: o.Tokens, models: map[string]*Model{}, timeout: o.RequestTimeout, log: o.Logger, now: o.Now}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	if g.now == nil {
		g.now = time.Now
	}
	for _, m := range o.Models {
		if len(m.Deployments) == 0 {
			return nil, fmt.Errorf("gateway: model %s has no deployment", m.Name)
		}
		if m.Spec == nil {
			return nil, fmt.Errorf("gateway: model %s has no catalog entry", m.Name)
		}
		if _, dup := g.models[m.Name]; dup {
			return nil, fmt.Errorf("gateway: model %s defined twice", m.Name)
		}
		g.models[m.Name] = m
		g.names = append(g.names, m.Name)
	}
	sort.Strings(g.names)
	return g, nil
}

// Meta is what happened to one request: the access log and the x-tollgate-*
// response headers are made from it.
type Meta struct {
	Model        string // the model that served the request
	Provider     string
	Attempts     int
	PromptTokens int        // counted by tollgate before the call
	Usage        *llm.Usage // as the provider reported it; nil when it reported none
	// CompletionTokens is the provider's count, or tollgate's when the
	// provider reported none (then Cost.Estimated is set).
	CompletionTokens int
	Cost             router.Cost
}

// Chat serves a non-streamed chat completion.
func (g *Gateway) Chat(ctx context.Context, key *keys.Key, req *llm.ChatRequest) (*llm.ChatResponse, *Meta, error) {
	m, err := g.resolve(key, req.Model, false)
	if err != nil {
		return nil, nil, err
	}
	prompt, err := g.countPrompt(m, req)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := g.withTimeout(ctx)
	defer cancel()

	d := m.Deployments[0]
	meta := &Meta{Model: m.Name, Provider: d.Provider.Name(), Attempts: 1, PromptTokens: prompt}
	resp, err := d.Provider.Chat(ctx, &providers.Request{Chat: req, Model: d.Upstream})
	if err != nil {
		return nil, meta, g.upstreamErr(ctx, err)
	}
	g.settle(m, meta, resp.Usage, func() string { return completionText(resp) })
	return resp, meta, nil
}

// countPrompt counts the prompt with the model's tokenizer and refuses a
// request that cannot fit the model's context window, before paying for
// the upstream's error.
func (g *Gateway) countPrompt(m *Model, req *llm.ChatRequest) (int, error) {
	n, err := g.tokens.CountChat(m.Spec.Tokenizer, m.Spec.UpstreamModel, req)
	if err != nil {
		return 0, fmt.Errorf("gateway: counting tokens for %s: %w", m.Name, err)
	}
	out := req.OutputLimit()
	if max := m.Spec.MaxOutputTokens; max > 0 && out > max {
		return n, &llm.Error{Status: http.StatusBadRequest, Type: llm.TypeInvalidRequest, Code: "context_length_exceeded", Param: "max_tokens",
			Message: fmt.Sprintf("max_tokens is too large: %d. This model supports at most %d completion tokens.", out, max)}
	}
	if window := m.Spec.MaxInputTokens; window > 0 && n+out > window {
		return n, &llm.Error{Status: http.StatusBadRequest, Type: llm.TypeInvalidRequest, Code: "context_length_exceeded", Param: "messages",
			Message: fmt.Sprintf("This model's maximum context length is %d tokens. However, you requested %d tokens (%d in the messages, %d in the completion). Please reduce the length of the messages or completion.",
				window, n+out, n, out)}
	}
	return n, nil
}

// settle prices the call: from the usage the provider reported, or, when
// it reported none, from tokens counted here (marked estimated).
func (g *Gateway) settle(m *Model, meta *Meta, usage *llm.Usage, completion func() string) {
	meta.Usage = usage
	if usage != nil {
		meta.CompletionTokens = usage.CompletionTokens
		meta.Cost = m.Spec.Cost(usage)
		return
	}
	meta.CompletionTokens = g.tokens.CountText(m.Spec.Tokenizer, completion())
	meta.Cost = m.Spec.EstimateCost(meta.PromptTokens, meta.CompletionTokens)
	meta.Cost.Estimated = true
}

// completionText is everything the model generated, for counting.
func completionText(resp *llm.ChatResponse) string {
	var b strings.Builder
	for _, c := range resp.Choices {
		b.WriteString(c.Message.Content.String())
		for _, tc := range c.Message.ToolCalls {
			b.WriteString(tc.Function.Name)
			b.WriteString(tc.Function.Arguments)
		}
	}
	return b.String()
}

// Stream is a streamed completion as the client should see it. Meta is
// complete once Recv has returned io.EOF.
type Stream struct {
	Meta *Meta

	up        providers.Stream
	cancel    context.CancelFunc
	ctx       context.Context
	g         *Gateway
	model     *Model
	wantUsage bool            // the client asked for the usage chunk
	text      strings.Builder // generated text, counted if no usage comes
	settled   bool
}

// Stream opens a streamed chat completion. The upstream is always asked for
// usage (so the cost is exact); the usage chunk is passed on only when the
// client asked for it.
func (g *Gateway) Stream(ctx context.Context, key *keys.Key, req *llm.ChatRequest) (*Stream, error) {
	m, err := g.resolve(key, req.Model, false)
	if err != nil {
		return nil, err
	}
	prompt, err := g.countPrompt(m, req)
	if err != nil {
		return nil, err
	}
	ctx, cancel := g.withTimeout(ctx)
	d := m.Deployments[0]
	meta := &Meta{Model: m.Name, Provider: d.Provider.Name(), Attempts: 1, PromptTokens: prompt}
	up, err := d.Provider.Stream(ctx, &providers.Request{Chat: req, Model: d.Upstream, IncludeUsage: true})
	if err != nil {
		cancel()
		return nil, g.upstreamErr(ctx, err)
	}
	wantUsage := req.StreamOptions != nil && req.StreamOptions.IncludeUsage
	return &Stream{Meta: meta, up: up, cancel: cancel, ctx: ctx, g: g, model: m, wantUsage: wantUsage}, nil
}

// Recv returns the next chunk for the client, io.EOF at the end. The usage
// chunk, when the client asked for it, also carries the cost (cost_usd).
func (s *Stream) Recv() (*llm.ChatChunk, error) {
	for {
		c, err := s.up.Recv()
		if err != nil {
			s.finish()
			if err == io.EOF {
				return nil, io.EOF
			}
			return nil, s.g.upstreamErr(s.ctx, err)
		}
		for i := range c.Choices {
			d := &c.Choices[i].Delta
			if d.Content != nil {
				s.text.WriteString(*d.Content)
			}
			for _, tc := range d.ToolCalls {
				s.text.WriteString(tc.Function.Name)
				s.text.WriteString(tc.Function.Arguments)
			}
		}
		if c.Usage == nil {
			return c, nil
		}
		s.Meta.Usage = c.Usage
		s.finish()
		if !s.wantUsage {
			if len(c.Choices) == 0 {
				continue // the usage-only chunk the client did not ask for
			}
			stripped := *c
			stripped.Usage, stripped.Raw = nil, nil
			return &stripped, nil
		}
		return withCost(c, s.Meta.Cost), nil
	}
}

// finish prices the stream once: from its usage, or from the text counted
// when the upstream sent none (a stream cut midway, an upstream that ignores
// stream_options).
func (s *Stream) finish() {
	if s.settled {
		return
	}
	s.settled = true
	s.g.settle(s.model, s.Meta, s.Meta.Usage, s.text.String)
}

// withCost adds the cost to a usage chunk without touching its other bytes.
func withCost(c *llm.ChatChunk, cost router.Cost) *llm.ChatChunk {
	if c.Raw == nil || cost.Unpriced {
		return c
	}
	var parts struct {
		Usage json.RawMessage `json:"usage"`
	}
	if json.Unmarshal(c.Raw, &parts) != nil || len(parts.Usage) == 0 || parts.Usage[0] != '{' {
		return c
	}
	usage, err := llm.SetField(parts.Usage, "cost_usd", []byte(cost.Micros.String()))
	if err != nil {
		return c
	}
	raw, err := llm.SetField(c.Raw, "usage", usage)
	if err != nil {
		return c
	}
	out := *c
	out.Raw = raw
	return &out
}

// Close releases the upstream stream. A stream closed before its end (the
// client left) is priced from what was generated so far.
func (s *Stream) Close() error {
	err := s.up.Close()
	s.cancel()
	s.finish()
	return err
}

// Embed serves an embeddings request.
func (g *Gateway) Embed(ctx context.Context, key *keys.Key, req *llm.EmbeddingRequest) (*llm.EmbeddingResponse, *Meta, error) {
	m, err := g.resolve(key, req.Model, true)
	if err != nil {
		return nil, nil, err
	}
	meta := &Meta{Model: m.Name, Attempts: 1}
	for i, text := range req.Input.Texts {
		n := g.tokens.CountText(m.Spec.Tokenizer, text)
		if window := m.Spec.MaxInputTokens; window > 0 && n > window {
			return nil, nil, &llm.Error{Status: http.StatusBadRequest, Type: llm.TypeInvalidRequest, Code: "context_length_exceeded", Param: fmt.Sprintf("input[%d]", i),
				Message: fmt.Sprintf("This model's maximum context length is %d tokens, however you requested %d tokens in input[%d].", window, n, i)}
		}
		meta.PromptTokens += n
	}
	for _, toks := range req.Input.Tokens {
		meta.PromptTokens += len(toks)
	}
	ctx, cancel := g.withTimeout(ctx)
	defer cancel()
	d := m.Deployments[0]
	meta.Provider = d.Provider.Name()
	emb, ok := d.Provider.(providers.Embedder)
	if !ok {
		return nil, meta, llm.Errorf(http.StatusBadRequest, llm.TypeInvalidRequest, "model_not_supported",
			"provider %s of model %s does not serve embeddings", d.Provider.Name(), m.Name)
	}
	resp, err := emb.Embed(ctx, &providers.EmbedRequest{Embedding: req, Model: d.Upstream})
	if err != nil {
		return nil, meta, g.upstreamErr(ctx, err)
	}
	g.settle(m, meta, resp.Usage, func() string { return "" })
	return resp, meta, nil
}

// ModelInfo is one entry of GET /v1/models.
type ModelInfo struct {
	ID      string
	OwnedBy string
}

// Models lists the models key may use, sorted by name.
func (g *Gateway) Models(key *keys.Key) []ModelInfo {
	out := make([]ModelInfo, 0, len(g.names))
	for _, name := range g.names {
		if key.Allows(name) {
			m := g.models[name]
			out = append(out, ModelInfo{ID: name, OwnedBy: m.OwnedBy})
		}
	}
	return out
}

// Model returns one model the key may use.
func (g *Gateway) Model(key *keys.Key, name string) (ModelInfo, error) {
	m, ok := g.models[name]
	if !ok || !key.Allows(name) {
		return ModelInfo{}, modelNotFound(name)
	}
	return ModelInfo{ID: name, OwnedBy: m.OwnedBy}, nil
}

func (g *Gateway) resolve(key *keys.Key, name string, embedding bool) (*Model, error) {
	m, ok := g.models[name]
	if !ok {
		return nil, modelNotFound(name)
	}
	if !key.Allows(name) {
		return nil, &llm.Error{Status: http.StatusForbidden, Type: llm.TypePermission, Code: "model_not_allowed", Param: "model",
			Message: fmt.Sprintf("this API key may not use the model `%s`", name)}
	}
	if embedding && !m.Embeddings {
		return nil, &llm.Error{Status: http.StatusBadRequest, Type: llm.TypeInvalidRequest, Code: "model_not_supported", Param: "model",
			Message: fmt.Sprintf("the model `%s` is a chat model and does not serve embeddings", name)}
	}
	if !embedding && !m.Chat {
		return nil, &llm.Error{Status: http.StatusBadRequest, Type: llm.TypeInvalidRequest, Code: "model_not_supported", Param: "model",
			Message: fmt.Sprintf("the model `%s` is an embeddings model and does not serve chat completions", name)}
	}
	return m, nil
}

func modelNotFound(name string) error {
	return &llm.Error{Status: http.StatusNotFound, Type: llm.TypeInvalidRequest, Code: "model_not_found", Param: "model",
		Message: fmt.Sprintf("The model `%s` does not exist or you do not have access to it.", name)}
}

func (g *Gateway) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if g.timeout > 0 {
		return context.WithTimeout(ctx, g.timeout)
	}
	return context.WithCancel(ctx)
}

// upstreamErr turns our own deadline into a 504; a client that went away
// stays context.Canceled (logged as 499, never held against the upstream).
func (g *Gateway) upstreamErr(ctx context.Context, err error) error {
	if errors.Is(err, context.DeadlineExceeded) || (ctx.Err() == context.DeadlineExceeded && !errors.Is(err, context.Canceled)) {
		return &llm.Error{Status: http.StatusGatewayTimeout, Type: llm.TypeTimeout, Code: "upstream_timeout",
			Message: fmt.Sprintf("the upstream did not answer within the request timeout (%s)", g.timeout), Err: err}
	}
	return err
}
