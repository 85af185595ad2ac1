package tokens

// rankTable maps token bytes to BPE rank. It replaces a map[string]uint32
// on the hot path: the Go map costs two cache misses per lookup (its control
// group, then the key's bytes); here a 16-byte slot holds the key's first 8
// bytes inline, so the pair lookups of the merge (mostly keys of 2-8 bytes)
// touch one cache line, and longer keys compare against the arena only when
// length and prefix already match. Open addressing, linear probing, load
// factor at most 1/2; built once, read-only afterwards.
type rankTable struct {
	slots []rankSlot
	shift uint
	arena string // all token bytes, back to back
}

type rankSlot struct {
	prefix uint64 // first min(len, 8) bytes, little-endian, zero-padded
	off    uint32 // offset of the key in arena
	meta   uint32 // len<<24 | rank; 0 marks an empty slot (no key is empty)
}

const (
	maxRankKey = 255 // longest key the slot's length byte holds
	maxRank    = 1<<24 - 1
)

func newRankTable(arena string, keys []rankEntry) *rankTable {
	bits := uint(1)
	for 1<<bits < 2*len(keys) {
		bits++
	}
	t := &rankTable{slots: make([]rankSlot, 1<<bits), shift: 64 - bits, arena: arena}
	mask := uint64(len(t.slots) - 1)
	for _, e := range keys {
		k := arena[e.off:e.end]
		if len(k) == 0 || len(k) > maxRankKey || e.rank > maxRank {
			panic("tokens: rank table key out of range") // vocabulary files never have these
		}
		p := prefix8(k)
		for i := rankHash(p, k) >> t.shift; ; i = (i + 1) & mask {
			if t.slots[i].meta == 0 {
				t.slots[i] = rankSlot{prefix: p, off: e.off, meta: uint32(len(k))<<24 | e.rank}
				break
			}
		}
	}
	return t
}

type rankEntry struct{ off, end, rank uint32 }

// prefix8 loads up to the first 8 bytes of s, little-endian.
func prefix8(s string) uint64 {
	if len(s) >= 8 {
		return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
			uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
	}
	var p uint64
	for i := len(s) - 1; i >= 0; i-- {
		p = p<<8 | uint64(s[i])
	}
	return p
}

// rankHash mixes the prefix, the length and, for long keys, the last 8 bytes
// (Fibonacci hashing: the top bits are the slot index).
func rankHash(p uint64, s string) uint64 {
	h := p ^ uint64(len(s))<<59
	if len(s) > 8 {
		h ^= prefix8(s[len(s)-8:])*0x94D049BB133111EB + uint64(len(s))
	}
	return h * 0x9E3779B97F4A7C15
}

// get returns the rank of s, or noRank.
func (t *rankTable) get(s string) uint32 {
	if len(s) == 0 || len(s) > maxRankKey {
		return noRank
	}
	p := prefix8(s)
	want := uint32(len(s)) << 24
	mask := uint64(len(t.slots) - 1)
	for i := rankHash(p, s) >> t.shift; ; i = (i + 1) & mask {
		sl := &t.slots[i]
		if sl.meta == 0 {
			return noRank
		}
		if sl.meta&0xFF000000 == want && sl.prefix == p && (len(s) <= 8 || t.arena[sl.off:sl.off+uint32(len(s))] == s) {
			return sl.meta & maxRank
		}
	}
}
