package budget

import (
	"encoding/json"
	"math"
	"sync"
	"time"

	"github.com/tollgate/tollgate/pkg/llm"
)

// counter is a key's money in one period.
type counter struct {
	start, end time.Time // zero for Total
	spent      llm.Micros
	reserved   llm.Micros
}

// used is what the period's limit must leave room for: spent plus held.
func (c *counter) used() llm.Micros { return addSat(c.spent, c.reserved) }

// room is what is left of limit, never negative.
func (c *counter) room(limit llm.Micros) llm.Micros { return max(limit-c.used(), 0) }

// charge adds a settled or recorded cost.
func (c *counter) charge(cost llm.Micros) { c.spent = addSat(c.spent, cost) }

// addSat is a + b, saturating at the int64 bounds: money that would not fit
// (an upstream reporting 2^62 tokens prices at math.MaxInt64) keeps a
// counter at its maximum, so a budget stays spent instead of wrapping
// negative and opening again.
func addSat(a, b llm.Micros) llm.Micros {
	s := a + b
	if (s > a) != (b > 0) {
		if b > 0 {
			return math.MaxInt64
		}
		return math.MinInt64
	}
	return s
}

// contains reports whether t is in the counter's period.
func (c *counter) contains(t time.Time) bool {
	if c.start.IsZero() && c.end.IsZero() {
		return true // Total
	}
	return !t.Before(c.start) && t.Before(c.end)
}

// hold is an open reservation.
type hold struct {
	amount llm.Micros
	at     time.Time
}

// doneGeneration bounds the memory of settled request ids: the last
// doneGeneration to 2*doneGeneration ids of a key are remembered.
const doneGeneration = 4096

// keyState is one key's account (Accounts). Every key has its own mutex,
// so requests of different keys never contend; it is held for a few
// hundred nanoseconds and never across I/O. The alerts the key has fired
// are kept here, with the counters, so that deciding which thresholds a
// charge crossed is atomic with the charge.
type keyState struct {
	mu       sync.Mutex
	policy   Policy
	explicit bool // the key's own policy (false: the defaults)
	// loaded: the policy is the shared store's as of its last change
	// (Options.Shared only; a notification clears it).
	loaded bool
	// cur counts every period (limited or not) so a limit added later
	// starts from the right spend; prev is the period before, kept while
	// requests admitted in it may still settle there.
	cur, prev [len(periods)]counter
	open      map[string]*hold
	// custOpen is, for each open reservation of a customer with a
	// customer account, that account (nil until the first: keys without
	// customer budgets never make it).
	custOpen map[string]*keyState
	// customer is the customer's name, in a customer's account.
	customer string
	// customers are the accounts of the key's customers (customers.go),
	// by name, once counted; guarded by mu.
	customers     map[string]*keyState
	done, doneOld map[string]struct{}   // settled request ids, two generations
	fired         map[alertKey]struct{} // alerts fired in the current and previous periods
}

// rollover starts a new period for each counter whose period has ended.
func (st *keyState) rollover(now time.Time, loc *time.Location) {
	for i, p := range periods[:Total.index()] {
		c := &st.cur[i]
		if now.Before(c.end) {
			continue
		}
		st.prev[i] = *c
		start, end := p.Window(now, loc)
		st.cur[i] = counter{start: start, end: end}
		for k := range st.fired { // forget alerts of periods that are over
			if k.period == p && k.start < msOf(st.prev[i].start) {
				delete(st.fired, k)
			}
		}
	}
}

// counterAt is the counter of period i that contains t: the current one,
// the previous one, or nil (an older period nobody reads any more).
func (st *keyState) counterAt(i int, t time.Time) *counter {
	if st.cur[i].contains(t) {
		return &st.cur[i]
	}
	if st.prev[i].contains(t) && !st.prev[i].end.IsZero() {
		return &st.prev[i]
	}
	return nil
}

// remaining is the smallest room left across the key's limits.
func (st *keyState) remaining() (llm.Micros, bool) {
	var min llm.Micros
	limited := false
	for _, lim := range st.policy.Limits {
		c := &st.cur[lim.Period.index()]
		r := c.room(lim.Amount)
		if !limited || r < min {
			min, limited = r, true
		}
	}
	return min, limited
}

func (st *keyState) isDone(id string) bool {
	if _, ok := st.done[id]; ok {
		return true
	}
	_, ok := st.doneOld[id]
	return ok
}

func (st *keyState) markDone(id string) {
	if len(st.done) >= doneGeneration {
		st.doneOld, st.done = st.done, make(map[string]struct{}, doneGeneration)
	}
	st.done[id] = struct{}{}
}

// PeriodStatus is a key's money in one current period.
type PeriodStatus struct {
	Period     Period
	Limited    bool       // the key has a limit for this period
	Limit      llm.Micros // when Limited
	Thresholds []float64  // alert thresholds, when Limited
	Spent      llm.Micros // settled (and recorded) cost
	Reserved   llm.Micros // held by requests in flight
	Remaining  llm.Micros // Limit - Spent - Reserved, never negative; when Limited
	Start      time.Time  // zero for total
	ResetsAt   time.Time  // zero for total: it never resets
}

func statusOf(lim Limit, c *counter) PeriodStatus {
	return PeriodStatus{
		Period: lim.Period, Limited: true, Limit: lim.Amount, Thresholds: lim.thresholds(),
		Spent: c.spent, Reserved: c.reserved, Remaining: c.room(lim.Amount),
		Start: c.start, ResetsAt: c.end,
	}
}

// MarshalJSON writes the admin API's shape: period, limit_usd, spent_usd,
// reserved_usd, remaining_usd (null when there is no limit), resets_at
// (RFC 3339, null for total) and alert_thresholds. Amounts are exact
// decimals.
func (s PeriodStatus) MarshalJSON() ([]byte, error) {
	type out struct {
		Period     Period       `json:"period"`
		Limit      *json.Number `json:"limit_usd"`
		Spent      json.Number  `json:"spent_usd"`
		Reserved   json.Number  `json:"reserved_usd"`
		Remaining  *json.Number `json:"remaining_usd"`
		ResetsAt   *string      `json:"resets_at"`
		Thresholds []float64    `json:"alert_thresholds,omitempty"`
	}
	o := out{Period: s.Period, Spent: usd(s.Spent), Reserved: usd(s.Reserved), Thresholds: s.Thresholds}
	if s.Limited {
		lim, rem := usd(s.Limit), usd(s.Remaining)
		o.Limit, o.Remaining = &lim, &rem
	}
	if !s.ResetsAt.IsZero() {
		at := s.ResetsAt.UTC().Format(time.RFC3339)
		o.ResetsAt = &at
	}
	return json.Marshal(o)
}

func usd(m llm.Micros) json.Number { return json.Number(m.String()) }

// KeyStatus is a key's budget as GET /admin/keys/{id} shows it.
type KeyStatus struct {
	KeyID string `json:"key_id"`
	// Policy is the key's own policy, or the defaults (OwnPolicy false).
	Policy    Policy `json:"policy"`
	OwnPolicy bool   `json:"own_policy"`
	// Budgets has one entry per limit, in the policy's order.
	Budgets []PeriodStatus `json:"budgets"`
	// Periods is the spend in each current period, limited or not.
	Periods []PeriodStatus `json:"periods"`
}
