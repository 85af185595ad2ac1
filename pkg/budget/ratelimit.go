package budget

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tollgate/tollgate/pkg/llm"
)

// RateLimits is the rpm/tpm check of every request: per key, two GCRA
// buckets, sized by the key's policy (Accounts tells it every policy it
// loads or stores) and kept by a RateStore: in memory by default (a
// restart refills every bucket), or in a store every replica shares
// (PostgresRateStore, RedisRateStore). Safe for concurrent use.
type RateLimits struct {
	rpm, tpm atomic.Int64 // of keys with no policy of their own (Options.Defaults; SetDefaults)
	keys     sync.Map     // key id → ratePolicy, of keys with a policy
	store    RateStore
}

// ratePolicy is one key's limits, 0: none.
type ratePolicy struct{ rpm, tpm int }

func newRateLimits(o Options) *RateLimits { return newRateLimitsStore(o, nil) }

// newRateLimitsStore is newRateLimits keeping the buckets in store; nil
// means in memory, on o.Now's clock.
func newRateLimitsStore(o Options, store RateStore) *RateLimits {
	if store == nil {
		store = NewMemoryRateStore(o.Now)
	}
	r := &RateLimits{store: store}
	r.rpm.Store(int64(o.Defaults.RPM))
	r.tpm.Store(int64(o.Defaults.TPM))
	return r
}

// limits returns the key's rpm and tpm.
func (r *RateLimits) limits(keyID string) (rpm, tpm int) {
	if p, ok := r.keys.Load(keyID); ok {
		p := p.(ratePolicy)
		return p.rpm, p.tpm
	}
	return int(r.rpm.Load()), int(r.tpm.Load())
}

// set sizes the key's buckets by its policy; the next request is checked
// against it. What the buckets hold is kept.
func (r *RateLimits) set(keyID string, p Policy) {
	r.keys.Store(keyID, ratePolicy{rpm: p.RPM, tpm: p.TPM})
}

// rateWindow is the span rpm and tpm are counted over.
const rateWindow = time.Minute

// The rate limits are GCRA, the generic cell rate algorithm: a bucket of
// `limit` units that refills continuously, one unit every
// rateWindow/limit, held as a single number, the theoretical arrival time
// (tat): the instant the bucket will be full again. A request of n units
// costs n × rateWindow/limit (rounded up) and is allowed when, after
// adding its cost to max(tat, now), tat is at most rateWindow ahead of
// now. It is a token bucket without a refill loop: bursts up to the limit,
// then a steady limit per minute.

// rateCost is the cost of n units of a limit per rateWindow; 0 for no
// limit.
func rateCost(limit, n int) time.Duration {
	if limit <= 0 {
		return 0
	}
	return time.Duration((int64(n)*int64(rateWindow) + int64(limit) - 1) / int64(limit))
}

// RateStore keeps the GCRA state (a tat per bucket) of every key's rpm and
// tpm. Small on purpose: the one operation the hot path needs.
type RateStore interface {
	// Take charges a request of reqCost and tokCost to the key's two
	// buckets (see rateCost; 0: a limit the key does not have, always
	// fits) at the store's now: both, if both fit, or neither. It is
	// atomic against every other Take of the key, from any process
	// sharing the store.
	Take(ctx context.Context, keyID string, reqCost, tokCost time.Duration) (RateTaken, error)
}

// RateTaken is what a Take did.
type RateTaken struct {
	Charged bool // both buckets were charged
	// ReqFits and TokFits tell, when nothing was charged, which bucket had
	// no room (true when Charged).
	ReqFits, TokFits bool
	// ReqAhead and TokAhead are each bucket's tat − now after the call: the
	// time until it is full again (≤ 0: full). Not charged, they are what
	// the buckets held.
	ReqAhead, TokAhead time.Duration
}

// MemoryRateStore keeps the buckets in this process's memory: the default,
// for one process. Every key has its own mutex, held for the few
// arithmetic operations of a Take.
type MemoryRateStore struct {
	now  func() time.Time
	keys sync.Map // key id → *memoryBuckets
}

type memoryBuckets struct {
	mu       sync.Mutex
	req, tok time.Time // tat
}

var _ RateStore = (*MemoryRateStore)(nil)

// NewMemoryRateStore returns an empty store on now's clock (nil:
// time.Now).
func NewMemoryRateStore(now func() time.Time) *MemoryRateStore {
	if now == nil {
		now = time.Now
	}
	return &MemoryRateStore{now: now}
}

// Take implements RateStore; it never fails.
func (m *MemoryRateStore) Take(_ context.Context, keyID string, reqCost, tokCost time.Duration) (RateTaken, error) {
	v, ok := m.keys.Load(keyID)
	if !ok {
		v, _ = m.keys.LoadOrStore(keyID, &memoryBuckets{})
	}
	b := v.(*memoryBuckets)
	now := m.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	req, tok := max(b.req.Sub(now), 0), max(b.tok.Sub(now), 0)
	t := RateTaken{ReqFits: req+reqCost <= rateWindow, TokFits: tok+tokCost <= rateWindow}
	if t.ReqFits && t.TokFits { // charge both, or neither
		req, tok = req+reqCost, tok+tokCost
		b.req, b.tok = now.Add(req), now.Add(tok)
		t.Charged = true
	}
	t.ReqAhead, t.TokAhead = req, tok
	return t, nil
}

// remaining is the units of limit left when its bucket is full in ahead.
func remaining(limit int, ahead time.Duration) int {
	return int(int64(rateWindow-ahead) * int64(limit) / int64(rateWindow))
}

// retryAfter is how long until cost fits a bucket full in ahead.
func retryAfter(ahead, cost time.Duration) time.Duration {
	return ahead + cost - rateWindow
}

// RateState is a key's rate limits after a request, in the terms of
// OpenAI's x-ratelimit-* headers. A zero limit means none.
type RateState struct {
	LimitRequests     int
	RemainingRequests int
	ResetRequests     time.Duration // until the request budget is full again
	LimitTokens       int
	RemainingTokens   int
	ResetTokens       time.Duration
}

// SetHeaders writes OpenAI's x-ratelimit-* headers for the limits the key
// has. Reset durations are written like OpenAI's ("1s", "6m0s", "20ms").
func (s RateState) SetHeaders(h http.Header) {
	if s.LimitRequests > 0 {
		h.Set("x-ratelimit-limit-requests", strconv.Itoa(s.LimitRequests))
		h.Set("x-ratelimit-remaining-requests", strconv.Itoa(s.RemainingRequests))
		h.Set("x-ratelimit-reset-requests", resetString(s.ResetRequests))
	}
	if s.LimitTokens > 0 {
		h.Set("x-ratelimit-limit-tokens", strconv.Itoa(s.LimitTokens))
		h.Set("x-ratelimit-remaining-tokens", strconv.Itoa(s.RemainingTokens))
		h.Set("x-ratelimit-reset-tokens", resetString(s.ResetTokens))
	}
}

func resetString(d time.Duration) string { return d.Round(time.Millisecond).String() }

// Allow counts one request of the key with its prompt tokens against the
// key's rpm and tpm (token buckets refilling over a minute, GCRA) and
// returns the state for the response headers. Both limits are checked
// before either is charged: a refused request costs nothing. A refusal is a
// 429 *llm.Error (type rate_limit_error, code rate_limit_exceeded) with
// ErrRateLimited in its chain, Retry-After set to when the request would
// fit (none when the prompt alone exceeds tpm) and the headers set. A
// store that fails is an error without ErrRateLimited.
func (r *RateLimits) Allow(keyID string, promptTokens int) (RateState, error) {
	return r.AllowContext(context.Background(), keyID, promptTokens)
}

// AllowContext is Allow with ctx bounding a shared store's round trip.
func (r *RateLimits) AllowContext(ctx context.Context, keyID string, promptTokens int) (RateState, error) {
	rpm, tpm := r.limits(keyID)
	if rpm <= 0 && tpm <= 0 {
		return RateState{}, nil // nothing to count: no round trip
	}
	reqCost, tokCost := rateCost(rpm, 1), rateCost(tpm, promptTokens)
	t, err := r.store.Take(ctx, keyID, reqCost, tokCost)
	if err != nil {
		return RateState{}, storeUnavailable(fmt.Errorf("budget: rate limits of key %s: %w", keyID, err))
	}
	reqAhead, tokAhead := max(t.ReqAhead, 0), max(t.TokAhead, 0)
	s := RateState{LimitRequests: rpm, LimitTokens: tpm}
	if rpm > 0 {
		s.RemainingRequests, s.ResetRequests = remaining(rpm, reqAhead), reqAhead
	}
	if tpm > 0 {
		s.RemainingTokens, s.ResetTokens = remaining(tpm, tokAhead), tokAhead
	}
	if t.Charged {
		return s, nil
	}
	reqOK, tokOK := t.ReqFits || rpm <= 0, t.TokFits || tpm <= 0
	reqRetry, tokRetry := retryAfter(reqAhead, reqCost), retryAfter(tokAhead, tokCost)
	if promptTokens > tpm {
		tokRetry = -1 // never fits
	}
	h := http.Header{}
	s.SetHeaders(h)
	e := &llm.Error{Status: http.StatusTooManyRequests, Type: llm.TypeRateLimit, Code: "rate_limit_exceeded", Header: h}
	switch {
	case !tokOK && tokRetry < 0:
		e.Message = fmt.Sprintf("Request too large: this API key is limited to %d tokens per minute and the prompt has %d.", tpm, promptTokens)
	case !reqOK && (tokOK || reqRetry >= tokRetry):
		e.Message = fmt.Sprintf("Rate limit reached: this API key is limited to %d requests per minute. Please try again in %s.", rpm, resetString(reqRetry))
		e.RetryAfter = reqRetry
	default:
		e.Message = fmt.Sprintf("Rate limit reached: this API key is limited to %d tokens per minute and this request has %d. Please try again in %s.", tpm, promptTokens, resetString(tokRetry))
		e.RetryAfter = tokRetry
	}
	if !reqOK && !tokOK && tokRetry >= 0 {
		e.RetryAfter = max(reqRetry, tokRetry)
	}
	e.Err = ErrRateLimited
	return s, e
}
