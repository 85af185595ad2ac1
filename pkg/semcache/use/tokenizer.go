package use

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

const (
	// wordBoundary is SentencePiece's marker for a space / word start.
	wordBoundary = "▁"
	// reservedPieces are the first vocabulary entries (unknown, <s>, </s>,
	// extra ids) that the tokenizer never produces from text.
	reservedPieces = 6
	// unknownID is the id of the unknown piece; runs of unknown symbols
	// collapse into one.
	unknownID = 0
	// cutBytesPerToken bounds the bytes AppendEncodeLimit reads per token.
	cutBytesPerToken = 512
)

// Tokenizer is the SentencePiece unigram tokenizer of the TF.js USE lite
// model, reimplemented to give the same ids as @energetic-ai/embeddings
// 0.2.0 (which is tfjs-models' universal-sentence-encoder tokenizer):
//
//   - the input is NFKC-normalised (not lowercased);
//   - a non-empty input gets a leading "▁" and each ASCII space becomes "▁";
//   - Viterbi picks the segmentation with the highest sum of piece scores,
//     ties going to the later candidate, and a symbol that starts no piece
//     becomes the unknown id 0 with score 0;
//   - consecutive unknown ids merge into one.
//
// Symbols are Unicode code points. It is safe for concurrent use.
type Tokenizer struct {
	pieces []string
	scores []float64
	trie   trie    // the pieces, reserved ones excluded
	len16  []int32 // UTF-16 length of each piece (how the JS steps back)
	// cuttable: no piece has "▁" after its first symbol, so every "▁" starts
	// a token and the text before it tokenises on its own.
	cuttable bool
	// plain has bit r set for each rune r of the Basic Multilingual Plane
	// that is a piece on its own (nil unless "▁" is one): text made of those
	// has no unknown symbols (see FitsIn).
	plain   []uint64
	scratch sync.Pool // *tokScratch
}

type tokScratch struct {
	nfkc  []byte
	norm  []byte
	offs  []int // byte offset of each symbol, plus the end
	best  []float64
	words []int32
	out   []int32
}

func newTokenizer(pieces []string, scores []float64) (*Tokenizer, error) {
	if len(pieces) != len(scores) || len(pieces) <= reservedPieces {
		return nil, fmt.Errorf("use: vocabulary has %d pieces and %d scores", len(pieces), len(scores))
	}
	t := &Tokenizer{
		pieces: pieces,
		scores: scores,
		len16:  make([]int32, len(pieces)),
	}
	ids := make(map[string]int32, len(pieces))
	for i, p := range pieces {
		n16 := 0
		for _, r := range p {
			n16++
			if r >= 0x10000 {
				n16++
			}
		}
		t.len16[i] = int32(n16)
		if i < reservedPieces || p == "" {
			continue
		}
		ids[p] = int32(i) // like the JS trie, a repeated piece keeps its last id
	}
	t.trie = buildTrie(ids)
	t.cuttable = true
	for _, p := range pieces[reservedPieces:] {
		if i := strings.Index(p, wordBoundary); i > 0 {
			t.cuttable = false
		}
	}
	if _, ok := ids[wordBoundary]; ok {
		t.plain = make([]uint64, 0x10000/64)
		for p := range ids {
			if r, size := utf8.DecodeRuneInString(p); size == len(p) && r != utf8.RuneError && r < 0x10000 {
				t.plain[r>>6] |= 1 << (r & 63)
			}
		}
	}
	if t.len16[unknownID] == 0 {
		return nil, fmt.Errorf("use: vocabulary's unknown piece is empty")
	}
	t.scratch.New = func() any { return new(tokScratch) }
	return t, nil
}

// VocabSize is the number of pieces.
func (t *Tokenizer) VocabSize() int { return len(t.pieces) }

// Piece returns the text of piece id.
func (t *Tokenizer) Piece(id int) string { return t.pieces[id] }

// Encode returns the piece ids of text (all of them: the model itself keeps
// only the first MaxTokens).
func (t *Tokenizer) Encode(text string) []int32 {
	return t.AppendEncode(nil, text)
}

// AppendEncodeLimit appends the first limit ids of text to dst: the same as
// AppendEncode truncated, without tokenising the rest of a long text. Each
// ASCII space becomes a "▁" that starts a token on its own, so the text
// before the (limit+1)th space yields at least limit+1 tokens, the same as the
// whole text's first ones.
func (t *Tokenizer) AppendEncodeLimit(dst []int32, text string, limit int) []int32 {
	first := len(dst)
	dst = t.AppendEncode(dst, t.cut(text, limit))
	return dst[:min(len(dst), first+limit)]
}

// cut returns the part of text AppendEncodeLimit tokenises for limit ids.
func (t *Tokenizer) cut(text string, limit int) string {
	if t.cuttable && len(text) > limit {
		spaces := 0
		for i := 0; i < len(text); i++ {
			if text[i] == ' ' {
				if spaces == limit {
					text = text[:i]
					break
				}
				spaces++
			}
		}
	}
	// A text with too few spaces (a base64 blob, minified code, Chinese) is
	// cut at limit*512 bytes (64 KiB for MaxTokens) to bound the work. Its
	// first limit tokens normally lie far inside (a piece is at most 16
	// symbols), but a run of unknown symbols, which merges into one id, could
	// cross the cut; only then can the ids differ from the reference.
	if maxBytes := limit * cutBytesPerToken; len(text) > maxBytes {
		cut := maxBytes
		for cut > 0 && !utf8.RuneStart(text[cut]) {
			cut--
		}
		text = text[:cut]
	}
	return text
}

// FitsIn reports whether text has at most limit tokens, exactly as
// len(AppendEncodeLimit(nil, text, limit+1)) <= limit does, but it stops
// as soon as the answer is known. When every symbol of the normalised text
// is itself a piece of the Basic Multilingual Plane (plain prose: no
// unknown symbols, and every piece's UTF-16 length is its symbol count),
// each "▁" starts a token of its own and the segmentation walks back through
// every "▁" exactly, so:
//
//   - the text has at least as many tokens as "▁"s and at most as many as
//     symbols, which often decides without the Viterbi search;
//   - otherwise the search counts the tokens word by word as it goes, and
//     stops at the (limit+1)th.
//
// Any other text takes the full count.
func (t *Tokenizer) FitsIn(text string, limit int) bool {
	text = t.cut(text, limit+1)
	sc := t.scratch.Get().(*tokScratch)
	defer t.scratch.Put(sc)
	if t.cuttable && t.plain != nil {
		sc.nfkc = norm.NFKC.AppendString(sc.nfkc[:0], text)
		sc.norm = appendBoundaries(sc.norm[:0], sc.nfkc)
		if n, ok := t.countPlain(sc, limit); ok {
			return n <= limit
		}
	}
	sc.out = t.appendEncode(sc, sc.out[:0], text)
	return len(sc.out) <= limit
}

// countPlain counts the tokens of sc.norm, or at least limit+1 of them, if
// it is plain text (see FitsIn); ok is false if it is not.
func (t *Tokenizer) countPlain(sc *tokScratch, limit int) (n int, ok bool) {
	s := sc.norm
	offs := sc.offs[:0]
	words := 0
	for i := 0; i < len(s); {
		c := rune(s[i])
		size := 1
		if c >= utf8.RuneSelf {
			c, size = utf8.DecodeRune(s[i:])
		}
		if c >= 0x10000 || t.plain[c>>6]&(1<<(c&63)) == 0 {
			return 0, false // also utf8.RuneError for an invalid byte: not a piece
		}
		if c == boundaryRune {
			words++
		}
		offs = append(offs, i)
		i += size
	}
	sym := len(offs)
	offs = append(offs, len(s))
	sc.offs = offs
	if sym <= limit {
		return sym, true
	}
	if words > limit {
		return words, true
	}
	// Viterbi as in appendEncode; once the search reaches a "▁" every path
	// ends there, so the tokens before it are final: walk them back to the
	// previous "▁" and count.
	best := grow(sc.best, sym+1)
	ids := grow(sc.words, sym+1)
	sc.best, sc.words = best, ids
	clear(best)
	clear(ids)
	prev := 0
	for start := 0; start <= sym; start++ {
		if start == sym || (start > 0 && s[offs[start]] == wordBoundary[0] && isBoundary(s[offs[start]:])) {
			for i := start; i > prev; i -= int(t.len16[ids[i]]) {
				n++
				if i-int(t.len16[ids[i]]) < prev {
					return 0, false // cannot happen on plain text; be safe
				}
			}
			if n > limit {
				return n, true
			}
			prev = start
			if start == sym {
				break
			}
		}
		t.relaxFrom(s, offs, best, ids, start, sym)
	}
	return n, true
}

// boundaryRune is wordBoundary as a rune.
const boundaryRune = '▁'

func isBoundary(b []byte) bool {
	return len(b) >= len(wordBoundary) && string(b[:len(wordBoundary)]) == wordBoundary
}

// normalize applies the JS tokenizer's input processing.
func normalize(text string) string {
	return string(appendBoundaries(nil, norm.NFKC.AppendString(nil, text)))
}

// appendBoundaries appends the NFKC-normalised text nfkc to dst with a
// leading "▁" and every ASCII space replaced by "▁" (nothing if it is empty).
func appendBoundaries(dst, nfkc []byte) []byte {
	if len(nfkc) == 0 {
		return dst
	}
	dst = append(dst, wordBoundary...)
	for _, c := range nfkc {
		if c == ' ' {
			dst = append(dst, wordBoundary...)
		} else {
			dst = append(dst, c)
		}
	}
	return dst
}

// AppendEncode appends the ids of text to dst.
func (t *Tokenizer) AppendEncode(dst []int32, text string) []int32 {
	sc := t.scratch.Get().(*tokScratch)
	defer t.scratch.Put(sc)
	return t.appendEncode(sc, dst, text)
}

func (t *Tokenizer) appendEncode(sc *tokScratch, dst []int32, text string) []int32 {
	sc.nfkc = norm.NFKC.AppendString(sc.nfkc[:0], text)
	sc.norm = appendBoundaries(sc.norm[:0], sc.nfkc)
	s := sc.norm
	if len(s) == 0 {
		return dst
	}

	offs := sc.offs[:0]
	for i := 0; i < len(s); {
		offs = append(offs, i)
		_, size := utf8.DecodeRune(s[i:])
		i += size
	}
	n := len(offs)
	offs = append(offs, len(s))
	sc.offs = offs

	best := grow(sc.best, n+1)
	words := grow(sc.words, n+1)
	sc.best, sc.words = best, words
	clear(best)
	clear(words)
	// Viterbi. The JS visits candidates by end position, then by start
	// position ascending; pushing from each start in ascending order meets
	// every end's candidates in that same order, after best[start] is final.
	for start := 0; start < n; start++ {
		t.relaxFrom(s, offs, best, words, start, n)
	}
	// Walk back from the end, stepping by each piece's UTF-16 length as the
	// JS does, then merge runs of unknowns and reverse.
	out := sc.out[:0]
	for i := n; i > 0; i -= int(t.len16[words[i]]) {
		out = append(out, words[i])
	}
	sc.out = out
	first := len(dst)
	prevUnk := false
	for _, id := range out {
		if !(prevUnk && id == unknownID) {
			dst = append(dst, id)
		}
		prevUnk = id == unknownID
	}
	for i, j := first, len(dst)-1; i < j; i, j = i+1, j-1 {
		dst[i], dst[j] = dst[j], dst[i]
	}
	return dst
}

// relaxFrom is one step of the Viterbi search over the n symbols of s (byte
// offsets offs): every piece that starts at symbol start offers its end a
// path. best == 0 counts as unset, as in the JS; ties go to the later
// candidate. A symbol that starts no piece is unknown, score 0.
func (t *Tokenizer) relaxFrom(s []byte, offs []int, best []float64, words []int32, start, n int) {
	relax := func(end int, id int32, score float64) {
		total := score + best[start]
		if best[end] == 0 || total >= best[end] {
			best[end] = total
			words[end] = id
		}
	}
	node := int32(0)
	matched := false
walk:
	for end := start + 1; end <= n; end++ {
		for b := offs[end-1]; b < offs[end]; b++ {
			if node = t.trie.child(node, s[b]); node < 0 {
				break walk
			}
		}
		if id := t.trie.nodes[node].id; id >= 0 {
			matched = true
			relax(end, id, t.scores[id])
		}
	}
	if !matched {
		relax(start+1, unknownID, 0)
	}
}

func grow[T any](s []T, n int) []T {
	if cap(s) >= n {
		return s[:n]
	}
	return make([]T, n, n+n/2)
}

// trie is a byte trie of the pieces, flattened: node k's children are the
// edges [lo, hi) of labels/next, sorted by label.
type trie struct {
	nodes  []trieNode
	labels []byte
	next   []int32
}

type trieNode struct {
	id     int32 // the piece that ends here, -1 if none
	lo, hi int32
}

func buildTrie(pieces map[string]int32) trie {
	type node struct {
		id   int32
		kids map[byte]*node
	}
	root := &node{id: -1}
	for p, id := range pieces {
		n := root
		for i := 0; i < len(p); i++ {
			c := n.kids[p[i]]
			if c == nil {
				if n.kids == nil {
					n.kids = map[byte]*node{}
				}
				c = &node{id: -1}
				n.kids[p[i]] = c
			}
			n = c
		}
		n.id = id
	}
	// Breadth first, so that a node's index is its place in the queue.
	t := trie{nodes: []trieNode{{id: root.id}}}
	queue := []*node{root}
	for qi := 0; qi < len(queue); qi++ {
		b := queue[qi]
		keys := make([]byte, 0, len(b.kids))
		for k := range b.kids {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		t.nodes[qi].lo = int32(len(t.labels))
		for _, k := range keys {
			t.labels = append(t.labels, k)
			t.next = append(t.next, int32(len(queue)))
			queue = append(queue, b.kids[k])
			t.nodes = append(t.nodes, trieNode{id: b.kids[k].id})
		}
		t.nodes[qi].hi = int32(len(t.labels))
	}
	return t
}

// child returns the child of node along byte c, or -1.
func (t *trie) child(node int32, c byte) int32 {
	lo, hi := int(t.nodes[node].lo), int(t.nodes[node].hi)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		switch l := t.labels[m]; {
		case l == c:
			return t.next[m]
		case l < c:
			lo = m + 1
		default:
			hi = m
		}
	}
	return -1
}
