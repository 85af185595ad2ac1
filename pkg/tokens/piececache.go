package tokens

import (
	"math/rand/v2"
	"sync/atomic"
)

// pieceCache remembers the token count of pre-tokenized pieces (" schedule",
// "'s", "ization") of 2 to maxCachedPiece bytes for one encoding. Chat text
// repeats the same few thousand pieces across requests, and answering one
// from the rank table costs a cache miss in a table of 8 MB (o200k) plus, for
// a piece of several tokens, a byte-pair merge of about three rank lookups
// per byte; this table is small enough to stay in the CPU cache.
//
// It is bounded (a fixed array of 2-way buckets, one 64-byte cache line
// each), allocation-free and lock-free. A slot stores the piece's bytes, not
// a hash of them, so a lookup answers only for exactly the same bytes: two
// pieces that hash alike merely evict each other. Each slot is a seqlock
// made of atomics: a writer claims the slot by a compare-and-swap of its
// meta word (odd state: length 0, so no reader matches), stores the bytes,
// then publishes length and count with a new sequence number; a reader
// accepts the bytes only if meta is unchanged around reading them. A writer
// that loses the race skips the store: the cache may forget, never lie.
type pieceCache struct {
	slots []pieceSlot
	shift uint   // 64 - log2(buckets)
	seed  uint64 // per cache, so colliding pieces cannot be chosen in advance
}

type pieceSlot struct {
	// meta is seq<<10 | length<<5 | count. seq counts the writes to the
	// slot, odd while a writer holds it (length and count then read 0, so
	// no reader matches); 54 bits cannot wrap. 0 is an empty slot.
	meta atomic.Uint64
	// w is the piece's bytes as pieceWords packs them.
	w [3]atomic.Uint64
}

// maxCachedPiece is the longest piece the cache holds: three 8-byte words.
// Longer pieces (long words, runs of spaces or symbols) are rare in chat
// text and are counted every time.
const maxCachedPiece = 24

// DefaultPieceCache is the default number of cached piece counts per
// encoding (32 bytes each: 512 KB, allocated on first use).
const DefaultPieceCache = 16384

func newPieceCache(entries int) *pieceCache {
	buckets := 1
	for 2*buckets < entries {
		buckets <<= 1
	}
	bits := uint(0)
	for 1<<bits < buckets {
		bits++
	}
	return &pieceCache{
		slots: make([]pieceSlot, 2*buckets),
		shift: 64 - bits,
		seed:  rand.Uint64(),
	}
}

// pieceWords packs the piece s[i:j] (2 to 24 bytes) into three
// little-endian words, zero-padded: together with the length, the words are
// the bytes. Away from the end of s it loads whole words and masks off the
// bytes after the piece, without a branch on the piece's length (which
// varies from one piece to the next and would often be mispredicted).
func pieceWords(s string, i, j int) (w0, w1, w2 uint64) {
	n := j - i
	if i+24 <= len(s) {
		m := &pieceMasks[n]
		return load64(s, i) & m[0], load64(s, i+8) & m[1], load64(s, i+16) & m[2]
	}
	var w [3]uint64
	for k := range n {
		w[k/8] |= uint64(s[i+k]) << (8 * (k % 8))
	}
	return w[0], w[1], w[2]
}

// pieceMasks[n] keeps the first n bytes of three words.
var pieceMasks = func() (t [maxCachedPiece + 1][3]uint64) {
	for n := range t {
		for w := range 3 {
			k := min(max(n-8*w, 0), 8)
			t[n][w] = ^uint64(0) >> (64 - 8*uint(k))
		}
	}
	return t
}()

func load64(s string, i int) uint64 {
	s = s[i : i+8]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

func load32(s string, i int) uint32 {
	s = s[i : i+4]
	return uint32(s[0]) | uint32(s[1])<<8 | uint32(s[2])<<16 | uint32(s[3])<<24
}

// hash mixes a piece's words and length; its top bits pick the bucket.
func (c *pieceCache) hash(w0, w1, w2 uint64, n int) uint64 {
	h := (w0 ^ c.seed) * 0x9E3779B97F4A7C15
	h ^= w1*0xC2B2AE3D27D4EB4F ^ w2*0x165667B19E3779F9 ^ uint64(n)
	return (h ^ h>>31) * 0xD6E8FEB86659FD93
}

const (
	pieceFieldBits = 5 // length and count are at most maxCachedPiece
	pieceFieldMask = 1<<pieceFieldBits - 1
	pieceSeqShift  = 2 * pieceFieldBits
)

// get returns the cached count of the piece s[i:j] (2 <= j-i <=
// maxCachedPiece).
func (c *pieceCache) get(s string, i, j int) (int, bool) {
	n := j - i
	w0, w1, w2 := pieceWords(s, i, j)
	b := c.hash(w0, w1, w2, n) >> c.shift * 2
	if k, ok := c.slots[b].lookup(w0, w1, w2, n); ok {
		return k, true
	}
	return c.slots[b+1].lookup(w0, w1, w2, n)
}

// lookup returns the slot's count if it holds the piece of n bytes packed
// as w0, w1, w2: the bytes read match and meta did not change around
// reading them (no writer came in between).
func (sl *pieceSlot) lookup(w0, w1, w2 uint64, n int) (int, bool) {
	m := sl.meta.Load()
	if int(m>>pieceFieldBits&pieceFieldMask) == n && sl.w[0].Load() == w0 && sl.w[1].Load() == w1 &&
		sl.w[2].Load() == w2 && sl.meta.Load() == m {
		return int(m & pieceFieldMask), true
	}
	return 0, false
}

// put records that the piece s[i:j] has count tokens (count <= j-i <=
// maxCachedPiece).
func (c *pieceCache) put(s string, i, j, count int) {
	n := j - i
	w0, w1, w2 := pieceWords(s, i, j)
	h := c.hash(w0, w1, w2, n)
	b := h >> c.shift * 2
	// An empty way first; otherwise evict the way a low bit of the hash
	// picks, so that two hot pieces of one bucket can live side by side.
	sl := &c.slots[b]
	m := sl.meta.Load()
	if m != 0 {
		if m1 := c.slots[b+1].meta.Load(); m1 == 0 || h&1 == 1 {
			sl, m = &c.slots[b+1], m1
		}
	}
	seq := m >> pieceSeqShift
	if seq&1 == 1 {
		return // another writer holds the slot
	}
	if !sl.meta.CompareAndSwap(m, (seq+1)<<pieceSeqShift) {
		return
	}
	sl.w[0].Store(w0)
	sl.w[1].Store(w1)
	sl.w[2].Store(w2)
	sl.meta.Store((seq+2)<<pieceSeqShift | uint64(n)<<pieceFieldBits | uint64(count))
}
