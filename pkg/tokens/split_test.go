package tokens

import (
	"fmt"
	"testing"
	"unicode/utf8"

	"github.com/dlclark/regexp2"
)

// The regexes tiktoken-go compiles (encoding.go of tiktoken-go v0.1.8).
var refPatterns = map[string]string{
	CL100K: `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`,
	O200K: `[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|` +
		`[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|` +
		`\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`,
}

func refSplit(t testing.TB, name, s string) []string {
	re := regexp2.MustCompile(refPatterns[name], regexp2.None)
	runes := []rune(s)
	var out []string
	m, err := re.FindRunesMatch(runes)
	for ; m != nil && err == nil; m, err = re.FindNextMatch(m) {
		out = append(out, string(runes[m.Index:m.Index+m.Length]))
	}
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func split(t testing.TB, name, s string) []string {
	enc, err := getEncoding(name)
	if err != nil {
		t.Fatal(err)
	}
	if !utf8.ValidString(s) {
		s = string([]rune(s))
	}
	var out []string
	for i := 0; i < len(s); {
		j := enc.next(s, i)
		out = append(out, s[i:j])
		i = j
	}
	return out
}

// firstSplitDiff describes where the pre-tokenizer and the regex first
// disagree, to make a count mismatch debuggable.
func firstSplitDiff(t testing.TB, name, s string) string {
	got, want := split(t, name, s), refSplit(t, name, s)
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			lo := max(0, i-2)
			return fmt.Sprintf("piece %d: got %q, regex %q (context %q)", i, got[i], want[i], want[lo:min(len(want), i+3)])
		}
	}
	if len(got) != len(want) {
		return fmt.Sprintf("got %d pieces, regex %d", len(got), len(want))
	}
	return "split identical (difference is in the merge)"
}

// TestSplitMatchesRegex checks the hand-written pre-tokenizers piece by
// piece against the regexes on a sample of the corpus: stronger than equal
// counts, which could hide two compensating differences.
func TestSplitMatchesRegex(t *testing.T) {
	parts := testCorpus(t)
	for _, name := range []string{O200K, CL100K} {
		for _, p := range parts {
			t.Run(name+"/"+p.name, func(t *testing.T) {
				t.Parallel()
				for i, d := range p.docs {
					if i%4 != 0 {
						continue // a quarter is enough here; counts cover all of it
					}
					if diff := firstSplitDiff(t, name, d); diff != "split identical (difference is in the merge)" {
						t.Errorf("doc %d: %s", i, diff)
					}
				}
			})
		}
	}
}
