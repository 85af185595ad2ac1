package lexicon

import (
	"runtime"
	"slices"
	"testing"
)

func lexicon(t testing.TB) *Lexicon {
	t.Helper()
	l, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// texts spells ids, for messages and comparisons.
func texts(l *Lexicon, ids []Word) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = l.Text(id)
	}
	return out
}

// lemma returns the id of a word that must be a lemma.
func lemma(t *testing.T, l *Lexicon, w string) Word {
	t.Helper()
	for _, id := range l.Lemmas(w) {
		if l.Text(id) == w {
			return id
		}
	}
	t.Fatalf("%q is not a lemma of the table", w)
	return 0
}

func TestDefaultDecodesOnce(t *testing.T) {
	a, errA := Default()
	b, errB := Default()
	if errA != nil || errB != nil {
		t.Fatalf("Default: %v, %v", errA, errB)
	}
	if a != b {
		t.Fatal("Default decoded the table twice")
	}
}

func TestLemmas(t *testing.T) {
	l := lexicon(t)
	cases := []struct {
		name, word string
		want       []string // sorted by id, which is alphabetical
	}{
		{"irregular verb", "ran", []string{"run"}},
		{"doubled consonant from verb.exc, and the noun", "running", []string{"run", "running"}},
		{"irregular plural", "geese", []string{"goose"}},
		{"irregular comparative over adj and adv", "better", []string{"better", "good", "well"}},
		{"superlative", "quickest", []string{"quick", "quickest"}},
		{"ies plural and third person", "studies", []string{"study"}},
		{"past with e", "deleted", []string{"delete"}},
		{"ses plural keeps both lemmas", "glasses", []string{"glass", "glasses"}},
		{"noun in ss is not detached", "boss", []string{"boss"}},
		{"men plural", "firemen", []string{"fireman"}},
		{"a lemma is its own base", "car", []string{"car"}},
		{"plural a speaker may write", "informations", []string{"information"}},
		{"unknown word", "pyhton", nil},
		{"empty", "", nil},
		{"upper case is not looked up", "Car", nil},
		{"collocation is not a lemma", "motor_vehicle", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := texts(l, l.Lemmas(c.word))
			if len(got) == 0 {
				got = nil
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("Lemmas(%q) = %q, want %q", c.word, got, c.want)
			}
		})
	}
}

// TestEveryLemmaIsItsOwnBase walks the whole table: every id spells a lemma
// whose Lemmas include the id, which is Known.
func TestEveryLemmaIsItsOwnBase(t *testing.T) {
	l := lexicon(t)
	if l.nLemma < 50000 {
		t.Fatalf("%d lemmas, want the ~59,000 lexgen keeps", l.nLemma)
	}
	for id := Word(1); int(id) <= l.nLemma; id++ {
		w := l.Text(id)
		if !slices.Contains(l.Lemmas(w), id) || !l.Known(w) {
			t.Fatalf("lemma %d %q: Lemmas = %v, Known = %v", id, w, l.Lemmas(w), l.Known(w))
		}
	}
	for _, id := range []Word{0, Word(l.nLemma + 1)} {
		if l.Text(id) != "" || l.Related(id) != nil || l.Antonyms(id) != nil {
			t.Errorf("id %d is not a lemma but answers %q, %v, %v", id, l.Text(id), l.Related(id), l.Antonyms(id))
		}
	}
}

func TestRelations(t *testing.T) {
	l := lexicon(t)
	related := func(a Word) []Word { return l.Related(a) }
	antonyms := func(a Word) []Word { return l.Antonyms(a) }
	cases := []struct {
		name     string
		a, b     string
		relation string
		want     bool
	}{
		{"synonyms", "car", "automobile", "Related", true},
		{"verb synonyms", "begin", "start", "Related", true},
		{"adjective synonyms", "big", "large", "Related", true},
		{"similar-to", "quick", "fast", "Related", true},
		{"synonym in a first sense", "delete", "erase", "Related", true},
		{"derivation", "remove", "removal", "Related", true},
		{"pertainym", "quickly", "quick", "Related", true},
		{"plural lemma", "glasses", "spectacles", "Related", true},
		{"different operations", "sort", "reverse", "Related", false},
		{"antonyms are not related", "increase", "decrease", "Related", false},
		{"antonyms are not related (derived pair)", "encode", "decode", "Related", false},
		{"antonyms are not related (compound pair)", "upload", "download", "Related", false},
		{"neighbouring countries' spelling", "austria", "australia", "Related", false},
		{"opposite temperatures", "hot", "cold", "Related", false},
		{"hypernym is not related", "car", "vehicle", "Related", false},
		{"hyponym is not related", "dog", "poodle", "Related", false},
		{"verb antonyms", "increase", "decrease", "Antonyms", true},
		{"adjective antonyms", "hot", "cold", "Antonyms", true},
		{"order", "ascending", "descending", "Antonyms", true},
		{"prefix pair", "encode", "decode", "Antonyms", true},
		{"transfer direction", "upload", "download", "Antonyms", true},
		{"size", "big", "small", "Antonyms", true},
		{"synonyms are not antonyms", "car", "automobile", "Antonyms", false},
		{"different operations are not antonyms", "sort", "reverse", "Antonyms", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := map[string]func(Word) []Word{"Related": related, "Antonyms": antonyms}[c.relation]
			a, b := lemma(t, l, c.a), lemma(t, l, c.b)
			if got := slices.Contains(f(a), b); got != c.want {
				t.Errorf("%s in %s(%s) = %v, want %v; %s(%s) = %q", c.b, c.relation, c.a, got, c.want, c.relation, c.a, texts(l, f(a)))
			}
		})
	}
}

// TestRelationsAreSymmetric walks every id: each list is sorted, holds
// valid ids other than its own, and each link is there both ways; no pair
// is both related and antonyms.
func TestRelationsAreSymmetric(t *testing.T) {
	l := lexicon(t)
	rel := map[string]func(Word) []Word{"Related": l.Related, "Antonyms": l.Antonyms}
	links := map[string]int{}
	for name, f := range rel {
		for a := Word(1); int(a) <= l.nLemma; a++ {
			ns := f(a)
			if !slices.IsSorted(ns) || len(slices.Compact(slices.Clone(ns))) != len(ns) {
				t.Fatalf("%s(%q) is not strictly sorted: %v", name, l.Text(a), ns)
			}
			for _, b := range ns {
				if b == a || b == 0 || int(b) > l.nLemma {
					t.Fatalf("%s(%q) holds id %d", name, l.Text(a), b)
				}
				if _, ok := slices.BinarySearch(f(b), a); !ok {
					t.Fatalf("%q in %s(%q) but not the reverse", l.Text(b), name, l.Text(a))
				}
			}
			links[name] += len(ns)
		}
	}
	for a := Word(1); int(a) <= l.nLemma; a++ {
		for _, b := range l.Antonyms(a) {
			if _, ok := slices.BinarySearch(l.Related(a), b); ok {
				t.Fatalf("%q and %q are both related and antonyms", l.Text(a), l.Text(b))
			}
		}
	}
	t.Logf("%d lemmas, %d related pairs, %d antonym pairs", l.nLemma, links["Related"]/2, links["Antonyms"]/2)
}

// TestKnownAndFreq checks the two questions of the typo rule: is the word
// a dictionary word, and how often is it said (SUBTLEX-US counts, 0 for a
// word it never saw).
func TestKnownAndFreq(t *testing.T) {
	l := lexicon(t)
	cases := []struct {
		name   string
		word   string
		known  bool
		counts func(uint32) bool
	}{
		{"most frequent word", "you", true, func(n uint32) bool { return n == 2134713 }},
		{"written upper case in SUBTLEX", "i", true, func(n uint32) bool { return n == 2038529 }},
		{"lemma", "automobile", true, func(n uint32) bool { return n > 0 }},
		{"inflection morphy resolves", "geese", true, func(n uint32) bool { return n > 0 }},
		{"technical word of the word list", "python", true, func(n uint32) bool { return n > 0 }},
		{"country", "austria", true, func(n uint32) bool { return n > 0 }},
		{"country of a near spelling", "australia", true, func(n uint32) bool { return n > 0 }},
		{"possessive of a dictionary word, counted as written", "australia's", true, func(n uint32) bool { return n == 0 }},
		{"plural only morphy knows", "informations", true, func(n uint32) bool { return n == 0 }},
		{"typo", "pyhton", false, func(n uint32) bool { return n == 0 }},
		{"typo in a possessive", "pyhton's", false, func(n uint32) bool { return n == 0 }},
		{"bare possessive", "'s", false, func(n uint32) bool { return n == 0 }},
		{"empty", "", false, func(n uint32) bool { return n == 0 }},
		{"subtitle word that is no dictionary word", "tellin", false, func(n uint32) bool { return n > 0 }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := l.Known(c.word); got != c.known {
				t.Errorf("Known(%q) = %v, want %v", c.word, got, c.known)
			}
			if n := l.Freq(c.word); !c.counts(n) {
				t.Errorf("Freq(%q) = %d", c.word, n)
			}
		})
	}
}

var (
	sink      []Word
	sinkBool  bool
	sinkCount uint32
)

// BenchmarkLookup measures the per-word calls of the guard's hot path, over
// a mix of inflections, lemmas, typos and possessives.
func BenchmarkLookup(b *testing.B) {
	l := lexicon(b)
	words := []string{"running", "geese", "studies", "car", "pyhton", "quickest", "the", "australia's", "informations"}
	calls := []struct {
		name string
		call func(string)
	}{
		{"Lemmas", func(w string) { sink = l.Lemmas(w) }},
		{"Known", func(w string) { sinkBool = l.Known(w) }},
		{"Freq", func(w string) { sinkCount = l.Freq(w) }},
	}
	for _, c := range calls {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				c.call(words[i%len(words)])
				i++
			}
		})
	}
}

func BenchmarkRelated(b *testing.B) {
	l := lexicon(b)
	ids := append(l.Lemmas("car"), l.Lemmas("fast")...)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		sink = l.Related(ids[i%len(ids)])
		i++
	}
}

// BenchmarkDecode measures what Default costs once: the time to decode the
// embedded table and, as heap-MB, the heap the decoded lexicon keeps.
func BenchmarkDecode(b *testing.B) {
	b.ReportAllocs()
	var l *Lexicon
	for b.Loop() {
		var err error
		if l, err = Decode(embedded); err != nil {
			b.Fatal(err)
		}
	}
	var before, after runtime.MemStats
	l = nil
	runtime.GC()
	runtime.ReadMemStats(&before)
	l, _ = Decode(embedded)
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(l)
	b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/(1<<20), "heap-MB")
}
