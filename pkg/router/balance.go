package router

import (
	"sync"
	"sync/atomic"
	"time"
)

// Deployment is one way to serve a model (a provider x upstream model x API
// key) as the balancer sees it: an ID the gateway maps to a provider client,
// and a weight.
type Deployment struct {
	ID string
	// Weight is the deployment's share of the model's traffic relative to
	// the others; 0 counts as 1, so weights are optional.
	Weight int
}

func (d *Deployment) weight() int { return max(d.Weight, 1) }

// DefaultRateLimitCooldown is how long a deployment that answered 429
// without a Retry-After is left out.
const DefaultRateLimitCooldown = 5 * time.Second

// Balancer orders a model's deployments for one request: a weighted random
// first choice among the healthy ones, then the rest as fallbacks. It skips
// deployments whose breaker is open and deployments cooling down after a
// 429 (RateLimited), so a provider's rate limit moves traffic to the
// model's other keys and providers.
//
// It is safe for concurrent use, takes no lock and does not allocate when
// the caller gives Order a buffer.
type Balancer struct {
	breakers *Breakers // nil: no breakers
	now      func() time.Time
	cool     sync.Map // id → *atomic.Int64: unix nanos until which the deployment is left out
}

// NewBalancer builds a balancer that consults breakers (nil: none) and
// tells time with now (nil: time.Now). Breakers run on time.Now, so now
// should be time.Now in production (or a synctest bubble's, in tests).
func NewBalancer(breakers *Breakers, now func() time.Time) *Balancer {
	if now == nil {
		now = time.Now
	}
	return &Balancer{breakers: breakers, now: now}
}

// Cooldown leaves the deployment out until the given time. A cooldown is
// only ever extended: an earlier until than the current one is ignored.
func (b *Balancer) Cooldown(id string, until time.Time) {
	u := until.UnixNano()
	v, ok := b.cool.Load(id)
	if !ok {
		v, _ = b.cool.LoadOrStore(id, new(atomic.Int64))
	}
	c := v.(*atomic.Int64)
	for {
		old := c.Load()
		if old >= u || c.CompareAndSwap(old, u) {
			return
		}
	}
}

// RateLimited cools the deployment down after a 429: for retryAfter when
// the upstream said, else DefaultRateLimitCooldown. It returns the end of
// the cooldown.
func (b *Balancer) RateLimited(id string, retryAfter time.Duration) time.Time {
	if retryAfter <= 0 {
		retryAfter = DefaultRateLimitCooldown
	}
	until := b.now().Add(retryAfter)
	b.Cooldown(id, until)
	return until
}

// CoolingUntil is when the deployment's cooldown ends, and whether it is
// cooling down at all (for the admin API).
func (b *Balancer) CoolingUntil(id string) (time.Time, bool) {
	if u := b.coolingUntil(id); u > b.now().UnixNano() {
		return time.Unix(0, u), true
	}
	return time.Time{}, false
}

func (b *Balancer) coolingUntil(id string) int64 {
	if v, ok := b.cool.Load(id); ok {
		return v.(*atomic.Int64).Load()
	}
	return 0
}

// health is a deployment's standing for one Order.
type health uint8

const (
	healthy  health = iota // breaker closed, not cooling down
	probing                // breaker half-open: may refuse (ErrProbesBusy)
	excluded               // breaker open or cooling down
)

func (b *Balancer) health(id string, now int64) health {
	if b.coolingUntil(id) > now {
		return excluded
	}
	if b.breakers == nil {
		return healthy
	}
	switch b.breakers.quickState(id, now) {
	case BreakerOpen:
		return excluded
	case BreakerHalfOpen:
		return probing
	}
	return healthy
}

// Order appends to dst[:0] the deployments to try, in order, and returns
// it: first a weighted random choice (pick in [0,1), drawn by the caller)
// among the healthy deployments, then the other healthy ones by weight
// (descending, ties in the given order), then those whose breaker is
// half-open, by weight. Deployments whose breaker is open or that are
// cooling down are left out; when only half-open ones remain, the pick
// chooses among them. An empty result means none can take a call now (see
// Available).
//
// Pass a dst with room for len(deps) (e.g. a stack array's slice) and
// Order does not allocate.
func (b *Balancer) Order(deps []Deployment, pick float64, dst []Deployment) []Deployment {
	dst = dst[:0]
	now := b.now().UnixNano()
	// Health is looked up once per deployment: the probing ones are
	// collected at the end of dst's spare room, then moved after the
	// healthy ones.
	nProbing := 0
	for i := range deps {
		switch b.health(deps[i].ID, now) {
		case healthy:
			dst = append(dst, deps[i])
		case probing:
			nProbing++
		}
	}
	nHealthy := len(dst)
	if nProbing > 0 {
		for i := range deps {
			if b.health(deps[i].ID, now) == probing {
				dst = append(dst, deps[i])
			}
		}
	}
	if nHealthy > 0 {
		orderWeighted(dst[:nHealthy], pick)
		byWeight(dst[nHealthy:])
	} else {
		orderWeighted(dst, pick)
	}
	return dst
}

// Available reports whether any of deps can take a call now, and if not
// why: "no deployment", "rate limited" (every deployment cooling down
// after a 429, at least one of them for that reason) or "breaker open".
// It has the shape of PlanInput.Available once the caller maps a model to
// its deployments.
func (b *Balancer) Available(deps []Deployment) (ok bool, reason string) {
	if len(deps) == 0 {
		return false, "no deployment"
	}
	now := b.now().UnixNano()
	cooling := false
	for i := range deps {
		if b.coolingUntil(deps[i].ID) > now {
			cooling = true
			continue
		}
		if b.health(deps[i].ID, now) != excluded {
			return true, ""
		}
	}
	if cooling {
		return false, "rate limited"
	}
	return false, string(ReasonBreakerOpen)
}

// orderWeighted moves the deployment chosen by pick, in proportion to the
// weights, to the front and orders the rest by weight.
func orderWeighted(d []Deployment, pick float64) {
	if len(d) < 2 {
		return
	}
	total := 0
	for i := range d {
		total += d[i].weight()
	}
	target := min(int(min(max(pick, 0), 1)*float64(total)), total-1)
	chosen := 0
	for i := range d {
		if w := d[i].weight(); target < w {
			chosen = i
			break
		} else {
			target -= w
		}
	}
	c := d[chosen]
	copy(d[1:chosen+1], d[:chosen])
	d[0] = c
	byWeight(d[1:])
}

// byWeight is a stable insertion sort by weight, descending.
func byWeight(d []Deployment) {
	for i := 1; i < len(d); i++ {
		for j := i; j > 0 && d[j].weight() > d[j-1].weight(); j-- {
			d[j], d[j-1] = d[j-1], d[j]
		}
	}
}
