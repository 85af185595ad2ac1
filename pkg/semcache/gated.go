package semcache

import (
	"context"
	"slices"
	"time"

	"github.com/tollgate/tollgate/pkg/semcache/guard"
)

// Sketcher is a Checker that can sketch a prepared prompt for the gate
// (guard.Rules). ok false: this prompt, or every prompt (a guard without
// its lexicon), cannot be sketched.
type Sketcher interface {
	Sketch(prepared any) (s guard.Sketch, ok bool)
}

// canGate says whether candidates may come from the gate: the index is this
// process's own, the checker sketches prompts, and nothing but an aligned
// candidate can be served (no judge, no unaligned threshold at or below a
// cosine of 1, for any route).
func (c *Cache) canGate() (bool, Sketcher) {
	sk, ok := c.opts.Checker.(Sketcher)
	if !c.lazy || !ok || !c.pol.Load().gateable() {
		return false, nil
	}
	if _, ok := sk.Sketch(c.opts.Checker.Prepare("probe")); !ok {
		return false, nil
	}
	return true, sk
}

// sketchScope sketches entries of scope not sketched yet (up to
// maxSketchOnLookup) and reports whether the scope holds any entry.
func (c *Cache) sketchScope(scope string) bool {
	c.mu.Lock()
	ids, ok := c.gate.claim(scope, maxSketchOnLookup)
	metas := make([]*entryMeta, len(ids))
	for i, id := range ids {
		metas[i] = c.meta[id]
	}
	c.mu.Unlock()
	if len(ids) == 0 {
		return ok
	}
	sketches := make([]guard.Sketch, len(ids))
	done := make([]bool, len(ids))
	for i, id := range ids {
		if m := metas[i]; m != nil {
			sketches[i], done[i] = c.sketcher.Sketch(c.prepared(id, m))
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, id := range ids {
		switch m := metas[i]; {
		case m == nil || c.meta[id] != m:
			c.gate.remove(id) // dropped meanwhile (forget removed it already)
		case done[i]:
			c.gate.add(id, scope, &sketches[i])
		default:
			c.gate.remove(id)
		}
	}
	return true
}

// gateCandidate is an aligned candidate of a gated lookup.
type gateCandidate struct {
	id    uint64
	m     *entryMeta
	score float32
}

// similarGated is similar with the gate: the entries of q's scope that meet
// every need of q's sketch are decided by the guard; the aligned ones are
// embedded with q (those not embedded before, in one call) and the most
// similar one at or above floor that may answer q is served.
func (c *Cache) similarGated(ctx context.Context, q *Query, now time.Time, floor float32) (*Entry, Result) {
	miss := Result{Kind: KindMiss}
	k := q.keys
	if !c.sketchScope(k.scope) {
		return nil, miss // nothing cached in the scope
	}
	qp := q.prepared(c.opts.Checker)
	sketch, ok := c.sketcher.Sketch(qp)
	if !ok {
		miss.Reason = "no semantic lookup: the prompt cannot be sketched"
		return nil, miss
	}
	q.sketch = &sketch
	c.mu.RLock()
	ids := c.gate.candidates(k.scope, &sketch, maxGateCandidates)
	metas := make([]*entryMeta, len(ids))
	for i, id := range ids {
		metas[i] = c.meta[id]
	}
	c.mu.RUnlock()
	if len(ids) == 0 {
		return nil, miss // no cached prompt can align with q
	}
	var (
		cands  []gateCandidate
		reason string
	)
	for i, id := range ids {
		m := metas[i]
		if m == nil || m.scope != k.scope || !live(m, q.Controls, now) {
			continue
		}
		allow, aligned, why := c.opts.Checker.Decide(qp, c.prepared(id, m))
		switch {
		case !allow:
			c.refusals.Add(1)
			reason = "guard: " + why
		case !aligned:
			if reason == "" {
				reason = uncertainReason(false, why)
			}
		default:
			cands = append(cands, gateCandidate{id: id, m: m})
		}
	}
	if len(cands) == 0 {
		miss.Reason = reason
		return nil, miss
	}
	if err := c.embedCandidates(ctx, q, cands); err != nil {
		c.log.Warn("semcache: embed", "err", err)
		miss.Reason = "semantic lookup failed"
		return nil, miss
	}
	c.mu.RLock()
	for i := range cands {
		cands[i].score = dot(q.vec, cands[i].m.vec)
	}
	c.mu.RUnlock()
	slices.SortFunc(cands, func(x, y gateCandidate) int {
		switch {
		case x.score > y.score:
			return -1
		case x.score < y.score:
			return 1
		}
		return 0
	})
	miss.Similarity = cands[0].score
	miss.Reason = uncertainReason(true, "")
	for _, cand := range cands {
		if cand.score < floor {
			break
		}
		e, err := c.entry(ctx, cand.id)
		if err != nil {
			c.log.Warn("semcache: semantic entry", "id", cand.id, "err", err)
			miss.Reason = "semantic lookup failed"
			continue
		}
		if why := unfit(q, e); why != "" {
			miss.Reason = why
			continue
		}
		return e, Result{Kind: KindSemanticHit, Similarity: cand.score}
	}
	return nil, miss
}

// embedCandidates embeds q (unless it carries its vector) and the
// candidates without one, in one call, and keeps the candidates' vectors
// on their metas.
func (c *Cache) embedCandidates(ctx context.Context, q *Query, cands []gateCandidate) error {
	var (
		texts []string
		need  []int
	)
	if q.vec == nil {
		texts = append(texts, q.keys.query)
	}
	c.mu.RLock()
	for i := range cands {
		if cands[i].m.vec == nil {
			texts = append(texts, cands[i].m.query)
			need = append(need, i)
		}
	}
	c.mu.RUnlock()
	if len(texts) == 0 {
		return nil
	}
	vs, err := c.embedTexts(ctx, texts)
	if err != nil {
		return err
	}
	if q.vec == nil {
		q.vec, vs = vs[0], vs[1:]
	}
	c.mu.Lock()
	for j, i := range need {
		if cands[i].m.vec == nil {
			cands[i].m.vec = vs[j]
		}
	}
	c.mu.Unlock()
	return nil
}

// dot is the cosine of two unit vectors.
func dot(a, b []float32) float32 {
	var s float32
	for i := range min(len(a), len(b)) {
		s += a[i] * b[i]
	}
	return s
}
