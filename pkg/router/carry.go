package router

// A configuration reload builds new Breakers and a new Balancer; the
// deployments it did not change carry their health over with Keep, so a
// reload never closes an open breaker nor ends a rate-limit cooldown.

// Keep makes id's breaker in b the one old has (the same breaker: its
// state, counts and last error, and outcomes of calls still in flight on
// old count towards it). It reports whether old had one; Keep does nothing
// when b has a breaker for id already.
func (b *Breakers) Keep(old *Breakers, id string) bool {
	if old == nil || old == b {
		return false
	}
	v, ok := old.m.Load(id)
	if !ok {
		return false
	}
	b.m.LoadOrStore(id, v)
	return true
}

// Keep carries id's rate-limit cooldown over from old.
func (b *Balancer) Keep(old *Balancer, id string) {
	if old == nil || old == b {
		return
	}
	if v, ok := old.cool.Load(id); ok {
		b.cool.LoadOrStore(id, v)
	}
}
