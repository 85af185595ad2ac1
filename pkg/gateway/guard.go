package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/tollgate/tollgate/pkg/guardrails"
	"github.com/tollgate/tollgate/pkg/llm"
)

// This file is the guard step of an exchange and what it does to the
// answer. guard runs right after resolve, before anything reads the
// prompt: the route's enrichment is added and the request's guards mask
// (or refuse) what they match, so the rate limits' token count, the cache
// key and lookup, the plan's counts and prices and the upstream all see
// the prompt as guarded; nothing unmasked is stored. An answer is masked
// before it is stored (guardAnswer), and the request's own values are
// restored, when a guard says so, only in the copy the client gets
// (deliver, and the stream's Recv).

// guard applies the route's prompt enrichment and the request's guards to
// req. A block guard's match refuses the request (400 content_blocked,
// naming the guard, never the text); a guard that cannot run refuses it
// too: nothing passes unchecked. A refused request still counts against
// the key's requests per minute (it cost a scan): over the limit, the
// client gets the 429.
func (x *exchange) guard(req *llm.ChatRequest) error {
	err := x.guardPrompt(req)
	if err != nil {
		if lerr := x.charge(0); lerr != nil {
			return lerr
		}
	}
	return err
}

func (x *exchange) guardPrompt(req *llm.ChatRequest) error {
	gt := x.t.guards
	policy, err := gt.policyFor(x.c.Key, x.route.Name)
	if err != nil {
		return x.guardFailed(err)
	}
	enrich := gt.enrich[x.route.Name]
	if policy == nil && enrich == nil {
		return nil
	}
	changed := false
	if enrich != nil {
		req.Messages = enrich.apply(req.Messages, x.templateValues(req))
		x.meta.Enriched = enrich.note
		req.ResponsesBody = nil // see below
		changed = true
	}
	if policy != nil {
		x.run = policy.Begin()
		masked, err := maskMessages(req.Messages, x.run.Request)
		if err != nil {
			return x.guardRefusal(err)
		}
		changed = changed || masked
		switch {
		case len(req.ResponsesBody) == 0:
		case policy.ScansAnswers() || enrich != nil:
			// A native Responses upstream's items are relayed byte for
			// byte, and its input has no place for added messages: the
			// request goes through the chat translation.
			req.ResponsesBody = nil
		case masked:
			// The native body says what the messages say: masked the same.
			if req.ResponsesBody, err = maskResponsesBody(req.ResponsesBody, x.run.Again); err != nil {
				return x.guardRefusal(err)
			}
		}
	}
	if !changed {
		return nil
	}
	// The upstream gets the guarded messages, not what the client sent.
	msgs, err := llm.MarshalNoEscape(req.Messages)
	if err != nil {
		return x.guardFailed(err)
	}
	raw, err := llm.SetField(req.Raw, "messages", msgs)
	if err != nil {
		return x.guardFailed(err)
	}
	req.Raw = raw
	return nil
}

// guardEmbeddings applies the request's guards to an embeddings input
// (there is no answer to guard, and no enrichment): the provider embeds
// the masked texts. Pre-tokenised input cannot be read, so a request with
// guards that sends it is refused rather than passed unchecked.
func (x *exchange) guardEmbeddings(req *llm.EmbeddingRequest) error {
	policy, err := x.t.guards.policyFor(x.c.Key, req.Model)
	if err != nil {
		return x.guardFailed(err)
	}
	if policy == nil {
		return nil
	}
	x.run = policy.Begin()
	if len(req.Input.Tokens) > 0 {
		return &llm.Error{Status: http.StatusBadRequest, Type: llm.TypeInvalidRequest, Code: "guard_unreadable_input", Param: "input",
			Message: "this request's guards cannot read pre-tokenised input (arrays of token ids); send the input as text"}
	}
	changed := false
	for i, text := range req.Input.Texts {
		out, err := x.run.Request(text)
		if err != nil {
			return x.guardRefusal(err)
		}
		if out != text {
			req.Input.Texts[i], changed = out, true
		}
	}
	if !changed {
		return nil
	}
	input, err := llm.MarshalNoEscape(req.Input)
	if err != nil {
		return x.guardFailed(err)
	}
	if req.Raw, err = llm.SetField(req.Raw, "input", input); err != nil {
		return x.guardFailed(err)
	}
	return nil
}

// maskResponsesBody masks a native Responses body: the text members of
// its input and instructions (text, content, output, arguments, input and
// instructions when they are strings) at any depth; ids, types and
// encrypted reasoning are left as they are.
func maskResponsesBody(body []byte, mask func(string) (string, error)) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	var walk func(v any) (any, error)
	walk = func(v any) (any, error) {
		switch t := v.(type) {
		case map[string]any:
			for k, m := range t {
				if s, ok := m.(string); ok {
					if responsesText[k] {
						out, err := mask(s)
						if err != nil {
							return nil, err
						}
						t[k] = out
					}
					continue
				}
				out, err := walk(m)
				if err != nil {
					return nil, err
				}
				t[k] = out
			}
		case []any:
			for i := range t {
				out, err := walk(t[i])
				if err != nil {
					return nil, err
				}
				t[i] = out
			}
		}
		return v, nil
	}
	if _, err := walk(v); err != nil {
		return nil, err
	}
	return llm.MarshalNoEscape(v)
}

// responsesText are the members of a Responses body that hold text.
var responsesText = map[string]bool{"text": true, "content": true, "output": true, "arguments": true, "input": true, "instructions": true}

// maskMessages passes every text of the messages through mask: contents
// (text parts), tool calls' arguments (tool results are messages of their
// own) and earlier reasoning. It reports whether anything changed.
func maskMessages(msgs []llm.Message, mask func(string) (string, error)) (bool, error) {
	do, changed := changes(mask)
	for i := range msgs {
		if err := maskMessage(&msgs[i], do); err != nil {
			return false, err
		}
	}
	return *changed, nil
}

// changes makes a mask into a function that masks a text in place, and
// the flag it sets when a text changed.
func changes(mask func(string) (string, error)) (func(*string) error, *bool) {
	changed := new(bool)
	return func(s *string) error {
		out, err := mask(*s)
		if err != nil {
			return err
		}
		if out != *s {
			*s, *changed = out, true
		}
		return nil
	}, changed
}

// maskMessage passes each text of one message through do: its content
// (text parts), its tool calls' arguments and its reasoning.
func maskMessage(m *llm.Message, do func(*string) error) error {
	if err := maskContent(&m.Content, do); err != nil {
		return err
	}
	for j := range m.ToolCalls {
		if err := do(&m.ToolCalls[j].Function.Arguments); err != nil {
			return err
		}
	}
	return do(&m.ReasoningContent)
}

func maskContent(c *llm.Content, do func(*string) error) error {
	if c.Parts == nil {
		return do(&c.Text)
	}
	for k := range c.Parts {
		if c.Parts[k].Type == "text" {
			if err := do(&c.Parts[k].Text); err != nil {
				return err
			}
		}
	}
	return nil
}

// guardRefusal is the client's error for a request or answer a guard
// refused or could not check.
func (x *exchange) guardRefusal(err error) error {
	var b *guardrails.Blocked
	if errors.As(err, &b) {
		x.meta.Blocked = b.Guard
		what := "request"
		if b.Direction == guardrails.Answer {
			what = "answer"
		}
		return &llm.Error{Status: http.StatusBadRequest, Type: llm.TypeInvalidRequest, Code: "content_blocked", Param: "messages",
			Message: fmt.Sprintf("the %s was blocked by guard %s: it holds content this gateway does not let through", what, b.Guard)}
	}
	if errors.Is(err, guardrails.ErrScanLimit) {
		return &llm.Error{Status: http.StatusRequestEntityTooLarge, Type: llm.TypeInvalidRequest, Code: "guard_scan_limit", Param: "messages",
			Message: "the request and its answer hold more text than the guards may scan for one request; it was refused rather than passed unchecked"}
	}
	return x.guardFailed(err)
}

// guardFailed refuses a request whose guards cannot run (a key naming a
// guard a reload removed): refused, not passed unguarded.
func (x *exchange) guardFailed(err error) error {
	x.g.log.Error("guardrails: a guard could not run; the request is refused", "request_id", x.c.RequestID, "err", err)
	return &llm.Error{Status: http.StatusServiceUnavailable, Type: llm.TypeServer, Code: "guard_unavailable",
		Message: "a guard of this request could not run, so the request was refused rather than passed unchecked: " + err.Error()}
}

// templateValues are the fields an enrichment template may use.
func (x *exchange) templateValues(req *llm.ChatRequest) map[string]string {
	v := map[string]string{"customer": x.c.Customer, "date": x.start.UTC().Format("2006-01-02"), "route": x.route.Name, "model": req.Model}
	if x.c.Key != nil {
		v["key_name"], v["key_id"] = x.c.Key.Name, x.c.Key.ID
	}
	return v
}

// apply returns msgs with the enrichment's messages before and after them.
func (e *enrichment) apply(msgs []llm.Message, values map[string]string) []llm.Message {
	out := make([]llm.Message, 0, len(e.prepend)+len(msgs)+len(e.append))
	render := func(m enrichMessage) llm.Message {
		var b strings.Builder
		for _, p := range m.parts {
			if p.field != "" {
				b.WriteString(values[p.field])
			} else {
				b.WriteString(p.text)
			}
		}
		return llm.Message{Role: m.role, Content: llm.TextContent(b.String())}
	}
	for _, m := range e.prepend {
		out = append(out, render(m))
	}
	out = append(out, msgs...)
	for _, m := range e.append {
		out = append(out, render(m))
	}
	return out
}

// guardAnswer masks an answer fresh from an upstream, in place, before it
// is stored or shared with collapsed followers.
func (x *exchange) guardAnswer(resp *llm.ChatResponse) error {
	if x.run == nil {
		return nil
	}
	x.answerGuarded = true
	return x.maskAnswer(resp)
}

func (x *exchange) maskAnswer(resp *llm.ChatResponse) error {
	changed, err := answerTexts(resp, x.run.Answer)
	if err != nil {
		return x.guardRefusal(err)
	}
	if changed {
		resp.Raw, resp.ResponsesOutput = nil, nil // the typed fields are the answer now
	}
	return nil
}

// answerTexts passes every text of the answer's choices through f.
func answerTexts(resp *llm.ChatResponse, f func(string) (string, error)) (bool, error) {
	do, changed := changes(f)
	for i := range resp.Choices {
		if err := maskMessage(&resp.Choices[i].Message, do); err != nil {
			return false, err
		}
	}
	return *changed, nil
}

// deliver is the answer as this client gets it: masked by its own answer
// guards when it did not come from its own upstream call (a cache hit, a
// collapsed leader's answer: those may have been stored under other
// guards), and with the request's values restored when a guard says so.
// The answer it was given may be shared (the cache's entry, a leader's
// answer): it is copied before anything changes.
func (x *exchange) deliver(resp *llm.ChatResponse) (*llm.ChatResponse, error) {
	if x.run == nil || resp == nil {
		return resp, nil
	}
	if !x.answerGuarded {
		resp = copyAnswer(resp)
		if err := x.maskAnswer(resp); err != nil {
			return nil, err
		}
	}
	if !x.run.Restores() {
		return resp, nil
	}
	if x.answerGuarded {
		resp = copyAnswer(resp)
	}
	if changed, _ := answerTexts(resp, func(s string) (string, error) { return x.run.Unmask(s), nil }); changed {
		resp.Raw, resp.ResponsesOutput = nil, nil
	}
	return resp, nil
}

// copyAnswer copies what answerTexts may change.
func copyAnswer(resp *llm.ChatResponse) *llm.ChatResponse {
	c := *resp
	c.Choices = make([]llm.Choice, len(resp.Choices))
	for i, ch := range resp.Choices {
		ch.Message.Content.Parts = slices.Clone(ch.Message.Content.Parts)
		ch.Message.ToolCalls = slices.Clone(ch.Message.ToolCalls)
		c.Choices[i] = ch
	}
	return &c
}

// recordGuards puts the run's hits on meta and the gateway's counters,
// once, when the exchange finishes.
func (x *exchange) recordGuards() {
	if x.run == nil && x.meta.Blocked == "" {
		return
	}
	for _, h := range x.run.Hits() {
		x.meta.Guards = append(x.meta.Guards, GuardHit{Guard: h.Guard, Action: h.Action, Direction: h.Direction, Count: h.Count})
	}
	x.t.guards.hits.add(x.meta.Guards, x.meta.Blocked)
}

// guardCounts is the ledger row's record of the guards: name → matches.
func (x *exchange) guardCounts() map[string]int {
	if len(x.meta.Guards) == 0 {
		return nil
	}
	m := make(map[string]int, len(x.meta.Guards))
	for _, h := range x.meta.Guards {
		m[h.Guard] += h.Count
	}
	return m
}

// A streamed answer passes through two chunk filters when its request has
// guards: masking (what is stored and what follows) and restoring the
// request's values (what the client gets). Each text of the answer (a
// choice's content, its reasoning, each tool call's arguments) has its
// own filter, which may hold text back (a match split across chunks): a
// text is flushed when its choice moves on to another text and when the
// choice finishes, and whatever is still held when the upstream ends comes
// in one last chunk.

// textFilter is one text's filter.
type textFilter interface {
	Write(string) (string, error)
	Flush() (string, error)
}

// unmaskFilter is a StreamUnmasker as a textFilter.
type unmaskFilter struct{ u *guardrails.StreamUnmasker }

func (f unmaskFilter) Write(s string) (string, error) { return f.u.Write(s), nil }
func (f unmaskFilter) Flush() (string, error)         { return f.u.Flush(), nil }

// textKey names one text of a streamed answer.
type textKey struct {
	choice int
	kind   textKind
	tool   int // the tool call's index (kind toolArgs)
}

type textKind uint8

const (
	textReasoning textKind = iota
	textContent
	toolArgs
)

// chunkFilter filters every text of a stream's chunks.
type chunkFilter struct {
	open    func() textFilter // a new text's filter
	texts   map[textKey]textFilter
	current map[int]textKey // choice → the text it is writing
	last    *llm.ChatChunk  // the last chunk filtered: the final chunk's ids
	done    bool
	changed bool // the chunk being filtered says something else now
}

func newChunkFilter(open func() textFilter) *chunkFilter {
	return &chunkFilter{open: open, texts: map[textKey]textFilter{}, current: map[int]textKey{}}
}

// filter returns c with its texts filtered; c itself is not changed.
func (f *chunkFilter) filter(c *llm.ChatChunk) (*llm.ChatChunk, error) {
	if len(c.Choices) == 0 {
		return c, nil
	}
	f.changed = false
	out := *c
	out.Raw, out.ResponsesEvent = nil, nil
	out.Choices = slices.Clone(c.Choices)
	for i := range out.Choices {
		ch := &out.Choices[i]
		d := &ch.Delta
		d.ToolCalls = slices.Clone(d.ToolCalls)
		if d.ReasoningContent != nil {
			if err := f.write(ch, textKey{choice: ch.Index, kind: textReasoning}, &d.ReasoningContent); err != nil {
				return nil, err
			}
		}
		if d.Content != nil {
			if err := f.write(ch, textKey{choice: ch.Index, kind: textContent}, &d.Content); err != nil {
				return nil, err
			}
		}
		if len(d.ToolCalls) > 0 {
			// Built anew: a call whose held arguments are flushed when the
			// next call starts comes before it.
			calls := make([]llm.ToolCall, 0, len(d.ToolCalls)+1)
			for j, tc := range d.ToolCalls {
				idx := j
				if tc.Index != nil {
					idx = *tc.Index
				}
				k := textKey{choice: ch.Index, kind: toolArgs, tool: idx}
				prev, rest, err := f.leave(ch.Index, k)
				if err != nil {
					return nil, err
				}
				if rest != "" {
					f.changed = true
					if prev.kind == toolArgs {
						calls = append(calls, llm.ToolCall{Index: &prev.tool, Function: llm.FunctionCall{Arguments: rest}})
					} else {
						put(ch, prev, rest)
					}
				}
				args, err := f.text(k).Write(tc.Function.Arguments)
				if err != nil {
					return nil, err
				}
				if args != tc.Function.Arguments {
					tc.Function.Arguments, f.changed = args, true
				}
				calls = append(calls, tc)
			}
			d.ToolCalls = calls
		}
		if ch.FinishReason != nil {
			if err := f.switchTo(ch, textKey{choice: -1}); err != nil {
				return nil, err
			}
		}
	}
	f.last = &out
	if !f.changed {
		return c, nil // as it came, its raw bytes too
	}
	return &out, nil
}

// write filters one text field of a chunk's choice.
func (f *chunkFilter) write(ch *llm.ChunkChoice, k textKey, field **string) error {
	if err := f.switchTo(ch, k); err != nil {
		return err
	}
	text, err := f.text(k).Write(**field)
	if err != nil {
		return err
	}
	if text != **field {
		*field, f.changed = &text, true
	}
	return nil
}

func (f *chunkFilter) text(k textKey) textFilter {
	t, ok := f.texts[k]
	if !ok {
		t = f.open()
		f.texts[k] = t
	}
	return t
}

// switchTo flushes the text the choice was writing when it moves to k, into
// ch, where its text goes.
func (f *chunkFilter) switchTo(ch *llm.ChunkChoice, k textKey) error {
	prev, rest, err := f.leave(ch.Index, k)
	if err != nil || rest == "" {
		return err
	}
	f.changed = true
	put(ch, prev, rest)
	return nil
}

// leave moves the choice to the text k (choice -1: none) and returns the
// text it was writing and what that text still held.
func (f *chunkFilter) leave(choice int, k textKey) (prev textKey, rest string, err error) {
	prev, ok := f.current[choice]
	if ok && prev == k {
		return prev, "", nil
	}
	if k.choice >= 0 {
		f.current[choice] = k
	} else {
		delete(f.current, choice)
	}
	if !ok {
		return prev, "", nil
	}
	t := f.texts[prev]
	delete(f.texts, prev)
	rest, err = t.Flush()
	return prev, rest, err
}

// put adds text flushed from the text k to the chunk's choice.
func put(ch *llm.ChunkChoice, k textKey, text string) {
	d := &ch.Delta
	appendTo := func(p **string) {
		s := text
		if *p != nil {
			s = **p + text
		}
		*p = &s
	}
	switch k.kind {
	case textReasoning:
		appendTo(&d.ReasoningContent)
	case textContent:
		appendTo(&d.Content)
	case toolArgs:
		for j := range d.ToolCalls {
			if idx := d.ToolCalls[j].Index; idx != nil && *idx == k.tool {
				d.ToolCalls[j].Function.Arguments += text
				return
			}
		}
		idx := k.tool
		d.ToolCalls = append([]llm.ToolCall{{Index: &idx, Function: llm.FunctionCall{Arguments: text}}}, d.ToolCalls...)
	}
}

// final flushes every text still open into one last chunk (nil when none
// held anything back).
func (f *chunkFilter) final() (*llm.ChatChunk, error) {
	if f.done || len(f.current) == 0 || f.last == nil {
		f.done = true
		return nil, nil
	}
	f.done = true
	out := &llm.ChatChunk{ID: f.last.ID, Object: f.last.Object, Created: f.last.Created, Model: f.last.Model, SystemFingerprint: f.last.SystemFingerprint}
	for _, choice := range slices.Sorted(maps.Keys(f.current)) {
		ch := llm.ChunkChoice{Index: choice}
		if err := f.switchTo(&ch, textKey{choice: -1}); err != nil {
			return nil, err
		}
		d := ch.Delta
		if d.Content != nil || d.ReasoningContent != nil || len(d.ToolCalls) > 0 {
			out.Choices = append(out.Choices, ch)
		}
	}
	if len(out.Choices) == 0 {
		return nil, nil
	}
	return out, nil
}

// streamGuard is a stream's two filters.
type streamGuard struct {
	mask, restore *chunkFilter // restore nil: nothing to restore
}

func (x *exchange) streamGuard() *streamGuard {
	if x.run == nil {
		return nil
	}
	run := x.run
	g := &streamGuard{}
	if run.ScansAnswers() {
		g.mask = newChunkFilter(func() textFilter { return run.Stream() })
	}
	if run.Restores() {
		g.restore = newChunkFilter(func() textFilter { return unmaskFilter{run.Unmasker()} })
	}
	if g.mask == nil && g.restore == nil {
		return nil // the answer passes as it comes, byte for byte
	}
	return g
}

// held reports whether filtering took every text the chunk carried and
// left it nothing to say: no text, role, tool call id or name, finish or
// usage. Such a chunk is not sent.
func held(orig, out *llm.ChatChunk) bool {
	if out.Usage != nil || len(out.Choices) == 0 {
		return false
	}
	for i, ch := range out.Choices {
		d := ch.Delta
		if ch.FinishReason != nil || d.Role != "" || d.Refusal != nil || (d.Content != nil && *d.Content != "") ||
			(d.ReasoningContent != nil && *d.ReasoningContent != "") {
			return false
		}
		for _, tc := range d.ToolCalls {
			if tc.ID != "" || tc.Function.Name != "" || tc.Function.Arguments != "" {
				return false
			}
		}
		if o := orig.Choices[i].Delta; o.Content != nil && *o.Content == "" && len(o.ToolCalls) == 0 && o.ReasoningContent == nil {
			return false // an empty chunk was sent as it came
		}
	}
	return true
}
