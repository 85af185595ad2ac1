// Package gateway is tollgate's request flow and nothing else: given an
// authenticated key and a parsed request, it resolves the model, calls the
// upstream and reports what happened (Meta). It reads top to bottom in Chat,
// Stream and Embed; the leaf packages do the work.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"time"

	"github.com/tollgate/tollgate/pkg/keys"
	"github.com/tollgate/tollgate/pkg/llm"
	"github.com/tollgate/tollgate/pkg/providers"
)

// Deployment is one way to serve a model: an upstream and the name it knows
// the model by.
type Deployment struct {
	Provider providers.Provider
	Upstream string
}

// Model is a model the gateway serves.
type Model struct {
	Name        string
	Embedding   bool // an embeddings model, not a chat model
	OwnedBy     string
	Deployments []Deployment
}

// Options wires a Gateway.
type Options struct {
	Models []*Model
	// RequestTimeout bounds one request end to end; 0 means none.
	RequestTimeout time.Duration
	Logger         *slog.Logger
	Now            func() time.Time
}

// Gateway serves chat, stream and embedding requests. Safe for concurrent use.
type Gateway struct {
	models  map[string]*Model
	names   []string
	timeout time.Duration
	log     *slog.Logger
	now     func() time.Time
}

// New builds a Gateway.
func New(o Options) (*Gateway, error) {
	g := &Gateway{models: map[string]*Model{}, timeout: o.RequestTimeout, log: o.Logger, now: o.Now}
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
	Model    string // the model that served the request
	Provider string
	Attempts int
	Usage    *llm.Usage // as the provider reported it; nil when it reported none
}

// Chat serves a non-streamed chat completion.
func (g *Gateway) Chat(ctx context.Context, key *keys.Key, req *llm.ChatRequest) (*llm.ChatResponse, *Meta, error) {
	m, err := g.resolve(key, req.Model, false)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := g.withTimeout(ctx)
	defer cancel()

	d := m.Deployments[0]
	meta := &Meta{Model: m.Name, Provider: d.Provider.Name(), Attempts: 1}
	resp, err := d.Provider.Chat(ctx, &providers.Request{Chat: req, Model: d.Upstream})
	if err != nil {
		return nil, meta, g.upstreamErr(ctx, err)
	}
	meta.Usage = resp.Usage
	return resp, meta, nil
}

// Stream is a streamed completion as the client should see it. Meta is
// complete once Recv has returned io.EOF.
type Stream struct {
	Meta *Meta

	up        providers.Stream
	cancel    context.CancelFunc
	ctx       context.Context
	g         *Gateway
	wantUsage bool // the client asked for the usage chunk
}

// Stream opens a streamed chat completion. The upstream is always asked for
// usage (so the cost is exact); the usage chunk is passed on only when the
// client asked for it.
func (g *Gateway) Stream(ctx context.Context, key *keys.Key, req *llm.ChatRequest) (*Stream, error) {
	m, err := g.resolve(key, req.Model, false)
	if err != nil {
		return nil, err
	}
	ctx, cancel := g.withTimeout(ctx)
	d := m.Deployments[0]
	meta := &Meta{Model: m.Name, Provider: d.Provider.Name(), Attempts: 1}
	up, err := d.Provider.Stream(ctx, &providers.Request{Chat: req, Model: d.Upstream, IncludeUsage: true})
	if err != nil {
		cancel()
		return nil, g.upstreamErr(ctx, err)
	}
	wantUsage := req.StreamOptions != nil && req.StreamOptions.IncludeUsage
	return &Stream{Meta: meta, up: up, cancel: cancel, ctx: ctx, g: g, wantUsage: wantUsage}, nil
}

// Recv returns the next chunk for the client, io.EOF at the end.
func (s *Stream) Recv() (*llm.ChatChunk, error) {
	for {
		c, err := s.up.Recv()
		if err != nil {
			if err == io.EOF {
				return nil, io.EOF
			}
			return nil, s.g.upstreamErr(s.ctx, err)
		}
		if c.Usage != nil {
			s.Meta.Usage = c.Usage
			if !s.wantUsage {
				if len(c.Choices) == 0 {
					continue // the usage-only chunk the client did not ask for
				}
				stripped := *c
				stripped.Usage, stripped.Raw = nil, nil
				return &stripped, nil
			}
		}
		return c, nil
	}
}

// Close releases the upstream stream.
func (s *Stream) Close() error {
	err := s.up.Close()
	s.cancel()
	return err
}

// Embed serves an embeddings request.
func (g *Gateway) Embed(ctx context.Context, key *keys.Key, req *llm.EmbeddingRequest) (*llm.EmbeddingResponse, *Meta, error) {
	m, err := g.resolve(key, req.Model, true)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := g.withTimeout(ctx)
	defer cancel()
	d := m.Deployments[0]
	meta := &Meta{Model: m.Name, Provider: d.Provider.Name(), Attempts: 1}
	emb, ok := d.Provider.(providers.Embedder)
	if !ok {
		return nil, meta, llm.Errorf(http.StatusBadRequest, llm.TypeInvalidRequest, "model_not_supported",
			"provider %s of model %s does not serve embeddings", d.Provider.Name(), m.Name)
	}
	resp, err := emb.Embed(ctx, &providers.EmbedRequest{Embedding: req, Model: d.Upstream})
	if err != nil {
		return nil, meta, g.upstreamErr(ctx, err)
	}
	meta.Usage = resp.Usage
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
	if m.Embedding != embedding {
		what := "a chat model"
		if m.Embedding {
			what = "an embeddings model"
		}
		return nil, &llm.Error{Status: http.StatusBadRequest, Type: llm.TypeInvalidRequest, Code: "model_not_supported", Param: "model",
			Message: fmt.Sprintf("the model `%s` is %s and cannot serve this endpoint", name, what)}
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
