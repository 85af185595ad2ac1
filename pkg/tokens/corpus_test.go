package tokens

import (
	"encoding/base64"
	"encoding/json"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

// The equivalence corpus: deterministic, at least 1 MB, built from Go sources
// and docs of the local GOROOT, the hand-written multilingual samples in
// testdata/tokens, and generated text aimed at the pre-tokenizer's edges
// (letter case, marks, numbers, whitespace runs, emoji, invalid UTF-8, very
// long pieces).
const minCorpusBytes = 1 << 20

var (
	corpusOnce sync.Once
	corpusDocs []string
)

type corpusPart struct {
	name string
	docs []string
}

func testCorpus(t testing.TB) []corpusPart {
	t.Helper()
	parts := []corpusPart{
		{"goroot", gorootDocs(t, 420<<10)},
		{"multilingual-samples", []string{readTestdata(t, "multilingual.txt")}},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	samples := readTestdata(t, "multilingual.txt")
	parts = append(parts,
		corpusPart{"generated-prose", chunk(rng, generatedProse(rng, samples, 300<<10))},
		corpusPart{"json", chunk(rng, generatedJSON(rng, 150<<10))},
		corpusPart{"random-runes", chunk(rng, randomRunes(rng, 120<<10))},
		corpusPart{"emoji", chunk(rng, emojiText(rng, 40<<10))},
		corpusPart{"whitespace-digits-punct", chunk(rng, edgeText(rng, 60<<10))},
		corpusPart{"invalid-utf8", chunk(rng, invalidUTF8(rng, 20<<10))},
		corpusPart{"long-pieces", longPieces(rng)},
	)
	return parts
}

func readTestdata(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "tokens", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// gorootDocs reads Go source and documentation files of the local toolchain
// in a fixed order until limit bytes.
func gorootDocs(t testing.TB, limit int) []string {
	root := runtime.GOROOT()
	var files []string
	for _, dir := range []string{"doc", "src/strings", "src/net/http", "src/encoding/json", "src/unicode", "src/regexp/syntax"} {
		_ = filepath.WalkDir(filepath.Join(root, dir), func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && (strings.HasSuffix(p, ".go") || strings.HasSuffix(p, ".html") || strings.HasSuffix(p, ".md")) {
				files = append(files, p)
			}
			return nil
		})
	}
	slices.Sort(files)
	var docs []string
	total := 0
	for _, f := range files {
		if total >= limit {
			break
		}
		b, err := os.ReadFile(f)
		if err != nil || len(b) == 0 {
			continue
		}
		if len(b) > 64<<10 {
			b = b[:64<<10]
		}
		docs = append(docs, string(b))
		total += len(b)
	}
	if total < limit/2 {
		t.Logf("GOROOT %q gave only %d bytes; generated parts make up the rest", root, total)
	}
	return docs
}

// chunk cuts s into documents of 100 B to 8 KB at arbitrary byte offsets
// (cuts inside a rune add invalid UTF-8 at the edges on purpose).
func chunk(rng *rand.Rand, s string) []string {
	var out []string
	for len(s) > 0 {
		n := min(len(s), 100+rng.IntN(8<<10))
		out = append(out, s[:n])
		s = s[n:]
	}
	return out
}

var spaceRuns = []string{" ", " ", " ", "  ", "   ", "\t", "\t\t", "\n", "\n\n", "\r\n", " \n", "\n ", "\u00a0", "\u3000", "\u2028", "\u0085", "\v", "\f", " \t \n\t ", "\u2003\u2003", "\u200b"}

func generatedProse(rng *rand.Rand, samples string, size int) string {
	words := strings.Fields(samples)
	var b strings.Builder
	for b.Len() < size {
		w := words[rng.IntN(len(words))]
		switch rng.IntN(12) {
		case 0:
			w = strings.ToUpper(w)
		case 1:
			w = strings.ToLower(w)
		case 2:
			w = strings.Title(w) //nolint:staticcheck // deliberate mixed case
		case 3:
			w += words[rng.IntN(len(words))] // glue two words
		case 4:
			w += []string{"'s", "'S", "'re", "'ll", "'ve", "'d", "'m", "'t", "'LL", "'x"}[rng.IntN(10)]
		}
		b.WriteString(w)
		if rng.IntN(10) == 0 {
			b.WriteString(spaceRuns[rng.IntN(len(spaceRuns))])
		} else {
			b.WriteByte(' ')
		}
	}
	return b.String()
}

func generatedJSON(rng *rand.Rand, size int) string {
	var b strings.Builder
	keys := []string{"id", "name", "description", "type", "properties", "required", "enum", "items", "value", "créé_le", "数据", "x-api-key", "userID", "HTTPStatus"}
	var gen func(depth int) any
	gen = func(depth int) any {
		switch k := rng.IntN(7); {
		case depth > 3 || k == 0:
			return rng.IntN(1 << uint(rng.IntN(40)))
		case k == 1:
			return rng.Float64() * 1e6
		case k == 2:
			return []string{"hello world", "line\nbreak\ttab", "quote \" and \\ slash", "ünïcødé ✓", "<b>html</b>", "😀 emoji"}[rng.IntN(6)]
		case k == 3:
			return rng.IntN(2) == 0
		case k == 4:
			a := make([]any, rng.IntN(5))
			for i := range a {
				a[i] = gen(depth + 1)
			}
			return a
		default:
			m := map[string]any{}
			for range 1 + rng.IntN(5) {
				m[keys[rng.IntN(len(keys))]] = gen(depth + 1)
			}
			return m
		}
	}
	for b.Len() < size {
		v := map[string]any{"doc": gen(0), "n": rng.IntN(1000)}
		var out []byte
		switch rng.IntN(3) {
		case 0:
			out, _ = json.Marshal(v)
		case 1:
			out, _ = json.MarshalIndent(v, "", "  ")
		default:
			out, _ = json.MarshalIndent(v, "", "\t")
		}
		b.Write(out)
		b.WriteByte('\n')
	}
	return b.String()
}

// randomRunes mixes ASCII with code points from ranges whose classes matter
// to the pre-tokenizers: combining marks, Lt/Lm/Lo letters, Nl/No numbers,
// unusual spaces, format characters, symbols, private use, unassigned.
func randomRunes(rng *rand.Rand, size int) string {
	ranges := [][2]rune{
		{0x20, 0x7e}, {0x20, 0x7e}, {0x20, 0x7e}, {0x00, 0x1f},
		{0xa0, 0x24f}, {0x250, 0x2ff}, {0x300, 0x36f}, {0x370, 0x3ff}, {0x400, 0x4ff},
		{0x591, 0x5f4}, {0x600, 0x6ff}, {0x900, 0x97f}, {0xe00, 0xe7f}, {0x1c4, 0x1cc},
		{0x1e00, 0x1fff}, {0x2000, 0x206f}, {0x2070, 0x218f}, {0x2460, 0x24ff},
		{0x3000, 0x30ff}, {0x4e00, 0x4eff}, {0xac00, 0xacff}, {0xfe00, 0xfe0f},
		{0xff00, 0xffef}, {0xe000, 0xe0ff}, {0x10300, 0x1034f}, {0x1d400, 0x1d7ff},
		{0x1f300, 0x1faff}, {0xe0020, 0xe007f}, {0x2fff0, 0x2ffff},
	}
	var b strings.Builder
	for b.Len() < size {
		r := ranges[rng.IntN(len(ranges))]
		for range 1 + rng.IntN(12) {
			c := r[0] + rune(rng.IntN(int(r[1]-r[0]+1)))
			if utf8.ValidRune(c) {
				b.WriteRune(c)
			}
		}
		if rng.IntN(3) == 0 {
			b.WriteString(spaceRuns[rng.IntN(len(spaceRuns))])
		}
	}
	return b.String()
}

func emojiText(rng *rand.Rand, size int) string {
	base := []string{"😀", "👍", "👋", "🧑", "👩", "👨", "🏃", "🤷", "🙋", "❤", "✨", "🎉", "🇺🇸", "🇩🇪", "🇯🇵", "🏳️‍🌈", "🏴‍☠️", "1️⃣", "©️", "☕"}
	tones := []string{"", "🏻", "🏼", "🏽", "🏾", "🏿"}
	zwj := []string{"", "\u200d💻", "\u200d🚀", "\u200d♀️", "\u200d♂️", "\u200d👩\u200d👧\u200d👦", "\ufe0f"}
	var b strings.Builder
	for b.Len() < size {
		b.WriteString(base[rng.IntN(len(base))])
		b.WriteString(tones[rng.IntN(len(tones))])
		b.WriteString(zwj[rng.IntN(len(zwj))])
		switch rng.IntN(5) {
		case 0:
			b.WriteString(" ")
		case 1:
			b.WriteString([]string{"wow", " Nice", "OK!", "I'm", "123", "\n", "..."}[rng.IntN(7)])
		}
	}
	return b.String()
}

func edgeText(rng *rand.Rand, size int) string {
	atoms := []string{"0", "12", "123", "1234", "98765", "3.14", "1,000", "٣٤٥", "²³", "Ⅻ", "½",
		"!", "?!", "...", "---", "/", "//", "/*", "*/", "=>", "::", "\\n", "'", "\"", "`", "'s", "'S", "'ll",
		"a", "A", "ab", "AB", "aB", "Ab", "ǅ", "ß", "ẞ", "İ", "ı", "ﬁ", "K", "e\u0301", "E\u0301", "\u0301", "\u0301\u0301a",
		"ʰ", "ˈ", "々", "ー", "x", "HTTPServer", "getURL", "ALLCAPS", "lower"}
	var b strings.Builder
	for b.Len() < size {
		if rng.IntN(3) == 0 {
			b.WriteString(spaceRuns[rng.IntN(len(spaceRuns))])
			continue
		}
		b.WriteString(atoms[rng.IntN(len(atoms))])
	}
	return b.String()
}

func invalidUTF8(rng *rand.Rand, size int) string {
	var b strings.Builder
	for b.Len() < size {
		switch rng.IntN(4) {
		case 0:
			for range 1 + rng.IntN(4) {
				b.WriteByte(byte(0x80 + rng.IntN(0x80)))
			}
		case 1:
			b.WriteString("\xed\xa0\x80") // an encoded surrogate
		case 2:
			b.WriteString("héllo wörld ")
		default:
			b.WriteString([]string{"abc", " ", "\n", "日本", "'s", "12"}[rng.IntN(6)])
		}
	}
	return b.String()
}

// longPieces are single pre-tokenizer pieces far longer than the stack merge
// handles, so the heap merge is compared too.
func longPieces(rng *rand.Rand) []string {
	letters := make([]byte, 6000)
	for i := range letters {
		letters[i] = byte('a' + rng.IntN(26))
	}
	blob := make([]byte, 15000)
	for i := range blob {
		blob[i] = byte(rng.IntN(256))
	}
	return []string{
		string(letters),
		strings.Repeat("a", 3000),
		strings.Repeat(" ", 2000) + "x",
		strings.Repeat("\t", 500) + "\n",
		strings.Repeat("=", 700),
		strings.Repeat("日本語", 400),
		strings.Repeat("ab", 1500) + strings.Repeat("AB", 300),
		base64.StdEncoding.EncodeToString(blob),
	}
}

func corpusSize(parts []corpusPart) int {
	n := 0
	for _, p := range parts {
		for _, d := range p.docs {
			n += len(d)
		}
	}
	return n
}

// TestCountMatchesTiktoken is the proof that Count is a drop-in for
// len(tiktoken-go Encode(text, nil, nil)): identical counts on every document
// of the corpus, for both encodings.
func TestCountMatchesTiktoken(t *testing.T) {
	parts := testCorpus(t)
	if n := corpusSize(parts); n < minCorpusBytes {
		t.Fatalf("corpus is %d bytes, want at least %d", n, minCorpusBytes)
	} else {
		t.Logf("corpus: %d bytes in %d parts", n, len(parts))
	}
	for _, name := range []string{O200K, CL100K} {
		enc, err := getEncoding(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range parts {
			t.Run(name+"/"+p.name, func(t *testing.T) {
				t.Parallel()
				total := 0
				for i, d := range p.docs {
					got, want := enc.count(d), refCount(t, name, d)
					if got != want {
						t.Errorf("doc %d (%d bytes): got %d tokens, tiktoken-go %d; first differing piece: %s",
							i, len(d), got, want, firstSplitDiff(t, name, d))
					}
					total += want
				}
				t.Logf("%d docs, %d tokens", len(p.docs), total)
			})
		}
	}
}
