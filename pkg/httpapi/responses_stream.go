package httpapi

import (
	"encoding/json"
	"io"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/tollgate/tollgate/pkg/gateway"
	"github.com/tollgate/tollgate/pkg/llm"
)

// responsesEvent is one event of a streamed response; each kind fills
// the fields OpenAI gives it.
type responsesEvent struct {
	Type           string          `json:"type"`
	SequenceNumber int             `json:"sequence_number"`
	Response       *responseObject `json:"response,omitempty"`
	OutputIndex    *int            `json:"output_index,omitempty"`
	ItemID         string          `json:"item_id,omitempty"`
	ContentIndex   *int            `json:"content_index,omitempty"`
	Item           any             `json:"item,omitempty"`
	Part           *outputContent  `json:"part,omitempty"`
	Delta          *string         `json:"delta,omitempty"`
	Text           *string         `json:"text,omitempty"`
	Arguments      *string         `json:"arguments,omitempty"`
	Refusal        *string         `json:"refusal,omitempty"`
	Logprobs       *[]any          `json:"logprobs,omitempty"`
}

// responsesStreamer turns chat chunks into the Responses event sequence:
// response.created and response.in_progress; then, per output item,
// output_item.added, (content_part.added, output_text.delta...,
// output_text.done, content_part.done) or (function_call_arguments.delta...,
// .done), output_item.done; and response.completed (or .incomplete, or
// .failed after an error), each with its sequence_number.
type responsesStreamer struct {
	w       io.Writer
	meta    *gateway.Meta
	keep    func(*responseObject) // stores the completed response
	seq     int
	resp    *responseObject
	started bool
	err     error // the first write that failed: the client is gone

	// The one open item: a message (text or refusal) or a function call.
	msg     *messageItem
	msgText strings.Builder
	fc      *functionCallItem
	fcIndex int // the chat tool call index of fc
	fcArgs  strings.Builder

	finish string
	model  string
	usage  *llm.Usage

	// native: the upstream serves the Responses API and its events are
	// relayed (relayNative); terminal: its completed or incomplete event
	// was.
	native, terminal bool
}

func (t *responsesStreamer) send(e responsesEvent) {
	if t.err != nil {
		return
	}
	e.SequenceNumber = t.seq
	t.seq++
	data, err := json.Marshal(e)
	if err == nil {
		err = sseEvent(t.w, e.Type, data)
	}
	t.err = err
}

func intp(i int) *int { return &i }

func (t *responsesStreamer) begin() {
	t.started = true
	t.send(responsesEvent{Type: "response.created", Response: t.resp})
	t.send(responsesEvent{Type: "response.in_progress", Response: t.resp})
}

// chunk handles one chat chunk; an error when the client is gone.
func (t *responsesStreamer) chunk(ch *llm.ChatChunk) error {
	if ch.ResponsesEvent != nil {
		return t.relayNative(ch.ResponsesEvent)
	}
	if !t.started {
		t.begin()
	}
	if ch.Model != "" {
		t.model = ch.Model
	}
	if ch.Usage != nil {
		t.usage = ch.Usage
	}
	for i := range ch.Choices {
		choice := &ch.Choices[i]
		if choice.Index != 0 {
			continue // the Responses API has one output; n is never asked for
		}
		d := &choice.Delta
		if d.Content != nil && *d.Content != "" {
			t.text("output_text", *d.Content)
		}
		if d.Refusal != nil && *d.Refusal != "" {
			t.text("refusal", *d.Refusal)
		}
		for j := range d.ToolCalls {
			t.toolCall(&d.ToolCalls[j])
		}
		if choice.FinishReason != nil {
			t.finish = *choice.FinishReason
		}
	}
	return t.err
}

// text adds a text or refusal delta to the open message, opening one (and
// closing a function call) if needed.
func (t *responsesStreamer) text(kind, delta string) {
	if t.msg != nil && t.msg.Content[0].Type != kind {
		t.closeItem()
	}
	if t.msg == nil {
		t.closeItem()
		t.msg = &messageItem{ID: newObjectID("msg"), Type: "message", Status: "in_progress", Role: "assistant", Content: []outputContent{}}
		t.msgText.Reset()
		idx := len(t.resp.Output)
		t.send(responsesEvent{Type: "response.output_item.added", OutputIndex: intp(idx), Item: t.msg})
		part := textPart("")
		if kind == "refusal" {
			part = refusalPart("")
		}
		t.msg.Content = []outputContent{part}
		t.send(responsesEvent{Type: "response.content_part.added", ItemID: t.msg.ID, OutputIndex: intp(idx), ContentIndex: intp(0), Part: &part})
	}
	if delta == "" {
		return // an empty answer: the message is opened, with nothing to add
	}
	t.msgText.WriteString(delta)
	idx := len(t.resp.Output)
	if kind == "refusal" {
		t.send(responsesEvent{Type: "response.refusal.delta", ItemID: t.msg.ID, OutputIndex: intp(idx), ContentIndex: intp(0), Delta: &delta})
		return
	}
	empty := []any{}
	t.send(responsesEvent{Type: "response.output_text.delta", ItemID: t.msg.ID, OutputIndex: intp(idx), ContentIndex: intp(0), Delta: &delta, Logprobs: &empty})
}

// toolCall adds a tool call fragment: a new index (or a new id) opens a
// function_call item, the rest are its arguments.
func (t *responsesStreamer) toolCall(tc *llm.ToolCall) {
	index := t.fcIndex
	if tc.Index != nil {
		index = *tc.Index
	} else if tc.ID != "" && t.fc != nil {
		index = t.fcIndex + 1
	}
	if t.fc == nil || index != t.fcIndex {
		t.closeItem()
		t.fc = &functionCallItem{ID: newObjectID("fc"), Type: "function_call", Status: "in_progress", CallID: tc.ID, Name: tc.Function.Name}
		t.fcIndex = index
		t.fcArgs.Reset()
		t.send(responsesEvent{Type: "response.output_item.added", OutputIndex: intp(len(t.resp.Output)), Item: t.fc})
	}
	if t.fc.CallID == "" {
		t.fc.CallID = tc.ID
	}
	if t.fc.Name == "" {
		t.fc.Name = tc.Function.Name
	}
	if a := tc.Function.Arguments; a != "" {
		t.fcArgs.WriteString(a)
		t.send(responsesEvent{Type: "response.function_call_arguments.delta", ItemID: t.fc.ID, OutputIndex: intp(len(t.resp.Output)), Delta: &a})
	}
}

// closeItem ends the open item with its done events and adds it to the
// output.
func (t *responsesStreamer) closeItem() {
	idx := len(t.resp.Output)
	switch {
	case t.msg != nil:
		m := t.msg
		t.msg = nil
		text := t.msgText.String()
		part := textPart(text)
		if m.Content[0].Type == "refusal" {
			part = refusalPart(text)
			t.send(responsesEvent{Type: "response.refusal.done", ItemID: m.ID, OutputIndex: intp(idx), ContentIndex: intp(0), Refusal: &text})
		} else {
			empty := []any{}
			t.send(responsesEvent{Type: "response.output_text.done", ItemID: m.ID, OutputIndex: intp(idx), ContentIndex: intp(0), Text: &text, Logprobs: &empty})
		}
		t.send(responsesEvent{Type: "response.content_part.done", ItemID: m.ID, OutputIndex: intp(idx), ContentIndex: intp(0), Part: &part})
		m.Content, m.Status = []outputContent{part}, itemStatus(t.finish)
		t.send(responsesEvent{Type: "response.output_item.done", OutputIndex: intp(idx), Item: m})
		t.resp.Output = append(t.resp.Output, m)
	case t.fc != nil:
		f := t.fc
		t.fc = nil
		args := t.fcArgs.String()
		t.send(responsesEvent{Type: "response.function_call_arguments.done", ItemID: f.ID, OutputIndex: intp(idx), Arguments: &args})
		f.Arguments, f.Status = args, itemStatus(t.finish)
		t.send(responsesEvent{Type: "response.output_item.done", OutputIndex: intp(idx), Item: f})
		t.resp.Output = append(t.resp.Output, f)
	}
}

// itemStatus is the status of an output item closed when the answer's
// finish reason is finish: an item is closed mid-stream only when the next
// begins (finish still ""), so a cut answer marks only its last item.
func itemStatus(finish string) string {
	if finish == "length" || finish == "content_filter" {
		return "incomplete"
	}
	return "completed"
}

// end closes the open item, sends the terminal event and keeps the
// response.
func (t *responsesStreamer) end() error {
	if t.native {
		if t.terminal {
			t.keep(t.resp)
		}
		return t.err
	}
	if !t.started {
		t.begin()
	}
	if t.msg == nil && t.fc == nil && len(t.resp.Output) == 0 {
		// An empty answer is one empty message, as a non-streamed one is.
		t.text("output_text", "")
	}
	t.closeItem()
	t.resp.finish(t.finish, t.model, usageOf(t.usage, t.meta))
	kind := "response.completed"
	if t.resp.Status == "incomplete" {
		kind = "response.incomplete"
	}
	t.send(responsesEvent{Type: kind, Response: t.resp})
	t.keep(t.resp)
	return t.err
}

// fail ends a started stream with response.failed.
func (t *responsesStreamer) fail(e *llm.Error) {
	if !t.started {
		t.begin()
	}
	t.msg, t.fc = nil, nil // unfinished items are not part of the output
	t.resp.Status = "failed"
	code := e.Code
	if code == "" {
		code = e.Type
	}
	if code == "" {
		code = "server_error"
	}
	t.resp.Error = &responseError{Code: code, Message: e.Message}
	t.send(responsesEvent{Type: "response.failed", Response: t.resp})
}

// streamResponse serves a streamed POST /v1/responses.
func (s *server) streamResponse(c *gin.Context, caller gateway.Caller, rc *responsesCall) {
	s.relay(c, caller, rc.chat, func(meta *gateway.Meta) streamWriter {
		return &responsesStreamer{w: c.Writer, meta: meta, resp: rc.req.newResponse(s), keep: func(o *responseObject) {
			if body, err := json.Marshal(o); err == nil {
				rc.keep(c.Request.Context(), s, o, body)
			}
		}}
	})
}
