package tokens

import (
	"math/bits"
	"unicode/utf8"
)

// The pre-tokenizers below split text exactly as tiktoken's regexes do, by
// hand, in one forward pass with no backtracking and no allocation. They are
// the reason counting is fast: tiktoken-go spends most of its time in a
// backtracking regex engine run over a []rune copy of the text.
//
// cl100k_base:
//
//	(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//
// o200k_base (one alternative per line):
//
//	[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?
//	[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?
//	\p{N}{1,3}
//	 ?[^\s\p{L}\p{N}]+[\r\n/]*
//	\s*[\r\n]+
//	\s+(?!\S)
//	\s+
//
// Each next* function returns the end of the piece that starts at s[i]
// (i < len(s), s valid UTF-8). Every alternative is resolved the way a
// leftmost-first backtracking engine resolves it; the comments say how.

// contraction returns the length of the (?i:'s|'t|'re|'ve|'m|'ll|'d) match at
// s[i], or 0. Only ASCII letters fold to these letters under unicode.ToLower
// (which is what regexp2 compares with), so an ASCII fold is exact.
func contraction(s string, i int) int {
	if i+1 >= len(s) || s[i] != '\'' {
		return 0
	}
	switch s[i+1] | 0x20 {
	case 's', 't', 'm', 'd':
		return 2
	case 'r', 'v':
		if i+2 < len(s) && s[i+2]|0x20 == 'e' {
			return 3
		}
	case 'l':
		if i+2 < len(s) && s[i+2]|0x20 == 'l' {
			return 3
		}
	}
	return 0
}

// runWhile returns the end of the run of runes from s[i] whose class has any
// bit of mask.
func runWhile(s string, i int, mask uint8) int {
	for i < len(s) {
		c, w := classAt(s, i)
		if c&mask == 0 {
			break
		}
		i += w
	}
	return i
}

// runPunct returns the end of the run of [^\s\p{L}\p{N}] from s[i].
func runPunct(s string, i int) int {
	for i < len(s) {
		c, w := classAt(s, i)
		if c&(clsL|clsN|clsS) != 0 {
			break
		}
		i += w
	}
	return i
}

// digits returns the end of \p{N}{1,3} whose first rune (width w) is at s[i].
func digits(s string, i, w int) int {
	i += w
	for k := 0; k < 2; k++ {
		c, w := classAt(s, i)
		if c&clsN == 0 {
			break
		}
		i += w
	}
	return i
}

// whitespace resolves \s*[\r\n]+|\s+(?!\S)|\s+ at s[i], a whitespace rune.
//   - \s*[\r\n]+: the greedy \s* backs off to the last newline of the run,
//     so the piece ends just after it;
//   - \s+(?!\S): the run minus its last rune when a non-space follows (the
//     whole run at the end of the text);
//   - \s+: a single whitespace rune before a non-space.
func whitespace(s string, i int) int {
	j, last, lastNL := i, i, -1
	for j < len(s) {
		c, w := classAt(s, j)
		if c&clsS == 0 {
			break
		}
		if c&clsNL != 0 {
			lastNL = j
		}
		last = j
		j += w
	}
	switch {
	case lastNL >= 0:
		return lastNL + 1 // \r and \n are one byte
	case j == len(s) || last == i:
		return j
	}
	return last
}

// asciiPrefix marks the ASCII bytes of [^\r\n\p{L}\p{N}], the optional
// prefix rune of a letter piece.
var asciiPrefix = func() (t [256]bool) {
	for b := range byte(utf8.RuneSelf) {
		letter := 'a' <= b|0x20 && b|0x20 <= 'z'
		t[b] = !letter && !('0' <= b && b <= '9') && b != '\r' && b != '\n'
	}
	return t
}()

// asciiLetters is the fast path of a letter piece at s[i] (most chat text
// is ASCII words with their leading space, which it splits without decoding
// runes or trying the regex's alternatives one by one): an optional
// ASCII prefix byte, then ASCII letters; for o200k ([A-Z]*[a-z]* with a
// contraction, what both letter alternatives match on ASCII: U and W share
// no ASCII letter) or cl100k ([A-Za-z]+). It returns the end of the piece,
// or 0 when the piece does not start that way or its letters run into a
// non-ASCII byte (which may continue them): the general path decides then.
func asciiLetters(s string, i int, o200k bool) int {
	j := i
	if b := s[j]; b|0x20-'a' >= 26 { // not an ASCII letter
		if !asciiPrefix[b] || j+1 == len(s) || s[j+1]|0x20-'a' >= 26 {
			return 0
		}
		j++
	}
	if o200k {
		for j < len(s) && s[j]-'A' < 26 {
			j++
		}
		j = lowerRun(s, j)
	} else {
		for j < len(s) && s[j]|0x20-'a' < 26 {
			j++
		}
	}
	if j < len(s) && s[j] >= utf8.RuneSelf {
		return 0
	}
	if o200k {
		j += contraction(s, j)
	}
	return j
}

func asciiNonLetter(b byte) bool {
	return b < utf8.RuneSelf && b|0x20-'a' >= 26
}

// lowerRun returns the end of the run of a-z from s[j]. It tests eight
// bytes at a time (SWAR): a byte-at-a-time loop mispredicts its exit at
// the end of almost every word, which cost more than the rest of the split.
func lowerRun(s string, j int) int {
	const (
		ones = 0x0101010101010101
		high = 0x8080808080808080
	)
	for j+8 <= len(s) {
		x := load64(s, j)
		y := x &^ high                  // no carries between bytes below
		geA := y + (0x80-'a')*ones      // high bit: byte >= 'a'
		gtZ := y + (0x80-'z'-1)*ones    // high bit: byte > 'z'
		lower := geA &^ gtZ &^ x & high // high bit: byte in a-z (and < 0x80)
		if n := bits.TrailingZeros64(^lower & high); n < 64 {
			return j + n/8
		}
		j += 8
	}
	for j < len(s) && s[j]-'a' < 26 {
		j++
	}
	return j
}

func nextCL100K(s string, i int) int {
	if s[i] != '\'' {
		if j := asciiLetters(s, i, false); j > 0 {
			return j
		}
	}
	if s[i] == '\'' {
		if k := contraction(s, i); k > 0 {
			return i + k
		}
	}
	c, w := classAt(s, i)
	if c&clsL != 0 { // [^\r\n\p{L}\p{N}]?\p{L}+ without the prefix
		return runWhile(s, i+w, clsL)
	}
	if c&(clsNL|clsN) == 0 { // ... with a one-rune prefix
		if c2, w2 := classAt(s, i+w); c2&clsL != 0 {
			return runWhile(s, i+w+w2, clsL)
		}
	}
	if c&clsN != 0 {
		return digits(s, i, w)
	}
	if j := punct(s, i, c, w); j > 0 {
		return skipNewlines(s, j, false)
	}
	return whitespace(s, i)
}

// punct matches ` ?[^\s\p{L}\p{N}]+` at s[i] (class c, width w) and returns
// its end, or 0.
func punct(s string, i int, c uint8, w int) int {
	if s[i] == ' ' {
		if c2, w2 := classAt(s, i+1); w2 > 0 && c2&(clsL|clsN|clsS) == 0 {
			return runPunct(s, i+1+w2)
		}
	}
	if c&(clsL|clsN|clsS) == 0 {
		return runPunct(s, i+w)
	}
	return 0
}

// skipNewlines consumes [\r\n]* (cl100k) or [\r\n/]* (o200k).
func skipNewlines(s string, j int, slash bool) int {
	for j < len(s) && (s[j] == '\r' || s[j] == '\n' || slash && s[j] == '/') {
		j++
	}
	return j
}

func nextO200K(s string, i int) int {
	if j := asciiLetters(s, i, true); j > 0 {
		return j
	}
	c, w := classAt(s, i)
	if asciiNonLetter(s[i]) && (i+1 == len(s) || asciiNonLetter(s[i+1])) {
		// Neither letter alternative can match: after the optional
		// prefix they need a letter or a mark, and no ASCII byte but a
		// letter is either.
		return nextO200KOther(s, i, c, w)
	}
	// The two letter alternatives, each first with then without the
	// optional prefix rune, in the order the engine tries them. Without the
	// prefix only a letter or a mark can start a match; a mark can also be
	// the prefix, since marks are not \p{L}.
	prefix := c&(clsNL|clsL|clsN) == 0 && i+w < len(s)
	if prefix {
		if e := upperLower(s, i+w); e >= 0 {
			return withContraction(s, e)
		}
	}
	if c&(clsUpper|clsLower) != 0 {
		if e := upperLower(s, i); e >= 0 {
			return withContraction(s, e)
		}
	}
	if prefix {
		if e := upperThenLower(s, i+w); e >= 0 {
			return withContraction(s, e)
		}
	}
	if c&clsUpper != 0 {
		if e := upperThenLower(s, i); e >= 0 {
			return withContraction(s, e)
		}
	}
	return nextO200KOther(s, i, c, w)
}

// nextO200KOther resolves the alternatives after the letter ones at s[i]
// (class c, width w).
func nextO200KOther(s string, i int, c uint8, w int) int {
	if c&clsN != 0 {
		return digits(s, i, w)
	}
	if j := punct(s, i, c, w); j > 0 {
		return skipNewlines(s, j, true)
	}
	return whitespace(s, i)
}

// upperLower matches U*W+ at s[i] (U = [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}],
// W = [\p{Ll}\p{Lm}\p{Lo}\p{M}]) and returns its end, or -1. U* is greedy:
// if a W rune follows the longest U run, W+ takes the whole W run after it;
// otherwise U* backs off to the last rune of the run that is also in W
// (Lm, Lo, M) and W+ ends right after it.
func upperLower(s string, i int) int {
	a, lastW := i, -1
	for a < len(s) {
		c, w := classAt(s, a)
		if c&clsUpper == 0 {
			break
		}
		a += w
		if c&clsLower != 0 {
			lastW = a
		}
	}
	if c, w := classAt(s, a); w > 0 && c&clsLower != 0 {
		return runWhile(s, a+w, clsLower)
	}
	return lastW
}

// upperThenLower matches U+W* at s[i] and returns its end, or -1.
func upperThenLower(s string, i int) int {
	a := runWhile(s, i, clsUpper)
	if a == i {
		return -1
	}
	return runWhile(s, a, clsLower)
}

func withContraction(s string, e int) int {
	return e + contraction(s, e)
}
