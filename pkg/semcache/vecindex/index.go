package vecindex

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tollgate/tollgate/internal/safe"
	"github.com/tollgate/tollgate/pkg/semcache"
)

// ErrClosed is returned by every method of a closed index.
var ErrClosed = errors.New("vecindex: closed")

var _ semcache.Index = (*Index)(nil)

const (
	defaultSegmentSize = 4096
	minSegmentSize     = 64
	// A scope relearns its centre and basis each time its live count
	// doubles; from this size on in the background (see rebuildLater).
	asyncRebuild = 1024
	// Compaction waits for at least this many tombstones in a scope.
	minCompactDead = 64
	// head1Dims is how many coordinates of a point, in the scope's
	// principal basis (its centre first), pass 1 of Search reads, as int8;
	// headDims how many (float32) the survivors' second bound reads.
	head1Dims = 32
	headDims  = 120
	// A rebuild learns the basis once the scope holds this many live
	// points (smaller scopes are scanned exactly), from at most
	// basisSample of them.
	basisMin    = 1024
	basisSample = 2048
)

// Option configures an Index.
type Option func(*Index)

// WithSegmentSize sets how many points a full segment holds (default 4096).
func WithSegmentSize(n int) Option {
	return func(x *Index) {
		if n >= minSegmentSize {
			x.segSize = n
		}
	}
}

// WithSupervisor runs background rebuilds under sup: a panic in one is
// recovered and logged there, and the scope keeps the basis it had (see
// abandon). Without it a rebuild's panic is still recovered, and logged to
// slog.Default.
func WithSupervisor(sup *safe.Supervisor) Option {
	return func(x *Index) { x.sup = sup }
}

// Index is the embedded vector index. Safe for concurrent use: searches take
// no lock; writers serialise on one mutex and never wait for a search.
type Index struct {
	dim     int
	words   int // uint64 words of a point's sign code
	segSize int
	head    int     // headDims, at most dim
	head1   int     // head1Dims, at most head
	head1P  int     // head1 rounded up to even: pass-1 bytes a point
	headP   int     // head rounded up to a multiple of 8: bytes a point
	hslack  float32 // headSlack(dim)
	// small and basisMin are smallScope and basisMin; tests lower them to
	// take the bounded path on small scopes.
	small, basisMin int
	// asyncMin is asyncRebuild; tests lower it.
	asyncMin int
	// builds counts background rebuilds under way; onBuilt, when set (by
	// tests), runs after one has built and before it installs; onMove, when
	// set (by tests), runs as install moves the j-th point.
	builds  sync.WaitGroup
	onBuilt func()
	onMove  func(j int)
	sup     *safe.Supervisor
	// noHead turns the head bound off (benchmarks compare with it).
	noHead bool
	// stats, when set (by single-goroutine benchmarks), counts the points
	// each stage of Search keeps.
	stats *searchStats

	scopes sync.Map // string -> *scope
	count  atomic.Int64
	closed atomic.Bool
	pool   sync.Pool // *scratch

	// mu serialises writers (Upsert, Delete*, Close) and guards locs and
	// every scope's writer-side counters. Searches never take it.
	mu   sync.Mutex
	locs map[uint64]loc
	// expiries holds every point's expiry, the earliest first, so that
	// a sweep costs what it removes, not what the index holds. Guarded by
	// mu.
	expiries expiryHeap
}

// searchStats counts points kept by pass 1, by pass 2, and rescored.
type searchStats struct{ pass1, pass2, rescored int }

// loc is where a live point sits, plus what bulk deletion filters on.
type loc struct {
	sc            *scope
	seg           *segment
	slot          int32
	tenant, model string
	exp           int64
}

type scope struct {
	name string
	view atomic.Pointer[view]
	// size mirrors live for readers that hold no lock (ScopeLen).
	size atomic.Int64

	// Guarded by Index.mu.
	live, dead int
	centredAt  int  // live count when the basis was last learnt
	building   bool // a background rebuild is under way
	// retryAt: a rebuild of this scope panicked; none is tried again
	// before it holds this many slots (live and dead), twice as many.
	retryAt int
}

// view is an immutable snapshot of a scope's segments and the centre their
// codes were computed against.
type view struct {
	centre []float32  // unit length
	basis  *headBasis // row 0 is centre
	segs   []*segment
}

// headRec is what pass 2 reads of a point: its quantised head and the two
// terms of its bound, two cache lines.
type headRec struct {
	q      [headDims]int8
	tau, w float32
}

// segment is append-only: slots below n are immutable except for their
// tombstone bit.
type segment struct {
	n    atomic.Int32
	ids  []uint64
	exp  []int64 // UnixNano; the point is dead at or after it
	vecs []float32
	dead []atomic.Uint64
	// code holds the points' bounds; nil in the segments of a view without
	// a basis, which searches scan exactly.
	code *segCode
}

// segCode is what a segment keeps to bound its points' scores.
type segCode struct {
	alpha []float32
	rho   []float32
	codes []uint64
	// The quantised head (see pca.go): one record a point for pass 2,
	// and its first head1 coordinates again in blocks of 32 points for
	// pass 1 (see scan.go) with pass 1's two per-point terms.
	recs []headRec
	hq1  []int8
	tau1 []float32
	w1   []float32
}

// New returns an empty index of vectors of dim dimensions.
func New(dim int, opts ...Option) *Index {
	if dim <= 0 {
		panic(fmt.Sprintf("vecindex: dimension %d", dim))
	}
	x := &Index{
		dim:     dim,
		words:   (dim + 63) / 64,
		segSize: defaultSegmentSize,
		head:    min(headDims, dim),
		head1:   min(head1Dims, dim),
		head1P:  (min(head1Dims, dim) + 1) &^ 1,
		headP:   (min(headDims, dim) + 7) &^ 7,
		hslack:  float32(headSlack(dim)),
		small:   smallScope,
		locs:    make(map[uint64]loc),
	}
	x.basisMin = basisMin
	x.asyncMin = asyncRebuild
	for _, o := range opts {
		o(x)
	}
	x.pool.New = func() any {
		return &scratch{tables: make([]float32, x.words*8*256), w: make([]float32, x.words*64), g: make([]float32, x.head), gs: make([]float32, x.headP), gp: make([]int32, (x.head1+1)/2)}
	}
	return x
}

// newSegment returns an empty segment of size slots for view v: with
// bounds when v has a basis.
func (x *Index) newSegment(size int, v *view) *segment {
	seg := &segment{
		ids:  make([]uint64, size),
		exp:  make([]int64, size),
		vecs: make([]float32, size*x.dim),
		dead: make([]atomic.Uint64, (size+63)/64),
	}
	if v.basis != nil {
		seg.code = &segCode{
			alpha: make([]float32, size),
			rho:   make([]float32, size),
			codes: make([]uint64, size*x.words),
			recs:  make([]headRec, size),
			hq1:   make([]int8, (size+31)&^31*x.head1P),
			tau1:  make([]float32, size),
			w1:    make([]float32, size),
		}
	}
	return seg
}

// codeMin is the live count from which a scope's view has a basis and its
// segments bounds: half the size from which Search bounds rather than
// scans (smallScope), so that the rebuild which adds them has run by then.
// Below it a point costs its vector and little else.
func (x *Index) codeMin() int { return x.small / 2 }

func (s *segment) isDead(i int) bool { return s.dead[i>>6].Load()&(1<<(uint(i)&63)) != 0 }

// nanos turns an expiry into UnixNano, saturating outside UnixNano's range.
// The zero time is long past: a point without an expiry is already expired,
// as the contract reads.
func nanos(t time.Time) int64 {
	switch {
	case t.Before(time.Unix(0, math.MinInt64)):
		return math.MinInt64
	case t.After(time.Unix(0, math.MaxInt64)):
		return math.MaxInt64
	}
	return t.UnixNano()
}

// Len is the number of points held, expired ones not yet swept included.
func (x *Index) Len() int { return int(x.count.Load()) }

// ScopeLen is the number of points held in scope name, expired ones not yet
// swept included: zero means a search of scope cannot hit, so a caller may
// skip computing its query vector. It takes no lock.
func (x *Index) ScopeLen(name string) int {
	if x.closed.Load() {
		return 0
	}
	v, ok := x.scopes.Load(name)
	if !ok {
		return 0
	}
	return int(v.(*scope).size.Load())
}

// Close drops every point; later calls fail with ErrClosed.
func (x *Index) Close() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.closed.Store(true)
	x.scopes.Clear()
	x.locs = nil
	x.expiries = nil
	x.count.Store(0)
	return nil
}

// Upsert adds points, replacing any held under the same id. Vectors are
// copied. Every point is checked before any is applied.
func (x *Index) Upsert(ctx context.Context, points ...semcache.Point) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for i := range points {
		if len(points[i].Vector) != x.dim {
			return fmt.Errorf("vecindex: point %d has %d dimensions, want %d", points[i].ID, len(points[i].Vector), x.dim)
		}
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.closed.Load() {
		return ErrClosed
	}
	touched := make(map[*scope]struct{})
	for i := range points {
		p := &points[i]
		if old, ok := x.locs[p.ID]; ok {
			x.kill(p.ID, old)
			touched[old.sc] = struct{}{}
		}
		sc := x.scopeFor(p.Scope)
		exp := nanos(p.ExpiresAt)
		x.locs[p.ID] = x.appendPoint(sc, p.ID, p.Vector, exp, p.Tenant, p.Model)
		x.expiries.push(expiry{at: exp, id: p.ID})
		sc.live++
		sc.size.Store(int64(sc.live))
		x.count.Add(1)
		touched[sc] = struct{}{}
	}
	for sc := range touched {
		x.maintain(sc)
	}
	x.trimExpiries()
	return nil
}

// scopeFor returns the scope named name, creating it. Callers hold mu.
func (x *Index) scopeFor(name string) *scope {
	if v, ok := x.scopes.Load(name); ok {
		return v.(*scope)
	}
	sc := &scope{name: name}
	x.scopes.Store(name, sc)
	return sc
}

// appendPoint writes a point into the scope's last segment (a new one when
// full) and publishes it. Callers hold mu.
func (x *Index) appendPoint(sc *scope, id uint64, vec []float32, exp int64, tenant, model string) loc {
	v := sc.view.Load()
	if v == nil {
		v = &view{}
		if x.codeMin() == 0 {
			c := unit(vec, nil)
			v = &view{centre: c, basis: newHeadBasis([][]float64{f64(c)}, x.head, x.head1, x.dim)}
			sc.centredAt = 1
		}
		sc.view.Store(v)
	}
	var seg *segment
	if k := len(v.segs); k > 0 && int(v.segs[k-1].n.Load()) < len(v.segs[k-1].ids) {
		seg = v.segs[k-1]
	} else {
		if k > 0 && v.basis == nil && !sc.building && sc.live < min(x.codeMin(), x.segSize) && sc.live+sc.dead >= sc.retryAt {
			// A scope without bounds keeps its points in one segment,
			// moved into one half as large again when full: a search
			// then reads one run of vectors, not a segment a growth.
			x.rebuild(sc, sc.live+sc.live/2+1)
			v = sc.view.Load()
		}
		if k := len(v.segs); k > 0 && int(v.segs[k-1].n.Load()) < len(v.segs[k-1].ids) {
			seg = v.segs[k-1]
		} else {
			// Segments grow with the scope, its first holding one point,
			// so that the many small scopes of a busy gateway (one a
			// conversation) cost about their points' vectors; once it has
			// bounds, by a quarter of its slots (at most a quarter of them
			// empty, four segments a doubling).
			seg = x.newSegment(min(x.segSize, max(1, (sc.live+sc.dead)/4)), v)
			segs := make([]*segment, len(v.segs), len(v.segs)+1)
			copy(segs, v.segs)
			v = &view{centre: v.centre, basis: v.basis, segs: append(segs, seg)}
			sc.view.Store(v)
		}
	}
	i := x.put(seg, v, id, vec, exp)
	return loc{sc: sc, seg: seg, slot: int32(i), tenant: tenant, model: model, exp: exp}
}

// put encodes a point into seg's next slot against v and publishes it.
// Callers hold mu.
func (x *Index) put(seg *segment, v *view, id uint64, vec []float32, exp int64) int {
	i := int(seg.n.Load())
	seg.ids[i] = id
	seg.exp[i] = exp
	copy(seg.vecs[i*x.dim:(i+1)*x.dim], vec)
	if c := seg.code; c != nil {
		c.alpha[i], c.rho[i] = encode(c.codes[i*x.words:(i+1)*x.words], vec, v.centre)
		r := &c.recs[i]
		r.tau, r.w, c.tau1[i], c.w1[i] = encodeHead(r.q[:x.headP], c.hq1[blockOff(i, x.head1P):], vec, v.basis, float64(x.hslack))
	}
	seg.n.Store(int32(i + 1)) // publishes the slot to searches
	return i
}

// kill tombstones a live point. Callers hold mu.
func (x *Index) kill(id uint64, l loc) {
	l.seg.dead[l.slot>>6].Or(1 << (uint(l.slot) & 63))
	delete(x.locs, id)
	l.sc.live--
	l.sc.size.Store(int64(l.sc.live))
	l.sc.dead++
	x.count.Add(-1)
}

// maintain compacts a scope full of tombstones, gives one that reaches
// codeMin a basis and bounds, relearns the basis of one that has doubled
// since it was last learnt, and forgets an empty one. Callers hold mu.
func (x *Index) maintain(sc *scope) {
	switch {
	case sc.live == 0:
		x.scopes.CompareAndDelete(sc.name, sc)
		sc.view.Store(nil)
		sc.dead = 0
	case sc.live+sc.dead < sc.retryAt:
	case sc.dead >= minCompactDead && sc.dead > sc.live:
		x.rebuild(sc, sc.live)
	case sc.live < 2*sc.centredAt || sc.live < x.codeMin():
	case sc.live < x.asyncMin:
		x.rebuild(sc, sc.live)
	case !sc.building:
		x.rebuildLater(sc)
	}
}

// slotRef is where a rebuilt point came from: segment and slot of the old
// view.
type slotRef struct{ seg, slot int32 }

// build learns a centre and basis from old's live points among the first
// counts[s] slots of each segment s and encodes those points into fresh
// segments against them; below codeMin it only copies them into fresh
// segments without bounds. The segments have room for at least room
// points. It only reads old (whose published slots are immutable but for
// tombstones), so it may run without mu; from[j] is where the j-th copied
// point came from.
func (x *Index) build(old *view, counts []int, live, room int) (*view, []slotRef) {
	nv := &view{}
	if live >= x.codeMin() {
		nv = x.learn(old, counts, live)
	}
	from := make([]slotRef, 0, live)
	for s, os := range old.segs {
		for i := range counts[s] {
			if os.isDead(i) {
				continue
			}
			x.putNew(nv, room, os.ids[i], os.vecs[i*x.dim:(i+1)*x.dim], os.exp[i])
			from = append(from, slotRef{int32(s), int32(i)})
		}
	}
	return nv, from
}

// learn returns an empty view with the centre and basis learnt from old's
// live points among the first counts[s] slots of each segment s.
func (x *Index) learn(old *view, counts []int, live int) *view {
	mean := make([]float64, x.dim)
	for s, seg := range old.segs {
		for i := range counts[s] {
			if seg.isDead(i) {
				continue
			}
			for j, f := range seg.vecs[i*x.dim : (i+1)*x.dim] {
				mean[j] += float64(f)
			}
		}
	}
	centre := unit64(mean)
	if centre == nil {
		// The points sum to zero: any unit vector is as good a centre.
		centre = make([]float32, x.dim)
		centre[0] = 1
	}
	var sample [][]float32
	stride := max(1, live/basisSample)
	k := 0
	for s, seg := range old.segs {
		for i := range counts[s] {
			if !seg.isDead(i) {
				if k%stride == 0 && len(sample) < basisSample {
					// Points of huge norm have no head bound; they
					// would only skew the basis and the quantiser.
					if vec := seg.vecs[i*x.dim : (i+1)*x.dim]; norm2(vec) <= maxNorm2 {
						sample = append(sample, vec)
					}
				}
				k++
			}
		}
	}
	rows := [][]float64{f64(centre)}
	if len(sample) > 0 && live >= x.basisMin {
		rows = principal(sample, centre, x.head)
	}
	nv := &view{centre: centre, basis: newHeadBasis(rows, x.head, x.head1, x.dim)}
	nv.basis.fitQuant(sample)
	return nv
}

// putNew appends a point to a view not yet published that is to hold
// about live points: segments are sized for what is left of them, and for
// a quarter more when points keep coming (a background rebuild catching
// up), as appendPoint would.
func (x *Index) putNew(nv *view, live int, id uint64, vec []float32, exp int64) (*segment, int) {
	var seg *segment
	if k := len(nv.segs); k > 0 && int(nv.segs[k-1].n.Load()) < len(nv.segs[k-1].ids) {
		seg = nv.segs[k-1]
	} else {
		placed := nv.len()
		seg = x.newSegment(min(x.segSize, max(live-placed, placed/4, 1)), nv)
		nv.segs = append(nv.segs, seg)
	}
	return seg, x.put(seg, nv, id, vec, exp)
}

// install publishes nv, holding copies of ref's live points among the first
// counts[s] slots of each segment s (from[j] is the j-th copy's origin), as
// sc's view: points deleted since keep their tombstones and every live
// point's loc moves. Callers hold mu, and ref is sc's view.
func (x *Index) install(sc *scope, ref *view, nv *view, from []slotRef) {
	dead := 0
	j := 0
	for _, seg := range nv.segs {
		for k := range int(seg.n.Load()) {
			r := from[j]
			j++
			if ref.segs[r.seg].isDead(int(r.slot)) {
				seg.dead[k>>6].Or(1 << (uint(k) & 63))
				dead++
				continue
			}
			if x.onMove != nil {
				x.onMove(j - 1)
			}
			l := x.locs[seg.ids[k]]
			l.seg, l.slot = seg, int32(k)
			x.locs[seg.ids[k]] = l
		}
	}
	sc.view.Store(nv)
	sc.dead = dead
	sc.centredAt = 0
	if nv.basis != nil {
		sc.centredAt = sc.live
	}
}

// catchUp copies into nv the live points of cur past counts (cur extends
// the view counts describe), and extends from and counts. It reads only
// published slots, so it may run without mu.
func (x *Index) catchUp(nv, cur *view, counts []int, from []slotRef, live int) ([]int, []slotRef) {
	for s, os := range cur.segs {
		if s == len(counts) {
			counts = append(counts, 0)
		}
		end := int(os.n.Load())
		for i := counts[s]; i < end; i++ {
			if os.isDead(i) {
				continue
			}
			x.putNew(nv, live, os.ids[i], os.vecs[i*x.dim:(i+1)*x.dim], os.exp[i])
			from = append(from, slotRef{int32(s), int32(i)})
		}
		counts[s] = end
	}
	return counts, from
}

// snapshot is old's published counts. Callers hold mu.
func snapshot(old *view) []int {
	counts := make([]int, len(old.segs))
	for s, seg := range old.segs {
		counts[s] = int(seg.n.Load())
	}
	return counts
}

// rebuild relearns and re-encodes a scope while holding mu (small scopes,
// compaction, and the growth of a scope without bounds), into segments
// with room for at least room points. Searches still scanning the old view
// finish on it; the garbage collector then reclaims it. A panic is the
// scope's to absorb (abandon): the writer that triggered the rebuild has
// its points added.
func (x *Index) rebuild(sc *scope, room int) {
	defer func() {
		if v := recover(); v != nil {
			x.abandon(sc, v)
		}
	}()
	old := sc.view.Load()
	counts := snapshot(old)
	nv, from := x.build(old, counts, sc.live, room)
	x.install(sc, old, nv, from)
}

// rebuildLater relearns and re-encodes a grown scope in the background,
// then encodes the points added meanwhile, in rounds, until few enough are
// left to encode while holding mu; writers wait only for that and for
// install (moving locs), searches not at all. The result is dropped if the
// scope was rebuilt, emptied or closed in between. Callers hold mu.
func (x *Index) rebuildLater(sc *scope) {
	old := sc.view.Load()
	counts := snapshot(old)
	live := sc.live
	sc.building = true
	x.builds.Add(1)
	x.sup.Go(rebuildWorker, func() {
		defer x.builds.Done()
		locked := false // whether this goroutine holds mu
		defer func() {
			if v := recover(); v != nil {
				if !locked {
					x.mu.Lock()
				}
				x.abandon(sc, v)
				x.mu.Unlock()
			}
		}()
		nv, from := x.build(old, counts, live, live)
		if x.onBuilt != nil {
			x.onBuilt()
		}
		for round := 0; ; round++ {
			x.mu.Lock()
			locked = true
			cur := sc.view.Load()
			switch {
			case x.closed.Load() || !extends(cur, old):
			case round == 8 || pending(cur, counts) <= catchUpLocked:
				counts, from = x.catchUp(nv, cur, counts, from, sc.live)
				x.install(sc, cur, nv, from)
			default:
				x.mu.Unlock()
				locked = false
				counts, from = x.catchUp(nv, cur, counts, from, live)
				continue
			}
			sc.building = false
			x.mu.Unlock()
			locked = false
			return
		}
	})
}

// rebuildWorker names background rebuilds to the supervisor.
const rebuildWorker = "vecindex rebuild"

// abandon absorbs a rebuild of sc that panicked with v (a bug; the
// rebuild is an optimisation): it logs v, keeps sc's published view (the
// basis it had, or the centre alone, against which searches stay exact),
// points every live point's location back at that view (a panic inside
// install may have moved some to the unpublished one), and puts off the
// next rebuild of sc until it has doubled. Callers hold mu.
func (x *Index) abandon(sc *scope, v any) {
	x.sup.Recovered(rebuildWorker, v)
	sc.building = false
	sc.retryAt = 2 * (sc.live + sc.dead)
	cur := sc.view.Load()
	if x.closed.Load() || cur == nil {
		return
	}
	for _, seg := range cur.segs {
		for i := range int(seg.n.Load()) {
			if seg.isDead(i) {
				continue
			}
			if l, ok := x.locs[seg.ids[i]]; ok {
				l.seg, l.slot = seg, int32(i)
				x.locs[seg.ids[i]] = l
			}
		}
	}
}

// catchUpLocked is how many added points a background rebuild encodes
// while holding mu (about 5 ms).
const catchUpLocked = 512

// pending counts cur's slots past counts.
func pending(cur *view, counts []int) int {
	n := 0
	for s, seg := range cur.segs {
		n += int(seg.n.Load())
		if s < len(counts) {
			n -= counts[s]
		}
	}
	return n
}

// extends reports whether cur is old plus appends: the same basis and
// old's segments first.
func extends(cur, old *view) bool {
	if cur == nil || cur.basis != old.basis || len(cur.segs) < len(old.segs) {
		return false
	}
	for s, seg := range old.segs {
		if cur.segs[s] != seg {
			return false
		}
	}
	return true
}

// Delete removes points by id; unknown ids are ignored.
func (x *Index) Delete(ctx context.Context, ids ...uint64) error {
	if len(ids) == 0 {
		return ctx.Err()
	}
	_, err := x.remove(ctx, func(kill func(uint64, loc)) {
		for _, id := range ids {
			if l, ok := x.locs[id]; ok {
				kill(id, l)
			}
		}
	})
	return err
}

// DeleteWhere removes every point the filter matches and says how many.
func (x *Index) DeleteWhere(ctx context.Context, f semcache.Filter) (int, error) {
	return x.remove(ctx, func(kill func(uint64, loc)) {
		for id, l := range x.locs {
			if (f.Tenant == "" || l.tenant == f.Tenant) && (f.Model == "" || l.model == f.Model) {
				kill(id, l)
			}
		}
	})
}

// DeleteExpired removes points expired at now and says how many.
// It takes the expiries due from the heap, skipping those of points since
// deleted or given another expiry, so a sweep that finds nothing due costs
// nothing, however many points the index holds.
func (x *Index) DeleteExpired(ctx context.Context, now time.Time) (int, error) {
	t := nanos(now)
	return x.remove(ctx, func(kill func(uint64, loc)) {
		for len(x.expiries) > 0 && x.expiries[0].at <= t {
			e := x.expiries.pop()
			if l, ok := x.locs[e.id]; ok && l.exp <= t {
				kill(e.id, l)
			}
		}
	})
}

// remove holds mu while pick hands kill the points to remove, then
// maintains the scopes it touched, and says how many it removed.
func (x *Index) remove(ctx context.Context, pick func(kill func(uint64, loc))) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.closed.Load() {
		return 0, ErrClosed
	}
	touched := make(map[*scope]struct{})
	n := 0
	pick(func(id uint64, l loc) {
		x.kill(id, l)
		touched[l.sc] = struct{}{}
		n++
	})
	for sc := range touched {
		x.maintain(sc)
	}
	x.trimExpiries()
	return n, nil
}

// trimExpiries drops the expiries of points no longer held once they
// outnumber those of the points held, so that the heap stays within twice
// the index. Callers hold mu.
func (x *Index) trimExpiries() {
	if len(x.expiries) <= 2*len(x.locs)+64 {
		return
	}
	h := x.expiries[:0]
	for id, l := range x.locs {
		h = append(h, expiry{at: l.exp, id: id})
	}
	h.init()
	x.expiries = slices.Clip(h)
}

// expiry is when a point expires.
type expiry struct {
	at int64
	id uint64
}

// expiryHeap is a min-heap of expiries on at.
type expiryHeap []expiry

func (h *expiryHeap) push(e expiry) {
	*h = append(*h, e)
	q := *h
	for i := len(q) - 1; i > 0; {
		p := (i - 1) / 2
		if q[p].at <= q[i].at {
			break
		}
		q[p], q[i] = q[i], q[p]
		i = p
	}
}

// pop removes and returns the earliest expiry; h is not empty.
func (h *expiryHeap) pop() expiry {
	q := *h
	e := q[0]
	n := len(q) - 1
	q[0] = q[n]
	*h = q[:n]
	h.down(0)
	return e
}

func (h expiryHeap) init() {
	for i := len(h)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
}

func (h expiryHeap) down(i int) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && h[r].at < h[l].at {
			m = r
		}
		if h[i].at <= h[m].at {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

func f64(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, f := range v {
		out[i] = float64(f)
	}
	return out
}
