package vecindex

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/viterin/vek/vek32"

	"github.com/tollgate/tollgate/pkg/semcache"
)

// better reports whether (score, id) beats the best so far: a higher score,
// or the same score and a lower id.
func better(score float32, id uint64, best float32, bestID uint64, found bool) bool {
	return !found || score > best || (score == best && id < bestID)
}

func (x *Index) check(ctx context.Context, vec []float32) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if x.closed.Load() {
		return ErrClosed
	}
	if len(vec) != x.dim {
		return fmt.Errorf("vecindex: query has %d dimensions, want %d", len(vec), x.dim)
	}
	return nil
}

func (x *Index) load(name string) *view {
	v, ok := x.scopes.Load(name)
	if !ok {
		return nil
	}
	return v.(*scope).view.Load()
}

// ExactSearch is the reference Search is held to: a float32 dot product with
// every live, unexpired point of the scope.
func (x *Index) ExactSearch(ctx context.Context, scope string, vec []float32, threshold float32, now time.Time) (semcache.Hit, bool, error) {
	if err := x.check(ctx, vec); err != nil {
		return semcache.Hit{}, false, err
	}
	v := x.load(scope)
	if v == nil {
		return semcache.Hit{}, false, nil
	}
	return x.scan(v, vec, threshold, now)
}

// smallScope is the size below which Search scans exactly: building the
// per-query tables costs about as much as scanning this many vectors.
const smallScope = 2048

func (v *view) len() int {
	n := 0
	for _, seg := range v.segs {
		n += int(seg.n.Load())
	}
	return n
}

// scan is the exact scan.
func (x *Index) scan(v *view, vec []float32, threshold float32, now time.Time) (semcache.Hit, bool, error) {
	t := nanos(now)
	var hit semcache.Hit
	found := false
	for _, seg := range v.segs {
		for i := range int(seg.n.Load()) {
			if seg.exp[i] <= t || seg.isDead(i) {
				continue
			}
			s := vek32.Dot(vec, seg.vecs[i*x.dim:(i+1)*x.dim])
			if s >= threshold && better(s, seg.ids[i], hit.Score, hit.ID, found) {
				hit, found = semcache.Hit{ID: seg.ids[i], Score: s}, true
			}
		}
	}
	return hit, found, nil
}

// Search returns the point of scope most similar to vec whose score is at
// least threshold and which has not expired at now, exactly as ExactSearch
// would, reading a 64-byte code per point and only the vectors whose bound
// could still win (see bound.go).
func (x *Index) Search(ctx context.Context, scope string, vec []float32, threshold float32, now time.Time) (semcache.Hit, bool, error) {
	if err := x.check(ctx, vec); err != nil {
		return semcache.Hit{}, false, err
	}
	v := x.load(scope)
	if v == nil {
		return semcache.Hit{}, false, nil
	}
	if v.len() < x.small {
		return x.scan(v, vec, threshold, now)
	}
	s := x.pool.Get().(*scratch)
	defer x.pool.Put(s)
	beta := s.prepare(vec, v.centre)
	un := prepareHead(s.g, s.y, vec, v.basis)
	qn := vek32.Norm(vec) * (1 + 1e-6)
	k := x.head
	t := nanos(now)

	// Pass 1: a bound for every live point; keep those that could reach
	// the threshold.
	// Segments below headSegs are bounded by the head alone (their
	// candidates get the sign-code bound in pass 2); the rest by the sign
	// code. When the head prunes less than an eighth of the first segment
	// (no low-rank structure to exploit), the rest use the sign code.
	headSegs := len(v.segs)
	if x.noHead {
		headSegs = 0
	}
	cands := s.cands[:0]
	for si, seg := range v.segs {
		if si == 1 && headSegs > 1 && 8*len(cands) > 7*int(v.segs[0].n.Load()) {
			headSegs = 1
		}
		n := int(seg.n.Load())
		for i := range n {
			if seg.exp[i] <= t || seg.isDead(i) {
				continue
			}
			// The head bound first: one 64-byte read.
			var ub float32
			if si >= headSegs {
				ub = codeBound(s, seg, i, x.words, beta, qn)
			} else {
				// The head bound: one contiguous read of head floats. The
				// sign-code bound waits for pass 2.
				ub = vek32.Dot(s.g, seg.head[i*k:(i+1)*k]) + un*seg.tau[i] + qn*seg.sig[i]
			}
			if ub >= threshold {
				cands = append(cands, cand{ub: ub, seg: int32(si), slot: int32(i)})
			}
		}
	}
	s.cands = cands

	var hit semcache.Hit
	found := false
	if len(cands) > len(cands)/4+v.len()/4 {
		// The bound pruned little (vectors crowded around the threshold):
		// rescore in memory order, which streams, skipping what the best so
		// far already beats.
		for _, c := range cands {
			if found && c.ub < hit.Score {
				continue
			}
			seg := v.segs[c.seg]
			i := int(c.slot)
			if int(c.seg) < headSegs && codeBound(s, seg, i, x.words, beta, qn) < max(threshold, hit.Score) {
				continue
			}
			sc := vek32.Dot(vec, seg.vecs[i*x.dim:(i+1)*x.dim])
			if sc >= threshold && better(sc, seg.ids[i], hit.Score, hit.ID, found) {
				hit, found = semcache.Hit{ID: seg.ids[i], Score: sc}, true
			}
		}
		return hit, found, nil
	}

	// Pass 2: rescore exactly, highest bound first, until no remaining
	// bound reaches the best exact score.
	heapify(cands)
	for len(cands) > 0 {
		c := cands[0]
		if found && c.ub < hit.Score {
			break
		}
		cands = pop(cands)
		seg := v.segs[c.seg]
		i := int(c.slot)
		if int(c.seg) < headSegs && codeBound(s, seg, i, x.words, beta, qn) < max(threshold, hit.Score) {
			continue
		}
		sc := vek32.Dot(vec, seg.vecs[i*x.dim:(i+1)*x.dim])
		if sc >= threshold && better(sc, seg.ids[i], hit.Score, hit.ID, found) {
			hit, found = semcache.Hit{ID: seg.ids[i], Score: sc}, true
		}
	}
	return hit, found, nil
}

func abs(f float32) float32 { return math.Float32frombits(math.Float32bits(f) &^ (1 << 31)) }

// heapify orders c as a max-heap on ub.
func heapify(c []cand) {
	for i := len(c)/2 - 1; i >= 0; i-- {
		down(c, i)
	}
}

// pop removes the maximum (c[0]) and returns the shortened heap.
func pop(c []cand) []cand {
	n := len(c) - 1
	c[0] = c[n]
	c = c[:n]
	down(c, 0)
	return c
}

func down(c []cand, i int) {
	for {
		l := 2*i + 1
		if l >= len(c) {
			return
		}
		m := l
		if r := l + 1; r < len(c) && c[r].ub > c[l].ub {
			m = r
		}
		if c[m].ub <= c[i].ub {
			return
		}
		c[i], c[m] = c[m], c[i]
		i = m
	}
}

// codeBound is the sign-code bound on the score of slot i (see bound.go).
func codeBound(s *scratch, seg *segment, i, words int, beta, qn float32) float32 {
	a, r := seg.alpha[i], seg.rho[i]
	w := agree(s.tables, seg.codes[i*words:(i+1)*words])
	return a*beta + r*float32(math.Sqrt(float64(w))) + slack*qn*(abs(a)+r)
}
