package gateway

import (
	"context"
	"encoding/json"
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
// complete once Recv has returned io.EOF (or Close was called).
type Stream struct {
	Meta *Meta

	g            *Gateway
	ctx          context.Context // the request's; its deadline bounds the stream
	cancel       context.CancelFunc
	up           providers.Stream
	first        *llm.ChatChunk     // pulled while the attempt could still fall back
	closeAttempt context.CancelFunc // releases the attempt's context
	wantUsage    bool               // the client asked for the usage chunk
	text         strings.Builder    // generated text, counted if no usage comes
	settled      bool
	caller       Caller
	spend        *spender
	start        time.Time
	failed       error // how the stream ended, if not well
	hit          bool  // replaying a cached answer: nothing to price
	// query, when set, stores the stream's answer once it completes;
	// chunks collects it.
	query  *semcache.Query
	chunks []llm.ChatChunk
}

// Stream opens a streamed chat completion. A cache hit is replayed as a
// stream (whatever shape the cached answer came in). Otherwise candidates
// are tried until one has produced its first chunk (within the route's
// time-to-first-token bound); after that nothing is retried: the first
// byte is about to reach the client. The upstream is always asked for
// usage so the cost is exact; the usage chunk is passed on only when the
// client asked for it. A stream that completes is stored in the cache
// before the client is told it has ended. Identical concurrent streams are
// not collapsed: a follower would wait for the whole answer before its
// first token.
func (g *Gateway) Stream(ctx context.Context, c Caller, req *llm.ChatRequest) (*Stream, error) {
	start := g.now()
	meta := &Meta{Requested: req.Model}
	route, allowed, err := g.resolveRoute(c, req.Model)
	if err != nil {
		return nil, g.fail(c, meta, err, start, nil)
	}
	q := g.cacheQuery(c, req)
	hit, err := g.lookup(ctx, c, meta, route, req, q)
	if err != nil {
		return nil, g.fail(c, meta, err, start, nil)
	}
	wantUsage := req.StreamOptions != nil && req.StreamOptions.IncludeUsage
	if hit != nil {
		ctx, cancel := context.WithCancel(ctx)
		return &Stream{Meta: meta, g: g, ctx: ctx, cancel: cancel, caller: c, start: start, wantUsage: wantUsage,
			up: &replay{chunks: semcache.Replay(hit.Response)}, hit: true}, nil
	}
	plan, err := g.plan(c, meta, route, allowed, req)
	if err != nil {
		return nil, g.fail(c, meta, err, start, nil)
	}
	ctx, cancel := g.withTimeout(ctx, plan.Route.Timeout)
	sp := g.spender(c, req, plan.Route)
	st := &Stream{Meta: meta, g: g, ctx: ctx, cancel: cancel, caller: c, spend: sp, start: start, wantUsage: wantUsage}
	if q != nil && q.Bypass() == "" && !q.Controls.NoStore {
		st.query = q
	}
	err = g.tryWithin(ctx, c, meta, plan, req, sp, true, func(ctx context.Context, a attempt) error {
		return st.open(ctx, a, req, plan.Route.TTFTTimeout)
	})
	if err != nil {
		cancel()
		return nil, g.fail(c, meta, err, start, sp)
	}
	return st, nil
}

// open starts one upstream stream and waits for its first chunk, bounded by
// the attempt's limit and the route's time-to-first-token. The attempt's
// context then lives on with the stream.
func (s *Stream) open(ctx context.Context, a attempt, req *llm.ChatRequest, ttft time.Duration) error {
	if a.limit > 0 && (ttft == 0 || a.limit < ttft) {
		ttft = a.limit
	}
	actx, cancel := context.WithCancel(ctx)
	var timer *time.Timer
	if ttft > 0 {
		timer = time.AfterFunc(ttft, cancel)
	}
	up, err := a.d.Provider.Stream(actx, &providers.Request{Chat: req, Model: a.d.Upstream, IncludeUsage: true, APIKey: a.credentials,
		MaxTokens: outputCap(req, a.step.Model)})
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
// chunk, when the client asked for it, also carries the cost (cost_usd).
func (s *Stream) Recv() (*llm.ChatChunk, error) {
	for {
		c := s.first
		s.first = nil
		if c == nil {
			var err error
			if c, err = s.up.Recv(); err != nil {
				if err != io.EOF {
					s.failed = s.g.deadlineErr(s.ctx, err)
				}
				if cerr := s.finish(); cerr != nil && err == io.EOF {
					return nil, cerr
				}
				if err == io.EOF {
					return nil, io.EOF
				}
				return nil, s.failed
			}
		}
		if s.query != nil {
			s.chunks = append(s.chunks, *c)
		}
		for i := range c.Choices {
			d := &c.Choices[i].Delta
			if d.Content != nil {
				s.text.WriteString(*d.Content)
			}
			for _, tc := range d.ToolCalls {
				s.text.WriteString(tc.Function.Name)
				s.text.WriteString(tc.Function.Arguments)
			}
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

// price computes the stream's cost once its usage chunk arrives (so the
// chunk can carry it).
func (s *Stream) price() {
	s.g.price(s.Meta, s.Meta.Usage, s.text.String)
}

// finish settles the stream once: priced from its usage, or from the text
// counted when the upstream sent none (a stream cut midway, an upstream
// that ignores stream_options), and written to the ledger before the
// client is told the stream is complete; a complete answer is then stored
// in the cache. A replayed hit is recorded at no cost.
func (s *Stream) finish() error {
	if s.settled {
		return nil
	}
	s.settled = true
	if !s.hit {
		s.price()
	}
	status := http.StatusOK
	if s.failed != nil {
		status = llm.ForClient(s.failed).Status
	}
	if err := s.g.commit(s.ctx, s.caller, s.Meta, s.start, s.spend, status); err != nil {
		return err
	}
	if s.query != nil && s.failed == nil {
		resp, err := semcache.Assemble(s.chunks)
		if err != nil {
			s.g.log.Warn("cache: assemble stream", "err", err)
			return nil
		}
		if resp.Usage == nil {
			resp.Usage = s.Meta.Usage
		}
		s.g.store(s.ctx, s.query, s.Meta, resp)
	}
	s.chunks = nil
	return nil
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

// Close releases the upstream stream. A stream closed before its end (the
// client left) is priced from what was generated so far.
func (s *Stream) Close() error {
	err := s.up.Close()
	if !s.settled && s.failed == nil && s.ctx.Err() != nil {
		s.failed = context.Canceled // the client left mid-stream
	}
	s.finish()
	if s.closeAttempt != nil {
		s.closeAttempt()
	}
	s.cancel()
	return err
}
