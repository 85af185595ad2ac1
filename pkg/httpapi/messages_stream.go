package httpapi

import (
	"bytes"
	"encoding/json"
	"io"

	"github.com/gin-gonic/gin"

	"github.com/tollgate/tollgate/internal/anthropicwire"
	"github.com/tollgate/tollgate/pkg/gateway"
	"github.com/tollgate/tollgate/pkg/llm"
)

// messagesStream relays a streamed completion as Anthropic's event
// sequence.
func (s *server) messagesStream(c *gin.Context, caller gateway.Caller, m *messagesCall) {
	s.relay(c, caller, m.chat, func(meta *gateway.Meta) streamWriter {
		enc := &msgEncoder{w: c.Writer, model: m.model, requestID: callOf(c).id}
		if meta != nil {
			enc.prompt = meta.PromptTokens
		}
		return enc
	})
}

// msgEncoder turns chat chunks into Anthropic's stream events:
//
//   - the first chunk: message_start (empty content, the input tokens
//     tollgate counted, as the real count arrives only at the end) and a
//     ping;
//   - reasoning deltas: a thinking block's thinking_delta, the reasoning's
//     signature a signature_delta;
//   - content deltas: a text block's text_delta;
//   - a tool call's first fragment (its id and name): a tool_use block,
//     its argument fragments input_json_delta;
//   - a change of kind closes the open block (content_block_stop) and
//     starts the next, so blocks are sequential, as Anthropic sends them;
//   - finish_reason and the usage chunk are remembered; at the end the
//     open block is closed, message_delta carries the stop reason and the
//     whole usage, and message_stop ends the stream.
type msgEncoder struct {
	w         io.Writer
	model     string
	prompt    int
	requestID string

	started bool
	open    string // kind of the open block: "thinking" | "text" | "tool_use" | ""
	index   int    // its index; blocks so far = index+1 when open
	blocks  int
	tool    int // the open tool_use block's tool call index
	finish  string
	stopSeq string
	usage   *llm.Usage

	// Reused from event to event, which are encoded one at a time: the
	// encoder and its buffer, and what the events point to.
	buf   bytes.Buffer
	enc   *json.Encoder
	ev    anthropicwire.Event
	i     int
	block anthropicwire.ResponseBlock
	delt  anthropicwire.Delta
}

// event writes one SSE event.
func (e *msgEncoder) event(name string, v any) error {
	if e.enc == nil {
		e.enc = json.NewEncoder(&e.buf)
		e.enc.SetEscapeHTML(false)
	}
	e.buf.Reset()
	if err := e.enc.Encode(v); err != nil {
		return err
	}
	return sseEvent(e.w, name, bytes.TrimSuffix(e.buf.Bytes(), []byte("\n")))
}

// indexed writes a content_block_* event of the block at e.index.
func (e *msgEncoder) indexed(typ string, block *anthropicwire.ResponseBlock, d *anthropicwire.Delta) error {
	e.i = e.index
	e.ev = anthropicwire.Event{Type: typ, Index: &e.i, ContentBlock: block, Delta: d}
	return e.event(typ, &e.ev)
}

func (e *msgEncoder) start(chunk *llm.ChatChunk) error {
	e.started = true
	model := chunk.Model
	if model == "" {
		model = e.model
	}
	msg := &anthropicwire.Response{ID: messageID(chunk.ID), Type: "message", Role: "assistant", Model: model,
		Content: []anthropicwire.ResponseBlock{}, Usage: anthropicwire.Usage{InputTokens: e.prompt, OutputTokens: 1}}
	if err := e.event("message_start", &anthropicwire.Event{Type: "message_start", Message: msg}); err != nil {
		return err
	}
	return e.event("ping", &anthropicwire.Event{Type: "ping"})
}

// openBlock closes the open block and starts one of kind.
func (e *msgEncoder) openBlock(kind string, block anthropicwire.ResponseBlock) error {
	if err := e.closeBlock(); err != nil {
		return err
	}
	e.open, e.index = kind, e.blocks
	e.blocks++
	e.block = block
	return e.indexed("content_block_start", &e.block, nil)
}

func (e *msgEncoder) closeBlock() error {
	if e.open == "" {
		return nil
	}
	e.open = ""
	return e.indexed("content_block_stop", nil, nil)
}

func (e *msgEncoder) delta(d anthropicwire.Delta) error {
	e.delt = d
	return e.indexed("content_block_delta", nil, &e.delt)
}

func (e *msgEncoder) chunk(chunk *llm.ChatChunk) error {
	if !e.started {
		if err := e.start(chunk); err != nil {
			return err
		}
	}
	if chunk.Usage != nil {
		e.usage = chunk.Usage
	}
	if len(chunk.Choices) == 0 {
		return nil
	}
	ch := &chunk.Choices[0]
	d := &ch.Delta
	if d.ReasoningContent != nil && *d.ReasoningContent != "" {
		if e.open != "thinking" {
			if err := e.openBlock("thinking", anthropicwire.ResponseBlock{Type: "thinking"}); err != nil {
				return err
			}
		}
		if err := e.delta(anthropicwire.Delta{Type: "thinking_delta", Thinking: *d.ReasoningContent}); err != nil {
			return err
		}
	}
	if d.ReasoningSignature != "" {
		if e.open != "thinking" {
			if err := e.openBlock("thinking", anthropicwire.ResponseBlock{Type: "thinking"}); err != nil {
				return err
			}
		}
		if err := e.delta(anthropicwire.Delta{Type: "signature_delta", Signature: d.ReasoningSignature}); err != nil {
			return err
		}
	}
	text := ""
	if d.Content != nil {
		text = *d.Content
	}
	if text == "" && d.Refusal != nil {
		text = *d.Refusal
	}
	if text != "" {
		if e.open != "text" {
			if err := e.openBlock("text", anthropicwire.ResponseBlock{Type: "text"}); err != nil {
				return err
			}
		}
		if err := e.delta(anthropicwire.Delta{Type: "text_delta", Text: text}); err != nil {
			return err
		}
	}
	for _, tc := range d.ToolCalls {
		idx := 0
		if tc.Index != nil {
			idx = *tc.Index
		}
		if tc.ID != "" || e.open != "tool_use" || idx != e.tool {
			if err := e.openBlock("tool_use", anthropicwire.ResponseBlock{Type: "tool_use", ID: tc.ID, Name: tc.Function.Name, Input: json.RawMessage("{}")}); err != nil {
				return err
			}
			e.tool = idx
		}
		if tc.Function.Arguments != "" {
			if err := e.delta(anthropicwire.Delta{Type: "input_json_delta", PartialJSON: tc.Function.Arguments}); err != nil {
				return err
			}
		}
	}
	if ch.FinishReason != nil && *ch.FinishReason != "" {
		e.finish = *ch.FinishReason
	}
	if ch.StopSequence != "" {
		e.stopSeq = ch.StopSequence
	}
	return nil
}

// fail ends the stream with Anthropic's error event.
func (e *msgEncoder) fail(err *llm.Error) { _ = e.event("error", anthropicError(err, e.requestID)) }

// end closes the message: the open block, the stop reason and usage, and
// message_stop. A stream that produced no chunk still gets a whole
// (empty) message.
func (e *msgEncoder) end() error {
	if !e.started {
		if err := e.start(&llm.ChatChunk{}); err != nil {
			return err
		}
	}
	if err := e.closeBlock(); err != nil {
		return err
	}
	u := anthropicwire.UsageOf(e.usage)
	if e.usage == nil {
		u.InputTokens = e.prompt
	}
	stop := &anthropicwire.Delta{StopReason: anthropicwire.StopReason(e.finish, e.stopSeq), StopSequence: e.stopSeq}
	if err := e.event("message_delta", &anthropicwire.Event{Type: "message_delta", Delta: stop, Usage: &anthropicwire.DeltaUsage{
		InputTokens: &u.InputTokens, OutputTokens: &u.OutputTokens,
		CacheCreationInputTokens: &u.CacheCreationInputTokens, CacheReadInputTokens: &u.CacheReadInputTokens}}); err != nil {
		return err
	}
	return e.event("message_stop", &anthropicwire.Event{Type: "message_stop"})
}
