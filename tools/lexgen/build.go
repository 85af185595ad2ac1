package main

import (
	"cmp"
	"slices"
	"strings"
)

// table is what lexgen writes: the lemmas that get an id, every other
// string the lexicon answers for, and the relations between lemmas.
type table struct {
	lemmas []string // sorted; the id of lemmas[i] is i+1
	others []string // sorted; none is in lemmas
	// info of every string, lemmas first then others.
	info []entry
	// related[i] and antonyms[i] are the ids related to lemma id i+1,
	// sorted and symmetric.
	related, antonyms [][]uint32
}

type entry struct {
	known  bool
	freq   uint32
	lemmas []uint32 // sorted ids of the string's base forms
}

// rules are WordNet's morphy detachment rules: an inflected form ending in
// the first string has a base form ending in the second.
var rules = [nPOS][][2]string{
	noun: {{"s", ""}, {"ses", "s"}, {"xes", "x"}, {"zes", "z"}, {"ches", "ch"}, {"shes", "sh"}, {"men", "man"}, {"ies", "y"}},
	verb: {{"s", ""}, {"ies", "y"}, {"es", "e"}, {"es", ""}, {"ed", "e"}, {"ed", ""}, {"ing", "e"}, {"ing", ""}},
	adj:  {{"er", ""}, {"est", ""}, {"er", "e"}, {"est", "e"}},
	adv:  nil,
}

// singleWord reports whether a WordNet lemma is one word: no underscore
// (WordNet's space) and at least one letter.
func singleWord(l string) bool {
	if strings.ContainsAny(l, "_ ") {
		return false
	}
	return strings.ContainsFunc(l, func(r rune) bool { return r >= 'a' && r <= 'z' })
}

// inflections returns, for every string morphy resolves, the single-word
// lemmas it resolves to (the lemma itself included). It inverts morphy as
// NLTK and WordNet's C library apply it: per part of speech, a form in the
// exception list gets the bases listed there (when they are lemmas of that
// part of speech) and no detachment; any other form gets every detachment
// rule whose result is a lemma of that part of speech, except that a noun
// ending in "ss" or of at most two letters is not detached.
func inflections(s *sources) map[string][]string {
	out := map[string]map[string]bool{}
	add := func(form, lemma string) {
		m := out[form]
		if m == nil {
			m = map[string]bool{}
			out[form] = m
		}
		m[lemma] = true
	}
	for p := range nPOS {
		for l := range s.senses[p] {
			if !singleWord(l) {
				continue
			}
			add(l, l)
			for _, r := range rules[p] {
				if !strings.HasSuffix(l, r[1]) {
					continue
				}
				form := l[:len(l)-len(r[1])] + r[0]
				if _, exc := s.exc[p][form]; exc {
					continue
				}
				if p == noun && (strings.HasSuffix(form, "ss") || len(form) <= 2) {
					continue
				}
				add(form, l)
			}
		}
		for form, bases := range s.exc[p] {
			if !singleWord(form) {
				continue
			}
			for _, b := range bases {
				if _, ok := s.senses[p][b]; ok && singleWord(b) {
					add(form, b)
				}
			}
		}
	}
	res := make(map[string][]string, len(out))
	for form, m := range out {
		ls := make([]string, 0, len(m))
		for l := range m {
			ls = append(ls, l)
		}
		slices.Sort(ls)
		res[form] = ls
	}
	return res
}

// keep chooses the lemmas that get an id: every single-word lemma that
// SUBTLEX-US counts (as itself or through a form that resolves to it), the
// most counted first, then lemmas of the word list by their number of senses,
// up to max in all.
func keep(s *sources, infl map[string][]string, max int) []string {
	score := map[string]uint64{}
	for form, ls := range infl {
		if f := s.freq[form]; f > 0 {
			for _, l := range ls {
				score[l] += uint64(f)
			}
		}
	}
	senses := map[string]int{}
	for p := range nPOS {
		for l, offs := range s.senses[p] {
			if singleWord(l) {
				senses[l] += len(offs)
			}
		}
	}
	var cands []string
	for l := range senses {
		if score[l] > 0 || s.words[l] {
			cands = append(cands, l)
		}
	}
	slices.SortFunc(cands, func(a, b string) int {
		return cmp.Or(
			-cmp.Compare(score[a], score[b]),
			-cmp.Compare(senses[a], senses[b]),
			strings.Compare(a, b),
		)
	})
	if len(cands) > max {
		cands = cands[:max]
	}
	slices.Sort(cands)
	return cands
}

// relatedSymbols are the pointers Related follows from a lemma's first
// senses: similar to, verb group, also see, derivationally related form,
// pertainym (and "derived from adjective" for adverbs, same symbol); and,
// for verbs, the direct hypernym of the first -verb-hypernyms senses.
var relatedSymbols = map[string]bool{"&": true, "$": true, "^": true, "+": true, `\`: true}

// build turns the sources into the table.
func build(s *sources, o options) *table {
	infl := inflections(s)
	lemmas := keep(s, infl, o.maxLemmas)
	id := make(map[string]uint32, len(lemmas))
	for i, l := range lemmas {
		id[l] = uint32(i + 1)
	}

	related := map[[2]uint32]bool{}
	antonyms := map[[2]uint32]bool{}
	pair := func(set map[[2]uint32]bool, a uint32, w string) {
		b, ok := id[w]
		if !ok || a == b {
			return
		}
		set[[2]uint32{min(a, b), max(a, b)}] = true
	}
	for _, l := range lemmas {
		a := id[l]
		for p := range nPOS {
			for sense, off := range s.senses[p][l] {
				ss := s.synsets[synsetKey{p, off}]
				if ss == nil {
					continue
				}
				self := slices.Index(ss.words, l) + 1 // 0 if WordNet spells it otherwise
				for _, ptr := range ss.ptrs {
					if ptr.sym == "!" && ptr.src != 0 && ptr.src == self {
						if t := s.synsets[ptr.target]; t != nil && ptr.tgt <= len(t.words) {
							pair(antonyms, a, t.words[ptr.tgt-1])
						}
					}
				}
				if sense >= o.senses {
					continue
				}
				for _, w := range ss.words {
					pair(related, a, w)
				}
				for _, ptr := range ss.ptrs {
					// A verb's direct hypernym in its first senses is a
					// broader word for the same act ("delete" / "remove",
					// "comprehend" / "understand"); nouns are left out,
					// where the broader word changes the subject ("dog" /
					// "animal").
					hyper := ptr.sym == "@" && p == verb && sense < o.verbHypernyms
					if !hyper && (!relatedSymbols[ptr.sym] || (ptr.sym == "^" && p != adj && p != verb)) {
						continue
					}
					t := s.synsets[ptr.target]
					if t == nil {
						continue
					}
					switch {
					case ptr.src == 0:
						for _, w := range t.words {
							pair(related, a, w)
						}
					case ptr.src == self && ptr.tgt <= len(t.words):
						pair(related, a, t.words[ptr.tgt-1])
					}
				}
			}
		}
	}
	// An antonym is never also related, whatever path linked them.
	for k := range antonyms {
		delete(related, k)
	}

	t := &table{lemmas: lemmas}
	t.related = adjacency(related, len(lemmas))
	t.antonyms = adjacency(antonyms, len(lemmas))

	others := map[string]bool{}
	for form := range infl {
		others[form] = true
	}
	for w := range s.words {
		others[w] = true
	}
	for w := range s.freq {
		others[w] = true
	}
	for _, l := range lemmas {
		delete(others, l)
	}
	for w := range others {
		t.others = append(t.others, w)
	}
	slices.Sort(t.others)

	for _, w := range slices.Concat(lemmas, t.others) {
		e := entry{freq: s.freq[w], known: s.words[w] || infl[w] != nil}
		for _, l := range infl[w] {
			if i, ok := id[l]; ok {
				e.lemmas = append(e.lemmas, i)
			}
		}
		slices.Sort(e.lemmas)
		t.info = append(t.info, e)
	}
	return t
}

// adjacency turns a set of pairs into sorted neighbour lists per id.
func adjacency(pairs map[[2]uint32]bool, n int) [][]uint32 {
	adj := make([][]uint32, n)
	for p := range pairs {
		adj[p[0]-1] = append(adj[p[0]-1], p[1])
		adj[p[1]-1] = append(adj[p[1]-1], p[0])
	}
	for _, a := range adj {
		slices.Sort(a)
	}
	return adj
}

func (t *table) relatedPairs() int { return pairsIn(t.related) }
func (t *table) antonymPairs() int { return pairsIn(t.antonyms) }

func pairsIn(adj [][]uint32) int {
	n := 0
	for _, a := range adj {
		n += len(a)
	}
	return n / 2
}
