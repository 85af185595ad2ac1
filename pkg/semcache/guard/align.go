package guard

import (
	"cmp"
	"slices"
	"strconv"
	"strings"

	"github.com/tollgate/tollgate/pkg/semcache/guard/lexicon"
)

// Prompt is a prompt analysed once by Prepare: its words, what the rules
// read off them, and for every content word its lemmas, the lemmas it is
// linked to (synonyms, derivations, similar-to) and its antonyms. semcache
// keeps it with the cached entry, so each candidate costs only Decide.
// Immutable once made: safe to share between goroutines.
type Prompt struct {
	f       features
	content []lexWord // the content words, in order
	negs    int       // negations outside hedges ("I don't know how to") and background
	bgNegs  int       // negations in background sentences
	wh      whKind    // the kind of question asked
	marks   []marker  // direction and role markers with their arguments
	// background marks the sentences that only tell the asker's situation:
	// statements, not questions or requests ("I bought too much milk.").
	background []bool
	// The content words indexed for align.
	byLemma        []lemmaRef
	byBase, byStem wordIndex
}

// lexWord is one content word with its lexical sets.
type lexWord struct {
	w        int32          // index in f.words
	lemmas   []lexicon.Word // WordNet base forms (table-owned)
	related  []lexicon.Word // sorted: the lemmas and every lemma linked to them
	antonyms []lexicon.Word // sorted
	known    bool           // a dictionary word
	freq     uint32         // its frequency (SUBTLEX count)
	entity   bool           // a named entity: unpartnered, it refuses
	negated  bool           // the first content word after a negation
	role     uint8          // the direction marker governing it (markerGroups 1-4), 0 if none
}

// maxAlignWords bounds the content words of a prompt Decide aligns.
const maxAlignWords = 200

// whKind classifies what a question asks for by its question word; 0 when
// it has none or only a generic one ("what", "which", a request verb).
type whKind uint8

const (
	whNone whKind = iota
	whWhy
	whWhen
	whWhere
	whWho
	whHow      // manner: "how do I"
	whHowMuch  // amount or measure: "how many", "how long", "how old"
	whMultiple // more than one kind
)

var whNames = [...]string{"none", "why", "when", "where", "who", "how", "how much", "several"}

// Prepare analyses a prompt for Decide.
func (g *Rules) Prepare(prompt string) any { return g.prepare(prompt) }

func (g *Rules) prepare(s string) *Prompt {
	p := &Prompt{}
	p.f.parse(s)
	ws := p.f.words
	entity := make(map[int]bool, len(p.f.entities))
	for _, i := range p.f.entities {
		entity[i] = true
	}
	p.background = backgroundSentences(&p.f)
	for i := range ws {
		if ws[i].neg && hedged(ws, i) {
			// The hedge ("not sure", "don't know") needs no partner.
			for j := ws[i].next; j >= 0; j = ws[j].next {
				if hedgeWords[ws[j].base] {
					ws[j].content = false
					break
				}
			}
		}
	}
	for i := range ws {
		w := &ws[i]
		if w.neg && !hedged(ws, i) {
			if p.background[w.sent] {
				p.bgNegs++
			} else {
				p.negs++
			}
		}
		if k := whOf(ws, i); k != whNone {
			if p.wh == whNone || p.wh == k {
				p.wh = k
			} else {
				p.wh = whMultiple
			}
		}
		opens := i == 0 || ws[i-1].sent != w.sent
		if !w.content || (freeWords[w.base] || opens && frameVerbs[w.base]) && !entity[i] {
			w.content = false
			continue
		}
		lw := lexWord{w: int32(i), entity: entity[i]}
		if g.lex != nil && !w.literal {
			lw.lemmas = g.lex.Lemmas(w.base)
			lw.known = g.lex.Known(w.base)
			lw.freq = g.lex.Freq(w.base)
			if len(lw.lemmas) > 0 {
				lw.related = slices.Clone(lw.lemmas)
				for _, l := range lw.lemmas {
					lw.related = append(lw.related, g.lex.Related(l)...)
					lw.antonyms = append(lw.antonyms, g.lex.Antonyms(l)...)
				}
				slices.Sort(lw.related)
				lw.related = slices.Compact(lw.related)
				slices.Sort(lw.antonyms)
				lw.antonyms = slices.Compact(lw.antonyms)
			}
		}
		p.content = append(p.content, lw)
	}
	// Scope each negation to the content word it precedes.
	ci := 0
	for i := range ws {
		for ci < len(p.content) && p.content[ci].w < int32(i) {
			ci++
		}
		if !ws[i].neg || hedged(ws, i) {
			continue
		}
		if ci < len(p.content) && ws[p.content[ci].w].clause == ws[i].clause {
			p.content[ci].negated = true
		}
	}
	p.marks = markers(p)
	for k, c := range p.content {
		for _, l := range c.lemmas {
			p.byLemma = append(p.byLemma, lemmaRef{l, int32(k)})
		}
		w := &ws[c.w]
		p.byBase = append(p.byBase, wordRef{w.base, int32(k)})
		p.byStem = append(p.byStem, wordRef{w.stem, int32(k)})
	}
	slices.SortFunc(p.byLemma, func(x, y lemmaRef) int { return cmp.Or(cmp.Compare(x.l, y.l), cmp.Compare(x.i, y.i)) })
	byString := func(x, y wordRef) int { return cmp.Or(strings.Compare(x.s, y.s), cmp.Compare(x.i, y.i)) }
	slices.SortFunc(p.byBase, byString)
	slices.SortFunc(p.byStem, byString)
	for _, m := range p.marks {
		if m.group <= maxDirection {
			for _, k := range m.args {
				p.content[k].role = m.group
			}
		}
	}
	return p
}

// hedged reports whether the negation at i is part of a hedge about the
// asker ("I don't know how to", "not sure", "no idea"), which does not flip
// the question.
func hedged(ws []word, i int) bool {
	for j, n := int32(i), 0; n < 2; n++ {
		j = ws[j].next
		if j < 0 {
			return false
		}
		if hedgeWords[ws[j].base] {
			return true
		}
		if !stopWords[ws[j].base] {
			return false
		}
	}
	return false
}

// whOf reads the question word at i.
func whOf(ws []word, i int) whKind {
	switch ws[i].base {
	case "why":
		return whWhy
	case "when":
		return whWhen
	case "where":
		return whWhere
	case "who", "whom", "whose":
		return whWho
	case "how":
		if n := ws[i].next; n >= 0 && howMuch[ws[n].base] {
			return whHowMuch
		}
		return whHow
	}
	return whNone
}

// Decide compares two prepared prompts (from Prepare; anything else is
// refused). allow false: a rule refused the pair; never serve it. allow
// and aligned: every content word of each prompt has a partner in the
// other (same lemma, a linked lemma, or a typo of it), so the cosine only
// has to clear a low floor. allow and not aligned: no rule refused the pair
// but some content word has no partner; serve it only above the high
// threshold or after verification. reason names the rule, never the
// prompts' words. Decide is symmetric in its verdict (FuzzDecide checks it).
func (g *Rules) Decide(query, cached any) (allow, aligned bool, reason string) {
	a, ok1 := query.(*Prompt)
	b, ok2 := cached.(*Prompt)
	if !ok1 || !ok2 || a == nil || b == nil {
		return false, false, "unprepared prompt"
	}
	if r := hardRules(&a.f, &b.f); r != "" {
		return false, false, r
	}
	if a.wh != b.wh && a.wh != whNone && b.wh != whNone {
		return false, false, "question: " + whNames[a.wh] + " vs " + whNames[b.wh]
	}
	if len(a.content) > maxAlignWords || len(b.content) > maxAlignWords {
		// The alignment grows with the product of the lengths; prompts this
		// long are past any embedder's window anyway.
		return true, false, "unaligned: too long to align"
	}
	al := g.align(a, b)
	if unpartneredEntity(a, al.ab, al.freeA) || unpartneredEntity(b, al.ba, al.freeB) {
		return false, false, "entity: a name without a partner"
	}
	if r := g.opposites(a, b, al); r != "" {
		return false, false, r
	}
	if negScope(a, b, al.ab, al.freeA) || negScope(b, a, al.ba, al.freeB) {
		return false, false, "negation: it applies to another word"
	}
	if particles(a, b, al.ab) || particles(b, a, al.ba) {
		return false, false, "particle: the same verb with another particle"
	}
	if roles(a, b, al.ab) || roles(b, a, al.ba) || order(a, b, al) || order(b, a, al.flip()) {
		return false, false, "order: the arguments are swapped"
	}
	padded := al.unmatchedN > 0 && (padding(a, al.ab, al.freeA) && allMatched(al.ba, al.freeB) || padding(b, al.ba, al.freeB) && allMatched(al.ab, al.freeA))
	// Negations are counted over the whole prompt, except in padding,
	// which the other prompt does not have.
	if padded && a.negs != b.negs || !padded && a.negs+a.bgNegs != b.negs+b.bgNegs {
		return false, false, "negation: the prompts differ in polarity"
	}
	if padded {
		return true, true, "aligned: one prompt adds background"
	}
	if al.unmatchedN > 0 {
		return true, false, "unaligned: " + strconv.Itoa(al.unmatchedN) + " content words without a partner"
	}
	return true, true, ""
}

// Allow is Decide on two texts, for callers that want one yes or no: it
// allows only aligned pairs.
func (g *Rules) Allow(query, cached string) (ok bool, reason string) {
	allow, aligned, why := g.Decide(g.prepare(query), g.prepare(cached))
	return allow && aligned, why
}

// hardRules are the rules over the whole text: script, language, quoted
// strings, code and numbers must match.
func hardRules(a, b *features) string {
	if a.script != b.script && a.script != scriptNone && b.script != scriptNone {
		return "script: " + a.script.String() + " vs " + b.script.String()
	}
	if a.lang != "" && b.lang != "" && a.lang != b.lang {
		return "language: " + a.lang + " vs " + b.lang
	}
	if !sameMultiset(a.quotes, b.quotes) {
		return "quoted: the quoted strings differ"
	}
	if !sameMultiset(a.code, b.code) {
		return "code: the code differs"
	}
	if !sameMultiset(a.quantities, b.quantities) {
		return "number: the numbers differ"
	}
	return ""
}

// sameMultiset compares two small multisets without changing them.
func sameMultiset(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	if len(a) == 0 {
		return true
	}
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}

// alignment says, for each content word of a, which content words of b
// match it (same word, lemma, link or typo), and transposed for b. A word
// of a with no match that is a typo of one of b's function words ("hwo"
// for "how") needs no partner: free marks it.
type alignment struct {
	ab, ba     [][]int
	freeA      []bool
	freeB      []bool
	unmatchedN int
}

func (g *Rules) align(a, b *Prompt) *alignment {
	n, m := len(a.content), len(b.content)
	al := &alignment{
		ab: make([][]int, n), ba: make([][]int, m),
		freeA: make([]bool, n), freeB: make([]bool, m),
	}
	hit := make([]bool, n*m) // hit[i*m+j]: a's i matches b's j
	rowAny := make([]bool, n)
	colAny := make([]bool, m)
	mark := func(i, j int) {
		hit[i*m+j], rowAny[i], colAny[j] = true, true, true
	}
	for i := range a.content {
		x := &a.content[i]
		xw := &a.f.words[x.w]
		for _, r := range b.byBase.find(xw.base) {
			mark(i, int(r.i))
		}
		for _, r := range b.byStem.find(xw.stem) {
			mark(i, int(r.i))
		}
		// x.related holds x's lemmas and every lemma linked to them; the
		// links are symmetric, so this also finds x among y's links.
		r, l := x.related, b.byLemma
		for len(r) > 0 && len(l) > 0 {
			switch {
			case r[0] < l[0].l:
				r = r[1:]
			case r[0] > l[0].l:
				l = l[1:]
			default:
				mark(i, int(l[0].i))
				l = l[1:]
			}
		}
	}
	if g.lex != nil {
		for i := range a.content {
			for j := range b.content {
				if (!rowAny[i] || !colAny[j]) && !hit[i*m+j] {
					x, y := &a.content[i], &b.content[j]
					if g.typoPair(a.f.words[x.w].base, x, b.f.words[y.w].base, y) {
						hit[i*m+j] = true
					}
				}
			}
		}
	}
	// Both match lists share one backing array.
	total := 0
	rowN, colN := make([]int, n), make([]int, m)
	for i := range n {
		for j := range m {
			if hit[i*m+j] {
				total++
				rowN[i]++
				colN[j]++
			}
		}
	}
	back := make([]int, 0, 2*total)
	for i := range n {
		row := back[len(back) : len(back) : len(back)+rowN[i]]
		for j := range m {
			if hit[i*m+j] {
				row = append(row, j)
			}
		}
		al.ab[i] = row
		back = back[:len(back)+len(row)]
	}
	for j := range m {
		col := back[len(back) : len(back) : len(back)+colN[j]]
		for i := range n {
			if hit[i*m+j] {
				col = append(col, i)
			}
		}
		al.ba[j] = col
		back = back[:len(back)+len(col)]
	}
	// A word spelled the same on the other side is its partner: its other
	// matches (synonyms, typos) are dropped, so that the order and
	// negation rules compare like with like.
	same := func(i, j int) bool {
		x, y := &a.f.words[a.content[i].w], &b.f.words[b.content[j].w]
		return x.base == y.base || x.stem == y.stem
	}
	for i, js := range al.ab {
		if slices.ContainsFunc(js, func(j int) bool { return same(i, j) }) {
			al.ab[i] = slices.DeleteFunc(js, func(j int) bool { return !same(i, j) })
		}
	}
	for j, is := range al.ba {
		if slices.ContainsFunc(is, func(i int) bool { return same(i, j) }) {
			al.ba[j] = slices.DeleteFunc(is, func(i int) bool { return !same(i, j) })
		}
	}
	// A number or code token needs no partner: the hard rules compared
	// them already, whatever their spelling ("three" / "3").
	for i := range a.content {
		if len(al.ab[i]) == 0 {
			al.freeA[i] = a.f.words[a.content[i].w].literal || g.typoOfFunctionWord(a, &a.content[i], b)
			if !al.freeA[i] {
				al.unmatchedN++
			}
		}
	}
	for j := range b.content {
		if len(al.ba[j]) == 0 {
			al.freeB[j] = b.f.words[b.content[j].w].literal || g.typoOfFunctionWord(b, &b.content[j], a)
			if !al.freeB[j] {
				al.unmatchedN++
			}
		}
	}
	return al
}

// lemmaRef and wordRef index a prompt's content words by lemma and by
// spelling, sorted, so that aligning two prompts is a merge, not a product.
type lemmaRef struct {
	l lexicon.Word
	i int32
}

type wordRef struct {
	s string
	i int32
}

type wordIndex []wordRef

func (x wordIndex) find(s string) []wordRef {
	lo, _ := slices.BinarySearchFunc(x, s, func(r wordRef, s string) int { return strings.Compare(r.s, s) })
	hi := lo
	for hi < len(x) && x[hi].s == s {
		hi++
	}
	return x[lo:hi]
}

// typoOfFunctionWord: x is not a dictionary word and is a typo of one of
// b's function words.
func (g *Rules) typoOfFunctionWord(a *Prompt, x *lexWord, b *Prompt) bool {
	if g.lex == nil || x.known {
		return false
	}
	xw := a.f.words[x.w].base
	for _, w := range b.f.words {
		if !w.content && g.typo(xw, x.known, x.freq, w.base) {
			return true
		}
	}
	return false
}

func (al *alignment) flip() *alignment {
	return &alignment{ab: al.ba, ba: al.ab, freeA: al.freeB, freeB: al.freeA, unmatchedN: al.unmatchedN}
}

// padding reports whether every content word of p without a match lies
// in a background sentence.
func padding(p *Prompt, m [][]int, free []bool) bool {
	for i, js := range m {
		if len(js) > 0 || free[i] {
			continue
		}
		// Background that names a place, a person or a number may change
		// the answer: it is no padding.
		if s := p.f.words[p.content[i].w].sent; !p.background[s] || p.f.specific[s] {
			return false
		}
	}
	return true
}

// paddingSentences marks p's background sentences holding a content
// word without a match.
func paddingSentences(p *Prompt, m [][]int, free []bool) []bool {
	out := make([]bool, len(p.background))
	for i, js := range m {
		if s := p.f.words[p.content[i].w].sent; len(js) == 0 && !free[i] && p.background[s] {
			out[s] = true
		}
	}
	return out
}

func allMatched(m [][]int, free []bool) bool {
	for i, js := range m {
		if len(js) == 0 && !free[i] {
			return false
		}
	}
	return true
}

// backgroundSentences finds the sentences that tell the asker's situation
// rather than ask: not the last sentence, no question mark, not a request
// (it does not start with a request verb nor address "you"), and in the
// first person.
func backgroundSentences(f *features) []bool {
	n := len(f.asks)
	out := make([]bool, n)
	first := make([]bool, n)
	for s := 0; s < n; s++ {
		out[s] = !f.asks[s]
	}
	person := make([]bool, n)
	greeting := make([]bool, n)
	for _, w := range f.words {
		s := w.sent
		if !first[s] {
			first[s] = true
			if requestVerbs[w.base] {
				out[s] = false
			}
			greeting[s] = greetingWords[w.base]
		}
		if greeting[s] {
			continue
		}
		switch w.base {
		case "you", "your", "please":
			out[s] = false
		case "i", "my", "me", "we", "our", "us", "i'm", "mine":
			person[s] = true
		}
	}
	last := int32(-1)
	if len(f.words) > 0 {
		last = f.words[len(f.words)-1].sent
	}
	for s := range out {
		out[s] = out[s] && (person[s] || greeting[s]) && int32(s) != last
	}
	return out
}

func unpartneredEntity(a *Prompt, m [][]int, free []bool) bool {
	for i, js := range m {
		if len(js) == 0 && !free[i] && a.content[i].entity {
			return true
		}
	}
	return false
}

func (g *Rules) typoPair(x string, lx *lexWord, y string, ly *lexWord) bool {
	if abbreviates(x, lx, y) || abbreviates(y, ly, x) {
		return true
	}
	if !typoDistance(x, y) {
		return false
	}
	if !lx.known || !ly.known {
		return true
	}
	return realWordTypo(lx.freq, ly.freq)
}

// realWordTypo: two dictionary words are a typo of each other only when
// one is rare (fewer than 100 of SUBTLEX's 51 million words, about two per
// million) and the other at least 100 times as frequent ("wether" for
// "whether"); "bake" and "take" are both words in use.
func realWordTypo(f1, f2 uint32) bool {
	hi, lo := max(f1, f2), min(f1, f2)
	return lo < 100 && uint64(hi) >= 100*uint64(max(lo, 1))
}

// abbreviates reports whether x, not a dictionary word, is a clipped
// form of y: "env" for "environment", "dinos" for "dinosaurs".
func abbreviates(x string, lx *lexWord, y string) bool {
	if lx.known || len(x) < 3 || len(y) < len(x)+2 {
		return false
	}
	if strings.HasPrefix(y, x) {
		return true
	}
	x = strings.TrimSuffix(x, "s")
	return len(x) >= 3 && strings.HasPrefix(y, x)
}

// typo is typoPair against a word that is not a content word (whose
// frequency is looked up here).
func (g *Rules) typo(x string, known bool, freq uint32, y string) bool {
	if !typoDistance(x, y) {
		return false
	}
	if !known || !g.lex.Known(y) {
		return true
	}
	return realWordTypo(freq, g.lex.Freq(y))
}

// typoDistance: the optimal string alignment distance is at most 1, or 2
// when both words have at least 7 letters; words under 4 letters never
// count (too many real words lie one edit apart).
func typoDistance(x, y string) bool {
	n, m := len(x), len(y)
	if x == y || n < 3 || m < 3 {
		return false
	}
	if n < 4 || m < 4 {
		// Short words: only two swapped neighbours ("hwo" for "how").
		return n == m && transposed(x, y)
	}
	limit := 1
	if n >= 7 && m >= 7 {
		limit = 2
	}
	if n-m > limit || m-n > limit {
		return false
	}
	return osa(x, y, limit) <= limit
}

// transposed reports whether y is x with two adjacent letters swapped.
func transposed(x, y string) bool {
	for i := 0; i+1 < len(x); i++ {
		if x[i] != y[i] {
			return x[i] == y[i+1] && x[i+1] == y[i] && x[i+2:] == y[i+2:]
		}
	}
	return false
}

// osa is the optimal string alignment distance of x and y (bytes), cut off
// above limit (it returns limit+1 once the distance must exceed it).
func osa(x, y string, limit int) int {
	n, m := len(x), len(y)
	if m > 63 || n > 63 {
		if x == y {
			return 0
		}
		return limit + 1
	}
	var prev2, prev, cur [64]int
	for j := 0; j <= m; j++ {
		prev[j] = j
	}
	for i := 1; i <= n; i++ {
		cur[0] = i
		best := cur[0]
		for j := 1; j <= m; j++ {
			cost := 1
			if x[i-1] == y[j-1] {
				cost = 0
			}
			v := min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && x[i-1] == y[j-2] && x[i-2] == y[j-1] {
				v = min(v, prev2[j-2]+1)
			}
			cur[j] = v
			best = min(best, v)
		}
		if best > limit {
			return limit + 1
		}
		prev2, prev = prev, cur
	}
	return prev[m]
}

func intersects(a, b []lexicon.Word) bool {
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch {
		case a[i] == b[j]:
			return true
		case a[i] < b[j]:
			i++
		default:
			j++
		}
	}
	return false
}

// opposites refuses a pair where a word without a partner on one side is
// the opposite of a word without a partner on the other: a WordNet
// antonym, a pair of the guard's own list, or the same word with a
// negative prefix ("legal"/"illegal").
func (g *Rules) opposites(a, b *Prompt, al *alignment) string {
	if antonym(&a.f, &b.f) {
		return "antonym: opposite words"
	}
	for i, js := range al.ab {
		if len(js) > 0 || al.freeA[i] {
			continue
		}
		x := &a.content[i]
		xs := a.f.words[x.w].base
		for k, is := range al.ba {
			if len(is) > 0 || al.freeB[k] {
				continue
			}
			y := &b.content[k]
			ys := b.f.words[y.w].base
			if intersects(x.antonyms, y.lemmas) || intersects(y.antonyms, x.lemmas) || negPrefixed(xs, ys) || negPrefixed(ys, xs) {
				return "antonym: opposite words"
			}
		}
	}
	return ""
}

// negPrefixed reports whether x is y with a negative prefix.
func negPrefixed(x, y string) bool {
	for _, p := range [...]string{"un", "non", "non-", "in", "im", "il", "ir", "dis"} {
		if len(y) >= 3 && strings.HasPrefix(x, p) && x[len(p):] == y {
			return true
		}
	}
	return false
}

// negScope reports a negated word of a none of whose matches in b is
// negated. A background sentence that has words the other prompt lacks is
// padding: its negations are counted by Decide, not scoped.
func negScope(a, b *Prompt, m [][]int, free []bool) bool {
	padSent := paddingSentences(a, m, free)
	for i, js := range m {
		if !a.content[i].negated || len(js) == 0 || padSent[a.f.words[a.content[i].w].sent] {
			continue
		}
		if !slices.ContainsFunc(js, func(j int) bool { return b.content[j].negated }) {
			return true
		}
	}
	return false
}

// roles reports a word of a governed by a direction marker ("to") all of
// whose matches in b are governed by another one ("from").
func roles(a, b *Prompt, m [][]int) bool {
	for i, js := range m {
		r := a.content[i].role
		if r == 0 || len(js) == 0 {
			continue
		}
		if !slices.ContainsFunc(js, func(j int) bool { rb := b.content[j].role; return rb == 0 || rb == r }) {
			return true
		}
	}
	return false
}

// particles reports a content word of a followed by a particle ("zoom
// in") whose partner in b is followed by another particle ("zoom out").
func particles(a, b *Prompt, m [][]int) bool {
	for i, js := range m {
		p := particleAfter(&a.f, a.content[i].w)
		if p == "" || len(js) == 0 {
			continue
		}
		if !slices.ContainsFunc(js, func(j int) bool { q := particleAfter(&b.f, b.content[j].w); return q == "" || q == p }) {
			return true
		}
	}
	return false
}

func particleAfter(f *features, w int32) string {
	n := f.words[w].next
	if n < 0 || !particleWords[f.words[n].base] {
		return ""
	}
	p := f.words[n].base
	// "in", "on", "over" and "through" are mostly prepositions: before an
	// article or a possessive they begin a phrase ("the desert in the
	// world"), they are no particle.
	if prepositionLike[p] {
		if m := f.words[n].next; m >= 0 && argGlue[f.words[m].base] {
			return ""
		}
	}
	return p
}

// order reports two clauses, one of each prompt holding the same words,
// where a marker of direction or role ("to", "from", "than", "vs", "of")
// takes a different argument: "convert X to Y" against "convert Y to X".
// Each clause of a is compared with the clause of b holding most of its
// words' matches; the k-th occurrence of a marker with the k-th.
func order(a, b *Prompt, al *alignment) bool {
	if len(b.f.words) == 0 || len(a.f.words) == 0 {
		return false
	}
	votes := make([]int, b.f.words[len(b.f.words)-1].clause+1)
	for ca := int32(0); ca <= a.f.words[len(a.f.words)-1].clause; ca++ {
		clear(votes)
		for i, js := range al.ab {
			if a.f.words[a.content[i].w].clause == ca {
				for _, j := range js {
					votes[b.f.words[b.content[j].w].clause]++
				}
			}
		}
		cb, best := int32(-1), 0
		for c, v := range votes {
			if v > best {
				cb, best = int32(c), v
			}
		}
		if cb >= 0 && swapped(inClause(a.marks, ca), inClause(b.marks, cb), al, corresponds(a, b, ca, cb, al)) {
			return true
		}
	}
	return false
}

// swapped compares the arguments of the k-th occurrence of each marker in
// ma with those of the k-th in mb: swapped when each side has an argument
// word matching none of the other side's, and every argument word matches
// something in the other prompt.
func swapped(ma, mb []marker, al *alignment, whole bool) bool {
	seen := map[uint8]int{}
	for _, x := range ma {
		k := seen[x.group]
		seen[x.group]++
		if len(x.args) == 0 {
			continue
		}
		// The marker of b with the same group after the same word ("noon
		// in Tokyo" / "noon in London"), else, when the two clauses hold
		// the same words, the k-th of the group.
		// When the head word comes back more than once ("host in 0 ...
		// host in 00"), the arguments are swapped only if they are with
		// every marker after one of its partners.
		var y *marker
		if x.head >= 0 {
			heads, swaps := 0, 0
			for i := range mb {
				if mb[i].group == x.group && mb[i].head >= 0 && slices.Contains(al.ab[x.head], mb[i].head) {
					heads++
					if len(mb[i].args) > 0 && stray(x.args, mb[i].args, al.ab) && stray(mb[i].args, x.args, al.ba) {
						swaps++
					}
				}
			}
			if heads > 0 {
				if swaps == heads {
					return true
				}
				continue
			}
		}
		if whole {
			for i := range mb {
				if mb[i].group == x.group {
					if k == 0 {
						y = &mb[i]
						break
					}
					k--
				}
			}
		}
		if y == nil || len(y.args) == 0 {
			continue
		}
		if stray(x.args, y.args, al.ab) && stray(y.args, x.args, al.ba) {
			return true
		}
	}
	return false
}

// corresponds reports whether clause ca of a and clause cb of b hold the
// same words: every matched word of either has its matches in the other.
func corresponds(a, b *Prompt, ca, cb int32, al *alignment) bool {
	for i, js := range al.ab {
		if a.f.words[a.content[i].w].clause != ca {
			continue
		}
		for _, j := range js {
			if b.f.words[b.content[j].w].clause != cb {
				return false
			}
		}
	}
	for j, is := range al.ba {
		if b.f.words[b.content[j].w].clause != cb {
			continue
		}
		for _, i := range is {
			if a.f.words[a.content[i].w].clause != ca {
				return false
			}
		}
	}
	return true
}

// stray reports whether some word of xs matches no word of ys (but matches
// something): all unmatched words make it false, the pair is then not
// aligned anyway.
func stray(xs, ys []int, m [][]int) bool {
	found := false
	for _, i := range xs {
		if len(m[i]) == 0 {
			return false
		}
		if !slices.ContainsFunc(m[i], func(j int) bool { return slices.Contains(ys, j) }) {
			found = true
		}
	}
	return found
}

func inClause(ms []marker, clause int32) []marker {
	var out []marker
	for _, m := range ms {
		if m.clause == clause {
			out = append(out, m)
		}
	}
	return out
}

// marker is one occurrence of a direction or role marker in a clause and
// the content words of its argument (indexes in Prompt.content).
type marker struct {
	group  uint8
	at     int32
	clause int32
	head   int // the content word before it in the clause (index in Prompt.content), -1 if none
	args   []int
}

func markers(p *Prompt) []marker {
	var out []marker
	ws := p.f.words
	ci := 0 // index in p.content of the next content word
	for i := range ws {
		for ci < len(p.content) && p.content[ci].w < int32(i) {
			ci++
		}
		g, ok := markerGroups[ws[i].base]
		if !ok {
			continue
		}
		m := marker{group: g, at: int32(i), clause: ws[i].clause, head: -1}
		if ci > 0 && ws[p.content[ci-1].w].clause == ws[i].clause {
			m.head = ci - 1
		}
		// The argument: the content words that follow, until a function
		// word other than an article or possessive, or the clause's end.
		k := ci
		for j := ws[i].next; j >= 0; j = ws[j].next {
			if k < len(p.content) && p.content[k].w == j {
				m.args = append(m.args, k)
				k++
				continue
			}
			if len(m.args) == 0 && argGlue[ws[j].base] {
				continue
			}
			if len(m.args) > 0 && (ws[j].base == "and" || ws[j].base == "or") {
				continue // "for sleep and naps": both are the argument
			}
			break
		}
		// A chain of the same marker ("in 2024 in Berlin") is one
		// argument: its phrases may come in any order.
		if n := len(out); n > 0 && out[n-1].group == m.group && out[n-1].clause == m.clause && m.head >= 0 && slices.Contains(out[n-1].args, m.head) {
			out[n-1].args = append(out[n-1].args, m.args...)
			continue
		}
		out = append(out, m)
	}
	return out
}
