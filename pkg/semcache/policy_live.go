package semcache

import (
	"errors"
	"time"
)

// Policy is what a running cache lets a configuration reload change: how
// long new entries live, what is cacheable, the semantic thresholds and
// the judge. Its zero fields take Options' defaults. What the cache opened
// with (its database, memory bound, embedder, index, sweeper) does not
// change.
type Policy struct {
	TTL                 time.Duration
	MaxTemperature      *float64
	RouteMaxTemperature map[string]float64
	SideEffectTools     []string
	// NoSemantic turns semantic lookups off (exact hits go on); the
	// embedder and the index stay open, so it can be turned on again.
	NoSemantic         bool
	Threshold          float32
	UnalignedThreshold float32
	Verify             bool
	VerifyThreshold    float32
	RouteThresholds    map[string]Thresholds
}

// policy is a Policy resolved: what a lookup, a store and Cacheable read.
type policy struct {
	threshold   float32 // the floor for aligned candidates
	unaligned   float32 // serves uncertain candidates without a judge; >= threshold
	verify      bool
	verifyAt    float32 // the lowest cosine handed to a judge (when verify)
	verifyFloor float32 // Policy.VerifyThreshold as given (0: it follows the threshold)
	routes      map[string]Thresholds
	ttl         time.Duration
	maxTemp     float64
	// routeMaxTemp and sideEffects are never modified once resolved.
	routeMaxTemp map[string]float64
	sideEffects  map[string]bool
	noSemantic   bool
}

func (o Options) policy() Policy {
	return Policy{TTL: o.TTL, MaxTemperature: o.MaxTemperature, RouteMaxTemperature: o.RouteMaxTemperature, SideEffectTools: o.SideEffectTools,
		Threshold: o.Threshold, UnalignedThreshold: o.UnalignedThreshold, Verify: o.Verify, VerifyThreshold: o.VerifyThreshold, RouteThresholds: o.RouteThresholds}
}

func resolve(in Policy) *policy {
	p := &policy{threshold: in.Threshold, unaligned: in.UnalignedThreshold, verify: in.Verify, verifyAt: in.VerifyThreshold,
		verifyFloor: in.VerifyThreshold, routes: in.RouteThresholds, ttl: in.TTL, maxTemp: DefaultMaxTemperature,
		routeMaxTemp: in.RouteMaxTemperature, sideEffects: map[string]bool{}, noSemantic: in.NoSemantic}
	if p.threshold <= 0 {
		p.threshold = DefaultThreshold
	}
	if p.unaligned <= 0 {
		p.unaligned = DefaultUnalignedThreshold
	}
	p.unaligned = max(p.unaligned, p.threshold)
	if p.verifyAt <= 0 {
		p.verifyAt = p.threshold
	}
	if p.ttl <= 0 {
		p.ttl = DefaultTTL
	}
	if in.MaxTemperature != nil {
		p.maxTemp = *in.MaxTemperature
	}
	for _, t := range in.SideEffectTools {
		p.sideEffects[t] = true
	}
	return p
}

// gateable: nothing but an aligned candidate can be served (no judge, no
// unaligned threshold at or below a cosine of 1, for any route), so
// candidates may come from the gate (gated.go).
func (p *policy) gateable() bool {
	if p.verify || p.unaligned <= 1 {
		return false
	}
	for _, r := range p.routes {
		if r.Unaligned > 0 && r.Unaligned <= 1 {
			return false
		}
	}
	return true
}

// ErrGated is SetPolicy's error for a policy that serves unaligned
// candidates (a judge, or an unaligned threshold at or below 1) on a
// cache that opened with the gate, which finds only aligned ones: the
// policy is applied, but those candidates are found only after a restart.
var ErrGated = errors.New("semcache: the cache opened with the gate (aligned candidates only): a judge or an unaligned threshold at or below 1 takes effect after a restart")

// SetPolicy applies p to the lookups, stores and cacheability checks that
// begin after it returns. Entries already stored keep their expiry.
func (c *Cache) SetPolicy(p Policy) error {
	r := resolve(p)
	c.pol.Store(r)
	if c.gated && !r.gateable() {
		return ErrGated
	}
	return nil
}
