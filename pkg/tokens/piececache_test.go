package tokens

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

// TestPieceCacheMatchesTiktoken counts texts with a cold piece cache, again
// with the cache warm (every piece a hit), and with a cache of one bucket
// (every piece collides with every other), and wants tiktoken-go's count
// each time.
func TestPieceCacheMatchesTiktoken(t *testing.T) {
	texts := []struct{ name, text string }{
		{"prose", "The schedule changed: we'll meet on Monday at 10:30, not Tuesday. Don't be late!"},
		{"long words", "internationalization counterrevolutionaries pneumonoultramicroscopicsilicovolcanoconiosis"},
		{"piece lengths 2-25", func() string {
			var b strings.Builder
			for n := 1; n <= 25; n++ {
				b.WriteString(" " + strings.Repeat("x", n))
			}
			return b.String()
		}()},
		{"same prefix, other tail", " abcdefghij abcdefghik abcdefghijklmnopq abcdefghijklmnopr abcdefghijklmnopqrstuvw abcdefghijklmnopqrstuvx"},
		{"mixed case", "HTTPServer parseJSON XMLHttpRequest iPhone McDonald's I'M FINE"},
		{"non-ASCII", "café naïve Zürich Ελληνικά русский 日本語のテキスト e\u0301 👨‍👩‍👧"},
		{"code", "func (c *Counter) CountChat(tokenizer, model string) (int, error) {\n\treturn 0, nil\n}"},
		{"digits and punctuation", "1234567 3.14159 -- ... !!! ?? (a) [b] {c} <d> 'e' \"f\" a/b\\c"},
		{"whitespace", "a  b   c\t\td\n\ne \r\n f    "},
		{"invalid UTF-8", "abc\xffdef \xfe\xfd ghi"},
	}
	for _, enc := range []string{O200K, CL100K} {
		for _, tc := range texts {
			t.Run(enc+"/"+tc.name, func(t *testing.T) {
				want := refCount(t, enc, tc.text)
				for _, c := range []struct {
					name string
					c    *Counter
				}{
					{"default", NewCounter(WithSegmentCache(0))},
					{"one bucket", NewCounter(WithSegmentCache(0), WithPieceCache(2))},
				} {
					for _, pass := range []string{"cold", "warm"} {
						if got, _ := c.c.Count(enc, tc.text); got != want {
							t.Errorf("%s cache, %s: got %d, tiktoken-go %d", c.name, pass, got, want)
						}
					}
				}
			})
		}
	}
}

// TestPieceCacheCollisions: pieces that share a bucket (a cache of one
// bucket) or whose packed words agree except for the length must never
// answer for each other.
func TestPieceCacheCollisions(t *testing.T) {
	pc := newPieceCache(2)
	tests := []struct {
		name string
		a, b string // a is stored, b must miss
	}{
		{"trailing NUL", "ab", "ab\x00"},
		{"trailing NULs to 8", "abc", "abc\x00\x00\x00\x00\x00"},
		{"trailing NULs to 24", strings.Repeat("z", 16), strings.Repeat("z", 16) + strings.Repeat("\x00", 8)},
		{"last byte", " schedule", " schedulf"},
		{"byte 9", "abcdefgh1jklmnop", "abcdefgh2jklmnop"},
		{"byte 17", "abcdefghijklmnop1rst", "abcdefghijklmnop2rst"},
		{"byte 24", strings.Repeat("q", 23) + "1", strings.Repeat("q", 23) + "2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pc.put(tc.a, 0, len(tc.a), 7)
			if n, ok := pc.get(tc.b, 0, len(tc.b)); ok {
				t.Fatalf("%q answered for %q with %d", tc.a, tc.b, n)
			}
			if n, ok := pc.get(tc.a, 0, len(tc.a)); !ok || n != 7 {
				t.Fatalf("%q: got %d, %v; want 7, true", tc.a, n, ok)
			}
			// The same piece inside a longer text (packed by whole-word
			// loads, not byte by byte) is the same key.
			long := "<<" + tc.a + strings.Repeat(">", 40)
			if n, ok := pc.get(long, 2, 2+len(tc.a)); !ok || n != 7 {
				t.Fatalf("%q inside a text: got %d, %v; want 7, true", tc.a, n, ok)
			}
			long = "<<" + tc.b + strings.Repeat(">", 40)
			if n, ok := pc.get(long, 2, 2+len(tc.b)); ok {
				t.Fatalf("%q inside a text answered for %q with %d", tc.a, tc.b, n)
			}
		})
	}
}

// TestPieceCacheConcurrent shares a small piece cache between goroutines
// counting texts whose pieces keep evicting each other; run with -race.
func TestPieceCacheConcurrent(t *testing.T) {
	c := NewCounter(WithSegmentCache(0), WithPieceCache(16))
	texts := make([]string, 24)
	want := make([]int, len(texts))
	for i := range texts {
		texts[i] = strings.Repeat(fmt.Sprintf(" word%d w%dxyz internationalization%d ", i, i*7, i), 5)
		want[i] = refCount(t, O200K, texts[i])
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range 300 {
				i := (g*5 + k) % len(texts)
				if n, _ := c.Count(O200K, texts[i]); n != want[i] {
					t.Errorf("text %d: %d, want %d", i, n, want[i])
					return
				}
			}
		}()
	}
	wg.Wait()
}

// BenchmarkPieceCache is the cost of a hit on a short and a long piece.
func BenchmarkPieceCache(b *testing.B) {
	pc := newPieceCache(DefaultPieceCache)
	for _, p := range []string{" schedule", " internationalization"} {
		s := p + strings.Repeat(" ", 24)
		pc.put(s, 0, len(p), 3)
		b.Run(fmt.Sprint(len(p)), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, ok := pc.get(s, 0, len(p)); !ok {
					b.Fatal("miss")
				}
			}
		})
	}
}
