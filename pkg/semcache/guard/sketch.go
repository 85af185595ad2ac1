package guard

import (
	"slices"
	"strings"
)

// Sketch is what a search for aligned candidates needs of a prepared
// prompt, without comparing any pair: the keys the prompt is found by, and
// for each of its words that must have a partner, the keys of every word
// that could be that partner. Two prompts Decide aligns always share the
// bucket, and every Need of either is met by a key of the other (with the
// exceptions listed on Sketch), so a cache can find the few candidates
// worth embedding and deciding with an inverted index instead of embedding
// every query: a query whose Need no entry meets cannot be served aligned.
//
// Keys are hashes: a collision only makes a candidate more, never fewer.
//
// The exceptions, where an aligned pair may be missed: a typo of two edits
// in a query whose every content word is rare, misspelt, a number or
// background, and a clipped form ("env") in such a query; a typo in a word
// longer than 24 bytes.
type Sketch struct {
	// Bucket hashes what the hard rules compare whole: the quoted strings,
	// the code and the numbers. Prompts in different buckets never align.
	Bucket uint64
	// Keys are the keys the prompt is found by: for each content word its
	// spelling, stem and WordNet lemmas, and for a rare or unknown word its
	// forms one letter shorter (two, when long) and its clipped forms.
	Keys []uint64
	// Need holds, for each word that must have a partner (a common
	// dictionary word that is not a number and not in a background
	// sentence), the keys its partners are found by: any one matching
	// makes a candidate.
	Need [][]uint64
	// Any, when Need is empty, holds the keys of all the prompt's content
	// words: a candidate must match one of them, unless it needs nothing
	// itself (Needless).
	Any []uint64
	// Needless: the prompt has no word that needs a partner.
	Needless bool
}

// lemmaKey tags lemma ids apart from string hashes (a collision would only
// add candidates).
const lemmaKey = 1 << 63

// Key namespaces: a spelling, a deletion form of a rare word (the only
// words a common word can be a typo of), a clipped form.
const (
	tagWord byte = iota + 1
	tagRareDel
	tagClip
)

// fnv is FNV-1a over tag and s without the bytes at i and j (-1: none).
func fnv(tag byte, s string, i, j int) uint64 {
	h := uint64(14695981039346656037)
	h = (h ^ uint64(tag)) * 1099511628211
	for k := 0; k < len(s); k++ {
		if k != i && k != j {
			h = (h ^ uint64(s[k])) * 1099511628211
		}
	}
	return h &^ lemmaKey
}

func strKey(s string) uint64 { return fnv(tagWord, s, -1, -1) }

// maxTypoWord bounds the words found by their typos and clipped forms:
// the keys grow with the square of a word's length (a typo of a longer word
// is not found; exceptions on Sketch).
const maxTypoWord = 24

// clipKey is the key of a clipped form and of each prefix a clipped form
// of a longer word can be.
func clipKey(prefix string) uint64 { return fnv(tagClip, prefix, -1, -1) }

// deletions appends the keys, in namespace tag, of w whole and with one
// byte removed, and with two when two is set: two words within the typo
// distance share one of these.
func deletions(keys []uint64, tag byte, w string, two bool) []uint64 {
	keys = append(keys, fnv(tag, w, -1, -1))
	if len(w) > maxTypoWord {
		return keys
	}
	for i := range len(w) {
		keys = append(keys, fnv(tag, w, i, -1))
		if two {
			for j := i + 1; j < len(w); j++ {
				keys = append(keys, fnv(tag, w, i, j))
			}
		}
	}
	return keys
}

// Sketch sketches a prompt from Prepare; ok is false for anything else, or
// when the rules have no lexicon (the keys need its lemmas and
// frequencies): a cache must then compare candidates the other way.
func (g *Rules) Sketch(prepared any) (s Sketch, ok bool) {
	p, isPrompt := prepared.(*Prompt)
	if !isPrompt || p == nil || g.lex == nil {
		return Sketch{}, false
	}
	s.Bucket = bucketOf(&p.f)
	for i := range p.content {
		c := &p.content[i]
		w := &p.f.words[c.w]
		if w.literal {
			continue // compared by the bucket
		}
		rare := !c.known || c.freq < rareCount
		s.Keys = append(s.Keys, strKey(w.base), strKey(w.stem))
		for _, l := range c.lemmas {
			s.Keys = append(s.Keys, lemmaKey|uint64(l))
		}
		// A rare word also by its forms one letter shorter (two when
		// long): a common word's typo partners are looked for by those.
		if rare {
			s.Keys = deletions(s.Keys, tagRareDel, w.base, len(w.base) >= 7)
		}
		if !c.known && len(w.base) >= 3 {
			s.Keys = append(s.Keys, clipKey(w.base))
			if t := strings.TrimSuffix(w.base, "s"); len(t) >= 3 && len(t) < len(w.base) {
				s.Keys = append(s.Keys, clipKey(t))
			}
		}
		if rare || p.background[w.sent] || len(p.content) > maxAlignWords {
			s.Any = edits(partnerKeys(s.Any, w.base, w.stem, c), w.base)
			continue
		}
		s.Need = append(s.Need, compact(partnerKeys(nil, w.base, w.stem, c)))
	}
	s.Keys = compact(s.Keys)
	if len(s.Need) == 0 {
		s.Needless = true
		s.Any = compact(s.Any)
	} else {
		s.Any = nil
	}
	return s, true
}

// partnerKeys appends the keys of the words that may partner c: its
// spelling and stem, every lemma it is linked to, the forms one letter
// shorter (two for a word of 7 letters or more: a rare word that long is
// found by them) and its prefixes a clipped form can be.
func partnerKeys(keys []uint64, base, stem string, c *lexWord) []uint64 {
	keys = append(keys, strKey(base), strKey(stem))
	for _, l := range c.related {
		keys = append(keys, lemmaKey|uint64(l))
	}
	keys = deletions(keys, tagRareDel, base, len(base) >= 7)
	for k := 3; k <= min(len(base)-2, maxTypoWord); k++ {
		keys = append(keys, clipKey(base[:k]))
	}
	return keys
}

// edits appends the spelling keys of every word one edit from w (a byte
// deleted, two neighbours swapped, a letter a-z put in or in place of a
// byte): a word that needs nothing is looked for among common words this
// way, which are not indexed by their deletion forms. Words longer than
// maxTypoWord get none.
func edits(keys []uint64, w string) []uint64 {
	if len(w) < 3 || len(w) > maxTypoWord {
		return keys
	}
	buf := make([]byte, 0, len(w)+1)
	for i := range len(w) {
		keys = append(keys, fnv(tagWord, w, i, -1)) // deleted
		if i+1 < len(w) {
			buf = append(append(append(buf[:0], w[:i]...), w[i+1], w[i]), w[i+2:]...)
			keys = append(keys, strKey(string(buf)))
		}
	}
	for i := 0; i <= len(w); i++ {
		for ch := byte('a'); ch <= 'z'; ch++ {
			buf = append(append(append(buf[:0], w[:i]...), ch), w[i:]...)
			keys = append(keys, strKey(string(buf)))
			if i < len(w) && w[i] != ch {
				buf = append(append(append(buf[:0], w[:i]...), ch), w[i+1:]...)
				keys = append(keys, strKey(string(buf)))
			}
		}
	}
	return keys
}

// rareCount is the SUBTLEX count under which a dictionary word may be a
// typo of a frequent one (realWordTypo).
const rareCount = 100

func compact(keys []uint64) []uint64 {
	slices.Sort(keys)
	return slices.Compact(keys)
}

// bucketOf hashes the multisets the hard rules compare.
func bucketOf(f *features) uint64 {
	h := uint64(14695981039346656037)
	for _, set := range [][]string{f.quotes, f.code, f.quantities} {
		xs := slices.Clone(set)
		slices.Sort(xs)
		for _, x := range xs {
			for k := 0; k < len(x); k++ {
				h = (h ^ uint64(x[k])) * 1099511628211
			}
			h = (h ^ 0x100) * 1099511628211
		}
		h = (h ^ 0x200) * 1099511628211
	}
	return h
}
