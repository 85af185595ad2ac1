package semcache

import (
	"sync"
	"time"
)

// maxVerdicts bounds the verdict cache: about 100 bytes a verdict, so at
// most a couple of MB.
const maxVerdicts = 1 << 14

// verdictKey names a judged pair: the scope (which hashes the tenant, so a
// verdict never applies in another tenant or scope), the cached entry (ids
// are never reused) and the query's text (a digest).
type verdictKey struct {
	scope string
	id    uint64
	query [16]byte
}

type verdict struct {
	ok      bool
	expires time.Time // the entry's: a verdict dies with it
}

// verdicts caches judges' verdicts, bounded by max. Safe for concurrent
// use.
type verdicts struct {
	max int
	mu  sync.Mutex // guards m
	m   map[verdictKey]verdict
}

// get returns the verdict on k, if one is known and its entry lives at now.
func (v *verdicts) get(k verdictKey, now time.Time) (ok, known bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	d, found := v.m[k]
	if !found {
		return false, false
	}
	if !now.Before(d.expires) {
		delete(v.m, k)
		return false, false
	}
	return d.ok, true
}

// put records a verdict until expires. When the cache is full it drops
// the expired verdicts and, if that is not enough, an eighth of the rest
// (map order: arbitrary ones).
func (v *verdicts) put(k verdictKey, ok bool, expires, now time.Time) {
	if !now.Before(expires) {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.m == nil {
		v.m = map[verdictKey]verdict{}
	}
	if _, found := v.m[k]; !found && len(v.m) >= v.max {
		v.pruneLocked(now)
		for drop := max(v.max/8, 1); len(v.m) >= v.max && drop > 0; drop-- {
			for old := range v.m {
				delete(v.m, old)
				break
			}
		}
	}
	v.m[k] = verdict{ok: ok, expires: expires}
}

// prune drops the verdicts whose entries expired at now.
func (v *verdicts) prune(now time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.pruneLocked(now)
}

func (v *verdicts) pruneLocked(now time.Time) {
	for k, d := range v.m {
		if !now.Before(d.expires) {
			delete(v.m, k)
		}
	}
}

func (v *verdicts) len() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.m)
}
