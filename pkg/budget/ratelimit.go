package budget

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/tollgate/tollgate/pkg/llm"
)

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
func (l *Ledger) Allow(keyID string, promptTokens int) (RateState, error) {
	st := l.state(keyID)
	now := l.now()
	st.mu.Lock()
	defer st.mu.Unlock()
	rpm, tpm := st.policy.RPM, st.policy.TPM
	reqTAT, tokTAT := st.rpm.tat, st.tpm.tat
	reqOK, tokOK := true, true
	var reqRetry, tokRetry time.Duration
	if rpm > 0 {
		reqTAT, reqOK, reqRetry = st.rpm.check(now, rpm, 1)
	}
	if tpm > 0 {
		tokTAT, tokOK, tokRetry = st.tpm.check(now, tpm, promptTokens)
	}
	if reqOK && tokOK { // charge both, or neither
		st.rpm.tat, st.tpm.tat = reqTAT, tokTAT
	}
	s := RateState{LimitRequests: rpm, LimitTokens: tpm}
	if rpm > 0 {
		s.RemainingRequests, s.ResetRequests = st.rpm.state(now, rpm)
	}
	if tpm > 0 {
		s.RemainingTokens, s.ResetTokens = st.tpm.state(now, tpm)
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
