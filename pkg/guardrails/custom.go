package guardrails

import (
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
	"unicode/utf8"
)

// maxCustom caps the length of a custom match: a pattern whose matches may be
// longer (x+, x*, x{3,}) has longer matches ignored, so a stream never has to
// hold back more than this.
const maxCustom = 256

type regexDetector struct {
	name, kind string
	re         *regexp.Regexp
	maxLen     int
}

// Regex returns a detector for a custom RE2 pattern (Go regexp: linear time,
// no backtracking). name is lower-case [a-z0-9_] and becomes the placeholder
// word ("ticket" → "[TICKET_1]"). Matches longer than the pattern's own bound,
// or than 256 bytes for unbounded patterns, are ignored. Patterns that can
// match the empty string are refused.
func Regex(name, pattern string) (Detector, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, fmt.Errorf("guardrails: %s: %w", name, err)
	}
	if re.MatchString("") {
		return nil, fmt.Errorf("guardrails: %s: pattern matches the empty string", name)
	}
	parsed, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return nil, fmt.Errorf("guardrails: %s: %w", name, err)
	}
	n := maxWidth(parsed.Simplify())
	if n < 0 || n > maxCustom {
		n = maxCustom
	}
	return &regexDetector{name, strings.ToUpper(name), re, n}, nil
}

func checkName(name string) error {
	if name == "" || len(name) > 32 {
		return fmt.Errorf("guardrails: detector name %q must be 1-32 characters", name)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !(c >= 'a' && c <= 'z' || isDigit(c) || c == '_') {
			return fmt.Errorf("guardrails: detector name %q must be lower-case letters, digits and '_'", name)
		}
	}
	return nil
}

// maxWidth is the longest match in bytes of a simplified regexp, or -1 when
// unbounded.
func maxWidth(re *syntax.Regexp) int {
	switch re.Op {
	case syntax.OpLiteral:
		n := 0
		for _, r := range re.Rune {
			n += utf8.RuneLen(r)
		}
		if re.Flags&syntax.FoldCase != 0 {
			n = len(re.Rune) * utf8.UTFMax // folding may change the width
		}
		return n
	case syntax.OpCharClass, syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		return utf8.UTFMax
	case syntax.OpStar, syntax.OpPlus:
		return -1
	case syntax.OpQuest:
		return maxWidth(re.Sub[0])
	case syntax.OpRepeat:
		if re.Max < 0 {
			return -1
		}
		w := maxWidth(re.Sub[0])
		if w < 0 {
			return -1
		}
		return w * re.Max
	case syntax.OpCapture:
		return maxWidth(re.Sub[0])
	case syntax.OpConcat:
		n := 0
		for _, s := range re.Sub {
			w := maxWidth(s)
			if w < 0 {
				return -1
			}
			n += w
		}
		return n
	case syntax.OpAlternate:
		n := 0
		for _, s := range re.Sub {
			w := maxWidth(s)
			if w < 0 {
				return -1
			}
			n = max(n, w)
		}
		return n
	}
	return 0 // empty-width assertions
}

func (d *regexDetector) Name() string { return d.name }
func (d *regexDetector) Kind() string { return d.kind }

// MaxLen adds context for \b and other one-character assertions.
func (d *regexDetector) MaxLen() int { return d.maxLen + 2*utf8.UTFMax }

func (d *regexDetector) Find(dst []Span, s string) []Span {
	for _, m := range d.re.FindAllStringIndex(s, -1) {
		if m[1]-m[0] <= d.maxLen {
			dst = append(dst, Span{m[0], m[1], d.kind})
		}
	}
	return dst
}

type wordsDetector struct {
	name, kind string
	fold       bool
	byFirst    map[string][]string // first word (folded) → entries, longest first
	maxLen     int
}

// Words returns a detector for a list of words or phrases, matched on word
// boundaries (a word is a run of letters, digits, '_' or non-ASCII
// characters; phrases match with single spaces between their words). Lookup
// is one map probe per word of text, so hundreds of entries cost no more than
// a few. Entries must start and end with a word character.
func Words(name string, list []string, caseInsensitive bool) (Detector, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	d := &wordsDetector{name: name, kind: strings.ToUpper(name), fold: caseInsensitive, byFirst: map[string][]string{}}
	for _, w := range list {
		w = strings.Join(strings.Fields(w), " ")
		if w == "" || !isWord(w[0]) || !isWord(w[len(w)-1]) {
			return nil, fmt.Errorf("guardrails: %s: entry %q must start and end with a letter or digit", name, w)
		}
		if len(w) > maxCustom {
			return nil, fmt.Errorf("guardrails: %s: entry %q is longer than %d bytes", name, w[:32], maxCustom)
		}
		// keyed by its first word: where the text's word scan stops
		// ("bluebird" of "bluebird-project" or "bluebird project")
		first := w
		for i := 0; i < len(w); i++ {
			if !isWord(w[i]) {
				first = w[:i]
				break
			}
		}
		if caseInsensitive {
			first = strings.ToLower(first)
		}
		d.byFirst[first] = append(d.byFirst[first], w)
		d.maxLen = max(d.maxLen, len(w)*utf8.UTFMax) // folding may change widths
	}
	if len(d.byFirst) == 0 {
		return nil, errors.New("guardrails: " + name + ": empty word list")
	}
	for k, v := range d.byFirst {
		slices.SortFunc(v, func(a, b string) int { return len(b) - len(a) })
		d.byFirst[k] = slices.Compact(v)
	}
	return d, nil
}

func (d *wordsDetector) Name() string { return d.name }
func (d *wordsDetector) Kind() string { return d.kind }
func (d *wordsDetector) MaxLen() int  { return min(d.maxLen, maxCustom*utf8.UTFMax) + 2 }

func (d *wordsDetector) Find(dst []Span, s string) []Span {
	var low [64]byte
	i := 0
	for i < len(s) {
		if !isWord(s[i]) {
			i++
			continue
		}
		e := i
		for e < len(s) && isWord(s[e]) {
			e++
		}
		word := s[i:e]
		var cands []string
		if d.fold {
			if lw, ok := asciiLower(low[:], word); ok {
				cands = d.byFirst[string(lw)]
			} else {
				cands = d.byFirst[strings.ToLower(word)]
			}
		} else {
			cands = d.byFirst[word]
		}
		next := e
		for _, c := range cands {
			end, ok := d.matchAt(s, i, c)
			if ok {
				dst = append(dst, Span{i, end, d.kind})
				next = end
				break
			}
		}
		i = next
	}
	return dst
}

// asciiLower lowers word into buf when it is short ASCII, without allocating.
func asciiLower(buf []byte, word string) ([]byte, bool) {
	if len(word) > len(buf) {
		return nil, false
	}
	for i := 0; i < len(word); i++ {
		c := word[i]
		if c >= 0x80 {
			return nil, false
		}
		if isUpper(c) {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	return buf[:len(word)], true
}

// matchAt reports whether entry occurs at s[i:] followed by a word boundary.
func (d *wordsDetector) matchAt(s string, i int, entry string) (int, bool) {
	if !d.fold {
		end := i + len(entry)
		if end > len(s) || s[i:end] != entry || end < len(s) && isWord(s[end]) {
			return 0, false
		}
		return end, true
	}
	// case-folded: walk rune by rune, since folding can change byte widths
	j := i
	for _, r := range entry {
		if j >= len(s) {
			return 0, false
		}
		t, size := utf8.DecodeRuneInString(s[j:])
		if t != r && !strings.EqualFold(string(t), string(r)) {
			return 0, false
		}
		j += size
	}
	if j < len(s) && isWord(s[j]) {
		return 0, false
	}
	return j, true
}
