package tokens

import (
	"sync"
	"unicode"
	"unicode/utf8"
)

// Rune classes used by the pre-tokenizers. They mirror what the reference
// implementation (tiktoken-go, whose regexes run on dlclark/regexp2) means by
// \p{L}, \p{N}, \s and the o200k letter-case classes: regexp2 answers them
// with Go's own unicode tables and unicode.IsSpace, so using the same tables
// here gives the same split for every code point.
const (
	clsL     uint8 = 1 << iota // \p{L}
	clsN                       // \p{N}
	clsS                       // \s (unicode.IsSpace)
	clsNL                      // \r or \n
	clsUpper                   // [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}] (o200k)
	clsLower                   // [\p{Ll}\p{Lm}\p{Lo}\p{M}] (o200k)
)

func classifyRune(r rune) uint8 {
	var c uint8
	if unicode.IsLetter(r) {
		c |= clsL
	}
	if unicode.IsNumber(r) {
		c |= clsN
	}
	if unicode.IsSpace(r) {
		c |= clsS
	}
	if r == '\r' || r == '\n' {
		c |= clsNL
	}
	both := unicode.In(r, unicode.Lm, unicode.Lo, unicode.M)
	if both || unicode.In(r, unicode.Lu, unicode.Lt) {
		c |= clsUpper
	}
	if both || unicode.Is(unicode.Ll, r) {
		c |= clsLower
	}
	return c
}

// bmpClass caches classifyRune for the Basic Multilingual Plane, where almost
// all text lives; the binary searches in the unicode tables would otherwise
// dominate the scan of non-Latin scripts.
var (
	bmpOnce  sync.Once
	bmpClass *[0x10000]uint8
)

func loadBMP() {
	bmpOnce.Do(func() {
		t := new([0x10000]uint8)
		for r := range rune(0x10000) {
			t[r] = classifyRune(r)
		}
		bmpClass = t
	})
}

// classAt returns the class and byte width of the rune starting at s[i].
// s must be valid UTF-8; at the end of s it returns (0, 0).
func classAt(s string, i int) (uint8, int) {
	if i >= len(s) {
		return 0, 0
	}
	if b := s[i]; b < utf8.RuneSelf {
		return bmpClass[b], 1
	}
	r, w := utf8.DecodeRuneInString(s[i:])
	if r < 0x10000 {
		return bmpClass[r], w
	}
	return classifyRune(r), w
}
