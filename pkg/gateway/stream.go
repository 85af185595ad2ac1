package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/tollgate/tollgate/pkg/llm"
	"github.com/tollgate/tollgate/pkg/providers"
	"github.com/tollgate/tollgate/pkg/router"
	"github.com/tollgate/tollgate/pkg/semcache"
)

// Stream is a streamed completion as the client should see it. Meta is
// complete once Recv has returned io.EOF (or Close was called). The
// exchange finishes when the stream ends, fails, panics or is closed,
// whichever comes first, and only once.
type Stream struct {
	Meta *Meta

	x            *exchange
	ctx          context.Context // the request's; its deadline bounds the stream
	cancel       context.CancelFunc
	up           providers.Stream
	first        *llm.ChatChunk     // pulled while the attempt could still fall back
	closeAttempt context.CancelFunc // releases the attempt's context
	wantUsage    bool               // the client asked for the usage chunk
	text         textCounter        // generated text, counted if no usage comes
	eof          bool               // the upstream ended the stream
	failed       error              // how the stream ended, if not well
	hit          bool               // replaying a cached answer: nothing to price
	opened       time.Time          // when the first chunk arrived (Meta.Upstream)
	// limit is the output tokens reserved (all choices), when a budget
	// holds a reservation: an upstream that generates well past it
	// (ignoring the output limit it was sent) is stopped (stopAt).
	// generated counts the tokens relayed so far in tokenizer's tokens.
	limit     int
	generated int
	// query, when set, stores the stream's answer once it completes;
	// answer assembles it as it goes, up to maxStoredAnswer bytes.
	query  *semcache.Query
	answer *semcache.Assembler
	// guard filters the answer's chunks when the request has guards
	// (guard.go): masked before they are stored, the request's values
	// restored for the client. upEOF: the upstream has ended.
	guard *streamGuard
	upEOF bool
}

// replay serves a cache hit as a stream, whatever shape the cached answer
// came in.
func (x *exchange) replay(ctx context.Context, req *llm.ChatRequest, hit *semcache.Entry) *Stream {
	ctx, cancel := context.WithCancel(ctx)
	return &Stream{Meta: x.meta, x: x, ctx: ctx, cancel: cancel, wantUsage: wantsUsage(req),
		up: &replay{chunks: semcache.Replay(hit.Response)}, hit: true, guard: x.streamGuard()}
}

// stream is Stream's middle step: plan, then try candidates until one has
// produced its first chunk (within the route's time-to-first-token bound);
// after that nothing is retried: the first byte is about to reach the
// client. The upstream is always asked for usage so the cost is exact; the
// usage chunk is passed on only when the client asked for it.
func (x *exchange) stream(ctx context.Context, q *semcache.Query, req *llm.ChatRequest) (opened *Stream, err error) {
	plan, err := x.plan(req)
	if err != nil {
		return nil, err
	}
	ctx, cancel := x.withTimeout(ctx, plan.Route)
	defer func() {
		if opened == nil {
			cancel() // also when a panic unwinds
		}
	}()
	st := &Stream{Meta: x.meta, x: x, ctx: ctx, cancel: cancel, wantUsage: wantsUsage(req), guard: x.streamGuard()}
	if storable(q) {
		st.query, st.answer = q, &semcache.Assembler{}
	}
	err = x.tryPlan(ctx, plan, req, true, func(ctx context.Context, a attempt) error {
		return st.open(ctx, a, req, plan.Route.TTFTTimeout, plan.Route.StreamIdleTimeout)
	})
	if err != nil {
		return nil, err
	}
	st.opened = x.g.now()
	st.text = textCounter{tokens: x.g.tokens, tokenizer: x.t.models[x.meta.Model].Spec.Tokenizer}
	if x.held && len(x.policy.Limits) > 0 {
		st.limit = x.reserved // a budget to protect: count as it comes
	}
	return st, nil
}

func wantsUsage(req *llm.ChatRequest) bool {
	return req.StreamOptions != nil && req.StreamOptions.IncludeUsage
}

// open starts one upstream stream and waits for its first chunk, bounded by
// the attempt's limit and the route's time-to-first-token. The attempt's
// context then lives on with the stream.
func (s *Stream) open(ctx context.Context, a attempt, req *llm.ChatRequest, ttft, idle time.Duration) error {
	if a.limit > 0 && (ttft == 0 || a.limit < ttft) {
		ttft = a.limit
	}
	actx, cancel := context.WithCancel(ctx)
	var timer *time.Timer
	if ttft > 0 {
		timer = time.AfterFunc(ttft, cancel)
	}
	up, err := streamCall(actx, a.d.Provider, &providers.Request{Chat: req, Model: a.d.Upstream, IncludeUsage: true, APIKey: a.credentials, IdleTimeout: idle,
		MaxTokens: outputTokens(a.step, s.x.out)})
	var first *llm.ChatChunk
	if err == nil {
		first, err = up.Recv()
		if err == io.EOF {
			err = &llm.Error{Status: http.StatusBadGateway, Type: llm.TypeUpstream, Code: "upstream_error", Upstream: true, Retryable: true,
				Provider: a.d.ProviderName, Message: "the upstream ended the stream before its first chunk"}
		}
	}
	if timer != nil && !timer.Stop() && err == nil {
		err = context.DeadlineExceeded // the bound fired as the first chunk came: the stream is cut
	}
	if err != nil {
		if up != nil {
			up.Close()
		}
		cancel()
		return err
	}
	s.up, s.first, s.closeAttempt = up, first, cancel
	return nil
}

// Recv returns the next chunk for the client, io.EOF at the end. The usage
// chunk, when the client asked for it, also carries the cost (cost_usd). A
// panic while reading the upstream ends the stream with a 500 error (the
// exchange is finished, the panic logged).
func (s *Stream) Recv() (chunk *llm.ChatChunk, err error) {
	defer func() {
		if v := recover(); v != nil {
			s.failed = errInternal
			chunk, err = nil, s.end(v)
		}
	}()
	for {
		c, masked, err := s.next()
		if err != nil {
			if err == io.EOF {
				if s.guard != nil && s.guard.restore != nil {
					// what restoring still holds: masked and stored already
					if last, _ := s.guard.restore.final(); last != nil {
						return last, nil
					}
				}
				s.eof = true
				if ferr := s.end(nil); ferr != nil {
					return nil, ferr
				}
				return nil, io.EOF
			}
			if stop, guarded := err.(guardStop); guarded {
				s.failed = stop.err
			} else {
				s.failed = s.x.g.deadlineErr(s.ctx, err)
			}
			if s.closeAttempt != nil {
				s.closeAttempt()
			}
			s.end(nil)
			return nil, s.failed
		}
		before := s.text.len()
		for i := range c.Choices {
			if masked {
				break // text the upstream sent earlier, held back by a guard
			}
			d := &c.Choices[i].Delta
			if d.Content != nil {
				s.text.add(*d.Content)
			}
			for _, tc := range d.ToolCalls {
				s.text.add(tc.Function.Name)
				s.text.add(tc.Function.Arguments)
			}
		}
		s.x.traceChunk(c)
		if s.limit > 0 && s.text.len() > before {
			if s.generated += s.text.countSince(before); s.generated > s.stopAt() {
				// Chunk by chunk overcounts (tokens merge across chunks):
				// count the whole text before stopping an honest stream.
				if s.generated = s.text.count(); s.generated > s.stopAt() {
					return nil, s.overrun()
				}
			}
		}
		orig := c
		if s.guard != nil && s.guard.mask != nil && !masked {
			if c, err = s.guard.mask.filter(c); err != nil {
				return nil, s.stopGuarded(err)
			}
		}
		if s.answer != nil {
			if s.answer.Add(c); s.answer.Size() > maxStoredAnswer {
				s.query, s.answer = nil, nil // too long to keep: not stored
			}
		}
		if s.guard != nil && s.guard.restore != nil {
			c, _ = s.guard.restore.filter(c)
		}
		if c != orig && held(orig, c) {
			continue // its text is held back by a guard
		}
		if c.Usage == nil {
			return c, nil
		}
		if !s.hit {
			s.Meta.Usage = c.Usage
			s.price()
		}
		if !s.wantUsage {
			if len(c.Choices) == 0 {
				continue // the usage-only chunk the client did not ask for
			}
			stripped := *c
			stripped.Usage, stripped.Raw = nil, nil
			return &stripped, nil
		}
		return withCost(c, s.Meta.Cost), nil
	}
}

// next is the next chunk of the answer: the first one, pulled while the
// attempt could still fall back, then the upstream's. When the upstream
// ends, the text the guards' masking still holds comes in one last chunk,
// already masked (its refusal is a guardStop).
func (s *Stream) next() (c *llm.ChatChunk, masked bool, err error) {
	if c := s.first; c != nil {
		s.first = nil
		return c, false, nil
	}
	if s.upEOF {
		return nil, false, io.EOF
	}
	c, err = s.up.Recv()
	if err != io.EOF || s.guard == nil || s.guard.mask == nil {
		return c, false, err
	}
	s.upEOF = true
	last, ferr := s.guard.mask.final()
	if ferr != nil {
		return nil, false, guardStop{s.x.guardRefusal(ferr)}
	}
	if last != nil {
		return last, true, nil
	}
	return nil, false, io.EOF
}

// guardStop is a guard's refusal of the answer, met while reading it.
type guardStop struct{ err error }

func (g guardStop) Error() string { return g.err.Error() }

// stopGuarded ends a stream whose answer a guard refused: the upstream is
// cut, the client gets the error as its last event, and the exchange is
// settled at what was generated.
func (s *Stream) stopGuarded(err error) error {
	s.failed = s.x.guardRefusal(err)
	if s.closeAttempt != nil {
		s.closeAttempt()
	}
	s.end(nil)
	return s.failed
}

// stopAt is how many tokens a stream may generate before it is stopped:
// the reservation, plus a margin for the difference between tollgate's
// count and the provider's own tokenizer, so an honest stream that stops
// at its limit is never cut.
func (s *Stream) stopAt() int {
	return s.limit + max(s.limit/4, 64)
}

// overrun stops a stream whose upstream generated more than was reserved:
// the upstream is cut, the client gets an error event, and the exchange is
// settled at what was generated.
func (s *Stream) overrun() error {
	s.failed = &llm.Error{Status: http.StatusBadGateway, Type: llm.TypeUpstream, Code: "output_limit_exceeded", Upstream: true, Provider: s.Meta.Provider,
		Message: fmt.Sprintf("the upstream generated more than the %d output tokens reserved for this request (it ignored the output limit it was sent); the stream was stopped and is charged for what it generated", s.limit)}
	if s.closeAttempt != nil {
		s.closeAttempt()
	}
	s.end(nil)
	return s.failed
}

// price computes the stream's cost: from its usage chunk, or from the text
// counted when the upstream sent none (a stream cut midway, an upstream
// that ignores stream_options).
func (s *Stream) price() {
	s.x.price(s.Meta.Usage, func(string) int { return s.text.count() })
}

// end finishes the exchange once: the stream is priced, written to the
// ledger before the client is told it is complete, and a complete answer
// is then stored in the cache. A replayed hit is recorded at no cost. It
// returns the error the client gets, if any.
func (s *Stream) end(recovered any) error {
	if s.x.done {
		return nil
	}
	if !s.hit && recovered == nil {
		s.price()
	}
	if !s.opened.IsZero() {
		s.Meta.Upstream += s.x.g.now().Sub(s.opened)
	}
	err := s.x.finish(s.ctx, recovered, s.failed)
	if err == nil && s.query != nil {
		if resp, aerr := s.answer.Response(); aerr != nil {
			s.x.g.log.Warn("cache: assemble stream", "err", aerr)
		} else {
			if resp.Usage == nil {
				resp.Usage = s.Meta.Usage
			}
			s.x.store(s.ctx, s.query, resp)
		}
	}
	s.answer = nil
	return err
}

// maxStoredAnswer bounds the text a streamed answer may have to be stored
// in the cache: a stream held behind a slow client keeps at most this much
// for the cache.
const maxStoredAnswer = 1 << 20

// textCounter counts the tokens of a stream's generated text as it comes,
// keeping only the last few KiB: whole runs of text are counted and
// dropped at whitespace, where the tokenizers' pre-tokenization splits
// anyway, so the total is the count of the whole text (to within a token
// at a cut with no whitespace near it) without holding the whole text.
type textCounter struct {
	tokens    TokenCounter
	tokenizer string
	pending   []byte
	counted   int // tokens of the text already dropped
	total     int // bytes added
	lastCut   int // total at the start of pending
	space     int // index in pending of its last whitespace (0: none after the start)
}

// textBlock is how much text is kept before a run is counted and dropped.
const textBlock = 4 << 10

func (t *textCounter) add(s string) {
	if k := strings.LastIndexAny(s, " \n\t"); k >= 0 {
		t.space = len(t.pending) + k
	}
	t.pending = append(t.pending, s...)
	t.total += len(s)
	if len(t.pending) < textBlock {
		return
	}
	cut := t.space
	if cut <= 0 {
		if len(t.pending) < 16*textBlock {
			return
		}
		cut = len(t.pending) // no whitespace in 64 KiB: cut anyway
	}
	t.counted += t.tokens.CountText(t.tokenizer, string(t.pending[:cut]))
	t.lastCut += cut
	t.pending = append(t.pending[:0], t.pending[cut:]...)
	t.space = 0 // the rest starts at the whitespace cut before, if any
}

func (t *textCounter) len() int { return t.total }

// count is the tokens of all the text added.
func (t *textCounter) count() int {
	return t.counted + t.tokens.CountText(t.tokenizer, string(t.pending))
}

// countSince counts the text added after the first from bytes (as far as
// it is still held): the tokens a chunk added, counted on their own.
func (t *textCounter) countSince(from int) int {
	start := max(from-t.lastCut, 0)
	return t.tokens.CountText(t.tokenizer, string(t.pending[start:]))
}

// withCost adds the cost to a usage chunk without touching its other bytes.
func withCost(c *llm.ChatChunk, cost router.Cost) *llm.ChatChunk {
	if cost.Unpriced {
		return c
	}
	raw := c.Raw
	if raw == nil {
		var err error
		if raw, err = json.Marshal(c); err != nil {
			return c
		}
	}
	var parts struct {
		Usage json.RawMessage `json:"usage"`
	}
	if json.Unmarshal(raw, &parts) != nil || len(parts.Usage) == 0 || parts.Usage[0] != '{' {
		return c
	}
	usage, err := llm.SetField(parts.Usage, "cost_usd", []byte(cost.Micros.String()))
	if err != nil {
		return c
	}
	if raw, err = llm.SetField(raw, "usage", usage); err != nil {
		return c
	}
	out := *c
	out.Raw = raw
	return &out
}

// Close releases the upstream stream and finishes the exchange if Recv has
// not: a stream closed before its end (the client left) is priced from
// what was generated so far and is not stored.
func (s *Stream) Close() (err error) {
	defer func() {
		v := recover()
		if !s.eof && s.failed == nil {
			s.failed = context.Canceled // the client left mid-stream
		}
		s.end(v)
		if s.closeAttempt != nil {
			s.closeAttempt()
		}
		s.cancel()
	}()
	return s.up.Close()
}
