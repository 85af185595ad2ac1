// Package lexicon owns the guard's English lexical table, built by
// tools/lexgen from WordNet 3.0, the SCOWL word list and SUBTLEX-US word
// counts (NOTICE keeps their licences): the base forms (lemmas) of a word,
// the lemmas related to a lemma by meaning, its antonyms, whether a word is a
// dictionary word and how often it is said. The table is embedded and
// decoded once, on first use; lookups then allocate nothing.
//
// Scope: about 59,000 single-word lemmas (no collocations) get an id: those
// SUBTLEX-US counts, as themselves or through an inflection, and the other
// WordNet lemmas of the word list. Relations are kept among those lemmas
// only. Related follows a lemma's first four senses per part of speech
// (synonyms, similar-to, derivations, verb groups, pertainyms, also-see,
// and a verb's first sense's direct hypernym: "delete" / "remove"; never
// noun hypernyms, hyponyms or antonyms), so rare senses ("car" as a cable
// car's cabin) do not link common words.
package lexicon

import (
	_ "embed"
	"strings"
	"sync"
)

// Word is a lemma's id; 0 is never a valid id.
type Word uint32

// Lexicon is a decoded table. It is read-only and safe for concurrent use;
// the slices it returns belong to it and must not be modified.
type Lexicon struct {
	text   string   // every string, lemmas first (id order) then the others, sorted within each part
	off    []uint32 // string i is text[off[i]:off[i+1]]
	nLemma int

	known []bool
	freq  []uint32
	// the base forms of string i are bases[baseOff[i]:baseOff[i+1]].
	baseOff []uint32
	bases   []Word
	// the neighbours of lemma id w are rel[relOff[w-1]:relOff[w]], and
	// likewise for antonyms.
	relOff, antOff []uint32
	rel, ant       []Word

	// slots is an open-addressing hash table of string index+1, 0 empty;
	// its length is a power of two at least 1.5 times the number of
	// strings.
	slots []uint32
}

//go:embed lexicon.bin
var embedded []byte

var (
	defaultOnce sync.Once
	defaultLex  *Lexicon
	defaultErr  error
)

// Default returns the embedded lexicon, decoded on first use (about 70 ms
// of CPU; the lexicon keeps 11 MB of heap, BenchmarkDecode). The error says
// the table is missing or corrupt; it is returned again on every call.
func Default() (*Lexicon, error) {
	defaultOnce.Do(func() { defaultLex, defaultErr = Decode(embedded) })
	return defaultLex, defaultErr
}

// Lemmas returns the ids of the WordNet base forms of a lower-case word over
// all parts of speech, sorted: the word itself when it is a lemma, and what
// WordNet's morphy makes of it (the exception lists first: "ran" is run,
// "geese" goose, "better" good and well; else the detachment rules of each
// part of speech: "studies" is study, "deleted" delete, "quickest" quick).
// It returns nil when the table knows no lemma for it. The slice belongs to
// the lexicon.
func (l *Lexicon) Lemmas(word string) []Word {
	i, ok := l.find(word)
	if !ok {
		return nil
	}
	a, b := l.baseOff[i], l.baseOff[i+1]
	if a == b {
		return nil
	}
	return l.bases[a:b:b]
}

// Related returns the sorted ids of the lemmas linked to w by meaning:
// members of the same synset, similar-to (adjectives), derivationally
// related forms, verb groups, pertainyms and also-see (adjectives, verbs),
// and for a verb its first sense's direct hypernym, taken from w's first
// senses per part of speech and made symmetric (b is
// in Related(a) exactly when a is in Related(b)). A pair of antonyms is
// never related. Nil for an unknown id. The slice belongs to the lexicon.
func (l *Lexicon) Related(w Word) []Word {
	return neighbours(l.relOff, l.rel, w)
}

// Antonyms returns the sorted ids of WordNet's direct antonyms of w in any
// of its senses, symmetric. Nil for an unknown id. The slice belongs to the
// lexicon.
func (l *Lexicon) Antonyms(w Word) []Word {
	return neighbours(l.antOff, l.ant, w)
}

func neighbours(off []uint32, ids []Word, w Word) []Word {
	if w == 0 || int(w) >= len(off) {
		return nil
	}
	a, b := off[w-1], off[w]
	if a == b {
		return nil
	}
	return ids[a:b:b]
}

// Known reports whether a lower-case word is a dictionary word: in the
// SCOWL word list (a possessive "'s" is dropped first), a single-word
// WordNet lemma, or a form morphy resolves to one.
func (l *Lexicon) Known(word string) bool {
	if i, ok := l.find(word); ok && l.known[i] {
		return true
	}
	if stem, ok := strings.CutSuffix(word, "'s"); ok && stem != "" {
		i, ok := l.find(stem)
		return ok && l.known[i]
	}
	return false
}

// Freq returns the SUBTLEX-US count of a lower-case word as written (not of
// its lemma): how many times it occurs in 51 million words of film and
// television subtitles. 0 when unknown.
func (l *Lexicon) Freq(word string) uint32 {
	if i, ok := l.find(word); ok {
		return l.freq[i]
	}
	return 0
}

// Text returns the lemma's spelling, "" for an unknown id.
func (l *Lexicon) Text(w Word) string {
	if w == 0 || int(w) > l.nLemma {
		return ""
	}
	return l.text[l.off[w-1]:l.off[w]]
}

// find returns the index of a string in the table.
func (l *Lexicon) find(s string) (int, bool) {
	mask := uint32(len(l.slots) - 1)
	for h := hash(s) & mask; ; h = (h + 1) & mask {
		e := l.slots[h]
		if e == 0 {
			return 0, false
		}
		if l.text[l.off[e-1]:l.off[e]] == s {
			return int(e - 1), true
		}
	}
}

// hash is FNV-1a over the bytes of s.
func hash(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}
