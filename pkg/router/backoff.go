package router

import (
	"math/rand/v2"
	"time"
)

// Backoff is the retry policy for one candidate: exponential backoff with
// full jitter (a wait drawn uniformly from [0, min(Max, Base x 2^(n-1))]
// before retry n, which spreads retries of many clients better than equal
// or decorrelated jitter), never shorter than the upstream's Retry-After,
// bounded by attempts and by the request's remaining time. When it says
// stop, the gateway falls back to the next candidate.
//
// A zero field takes its value from DefaultBackoff.
type Backoff struct {
	Base time.Duration // ceiling of the first retry's wait; default 250ms
	Max  time.Duration // largest ceiling; default 8s
	// MaxAttempts counts the first attempt: 3 means up to two retries.
	// Default 3.
	MaxAttempts int
	// MaxRetryAfter is the longest Retry-After waited out. An upstream
	// asking for more (a hostile or confused one can say an hour) is not
	// retried at all: sending sooner than it asked would only earn another
	// 429, and waiting would stall the client, so the gateway falls back
	// instead. Default 30s.
	MaxRetryAfter time.Duration
	// MinAttempt is the least time worth starting an attempt with: a retry
	// that would leave less than this before the deadline is not made.
	// Default 500ms.
	MinAttempt time.Duration
}

// DefaultBackoff is the policy where nothing is configured: up to 3
// attempts, waits drawn below 250ms then 500ms, Retry-After honoured up to
// 30s, no attempt started with less than 500ms left.
func DefaultBackoff() Backoff {
	return Backoff{
		Base:          250 * time.Millisecond,
		Max:           8 * time.Second,
		MaxAttempts:   3,
		MaxRetryAfter: 30 * time.Second,
		MinAttempt:    500 * time.Millisecond,
	}
}

func (b Backoff) withDefaults() Backoff {
	d := DefaultBackoff()
	if b.Base <= 0 {
		b.Base = d.Base
	}
	if b.Max <= 0 {
		b.Max = d.Max
	}
	if b.MaxAttempts <= 0 {
		b.MaxAttempts = d.MaxAttempts
	}
	if b.MaxRetryAfter <= 0 {
		b.MaxRetryAfter = d.MaxRetryAfter
	}
	if b.MinAttempt <= 0 {
		b.MinAttempt = d.MinAttempt
	}
	return b
}

// Delay is the wait before the next attempt after attempt attempts failed
// (attempt >= 1): rnd() x min(Max, Base x 2^(attempt-1)), raised to
// retryAfter when the upstream asked for longer. rnd returns values in
// [0,1); nil uses math/rand/v2.
func (b Backoff) Delay(attempt int, retryAfter time.Duration, rnd func() float64) time.Duration {
	b = b.withDefaults()
	ceiling := b.Max
	if shift := attempt - 1; shift < 62 && b.Base < b.Max>>max(shift, 0) {
		ceiling = b.Base << max(shift, 0)
	}
	if rnd == nil {
		rnd = rand.Float64
	}
	r := min(max(rnd(), 0), 1)
	d := time.Duration(r * float64(ceiling))
	return max(d, retryAfter)
}

// Next decides whether to retry the same candidate after attempt attempts
// failed with a retryable error, given the upstream's Retry-After (0: none)
// and the time remaining before the request's deadline (negative or zero:
// none left; pass a large value when there is no deadline). It returns the
// wait and true, or false when the attempts are spent, the Retry-After is
// longer than MaxRetryAfter, or the wait would not leave MinAttempt.
func (b Backoff) Next(attempt int, retryAfter, remaining time.Duration, rnd func() float64) (time.Duration, bool) {
	b = b.withDefaults()
	if attempt >= b.MaxAttempts || retryAfter > b.MaxRetryAfter {
		return 0, false
	}
	d := b.Delay(attempt, retryAfter, rnd)
	if !b.Fits(d, remaining) {
		return 0, false
	}
	return d, true
}

// Fits reports whether waiting wait still leaves MinAttempt before the
// deadline: the check for a fallback to another candidate too (with wait 0).
func (b Backoff) Fits(wait, remaining time.Duration) bool {
	b = b.withDefaults()
	return remaining-wait >= b.MinAttempt
}
