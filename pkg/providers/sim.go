package providers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/tollgate/tollgate/pkg/llm"
)

// Fault kinds a Sim can inject (SimConfig.ErrorKinds).
const (
	SimError429       = "429"        // rate limited, with Retry-After
	SimError500       = "500"        // internal server error
	SimError503       = "503"        // overloaded
	SimErrorTimeout   = "timeout"    // hangs until ctx is done or HangTimeout, then 504
	SimErrorStreamCut = "stream_cut" // a stream dies midway after its first chunk (502 for non-streamed calls)
)

// Dist is a latency distribution. The zero Dist is no latency.
type Dist struct {
	// Kind is "fixed" (Value), "uniform" (Min..Max), "normal" (Mean,
	// Stddev) or "lognormal" (P50, P99). Empty means fixed when Value is set.
	Kind         string
	Value        time.Duration
	Min, Max     time.Duration // uniform bounds; Max also caps normal and lognormal when set
	Mean, Stddev time.Duration
	P50, P99     time.Duration
}

// z99 is the standard normal quantile at 0.99: P99 = P50 * exp(z99 * sigma).
const z99 = 2.326347874

// Sample draws one duration (never negative).
func (d Dist) Sample(rng *rand.Rand) time.Duration {
	var v float64
	switch d.Kind {
	case "", "fixed":
		return max(d.Value, 0)
	case "uniform":
		if d.Max <= d.Min {
			return max(d.Min, 0)
		}
		v = float64(d.Min) + rng.Float64()*float64(d.Max-d.Min)
	case "normal":
		v = float64(d.Mean) + rng.NormFloat64()*float64(d.Stddev)
	case "lognormal":
		if d.P50 <= 0 {
			return 0
		}
		sigma := 0.0
		if d.P99 > d.P50 {
			sigma = math.Log(float64(d.P99)/float64(d.P50)) / z99
		}
		v = float64(d.P50) * math.Exp(sigma*rng.NormFloat64())
	}
	if d.Max > 0 && v > float64(d.Max) {
		v = float64(d.Max)
	}
	return time.Duration(max(v, 0))
}

func (d Dist) validate(path string) error {
	switch d.Kind {
	case "", "fixed":
		if d.Value < 0 {
			return fmt.Errorf("%s: value must not be negative", path)
		}
	case "uniform":
		if d.Min < 0 || d.Max < d.Min {
			return fmt.Errorf("%s: uniform needs 0 <= min <= max", path)
		}
	case "normal":
		if d.Mean < 0 || d.Stddev < 0 {
			return fmt.Errorf("%s: normal needs mean >= 0 and stddev >= 0", path)
		}
	case "lognormal":
		if d.P50 <= 0 || d.P99 < d.P50 {
			return fmt.Errorf("%s: lognormal needs 0 < p50 <= p99", path)
		}
	default:
		return fmt.Errorf("%s: unknown kind %q (fixed, uniform, normal, lognormal)", path, d.Kind)
	}
	return nil
}

// SimConfig configures a simulated provider. Everything random is drawn
// from Seed and the call's sequence number, so a run is reproducible.
type SimConfig struct {
	// Name identifies the provider (default "sim").
	Name string
	Seed uint64
	// Latency delays a non-streamed answer (and an embeddings answer).
	Latency Dist
	// TTFT delays a stream's first chunk; the zero Dist falls back to Latency.
	TTFT Dist
	// TokensPerSecond paces stream content after the first chunk; 0: no pacing.
	TokensPerSecond float64
	// ChunkTokens is how many tokens each content delta carries (default 2).
	ChunkTokens int
	// ErrorRate is the probability (0..1) that a call fails with one of
	// ErrorKinds (default [SimError500]), chosen uniformly.
	ErrorRate  float64
	ErrorKinds []string
	// RetryAfter is announced by 429s (default 1s).
	RetryAfter time.Duration
	// HangTimeout is how long a "timeout" fault hangs before answering 504;
	// 0 hangs until ctx is done.
	HangTimeout time.Duration
	// EmbeddingDims is the default vector size (default 256).
	EmbeddingDims int
	// CountPrompt counts prompt tokens for usage. The gateway wires in the
	// real tokenizer; the default is SimPromptTokens.
	CountPrompt func(*llm.ChatRequest) int
	// Sleep waits d or until ctx is done (tests inject an instant one).
	Sleep func(ctx context.Context, d time.Duration) error
	// Now stamps "created" (default time.Now).
	Now func() time.Time
}

// Sim is a deterministic simulated provider: answers are a function of the
// seed and the prompt, faults and latencies of the seed and the call's
// sequence number. It is safe for concurrent use.
type Sim struct {
	cfg   SimConfig
	calls atomic.Uint64
}

// NewSim checks cfg, fills defaults and builds the simulator.
func NewSim(cfg SimConfig) (*Sim, error) {
	if cfg.Name == "" {
		cfg.Name = "sim"
	}
	if cfg.ChunkTokens <= 0 {
		cfg.ChunkTokens = 2
	}
	if len(cfg.ErrorKinds) == 0 {
		cfg.ErrorKinds = []string{SimError500}
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = time.Second
	}
	if cfg.EmbeddingDims <= 0 {
		cfg.EmbeddingDims = 256
	}
	if cfg.CountPrompt == nil {
		cfg.CountPrompt = SimPromptTokens
	}
	if cfg.Sleep == nil {
		cfg.Sleep = sleep
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	var errs []error
	for _, e := range []error{cfg.Latency.validate("latency"), cfg.TTFT.validate("ttft")} {
		if e != nil {
			errs = append(errs, e)
		}
	}
	if cfg.ErrorRate < 0 || cfg.ErrorRate > 1 || math.IsNaN(cfg.ErrorRate) {
		errs = append(errs, fmt.Errorf("error_rate: must be between 0 and 1, got %v", cfg.ErrorRate))
	}
	for i, k := range cfg.ErrorKinds {
		switch k {
		case SimError429, SimError500, SimError503, SimErrorTimeout, SimErrorStreamCut:
		default:
			errs = append(errs, fmt.Errorf("error_kinds[%d]: unknown kind %q (429, 500, 503, timeout, stream_cut)", i, k))
		}
	}
	if cfg.TokensPerSecond < 0 || cfg.HangTimeout < 0 {
		errs = append(errs, errors.New("tokens_per_second and hang_timeout must not be negative"))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("sim %q: %w", cfg.Name, errors.Join(errs...))
	}
	return &Sim{cfg: cfg}, nil
}

// Name returns the configured name.
func (s *Sim) Name() string { return s.cfg.Name }

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// simCall is one call's random draws.
type simCall struct {
	rng   *rand.Rand
	fault string
}

func (s *Sim) begin() simCall {
	n := s.calls.Add(1)
	rng := rand.New(rand.NewPCG(s.cfg.Seed, n))
	c := simCall{rng: rng}
	if s.cfg.ErrorRate > 0 && rng.Float64() < s.cfg.ErrorRate {
		c.fault = s.cfg.ErrorKinds[rng.IntN(len(s.cfg.ErrorKinds))]
	}
	return c
}

var errSimStreamCut = errors.New("sim: stream cut")

// faultError is the error a fault produces; "timeout" hangs first.
func (s *Sim) faultError(ctx context.Context, kind string) error {
	e := &llm.Error{Upstream: true, Provider: s.cfg.Name, Retryable: true}
	switch kind {
	case SimError429:
		e.Status, e.Type, e.Code = http.StatusTooManyRequests, llm.TypeRateLimit, "rate_limit_exceeded"
		e.Message, e.RetryAfter = "sim: rate limit reached, retry later", s.cfg.RetryAfter
	case SimError500:
		e.Status, e.Type, e.Message = http.StatusInternalServerError, llm.TypeServer, "sim: internal server error"
	case SimError503:
		e.Status, e.Type, e.Message = http.StatusServiceUnavailable, llm.TypeServer, "sim: the engine is currently overloaded"
	case SimErrorStreamCut:
		e.Status, e.Type, e.Message, e.Err = http.StatusBadGateway, llm.TypeUpstream, "sim: connection reset", errSimStreamCut
	case SimErrorTimeout:
		d := s.cfg.HangTimeout
		if d == 0 {
			d = math.MaxInt64 // until ctx is done
		}
		if err := s.cfg.Sleep(ctx, d); err != nil {
			return s.ctxError(ctx, err)
		}
		e.Status, e.Type, e.Message = http.StatusGatewayTimeout, llm.TypeTimeout, "sim: upstream timed out"
	}
	return e
}

// ctxError maps an interrupted wait the way the HTTP client does: a client
// cancel stays context.Canceled, a deadline is a retryable 504.
func (s *Sim) ctxError(ctx context.Context, err error) error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return connError(s.cfg.Name, err, true)
	}
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("sim %s: %w", s.cfg.Name, err)
	}
	return err
}

// Chat answers a non-streamed completion.
func (s *Sim) Chat(ctx context.Context, r *Request) (*llm.ChatResponse, error) {
	if r.Chat == nil {
		return nil, errors.New("providers: chat request without a parsed body")
	}
	call := s.begin()
	if call.fault != "" {
		return nil, s.faultError(ctx, call.fault)
	}
	if err := s.cfg.Sleep(ctx, s.cfg.Latency.Sample(call.rng)); err != nil {
		return nil, s.ctxError(ctx, err)
	}
	ans := s.answer(r, call.rng)
	resp := &llm.ChatResponse{
		ID:                ans.id,
		Object:            "chat.completion",
		Created:           s.cfg.Now().Unix(),
		Model:             ans.model,
		SystemFingerprint: simFingerprint,
		Choices:           make([]llm.Choice, len(ans.choices)),
		Usage:             ans.usage(),
	}
	for i, c := range ans.choices {
		msg := llm.Message{Role: "assistant", Content: llm.TextContent(c.text())}
		if c.tool != nil {
			msg.Content = llm.Content{Null: true}
			msg.ToolCalls = []llm.ToolCall{*c.tool}
		}
		resp.Choices[i] = llm.Choice{Index: i, Message: msg, FinishReason: c.finish, Logprobs: jsonNull}
	}
	raw, err := json.Marshal(resp)
	if err != nil {
		return nil, err
	}
	resp.Raw = raw
	return resp, nil
}

var jsonNull = json.RawMessage("null")

const simFingerprint = "fp_tollgate_sim"
