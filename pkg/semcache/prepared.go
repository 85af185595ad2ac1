package semcache

import (
	"container/list"
	"sync"
)

// maxPrepared bounds the cached prompts whose guard analysis is kept in
// memory. An analysis costs 2-4 KB and most entries are never a candidate
// again, so keeping one with every entry made memory grow by that much per
// entry (about 14 KB an entry in all at 100,000 entries); past the bound the
// least recently used is dropped and made again if its entry is a candidate
// again (4-30 µs).
const maxPrepared = 16384

// preparedCache holds the Checker's analyses of cached prompts by entry id,
// least recently used first out. Safe for concurrent use.
type preparedCache struct {
	mu    sync.Mutex
	max   int
	order *list.List // of *preparedItem, most recent at the front
	byID  map[uint64]*list.Element
}

type preparedItem struct {
	id   uint64
	prep any
}

func newPreparedCache(max int) *preparedCache {
	return &preparedCache{max: max, order: list.New(), byID: map[uint64]*list.Element{}}
}

// get returns the analysis of entry id, making it with make when it is not
// held. make runs outside the lock; two callers racing on one id may both
// make it, and one result is kept.
func (p *preparedCache) get(id uint64, make func() any) any {
	p.mu.Lock()
	if e, ok := p.byID[id]; ok {
		p.order.MoveToFront(e)
		v := e.Value.(*preparedItem).prep
		p.mu.Unlock()
		return v
	}
	p.mu.Unlock()
	v := make()
	p.put(id, v)
	return v
}

// put holds v as the analysis of entry id.
func (p *preparedCache) put(id uint64, v any) {
	if v == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if e, ok := p.byID[id]; ok {
		p.order.MoveToFront(e)
		return
	}
	p.byID[id] = p.order.PushFront(&preparedItem{id: id, prep: v})
	for p.order.Len() > p.max {
		last := p.order.Back()
		p.order.Remove(last)
		delete(p.byID, last.Value.(*preparedItem).id)
	}
}

// drop forgets the analyses of ids.
func (p *preparedCache) drop(ids []uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, id := range ids {
		if e, ok := p.byID[id]; ok {
			p.order.Remove(e)
			delete(p.byID, id)
		}
	}
}

// len is how many analyses are held.
func (p *preparedCache) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.order.Len()
}
