package providers

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/tollgate/tollgate/internal/anthropicwire"
	"github.com/tollgate/tollgate/pkg/llm"
)

// The Messages request's wire types are anthropicwire's, shared with the
// HTTP layer that decodes Anthropic clients' bodies.

// emptySchema is the input_schema of a function declared without
// parameters: Anthropic requires one, OpenAI does not.
var emptySchema = json.RawMessage(`{"type":"object","properties":{}}`)

// anthropicBody translates an OpenAI chat completion request into a
// Messages request. The wire formats differ, so the client's bytes cannot
// travel as they are: fields without an Anthropic equivalent are dropped
// or rejected, as follows.
//
//   - system and developer messages, wherever they are, become the
//     top-level system (a string when there is one plain-text message,
//     else text blocks, in order).
//   - user and assistant turns become messages of content blocks;
//     consecutive turns of one role are merged, since Anthropic requires
//     alternation. Empty text is skipped (Anthropic rejects empty text
//     blocks), and a turn left with no blocks is dropped.
//   - image_url parts: data: URLs become base64 image sources, http(s) URLs
//     url sources; detail is dropped. file parts holding a base64 PDF
//     (file_data) become document blocks, their filename the title.
//     input_audio, files by id and other parts are a 400.
//   - reasoning_effort becomes thinking with a budget (low 2048, medium
//     8192, high 24576 tokens, below max_tokens), or the client's exact
//     budget when it sent one (an Anthropic client's thinking.budget_tokens,
//     ThinkingBudget). An assistant turn's reasoning_content travels back
//     as a thinking block only with its signature (an Anthropic answer's):
//     Anthropic refuses unsigned thinking.
//   - assistant tool_calls become tool_use blocks whose input is the parsed
//     arguments (an object; "" means {}; anything else is a 400 naming
//     the call). tool messages become tool_result blocks in a user turn,
//     consecutive results sharing one. The legacy function role is a 400.
//   - cache_control breakpoints an Anthropic client set (in process only,
//     llm.ContentPart.CacheControl) are put back on their blocks and tools.
//   - message names are dropped (Anthropic has no per-message name).
//     Assistant refusal parts are dropped.
//   - tools become {name, description, input_schema, strict}; custom tools
//     are a 400. tool_choice auto/none/required/function becomes
//     auto/none/any/tool; parallel_tool_calls=false becomes
//     disable_parallel_tool_use (on tool_choice, where Anthropic keeps it).
//     tool_choice without tools is dropped.
//   - max_tokens, which Anthropic requires, is maxTokens: the client's
//     max_completion_tokens (else max_tokens) lowered to what the gateway
//     reserved, else the configured default (Anthropic.body).
//   - temperature is clamped to Anthropic's 0..1: OpenAI's 0..2 scale is
//     not the same scale doubled (0.7 means roughly the same on both), so
//     values are kept and only those above 1 become 1. top_p is passed on.
//   - stop (a string or an array) becomes stop_sequences; user becomes
//     metadata.user_id.
//   - response_format json_schema becomes output_config.format (Anthropic's
//     structured outputs, constrained decoding; the answer is JSON text).
//     json_object has no equivalent (Anthropic cannot promise "some JSON"
//     without a schema) and is a 400 rather than a silent downgrade; text
//     is the default and dropped.
//   - n > 1 is a 400: Anthropic returns one completion per call.
//   - Dropped, having no equivalent: seed, logprobs, top_logprobs,
//     frequency_penalty, presence_penalty, logit_bias, store, metadata,
//     service_tier, modalities, audio, prediction,
//     web_search_options, stream_options (usage is always in the stream and
//     the translator emits the usage chunk), and any field tollgate does
//     not know.
func anthropicBody(chat *llm.ChatRequest, model string, maxTokens int, stream bool) ([]byte, error) {
	if chat.Choices() > 1 {
		return nil, llm.InvalidParam("n", "n > 1 is not supported by this model's provider (Anthropic returns one completion per request)")
	}
	// One allocation holds the request and the values its pointers need.
	b := &struct {
		req         anthropicwire.Request
		maxTokens   int
		temperature float64
		metadata    anthropicwire.Metadata
	}{maxTokens: maxTokens}
	req := &b.req
	req.Model, req.MaxTokens, req.TopP = model, &b.maxTokens, chat.TopP
	if stream {
		req.Stream = &anthropicwire.True
	}
	if t := chat.Temperature; t != nil {
		b.temperature = min(max(*t, 0), 1)
		req.Temperature = &b.temperature
	}
	req.StopSequences = chat.StopSequences()
	if chat.User != "" {
		b.metadata.UserID = chat.User
		req.Metadata = &b.metadata
	}
	if err := setResponseFormat(req, chat.ResponseFormat); err != nil {
		return nil, err
	}
	system, err := translateMessages(req, chat.Messages)
	if err != nil {
		return nil, err
	}
	req.System = systemContent(system)
	if err := translateTools(req, chat); err != nil {
		return nil, err
	}
	req.Thinking = thinking(chat, maxTokens)
	body, err := marshalRaw(req)
	if err != nil {
		return nil, fmt.Errorf("providers: encoding the anthropic request: %w", err)
	}
	return body, nil
}

// marshalRaw encodes v without HTML escaping (llm.MarshalNoEscape).
func marshalRaw(v any) (json.RawMessage, error) { return llm.MarshalNoEscape(v) }

func setResponseFormat(req *anthropicwire.Request, rf *llm.ResponseFormat) error {
	if rf == nil {
		return nil
	}
	switch rf.Type {
	case "", "text":
		return nil
	case "json_schema":
		var js struct {
			Schema json.RawMessage `json:"schema"`
		}
		if err := json.Unmarshal(rf.JSONSchema, &js); err != nil || len(bytes.TrimSpace(js.Schema)) == 0 || bytes.TrimSpace(js.Schema)[0] != '{' {
			return llm.InvalidParam("response_format.json_schema.schema", "response_format json_schema needs a json_schema.schema object")
		}
		req.OutputConfig = &anthropicwire.OutputConfig{Format: &anthropicwire.OutputFormat{Type: "json_schema", Schema: js.Schema}}
		return nil
	case "json_object":
		return llm.InvalidParam("response_format", "response_format json_object is not supported by this model's provider (Anthropic); send a json_schema instead")
	}
	return llm.InvalidParam("response_format.type", fmt.Sprintf("response_format type %q is not supported by this model's provider (Anthropic)", rf.Type))
}

// systemPart is one system or developer message: its text blocks, or a
// string when it was sent as one (a lone plain message travels as the plain
// string system).
type systemPart struct {
	blocks []anthropicwire.Block
	plain  bool
}

// systemContent is the top-level system: nil for none.
func systemContent(sys []systemPart) *anthropicwire.Content {
	if len(sys) == 1 && sys[0].plain {
		c := anthropicwire.TextContent(sys[0].blocks[0].Text)
		return &c
	}
	var blocks []anthropicwire.Block
	for _, s := range sys {
		blocks = append(blocks, s.blocks...)
	}
	if len(blocks) == 0 {
		return nil
	}
	c := anthropicwire.BlockContent(blocks)
	return &c
}

// translateMessages fills req.Messages and returns the system prompt.
func translateMessages(req *anthropicwire.Request, msgs []llm.Message) ([]systemPart, error) {
	var system []systemPart
	add := func(role string, blocks []anthropicwire.Block) {
		if len(blocks) == 0 {
			return
		}
		if n := len(req.Messages); n > 0 && req.Messages[n-1].Role == role {
			c := &req.Messages[n-1].Content
			c.Blocks = append(c.Blocks, blocks...)
			return
		}
		req.Messages = append(req.Messages, anthropicwire.Message{Role: role, Content: anthropicwire.BlockContent(blocks)})
	}
	for i := range msgs {
		m := &msgs[i]
		param := fmt.Sprintf("messages[%d]", i)
		switch m.Role {
		case "system", "developer":
			for j, p := range m.Content.Parts {
				if p.Type != "text" {
					return nil, llm.InvalidParam(fmt.Sprintf("%s.content[%d].type", param, j), fmt.Sprintf("%s messages may only hold text parts, got %q", m.Role, p.Type))
				}
			}
			blocks, err := contentBlocks(m.Content, param)
			if err != nil {
				return nil, err
			}
			if len(blocks) > 0 {
				system = append(system, systemPart{blocks: blocks, plain: m.Content.Parts == nil})
			}
		case "user":
			blocks, err := contentBlocks(m.Content, param)
			if err != nil {
				return nil, err
			}
			add("user", blocks)
		case "assistant":
			blocks, err := contentBlocks(m.Content, param)
			if err != nil {
				return nil, err
			}
			if m.ReasoningSignature != "" {
				// Anthropic wants the turn's thinking first, signed.
				blocks = append([]anthropicwire.Block{{Type: "thinking", Thinking: m.ReasoningContent, Signature: m.ReasoningSignature}}, blocks...)
			}
			for j, tc := range m.ToolCalls {
				input, err := toolInput(tc.Function.Arguments)
				if err != nil {
					return nil, llm.InvalidParam(fmt.Sprintf("%s.tool_calls[%d].function.arguments", param, j),
						"tool call arguments must be a JSON object to be sent to this model's provider (Anthropic): "+err.Error())
				}
				blocks = append(blocks, anthropicwire.Block{Type: "tool_use", ID: tc.ID, Name: tc.Function.Name, Input: input})
			}
			add("assistant", blocks)
		case "tool":
			b := anthropicwire.Block{Type: "tool_result", ToolUseID: m.ToolCallID, CacheControl: m.CacheControl}
			content, err := toolResultContent(m.Content, param)
			if err != nil {
				return nil, err
			}
			b.Content = content
			add("user", []anthropicwire.Block{b})
		default: // "function": the deprecated form has no id to link a result to its call
			return nil, llm.InvalidParam(param+".role", fmt.Sprintf("role %q is not supported by this model's provider (Anthropic); use tool messages", m.Role))
		}
	}
	if req.Messages == nil {
		req.Messages = []anthropicwire.Message{}
	}
	return system, nil
}

// contentBlocks translates user or assistant content.
func contentBlocks(c llm.Content, param string) ([]anthropicwire.Block, error) {
	if c.Parts == nil {
		if c.Text == "" {
			return nil, nil
		}
		return []anthropicwire.Block{{Type: "text", Text: c.Text}}, nil
	}
	blocks := make([]anthropicwire.Block, 0, len(c.Parts))
	for j, p := range c.Parts {
		switch p.Type {
		case "text":
			if p.Text != "" {
				blocks = append(blocks, anthropicwire.Block{Type: "text", Text: p.Text, CacheControl: p.CacheControl})
			}
		case "image_url":
			src, err := imageSource(p.ImageURL)
			if err != nil {
				return nil, llm.InvalidParam(fmt.Sprintf("%s.content[%d].image_url.url", param, j), err.Error())
			}
			blocks = append(blocks, anthropicwire.Block{Type: "image", Source: src, CacheControl: p.CacheControl})
		case "file":
			src, title, err := documentSource(p.File)
			if err != nil {
				return nil, llm.InvalidParam(fmt.Sprintf("%s.content[%d].file", param, j), err.Error())
			}
			blocks = append(blocks, anthropicwire.Block{Type: "document", Source: src, Title: title, CacheControl: p.CacheControl})
		case "refusal":
			// An earlier refusal: Anthropic has no such block, and
			// replaying it as text would put words in the model's mouth.
		default:
			return nil, llm.InvalidParam(fmt.Sprintf("%s.content[%d].type", param, j),
				fmt.Sprintf("content part type %q is not supported by this model's provider (Anthropic)", p.Type))
		}
	}
	return blocks, nil
}

// imageSource reads an image_url: a base64 data URL or an http(s) URL.
func imageSource(img *llm.ImageURL) (*anthropicwire.Source, error) {
	if img == nil {
		return nil, fmt.Errorf("image_url parts need an image_url.url")
	}
	u := img.URL
	if rest, ok := cutPrefixFold(u, "data:"); ok {
		meta, data, ok := strings.Cut(rest, ",")
		mediaType, enc, _ := strings.Cut(meta, ";")
		if !ok || !strings.EqualFold(enc, "base64") || mediaType == "" {
			return nil, fmt.Errorf("image data URLs must look like data:<media type>;base64,<data>")
		}
		return &anthropicwire.Source{Type: "base64", MediaType: strings.ToLower(mediaType), Data: data}, nil
	}
	if _, ok := cutPrefixFold(u, "https://"); ok {
		return &anthropicwire.Source{Type: "url", URL: u}, nil
	}
	if _, ok := cutPrefixFold(u, "http://"); ok {
		return &anthropicwire.Source{Type: "url", URL: u}, nil
	}
	return nil, fmt.Errorf("image URLs must be http(s) or base64 data URLs")
}

// documentSource reads a file part: a base64 data URL of a PDF.
func documentSource(f *llm.File) (*anthropicwire.Source, string, error) {
	if f == nil || f.FileData == "" {
		return nil, "", fmt.Errorf("file parts need file.file_data (files by id are not supported by this model's provider, Anthropic)")
	}
	rest, ok := cutPrefixFold(f.FileData, "data:")
	meta, data, ok2 := strings.Cut(rest, ",")
	mediaType, enc, _ := strings.Cut(meta, ";")
	if !ok || !ok2 || !strings.EqualFold(enc, "base64") || !strings.EqualFold(mediaType, "application/pdf") {
		return nil, "", fmt.Errorf("file_data must look like data:application/pdf;base64,<data> for this model's provider (Anthropic)")
	}
	return &anthropicwire.Source{Type: "base64", MediaType: "application/pdf", Data: data}, f.Filename, nil
}

// Thinking budgets for reasoning_effort; Anthropic's minimum is 1024.
var effortBudget = map[string]int{"minimal": 1024, "low": 2048, "medium": 8192, "high": 24576}

// thinking is the thinking setting for the request, nil for none. The
// budget stays below max_tokens, as Anthropic requires; a max_tokens at or
// below its 1024 minimum leaves thinking off.
func thinking(chat *llm.ChatRequest, maxTokens int) *anthropicwire.Thinking {
	budget := chat.ThinkingBudget
	if budget <= 0 {
		budget = effortBudget[chat.ReasoningEffort]
	}
	if budget <= 0 {
		return nil
	}
	budget = min(budget, maxTokens-1)
	if budget < 1024 {
		return nil
	}
	return &anthropicwire.Thinking{Type: "enabled", BudgetTokens: budget}
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}

// toolInput parses a call's arguments into the object Anthropic wants.
func toolInput(args string) (json.RawMessage, error) {
	args = strings.TrimSpace(args)
	if args == "" {
		return json.RawMessage("{}"), nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal([]byte(args), &obj); err != nil {
		return nil, err
	}
	if obj == nil {
		return json.RawMessage("{}"), nil
	}
	return json.RawMessage(args), nil
}

// toolResultContent is a tool message's content: a string, or text blocks
// when the client sent parts. Empty content is omitted (nil).
func toolResultContent(c llm.Content, param string) (*anthropicwire.Content, error) {
	if c.Parts == nil {
		if c.Text == "" {
			return nil, nil
		}
		out := anthropicwire.TextContent(c.Text)
		return &out, nil
	}
	blocks, err := contentBlocks(c, param)
	if err != nil || len(blocks) == 0 {
		return nil, err
	}
	out := anthropicwire.BlockContent(blocks)
	return &out, nil
}

func translateTools(req *anthropicwire.Request, chat *llm.ChatRequest) error {
	for i, t := range chat.Tools {
		if t.Type != "function" {
			return llm.InvalidParam(fmt.Sprintf("tools[%d].type", i), fmt.Sprintf("tool type %q is not supported by this model's provider (Anthropic)", t.Type))
		}
		schema := t.Function.Parameters
		if len(bytes.TrimSpace(schema)) == 0 || string(bytes.TrimSpace(schema)) == "null" {
			schema = emptySchema
		}
		req.Tools = append(req.Tools, anthropicwire.Tool{Name: t.Function.Name, Description: t.Function.Description, InputSchema: schema, Strict: t.Function.Strict, CacheControl: t.CacheControl})
	}
	if len(req.Tools) == 0 {
		return nil // Anthropic rejects a tool_choice without tools
	}
	choice := &anthropicwire.ToolChoice{Type: "auto"}
	explicit := false
	if raw := bytes.TrimSpace(chat.ToolChoice); len(raw) > 0 && string(raw) != "null" {
		explicit = true
		var s string
		if json.Unmarshal(raw, &s) == nil {
			switch s {
			case "auto":
			case "none":
				choice.Type = "none"
			case "required":
				choice.Type = "any"
			default:
				return llm.InvalidParam("tool_choice", fmt.Sprintf("invalid tool_choice %q: expected auto, none, required or an object", s))
			}
		} else {
			var obj struct {
				Type     string `json:"type"`
				Function struct {
					Name string `json:"name"`
				} `json:"function"`
			}
			if err := json.Unmarshal(raw, &obj); err != nil || obj.Type != "function" || obj.Function.Name == "" {
				return llm.InvalidParam("tool_choice", `tool_choice objects must be {"type":"function","function":{"name":...}} for this model's provider (Anthropic)`)
			}
			choice.Type, choice.Name = "tool", obj.Function.Name
		}
	}
	if p := chat.ParallelToolCalls; p != nil && !*p && choice.Type != "none" {
		choice.DisableParallelToolUse = &anthropicwire.True
		explicit = true
	}
	if explicit {
		req.ToolChoice = choice
	}
	return nil
}
