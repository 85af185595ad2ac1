package use

import (
	"slices"
	"strings"
	"testing"
)

// testTokenizer is a small synthetic vocabulary: enough to exercise Viterbi,
// unknown symbols and the null-score pieces without the real model.
func testTokenizer(t testing.TB, extra ...string) *Tokenizer {
	t.Helper()
	pieces := []string{"�", "<s>", "</s>", "extra_token_id_1", "extra_token_id_2", "extra_token_id_3",
		"▁", "▁a", "a", "b", "ab", "▁ab", "c", "é", "▁the", "the", "t", "h", "e", ":", "▁:)"}
	pieces = append(pieces, extra...)
	scores := make([]float64, len(pieces))
	for i := range scores {
		scores[i] = -float64(i) / 4
	}
	scores[19] = 0 // ":" has a null score in the real vocabulary
	tok, err := newTokenizer(pieces, scores)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestTokenizerSynthetic(t *testing.T) {
	tok := testTokenizer(t)
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"empty", "", nil},
		{"single word", "the", []string{"▁the"}},
		{"prefers the higher total", "ab", []string{"▁ab"}},
		{"spaces become boundaries", "a b", []string{"▁a", "▁", "b"}},
		{"unknown runs merge", "xyz", []string{"▁", "�"}},
		{"unknown between pieces", "axxb", []string{"▁a", "�", "b"}},
		{"NFKC composes", "e\u0301", []string{"▁", "é"}},
		{"NFKC folds compatibility forms", "ａｂ", []string{"▁ab"}},
		{"non-BMP symbol is one unknown", "a😀b", []string{"▁a", "�", "b"}},
		{"null score piece", "::", []string{"▁", ":", ":"}},
		{"no lowercasing", "THE", []string{"▁", "�"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, id := range tok.Encode(tt.in) {
				got = append(got, tok.Piece(int(id)))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Encode(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// FuzzTokenizer checks that no input panics, ids stay in the vocabulary, and
// a segmentation without unknowns spells the normalised input.
func FuzzTokenizer(f *testing.F) {
	for _, s := range []string{"", " ", "the ab", "ａｂ c", "a😀b", "\xff\xfe", "::)", strings.Repeat("ab ", 50), "e\u0301\u0301", strings.Repeat("0", 200) + "a"} {
		f.Add(s)
	}
	tok := testTokenizer(f)
	odd := testTokenizer(f, "😀x", "𝐁") // non-BMP pieces: the JS steps back by UTF-16 length
	f.Fuzz(func(t *testing.T, s string) {
		ids := tok.Encode(s)
		var b strings.Builder
		unknown := false
		for _, id := range ids {
			if id < 0 || int(id) >= tok.VocabSize() {
				t.Fatalf("id %d out of range", id)
			}
			unknown = unknown || id == unknownID
			b.WriteString(tok.Piece(int(id)))
		}
		if !unknown && b.String() != normalize(s) {
			t.Errorf("pieces spell %q, normalised input is %q", b.String(), normalize(s))
		}
		for _, limit := range []int{1, 3, 128} {
			if len(s) > limit*cutBytesPerToken {
				continue // cut by size: documented as approximate
			}
			got := tok.AppendEncodeLimit(nil, s, limit)
			want := ids[:min(len(ids), limit)]
			if !slices.Equal(got, want) {
				t.Errorf("AppendEncodeLimit(%q, %d) = %v, want %v", s, limit, got, want)
			}
		}
		for _, id := range odd.Encode(s) {
			if id < 0 || int(id) >= odd.VocabSize() {
				t.Fatalf("id %d out of range", id)
			}
		}
	})
}
