package semcache

import (
	"slices"

	"github.com/tollgate/tollgate/pkg/semcache/guard"
)

// Candidates by alignment.
//
// At the shipped defaults only an aligned candidate is ever served (the
// unaligned threshold is above any cosine, and there is no judge), and an
// aligned candidate has a partner for every word of the query that needs
// one. The guard can say, for a prompt alone, which keys its words are
// found by and which keys each of its words needs (guard.Sketch), so the
// cache keeps an inverted index of the entries' keys and, for a lookup,
// takes only the entries that meet every need of the query. Most new
// prompts meet none and are misses without any embedding; the few
// candidates are decided by the guard first, and only aligned ones are
// embedded (with the query, in one call) and compared by cosine. The cost of
// a miss then depends on how many cached prompts share the query's words,
// not on the embedder or on the number of entries.
//
// The gate is used when the cache is this process's own (not shared), the
// checker can sketch prompts (a guard with its lexicon), and no judge or
// unaligned threshold can serve an unaligned candidate: Cache.gated.

// maxGateCandidates bounds the candidates one lookup decides: the newest
// are kept when more cached prompts meet every need of the query.
const maxGateCandidates = 64

// maxSketchOnLookup bounds the entries one lookup sketches: after a
// restart a large scope is sketched over several lookups (until then its
// unsketched entries are not candidates).
const maxSketchOnLookup = 256

// gate is the inverted index of the entries' sketch keys, by scope and
// bucket. An entry is sketched when its scope is first looked up: when
// every conversation is its own scope, most entries never are. Guarded by
// Cache.mu.
type gate struct {
	scopes map[string]*gateScope
	where  map[uint64]gateRef // entry id → where it is
	seq    uint64
}

type gateScope struct {
	buckets    map[uint64]*gateBucket
	unsketched []uint64 // entries not sketched yet
	n          int      // entries, sketched or not
}

type gateRef struct {
	scope    string
	bucket   uint64
	seq      uint64
	sketched bool
}

// gateBucket holds the entries of one scope and bucket. Postings hold
// sequence numbers, which only grow, so every posting list is sorted.
// Removed entries stay in the postings until the bucket is compacted.
type gateBucket struct {
	post     map[uint64][]uint64 // sketch key → sequence numbers
	needless []uint64            // entries with no word that needs a partner
	ids      map[uint64]uint64   // sequence number → entry id, live entries only
	dead     int                 // removed entries still in post or needless
}

func newGate() *gate {
	return &gate{scopes: map[string]*gateScope{}, where: map[uint64]gateRef{}}
}

func (g *gate) scope(name string) *gateScope {
	sc := g.scopes[name]
	if sc == nil {
		sc = &gateScope{buckets: map[uint64]*gateBucket{}}
		g.scopes[name] = sc
	}
	return sc
}

// hold records entry id of scope, to be sketched when the scope is looked
// up.
func (g *gate) hold(id uint64, scope string) {
	g.remove(id)
	sc := g.scope(scope)
	sc.unsketched = append(sc.unsketched, id)
	sc.n++
	g.where[id] = gateRef{scope: scope}
}

// sketched reports whether scope has entries that were sketched: a scope
// that is looked up.
func (g *gate) sketched(scope string) bool {
	sc := g.scopes[scope]
	return sc != nil && len(sc.buckets) > 0
}

// claim takes up to max of scope's unsketched entries; ok is false when
// the scope holds no entry at all.
func (g *gate) claim(scope string, max int) (ids []uint64, ok bool) {
	sc := g.scopes[scope]
	if sc == nil {
		return nil, false
	}
	n := min(len(sc.unsketched), max)
	ids = slices.Clone(sc.unsketched[:n])
	sc.unsketched = slices.Delete(sc.unsketched, 0, n)
	return ids, true
}

// add indexes entry id of scope by its sketch (replacing what was there).
func (g *gate) add(id uint64, scope string, s *guard.Sketch) {
	if ref, ok := g.where[id]; ok && !ref.sketched && ref.scope == scope {
		// Claimed unsketched: counted already, no longer in the list.
		delete(g.where, id)
	} else {
		g.remove(id)
		g.scope(scope).n++
	}
	sc := g.scope(scope)
	b := sc.buckets[s.Bucket]
	if b == nil {
		b = &gateBucket{post: map[uint64][]uint64{}, ids: map[uint64]uint64{}}
		sc.buckets[s.Bucket] = b
	}
	g.seq++
	seq := g.seq
	b.ids[seq] = id
	g.where[id] = gateRef{scope: scope, bucket: s.Bucket, seq: seq, sketched: true}
	for _, key := range s.Keys {
		b.post[key] = append(b.post[key], seq)
	}
	if s.Needless {
		b.needless = append(b.needless, seq)
	}
}

// remove drops entry id; unknown ids are ignored. An entry claimed and not
// yet added is only uncounted.
func (g *gate) remove(id uint64) {
	ref, ok := g.where[id]
	if !ok {
		return
	}
	delete(g.where, id)
	sc := g.scopes[ref.scope]
	sc.n--
	if !ref.sketched {
		if i := slices.Index(sc.unsketched, id); i >= 0 {
			sc.unsketched = slices.Delete(sc.unsketched, i, i+1)
		}
	} else {
		b := sc.buckets[ref.bucket]
		delete(b.ids, ref.seq)
		b.dead++
		switch {
		case len(b.ids) == 0:
			delete(sc.buckets, ref.bucket)
		case b.dead > 64 && b.dead > len(b.ids):
			b.compact()
		}
	}
	if sc.n <= 0 {
		delete(g.scopes, ref.scope)
	}
}

// compact drops removed entries from the postings.
func (b *gateBucket) compact() {
	gone := func(seq uint64) bool { _, ok := b.ids[seq]; return !ok }
	for key, list := range b.post {
		list = slices.DeleteFunc(list, gone)
		if len(list) == 0 {
			delete(b.post, key)
		} else {
			b.post[key] = slices.Clip(list)
		}
	}
	b.needless = slices.Clip(slices.DeleteFunc(b.needless, gone))
	b.dead = 0
}

// markIn sets found[k] for each seqs[k] in l; both are sorted. A long l is
// searched, a short one merged.
func markIn(seqs, l []uint64, found []bool) {
	if len(l) > 16*len(seqs) {
		for k, seq := range seqs {
			if !found[k] {
				_, found[k] = slices.BinarySearch(l, seq)
			}
		}
		return
	}
	for k, j := 0, 0; k < len(seqs) && j < len(l); {
		switch {
		case seqs[k] < l[j]:
			k++
		case seqs[k] > l[j]:
			j++
		default:
			found[k] = true
			k++
			j++
		}
	}
}

// len is the number of entries indexed.
func (g *gate) len() int { return len(g.where) }

// candidates returns the entries of scope that meet every need of the
// query's sketch (or, when it needs nothing, share a key with it or need
// nothing themselves), newest first, at most limit.
func (g *gate) candidates(scope string, s *guard.Sketch, limit int) []uint64 {
	sc := g.scopes[scope]
	if sc == nil {
		return nil
	}
	b := sc.buckets[s.Bucket]
	if b == nil {
		return nil
	}
	var seqs []uint64
	if s.Needless {
		for _, key := range s.Any {
			seqs = append(seqs, b.post[key]...)
		}
		seqs = append(seqs, b.needless...)
		slices.Sort(seqs)
		seqs = slices.Compact(seqs)
	} else {
		// Each need's posting lists; the need with the fewest postings
		// gives the first set, which every other need filters.
		needs := make([][][]uint64, len(s.Need))
		sizes := make([]int, len(s.Need))
		for i, keys := range s.Need {
			for _, key := range keys {
				if l := b.post[key]; len(l) > 0 {
					needs[i] = append(needs[i], l)
					sizes[i] += len(l)
				}
			}
			if sizes[i] == 0 {
				return nil // no entry partners this word
			}
		}
		order := make([]int, len(needs))
		for i := range order {
			order[i] = i
		}
		slices.SortFunc(order, func(x, y int) int { return sizes[x] - sizes[y] })
		for _, l := range needs[order[0]] {
			seqs = append(seqs, l...)
		}
		slices.Sort(seqs)
		seqs = slices.Compact(seqs)
		found := make([]bool, len(seqs))
		for _, i := range order[1:] {
			clear(found[:len(seqs)])
			for _, l := range needs[i] {
				markIn(seqs, l, found)
			}
			n := 0
			for k, seq := range seqs {
				if found[k] {
					seqs[n] = seq
					n++
				}
			}
			if seqs = seqs[:n]; n == 0 {
				return nil
			}
		}
	}
	out := make([]uint64, 0, min(len(seqs), limit))
	for i := len(seqs) - 1; i >= 0 && len(out) < limit; i-- {
		if id, ok := b.ids[seqs[i]]; ok {
			out = append(out, id)
		}
	}
	return out
}
