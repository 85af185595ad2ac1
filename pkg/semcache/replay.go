package semcache

import (
	"errors"
	"sort"
	"unicode/utf8"

	"github.com/tollgate/tollgate/pkg/llm"
)

// replayPiece is the most bytes of content or arguments one replayed chunk
// carries: small enough to look like a stream, large enough that a long
// answer is not thousands of events.
const replayPiece = 64

// Replay turns a cached answer into the chunks of an OpenAI stream, for a
// hit asked with stream: true. For each choice: a chunk with the role (and
// an empty content when the message has content, as OpenAI does), content
// and refusal deltas of at most 64 bytes cut at rune boundaries, tool-call
// deltas (id, type and name first, then the arguments in pieces), and a
// chunk with the finish reason; then, when the answer reported usage, a
// usage chunk with no choices (the gateway drops it unless the client asked
// for stream_options.include_usage). Every chunk carries the answer's id,
// created, model and system fingerprint; Raw is nil. Assemble(Replay(r))
// equals r.
func Replay(resp *llm.ChatResponse) []llm.ChatChunk {
	if resp == nil {
		return nil
	}
	chunk := func(choices ...llm.ChunkChoice) llm.ChatChunk {
		return llm.ChatChunk{
			ID: resp.ID, Object: "chat.completion.chunk", Created: resp.Created, Model: resp.Model,
			SystemFingerprint: resp.SystemFingerprint, Choices: choices,
		}
	}
	var out []llm.ChatChunk
	for _, ch := range resp.Choices {
		m := &ch.Message
		role := m.Role
		if role == "" {
			role = "assistant"
		}
		first := llm.Delta{Role: role}
		text := m.Content.String()
		if !m.Content.Null {
			first.Content = new(string)
		}
		out = append(out, chunk(llm.ChunkChoice{Index: ch.Index, Delta: first}))
		for _, p := range pieces(text) {
			out = append(out, chunk(llm.ChunkChoice{Index: ch.Index, Delta: llm.Delta{Content: &p}}))
		}
		if m.Refusal != nil {
			ps := pieces(*m.Refusal)
			if len(ps) == 0 {
				ps = []string{""}
			}
			for _, p := range ps {
				out = append(out, chunk(llm.ChunkChoice{Index: ch.Index, Delta: llm.Delta{Refusal: &p}}))
			}
		}
		for i, tc := range m.ToolCalls {
			idx := i
			head := llm.ToolCall{Index: &idx, ID: tc.ID, Type: tc.Type, Function: llm.FunctionCall{Name: tc.Function.Name}}
			out = append(out, chunk(llm.ChunkChoice{Index: ch.Index, Delta: llm.Delta{ToolCalls: []llm.ToolCall{head}}}))
			for _, p := range pieces(tc.Function.Arguments) {
				frag := llm.ToolCall{Index: &idx, Function: llm.FunctionCall{Arguments: p}}
				out = append(out, chunk(llm.ChunkChoice{Index: ch.Index, Delta: llm.Delta{ToolCalls: []llm.ToolCall{frag}}}))
			}
		}
		finish := ch.FinishReason
		out = append(out, chunk(llm.ChunkChoice{Index: ch.Index, Delta: llm.Delta{}, FinishReason: &finish, Logprobs: ch.Logprobs}))
	}
	if resp.Usage != nil {
		u := *resp.Usage
		c := chunk()
		c.Choices = []llm.ChunkChoice{}
		c.Usage = &u
		out = append(out, c)
	}
	return out
}

// pieces cuts s into pieces of at most replayPiece bytes, never inside a
// rune.
func pieces(s string) []string {
	var out []string
	for len(s) > 0 {
		n := min(replayPiece, len(s))
		for n < len(s) && n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		if n == 0 { // a rune longer than a piece: impossible for UTF-8, but never loop
			n = min(replayPiece, len(s))
		}
		out = append(out, s[:n])
		s = s[n:]
	}
	return out
}

// Assemble joins a streamed answer's chunks into one response, for storing
// a streamed miss: content, refusal and tool-call arguments are
// concatenated in order, tool calls keyed by their index, the finish reason
// and usage are the last ones sent. A message that received no content
// delta has null content, as in a non-streamed answer.
func Assemble(chunks []llm.ChatChunk) (*llm.ChatResponse, error) {
	var a Assembler
	for i := range chunks {
		a.Add(&chunks[i])
	}
	return a.Response()
}

// Assembler is Assemble chunk by chunk, so a stream being relayed keeps
// only the answer so far (its text), not every chunk it was sent in.
type Assembler struct {
	resp    llm.ChatResponse
	byIndex map[int]*assembling
	indexes []int
	chunks  int
	size    int // bytes of text held
}

type assembling struct {
	choice     llm.Choice
	content    []byte
	hasContent bool
	refusal    []byte
	hasRefusal bool
	calls      map[int]*llm.ToolCall
	order      []int
}

// Size is how many bytes of generated text the assembler holds.
func (as *Assembler) Size() int { return as.size }

// Add takes the next chunk of the stream.
func (as *Assembler) Add(c *llm.ChatChunk) {
	resp := &as.resp
	as.chunks++
	if resp.ID == "" {
		resp.ID = c.ID
	}
	if resp.Created == 0 {
		resp.Created = c.Created
	}
	if resp.Model == "" {
		resp.Model = c.Model
	}
	if resp.SystemFingerprint == "" {
		resp.SystemFingerprint = c.SystemFingerprint
	}
	if c.Usage != nil {
		u := *c.Usage
		resp.Usage = &u
	}
	if as.byIndex == nil {
		as.byIndex = map[int]*assembling{}
	}
	for j := range c.Choices {
		cc := &c.Choices[j]
		a := as.byIndex[cc.Index]
		if a == nil {
			a = &assembling{choice: llm.Choice{Index: cc.Index}, calls: map[int]*llm.ToolCall{}}
			as.byIndex[cc.Index] = a
			as.indexes = append(as.indexes, cc.Index)
		}
		d := &cc.Delta
		if d.Role != "" {
			a.choice.Message.Role = d.Role
		}
		if d.Content != nil {
			a.hasContent = true
			a.content = append(a.content, *d.Content...)
			as.size += len(*d.Content)
		}
		if d.Refusal != nil {
			a.hasRefusal = true
			a.refusal = append(a.refusal, *d.Refusal...)
			as.size += len(*d.Refusal)
		}
		for k := range d.ToolCalls {
			tc := &d.ToolCalls[k]
			idx := len(a.order)
			if tc.Index != nil {
				idx = *tc.Index
			}
			call := a.calls[idx]
			if call == nil {
				call = &llm.ToolCall{}
				a.calls[idx] = call
				a.order = append(a.order, idx)
			}
			if tc.ID != "" {
				call.ID = tc.ID
			}
			if tc.Type != "" {
				call.Type = tc.Type
			}
			call.Function.Name += tc.Function.Name
			call.Function.Arguments += tc.Function.Arguments
			as.size += len(tc.Function.Name) + len(tc.Function.Arguments)
		}
		if d.ReasoningSignature != "" {
			// Kept so the answer is known signed (storable refuses it).
			a.choice.Message.ReasoningSignature = d.ReasoningSignature
		}
		if cc.FinishReason != nil {
			a.choice.FinishReason = *cc.FinishReason
		}
		if len(cc.Logprobs) > 0 && string(cc.Logprobs) != "null" {
			a.choice.Logprobs = cc.Logprobs
		}
	}
}

// Response is the answer assembled so far.
func (as *Assembler) Response() (*llm.ChatResponse, error) {
	if as.chunks == 0 {
		return nil, errors.New("semcache: assemble: no chunks")
	}
	resp := as.resp
	resp.Object = "chat.completion"
	resp.Choices = nil
	indexes, byIndex := as.indexes, as.byIndex
	if len(indexes) == 0 {
		return nil, errors.New("semcache: assemble: no choices")
	}
	sort.Ints(indexes)
	for _, i := range indexes {
		a := byIndex[i]
		m := &a.choice.Message
		if m.Role == "" {
			m.Role = "assistant"
		}
		if a.hasContent {
			m.Content = llm.TextContent(string(a.content))
		} else {
			m.Content = llm.Content{Null: true}
		}
		if a.hasRefusal {
			r := string(a.refusal)
			m.Refusal = &r
		}
		sort.Ints(a.order)
		for _, idx := range a.order {
			m.ToolCalls = append(m.ToolCalls, *a.calls[idx])
		}
		resp.Choices = append(resp.Choices, a.choice)
	}
	return &resp, nil
}
