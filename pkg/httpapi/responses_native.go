package httpapi

// A Responses request passed through to an upstream that serves the
// Responses API itself (providers.Responder): the body it is sent, and
// its answer rendered under tollgate's response id with the upstream's
// output items byte for byte (reasoning items and their encrypted
// content, annotations). Which deployment answers, native or translated,
// is the gateway's choice per attempt; this file only prepares both and
// renders whichever came back.

import (
	"encoding/json"

	"github.com/tollgate/tollgate/pkg/llm"
)

// tollgateOnly are the body's members tollgate serves itself and an
// upstream must not see: previous_response_id names tollgate's stored
// response (its conversation is sent as input instead), and the
// customer fields are tollgate's accounting.
var tollgateOnly = []string{"previous_response_id", "customer_identifier", "customer_params", "customer_credentials"}

// nativeBody is the client's body as a Responses upstream gets it:
// tollgate's own fields removed, store off (tollgate keeps its own
// store: the upstream's would hold a copy nobody can reach through
// tollgate's ids), and the conversation previous_response_id continues
// expanded into input before the client's items. The provider patches in
// the model and the output cap per attempt.
func (rc *responsesCall) nativeBody() (json.RawMessage, error) {
	body := rc.req.raw
	var err error
	set := func(key string, val []byte) {
		if err == nil {
			body, err = llm.SetField(body, key, val)
		}
	}
	for _, k := range tollgateOnly {
		set(k, nil)
	}
	set("store", []byte("false"))
	if len(rc.history) > 0 {
		items := historyItems(rc.history)
		var in any = json.RawMessage(rc.req.Input)
		var list []json.RawMessage
		if json.Unmarshal(rc.req.Input, &list) == nil {
			for _, it := range list {
				items = append(items, it)
			}
		} else { // a string: one user message
			items = append(items, map[string]any{"role": "user", "content": in})
		}
		input, merr := json.Marshal(items)
		if merr != nil {
			return nil, merr
		}
		set("input", input)
	}
	return body, err
}

// historyItems is a stored conversation (chat messages) as Responses
// input items: messages, each tool call a function_call, each tool
// result a function_call_output.
func historyItems(msgs []llm.Message) []any {
	out := make([]any, 0, len(msgs))
	for i := range msgs {
		m := &msgs[i]
		switch m.Role {
		case "tool":
			out = append(out, map[string]any{"type": "function_call_output", "call_id": m.ToolCallID, "output": m.Content.String()})
			continue
		case "assistant":
			if text := m.Content.String(); text != "" {
				out = append(out, map[string]any{"type": "message", "role": "assistant", "content": text})
			}
			for _, tc := range m.ToolCalls {
				out = append(out, map[string]any{"type": "function_call", "call_id": tc.ID, "name": tc.Function.Name, "arguments": tc.Function.Arguments})
			}
			continue
		}
		if m.Content.Parts == nil {
			out = append(out, map[string]any{"type": "message", "role": m.Role, "content": m.Content.Text})
			continue
		}
		parts := make([]map[string]any, 0, len(m.Content.Parts))
		for _, p := range m.Content.Parts {
			switch {
			case p.Type == "image_url" && p.ImageURL != nil:
				part := map[string]any{"type": "input_image", "image_url": p.ImageURL.URL}
				if p.ImageURL.Detail != "" {
					part["detail"] = p.ImageURL.Detail
				}
				parts = append(parts, part)
			case p.Type == "text":
				parts = append(parts, map[string]any{"type": "input_text", "text": p.Text})
			}
		}
		out = append(out, map[string]any{"type": "message", "role": m.Role, "content": parts})
	}
	return out
}

// nativeOutput is an upstream's output items as the response's output,
// byte for byte; nil when the answer came translated.
func nativeOutput(raw json.RawMessage) []any {
	if len(raw) == 0 {
		return nil
	}
	var items []json.RawMessage
	if json.Unmarshal(raw, &items) != nil {
		return nil
	}
	out := make([]any, len(items))
	for i, it := range items {
		out[i] = it
	}
	return out
}

// outputItem is the part of a native output item a stored conversation
// keeps.
type outputItem struct {
	Type      string          `json:"type"`
	Content   []outputContent `json:"content"`
	CallID    string          `json:"call_id"`
	Name      string          `json:"name"`
	Arguments string          `json:"arguments"`
}

// asTranslated reads a native output item as the item a translation
// would have made (nil for items chat has no turn for: reasoning), so a
// stored conversation continues on any deployment.
func asTranslated(raw json.RawMessage) any {
	var it outputItem
	if json.Unmarshal(raw, &it) != nil {
		return nil
	}
	switch it.Type {
	case "message":
		return &messageItem{Type: "message", Role: "assistant", Content: it.Content}
	case "function_call":
		return &functionCallItem{Type: "function_call", CallID: it.CallID, Name: it.Name, Arguments: it.Arguments}
	}
	return nil
}

// upstreamResponse is the part of a native stream event's response object
// the client's response takes: the upstream's progress, output and usage.
type upstreamResponse struct {
	Status            string             `json:"status"`
	Model             string             `json:"model"`
	Output            json.RawMessage    `json:"output"`
	Usage             *responsesUsage    `json:"usage"`
	IncompleteDetails *incompleteDetails `json:"incomplete_details"`
}

// nativeEvent is the part of a native stream event the relay reads.
type nativeEvent struct {
	Type           string            `json:"type"`
	SequenceNumber *int              `json:"sequence_number"`
	Response       *upstreamResponse `json:"response"`
}

// relayNative passes one of the upstream's events on, its response object
// (if it has one) replaced by tollgate's with the upstream's status,
// output and usage in it; every other event goes byte for byte.
func (t *responsesStreamer) relayNative(data json.RawMessage) error {
	var ev nativeEvent
	if err := json.Unmarshal(data, &ev); err != nil {
		return err // the provider decoded it already: not reached
	}
	t.native, t.started = true, true
	if u := ev.Response; u != nil {
		o := t.resp
		o.Status, o.IncompleteDetails = u.Status, u.IncompleteDetails
		if u.Model != "" {
			o.Model = u.Model
		}
		o.Output = []any{}
		if out := nativeOutput(u.Output); out != nil {
			o.Output = out
		}
		o.Usage = u.Usage
		obj, err := json.Marshal(o)
		if err == nil {
			data, err = llm.SetField(data, "response", obj)
		}
		if err != nil {
			return err
		}
		switch ev.Type {
		case "response.completed", "response.incomplete":
			t.terminal = true
		}
	}
	if ev.SequenceNumber != nil {
		t.seq = *ev.SequenceNumber + 1 // an error event after it follows on
	}
	if t.err == nil {
		t.err = sseEvent(t.w, ev.Type, data)
	}
	return t.err
}
