package vecindex

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
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
// would. Segment by segment: pass 1 bounds every point from its quantised
// 16-coordinate head (pca.go), the survivors get the 64-coordinate head
// bound, and those still able to win are rescored exactly, best bound
// first, until no bound reaches the best score found; that score then
// raises the bar for the segments after.
func (x *Index) Search(ctx context.Context, scope string, vec []float32, threshold float32, now time.Time) (semcache.Hit, bool, error) {
	if err := x.check(ctx, vec); err != nil {
		return semcache.Hit{}, false, err
	}
	v := x.load(scope)
	if v == nil {
		return semcache.Hit{}, false, nil
	}
	var qq float64
	for _, f := range vec {
		qq += float64(f) * float64(f)
	}
	if v.basis == nil || v.len() < x.small || !(qq <= maxNorm2) {
		return x.scan(v, vec, threshold, now)
	}
	s := x.pool.Get().(*scratch)
	defer x.pool.Put(s)
	qh := prepareHead(s.g, s.gs, s.gp, vec, qq, v.basis)
	k := x.headP
	t := nanos(now)
	var beta float32
	prepared := false
	codeOf := func(seg *segment, i int) float32 {
		if !prepared {
			beta, prepared = s.prepare(vec, v.centre), true
		}
		return codeBound(s, seg, i, x.words, beta, qh.qn)
	}

	// When pass 1 keeps more than seven eighths of the first segment
	// (vectors without low-rank structure), later segments are bounded by
	// the sign code alone; once a segment has had more than half its points
	// rescored anyway (vectors crowded around the threshold), the rest are
	// scanned exactly, which is then cheaper than bounding them.
	useHead := !x.noHead
	exactRest := false
	var hit semcache.Hit
	found := false
	for si, seg := range v.segs {
		n := int(seg.n.Load())
		if exactRest {
			for i := range n {
				if seg.exp[i] <= t || seg.isDead(i) {
					continue
				}
				sc := vek32.Dot(vec, seg.vecs[i*x.dim:(i+1)*x.dim])
				if sc >= threshold && better(sc, seg.ids[i], hit.Score, hit.ID, found) {
					hit, found = semcache.Hit{ID: seg.ids[i], Score: sc}, true
				}
			}
			continue
		}
		thr := threshold
		if found && hit.Score > thr {
			thr = hit.Score
		}
		rescored := 0
		cands := s.cands[:0]
		// Candidates' bounds are F (pass 2, before adding C) when the
		// head bounds them, scores otherwise; cut converts a score.
		headed := useHead
		cut := func(score float32) float32 {
			if headed {
				return qh.bar(score, false)
			}
			return score
		}
		if useHead {
			if cap(s.mask) < (n+7)/8 {
				s.mask = make([]uint8, (n+7)/8)
			}
			mask := s.mask[:(n+7)/8]
			par := [4]float32{qh.un1, qh.qm, qh.bar(thr, true), qh.lam}
			scanHead(seg.code.hq1, qh.gp, seg.code.tau1, seg.code.w1, &par, mask, n)
			par = [4]float32{qh.un, qh.qm}
			idx := s.idx[:0]
			b := 0
			for ; b+8 <= len(mask); b += 8 {
				for m := binary.LittleEndian.Uint64(mask[b:]); m != 0; m &= m - 1 {
					idx = append(idx, int32(b*8+bits.TrailingZeros64(m)))
				}
			}
			for ; b < len(mask); b++ {
				for m := mask[b]; m != 0; m &= m - 1 {
					idx = append(idx, int32(b*8+bits.TrailingZeros8(m)))
				}
			}
			s.idx = idx
			if cap(s.out) < len(idx) {
				s.out = make([]float32, cap(idx))
			}
			out := s.out[:len(idx)]
			pass2(seg.code.recs, idx, qh.gs[:k], &par, out)
			bar := cut(thr)
			for j, ub := range out {
				if i := int(idx[j]); ub >= bar && seg.exp[i] > t && !seg.isDead(i) {
					cands = append(cands, cand{ub: ub, slot: int32(i)})
				}
			}
			if x.stats != nil {
				x.stats.pass1 += len(idx)
				x.stats.pass2 += len(cands)
			}
			if si == 0 && 8*len(idx) > 7*n {
				useHead = false
			}
		} else {
			for i := range n {
				if seg.exp[i] <= t || seg.isDead(i) {
					continue
				}
				if ub := codeOf(seg, i); ub >= thr {
					cands = append(cands, cand{ub: ub, slot: int32(i)})
				}
			}
		}
		s.cands = cands
		if len(cands) > n/4 {
			// The bound pruned little (vectors crowded around the
			// threshold): rescore in memory order, which streams, skipping
			// what the best so far already beats, and, after the head
			// bound, what the sign code rules out (it is the tighter of
			// the two on vectors without low-rank structure).
			var skip float32
			if found {
				skip = cut(hit.Score)
			}
			for _, c := range cands {
				if found && c.ub < skip {
					continue
				}
				if headed {
					if cb := codeOf(seg, int(c.slot)); cb < thr || found && cb < hit.Score {
						continue
					}
				}
				rescored++
				i := int(c.slot)
				sc := vek32.Dot(vec, seg.vecs[i*x.dim:(i+1)*x.dim])
				if sc >= threshold && better(sc, seg.ids[i], hit.Score, hit.ID, found) {
					hit, found = semcache.Hit{ID: seg.ids[i], Score: sc}, true
					skip = cut(sc)
				}
			}
		} else {
			// Rescore exactly, highest bound first, until no remaining bound
			// reaches the best exact score.
			heapify(cands)
			var stop float32
			if found {
				stop = cut(hit.Score)
			}
			for len(cands) > 0 {
				c := cands[0]
				if found && c.ub < stop {
					break
				}
				cands = pop(cands)
				rescored++
				i := int(c.slot)
				sc := vek32.Dot(vec, seg.vecs[i*x.dim:(i+1)*x.dim])
				if sc >= threshold && better(sc, seg.ids[i], hit.Score, hit.ID, found) {
					hit, found = semcache.Hit{ID: seg.ids[i], Score: sc}, true
					stop = cut(sc)
				}
			}
		}
		if x.stats != nil {
			x.stats.rescored += rescored
		}
		if 2*rescored > n {
			exactRest = true
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
	c := seg.code
	a, r := c.alpha[i], c.rho[i]
	w := agree(s.tables, c.codes[i*words:(i+1)*words])
	return a*beta + r*float32(math.Sqrt(float64(w))) + slack*qn*(abs(a)+r)
}
