package guardrails

import (
	"strings"
	"testing"
)

// prompt2K is about 2 KB of prose with a few values to mask.
var prompt2K = func() string {
	prose := "Please summarise the quarterly report for the board, version 2.3.1, released 2024-03-05. " +
		"Revenue grew in every region and the team shipped the new onboarding flow on time. "
	var b strings.Builder
	for b.Len() < 1800 {
		b.WriteString(prose)
	}
	b.WriteString("Contact jane.doe@example.com or +44 20 7946 0958; card 4111 1111 1111 1111; host 10.1.2.3.")
	return b.String()
}()

func BenchmarkMaskBuiltins2K(b *testing.B) {
	set := builtinSet(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(prompt2K)))
	for b.Loop() {
		if _, err := set.Masker().Mask(prompt2K); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDetector2K(b *testing.B) {
	for _, d := range Builtins() {
		b.Run(d.Name(), func(b *testing.B) {
			b.ReportAllocs()
			var dst []Span
			for b.Loop() {
				dst = d.Find(dst[:0], prompt2K)
			}
		})
	}
}

func wordList300() []string {
	list := make([]string, 300)
	for i := range list {
		list[i] = "codeword" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + string(rune('a'+i/26))
	}
	return list
}

func BenchmarkWords300(b *testing.B) {
	w, err := Words("words", wordList300(), true)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	var dst []Span
	for b.Loop() {
		dst = w.Find(dst[:0], prompt2K)
	}
}

// BenchmarkWords300Regexp is the alternative Words replaced: one RE2
// alternation of the same list, for comparison.
func BenchmarkWords300Regexp(b *testing.B) {
	re, err := Regex("words", `(?i)\b(?:`+strings.Join(wordList300(), "|")+`)\b`)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	var dst []Span
	for b.Loop() {
		dst = re.Find(dst[:0], prompt2K)
	}
}

func BenchmarkStreamBuiltins2K(b *testing.B) {
	set := builtinSet(b)
	b.ReportAllocs()
	for b.Loop() {
		sm := set.Masker().Stream()
		for i := 0; i < len(prompt2K); i += 16 {
			if _, err := sm.Write(prompt2K[i:min(len(prompt2K), i+16)]); err != nil {
				b.Fatal(err)
			}
		}
		sm.Flush()
	}
}
