package anthropicwire

import "encoding/json"

// The Messages answer and stream events, one set of types for both
// directions: the provider decodes an Anthropic upstream's answer and
// events into them, and the HTTP layer encodes tollgate's answers to
// Anthropic clients with them. Where Anthropic always sends a field, even
// empty or null (a text block's text, message_delta's stop_sequence), the
// types encode it so; where it sends a field on some events only, it is
// omitempty.

// Response is a Messages answer (also message_start's message). Error is
// set when an upstream answered an error envelope instead.
type Response struct {
	ID           string          `json:"id"`
	Type         string          `json:"type"`
	Role         string          `json:"role"`
	Model        string          `json:"model"`
	Content      []ResponseBlock `json:"content"`
	StopReason   *string         `json:"stop_reason"`
	StopSequence *string         `json:"stop_sequence"`
	Usage        Usage           `json:"usage"`
	Error        *ErrorObject    `json:"error,omitempty"`
}

// ResponseBlock is one answer content block: text, tool_use, thinking;
// others (redacted_thinking, server tools' blocks) are read as their type
// alone. It encodes as Anthropic sends each type: every field of its type,
// empty or not (a content_block_start's text block has "text":""). As
// with Content, encode it through a pointer (a *Response's content, an
// Event's ContentBlock): MarshalJSON has a pointer receiver.
type ResponseBlock struct {
	Type      string          `json:"type"`
	Text      string          `json:"text,omitempty"`
	ID        string          `json:"id,omitempty"`
	Name      string          `json:"name,omitempty"`
	Input     json.RawMessage `json:"input,omitempty"`
	Thinking  string          `json:"thinking,omitempty"`
	Signature string          `json:"signature,omitempty"`
}

// MarshalJSON writes the fields of the block's type.
func (b *ResponseBlock) MarshalJSON() ([]byte, error) {
	switch b.Type {
	case "text":
		return marshalFields(&b.Type, "text", &b.Text)
	case "tool_use":
		return marshalFields(&b.Type, "id", &b.ID, "name", &b.Name, "input", &b.Input)
	case "thinking":
		return marshalFields(&b.Type, "thinking", &b.Thinking, "signature", &b.Signature)
	}
	type plain ResponseBlock // without this method
	return marshalNoEscape((*plain)(b))
}

// Event is any Messages stream event; which fields are set depends on
// Type.
type Event struct {
	Type         string         `json:"type"`
	Message      *Response      `json:"message,omitempty"`       // message_start
	Index        *int           `json:"index,omitempty"`         // content_block_*
	ContentBlock *ResponseBlock `json:"content_block,omitempty"` // content_block_start
	Delta        *Delta         `json:"delta,omitempty"`         // content_block_delta, message_delta
	Usage        *DeltaUsage    `json:"usage,omitempty"`         // message_delta
	Error        *ErrorObject   `json:"error,omitempty"`         // error
}

// Delta is a content_block_delta's delta (Type text_delta,
// input_json_delta, thinking_delta, signature_delta, citations_delta) or
// message_delta's (no Type: the stop reason and sequence). Like
// ResponseBlock, it encodes per type through a pointer.
type Delta struct {
	Type         string `json:"type,omitempty"`
	Text         string `json:"text,omitempty"`
	PartialJSON  string `json:"partial_json,omitempty"`
	Thinking     string `json:"thinking,omitempty"`
	Signature    string `json:"signature,omitempty"`
	StopReason   string `json:"stop_reason,omitempty"`
	StopSequence string `json:"stop_sequence,omitempty"`
}

// MarshalJSON writes the fields of the delta's type; message_delta's
// stop_sequence is null when there is none, as Anthropic sends it.
func (d *Delta) MarshalJSON() ([]byte, error) {
	switch d.Type {
	case "text_delta":
		return marshalFields(&d.Type, "text", &d.Text)
	case "input_json_delta":
		return marshalFields(&d.Type, "partial_json", &d.PartialJSON)
	case "thinking_delta":
		return marshalFields(&d.Type, "thinking", &d.Thinking)
	case "signature_delta":
		return marshalFields(&d.Type, "signature", &d.Signature)
	case "":
		var seq *string
		if d.StopSequence != "" {
			seq = &d.StopSequence
		}
		return marshalNoEscape(&struct {
			StopReason   string  `json:"stop_reason"`
			StopSequence *string `json:"stop_sequence"`
		}{d.StopReason, seq})
	}
	type plain Delta // without this method
	return marshalNoEscape((*plain)(d))
}

// DeltaUsage is message_delta's usage: output_tokens so far, and on newer
// API versions the input counts too (all cumulative), which then replace
// message_start's. Nil is a count not sent.
type DeltaUsage struct {
	InputTokens              *int `json:"input_tokens,omitempty"`
	OutputTokens             *int `json:"output_tokens,omitempty"`
	CacheCreationInputTokens *int `json:"cache_creation_input_tokens,omitempty"`
	CacheReadInputTokens     *int `json:"cache_read_input_tokens,omitempty"`
}

// marshalFields writes {"type":typ,"name1":v1,...}: the values are
// pointers (strings, json.RawMessage), encoded without HTML escaping into
// one pooled buffer, so a block or a delta costs one allocation.
func marshalFields(typ *string, fields ...any) ([]byte, error) {
	e := noEscapes.Get().(*noEscape)
	e.buf.Reset()
	e.buf.WriteString(`{"type":`)
	err := e.value(typ)
	for i := 0; err == nil && i+1 < len(fields); i += 2 {
		e.buf.WriteByte(',')
		e.buf.WriteByte('"')
		e.buf.WriteString(fields[i].(string))
		e.buf.WriteString(`":`)
		err = e.value(fields[i+1])
	}
	e.buf.WriteByte('}')
	out := append([]byte(nil), e.buf.Bytes()...)
	if e.buf.Cap() <= maxPooled {
		noEscapes.Put(e)
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// value appends one encoded value, without the encoder's newline.
func (e *noEscape) value(v any) error {
	if err := e.enc.Encode(v); err != nil {
		return err
	}
	e.buf.Truncate(e.buf.Len() - 1)
	return nil
}
