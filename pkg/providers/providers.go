// Package providers owns tollgate's side of every upstream call: the
// Provider interface the gateway calls (chat, streams and, as optional
// capabilities, embeddings and OpenAI's Responses API passed through),
// one OpenAI-compatible HTTP client configured per
// upstream (OpenAI, Azure OpenAI, OpenRouter, Groq, Together, Mistral,
// DeepSeek, Ollama, vLLM, ...), a translator for Anthropic's Messages API
// that shares its HTTP exchange and stream lifecycle (upstream, sseStream),
// the mapping of upstream failures to *llm.Error, and Sim, a deterministic
// simulated provider for demos, tests and benchmarks (also servable over
// HTTP with SimHandler).
//
// Requests travel as the client's exact bytes with only the fields the
// gateway must change patched in, so parameters tollgate does not know reach
// the upstream untouched. Responses keep the upstream's bytes in Raw for the
// same reason.
package providers

import (
	"context"
	"time"

	"github.com/tollgate/tollgate/pkg/llm"
)

// Request is one call to one upstream deployment.
type Request struct {
	Chat         *llm.ChatRequest // the client's parsed request; Chat.Raw is the exact client body
	Model        string           // the model name the upstream knows (replaces Chat.Model on the wire)
	IncludeUsage bool             // streams: ask the upstream for a final usage chunk even if the client did not
	MaxTokens    int              // the output tokens per choice the gateway reserved (0: none); every wire format sends at most this as the output cap (see OutputLimit)
	APIKey       string           // optional per-request credential (bring-your-own-key); overrides the configured key for this call only; never logged
	IdleTimeout  time.Duration    // streams: the silence allowed between two events, replacing the provider's (0: the provider's)
}

// Provider is an upstream that serves chat completions.
type Provider interface {
	Name() string
	Chat(ctx context.Context, req *Request) (*llm.ChatResponse, error)
	Stream(ctx context.Context, req *Request) (Stream, error)
}

// Stream is pull-style: Recv returns chunks in order, io.EOF after the
// upstream's final event ([DONE]).
type Stream interface {
	Recv() (*llm.ChatChunk, error)
	Close() error // releases the upstream connection; safe to call twice and before EOF
}

// Embedder is an optional capability, found by type assertion.
type Embedder interface {
	Embed(ctx context.Context, req *EmbedRequest) (*llm.EmbeddingResponse, error)
}

// Responder is an optional capability, found by type assertion: an
// upstream that serves OpenAI's Responses API itself. The gateway sends a
// request that carries a Responses body (llm.ChatRequest.ResponsesBody)
// through it instead of Chat or Stream when ServesResponses says so, and
// every other request through Chat and Stream.
type Responder interface {
	// ServesResponses reports whether this upstream is configured to be
	// sent Responses bodies.
	ServesResponses() bool
	// Respond sends a non-streamed Responses request; the answer's typed
	// fields are its chat equivalent, ResponsesOutput its output items.
	Respond(ctx context.Context, req *Request) (*llm.ChatResponse, error)
	// StreamResponse sends a streamed one; every chunk carries one of the
	// upstream's events in ResponsesEvent.
	StreamResponse(ctx context.Context, req *Request) (Stream, error)
}

// EmbedRequest is one embeddings call to one upstream deployment.
type EmbedRequest struct {
	Embedding *llm.EmbeddingRequest // Embedding.Raw is the client's body
	Model     string
	APIKey    string
}

var (
	_ Provider  = (*OpenAI)(nil)
	_ Embedder  = (*OpenAI)(nil)
	_ Responder = (*OpenAI)(nil)
	_ Provider  = (*Sim)(nil)
	_ Embedder  = (*Sim)(nil)
	_ format    = (*OpenAI)(nil)
	_ format    = (*Anthropic)(nil)

	_ eventDecoder = openAIEvents{}
	_ eventDecoder = (*antTranslator)(nil)
	_ eventDecoder = (*responsesEvents)(nil)
)
