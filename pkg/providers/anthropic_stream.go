package providers

import (
	"bytes"
	"context"

	"github.com/tollgate/tollgate/internal/anthropicwire"
	"github.com/tollgate/tollgate/pkg/llm"
)

// Stream sends a streamed Messages call and returns once the upstream
// answered with its headers; errors before the first event come from Stream
// itself, so the gateway can still fall back. Recv yields OpenAI chunks.
func (a *Anthropic) Stream(ctx context.Context, r *Request) (Stream, error) {
	body, err := a.body(r, true)
	if err != nil {
		return nil, err
	}
	tr := &antTranslator{created: a.now().Unix(),
		includeUsage: r.IncludeUsage || (r.Chat.StreamOptions != nil && r.Chat.StreamOptions.IncludeUsage)}
	return a.stream(ctx, r, a.url, a.header(true, r.APIKey), body, tr)
}

// streamJSONError maps a JSON answer to a streaming request: an error
// envelope, else a message that was not streamed.
func (a *Anthropic) streamJSONError(body []byte) *llm.Error {
	var env struct {
		Error *antError `json:"error"`
	}
	if decodeJSON(body, &env) == nil && env.Error != nil {
		return anthropicEventError(a.name, env.Error)
	}
	e := badResponse(a.name, "upstream answered JSON to a streaming request: "+snippet(string(body)), nil)
	e.Retryable = false
	return e
}

// antTranslator turns Messages stream events into OpenAI chunks:
//
//   - message_start: the first chunk (role assistant, empty content); its
//     usage holds the input and cache counts.
//   - content_block_start of tool_use: a tool call delta with the call's
//     index among tool calls, id, name and empty arguments; of text: its
//     text if any; other blocks (thinking, server tools) are skipped.
//   - content_block_delta: text_delta becomes a content delta,
//     input_json_delta an arguments fragment of its call, thinking_delta a
//     reasoning_content delta and signature_delta the reasoning's signature
//     (in process only); citation deltas are skipped.
//   - message_delta: a chunk with the finish_reason; its usage updates the
//     counts.
//   - message_stop: the end; with includeUsage, a final usage-only chunk
//     (choices: []) first, as OpenAI sends with include_usage.
//   - content_block_stop of a tool_use that streamed no input: "{}" as its
//     arguments, so clients that parse them get JSON.
//   - ping, other content_block_stops and unknown events: nothing.
//   - error: an *llm.Error.
type antTranslator struct {
	includeUsage bool
	id, model    string
	created      int64
	started      bool // message_start seen: usage is known
	usage        antUsage
	toolIndex    map[int]int         // content block index → tool call index
	toolArgs     []bool              // by tool call index: some arguments were sent
	ev           anthropicwire.Event // reused
	index        int                 // ev.Index's value, reused
}

func (t *antTranslator) chunk(d llm.Delta, finish *string) *llm.ChatChunk {
	return &llm.ChatChunk{ID: t.id, Object: "chat.completion.chunk", Created: t.created, Model: t.model,
		Choices: []llm.ChunkChoice{{Index: 0, Delta: d, FinishReason: finish}}}
}

func (t *antTranslator) final() string { return "message_stop" }

// decode translates one event, appending chunks to out. done reports
// message_stop.
func (t *antTranslator) decode(provider string, data, name []byte, out []*llm.ChatChunk) (_ []*llm.ChatChunk, done bool, _ error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return out, false, nil
	}
	t.index = 0
	t.ev = anthropicwire.Event{Index: &t.index} // decoded in place: no allocation an event
	ev := &t.ev
	if err := decodeJSON(data, ev); err != nil {
		if string(name) == "error" {
			return out, false, anthropicEventError(provider, &antError{Message: snippet(string(data))})
		}
		return out, false, badResponse(provider, "upstream sent a malformed stream event: "+snippet(string(data)), err)
	}
	index := 0
	if ev.Index != nil { // null
		index = *ev.Index
	}
	typ := ev.Type
	if typ == "" {
		typ = string(name)
	}
	switch typ {
	case "message_start":
		if m := ev.Message; m != nil {
			t.id, t.model, t.usage = m.ID, m.Model, m.Usage
		}
		t.started = true
		empty := ""
		out = append(out, t.chunk(llm.Delta{Role: "assistant", Content: &empty}, nil))
	case "content_block_start":
		b := ev.ContentBlock
		if b == nil {
			break
		}
		switch b.Type {
		case "text":
			if b.Text != "" {
				text := b.Text
				out = append(out, t.chunk(llm.Delta{Content: &text}, nil))
			}
		case "tool_use":
			if t.toolIndex == nil {
				t.toolIndex = make(map[int]int, 2)
			}
			i := len(t.toolArgs)
			t.toolIndex[index] = i
			t.toolArgs = append(t.toolArgs, false)
			out = append(out, t.chunk(llm.Delta{ToolCalls: []llm.ToolCall{{Index: &i, ID: b.ID, Type: "function",
				Function: llm.FunctionCall{Name: b.Name, Arguments: ""}}}}, nil))
		}
	case "content_block_delta":
		d := ev.Delta
		if d == nil {
			break
		}
		switch d.Type {
		case "text_delta":
			if d.Text != "" {
				text := d.Text
				out = append(out, t.chunk(llm.Delta{Content: &text}, nil))
			}
		case "thinking_delta":
			if d.Thinking != "" {
				text := d.Thinking
				out = append(out, t.chunk(llm.Delta{ReasoningContent: &text}, nil))
			}
		case "signature_delta":
			if d.Signature != "" {
				out = append(out, t.chunk(llm.Delta{ReasoningSignature: d.Signature}, nil))
			}
		case "input_json_delta":
			i, ok := t.toolIndex[index]
			if ok && d.PartialJSON != "" {
				t.toolArgs[i] = true
				out = append(out, t.chunk(llm.Delta{ToolCalls: []llm.ToolCall{{Index: &i,
					Function: llm.FunctionCall{Arguments: d.PartialJSON}}}}, nil))
			}
		}
	case "content_block_stop":
		// A call without input streams no fragment; OpenAI clients parse
		// the arguments, and "" is not JSON.
		if i, ok := t.toolIndex[index]; ok && !t.toolArgs[i] {
			t.toolArgs[i] = true
			out = append(out, t.chunk(llm.Delta{ToolCalls: []llm.ToolCall{{Index: &i,
				Function: llm.FunctionCall{Arguments: "{}"}}}}, nil))
		}
	case "message_delta":
		if u := ev.Usage; u != nil {
			set := func(dst *int, src *int) {
				if src != nil {
					*dst = *src
				}
			}
			set(&t.usage.InputTokens, u.InputTokens)
			set(&t.usage.OutputTokens, u.OutputTokens)
			set(&t.usage.CacheCreationInputTokens, u.CacheCreationInputTokens)
			set(&t.usage.CacheReadInputTokens, u.CacheReadInputTokens)
		}
		if d := ev.Delta; d != nil && d.StopReason != "" {
			finish := anthropicwire.FinishReason(d.StopReason)
			c := t.chunk(llm.Delta{}, &finish)
			c.Choices[0].StopSequence = d.StopSequence
			out = append(out, c)
		}
	case "message_stop":
		if t.includeUsage && t.started {
			c := &llm.ChatChunk{ID: t.id, Object: "chat.completion.chunk", Created: t.created, Model: t.model,
				Choices: []llm.ChunkChoice{}, Usage: t.usage.ToLLM()}
			out = append(out, c)
		}
		return out, true, nil
	case "error":
		obj := ev.Error
		if obj == nil {
			obj = &antError{Message: "upstream sent an error event: " + snippet(string(data))}
		}
		return out, false, anthropicEventError(provider, obj)
	}
	return out, false, nil
}
