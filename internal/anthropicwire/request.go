package anthropicwire

import (
	"bytes"
	"encoding/json"
	"errors"
	"sync"
)

// The Messages request, one set of types for both directions: the HTTP
// layer decodes clients' bodies into them strictly (json.Decoder's
// DisallowUnknownFields, which is about unknown keys, not tags: omitempty
// changes nothing when decoding), and the provider encodes them for
// Anthropic upstreams. Fields are in the order Anthropic documents them,
// so the encoded bytes are stable (golden files pin them); every field an
// upstream may go without is omitempty, so what the provider leaves unset
// (top_k, service_tier, a block's citations, ...) is not sent. Pointers
// are for what a decoder must tell apart from zero (max_tokens absent or
// 0, stream false or absent).

// Request is a Messages request body.
type Request struct {
	Model         string          `json:"model"`
	MaxTokens     *int            `json:"max_tokens,omitempty"`
	System        *Content        `json:"system,omitempty"` // a string, or text blocks
	Messages      []Message       `json:"messages"`
	Tools         []Tool          `json:"tools,omitempty"`
	ToolChoice    *ToolChoice     `json:"tool_choice,omitempty"`
	StopSequences []string        `json:"stop_sequences,omitempty"`
	Temperature   *float64        `json:"temperature,omitempty"`
	TopK          *int            `json:"top_k,omitempty"`
	TopP          *float64        `json:"top_p,omitempty"`
	Metadata      *Metadata       `json:"metadata,omitempty"`
	OutputConfig  *OutputConfig   `json:"output_config,omitempty"`
	Thinking      *Thinking       `json:"thinking,omitempty"`
	ServiceTier   *string         `json:"service_tier,omitempty"`
	CacheControl  json.RawMessage `json:"cache_control,omitempty"`
	Stream        *bool           `json:"stream,omitempty"`
}

// Message is one turn.
type Message struct {
	Role    string  `json:"role"` // user | assistant
	Content Content `json:"content"`
}

// Content is a string or an array of content blocks: a message's content,
// the system prompt, a tool result's content. Text is the string form,
// Blocks the array form when IsBlocks.
//
// MarshalJSON has a pointer receiver (it encodes without copying the
// value), so encode Contents through a pointer (a *Request, a []Message):
// a Content marshalled by value would not use it.
type Content struct {
	Text     string
	Blocks   []Block
	IsBlocks bool
}

// TextContent is content in the string form.
func TextContent(s string) Content { return Content{Text: s} }

// BlockContent is content in the array form.
func BlockContent(blocks []Block) Content { return Content{Blocks: blocks, IsBlocks: true} }

// UnmarshalJSON reads a string or an array of blocks, the blocks as
// strictly as the body around them (unknown fields refused).
func (c *Content) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	switch {
	case len(data) > 0 && data[0] == '"':
		*c = Content{}
		return json.Unmarshal(data, &c.Text)
	case len(data) > 0 && data[0] == '[':
		*c = Content{IsBlocks: true}
		return decodeStrict(data, &c.Blocks)
	}
	return errors.New("content must be a string or an array of content blocks")
}

// MarshalJSON writes the string or the blocks, without HTML escaping (an
// encoder that escapes, such as json.Marshal, escapes the result again).
func (c *Content) MarshalJSON() ([]byte, error) {
	if c.IsBlocks {
		if c.Blocks == nil {
			return []byte("[]"), nil
		}
		return marshalNoEscape(&c.Blocks)
	}
	return marshalNoEscape(&c.Text)
}

// Block is any request content block: text, image, document, tool_use,
// tool_result, thinking, redacted_thinking. Which fields may be set
// depends on Type; the HTTP layer checks them.
type Block struct {
	Type         string          `json:"type"`
	Text         string          `json:"text,omitempty"`
	Thinking     string          `json:"thinking,omitempty"`
	Signature    string          `json:"signature,omitempty"`
	Data         string          `json:"data,omitempty"` // redacted_thinking
	Source       *Source         `json:"source,omitempty"`
	Title        string          `json:"title,omitempty"` // document
	Context      string          `json:"context,omitempty"`
	Citations    json.RawMessage `json:"citations,omitempty"`
	ID           string          `json:"id,omitempty"`
	Name         string          `json:"name,omitempty"`
	Input        json.RawMessage `json:"input,omitempty"`
	ToolUseID    string          `json:"tool_use_id,omitempty"`
	Content      *Content        `json:"content,omitempty"` // tool_result: a string or blocks
	IsError      *bool           `json:"is_error,omitempty"`
	CacheControl json.RawMessage `json:"cache_control,omitempty"` // a prompt-cache breakpoint
}

// Source is an image's or a document's source.
type Source struct {
	Type      string `json:"type"` // base64 | url | text
	MediaType string `json:"media_type,omitempty"`
	Data      string `json:"data,omitempty"`
	URL       string `json:"url,omitempty"`
}

// Tool is a client tool. Server tools (a Type other than "" or "custom")
// are not part of tollgate's vocabulary.
type Tool struct {
	Type         string          `json:"type,omitempty"`
	Name         string          `json:"name"`
	Description  string          `json:"description,omitempty"`
	InputSchema  json.RawMessage `json:"input_schema"`
	Strict       *bool           `json:"strict,omitempty"`
	CacheControl json.RawMessage `json:"cache_control,omitempty"`
}

// ToolChoice is how the model may use the tools.
type ToolChoice struct {
	Type                   string `json:"type"` // auto | any | tool | none
	Name                   string `json:"name,omitempty"`
	DisableParallelToolUse *bool  `json:"disable_parallel_tool_use,omitempty"`
}

// Thinking is extended thinking's setting.
type Thinking struct {
	Type         string `json:"type"` // enabled | disabled | adaptive
	BudgetTokens int    `json:"budget_tokens,omitempty"`
}

// Metadata is a request's metadata.
type Metadata struct {
	UserID string `json:"user_id,omitempty"`
}

// OutputConfig is output_config: a JSON schema the answer must follow,
// and how much effort the model spends.
type OutputConfig struct {
	Effort string        `json:"effort,omitempty"`
	Format *OutputFormat `json:"format,omitempty"`
}

// OutputFormat is structured outputs' format.
type OutputFormat struct {
	Type   string          `json:"type"` // json_schema
	Schema json.RawMessage `json:"schema"`
}

// True is a value for the optional flags (Stream,
// DisableParallelToolUse) an encoder sets without allocating.
var True = true

// decodeStrict decodes data into v, refusing unknown fields. data is one
// JSON value (the decoder of the body around it cut it out), so nothing
// can follow it.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// noEscape is an encoder without HTML escaping and its buffer, reused.
type noEscape struct {
	buf bytes.Buffer
	enc *json.Encoder
}

var noEscapes = sync.Pool{New: func() any {
	e := &noEscape{}
	e.enc = json.NewEncoder(&e.buf)
	e.enc.SetEscapeHTML(false)
	return e
}}

// maxPooled is the largest buffer kept for reuse: one message with a
// large image should not pin its size in the pool.
const maxPooled = 64 << 10

// marshalNoEscape is llm.MarshalNoEscape with a pooled encoder: a
// Content's MarshalJSON runs once a message, so it costs one allocation
// (the result) rather than an encoder and a buffer each time.
func marshalNoEscape(v any) ([]byte, error) {
	e := noEscapes.Get().(*noEscape)
	e.buf.Reset()
	err := e.enc.Encode(v)
	out := bytes.Clone(bytes.TrimSuffix(e.buf.Bytes(), []byte("\n")))
	if e.buf.Cap() <= maxPooled {
		noEscapes.Put(e)
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}
