package use

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestFits(t *testing.T) {
	// On the synthetic vocabulary "a" is one token ("▁a") per word, and
	// "ab" repeated without spaces is one token per repetition after the
	// first ("▁ab", then "ab"...).
	m := &Model{tok: testTokenizer(t)}
	words := func(n int) string { return strings.TrimSpace(strings.Repeat("a ", n)) }
	tests := []struct {
		name string
		text string
		want bool
	}{
		{"empty", "", true},
		{"one token", "a", true},
		{"window minus one", words(MaxTokens - 1), true},
		{"exactly the window", words(MaxTokens), true},
		{"one past the window", words(MaxTokens + 1), false},
		{"far past the window", words(20 * MaxTokens), false},
		{"no spaces, within the window", strings.Repeat("ab", MaxTokens), true},
		{"no spaces, past the window", strings.Repeat("ab", MaxTokens+1), false},
		{"unknown run counts once", strings.Repeat("x", 10*MaxTokens), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := len(m.tok.Encode(tt.text))
			if got := m.Fits(tt.text); got != tt.want {
				t.Errorf("Fits = %v, want %v (%d tokens)", got, tt.want, n)
			}
			if (n <= MaxTokens) != tt.want {
				t.Errorf("case is wrong: the text has %d tokens", n)
			}
		})
	}
}

// TestFitsMatchesEncode checks Fits against the full token count on the
// real vocabulary, around the window's edge.
func TestFitsMatchesEncode(t *testing.T) {
	m := testModel(t)
	for _, n := range []int{0, 1, 10, MaxTokens - 1, MaxTokens, MaxTokens + 1, 300} {
		var text string
		if n > 0 {
			text, _ = textWithTokens(t, m, n)
		}
		if got, want := m.Fits(text), n <= MaxTokens; got != want {
			t.Errorf("%d tokens: Fits = %v, want %v", n, got, want)
		}
	}
	for _, c := range loadReference(t).Cases {
		if got, want := m.Fits(c.Text), len(m.Tokenizer().Encode(c.Text)) <= MaxTokens; got != want {
			t.Errorf("%q: Fits = %v, want %v", short(c.Text), got, want)
		}
	}
}

// BenchmarkFits is what a cache pays to ask whether a prompt is inside the
// window: tokenising at most MaxTokens+1 tokens' worth of it.
func BenchmarkFits(b *testing.B) {
	m := testModel(b)
	for _, n := range []int{10, 128, 150, 1500} {
		text, _ := textWithTokens(b, m, n)
		b.Run(fmt.Sprintf("%dtok", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				m.Fits(text)
			}
		})
	}
}

// fitsByEncoding is what Fits computed before FitsIn: the ids of the text's
// first limit+1 tokens, counted.
func fitsByEncoding(tok *Tokenizer, text string, limit int) bool {
	return len(tok.AppendEncodeLimit(nil, text, limit+1)) <= limit
}

// fitsTexts returns texts around the window's edge: prose, unicode (NFKC
// folds, expansions, astral symbols, invalid bytes), long words and runs of
// whitespace.
func fitsTexts(seed uint64) []string {
	rng := rand.New(rand.NewPCG(seed, seed+1))
	vocab := append(strings.Fields(benchProse),
		"café", "naïve", "東京", "😀", "ａｂｃ", "ﷺ", "e\u0301", "\u00a0", "\u3000", "\t", "\n", "  ", "\xff",
		"▁", "::)", "𝐁", "x", "zzzz", strings.Repeat("a", 40), strings.Repeat("ab", 300), "A.B,C!", "1234567")
	var texts []string
	for _, words := range []int{0, 1, 5, 60, 100, 115, 120, 125, 127, 128, 129, 130, 140, 200, 1000} {
		for range 6 {
			var b strings.Builder
			plain := rng.IntN(2) == 0 // prose only, or anything
			for i := range words {
				if i > 0 {
					b.WriteByte(' ')
				}
				if plain {
					b.WriteString(vocab[rng.IntN(len(strings.Fields(benchProse)))])
				} else {
					b.WriteString(vocab[rng.IntN(len(vocab))])
				}
			}
			texts = append(texts, b.String())
		}
	}
	return append(texts, strings.Repeat("a", 100000), strings.Repeat("東", 200), strings.Repeat("ab ", 200), strings.Repeat(" ", 300))
}

// TestFitsInMatchesEncoding checks FitsIn against counting the encoded
// prefix, on the synthetic and the real vocabulary, for windows around
// each text's size.
func TestFitsInMatchesEncoding(t *testing.T) {
	toks := []struct {
		name string
		tok  func(t *testing.T) *Tokenizer
	}{
		{"synthetic", func(t *testing.T) *Tokenizer { return testTokenizer(t) }},
		{"astral pieces", func(t *testing.T) *Tokenizer { return testTokenizer(t, "😀x", "𝐁") }},
		{"real", func(t *testing.T) *Tokenizer { return testModel(t).Tokenizer() }},
	}
	for _, tc := range toks {
		t.Run(tc.name, func(t *testing.T) {
			tok := tc.tok(t)
			for i, text := range fitsTexts(uint64(len(tc.name))) {
				n := len(tok.Encode(text))
				for _, limit := range []int{1, 3, n - 1, n, n + 1, MaxTokens} {
					if limit < 0 {
						continue
					}
					if got, want := tok.FitsIn(text, limit), fitsByEncoding(tok, text, limit); got != want {
						t.Errorf("text %d (%q, %d tokens), limit %d: FitsIn = %v, encoding says %v", i, short(text), n, limit, got, want)
					}
				}
			}
		})
	}
}

// FuzzFits checks FitsIn against counting the encoded prefix.
func FuzzFits(f *testing.F) {
	for _, s := range []string{"", " ", "the ab", "ａｂ c", "a😀b", "\xff\xfe", "a  b\tc", strings.Repeat("ab ", 50), "e\u0301\u0301", "ﷺ ﷺ"} {
		f.Add(s, uint8(3))
	}
	tok := testTokenizer(f)
	odd := testTokenizer(f, "😀x", "𝐁")
	f.Fuzz(func(t *testing.T, s string, limit uint8) {
		for _, tk := range []*Tokenizer{tok, odd} {
			if got, want := tk.FitsIn(s, int(limit)), fitsByEncoding(tk, s, int(limit)); got != want {
				t.Errorf("FitsIn(%q, %d) = %v, encoding says %v", s, limit, got, want)
			}
		}
	})
}
