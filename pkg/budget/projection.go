package budget

import (
	"math"
	"math/bits"
	"time"

	"github.com/tollgate/tollgate/pkg/llm"
)

// Projection is when a limited budget runs out if the key keeps spending
// at the rate it has spent so far in the current period.
type Projection struct {
	// Rate is the period's spend so far per hour of the period elapsed
	// (micro-dollars per hour, rounded down); 0 when nothing was spent.
	Rate llm.Micros
	// Exhausted: nothing remains (spent and reserved reach the limit).
	Exhausted bool
	// At is when the budget runs out at Rate; zero when it never does at
	// that rate (nothing spent yet, or beyond maxHorizon).
	At time.Time
	// BeforeReset: At comes before the period resets (always, for the
	// total period, which never resets, once At is set).
	BeforeReset bool
}

// maxHorizon bounds a projection: a budget that lasts longer at the
// current rate is reported as not running out (At zero).
const maxHorizon = 10 * 365 * 24 * time.Hour

// Project projects s, a limited period's status, at time now. since is when
// spending in the period began: s.Start, or for the total period (which has
// no start) when the key was created. A period that has not yet run a
// second has no rate to project from.
func Project(s PeriodStatus, since, now time.Time) Projection {
	if !s.Start.IsZero() {
		since = s.Start
	}
	var p Projection
	if !s.Limited {
		return p
	}
	elapsed := now.Sub(since)
	rated := s.Spent > 0 && elapsed >= time.Second && !since.IsZero()
	if rated {
		p.Rate = perHour(s.Spent, elapsed)
	}
	if s.Remaining <= 0 {
		p.Exhausted, p.At, p.BeforeReset = true, now, true
		return p
	}
	if !rated {
		return p
	}
	// Float64: micro-dollars times nanoseconds overflow int64 (a $10,000
	// budget over a month), and a projection needs no more than a
	// float's 53 bits.
	perNano := float64(s.Spent) / float64(elapsed)
	left := float64(s.Remaining) / perNano
	if left > float64(maxHorizon) {
		return p
	}
	p.At = now.Add(time.Duration(left)).Truncate(time.Second)
	p.BeforeReset = s.ResetsAt.IsZero() || p.At.Before(s.ResetsAt)
	return p
}

// perHour is spent per hour of elapsed, rounded down, computed exactly in
// 128 bits (spent times an hour's nanoseconds overflows int64 past $2,562).
func perHour(spent llm.Micros, elapsed time.Duration) llm.Micros {
	hi, lo := bits.Mul64(uint64(spent), uint64(time.Hour))
	if hi >= uint64(elapsed) {
		return math.MaxInt64 // a rate no budget has; elapsed is at least a second
	}
	q, _ := bits.Div64(hi, lo, uint64(elapsed))
	if q > math.MaxInt64 {
		return math.MaxInt64
	}
	return llm.Micros(q)
}
