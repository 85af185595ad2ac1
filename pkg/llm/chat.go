// Package llm is tollgate's shared vocabulary: the OpenAI-compatible request,
// response and stream-chunk types, token usage, money and the one error type
// that carries an HTTP meaning. It imports nothing of tollgate's own.
//
// Requests keep the exact bytes the client sent (Raw). The typed fields are a
// read-only view that the gateway uses to plan, count, cache and translate;
// an OpenAI-compatible upstream receives Raw with only the fields the gateway
// must change patched in place (see SetField), so any field tollgate does not
// know is passed through untouched, at any depth.
package llm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"unicode/utf8"
)

// ChatRequest is a parsed POST /v1/chat/completions body.
type ChatRequest struct {
	Model               string          `json:"model"`
	Messages            []Message       `json:"messages"`
	Stream              bool            `json:"stream,omitempty"`
	StreamOptions       *StreamOptions  `json:"stream_options,omitempty"`
	MaxTokens           *int            `json:"max_tokens,omitempty"`
	MaxCompletionTokens *int            `json:"max_completion_tokens,omitempty"`
	N                   *int            `json:"n,omitempty"`
	Temperature         *float64        `json:"temperature,omitempty"`
	TopP                *float64        `json:"top_p,omitempty"`
	Seed                *int64          `json:"seed,omitempty"`
	Stop                json.RawMessage `json:"stop,omitempty"` // string or array of strings
	Tools               []Tool          `json:"tools,omitempty"`
	ToolChoice          json.RawMessage `json:"tool_choice,omitempty"` // "auto" | "none" | "required" | object
	ParallelToolCalls   *bool           `json:"parallel_tool_calls,omitempty"`
	ResponseFormat      *ResponseFormat `json:"response_format,omitempty"`
	Logprobs            *bool           `json:"logprobs,omitempty"`
	TopLogprobs         *int            `json:"top_logprobs,omitempty"`
	User                string          `json:"user,omitempty"`
	ReasoningEffort     string          `json:"reasoning_effort,omitempty"` // "minimal" | "low" | "medium" | "high"

	// Raw is the request body exactly as the client sent it.
	Raw json.RawMessage `json:"-"`

	// ThinkingBudget is the exact reasoning budget in tokens when the
	// client spoke a wire format that has one (Anthropic's
	// thinking.budget_tokens); ReasoningEffort is its rounding for
	// OpenAI-style upstreams. In process only: not part of Raw.
	ThinkingBudget int `json:"-"`

	// ResponsesBody, when set, is the client's OpenAI Responses body as an
	// upstream that serves the Responses API natively should get it
	// (tollgate's own fields removed, store off, previous_response_id
	// expanded into input); the provider patches in the upstream's model
	// and the output cap. Upstreams without the Responses API get Raw, its
	// translation to chat. In process only.
	ResponsesBody json.RawMessage `json:"-"`
}

// StreamOptions is the stream_options object.
type StreamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

// ResponseFormat is the response_format object.
type ResponseFormat struct {
	Type       string          `json:"type"` // "text" | "json_object" | "json_schema"
	JSONSchema json.RawMessage `json:"json_schema,omitempty"`
}

// OutputLimit is the completion-token cap the client asked for
// (max_completion_tokens wins over the legacy max_tokens), or 0 when none.
func (r *ChatRequest) OutputLimit() int {
	if r.MaxCompletionTokens != nil {
		return *r.MaxCompletionTokens
	}
	if r.MaxTokens != nil {
		return *r.MaxTokens
	}
	return 0
}

// Choices is the number of completions asked for (n, default 1).
func (r *ChatRequest) Choices() int {
	if r.N == nil || *r.N < 1 {
		return 1
	}
	return *r.N
}

// HasImages reports whether any message carries an image part.
func (r *ChatRequest) HasImages() bool {
	for i := range r.Messages {
		for _, p := range r.Messages[i].Content.Parts {
			if p.Type == "image_url" {
				return true
			}
		}
	}
	return false
}

// StopSequences returns the stop sequences whether sent as a string or an array.
func (r *ChatRequest) StopSequences() []string {
	if len(r.Stop) == 0 || string(r.Stop) == "null" {
		return nil
	}
	var one string
	if err := json.Unmarshal(r.Stop, &one); err == nil {
		return []string{one}
	}
	var many []string
	_ = json.Unmarshal(r.Stop, &many) // validated by DecodeChatRequest
	return many
}

// Message is one entry of messages.
type Message struct {
	Role       string     `json:"role"`
	Content    Content    `json:"content"`
	Name       string     `json:"name,omitempty"`
	ToolCalls  []ToolCall `json:"tool_calls,omitempty"`
	ToolCallID string     `json:"tool_call_id,omitempty"`
	Refusal    *string    `json:"refusal,omitempty"`
	// ReasoningContent is the model's reasoning text, as OpenAI-style
	// reasoning upstreams (DeepSeek, vLLM) report it and as tollgate
	// reports an Anthropic upstream's thinking blocks.
	ReasoningContent string `json:"reasoning_content,omitempty"`
	// ReasoningSignature is Anthropic's signature of the reasoning, which
	// an Anthropic upstream needs to accept the reasoning back in a later
	// turn. In process only: an OpenAI-style upstream never sees it.
	ReasoningSignature string `json:"-"`
	// CacheControl is Anthropic's prompt-cache breakpoint on a tool
	// message's result (cache_control); see ContentPart.CacheControl.
	CacheControl json.RawMessage `json:"-"`
}

// Content is a message's content: a plain string, an array of parts, or null.
type Content struct {
	Text  string
	Parts []ContentPart // non-nil when the content is an array of parts
	Null  bool          // absent or JSON null (e.g. an assistant message that only calls tools)
}

// TextContent returns string content.
func TextContent(s string) Content { return Content{Text: s} }

// String returns the text of the content: the string itself, or the text
// parts joined with newlines.
func (c Content) String() string {
	if c.Parts == nil {
		return c.Text
	}
	var b bytes.Buffer
	for _, p := range c.Parts {
		if p.Type != "text" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(p.Text)
	}
	return b.String()
}

// UnmarshalJSON accepts a string, an array of parts or null.
func (c *Content) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	switch {
	case len(data) == 0 || string(data) == "null":
		*c = Content{Null: true}
		return nil
	case data[0] == '"':
		*c = Content{}
		// Most content is a plain string: take it without a second parse.
		if len(data) >= 2 && data[len(data)-1] == '"' {
			if inner := data[1 : len(data)-1]; bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
				c.Text = string(inner)
				return nil
			}
		}
		return json.Unmarshal(data, &c.Text)
	case data[0] == '[':
		var parts []ContentPart
		if err := json.Unmarshal(data, &parts); err != nil {
			return err
		}
		if parts == nil {
			parts = []ContentPart{}
		}
		*c = Content{Parts: parts}
		return nil
	}
	return errors.New("content must be a string, an array of content parts or null")
}

// MarshalJSON writes the content in the form it was given.
func (c Content) MarshalJSON() ([]byte, error) {
	switch {
	case c.Parts != nil:
		return json.Marshal(c.Parts)
	case c.Null:
		return []byte("null"), nil
	}
	return json.Marshal(c.Text)
}

// ContentPart is one element of an array content.
type ContentPart struct {
	Type     string    `json:"type"` // "text" | "image_url" | "input_audio" | "file" | ...
	Text     string    `json:"text,omitempty"`
	ImageURL *ImageURL `json:"image_url,omitempty"`
	File     *File     `json:"file,omitempty"`
	// CacheControl is Anthropic's prompt-cache breakpoint on the block
	// the part came from (cache_control), kept for an Anthropic upstream.
	// In process only: OpenAI-style upstreams cache on their own.
	CacheControl json.RawMessage `json:"-"`
}

// File is a file part's file: inline data (a base64 data URL, e.g. a PDF)
// or the id of an uploaded file.
type File struct {
	FileData string `json:"file_data,omitempty"`
	FileID   string `json:"file_id,omitempty"`
	Filename string `json:"filename,omitempty"`
}

// ImageURL is an image part's image.
type ImageURL struct {
	URL    string `json:"url"`
	Detail string `json:"detail,omitempty"` // "auto" | "low" | "high"
}

// Tool is one entry of tools.
type Tool struct {
	Type     string      `json:"type"`
	Function FunctionDef `json:"function"`
	// CacheControl: as in ContentPart.
	CacheControl json.RawMessage `json:"-"`
}

// FunctionDef describes a callable function.
type FunctionDef struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters,omitempty"`
	Strict      *bool           `json:"strict,omitempty"`
}

// ToolCall is a tool call made by the assistant. In stream deltas Index says
// which call a fragment continues.
type ToolCall struct {
	Index    *int         `json:"index,omitempty"`
	ID       string       `json:"id,omitempty"`
	Type     string       `json:"type,omitempty"`
	Function FunctionCall `json:"function"`
}

// FunctionCall is the function part of a tool call.
type FunctionCall struct {
	Name      string `json:"name,omitempty"`
	Arguments string `json:"arguments"`
}

// ChatResponse is a non-streamed chat completion.
type ChatResponse struct {
	ID                string   `json:"id"`
	Object            string   `json:"object"`
	Created           int64    `json:"created"`
	Model             string   `json:"model"`
	Choices           []Choice `json:"choices"`
	Usage             *Usage   `json:"usage,omitempty"`
	SystemFingerprint string   `json:"system_fingerprint,omitempty"`

	// Raw, when set, is the upstream body in OpenAI's format; the gateway
	// sends it verbatim so provider-specific fields survive.
	Raw json.RawMessage `json:"-"`

	// ResponsesOutput, when set, is the output array of an upstream's
	// Responses answer, byte for byte (reasoning items with their
	// encrypted content, messages with their annotations), which a
	// Responses client gets verbatim; the typed fields hold its text, tool
	// calls and usage for accounting and the caches. In process only.
	ResponsesOutput json.RawMessage `json:"-"`
}

// Choice is one completion of a ChatResponse.
type Choice struct {
	Index        int             `json:"index"`
	Message      Message         `json:"message"`
	FinishReason string          `json:"finish_reason"`
	Logprobs     json.RawMessage `json:"logprobs,omitempty"`
	// StopSequence is which stop sequence ended the choice, when the
	// upstream said (Anthropic does; OpenAI reports only "stop"). In
	// process only.
	StopSequence string `json:"-"`
}

// ChatChunk is one event of a streamed chat completion.
type ChatChunk struct {
	ID                string        `json:"id"`
	Object            string        `json:"object"`
	Created           int64         `json:"created"`
	Model             string        `json:"model"`
	Choices           []ChunkChoice `json:"choices"`
	Usage             *Usage        `json:"usage,omitempty"`
	SystemFingerprint string        `json:"system_fingerprint,omitempty"`

	// Raw, when set, is the event's data in OpenAI's format, sent verbatim.
	Raw json.RawMessage `json:"-"`

	// ResponsesEvent, when set, is one event of an upstream's Responses
	// stream, byte for byte, which a Responses client is relayed; the
	// typed fields hold what it adds to the answer (text, tool calls,
	// finish reason, usage) for accounting and the caches. In process
	// only.
	ResponsesEvent json.RawMessage `json:"-"`
}

// ChunkChoice is one choice's delta in a ChatChunk.
type ChunkChoice struct {
	Index        int             `json:"index"`
	Delta        Delta           `json:"delta"`
	FinishReason *string         `json:"finish_reason"`
	Logprobs     json.RawMessage `json:"logprobs,omitempty"`
	StopSequence string          `json:"-"` // as in Choice
}

// Delta is the incremental message of a ChunkChoice.
type Delta struct {
	Role      string     `json:"role,omitempty"`
	Content   *string    `json:"content,omitempty"`
	ToolCalls []ToolCall `json:"tool_calls,omitempty"`
	Refusal   *string    `json:"refusal,omitempty"`
	// ReasoningContent and ReasoningSignature: as in Message.
	ReasoningContent   *string `json:"reasoning_content,omitempty"`
	ReasoningSignature string  `json:"-"`
}

// Usage is the token usage a provider reported. A nil *Usage means the
// provider reported none, which is not the same as zero usage.
type Usage struct {
	PromptTokens            int                      `json:"prompt_tokens"`
	CompletionTokens        int                      `json:"completion_tokens"`
	TotalTokens             int                      `json:"total_tokens"`
	PromptTokensDetails     *PromptTokensDetails     `json:"prompt_tokens_details,omitempty"`
	CompletionTokensDetails *CompletionTokensDetails `json:"completion_tokens_details,omitempty"`
}

// PromptTokensDetails breaks prompt tokens down.
type PromptTokensDetails struct {
	CachedTokens int `json:"cached_tokens"`
	AudioTokens  int `json:"audio_tokens,omitempty"`
	// CacheWriteTokens are prompt tokens written to a provider's prompt cache
	// (Anthropic's cache_creation_input_tokens); OpenAI does not report it.
	CacheWriteTokens int `json:"cache_write_tokens,omitempty"`
}

// CompletionTokensDetails breaks completion tokens down.
type CompletionTokensDetails struct {
	ReasoningTokens int `json:"reasoning_tokens"`
	AudioTokens     int `json:"audio_tokens,omitempty"`
}

// CachedTokens returns prompt tokens served from the provider's prompt cache.
func (u *Usage) CachedTokens() int {
	if u == nil || u.PromptTokensDetails == nil {
		return 0
	}
	return u.PromptTokensDetails.CachedTokens
}

// DecodeChatRequest parses and validates a chat completion body. Every
// problem is an *Error with status 400 naming the offending parameter,
// keys repeated or spelled in another case included (see CheckKeys).
func DecodeChatRequest(body []byte) (*ChatRequest, error) {
	return DecodeChatRequestWith(body, json.Unmarshal)
}

// DecodeChatRequestWith is DecodeChatRequest with a faster unmarshaller
// that behaves like encoding/json on valid input (the HTTP layer passes
// one). When it fails, the body is decoded again with encoding/json, so
// error messages are always encoding/json's, naming the field.
func DecodeChatRequestWith(body []byte, unmarshal func([]byte, any) error) (*ChatRequest, error) {
	var req ChatRequest
	if err := unmarshal(body, &req); err != nil {
		req = ChatRequest{}
		if err := json.Unmarshal(body, &req); err != nil {
			return nil, decodeError(err)
		}
	}
	// After the decode, so the body is known to be JSON and a syntax error
	// is reported as such.
	if err := CheckKeys(body, chatShape); err != nil {
		return nil, err
	}
	req.Raw = body
	if err := req.validate(); err != nil {
		return nil, err
	}
	return &req, nil
}

func (r *ChatRequest) validate() error {
	if r.Model == "" {
		return InvalidParam("model", "you must provide a model parameter")
	}
	if r.Messages == nil {
		return InvalidParam("messages", "missing required parameter: 'messages'")
	}
	if len(r.Messages) == 0 {
		return InvalidParam("messages", "'messages' must contain at least one message")
	}
	for i := range r.Messages {
		m := &r.Messages[i]
		param := fmt.Sprintf("messages[%d]", i)
		switch m.Role {
		case "system", "developer", "user", "assistant", "tool", "function":
		case "":
			return InvalidParam(param+".role", "missing required parameter: '"+param+".role'")
		default:
			return InvalidParam(param+".role", fmt.Sprintf("invalid role %q: expected one of system, developer, user, assistant, tool", Clip(m.Role, maxQuoted)))
		}
		if m.Role == "tool" && m.ToolCallID == "" {
			return InvalidParam(param+".tool_call_id", "messages with role 'tool' must have a 'tool_call_id'")
		}
		if m.Content.Null && m.Role != "assistant" {
			return InvalidParam(param+".content", "missing content for a message with role '"+m.Role+"'")
		}
		for j, p := range m.Content.Parts {
			if p.Type == "" {
				return InvalidParam(fmt.Sprintf("%s.content[%d].type", param, j), "missing content part type")
			}
			if p.Type == "image_url" && (p.ImageURL == nil || p.ImageURL.URL == "") {
				return InvalidParam(fmt.Sprintf("%s.content[%d].image_url", param, j), "image_url parts need an image_url.url")
			}
		}
	}
	for i, t := range r.Tools {
		if t.Type != "function" && t.Type != "custom" {
			return InvalidParam(fmt.Sprintf("tools[%d].type", i), fmt.Sprintf("invalid tool type %q", Clip(t.Type, maxQuoted)))
		}
		if t.Type == "function" && t.Function.Name == "" {
			return InvalidParam(fmt.Sprintf("tools[%d].function.name", i), "missing required parameter: function name")
		}
	}
	if r.N != nil && (*r.N < 1 || *r.N > 128) {
		return InvalidParam("n", "n must be between 1 and 128")
	}
	for _, p := range []struct {
		name string
		v    *int
	}{{"max_tokens", r.MaxTokens}, {"max_completion_tokens", r.MaxCompletionTokens}} {
		if p.v != nil && *p.v < 1 {
			return InvalidParam(p.name, p.name+" must be at least 1")
		}
	}
	if r.StreamOptions != nil && !r.Stream {
		return InvalidParam("stream_options", "stream_options is only allowed when stream is true")
	}
	if len(r.Stop) > 0 && string(r.Stop) != "null" {
		var one string
		var many []string
		if json.Unmarshal(r.Stop, &one) != nil && json.Unmarshal(r.Stop, &many) != nil {
			return InvalidParam("stop", "stop must be a string or an array of strings")
		}
	}
	return nil
}

// JSONType names a Go type the way a JSON user thinks of it.
func JSONType(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	}
	return "an object"
}

// decodeError turns a JSON error into a 400 that names the field.
func decodeError(err error) error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		field := Clip(typeErr.Field, 4*maxQuoted) // map keys are the client's
		if field == "" {
			return &Error{Status: 400, Type: TypeInvalidRequest, Message: "the request body must be a JSON object", Err: err}
		}
		return InvalidParam(field, fmt.Sprintf("invalid type for '%s': expected %s, got %s", field, JSONType(typeErr.Type), Clip(typeErr.Value, maxQuoted)))
	case errors.As(err, &syntaxErr):
		return &Error{Status: 400, Type: TypeInvalidRequest, Message: fmt.Sprintf("we could not parse the JSON body of your request (%v at offset %d)", syntaxErr, syntaxErr.Offset), Err: err}
	}
	return &Error{Status: 400, Type: TypeInvalidRequest, Message: "we could not parse the JSON body of your request: " + err.Error(), Err: err}
}
