package budget

import (
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/tollgate/tollgate/pkg/llm"
)

// RateLimits is the rpm/tpm check of every request: per key, two GCRA
// buckets in memory, sized by the key's policy (Accounts tells it every
// policy it loads or stores). It keeps no state on disk: a restart refills
// every bucket. Safe for concurrent use.
type RateLimits struct {
	now      func() time.Time
	rpm, tpm int      // of keys with no policy of their own (Options.Defaults)
	keys     sync.Map // key id → *rateKey
}

// rateKey is one key's rate limits. Every key has its own mutex, held for
// the few arithmetic operations of a check.
type rateKey struct {
	mu       sync.Mutex
	rpm, tpm int // the limits, 0: none
	req, tok gcra
}

func newRateLimits(o Options) *RateLimits {
	return &RateLimits{now: o.Now, rpm: o.Defaults.RPM, tpm: o.Defaults.TPM}
}

// key returns the key's state, creating it with the default limits on
// first use.
func (r *RateLimits) key(keyID string) *rateKey {
	if k, ok := r.keys.Load(keyID); ok {
		return k.(*rateKey)
	}
	k, _ := r.keys.LoadOrStore(keyID, &rateKey{rpm: r.rpm, tpm: r.tpm})
	return k.(*rateKey)
}

// set sizes the key's buckets by its policy; the next request is checked
// against it. What the buckets hold is kept.
func (r *RateLimits) set(keyID string, p Policy) {
	k := r.key(keyID)
	k.mu.Lock()
	k.rpm, k.tpm = p.RPM, p.TPM
	k.mu.Unlock()
}

// rateWindow is the span rpm and tpm are counted over.
const rateWindow = time.Minute

// gcra is one rate limit as the generic cell rate algorithm keeps it: a
// bucket of `limit` units that refills continuously, one unit every
// rateWindow/limit, held as a single number, the theoretical arrival time
// (tat): the instant the bucket will be full again. A request of n units
// is allowed when, after adding n × rateWindow/limit to max(tat, now), tat
// is at most rateWindow ahead of now. It is a token bucket without a
// refill loop: bursts up to the limit, then a steady limit per minute.
type gcra struct {
	tat time.Time
}

// state is the units left at now and the time until the bucket is full
// again.
func (g *gcra) state(now time.Time, limit int) (remaining int, reset time.Duration) {
	ahead := max(g.tat.Sub(now), 0)
	return int(int64(rateWindow-ahead) * int64(limit) / int64(rateWindow)), ahead
}

// check tries n units against limit at now. It returns the bucket's
// new tat if the request is allowed, or how long until it would be
// (-1: never, it is larger than the limit).
func (g *gcra) check(now time.Time, limit, n int) (newTAT time.Time, ok bool, retry time.Duration) {
	tat := g.tat
	if tat.Before(now) {
		tat = now
	}
	cost := time.Duration((int64(n)*int64(rateWindow) + int64(limit) - 1) / int64(limit))
	newTAT = tat.Add(cost)
	if ahead := newTAT.Sub(now); ahead > rateWindow {
		if n > limit {
			return g.tat, false, -1
		}
		return g.tat, false, ahead - rateWindow
	}
	return newTAT, true, 0
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
// fit (none when the prompt alone exceeds tpm) and the headers set.
func (r *RateLimits) Allow(keyID string, promptTokens int) (RateState, error) {
	st := r.key(keyID)
	now := r.now()
	st.mu.Lock()
	defer st.mu.Unlock()
	rpm, tpm := st.rpm, st.tpm
	reqTAT, tokTAT := st.req.tat, st.tok.tat
	reqOK, tokOK := true, true
	var reqRetry, tokRetry time.Duration
	if rpm > 0 {
		reqTAT, reqOK, reqRetry = st.req.check(now, rpm, 1)
	}
	if tpm > 0 {
		tokTAT, tokOK, tokRetry = st.tok.check(now, tpm, promptTokens)
	}
	if reqOK && tokOK { // charge both, or neither
		st.req.tat, st.tok.tat = reqTAT, tokTAT
	}
	s := RateState{LimitRequests: rpm, LimitTokens: tpm}
	if rpm > 0 {
		s.RemainingRequests, s.ResetRequests = st.req.state(now, rpm)
	}
	if tpm > 0 {
		s.RemainingTokens, s.ResetTokens = st.tok.state(now, tpm)
	}
	if reqOK && tokOK {
		return s, nil
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
