package tokens

import (
	"hash/maphash"
	"sync/atomic"
)

// Counter counts tokens. It is safe for concurrent use. The encodings it uses
// are shared by the whole process and loaded on first use; the Counter itself
// only holds bounded caches: of long segments it has counted before, and of
// the counts of short pre-tokenized pieces (words with their leading space).
type Counter struct {
	segments *segmentCache // nil: no caching

	pieceEntries int                                      // 0: no piece cache
	pieces       [numEncodings]atomic.Pointer[pieceCache] // made on first use
}

// Option configures a Counter.
type Option func(*Counter)

// WithSegmentCache sets how many long segments (message contents, tool
// schemas of at least MinCachedSegment bytes) the Counter remembers; 0
// disables the cache. The default is DefaultSegmentCache.
func WithSegmentCache(entries int) Option {
	return func(c *Counter) {
		c.segments = newSegmentCache(entries)
	}
}

// WithPieceCache sets how many pre-tokenized pieces (of at most 24 bytes)
// per encoding the Counter remembers the token count of; 0 disables the
// cache. The default is DefaultPieceCache.
func WithPieceCache(entries int) Option {
	return func(c *Counter) {
		c.pieceEntries = max(entries, 0)
	}
}

const (
	// DefaultSegmentCache is the default number of cached segment counts
	// (a few hundred KB of memory: the cache keeps hashes, not text).
	DefaultSegmentCache = 8192
	// MinCachedSegment is the shortest text worth caching: below it,
	// counting costs about as much as hashing and a lookup.
	MinCachedSegment = 256
)

// NewCounter returns a Counter with a segment cache of DefaultSegmentCache
// entries and a piece cache of DefaultPieceCache entries per encoding unless
// an option says otherwise.
func NewCounter(opts ...Option) *Counter {
	c := &Counter{segments: newSegmentCache(DefaultSegmentCache), pieceEntries: DefaultPieceCache}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Count returns the number of tokens of text for the tokenizer: for "o200k_base"
// and "cl100k_base" exactly len(tiktoken Encode(text, nil, nil)) (special-token
// text counts as ordinary text); for an estimator, its estimate. An unknown
// tokenizer name is an error.
func (c *Counter) Count(tokenizer, text string) (int, error) {
	if est, ok := estimators[tokenizer]; ok {
		n, err := c.countBPE(O200K, text)
		if err != nil {
			return 0, err
		}
		var f textFeatures
		f.add(text)
		return est.estimate(n, f), nil
	}
	return c.countBPE(tokenizer, text)
}

// CountText is Count for text whose tokenizer is already known to be valid,
// such as a completion being metered: on an error (an unknown tokenizer name)
// it falls back to the generic estimate instead of failing.
func (c *Counter) CountText(tokenizer, text string) int {
	n, err := c.Count(tokenizer, text)
	if err != nil {
		n, _ = c.Count(Estimate, text)
	}
	return n
}

func (c *Counter) countBPE(tokenizer, text string) (int, error) {
	enc, err := getEncoding(tokenizer)
	if err != nil {
		return 0, err
	}
	return c.countEnc(enc, text), nil
}

func (c *Counter) countEnc(enc *encoding, text string) int {
	if c.segments == nil || len(text) < MinCachedSegment {
		return c.countPieces(enc, text)
	}
	k := c.segments.key(enc.name, text)
	if n, ok := c.segments.get(k); ok {
		return n
	}
	n := c.countPieces(enc, text)
	c.segments.put(k, n)
	return n
}

// countPieces counts text with the Counter's piece cache for enc.
func (c *Counter) countPieces(enc *encoding, text string) int {
	return enc.countCached(text, c.pieceCache(enc))
}

// pieceCache returns the piece cache for enc, made on first use (a Counter
// that never counts cl100k text does not pay for its table), or nil.
func (c *Counter) pieceCache(enc *encoding) *pieceCache {
	if c.pieceEntries == 0 {
		return nil
	}
	p := &c.pieces[enc.id]
	if pc := p.Load(); pc != nil {
		return pc
	}
	p.CompareAndSwap(nil, newPieceCache(c.pieceEntries))
	return p.Load()
}

// segmentCache remembers counts of long texts by a 128-bit keyed hash (two
// maphash seeds chosen at random per process, so colliding texts cannot be
// crafted), with the text's length and tokenizer. It is direct-mapped and
// lock-free: a slot holds one immutable entry, replaced atomically on a
// miss, so a hot system prompt costs one hash of its bytes per request
// instead of a tokenization.
type segmentCache struct {
	seed1, seed2 maphash.Seed
	slots        []atomic.Pointer[segmentEntry]
	mask         uint64
}

type segmentKey struct {
	h1, h2 uint64
	length int
}

type segmentEntry struct {
	key   segmentKey
	count int
}

func newSegmentCache(entries int) *segmentCache {
	if entries <= 0 {
		return nil
	}
	size := 1
	for size < entries {
		size <<= 1
	}
	return &segmentCache{
		seed1: maphash.MakeSeed(),
		seed2: maphash.MakeSeed(),
		slots: make([]atomic.Pointer[segmentEntry], size),
		mask:  uint64(size - 1),
	}
}

func (s *segmentCache) key(tokenizer, text string) segmentKey {
	var h maphash.Hash
	h.SetSeed(s.seed1)
	h.WriteString(tokenizer)
	h.WriteByte(0)
	h.WriteString(text)
	h1 := h.Sum64()
	h.SetSeed(s.seed2)
	h.WriteString(text)
	h.WriteByte(0)
	h.WriteString(tokenizer)
	return segmentKey{h1: h1, h2: h.Sum64(), length: len(text)}
}

func (s *segmentCache) get(k segmentKey) (int, bool) {
	e := s.slots[k.h1&s.mask].Load()
	if e == nil || e.key != k {
		return 0, false
	}
	return e.count, true
}

func (s *segmentCache) put(k segmentKey, n int) {
	s.slots[k.h1&s.mask].Store(&segmentEntry{key: k, count: n})
}

// keyParts is key for a tuple of strings (length-prefixed, so ("ab","c") and
// ("a","bc") differ).
func (s *segmentCache) keyParts(parts ...string) segmentKey {
	var h1, h2 maphash.Hash
	h1.SetSeed(s.seed1)
	h2.SetSeed(s.seed2)
	total := 0
	for _, p := range parts {
		var l [8]byte
		for i := range l {
			l[i] = byte(len(p) >> (8 * i))
		}
		h1.Write(l[:])
		h1.WriteString(p)
		h2.WriteString(p)
		h2.Write(l[:])
		total += len(p)
	}
	return segmentKey{h1: h1.Sum64(), h2: h2.Sum64(), length: -total}
}
