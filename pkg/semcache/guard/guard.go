// Package guard owns the semantic cache's decision over the text of two
// prompts: whether a cached answer to one may be served for the other.
// Sentence embeddings score near-misses ("capital of France" / "capital of
// Germany", "X to Y" / "Y to X") as high as paraphrases, so the cosine alone
// cannot decide. The guard aligns the prompts word by word and applies rules
// the embeddings cannot see. It reads text and its own lexicon (package
// lexicon, a table generated from WordNet) only: semcache consumes it
// through semcache.Checker, and cmd/server passes it in.
package guard

import (
	"errors"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/tollgate/tollgate/pkg/semcache/guard/lexicon"
)

// Rules decide whether a semantic candidate may be served: Prepare
// analyses a prompt once (the cache keeps the result with its entry) and
// Decide compares two prepared prompts. A decision is one of
//
//   - refused: a rule found a difference that changes the answer; the
//     candidate is never served, whatever its cosine;
//   - aligned: every content word of each prompt has a partner in the other;
//     the cosine only has to clear a low floor;
//   - uncertain: nothing refused the pair, but some content word has no
//     partner (a synonym the lexicon lacks, or a changed slot: "sort" /
//     "shuffle"); served only above a high threshold or after a judge.
//
// Words. A prompt is split into words, clauses (at , ; : and sentence ends)
// and sentences. Function words (articles, pronouns, auxiliaries, question
// words), greetings, thanks, fillers, slang and the verbs of a request
// ("explain", "tell me", "list": "Explain X." asks what "What is X?" asks)
// need no partner; every other word is a content word.
//
// Partners. A content word's partner is a content word of the other prompt
// with the same spelling or crude stem, a shared WordNet lemma (morphy with
// the exception lists: "geese"/"goose"), a WordNet link between lemmas
// within their first senses (synonym, similar-to, derivation, verb group,
// pertainym, also-see), a typo, or a clipped form ("env"/"environment"). A
// typo is an optimal-string-alignment distance of 1 (2 when both words have
// 7+ letters; for words of 3 letters only a swap of neighbours) where one
// word is not a dictionary word, or both are and one is rare (under about 2
// per million) and the other 100 times as frequent. A non-dictionary word
// that is a typo of a function word of the other prompt ("hwo") needs no
// partner. A word spelled the same on the other side is its only partner
// for the rules below.
//
// Rules that refuse, in order:
//   - script, language: the dominant Unicode script, or among Latin-script
//     prompts the language of the function words, differs;
//   - quoted, code, number: the quoted strings, the code-like tokens and
//     anything else holding a digit ("2+2", "9x13"), or the quantities (a
//     number with its unit or currency: "5 km" equals "5 kilometres", not "5
//     miles"; "/24" is a prefix length) differ as multisets;
//   - negation: the prompts hold a different number of negations outside
//     hedges ("I don't know how to", "not sure"), or a negated word's
//     partner is not negated ("the card wasn't charged" / "the order didn't
//     go through");
//   - question: the question words ask for different things (why, when,
//     where, who, how, how much/long/many);
//   - entity: a name (an acronym, a CamelCase word, a capitalised word inside
//     a sentence, an acronym spelled like a function word: "US") has no
//     partner;
//   - antonym: two words without partners are opposites (a WordNet antonym,
//     a pair of the guard's list, or a negative prefix: "legal"/"illegal");
//   - particle: a word's partner is followed by another particle ("zoom
//     in"/"zoom out");
//   - order: a word governed by a direction marker (to, into, from, than,
//     vs) is governed by another in the other prompt ("transfer my number to
//     / from another carrier"), or, clause by clause (each clause of one
//     prompt against the clause of the other holding most of its partners),
//     the k-th occurrence of a marker (to, from, than, vs, over, of,
//     instead, by, for, with, in) takes an argument whose words match none
//     of the other's ("from English to German" / "from German to English").
//
// Background. A prompt may add sentences that only tell the asker's
// situation: statements (no question mark) in the first person or opening
// with a greeting, not starting with a request verb, not addressing "you",
// not the last sentence, and holding no number, code or name. When every
// content word one prompt lacks lies in such sentences and the other prompt
// has no word without a partner, the pair is aligned ("Hi! The kids want
// pancakes. How do I make them fluffy?" / "How do I make pancakes
// fluffy?"); negations inside that padding are not counted.
//
// Decide is symmetric in its verdict and pure; its reason names the rule,
// never the prompts' words (it reaches response headers and logs). Without
// the lexicon (Degraded) only same spellings and stems partner, so only
// prompts with the same content words align.
//
// Cost (BenchmarkDecide, shared 2-core machine): Decide 1-2 µs and under 10
// allocations for two prepared 10-15 word prompts, ~120 µs for two
// 108-word prompts of repeated words; Prepare 4-30 µs per prompt.
type Rules struct {
	lex    *lexicon.Lexicon // nil: degraded, no lemmas, links or typos
	lexErr error
}

// New returns the rules with the shipped defaults.
func New() *Rules {
	lex, err := lexicon.Default()
	return &Rules{lex: lex, lexErr: err}
}

// WithLexicon returns rules over the given lexicon (nil: degraded).
func WithLexicon(lex *lexicon.Lexicon) *Rules { return &Rules{lex: lex} }

// Degraded says why the rules work without their lexicon (nil when they
// have it). Without it a word's only partner is the same word or stem, so
// only prompts with the same content words align; cmd/server logs this
// loudly.
func (g *Rules) Degraded() error {
	if g.lex == nil && g.lexErr == nil {
		return errors.New("guard: no lexicon")
	}
	return g.lexErr
}

// word is one word of a prompt: its stem and whether it carries content.
type word struct {
	base, stem string // lower case without clitic; crude stem
	content    bool
	neg        bool  // a negation ("not", "don't", "without")
	literal    bool  // a number or code, compared by the hard rules: it only takes part in the order rules
	clause     int32 // index of the clause (split at , ; : and sentence ends)
	sent       int32 // index of the sentence
	next       int32 // index in words of the following word (-1: none in the clause)
}

// features is what the guard reads off one prompt.
type features struct {
	words      []word
	quotes     []string
	code       []string
	quantities []string
	entities   []int // indexes in words
	script     script
	lang       string
	clause     int32  // the clause being read
	sent       int32  // the sentence being read
	asks       []bool // by sentence: it holds a question mark
	specific   []bool // by sentence: it holds a number, code or a name
}

func (f *features) has(stem string) bool {
	for _, w := range f.words {
		if w.stem == stem {
			return true
		}
	}
	return false
}

func (f *features) parse(s string) {
	f.script = dominantScript(s)
	f.quotes, f.code = quoted(s)
	f.tokens(s)
	if f.script == scriptLatin {
		f.lang = language(f.words)
	}
}

// tokens splits s into words and reads numbers, units, code, entities and
// negations off them.
func (f *features) tokens(s string) {
	raw := splitCompounds(strings.Fields(s))
	f.words = make([]word, 0, len(raw))
	titled, capped, letters := 0, 0, 0
	for _, r := range raw {
		c, _ := utf8.DecodeRuneInString(trimLeft(r))
		if unicode.IsLetter(c) {
			letters++
			if unicode.IsUpper(c) {
				titled++
			}
			if isAllCaps(trimLeft(r)) {
				capped++
			}
		}
	}
	// Capitals carry no information in Title Case or ALL CAPS text.
	titleCase := letters >= 3 && titled*10 >= letters*7
	allCaps := letters >= 3 && capped*10 >= letters*7
	sentenceStart := true
	pendingNum := -1 // index in quantities of a number a unit may follow
	var num numberWords2
	prevBreak, prevEnd := false, false
	f.asks = append(f.asks[:0], false)
	f.specific = append(f.specific[:0], false)
	for i, r := range raw {
		if prevBreak {
			f.clause++
		}
		if prevEnd {
			f.sent++
			f.asks = append(f.asks, false)
			f.specific = append(f.specific, false)
		}
		tok, end := trimToken(r)
		prevBreak = end || clauseBreak(r)
		prevEnd = end
		if strings.ContainsRune(r, '?') {
			f.asks[f.sent] = true
		}
		if tok == "" {
			if end {
				sentenceStart = true
			}
			pendingNum = -1
			num.flush(f, &pendingNum)
			continue
		}
		initial := sentenceStart
		sentenceStart = end
		lower := strings.ToLower(tok)
		// Number words, possibly several ("two hundred", "twenty-one").
		if v, ok := numberWord(lower); ok {
			num.add(v)
			if end || i == len(raw)-1 {
				num.flush(f, &pendingNum)
			}
			f.add(word{base: lower, stem: lower})
			continue
		}
		num.flush(f, &pendingNum)
		if pendingNum >= 0 {
			if u, ok := units[lower]; ok && (len(lower) > 1 || !isASCIILetter(lower[0])) && lower != "in" {
				f.quantities[pendingNum] += u
				pendingNum = -1
				f.add(word{base: lower, stem: lower})
				continue
			}
		}
		pendingNum = -1
		if q, ok := quantity(tok); ok {
			f.quantities = append(f.quantities, q)
			f.specific[f.sent] = true
			f.add(literal("#" + q[:strings.IndexByte(q, '|')]))
			if strings.HasSuffix(q, "|") {
				pendingNum = len(f.quantities) - 1
			}
			if end {
				pendingNum = -1
			}
			continue
		}
		if u, ok := units[lower]; ok && utf8.RuneCountInString(lower) == 1 && !isASCIILetter(lower[0]) {
			// A currency symbol on its own: "in $" against "in €".
			f.quantities = append(f.quantities, "|"+u)
			f.specific[f.sent] = true
			continue
		}
		if isCode(tok) || strings.ContainsAny(tok, "0123456789") {
			// Anything else holding a digit ("2+2", "1/2", "3x") is compared
			// exactly, like code.
			f.code = append(f.code, tok)
			f.specific[f.sent] = true
			f.add(literal("`" + tok))
			continue
		}
		base, neg := contraction(lower)
		if b, ok := bareContractions[base]; ok {
			base = b
		}
		st := stem(base)
		content := !stopWords[base] && !neg && !negations[base] && st != "" && hasLetter(base)
		// An acronym spelled like a function word ("US", "IT") is a name.
		acronym := !allCaps && stopWords[base] && len(tok) >= 2 && isAllCaps(tok) && !negations[base]
		if acronym {
			content = true
		}
		f.add(word{base: base, stem: st, content: content, neg: neg || negations[base]})
		if acronym || (!allCaps && isEntity(tok, initial, titleCase) && !stopWords[base]) {
			f.entities = append(f.entities, len(f.words)-1)
			f.specific[f.sent] = true
		}
	}
	num.flush(f, &pendingNum)
}

// splitCompounds splits hyphenated chunks into their parts: a number glued
// to words ("5-year-old", "55-inch") is read as a quantity with its unit,
// and a compound of words ("cast-iron") aligns with the same words written
// apart. Compounds with a one-letter part ("x-ray") stay whole. The last
// part keeps the chunk's trailing punctuation.
func splitCompounds(raw []string) []string {
	var out []string
	for i, r := range raw {
		tok, _ := trimToken(r)
		_, number := numberWord(strings.ToLower(tok))
		if !strings.Contains(r, "-") || !hasLetter(r) || strings.HasPrefix(r, "-") || number {
			if out != nil {
				out = append(out, r)
			}
			continue
		}
		parts := strings.Split(r, "-")
		digits, short := false, false
		for _, p := range parts {
			if q := strings.TrimLeft(p, "([{\"'“‘$€£"); q != "" && isDigit(q[0]) {
				digits = true
			}
			if len(strings.Trim(p, "([{\"'“‘)]}.,;:!?")) < 2 {
				short = true
			}
		}
		// "cast-iron" is "cast iron"; "x-ray", "e-mail" and "t-shirt" stay
		// whole.
		if !digits && short {
			if out != nil {
				out = append(out, r)
			}
			continue
		}
		if out == nil {
			out = append(make([]string, 0, len(raw)+4), raw[:i]...)
		}
		for _, p := range parts {
			if p != "" {
				out = append(out, p)
			}
		}
	}
	if out == nil {
		return raw
	}
	return out
}

// literal is the word a number or a code token stands as.
func literal(s string) word { return word{base: s, stem: s, content: true, literal: true} }

// add appends a word to the clause being read.
func (f *features) add(w word) {
	w.clause, w.sent, w.next = f.clause, f.sent, -1
	if n := len(f.words); n > 0 && f.words[n-1].clause == f.clause {
		f.words[n-1].next = int32(n)
	}
	f.words = append(f.words, w)
}

// clauseBreak reports whether a whitespace-separated chunk ends its clause:
// a comma, semicolon, colon or sentence end after it.
func clauseBreak(r string) bool {
	r = strings.TrimRight(r, ")]}\"'”’`*")
	if r == "" {
		return false
	}
	c, _ := utf8.DecodeLastRuneInString(r)
	return strings.ContainsRune(",;:.!?…", c)
}

// numberWords2 accumulates consecutive number words into one value.
type numberWords2 struct {
	total, cur int64
	any        bool
}

func (n *numberWords2) add(v int64) {
	n.any = true
	switch {
	case v == 100:
		if n.cur == 0 {
			n.cur = 1
		}
		n.cur *= v
	case v >= 1000:
		if n.cur == 0 {
			n.cur = 1
		}
		n.total += n.cur * v
		n.cur = 0
	default:
		n.cur += v
	}
}

func (n *numberWords2) flush(f *features, pending *int) {
	if !n.any {
		return
	}
	f.quantities = append(f.quantities, strconv.FormatInt(n.total+n.cur, 10)+"|")
	f.specific[f.sent] = true
	*pending = len(f.quantities) - 1
	*n = numberWords2{}
}

// numberWord reads "three", "twenty-one", "a dozen"'s "dozen".
func numberWord(s string) (int64, bool) {
	if v, ok := numberWords[s]; ok {
		return v, true
	}
	if i := strings.IndexByte(s, '-'); i > 0 {
		t, ok1 := numberWords[s[:i]]
		u, ok2 := numberWords[s[i+1:]]
		if ok1 && ok2 && t >= 20 && t < 100 && u < 10 {
			return t + u, true
		}
		if ok1 && s[i+1:] == "one" && t >= 20 && t < 100 {
			return t + 1, true
		}
	}
	return 0, false
}

// quantity reads a written number with its optional currency prefix, sign,
// version prefix and glued unit suffix: "$5", "-3", "v1.2", "5km", "50%",
// "1,000", "2024-05-01", "10:30". It returns "number|unit" with the unit
// empty when none is glued.
func quantity(tok string) (string, bool) {
	unit := ""
	s := tok
	for _, sym := range [...]string{"$", "€", "£", "¥", "₹"} {
		if strings.HasPrefix(s, sym) {
			unit = units[sym]
			s = s[len(sym):]
			break
		}
	}
	sign := ""
	if strings.HasPrefix(s, "-") || strings.HasPrefix(s, "+") {
		sign, s = s[:1], s[1:]
		if sign == "+" {
			sign = ""
		}
	}
	if unit == "" && len(s) > 1 && (s[0] == 'v' || s[0] == 'V') && isDigit(s[1]) {
		s = s[1:]
	}
	if unit == "" && len(s) > 1 && (s[0] == '/' || s[0] == '#') && isDigit(s[1]) {
		// A prefix length or a number sign: "/24", "#3".
		unit, s = s[:1], s[1:]
	}
	if s == "" || !isDigit(s[0]) {
		return "", false
	}
	i := 0
	for i < len(s) && (isDigit(s[i]) || (strings.IndexByte(".,:/-", s[i]) >= 0 && i+1 < len(s) && isDigit(s[i+1]))) {
		i++
	}
	n, rest := s[:i], s[i:]
	if rest != "" {
		u, ok := units[strings.ToLower(rest)]
		if !ok || unit != "" {
			return "", false // "mp3"-like or "$5k"... leave it to the code rule
		}
		unit = u
	}
	if thousands(n) {
		n = strings.ReplaceAll(n, ",", "")
	}
	return sign + n + "|" + unit, true
}

// thousands reports whether n is written with comma thousands separators.
func thousands(n string) bool {
	parts := strings.Split(n, ",")
	if len(parts) < 2 || len(parts[0]) == 0 || len(parts[0]) > 3 {
		return false
	}
	for _, p := range parts[1:] {
		if len(p) < 3 || !isDigit(p[0]) || !isDigit(p[1]) || !isDigit(p[2]) || (len(p) > 3 && p[3] != '.') {
			return false
		}
	}
	return true
}

// contraction strips an English clitic ("what's", "I'm", "we'll") and says
// whether it was a negation ("don't", "can't", "won't").
func contraction(s string) (string, bool) {
	if strings.HasSuffix(s, "n't") {
		base := s[:len(s)-3]
		switch base {
		case "ca":
			base = "can"
		case "wo":
			base = "will"
		case "sha":
			base = "shall"
		}
		return base, true
	}
	for _, c := range [...]string{"'s", "'re", "'ve", "'ll", "'d", "'m"} {
		if strings.HasSuffix(s, c) && len(s) > len(c) {
			return s[:len(s)-len(c)], false
		}
	}
	if strings.HasSuffix(s, "s'") && len(s) > 2 { // plural possessive
		return s[:len(s)-1], false
	}
	return s, false
}

// stem is a deliberately crude suffix stripper used only to compare words:
// it maps "calories" and "calorie", "boiling" and "boil", "cats" and "cat"
// to one form. Words of three letters or fewer are kept.
func stem(s string) string {
	if len(s) <= 3 {
		return s
	}
	switch {
	case strings.HasSuffix(s, "ies") && len(s) > 4:
		s = s[:len(s)-3] + "i"
	case strings.HasSuffix(s, "sses"):
		s = s[:len(s)-2]
	case strings.HasSuffix(s, "ss") || strings.HasSuffix(s, "us") || strings.HasSuffix(s, "is"):
	case strings.HasSuffix(s, "s"):
		s = s[:len(s)-1]
	}
	switch {
	case strings.HasSuffix(s, "ing") && len(s) > 5:
		s = s[:len(s)-3]
	case strings.HasSuffix(s, "ed") && len(s) > 4:
		s = s[:len(s)-2]
	}
	if n := len(s); n > 3 && s[n-1] == s[n-2] && strings.IndexByte("bdgmnprt", s[n-1]) >= 0 {
		s = s[:n-1] // "running" → "run"
	}
	if n := len(s); n > 3 && (s[n-1] == 'e' || s[n-1] == 'y') {
		s = s[:n-1]
	}
	if n := len(s); n > 3 && s[n-1] == 'i' {
		s = s[:n-1]
	}
	return s
}

// isEntity: an acronym or ALLCAPS word, a CamelCase word, or a capitalised
// word that does not start a sentence (in normal, not Title Case, text).
func isEntity(tok string, initial, titleCase bool) bool {
	c, _ := utf8.DecodeRuneInString(tok)
	if !unicode.IsUpper(c) {
		return false
	}
	letters := 0
	for _, r := range tok {
		if unicode.IsLetter(r) {
			letters++
		}
	}
	if letters >= 2 && isAllCaps(tok) {
		return true
	}
	if isCamel(tok) {
		return true
	}
	return !initial && !titleCase && letters >= 2
}

func isAllCaps(s string) bool {
	n := 0
	for _, r := range s {
		if unicode.IsLower(r) {
			return false
		}
		if unicode.IsUpper(r) {
			n++
		}
	}
	return n >= 2
}

// isCamel: an upper-case letter after a lower-case one inside the word
// ("JavaScript", "iPhone", "getUser").
func isCamel(s string) bool {
	prevLower := false
	for _, r := range s {
		if unicode.IsUpper(r) && prevLower {
			return true
		}
		prevLower = unicode.IsLower(r)
	}
	return false
}

// isCode recognises identifiers, file names, paths and codes.
func isCode(tok string) bool {
	c, _ := utf8.DecodeRuneInString(tok)
	hasL, hasD, hasOther := false, false, false
	for i := 0; i < len(tok); i++ {
		b := tok[i]
		switch {
		case isASCIILetter(b):
			hasL = true
		case isDigit(b):
			hasD = true
		case b != '\'' && b != '-':
			hasOther = true
		}
	}
	switch {
	case !hasL && !hasD:
		return false
	case !hasD && !hasOther && !isCamel(tok):
		return false // a plain word: the common case
	case strings.Contains(tok, "_") && hasL:
		return true // snake_case, SCREAMING_CASE, __init__
	case unicode.IsLower(c) && isCamel(tok):
		return true // camelCase, iPhone
	case strings.HasPrefix(tok, ".") && hasL:
		return true // .py, .env
	case strings.ContainsAny(tok, "/\\") && hasL:
		return true // paths, URLs
	case strings.Contains(tok, "()") || strings.Contains(tok, "::") || strings.Contains(tok, "->") || strings.Contains(tok, "="):
		return true
	case strings.HasPrefix(tok, "0x") || strings.HasPrefix(tok, "0X"):
		return true
	case hasL && hasD && !strings.ContainsAny(tok, "'’-"):
		return true // E1234, x86, utf8, mp3, h264
	}
	if i := strings.IndexByte(tok, '.'); i > 0 && i < len(tok)-1 {
		// dotted.names and file.names, not abbreviations like "e.g" or "U.S".
		for _, p := range strings.Split(tok, ".") {
			if len(p) > 1 {
				return true
			}
		}
	}
	return false
}

// trimToken strips the punctuation around a whitespace-separated chunk and
// says whether the chunk ends a sentence.
func trimToken(r string) (tok string, end bool) {
	tok = trimLeft(r)
	for tok != "" {
		c, size := utf8.DecodeLastRuneInString(tok)
		if c == ')' && strings.HasSuffix(tok, "()") {
			break // a call: flush()
		}
		if !strings.ContainsRune(")]}\"'”’`,.;:!?>…*", c) {
			break
		}
		if c == '.' || c == '!' || c == '?' || c == '…' || c == ':' {
			end = true
		}
		if c == '\'' || c == '’' {
			// Keep the plural possessive "dogs'" but drop a closing quote.
			// The apostrophe may be 3 bytes (’): read the runes before it,
			// not the bytes.
			before := tok[:len(tok)-size]
			p, _ := utf8.DecodeLastRuneInString(before)
			if strings.Count(tok, "'")+strings.Count(tok, "’") == 1 && utf8.RuneCountInString(before) >= 2 && p == 's' {
				break
			}
		}
		tok = tok[:len(tok)-size]
	}
	if tok == "-" || tok == "—" || tok == "–" {
		return "", end
	}
	tok = strings.ReplaceAll(tok, "’", "'")
	return tok, end
}

func trimLeft(r string) string {
	return strings.TrimLeftFunc(r, func(c rune) bool {
		return strings.ContainsRune("([{\"'“‘`<*¿¡", c)
	})
}

// quoted returns the contents of the quoted spans of s (normalised) and of
// its backticked spans (exact, they are code).
func quoted(s string) (quotes, code []string) {
	for i := 0; i < len(s); {
		c, size := utf8.DecodeRuneInString(s[i:])
		var closers string
		switch c {
		case '"':
			closers = "\""
		case '“':
			closers = "”\""
		case '`':
			closers = "`"
		case '\'', '‘':
			// An apostrophe inside a word ("France's") is not a quote.
			if i > 0 {
				p, _ := utf8.DecodeLastRuneInString(s[:i])
				if unicode.IsLetter(p) || unicode.IsDigit(p) {
					break
				}
			}
			closers = "'’"
		}
		if closers == "" {
			i += size
			continue
		}
		j := closingQuote(s, i+size, closers, c == '\'' || c == '‘')
		if j < 0 {
			i += size
			continue
		}
		body := s[i+size : j]
		_, csize := utf8.DecodeRuneInString(s[j:])
		if c == '`' {
			if t := strings.Trim(body, "` "); t != "" {
				code = append(code, t)
			}
		} else if t := normQuote(body); t != "" {
			quotes = append(quotes, t)
		}
		i = j + csize
	}
	return quotes, code
}

// closingQuote finds the quote closing one opened before from; a single
// quote closes only where it is not an apostrophe (not followed by a letter).
func closingQuote(s string, from int, closers string, single bool) int {
	for j := from; j < len(s); {
		c, size := utf8.DecodeRuneInString(s[j:])
		if strings.ContainsRune(closers, c) {
			if !single {
				return j
			}
			n, _ := utf8.DecodeRuneInString(s[j+size:])
			if j+size == len(s) || !(unicode.IsLetter(n) || unicode.IsDigit(n)) {
				if j > from {
					return j
				}
			}
		}
		j += size
	}
	return -1
}

func normQuote(s string) string {
	s = strings.ToLower(strings.Join(strings.Fields(s), " "))
	return strings.TrimRight(s, ".,;:!? ")
}

// antonym reports a word x of a whose opposite y is in b while a lacks y
// and b lacks x (the guard's own list). Looking the opposites up from a's
// words covers both directions of every pair, so the answer is symmetric.
// The reason it leads to names no words, so it returns none.
func antonym(a, b *features) bool {
	for _, w := range a.words {
		for _, o := range antonyms[w.stem] {
			if b.has(o) && !b.has(w.stem) && !a.has(o) {
				return true
			}
		}
	}
	return false
}

// language guesses the language of a Latin-script prompt from its
// function words; "" when unsure.
func language(words []word) string {
	var hits [len(langNames)]int
	for _, w := range words {
		m := langWords[w.base]
		for i := range hits {
			if m&(1<<i) != 0 {
				hits[i]++
			}
		}
	}
	best, second := -1, 0
	for i, h := range hits {
		if best < 0 || h > hits[best] {
			if best >= 0 {
				second = hits[best]
			}
			best = i
		} else if h > second {
			second = h
		}
	}
	if hits[best] < 2 || hits[best] == second {
		return ""
	}
	return langNames[best]
}

type script uint8

const (
	scriptNone script = iota
	scriptLatin
	scriptCyrillic
	scriptGreek
	scriptArabic
	scriptHebrew
	scriptDevanagari
	scriptThai
	scriptHangul
	scriptKana
	scriptHan
	scriptOther
)

func (s script) String() string {
	return [...]string{"none", "Latin", "Cyrillic", "Greek", "Arabic", "Hebrew", "Devanagari", "Thai", "Hangul", "Kana", "Han", "other"}[s]
}

// scriptTables are the scripts told apart, in the order of script.
var scriptTables = [...]struct {
	s     script
	table *unicode.RangeTable
}{
	{scriptLatin, unicode.Latin}, {scriptCyrillic, unicode.Cyrillic},
	{scriptGreek, unicode.Greek}, {scriptArabic, unicode.Arabic},
	{scriptHebrew, unicode.Hebrew}, {scriptDevanagari, unicode.Devanagari},
	{scriptThai, unicode.Thai}, {scriptHangul, unicode.Hangul},
	{scriptKana, unicode.Hiragana}, {scriptKana, unicode.Katakana},
	{scriptHan, unicode.Han},
}

// dominantScript is the script of most of s's letters. Japanese mixes Kana
// and Han: any Kana makes a Han-dominant prompt Kana.
func dominantScript(s string) script {
	var n [scriptOther + 1]int
	for _, r := range s {
		if r < utf8.RuneSelf {
			if isASCIILetter(byte(r)) {
				n[scriptLatin]++
			}
			continue
		}
		if !unicode.IsLetter(r) {
			continue
		}
		found := scriptOther
		for _, t := range scriptTables {
			if unicode.Is(t.table, r) {
				found = t.s
				break
			}
		}
		n[found]++
	}
	best := scriptNone
	for s := scriptLatin; s <= scriptOther; s++ {
		if n[s] > n[best] {
			best = s
		}
	}
	if best == scriptHan && n[scriptKana] > 0 {
		best = scriptKana
	}
	return best
}

func isDigit(b byte) bool       { return b >= '0' && b <= '9' }
func isASCIILetter(b byte) bool { return b|0x20 >= 'a' && b|0x20 <= 'z' }

func hasLetter(s string) bool {
	for _, r := range s {
		if unicode.IsLetter(r) {
			return true
		}
	}
	return false
}
