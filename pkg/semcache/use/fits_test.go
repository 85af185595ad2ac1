package use

import (
	"fmt"
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
	for _, n := range []int{10, 128, 1500} {
		text, _ := textWithTokens(b, m, n)
		b.Run(fmt.Sprintf("%dtok", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				m.Fits(text)
			}
		})
	}
}
