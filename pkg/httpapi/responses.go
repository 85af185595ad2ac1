package httpapi

// OpenAI's Responses API (POST /v1/responses, GET and DELETE
// /v1/responses/{id}), translated to a chat completion: the request is
// decoded strictly, turned into the internal chat request and sent through
// the same gateway flow as /v1/chat/completions (budgets, rate limits,
// caches, breakers, fallbacks); the chat answer is turned back into a
// response object, or, streamed, into the Responses event sequence
// (responses_stream.go). A deployment whose upstream serves the Responses
// API itself is sent the client's body instead and its answer relayed
// (responses_native.go). Answers with store (the default, as OpenAI's) are
// kept per key for previous_response_id and GET (package responses).

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/tollgate/tollgate/pkg/gateway"
	"github.com/tollgate/tollgate/pkg/llm"
	"github.com/tollgate/tollgate/pkg/responses"
)

// responsesRequest is a POST /v1/responses body. Every field tollgate
// reads or refuses is named here; any other is a 400.
type responsesRequest struct {
	Model              string              `json:"model"`
	Input              json.RawMessage     `json:"input"` // a string or an array of items
	Instructions       *string             `json:"instructions,omitempty"`
	RawTools           []json.RawMessage   `json:"tools,omitempty"` // read into tools by validate
	ToolChoice         json.RawMessage     `json:"tool_choice,omitempty"`
	ParallelToolCalls  *bool               `json:"parallel_tool_calls,omitempty"`
	Text               *responsesText      `json:"text,omitempty"`
	Reasoning          *responsesReasoning `json:"reasoning,omitempty"`
	MaxOutputTokens    *int                `json:"max_output_tokens,omitempty"`
	Temperature        *float64            `json:"temperature,omitempty"`
	TopP               *float64            `json:"top_p,omitempty"`
	Metadata           map[string]string   `json:"metadata,omitempty"`
	Store              *bool               `json:"store,omitempty"`
	PreviousResponseID *string             `json:"previous_response_id,omitempty"`
	Stream             bool                `json:"stream,omitempty"`
	StreamOptions      *struct {
		IncludeObfuscation *bool `json:"include_obfuscation,omitempty"`
	} `json:"stream_options,omitempty"`
	User             string   `json:"user,omitempty"`
	Include          []string `json:"include,omitempty"`
	Truncation       string   `json:"truncation,omitempty"`
	ServiceTier      string   `json:"service_tier,omitempty"`
	PromptCacheKey   string   `json:"prompt_cache_key,omitempty"`
	SafetyIdentifier string   `json:"safety_identifier,omitempty"`

	// Known to OpenAI, not served by a translation to chat: refused by name.
	Background   *bool           `json:"background,omitempty"`
	Conversation json.RawMessage `json:"conversation,omitempty"`
	Prompt       json.RawMessage `json:"prompt,omitempty"`
	MaxToolCalls *int            `json:"max_tool_calls,omitempty"`
	TopLogprobs  *int            `json:"top_logprobs,omitempty"`

	items []inputItem     // Input as items (a string is one user message)
	tools []responsesTool // the function tools of RawTools
	raw   []byte          // the body as sent, the base of a native upstream's (nativeBody)
}

// responsesTool is a function tool, in the Responses shape (flat, not
// nested under "function").
type responsesTool struct {
	Type        string          `json:"type"`
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters,omitempty"`
	Strict      *bool           `json:"strict,omitempty"`
}

type responsesText struct {
	Format    *responsesFormat `json:"format,omitempty"`
	Verbosity string           `json:"verbosity,omitempty"`
}

// responsesFormat is text.format: text, json_object or json_schema (whose
// name, schema, description and strict sit next to type).
type responsesFormat struct {
	Type        string          `json:"type"`
	Name        string          `json:"name,omitempty"`
	Schema      json.RawMessage `json:"schema,omitempty"`
	Description string          `json:"description,omitempty"`
	Strict      *bool           `json:"strict,omitempty"`
}

type responsesReasoning struct {
	Effort          *string `json:"effort,omitempty"`
	Summary         *string `json:"summary,omitempty"`
	GenerateSummary *string `json:"generate_summary,omitempty"` // deprecated spelling of summary
}

// inputItem is one element of input: a message (type "message" or none),
// a function_call the model made, a function_call_output answering it, or
// a reasoning item a client sends back (dropped: chat has no such turn).
type inputItem struct {
	Type             string          `json:"type,omitempty"`
	ID               string          `json:"id,omitempty"`
	Status           string          `json:"status,omitempty"`
	Role             string          `json:"role,omitempty"`
	Content          json.RawMessage `json:"content,omitempty"`
	CallID           string          `json:"call_id,omitempty"`
	Name             string          `json:"name,omitempty"`
	Arguments        *string         `json:"arguments,omitempty"`
	Output           json.RawMessage `json:"output,omitempty"`
	Summary          json.RawMessage `json:"summary,omitempty"`
	EncryptedContent *string         `json:"encrypted_content,omitempty"`

	parts  []inputPart // a message's content, read by validate
	output string      // a function_call_output's output, read by validate
}

// inputPart is one element of a message's content array.
type inputPart struct {
	Type        string          `json:"type"`
	Text        *string         `json:"text,omitempty"`
	ImageURL    *string         `json:"image_url,omitempty"`
	FileID      string          `json:"file_id,omitempty"`
	Detail      string          `json:"detail,omitempty"`
	Refusal     *string         `json:"refusal,omitempty"`
	Annotations json.RawMessage `json:"annotations,omitempty"` // an output_text sent back
	Logprobs    json.RawMessage `json:"logprobs,omitempty"`
}

var (
	responsesShape = llm.ShapeOf(reflect.TypeFor[responsesRequest]())
	itemsShape     = llm.ShapeOf(reflect.TypeFor[[]inputItem]())
	itemShape      = llm.ShapeOf(reflect.TypeFor[inputItem]())
	toolShape      = llm.ShapeOf(reflect.TypeFor[responsesTool]())
	partsShape     = llm.ShapeOf(reflect.TypeFor[[]inputPart]())
)

// strictJSON decodes data into v refusing unknown fields and trailing
// data, then refuses keys repeated or spelled in another case (CheckKeys):
// the Responses and legacy completions bodies are translated, not passed
// on, so nothing tollgate does not read may be silently dropped.
func strictJSON(data []byte, v any, shape *llm.Shape) error {
	if err := strictUnmarshal(data, v); err != nil {
		return decodeFailure(err)
	}
	return llm.CheckKeys(data, shape)
}

// decodeFailure is a JSON error as a 400 naming the field.
func decodeFailure(err error) error {
	msg := err.Error()
	if field, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		name := strings.Trim(field, `"`)
		return &llm.Error{Status: http.StatusBadRequest, Type: llm.TypeInvalidRequest, Code: "unknown_parameter", Param: llm.Clip(name, 64),
			Message: "Unknown parameter: " + llm.Clip(field, 80) + "."}
	}
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) && typeErr.Field != "" {
		field := llm.Clip(typeErr.Field, 128)
		return llm.InvalidParam(field, fmt.Sprintf("invalid type for '%s': expected %s, got %s", field, llm.JSONType(typeErr.Type), llm.Clip(typeErr.Value, 64)))
	}
	if errors.As(err, &typeErr) {
		return &llm.Error{Status: http.StatusBadRequest, Type: llm.TypeInvalidRequest, Message: "the request body must be a JSON object"}
	}
	return &llm.Error{Status: http.StatusBadRequest, Type: llm.TypeInvalidRequest, Message: "we could not parse the JSON body of your request: " + llm.Clip(msg, 200)}
}

// decodeResponses parses and validates a POST /v1/responses body.
func decodeResponses(body []byte) (*responsesRequest, error) {
	var r responsesRequest
	if err := strictJSON(body, &r, responsesShape); err != nil {
		return nil, err
	}
	if err := r.validate(); err != nil {
		return nil, err
	}
	r.raw = body
	return &r, nil
}

func unsupported(param, why string) *llm.Error {
	return &llm.Error{Status: http.StatusBadRequest, Type: llm.TypeInvalidRequest, Code: "unsupported_parameter", Param: param, Message: why}
}

func (r *responsesRequest) validate() error {
	if r.Model == "" {
		return llm.InvalidParam("model", "you must provide a model parameter")
	}
	in := bytes.TrimSpace(r.Input)
	switch {
	case len(in) == 0 || string(in) == "null":
		return llm.InvalidParam("input", "missing required parameter: 'input'")
	case in[0] == '"':
		var s string
		if err := json.Unmarshal(in, &s); err != nil {
			return llm.InvalidParam("input", "input must be a string or an array of input items")
		}
		r.items = []inputItem{{Type: "message", Role: "user", Content: in}}
	case in[0] == '[':
		if err := strictJSON(in, &r.items, itemsShape); err != nil {
			return itemError(in, err)
		}
		if len(r.items) == 0 {
			return llm.InvalidParam("input", "'input' must contain at least one item")
		}
	default:
		return llm.InvalidParam("input", "input must be a string or an array of input items")
	}
	for i := range r.items {
		if err := r.items[i].validate(fmt.Sprintf("input[%d]", i)); err != nil {
			return err
		}
	}
	// A tool's type is read first: a hosted or custom tool is refused as
	// such, not for the fields a function tool does not have.
	r.tools = make([]responsesTool, len(r.RawTools))
	for i, raw := range r.RawTools {
		p := fmt.Sprintf("tools[%d]", i)
		var kind struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(raw, &kind); err != nil {
			return llm.InvalidParam(p, "a tool must be an object with a type")
		}
		if kind.Type != "function" {
			return unsupported(p+".type", fmt.Sprintf("tool type %q is not supported by tollgate: only function tools are (they are translated to chat completions)", llm.Clip(kind.Type, 64)))
		}
		t := &r.tools[i]
		if err := strictJSON(raw, t, toolShape); err != nil {
			return prefixParam(p, err)
		}
		if t.Name == "" {
			return llm.InvalidParam(p+".name", "missing required parameter: '"+p+".name'")
		}
	}
	if _, err := r.chatToolChoice(); err != nil {
		return err
	}
	if _, err := r.chatFormat(); err != nil {
		return err
	}
	if r.Reasoning != nil && r.Reasoning.Effort != nil {
		switch *r.Reasoning.Effort {
		case "none", "minimal", "low", "medium", "high", "xhigh":
		default:
			return llm.InvalidParam("reasoning.effort", fmt.Sprintf("invalid reasoning effort %q: expected none, minimal, low, medium, high or xhigh", llm.Clip(*r.Reasoning.Effort, 64)))
		}
	}
	if r.MaxOutputTokens != nil && *r.MaxOutputTokens < 1 {
		return llm.InvalidParam("max_output_tokens", "max_output_tokens must be at least 1")
	}
	if r.PreviousResponseID != nil && *r.PreviousResponseID == "" {
		return llm.InvalidParam("previous_response_id", "previous_response_id must not be empty")
	}
	if r.StreamOptions != nil && !r.Stream {
		return llm.InvalidParam("stream_options", "stream_options is only allowed when stream is true")
	}
	for _, inc := range r.Include {
		// Asked for by clients that send reasoning back (Codex); a chat
		// upstream has none to give, so the answer holds none.
		if inc != "reasoning.encrypted_content" && inc != "message.output_text.logprobs" {
			return unsupported("include", fmt.Sprintf("include %q is not supported by tollgate", llm.Clip(inc, 64)))
		}
	}
	if r.Truncation != "" && r.Truncation != "disabled" {
		return unsupported("truncation", "truncation \"auto\" is not supported by tollgate: a request over the context window is refused")
	}
	switch {
	case r.Background != nil && *r.Background:
		return unsupported("background", "background responses are not supported by tollgate")
	case len(r.Conversation) > 0 && string(r.Conversation) != "null":
		return unsupported("conversation", "conversations are not supported by tollgate: use previous_response_id")
	case len(r.Prompt) > 0 && string(r.Prompt) != "null":
		return unsupported("prompt", "prompt templates are not supported by tollgate")
	case r.MaxToolCalls != nil:
		return unsupported("max_tool_calls", "max_tool_calls is not supported by tollgate")
	case r.TopLogprobs != nil:
		return unsupported("top_logprobs", "top_logprobs is not supported by tollgate")
	}
	return nil
}

// itemError is err, found decoding the input array in, named by the item
// it is in: the array is decoded again an item at a time (only when it
// failed) to find which.
func itemError(in []byte, err error) error {
	var raw []json.RawMessage
	if json.Unmarshal(in, &raw) == nil {
		for i, item := range raw {
			p := fmt.Sprintf("input[%d]", i)
			var it inputItem
			if ierr := strictJSON(item, &it, itemShape); ierr != nil {
				// An item of a type tollgate does not serve is refused
				// for its type, not for the fields that type has.
				var kind struct {
					Type string `json:"type"`
				}
				if json.Unmarshal(item, &kind) == nil {
					terr := (&inputItem{Type: kind.Type}).validate(p)
					if e, ok := llm.AsError(terr); ok && e.Code == "unsupported_parameter" {
						return terr
					}
				}
				return prefixParam(p, ierr)
			}
		}
	}
	return prefixParam("input", err)
}

// prefixParam puts an error found in a nested value under its parameter.
func prefixParam(param string, err error) error {
	e, ok := llm.AsError(err)
	if !ok {
		return err
	}
	out := *e
	switch {
	case out.Param == "":
		out.Param = param
	case strings.HasPrefix(out.Param, "["):
		out.Param = param + out.Param
	default:
		out.Param = param + "." + out.Param
	}
	return &out
}

func (it *inputItem) validate(p string) error {
	switch it.Type {
	case "", "message":
		switch it.Role {
		case "user", "assistant", "system", "developer":
		case "":
			return llm.InvalidParam(p+".role", "missing required parameter: '"+p+".role'")
		default:
			return llm.InvalidParam(p+".role", fmt.Sprintf("invalid role %q: expected user, assistant, system or developer", llm.Clip(it.Role, 64)))
		}
		if it.CallID != "" || it.Name != "" || it.Arguments != nil || len(it.Output) > 0 || len(it.Summary) > 0 || it.EncryptedContent != nil {
			return llm.InvalidParam(p, "a message item has only role, content, and optionally id, status and type")
		}
		if len(it.Content) == 0 || string(it.Content) == "null" {
			return llm.InvalidParam(p+".content", "missing required parameter: '"+p+".content'")
		}
		var err error
		it.parts, err = partsOf(it.Content, p+".content")
		return err
	case "function_call":
		if it.CallID == "" || it.Name == "" || it.Arguments == nil {
			return llm.InvalidParam(p, "a function_call item needs call_id, name and arguments")
		}
		if it.Role != "" || len(it.Content) > 0 || len(it.Output) > 0 || len(it.Summary) > 0 {
			return llm.InvalidParam(p, "a function_call item has only call_id, name, arguments, and optionally id, status and type")
		}
	case "function_call_output":
		if it.CallID == "" || len(it.Output) == 0 {
			return llm.InvalidParam(p, "a function_call_output item needs call_id and output")
		}
		if it.Role != "" || len(it.Content) > 0 || it.Name != "" || it.Arguments != nil || len(it.Summary) > 0 {
			return llm.InvalidParam(p, "a function_call_output item has only call_id, output, and optionally id, status and type")
		}
		var err error
		if it.output, err = it.outputText(p); err != nil {
			return err
		}
	case "reasoning":
	case "item_reference":
		return unsupported(p+".type", "item_reference is not supported by tollgate: send the item itself, or use previous_response_id")
	default:
		return unsupported(p+".type", fmt.Sprintf("input item type %q is not supported by tollgate: expected message, function_call, function_call_output or reasoning", llm.Clip(it.Type, 64)))
	}
	return nil
}

// partsOf reads a message's content (param names it in errors): a string
// is one text part.
func partsOf(content json.RawMessage, param string) ([]inputPart, error) {
	c := bytes.TrimSpace(content)
	if len(c) > 0 && c[0] == '"' {
		var s string
		if err := json.Unmarshal(c, &s); err != nil {
			return nil, llm.InvalidParam(param, "content must be a string or an array of content parts")
		}
		return []inputPart{{Type: "input_text", Text: &s}}, nil
	}
	if len(c) == 0 || c[0] != '[' {
		return nil, llm.InvalidParam(param, "content must be a string or an array of content parts")
	}
	var parts []inputPart
	if err := strictJSON(c, &parts, partsShape); err != nil {
		return nil, prefixParam(param, err)
	}
	for j, part := range parts {
		q := fmt.Sprintf("%s[%d]", param, j)
		switch part.Type {
		case "input_text", "output_text", "text":
			if part.Text == nil {
				return nil, llm.InvalidParam(q+".text", "missing required parameter: '"+q+".text'")
			}
		case "refusal":
			if part.Refusal == nil {
				return nil, llm.InvalidParam(q+".refusal", "missing required parameter: '"+q+".refusal'")
			}
		case "input_image":
			if part.ImageURL == nil || *part.ImageURL == "" {
				if part.FileID != "" {
					return nil, unsupported(q+".file_id", "images by file_id are not supported by tollgate: send image_url (a URL or a data: URL)")
				}
				return nil, llm.InvalidParam(q+".image_url", "input_image parts need an image_url")
			}
			switch part.Detail {
			case "", "auto", "low", "high":
			default:
				return nil, llm.InvalidParam(q+".detail", "detail must be auto, low or high")
			}
		case "input_file", "input_audio":
			return nil, unsupported(q+".type", part.Type+" parts are not supported by tollgate: send text or images")
		case "":
			return nil, llm.InvalidParam(q+".type", "missing content part type")
		default:
			return nil, llm.InvalidParam(q+".type", fmt.Sprintf("invalid content part type %q", llm.Clip(part.Type, 64)))
		}
		if part.Type != "input_image" && (part.ImageURL != nil || part.Detail != "" || part.FileID != "") {
			return nil, llm.InvalidParam(q, "image_url, detail and file_id belong to input_image parts")
		}
	}
	return parts, nil
}

// outputText is a function_call_output's output: a string, or content
// parts whose text is joined.
func (it *inputItem) outputText(p string) (string, error) {
	c := bytes.TrimSpace(it.Output)
	if len(c) > 0 && c[0] == '"' {
		var s string
		if err := json.Unmarshal(c, &s); err != nil {
			return "", llm.InvalidParam(p+".output", "output must be a string or an array of content parts")
		}
		return s, nil
	}
	parts, err := partsOf(it.Output, p+".output")
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, part := range parts {
		if part.Type == "input_image" {
			return "", unsupported(p+".output", "images in a function_call_output are not supported by tollgate")
		}
		if part.Text != nil {
			b.WriteString(*part.Text)
		}
	}
	return b.String(), nil
}

// chatToolChoice is tool_choice in chat's shape (nil: none given).
func (r *responsesRequest) chatToolChoice() (json.RawMessage, error) {
	tc := bytes.TrimSpace(r.ToolChoice)
	if len(tc) == 0 || string(tc) == "null" {
		return nil, nil
	}
	var s string
	if json.Unmarshal(tc, &s) == nil {
		switch s {
		case "auto", "none", "required":
			return tc, nil
		}
		return nil, llm.InvalidParam("tool_choice", fmt.Sprintf("invalid tool_choice %q: expected auto, none, required or a function", llm.Clip(s, 64)))
	}
	var fn struct {
		Type string `json:"type"`
		Name string `json:"name"`
	}
	if err := strictJSON(tc, &fn, nil); err != nil || fn.Type != "function" || fn.Name == "" {
		return nil, unsupported("tool_choice", `tool_choice must be "auto", "none", "required" or {"type":"function","name":...}`)
	}
	type name struct {
		Name string `json:"name"`
	}
	out, _ := json.Marshal(struct {
		Type     string `json:"type"`
		Function name   `json:"function"`
	}{"function", name{fn.Name}})
	return out, nil
}

// chatFormat is text.format as chat's response_format (nil: plain text).
func (r *responsesRequest) chatFormat() (json.RawMessage, error) {
	if r.Text == nil || r.Text.Format == nil {
		return nil, nil
	}
	f := r.Text.Format
	switch f.Type {
	case "text":
		if f.Name != "" || len(f.Schema) > 0 || f.Strict != nil || f.Description != "" {
			return nil, llm.InvalidParam("text.format", "a text format has only a type")
		}
		return nil, nil
	case "json_object":
		if f.Name != "" || len(f.Schema) > 0 || f.Strict != nil || f.Description != "" {
			return nil, llm.InvalidParam("text.format", "a json_object format has only a type")
		}
		return json.RawMessage(`{"type":"json_object"}`), nil
	case "json_schema":
		if f.Name == "" {
			return nil, llm.InvalidParam("text.format.name", "missing required parameter: 'text.format.name'")
		}
		if len(f.Schema) == 0 || f.Schema[0] != '{' {
			return nil, llm.InvalidParam("text.format.schema", "text.format.schema must be a JSON schema object")
		}
		schema := struct {
			Name        string          `json:"name"`
			Description string          `json:"description,omitempty"`
			Schema      json.RawMessage `json:"schema"`
			Strict      *bool           `json:"strict,omitempty"`
		}{f.Name, f.Description, f.Schema, f.Strict}
		inner, err := json.Marshal(schema)
		if err != nil {
			return nil, llm.InvalidParam("text.format.schema", "text.format.schema must be a JSON schema object")
		}
		return json.RawMessage(`{"type":"json_schema","json_schema":` + string(inner) + `}`), nil
	case "":
		return nil, llm.InvalidParam("text.format.type", "missing required parameter: 'text.format.type'")
	}
	return nil, llm.InvalidParam("text.format.type", fmt.Sprintf("invalid format type %q: expected text, json_object or json_schema", llm.Clip(f.Type, 64)))
}

// chatMessages turns the input items into chat messages: consecutive
// function calls become one assistant message with several tool calls
// (joining the assistant message just before them), an output a tool
// message, and a reasoning item nothing.
func (r *responsesRequest) chatMessages() []llm.Message {
	var out []llm.Message
	prevAssistant := false // the last message is an assistant turn function calls may join
	for i := range r.items {
		it := &r.items[i]
		switch it.Type {
		case "", "message":
			out = append(out, chatMessage(it.Role, it.parts))
			prevAssistant = it.Role == "assistant"
		case "function_call":
			call := llm.ToolCall{ID: it.CallID, Type: "function", Function: llm.FunctionCall{Name: it.Name, Arguments: *it.Arguments}}
			if prevAssistant {
				last := &out[len(out)-1]
				last.ToolCalls = append(last.ToolCalls, call)
				continue
			}
			out = append(out, llm.Message{Role: "assistant", Content: llm.Content{Null: true}, ToolCalls: []llm.ToolCall{call}})
			prevAssistant = true
		case "function_call_output":
			out = append(out, llm.Message{Role: "tool", ToolCallID: it.CallID, Content: llm.TextContent(it.output)})
			prevAssistant = false
		}
	}
	return out
}

// chatMessage is one message item as a chat message: a user's parts stay
// parts (images among them); other roles' text is joined into a string,
// which every chat upstream takes.
func chatMessage(role string, parts []inputPart) llm.Message {
	m := llm.Message{Role: role}
	if role == "user" {
		cp := make([]llm.ContentPart, 0, len(parts))
		for _, p := range parts {
			if p.Type == "input_image" {
				cp = append(cp, llm.ContentPart{Type: "image_url", ImageURL: &llm.ImageURL{URL: *p.ImageURL, Detail: p.Detail}})
				continue
			}
			cp = append(cp, llm.ContentPart{Type: "text", Text: partText(p)})
		}
		if len(cp) == 1 && cp[0].Type == "text" {
			m.Content = llm.TextContent(cp[0].Text)
		} else {
			m.Content = llm.Content{Parts: cp}
		}
		return m
	}
	var b strings.Builder
	for _, p := range parts {
		b.WriteString(partText(p))
	}
	m.Content = llm.TextContent(b.String())
	return m
}

func partText(p inputPart) string {
	switch {
	case p.Text != nil:
		return *p.Text
	case p.Refusal != nil:
		return *p.Refusal
	}
	return ""
}

// chatRequest builds the chat request: instructions first, then the
// earlier turns (history, from previous_response_id), then this input.
// It returns the input's own messages too, which a stored response keeps.
func (r *responsesRequest) chatRequest(history []llm.Message) (*llm.ChatRequest, []llm.Message, error) {
	input := r.chatMessages()
	msgs := make([]llm.Message, 0, len(history)+len(input)+1)
	if r.Instructions != nil && *r.Instructions != "" {
		msgs = append(msgs, llm.Message{Role: "system", Content: llm.TextContent(*r.Instructions)})
	}
	msgs = append(msgs, history...)
	msgs = append(msgs, input...)
	if len(msgs) == 0 {
		return nil, nil, llm.InvalidParam("input", "the input holds no message (reasoning items alone are not a turn)")
	}
	b := chatBody{Model: r.Model, Messages: msgs, Stream: r.Stream, MaxCompletionTokens: r.MaxOutputTokens,
		Temperature: r.Temperature, TopP: r.TopP, ParallelToolCalls: r.ParallelToolCalls, User: r.User,
		ServiceTier: r.ServiceTier, PromptCacheKey: r.PromptCacheKey, SafetyIdentifier: r.SafetyIdentifier}
	if r.Stream {
		b.StreamOptions = &llm.StreamOptions{IncludeUsage: true} // response.completed carries usage
	}
	for _, t := range r.tools {
		b.Tools = append(b.Tools, llm.Tool{Type: "function", Function: llm.FunctionDef{Name: t.Name, Description: t.Description, Parameters: t.Parameters, Strict: t.Strict}})
	}
	b.ToolChoice, _ = r.chatToolChoice() // validated
	b.ResponseFormat, _ = r.chatFormat()
	if r.Reasoning != nil && r.Reasoning.Effort != nil {
		b.ReasoningEffort = *r.Reasoning.Effort
	}
	if r.Text != nil {
		b.Verbosity = r.Text.Verbosity
	}
	req, err := chatOf(&b)
	return req, input, err
}

// responseObject is a response as OpenAI answers it.
type responseObject struct {
	ID                 string             `json:"id"`
	Object             string             `json:"object"`
	CreatedAt          int64              `json:"created_at"`
	Status             string             `json:"status"`
	Error              *responseError     `json:"error"`
	IncompleteDetails  *incompleteDetails `json:"incomplete_details"`
	Instructions       *string            `json:"instructions"`
	MaxOutputTokens    *int               `json:"max_output_tokens"`
	Model              string             `json:"model"`
	Output             []any              `json:"output"` // messageItem, functionCallItem
	ParallelToolCalls  bool               `json:"parallel_tool_calls"`
	PreviousResponseID *string            `json:"previous_response_id"`
	Reasoning          reasoningEcho      `json:"reasoning"`
	Store              bool               `json:"store"`
	Temperature        *float64           `json:"temperature"`
	Text               textEcho           `json:"text"`
	ToolChoice         json.RawMessage    `json:"tool_choice"`
	Tools              []responsesTool    `json:"tools"`
	TopP               *float64           `json:"top_p"`
	Truncation         string             `json:"truncation"`
	Usage              *responsesUsage    `json:"usage"`
	User               *string            `json:"user"`
	Metadata           map[string]string  `json:"metadata"`
}

type responseError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

type incompleteDetails struct {
	Reason string `json:"reason"`
}

type reasoningEcho struct {
	Effort  *string `json:"effort"`
	Summary *string `json:"summary"`
}

type textEcho struct {
	Format    responsesFormat `json:"format"`
	Verbosity string          `json:"verbosity,omitempty"`
}

type messageItem struct {
	ID      string          `json:"id"`
	Type    string          `json:"type"` // "message"
	Status  string          `json:"status"`
	Content []outputContent `json:"content"`
	Role    string          `json:"role"`
}

type functionCallItem struct {
	ID        string `json:"id"`
	Type      string `json:"type"` // "function_call"
	Status    string `json:"status"`
	Arguments string `json:"arguments"`
	CallID    string `json:"call_id"`
	Name      string `json:"name"`
}

// outputContent is an output_text or a refusal part.
type outputContent struct {
	Type        string  `json:"type"`
	Text        *string `json:"text,omitempty"`
	Annotations *[]any  `json:"annotations,omitempty"`
	Logprobs    *[]any  `json:"logprobs,omitempty"`
	Refusal     *string `json:"refusal,omitempty"`
}

func textPart(s string) outputContent {
	empty := []any{}
	return outputContent{Type: "output_text", Text: &s, Annotations: &empty, Logprobs: &empty}
}

func refusalPart(s string) outputContent { return outputContent{Type: "refusal", Refusal: &s} }

type responsesUsage struct {
	InputTokens        int `json:"input_tokens"`
	InputTokensDetails struct {
		CachedTokens int `json:"cached_tokens"`
	} `json:"input_tokens_details"`
	OutputTokens        int `json:"output_tokens"`
	OutputTokensDetails struct {
		ReasoningTokens int `json:"reasoning_tokens"`
	} `json:"output_tokens_details"`
	TotalTokens int `json:"total_tokens"`
}

// usageOf is the Responses usage of a chat usage; when the upstream
// reported none, tollgate's own counts (the cost header then says
// estimated).
func usageOf(u *llm.Usage, meta *gateway.Meta) *responsesUsage {
	out := &responsesUsage{}
	switch {
	case u != nil:
		out.InputTokens, out.OutputTokens = u.PromptTokens, u.CompletionTokens
		out.InputTokensDetails.CachedTokens = u.CachedTokens()
		if u.CompletionTokensDetails != nil {
			out.OutputTokensDetails.ReasoningTokens = u.CompletionTokensDetails.ReasoningTokens
		}
	case meta != nil:
		out.InputTokens, out.OutputTokens = meta.PromptTokens, meta.CompletionTokens
	}
	out.TotalTokens = out.InputTokens + out.OutputTokens
	return out
}

// newObjectID is a fresh id with OpenAI's prefix for its kind (resp, msg,
// fc): 24 random bytes, unguessable, so an id names one response.
func newObjectID(prefix string) string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return prefix + "_" + hex.EncodeToString(b[:])
}

// newResponse is the response object of r before any output.
func (r *responsesRequest) newResponse(s *server) *responseObject {
	o := &responseObject{ID: newObjectID("resp"), Object: "response", CreatedAt: s.Now().Unix(), Status: "in_progress",
		Instructions: r.Instructions, MaxOutputTokens: r.MaxOutputTokens, Model: r.Model, Output: []any{},
		ParallelToolCalls: r.ParallelToolCalls == nil || *r.ParallelToolCalls, PreviousResponseID: r.PreviousResponseID,
		Store: r.stored() && s.Responses != nil, Temperature: r.Temperature, TopP: r.TopP, Truncation: "disabled",
		Tools: r.tools, ToolChoice: r.ToolChoice, Metadata: r.Metadata, Text: textEcho{Format: responsesFormat{Type: "text"}}}
	if o.Tools == nil {
		o.Tools = []responsesTool{}
	}
	if len(bytes.TrimSpace(o.ToolChoice)) == 0 {
		o.ToolChoice = json.RawMessage(`"auto"`)
	}
	if o.Metadata == nil {
		o.Metadata = map[string]string{}
	}
	if r.User != "" {
		o.User = &r.User
	}
	if r.Text != nil {
		if r.Text.Format != nil {
			o.Text.Format = *r.Text.Format
		}
		o.Text.Verbosity = r.Text.Verbosity
	}
	if r.Reasoning != nil {
		o.Reasoning.Effort = r.Reasoning.Effort
		o.Reasoning.Summary = r.Reasoning.Summary
		if o.Reasoning.Summary == nil {
			o.Reasoning.Summary = r.Reasoning.GenerateSummary
		}
	}
	return o
}

func (r *responsesRequest) stored() bool { return r.Store == nil || *r.Store }

// finish sets the response's end: its status from the finish reason, its
// model (the upstream's name for it, as a chat answer has), its usage.
func (o *responseObject) finish(finishReason, model string, usage *responsesUsage) {
	o.Status = "completed"
	switch finishReason {
	case "length":
		o.Status, o.IncompleteDetails = "incomplete", &incompleteDetails{Reason: "max_output_tokens"}
	case "content_filter":
		o.Status, o.IncompleteDetails = "incomplete", &incompleteDetails{Reason: "content_filter"}
	}
	if o.Status == "incomplete" && len(o.Output) > 0 {
		// The answer was cut: its last item is, as OpenAI marks it.
		switch it := o.Output[len(o.Output)-1].(type) {
		case *messageItem:
			it.Status = "incomplete"
		case *functionCallItem:
			it.Status = "incomplete"
		}
	}
	if model != "" {
		o.Model = model
	}
	o.Usage = usageOf(nil, nil)
	if usage != nil {
		o.Usage = usage
	}
}

// outputOf is a chat answer's message as output items: its text (or
// refusal) as one message, then each tool call.
func outputOf(m *llm.Message) []any {
	var out []any
	text := m.Content.String()
	switch {
	case m.Refusal != nil && *m.Refusal != "":
		out = append(out, &messageItem{ID: newObjectID("msg"), Type: "message", Status: "completed", Role: "assistant", Content: []outputContent{refusalPart(*m.Refusal)}})
	case text != "" || len(m.ToolCalls) == 0:
		out = append(out, &messageItem{ID: newObjectID("msg"), Type: "message", Status: "completed", Role: "assistant", Content: []outputContent{textPart(text)}})
	}
	for _, tc := range m.ToolCalls {
		out = append(out, &functionCallItem{ID: newObjectID("fc"), Type: "function_call", Status: "completed", CallID: tc.ID, Name: tc.Function.Name, Arguments: tc.Function.Arguments})
	}
	return out
}

// assistantOf is the output items as the chat message a follow-up turn
// sends back.
func assistantOf(output []any) llm.Message {
	m := llm.Message{Role: "assistant", Content: llm.Content{Null: true}}
	var text strings.Builder
	hasText := false
	for _, it := range output {
		if raw, ok := it.(json.RawMessage); ok {
			it = asTranslated(raw)
		}
		switch it := it.(type) {
		case *messageItem:
			for _, p := range it.Content {
				if p.Text != nil {
					text.WriteString(*p.Text)
					hasText = true
				} else if p.Refusal != nil {
					text.WriteString(*p.Refusal)
					hasText = true
				}
			}
		case *functionCallItem:
			m.ToolCalls = append(m.ToolCalls, llm.ToolCall{ID: it.CallID, Type: "function", Function: llm.FunctionCall{Name: it.Name, Arguments: it.Arguments}})
		}
	}
	if hasText {
		m.Content = llm.TextContent(text.String())
	}
	return m
}

// responsesCall is one POST /v1/responses being served.
type responsesCall struct {
	req     *responsesRequest
	chat    *llm.ChatRequest
	history []llm.Message // earlier turns, from previous_response_id
	input   []llm.Message // this turn's input
	keyID   string
}

func (s *server) createResponse(c *gin.Context) {
	req, ok := decodeSeeded(s, c, responsesSurface, decodeResponses)
	if !ok {
		return
	}
	rc := &responsesCall{req: req}
	if k := callOf(c).key; k != nil {
		rc.keyID = k.ID
	}
	if id := req.PreviousResponseID; id != nil {
		if err := rc.loadHistory(c.Request.Context(), s, *id); err != nil {
			writeError(c, err)
			return
		}
	}
	var err error
	if rc.chat, rc.input, err = req.chatRequest(rc.history); err != nil {
		writeError(c, err)
		return
	}
	if rc.chat.ResponsesBody, err = rc.nativeBody(); err != nil {
		writeError(c, err)
		return
	}
	caller, err := callerOf(c, rc.chat)
	if err != nil {
		writeError(c, err)
		return
	}
	if caller.Options.NoLog { // disable_log: the answer is not kept, whatever store says
		req.Store = new(false)
	}
	if req.Stream {
		s.streamResponse(c, caller, rc)
		return
	}
	resp, meta, err := s.Gateway.Chat(c.Request.Context(), caller, rc.chat)
	s.answer(c, meta, err, func() ([]byte, any) {
		o := req.newResponse(s)
		var m llm.Message
		finish := ""
		if len(resp.Choices) > 0 {
			m, finish = resp.Choices[0].Message, resp.Choices[0].FinishReason
		}
		if o.Output = nativeOutput(resp.ResponsesOutput); o.Output == nil {
			o.Output = outputOf(&m)
		}
		o.finish(finish, resp.Model, usageOf(resp.Usage, meta))
		body, err := json.Marshal(o)
		if err != nil {
			return nil, o
		}
		rc.keep(c.Request.Context(), s, o, body)
		return body, o
	})
}

// loadHistory reads the conversation previous_response_id ended, the
// key's own only.
func (rc *responsesCall) loadHistory(ctx context.Context, s *server, id string) error {
	notFound := &llm.Error{Status: http.StatusBadRequest, Type: llm.TypeInvalidRequest, Code: "previous_response_not_found", Param: "previous_response_id",
		Message: fmt.Sprintf("Previous response with id '%s' not found.", llm.Clip(id, 64))}
	if s.Responses == nil || rc.keyID == "" {
		return notFound
	}
	st, err := s.Responses.Get(ctx, rc.keyID, id)
	if errors.Is(err, responses.ErrNotFound) {
		return notFound
	}
	if err != nil {
		s.Logger.Error("responses: the store failed", "err", err)
		return storeUnavailable(storeDown, err)
	}
	if err := json.Unmarshal(st.Context, &rc.history); err != nil {
		s.Logger.Error("responses: a stored conversation is not readable", "id", id, "err", err)
		return storeUnavailable(storeDown, err)
	}
	return nil
}

const storeDown = "The gateway cannot read stored responses right now; retry shortly."

// keep stores a finished response (store: true): its object and the
// conversation a follow-up continues (the earlier turns, this input and
// its output; instructions are not carried over, as OpenAI's are not). A
// failure is logged: the answer, already paid for, is still given.
func (rc *responsesCall) keep(ctx context.Context, s *server, o *responseObject, body []byte) {
	if !o.Store || rc.keyID == "" || o.Status == "failed" {
		return
	}
	conv := make([]llm.Message, 0, len(rc.history)+len(rc.input)+1)
	conv = append(append(append(conv, rc.history...), rc.input...), assistantOf(o.Output))
	ctxJSON, err := json.Marshal(conv)
	if err == nil {
		err = s.Responses.Put(context.WithoutCancel(ctx), responses.Stored{ID: o.ID, KeyID: rc.keyID, Created: s.Now(), Response: body, Context: ctxJSON})
	}
	if err != nil {
		s.Logger.Error("responses: storing a response failed", "id", o.ID, "err", err)
	}
}

// responseNotFound is OpenAI's answer for an unknown response id.
func responseNotFound(id string) *llm.Error {
	return &llm.Error{Status: http.StatusNotFound, Type: llm.TypeInvalidRequest, Code: "not_found", Param: "response_id",
		Message: fmt.Sprintf("Response with id '%s' not found.", llm.Clip(id, 64))}
}

func (s *server) getResponse(c *gin.Context) {
	id := c.Param("id")
	k := callOf(c).key
	if s.Responses == nil || k == nil {
		writeError(c, responseNotFound(id))
		return
	}
	st, err := s.Responses.Get(c.Request.Context(), k.ID, id)
	switch {
	case errors.Is(err, responses.ErrNotFound):
		writeError(c, responseNotFound(id))
	case err != nil:
		s.Logger.Error("responses: the store failed", "err", err)
		writeError(c, storeUnavailable(storeDown, err))
	default:
		c.Data(http.StatusOK, "application/json", st.Response)
	}
}

func (s *server) deleteResponse(c *gin.Context) {
	id := c.Param("id")
	k := callOf(c).key
	if s.Responses == nil || k == nil {
		writeError(c, responseNotFound(id))
		return
	}
	err := s.Responses.Delete(c.Request.Context(), k.ID, id)
	switch {
	case errors.Is(err, responses.ErrNotFound):
		writeError(c, responseNotFound(id))
	case err != nil:
		s.Logger.Error("responses: the store failed", "err", err)
		writeError(c, storeUnavailable(storeDown, err))
	default:
		c.JSON(http.StatusOK, gin.H{"id": id, "object": "response.deleted", "deleted": true})
	}
}
