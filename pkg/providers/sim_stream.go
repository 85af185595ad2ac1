package providers

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"sync/atomic"
	"time"

	"github.com/tollgate/tollgate/pkg/llm"
)

// Stream answers a streamed completion in OpenAI's chunk shapes: per
// choice a role chunk, content (or tool-call argument) deltas and a finish
// chunk; then, when usage was asked for, a usage chunk with no choices.
func (s *Sim) Stream(ctx context.Context, r *Request) (Stream, error) {
	if r.Chat == nil {
		return nil, errors.New("providers: chat request without a parsed body")
	}
	call := s.begin()
	if call.fault != "" && call.fault != SimErrorStreamCut {
		return nil, s.faultError(ctx, call.fault)
	}
	ttft := s.cfg.TTFT
	if ttft == (Dist{}) {
		ttft = s.cfg.Latency
	}
	ans := s.answer(r, call.rng)
	st := &simStream{s: s, ctx: ctx, first: ttft.Sample(call.rng)}
	base := llm.ChatChunk{ID: ans.id, Object: "chat.completion.chunk", Created: s.cfg.Now().Unix(),
		Model: ans.model, SystemFingerprint: simFingerprint}
	add := func(choices []llm.ChunkChoice, usage *llm.Usage, tokens int) {
		c := base
		c.Choices, c.Usage = choices, usage
		st.events = append(st.events, simEvent{chunk: c, tokens: tokens})
	}
	one := func(i int, d llm.Delta, finish *string) []llm.ChunkChoice {
		return []llm.ChunkChoice{{Index: i, Delta: d, FinishReason: finish, Logprobs: jsonNull}}
	}
	step := s.cfg.ChunkTokens
	for i := range ans.choices {
		c := &ans.choices[i]
		if c.tool != nil {
			head := *c.tool
			head.Index, head.Function.Arguments = ptr(0), ""
			add(one(i, llm.Delta{Role: "assistant", ToolCalls: []llm.ToolCall{head}}, nil), nil, 0)
			args := simTokens(c.tool.Function.Arguments)
			for j := 0; j < len(args); j += step {
				frag := joinPieces(args[j:min(j+step, len(args))])
				tc := llm.ToolCall{Index: ptr(0), Function: llm.FunctionCall{Arguments: frag}}
				add(one(i, llm.Delta{ToolCalls: []llm.ToolCall{tc}}, nil), nil, min(step, len(args)-j))
			}
		} else {
			add(one(i, llm.Delta{Role: "assistant", Content: ptr("")}, nil), nil, 0)
			for j := 0; j < len(c.pieces); j += step {
				add(one(i, llm.Delta{Content: ptr(joinPieces(c.pieces[j:min(j+step, len(c.pieces))]))}, nil), nil, min(step, len(c.pieces)-j))
			}
		}
		add(one(i, llm.Delta{}, ptr(c.finish)), nil, 0)
	}
	if r.IncludeUsage || (r.Chat.StreamOptions != nil && r.Chat.StreamOptions.IncludeUsage) {
		add([]llm.ChunkChoice{}, ans.usage(), 0)
	}
	st.cutAt = -1
	if call.fault == SimErrorStreamCut {
		// Midway, but always after the first chunk, so the client has seen
		// bytes and the gateway must not fall back.
		st.cutAt = max(1, len(st.events)/2)
	}
	return st, nil
}

func ptr[T any](v T) *T { return &v }

func joinPieces(p []string) string {
	if len(p) == 1 {
		return p[0]
	}
	n := 0
	for _, s := range p {
		n += len(s)
	}
	b := make([]byte, 0, n)
	for _, s := range p {
		b = append(b, s...)
	}
	return string(b)
}

type simEvent struct {
	chunk  llm.ChatChunk
	tokens int // paces the event at TokensPerSecond
}

type simStream struct {
	s      *Sim
	ctx    context.Context // the call's context: a stream is a call in progress
	events []simEvent
	next   int
	cutAt  int // index of the event that fails with a cut, -1: none
	first  time.Duration
	err    error       // owned by the Recv goroutine
	closed atomic.Bool // Close may come from another goroutine
}

func (st *simStream) Recv() (*llm.ChatChunk, error) {
	if st.err != nil {
		return nil, st.err
	}
	if st.closed.Load() {
		return nil, errStreamClosed
	}
	if err := st.recv(); err != nil {
		st.err = err
		return nil, err
	}
	ev := &st.events[st.next]
	st.next++
	c := ev.chunk
	raw, err := json.Marshal(&c)
	if err != nil {
		st.err = err
		return nil, err
	}
	c.Raw = raw
	return &c, nil
}

func (st *simStream) recv() error {
	if st.next == st.cutAt {
		return st.s.faultError(st.ctx, SimErrorStreamCut)
	}
	if st.next >= len(st.events) {
		return io.EOF
	}
	wait := time.Duration(0)
	if st.next == 0 {
		wait = st.first
	} else if tps := st.s.cfg.TokensPerSecond; tps > 0 {
		wait = time.Duration(float64(st.events[st.next].tokens) / tps * float64(time.Second))
	}
	if wait > 0 || st.ctx.Err() != nil {
		if err := st.s.cfg.Sleep(st.ctx, wait); err != nil {
			return st.s.ctxError(st.ctx, err)
		}
	}
	return nil
}

// Close ends the stream; safe to call more than once.
func (st *simStream) Close() error {
	st.closed.Store(true)
	return nil
}
