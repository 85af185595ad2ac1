package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/tollgate/tollgate/internal/anthropicwire"
	"github.com/tollgate/tollgate/pkg/llm"
)

// Anthropic's Messages API (POST /v1/messages and
// /v1/messages/count_tokens), served through the same flow as chat
// completions: the body is decoded strictly, translated into the internal
// (OpenAI chat) request, served by the gateway, and the answer or stream
// translated back. What maps to what is in toChat; what an Anthropic
// upstream then receives is the provider translator's business
// (providers.anthropicBody), which mirrors it.

// headerAnthropicRequestID is where Anthropic's SDKs read a response's
// request id (Message's _request_id, an error's RequestID).
const headerAnthropicRequestID = "request-id"

// The body's types are anthropicwire's (shared with the provider that
// encodes them for Anthropic upstreams), decoded strictly: fields as
// Anthropic documents them, anything else refused (the body is translated,
// so an unknown field could only be dropped silently).
var msgShape = llm.ShapeOf(reflect.TypeFor[anthropicwire.Request]())

// messagesCall is a decoded Messages request: the internal request the
// gateway serves, and what the answer's translation needs.
type messagesCall struct {
	chat   *llm.ChatRequest
	model  string
	stream bool
}

func decodeMessages(body []byte) (*messagesCall, error) { return decodeMessagesBody(body, false) }

func decodeCountTokens(body []byte) (*messagesCall, error) { return decodeMessagesBody(body, true) }

// decodeMessagesBody parses, validates and translates a Messages body (a
// count_tokens body when count: no max_tokens, no sampling fields).
func decodeMessagesBody(body []byte, count bool) (*messagesCall, error) {
	if !json.Valid(body) {
		return nil, invalidMsg("", "the request body is not valid JSON")
	}
	var req anthropicwire.Request
	if err := strictUnmarshal(body, &req); err != nil {
		return nil, msgDecodeError(err)
	}
	if err := llm.CheckKeys(body, msgShape); err != nil {
		return nil, err
	}
	if count {
		for name, set := range map[string]bool{"max_tokens": req.MaxTokens != nil, "stream": req.Stream != nil,
			"temperature": req.Temperature != nil, "top_k": req.TopK != nil, "top_p": req.TopP != nil,
			"stop_sequences": req.StopSequences != nil, "metadata": req.Metadata != nil, "service_tier": req.ServiceTier != nil} {
			if set {
				return nil, invalidMsg(name, name+": Extra inputs are not permitted")
			}
		}
	}
	return toChat(&req, count)
}

// msgDecodeError names what encoding/json refused.
func msgDecodeError(err error) error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	msg := err.Error()
	switch {
	case errors.As(err, &typeErr):
		field := llm.Clip(typeErr.Field, 256)
		return invalidMsg(field, fmt.Sprintf("%s: Input should be %s", field, llm.JSONType(typeErr.Type)))
	case errors.As(err, &syntaxErr):
		return invalidMsg("", "the request body is not valid JSON: "+msg)
	case strings.HasPrefix(msg, "json: unknown field "):
		name, _ := strconv.Unquote(strings.TrimPrefix(msg, "json: unknown field "))
		name = llm.Clip(name, 64)
		return invalidMsg(name, name+": Extra inputs are not permitted")
	}
	return invalidMsg("", llm.Clip(strings.TrimPrefix(msg, "json: "), 512))
}

func invalidMsg(param, msg string) *llm.Error {
	return &llm.Error{Status: http.StatusBadRequest, Type: llm.TypeInvalidRequest, Param: param, Message: msg}
}

// reasoning is an assistant turn's thinking, set on the internal request
// after it is decoded: it is never part of the body an OpenAI-style
// upstream receives (DeepSeek refuses reasoning_content in history).
type reasoning struct {
	message         int
	text, signature string
}

// effortFor rounds a thinking budget to OpenAI's reasoning_effort.
func effortFor(budget int) string {
	switch {
	case budget < 4096:
		return "low"
	case budget < 16384:
		return "medium"
	}
	return "high"
}

// toChat translates the request into the internal chat request:
//
//   - system (a string or text blocks) becomes the first message, a
//     system message holding a string or text parts.
//   - user text and image blocks become content parts (images as data: or
//     http(s) URLs); PDF documents (base64) become OpenAI file parts
//     (file_data as a data URL, the title as the filename); plain-text
//     documents become text parts; documents by URL are refused (an
//     OpenAI-style upstream cannot fetch them). String content stays a
//     string.
//   - tool_result blocks become tool messages, before the rest of their
//     turn as OpenAI requires; their images follow in a user message (an
//     OpenAI tool message holds text only). is_error has no equivalent.
//   - assistant text becomes content, tool_use blocks tool_calls (the
//     input as the arguments string), thinking the turn's reasoning (kept
//     with its signature for an Anthropic upstream, never sent to an
//     OpenAI-style one); redacted_thinking is dropped.
//   - tools become functions; tool_choice auto/any/tool/none becomes
//     auto/required/function/none, disable_parallel_tool_use
//     parallel_tool_calls false.
//   - max_tokens becomes max_completion_tokens; stop_sequences stop;
//     metadata.user_id user; thinking.budget_tokens reasoning_effort
//     (below 4096 low, below 16384 medium, else high) and the exact
//     budget for an Anthropic upstream; stream asks for the usage chunk.
//   - output_config.format (a JSON schema) becomes response_format
//     json_schema (strict, named "output"); output_config.effort
//     reasoning_effort (max as high).
//   - cache_control breakpoints are kept in process (llm.ContentPart,
//     Message and Tool CacheControl) for an Anthropic upstream; an
//     OpenAI-style upstream caches on its own and never sees them.
//   - citations, context, top_k and service_tier have no OpenAI
//     equivalent and are dropped.
func toChat(r *anthropicwire.Request, count bool) (*messagesCall, error) {
	if r.Model == "" {
		return nil, invalidMsg("model", "model: Field required")
	}
	if !count {
		if r.MaxTokens == nil {
			return nil, invalidMsg("max_tokens", "max_tokens: Field required")
		}
		if *r.MaxTokens < 1 {
			return nil, invalidMsg("max_tokens", "max_tokens: Input should be greater than or equal to 1")
		}
	}
	if len(r.Messages) == 0 {
		return nil, invalidMsg("messages", "messages: at least one message is required")
	}
	out := chatBody{Model: r.Model, MaxCompletionTokens: r.MaxTokens, Temperature: r.Temperature, TopP: r.TopP, Stop: rawJSON(r.StopSequences)}
	if r.Metadata != nil {
		out.User = r.Metadata.UserID
	}
	call := &messagesCall{model: r.Model}
	if r.Stream != nil && *r.Stream {
		call.stream, out.Stream = true, true
		out.StreamOptions = &llm.StreamOptions{IncludeUsage: true}
	}
	budget := 0
	if t := r.Thinking; t != nil {
		switch t.Type {
		case "enabled":
			if t.BudgetTokens < 1024 {
				return nil, invalidMsg("thinking.budget_tokens", "thinking.budget_tokens: Input should be greater than or equal to 1024")
			}
			if r.MaxTokens != nil && t.BudgetTokens >= *r.MaxTokens {
				return nil, invalidMsg("thinking.budget_tokens", "`max_tokens` must be greater than `thinking.budget_tokens`")
			}
			budget, out.ReasoningEffort = t.BudgetTokens, effortFor(t.BudgetTokens)
		case "adaptive":
			out.ReasoningEffort = "medium"
		case "disabled":
		default:
			return nil, invalidMsg("thinking.type", fmt.Sprintf("thinking.type: Input should be 'enabled', 'adaptive' or 'disabled', got %q", llm.Clip(t.Type, 64)))
		}
	}
	if o := r.OutputConfig; o != nil {
		switch o.Effort {
		case "":
		case "low", "medium", "high":
			out.ReasoningEffort = o.Effort
		case "max":
			out.ReasoningEffort = "high"
		default:
			return nil, invalidMsg("output_config.effort", fmt.Sprintf("output_config.effort: Input should be 'low', 'medium', 'high' or 'max', got %q", llm.Clip(o.Effort, 64)))
		}
		if f := o.Format; f != nil {
			if f.Type != "json_schema" || len(bytes.TrimSpace(f.Schema)) == 0 || bytes.TrimSpace(f.Schema)[0] != '{' {
				return nil, invalidMsg("output_config.format", "output_config.format: a json_schema format with a schema object is required")
			}
			out.ResponseFormat = rawJSON(map[string]any{"type": "json_schema", "json_schema": map[string]any{"name": "output", "schema": f.Schema, "strict": true}})
		}
	}
	if r.System != nil {
		sys, err := systemMessage(r.System)
		if err != nil {
			return nil, err
		}
		out.Messages = append(out.Messages, sys)
	}
	var thoughts []reasoning
	for i := range r.Messages {
		msgs, thought, err := chatMessages(&r.Messages[i], fmt.Sprintf("messages.%d", i))
		if err != nil {
			return nil, err
		}
		if thought != nil {
			thought.message = len(out.Messages) // the assistant message is the first of its turn
			thoughts = append(thoughts, *thought)
		}
		out.Messages = append(out.Messages, msgs...)
	}
	if err := chatTools(r, &out); err != nil {
		return nil, err
	}
	chat, err := chatOf(&out)
	if err != nil {
		return nil, err
	}
	chat.ThinkingBudget = budget
	keepCacheControl(chat, &out)
	for _, t := range thoughts {
		chat.Messages[t.message].ReasoningContent = t.text
		chat.Messages[t.message].ReasoningSignature = t.signature
	}
	call.chat = chat
	return call, nil
}

// keepCacheControl copies the cache_control breakpoints of the translated
// messages and tools (in process only, not in the body) onto the decoded
// request, which has the same messages, parts and tools in the same order.
func keepCacheControl(chat *llm.ChatRequest, out *chatBody) {
	for i := range out.Messages {
		m, dst := &out.Messages[i], &chat.Messages[i]
		dst.CacheControl = m.CacheControl
		for j := range m.Content.Parts {
			dst.Content.Parts[j].CacheControl = m.Content.Parts[j].CacheControl
		}
	}
	for i := range out.Tools {
		chat.Tools[i].CacheControl = out.Tools[i].CacheControl
	}
}

func systemMessage(c *anthropicwire.Content) (llm.Message, error) {
	if !c.IsBlocks {
		return llm.Message{Role: "system", Content: llm.TextContent(c.Text)}, nil
	}
	parts := make([]llm.ContentPart, 0, len(c.Blocks))
	for j, b := range c.Blocks {
		if b.Type != "text" {
			return llm.Message{}, invalidMsg(fmt.Sprintf("system.%d.type", j), fmt.Sprintf("system.%d.type: system blocks must be text, got %q", j, llm.Clip(b.Type, 64)))
		}
		parts = append(parts, llm.ContentPart{Type: "text", Text: b.Text, CacheControl: b.CacheControl})
	}
	return llm.Message{Role: "system", Content: llm.Content{Parts: parts}}, nil
}

// chatMessages translates one turn into one or more chat messages.
func chatMessages(m *anthropicwire.Message, param string) ([]llm.Message, *reasoning, error) {
	switch m.Role {
	case "user":
		msgs, err := userMessages(&m.Content, param)
		return msgs, nil, err
	case "assistant":
		return assistantMessage(&m.Content, param)
	case "":
		return nil, nil, invalidMsg(param+".role", param+".role: Field required")
	}
	return nil, nil, invalidMsg(param+".role", fmt.Sprintf("%s.role: Input should be 'user' or 'assistant', got %q", param, llm.Clip(m.Role, 64)))
}

func userMessages(c *anthropicwire.Content, param string) ([]llm.Message, error) {
	if !c.IsBlocks {
		return []llm.Message{{Role: "user", Content: llm.TextContent(c.Text)}}, nil
	}
	var out []llm.Message
	var parts, toolImages []llm.ContentPart
	for j := range c.Blocks {
		b := &c.Blocks[j]
		bp := fmt.Sprintf("%s.content.%d", param, j)
		switch b.Type {
		case "tool_result":
			if b.ToolUseID == "" {
				return nil, invalidMsg(bp+".tool_use_id", bp+".tool_use_id: Field required")
			}
			content, images, err := toolResult(b.Content, bp+".content")
			if err != nil {
				return nil, err
			}
			out = append(out, llm.Message{Role: "tool", ToolCallID: b.ToolUseID, Content: content, CacheControl: b.CacheControl})
			toolImages = append(toolImages, images...)
		default:
			p, err := userPart(b, bp)
			if err != nil {
				return nil, err
			}
			p.CacheControl = b.CacheControl
			parts = append(parts, p)
		}
	}
	if parts = append(toolImages, parts...); len(parts) > 0 || len(out) == 0 {
		if parts == nil {
			parts = []llm.ContentPart{}
		}
		out = append(out, llm.Message{Role: "user", Content: llm.Content{Parts: parts}})
	}
	return out, nil
}

// userPart translates a user block other than a tool result.
func userPart(b *anthropicwire.Block, param string) (llm.ContentPart, error) {
	switch b.Type {
	case "text":
		return llm.ContentPart{Type: "text", Text: b.Text}, nil
	case "image":
		url, err := imageURL(b.Source, param+".source")
		if err != nil {
			return llm.ContentPart{}, err
		}
		return llm.ContentPart{Type: "image_url", ImageURL: &llm.ImageURL{URL: url}}, nil
	case "document":
		s := b.Source
		if s == nil {
			return llm.ContentPart{}, invalidMsg(param+".source", param+".source: Field required")
		}
		switch {
		case s.Type == "base64" && s.MediaType == "application/pdf" && s.Data != "":
			name := b.Title
			if name == "" {
				name = "document.pdf"
			}
			return llm.ContentPart{Type: "file", File: &llm.File{Filename: name, FileData: "data:application/pdf;base64," + s.Data}}, nil
		case s.Type == "text":
			return llm.ContentPart{Type: "text", Text: s.Data}, nil
		}
		return llm.ContentPart{}, invalidMsg(param+".source", param+".source: tollgate accepts documents as base64 PDFs (media_type application/pdf) or plain text")
	case "":
		return llm.ContentPart{}, invalidMsg(param+".type", param+".type: Field required")
	}
	return llm.ContentPart{}, invalidMsg(param+".type", fmt.Sprintf("%s.type: %q blocks are not supported in user turns by tollgate", param, llm.Clip(b.Type, 64)))
}

func imageURL(s *anthropicwire.Source, param string) (string, error) {
	if s == nil {
		return "", invalidMsg(param, param+": Field required")
	}
	switch s.Type {
	case "base64":
		switch s.MediaType {
		case "image/jpeg", "image/png", "image/gif", "image/webp":
		default:
			return "", invalidMsg(param+".media_type", fmt.Sprintf("%s.media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp', got %q", param, llm.Clip(s.MediaType, 64)))
		}
		if s.Data == "" {
			return "", invalidMsg(param+".data", param+".data: Field required")
		}
		return "data:" + s.MediaType + ";base64," + s.Data, nil
	case "url":
		if !strings.HasPrefix(s.URL, "https://") && !strings.HasPrefix(s.URL, "http://") {
			return "", invalidMsg(param+".url", param+".url: must be an http(s) URL")
		}
		return s.URL, nil
	}
	return "", invalidMsg(param+".type", fmt.Sprintf("%s.type: Input should be 'base64' or 'url', got %q", param, llm.Clip(s.Type, 64)))
}

// toolResult is a tool_result's content for a tool message (a string, or
// text parts) and its images, which travel in a user message.
func toolResult(c *anthropicwire.Content, param string) (llm.Content, []llm.ContentPart, error) {
	if c == nil {
		return llm.TextContent(""), nil, nil
	}
	if !c.IsBlocks {
		return llm.TextContent(c.Text), nil, nil
	}
	parts := []llm.ContentPart{}
	var images []llm.ContentPart
	for j := range c.Blocks {
		b := &c.Blocks[j]
		bp := fmt.Sprintf("%s.%d", param, j)
		switch b.Type {
		case "text":
			parts = append(parts, llm.ContentPart{Type: "text", Text: b.Text})
		case "image":
			url, err := imageURL(b.Source, bp+".source")
			if err != nil {
				return llm.Content{}, nil, err
			}
			images = append(images, llm.ContentPart{Type: "image_url", ImageURL: &llm.ImageURL{URL: url}})
		default:
			return llm.Content{}, nil, invalidMsg(bp+".type", fmt.Sprintf("%s.type: tool results may hold text and image blocks, got %q", bp, llm.Clip(b.Type, 64)))
		}
	}
	return llm.Content{Parts: parts}, images, nil
}

func assistantMessage(c *anthropicwire.Content, param string) ([]llm.Message, *reasoning, error) {
	m := llm.Message{Role: "assistant"}
	if !c.IsBlocks {
		m.Content = llm.TextContent(c.Text)
		return []llm.Message{m}, nil, nil
	}
	var parts []llm.ContentPart
	var thought *reasoning
	for j := range c.Blocks {
		b := &c.Blocks[j]
		bp := fmt.Sprintf("%s.content.%d", param, j)
		switch b.Type {
		case "text":
			parts = append(parts, llm.ContentPart{Type: "text", Text: b.Text, CacheControl: b.CacheControl})
		case "tool_use":
			if b.ID == "" || b.Name == "" {
				return nil, nil, invalidMsg(bp, bp+": tool_use blocks need an id and a name")
			}
			args, err := toolArgs(b.Input)
			if err != nil {
				return nil, nil, invalidMsg(bp+".input", bp+".input: "+err.Error())
			}
			m.ToolCalls = append(m.ToolCalls, llm.ToolCall{ID: b.ID, Type: "function", Function: llm.FunctionCall{Name: b.Name, Arguments: args}})
		case "thinking":
			if thought == nil {
				thought = &reasoning{}
			}
			thought.text += b.Thinking
			thought.signature = b.Signature
		case "redacted_thinking":
			// Encrypted reasoning only Anthropic can read: nothing to carry.
		default:
			return nil, nil, invalidMsg(bp+".type", fmt.Sprintf("%s.type: %q blocks are not supported in assistant turns by tollgate", bp, llm.Clip(b.Type, 64)))
		}
	}
	switch {
	case parts != nil:
		m.Content = llm.Content{Parts: parts}
	case m.ToolCalls != nil:
		m.Content = llm.Content{Null: true}
	default:
		m.Content = llm.TextContent("")
	}
	return []llm.Message{m}, thought, nil
}

// toolArgs is a tool_use input as OpenAI's arguments string.
func toolArgs(input json.RawMessage) (string, error) {
	input = bytes.TrimSpace(input)
	if len(input) == 0 {
		return "{}", nil
	}
	if input[0] != '{' {
		return "", errors.New("Input should be an object")
	}
	var b bytes.Buffer
	if err := json.Compact(&b, input); err != nil {
		return "", err
	}
	return b.String(), nil
}

func chatTools(r *anthropicwire.Request, out *chatBody) error {
	for i, t := range r.Tools {
		param := fmt.Sprintf("tools.%d", i)
		if t.Type != "" && t.Type != "custom" {
			return invalidMsg(param+".type", fmt.Sprintf("%s.type: server tools (%q) are not supported by tollgate", param, llm.Clip(t.Type, 64)))
		}
		if t.Name == "" {
			return invalidMsg(param+".name", param+".name: Field required")
		}
		if len(t.InputSchema) == 0 {
			return invalidMsg(param+".input_schema", param+".input_schema: Field required")
		}
		out.Tools = append(out.Tools, llm.Tool{Type: "function", CacheControl: t.CacheControl,
			Function: llm.FunctionDef{Name: t.Name, Description: t.Description, Parameters: t.InputSchema, Strict: t.Strict}})
	}
	tc := r.ToolChoice
	if tc == nil {
		return nil
	}
	switch tc.Type {
	case "auto":
		out.ToolChoice = json.RawMessage(`"auto"`)
	case "any":
		out.ToolChoice = json.RawMessage(`"required"`)
	case "none":
		out.ToolChoice = json.RawMessage(`"none"`)
	case "tool":
		if tc.Name == "" {
			return invalidMsg("tool_choice.name", "tool_choice.name: Field required")
		}
		out.ToolChoice = rawJSON(map[string]any{"type": "function", "function": map[string]string{"name": tc.Name}})
	default:
		return invalidMsg("tool_choice.type", fmt.Sprintf("tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none', got %q", llm.Clip(tc.Type, 64)))
	}
	if len(out.Tools) == 0 {
		out.ToolChoice = nil // OpenAI refuses a tool_choice without tools
		return nil
	}
	if p := tc.DisableParallelToolUse; p != nil && *p && tc.Type != "none" {
		f := false
		out.ParallelToolCalls = &f
	}
	return nil
}

// messages serves POST /v1/messages.
func (s *server) messages(c *gin.Context) {
	c.Header(headerAnthropicRequestID, callOf(c).id)
	m, ok := decodeSeeded(s, c, messagesSurface, decodeMessages)
	if !ok {
		return
	}
	caller, err := callerOf(c, m.chat)
	if err != nil {
		writeError(c, err)
		return
	}
	if m.stream {
		s.messagesStream(c, caller, m)
		return
	}
	resp, meta, err := s.Gateway.Chat(c.Request.Context(), caller, m.chat)
	s.answer(c, meta, err, func() ([]byte, any) {
		var prompt, completion int
		if meta != nil {
			prompt, completion = meta.PromptTokens, meta.CompletionTokens
		}
		return nil, messageOf(resp, m.model, prompt, completion)
	})
}

// countTokens serves POST /v1/messages/count_tokens: the prompt counted
// by tollgate's tokenizer for the model (the first of its route the key
// may use), as the gateway counts it for budgets. Nothing is charged.
func (s *server) countTokens(c *gin.Context) {
	c.Header(headerAnthropicRequestID, callOf(c).id)
	m, ok := decodeBody(s, c, decodeCountTokens)
	if !ok {
		return
	}
	caller, err := callerOf(c, nil)
	if err != nil {
		writeError(c, err)
		return
	}
	n, err := s.Gateway.CountTokens(caller, m.chat)
	if err != nil {
		writeError(c, err)
		return
	}
	c.Data(http.StatusOK, "application/json", []byte(`{"input_tokens":`+strconv.Itoa(n)+`}`))
}

// messageID is an answer's id in Anthropic's form.
func messageID(id string) string {
	if strings.HasPrefix(id, "msg_") {
		return id
	}
	return "msg_" + id
}

// toolInput is a call's arguments as a tool_use input: an object; what
// is not one (a model's broken JSON) is kept as {"arguments": "..."} so
// nothing is lost.
func toolInput(args string) json.RawMessage {
	a := bytes.TrimSpace([]byte(args))
	if len(a) == 0 {
		return json.RawMessage("{}")
	}
	if a[0] == '{' && json.Valid(a) {
		return a
	}
	b, _ := json.Marshal(map[string]string{"arguments": args})
	return b
}

// messageOf translates a chat answer. Usage the provider did not report
// is tollgate's own count (prompt, completion).
func messageOf(resp *llm.ChatResponse, model string, prompt, completion int) *anthropicwire.Response {
	out := &anthropicwire.Response{ID: messageID(resp.ID), Type: "message", Role: "assistant", Model: resp.Model, Content: []anthropicwire.ResponseBlock{}}
	if out.Model == "" {
		out.Model = model
	}
	if resp.Usage != nil {
		out.Usage = anthropicwire.UsageOf(resp.Usage)
	} else {
		out.Usage = anthropicwire.Usage{InputTokens: prompt, OutputTokens: completion}
	}
	if len(resp.Choices) == 0 {
		stop := "end_turn"
		out.StopReason = &stop
		return out
	}
	ch := &resp.Choices[0]
	msg := &ch.Message
	out.Content = make([]anthropicwire.ResponseBlock, 0, len(msg.ToolCalls)+2) // thinking, text, calls
	if msg.ReasoningContent != "" || msg.ReasoningSignature != "" {
		out.Content = append(out.Content, anthropicwire.ResponseBlock{Type: "thinking", Thinking: msg.ReasoningContent, Signature: msg.ReasoningSignature})
	}
	if text := msg.Content.String(); text != "" {
		out.Content = append(out.Content, anthropicwire.ResponseBlock{Type: "text", Text: text})
	}
	for _, tc := range msg.ToolCalls {
		out.Content = append(out.Content, anthropicwire.ResponseBlock{Type: "tool_use", ID: tc.ID, Name: tc.Function.Name, Input: toolInput(tc.Function.Arguments)})
	}
	stop := anthropicwire.StopReason(ch.FinishReason, ch.StopSequence)
	out.StopReason = &stop
	if ch.StopSequence != "" {
		out.StopSequence = &ch.StopSequence
	}
	return out
}
