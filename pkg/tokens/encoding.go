package tokens

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"math"
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/pkoukk/tiktoken-go-loader/assets"
)

// Tokenizer names.
const (
	O200K  = "o200k_base"  // gpt-4o, gpt-4.1, gpt-4.5, o-series, gpt-5
	CL100K = "cl100k_base" // gpt-4, gpt-3.5-turbo, text-embedding-ada-002 / -3

	EstimateAnthropic = "estimate:anthropic" // Claude: not public, see estimate.go
	EstimateGemini    = "estimate:gemini"    // Gemini: not public, see estimate.go
	Estimate          = "estimate"           // any other family
)

// encoding is one BPE vocabulary with its pre-tokenizer.
type encoding struct {
	name  string
	id    int // index in a Counter's per-encoding caches
	ranks *rankTable
	next  func(s string, i int) int // end of the piece starting at s[i]
}

type lazyEncoding struct {
	once sync.Once
	enc  *encoding
	err  error
	id   int
	file string
	next func(string, int) int
}

// Encodings are process-wide: the rank tables are large (o200k: 200k
// entries, ~20 MB) and immutable, so every Counter shares one copy, loaded on
// first use from the vocabulary files embedded in tiktoken-go-loader.
var encodings = map[string]*lazyEncoding{
	O200K:  {id: o200kID, file: "o200k_base.tiktoken", next: nextO200K},
	CL100K: {id: cl100kID, file: "cl100k_base.tiktoken", next: nextCL100K},
}

const (
	o200kID = iota
	cl100kID
)

const numEncodings = 2

func getEncoding(name string) (*encoding, error) {
	l, ok := encodings[name]
	if !ok {
		return nil, fmt.Errorf("tokens: unknown tokenizer %q", name)
	}
	l.once.Do(func() {
		loadBMP()
		ranks, err := loadRanks(l.file)
		if err != nil {
			l.err = fmt.Errorf("tokens: load %s: %w", name, err)
			return
		}
		l.enc = &encoding{name: name, id: l.id, ranks: ranks, next: l.next}
	})
	return l.enc, l.err
}

// loadRanks parses a .tiktoken file ("base64(token) rank" per line) into a
// rank table whose keys all live in one string.
func loadRanks(file string) (*rankTable, error) {
	data, err := assets.Assets.ReadFile(file)
	if err != nil {
		return nil, err
	}
	lines := bytes.Count(data, []byte{'\n'}) + 1
	arena := make([]byte, 0, len(data)*3/4)
	entries := make([]rankEntry, 0, lines)
	for len(data) > 0 {
		line := data
		if k := bytes.IndexByte(data, '\n'); k >= 0 {
			line, data = data[:k], data[k+1:]
		} else {
			data = nil
		}
		if len(line) == 0 {
			continue
		}
		sp := bytes.IndexByte(line, ' ')
		if sp < 0 {
			return nil, fmt.Errorf("malformed line %q", line)
		}
		off := len(arena)
		arena, err = base64.StdEncoding.AppendDecode(arena, line[:sp])
		if err != nil {
			return nil, err
		}
		rank, err := strconv.ParseUint(string(line[sp+1:]), 10, 32)
		if err != nil {
			return nil, err
		}
		entries = append(entries, rankEntry{uint32(off), uint32(len(arena)), uint32(rank)})
	}
	return newRankTable(string(arena), entries), nil
}

// count returns the number of tokens tiktoken would produce for s with no
// special tokens allowed (special-token text is ordinary text).
func (e *encoding) count(s string) int {
	return e.countCached(s, nil)
}

// countCached is count with the counts of short pieces taken from, and
// added to, pc (nil: no cache).
func (e *encoding) countCached(s string, pc *pieceCache) int {
	if !utf8.ValidString(s) {
		// tiktoken-go works on []rune(s): every invalid byte becomes U+FFFD.
		s = string([]rune(s))
	}
	n := 0
	o200k := e.id == o200kID
	for i := 0; i < len(s); {
		var j int
		if o200k { // direct calls: the split is the hot loop
			j = nextO200K(s, i)
		} else {
			j = e.next(s, i)
		}
		switch p := s[i:j]; {
		case len(p) == 1:
			n++ // every byte is a token
		case pc != nil && len(p) <= maxCachedPiece:
			k, ok := pc.get(s, i, j)
			if !ok {
				k = e.pieceCount(p)
				pc.put(s, i, j, k)
			}
			n += k
		default:
			n += e.pieceCount(p)
		}
		i = j
	}
	return n
}

// pieceCount is the number of BPE tokens of one pre-tokenized piece.
func (e *encoding) pieceCount(p string) int {
	if len(p) == 1 {
		return 1 // every byte is a token
	}
	if e.ranks.get(p) != noRank {
		return 1
	}
	if len(p) <= maxSmallPiece {
		return e.mergeSmall(p)
	}
	return e.mergeHeap(p)
}

const (
	noRank        = math.MaxUint32
	maxSmallPiece = 96
)

func (e *encoding) rank(p string) uint32 {
	return e.ranks.get(p)
}

// mergeSmall runs tiktoken's byte-pair merge (repeatedly merge the adjacent
// pair whose concatenation has the lowest rank, leftmost first) on a short
// piece with stack arrays, and returns the number of parts left.
func (e *encoding) mergeSmall(p string) int {
	var start [maxSmallPiece + 1]uint8
	var rank [maxSmallPiece]uint32
	parts := len(p)
	for i := 0; i <= parts; i++ {
		start[i] = uint8(i)
	}
	for i := 0; i+1 < parts; i++ {
		rank[i] = e.rank(p[i : i+2])
	}
	for parts > 1 {
		best, at := uint32(noRank), -1
		for i := 0; i+1 < parts; i++ {
			if rank[i] < best {
				best, at = rank[i], i
			}
		}
		if at < 0 {
			break
		}
		// Part at+1 joins part at.
		copy(start[at+1:parts], start[at+2:parts+1])
		copy(rank[at+1:parts-1], rank[at+2:parts])
		parts--
		if at+1 < parts {
			rank[at] = e.rank(p[start[at]:start[at+2]])
		} else {
			rank[at] = noRank
		}
		if at > 0 {
			rank[at-1] = e.rank(p[start[at-1]:start[at+1]])
		}
	}
	return parts
}

// mergeHeap is the same merge in O(n log n) for long pieces (a run of
// thousands of letters or spaces would be quadratic otherwise). Parts are a
// linked list over byte offsets; a min-heap keyed by (rank, offset) gives the
// lowest rank, leftmost first, exactly like the linear scan. Ranks of distinct
// strings differ and a part's pair only grows, so an entry whose rank no
// longer matches its part's current rank is stale and skipped.
func (e *encoding) mergeHeap(p string) int {
	n := len(p)
	next := make([]int32, n)
	prev := make([]int32, n)
	rank := make([]uint32, n)
	h := make(minHeap, 0, n)
	for i := range n {
		next[i], prev[i] = int32(i+1), int32(i-1)
		rank[i] = noRank
		if i+2 <= n {
			rank[i] = e.rank(p[i : i+2])
		}
		if rank[i] != noRank {
			h = append(h, uint64(rank[i])<<32|uint64(i))
		}
	}
	h.init()
	parts := n
	end := func(i int32) int32 { // end offset of part i
		return next[i]
	}
	for len(h) > 0 {
		top := h.pop()
		r, i := uint32(top>>32), int32(uint32(top))
		if rank[i] != r {
			continue // stale, or the part was absorbed (rank set to noRank)
		}
		j := next[i] // absorbed part
		next[i] = next[j]
		if int(next[i]) < n {
			prev[next[i]] = i
		}
		rank[j] = noRank
		parts--
		rank[i] = noRank
		if k := next[i]; int(k) < n {
			rank[i] = e.rank(p[i:end(k)])
			if rank[i] != noRank {
				h.push(uint64(rank[i])<<32 | uint64(i))
			}
		}
		if q := prev[i]; q >= 0 {
			rank[q] = e.rank(p[q:end(i)])
			if rank[q] != noRank {
				h.push(uint64(rank[q])<<32 | uint64(q))
			}
		}
	}
	return parts
}

type minHeap []uint64

func (h minHeap) init() {
	for i := len(h)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
}

func (h *minHeap) push(x uint64) {
	*h = append(*h, x)
	s := *h
	i := len(s) - 1
	for i > 0 {
		p := (i - 1) / 2
		if s[p] <= x {
			break
		}
		s[i] = s[p]
		i = p
	}
	s[i] = x
}

func (h *minHeap) pop() uint64 {
	s := *h
	top := s[0]
	last := len(s) - 1
	s[0] = s[last]
	*h = s[:last]
	if last > 0 {
		h.down(0)
	}
	return top
}

func (h minHeap) down(i int) {
	n := len(h)
	x := h[i]
	for {
		c := 2*i + 1
		if c >= n {
			break
		}
		if c+1 < n && h[c+1] < h[c] {
			c++
		}
		if h[c] >= x {
			break
		}
		h[i] = h[c]
		i = c
	}
	h[i] = x
}
