package guard

import (
	"strings"
	"testing"
)

// verdict is what a case expects of Decide.
type verdict int

const (
	refuse    verdict = iota // allow false
	uncertain                // allow, not aligned
	aligned                  // allow and aligned
	allowed                  // allow, aligned or not
)

func (v verdict) String() string {
	return [...]string{"refuse", "uncertain", "aligned", "allowed"}[v]
}

type guardCase struct {
	name     string
	query    string
	cached   string
	want     verdict
	reasonIn string // a prefix of the reason (refused or uncertain)
}

func verdictOf(allow, isAligned bool) verdict {
	switch {
	case !allow:
		return refuse
	case !isAligned:
		return uncertain
	}
	return aligned
}

func runGuardCases(t *testing.T, cases []guardCase) {
	t.Helper()
	g := New()
	if err := g.Degraded(); err != nil {
		t.Fatalf("the embedded lexicon does not load: %v", err)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			allow, al, reason := g.Decide(g.Prepare(c.query), g.Prepare(c.cached))
			got := verdictOf(allow, al)
			if got != c.want && !(c.want == allowed && allow) {
				t.Fatalf("Decide(%q, %q) = %v (%s), want %v", c.query, c.cached, got, reason, c.want)
			}
			if c.reasonIn != "" && !strings.HasPrefix(reason, c.reasonIn) {
				t.Errorf("reason %q, want it to start with %q", reason, c.reasonIn)
			}
			if got != aligned && reason == "" {
				t.Errorf("%v without a reason", got)
			}
			// Symmetric: the other order gives the same verdict.
			allow2, al2, _ := g.Decide(g.Prepare(c.cached), g.Prepare(c.query))
			if got2 := verdictOf(allow2, al2); got2 != got {
				t.Errorf("Decide is not symmetric: reversed gives %v", got2)
			}
		})
	}
}

func TestGuardNumbers(t *testing.T) {
	runGuardCases(t, []guardCase{
		{"same number", "How tall is a 12 storey building?", "Height of a 12 storey building?", allowed, ""},
		{"different number", "What is 17 times 3?", "What is 17 times 4?", refuse, "number:"},
		{"word equals digit", "Give me three tips for running", "Give me 3 tips for running", allowed, ""},
		{"compound number word", "List twenty-one prime numbers", "List 21 prime numbers", allowed, ""},
		{"hundreds in words", "a story of two hundred words", "a story of 200 words", allowed, ""},
		{"word differs from digit", "Give me three tips for running", "Give me 4 tips for running", refuse, "number:"},
		{"one is not counted", "What's one way to stay focused?", "What's a way to stay focused?", allowed, ""},
		{"number only on one side", "Summarise this in 5 bullet points", "Summarise this in bullet points", refuse, "number:"},
		{"multiset not set", "Add 2 and 2", "Add 2 and 3", refuse, "number:"},
		{"order free", "difference between 8 and 9", "difference between 9 and 8", allowed, ""},
		{"decimals", "Round 3.14 to one decimal", "Round 3.15 to one decimal", refuse, "number:"},
		{"thousands separator", "Is 1,000 a round number?", "Is 1000 a round number?", allowed, ""},
		{"percentages", "What is 15% of 80?", "What is 15 percent of 80?", allowed, ""},
		{"percent differs", "What is 15% of 80?", "What is 20% of 80?", refuse, "number:"},
		{"version prefix", "What changed in v1.2?", "What changed in 1.2?", allowed, ""},
		{"versions differ", "What changed in Go v1.21?", "What changed in Go v1.22?", refuse, "number:"},
		{"dates differ", "What happened on 2021-03-04?", "What happened on 2021-03-05?", refuse, "number:"},
		{"times differ", "Set an alarm for 7:30", "Set an alarm for 7:45", refuse, "number:"},
		{"negative sign", "Is -5 less than 3?", "Is 5 less than 3?", refuse, "number:"},
		{"http status codes", "Why does the API return 401?", "Why does the API return 403?", refuse, "number:"},
	})
}

func TestGuardUnits(t *testing.T) {
	runGuardCases(t, []guardCase{
		{"same unit spelled differently", "How long to walk 5 km?", "How long does a 5 kilometre walk take?", allowed, ""},
		{"glued unit", "How long to walk 5km?", "How long to walk 5 kilometres?", allowed, ""},
		{"different unit", "How long to walk 5 km?", "How long to walk 5 miles?", refuse, "number:"},
		{"currency symbol and word", "Is $20 a fair tip?", "Is 20 dollars a fair tip?", allowed, ""},
		{"different currency", "Convert $100 to yen", "Convert €100 to yen", refuse, "number:"},
		{"bare currency symbols", "prices shown in $ please", "prices shown in € please", refuse, "number:"},
		{"temperature units", "Is 30°C hot?", "Is 30°F hot?", refuse, "number:"},
		{"storage units", "Is 16 GB of RAM enough?", "Is 16 MB of RAM enough?", refuse, "number:"},
		{"in is not inches", "Things to do in 2024 in Berlin", "Things to do in Berlin in 2024", allowed, ""},
	})
}

func TestGuardQuoted(t *testing.T) {
	runGuardCases(t, []guardCase{
		{"same quote", `What does "carpe diem" mean?`, `Meaning of "carpe diem"?`, allowed, ""},
		{"quote case ignored", `Translate "Thank You" to French`, `Translate "thank you" into French`, allowed, ""},
		{"different quote", `What does "carpe diem" mean?`, `What does "carpe noctem" mean?`, refuse, "quoted:"},
		{"single quotes", "Spell 'necessary' backwards", "Spell 'separate' backwards", refuse, "quoted:"},
		{"curly quotes", "What rhymes with “orange”?", `What rhymes with "orange"?`, allowed, ""},
		{"apostrophes are not quotes", "What's my dog's name about?", "What is my dog's name about?", allowed, ""},
		{"quote on one side", `Define "serendipity"`, "Define serendipity", refuse, "quoted:"},
	})
}

func TestGuardEntities(t *testing.T) {
	runGuardCases(t, []guardCase{
		{"possessive", "What is the capital of France?", "Which city is France's capital?", allowed, ""},
		{"different country", "What is the largest city in Brazil?", "What is the largest city in Argentina?", refuse, "entity:"},
		{"sentence start is not an entity", "Explain how vaccines work.", "How do vaccines work? Explain.", allowed, ""},
		{"entity at sentence start elsewhere", "Is Rust faster than Go?", "Rust vs Go: which is faster?", allowed, ""},
		{"entity lower-cased by the user", "How do I install Docker on Ubuntu?", "how to install docker on ubuntu", allowed, ""},
		{"acronyms differ", "Explain how DNS works", "Explain how DHCP works", refuse, "entity:"},
		{"acronym at sentence start", "NASA budget this year?", "ESA budget this year?", refuse, "entity:"},
		{"camel case names", "Is JavaScript single-threaded?", "Is TypeScript single-threaded?", refuse, "entity:"},
		{"people", "When was Ada Lovelace born?", "When was Grace Hopper born?", refuse, "entity:"},
		{"pronoun I", "Can I freeze bread?", "Is it possible for me to freeze bread? I wonder.", allowed, ""},
		{"title case text", "How To Bake Sourdough Bread", "how to bake sourdough bread", allowed, ""},
		{"shouting", "HOW DO I BAKE BREAD", "how do I bake bread", allowed, ""},
		{"function word capitalised", "Tips for sleep. And for naps?", "Tips for sleep and naps", allowed, ""},
	})
}

func TestGuardNegation(t *testing.T) {
	runGuardCases(t, []guardCase{
		{"not on one side", "Why is my code working?", "Why is my code not working?", refuse, "negation:"},
		{"contraction on one side", "Should I use tabs?", "Shouldn't I use tabs?", refuse, "negation:"},
		{"without", "Pasta recipe with eggs", "Pasta recipe without eggs", refuse, "negation:"},
		{"never", "Things to say in an interview", "Things to never say in an interview", refuse, "negation:"},
		{"both negated differently", "Why won't my car start?", "Why doesn't my car start?", allowed, ""},
		{"negation typed without apostrophe", "why doesnt my car start", "why doesn't my car start", allowed, ""},
		{"no", "Cake recipe with sugar", "Cake recipe with no sugar", refuse, "negation:"},
	})
}

func TestGuardCode(t *testing.T) {
	runGuardCases(t, []guardCase{
		{"snake case", "What does os.path_join return?", "What does os.path_split return?", refuse, "code:"},
		{"camel case", "Why is getUserName undefined?", "Why is getUserId undefined?", refuse, "code:"},
		{"same identifier", "Why is getUserName undefined?", "getUserName is undefined, why?", allowed, ""},
		{"dotted names", "How do I use json.Marshal?", "How do I use json.Unmarshal?", refuse, "code:"},
		{"file names", "How do I parse config.yaml?", "How do I parse config.json?", refuse, "code:"},
		{"extensions", "Open .csv files in Python", "Open .tsv files in Python", refuse, "code:"},
		{"backticks", "What does `git stash` do?", "What does `git reset` do?", refuse, "code:"},
		{"backticks same", "What does `git stash` do?", "Explain `git stash`", allowed, ""},
		{"error codes", "What does error E1101 mean?", "What does error E1102 mean?", refuse, "code:"},
		{"paths", "Permission denied on /etc/hosts", "Permission denied on /etc/passwd", refuse, "code:"},
		{"calls", "When should I call flush()?", "When should I call close()?", refuse, "code:"},
		{"abbreviation is not code", "Fruits, e.g. apples, are healthy?", "Are fruits, e.g. apples, healthy?", allowed, ""},
		{"hex", "What is 0xFF in decimal?", "What is 0xFE in decimal?", refuse, "code:"},
	})
}

func TestGuardLanguage(t *testing.T) {
	runGuardCases(t, []guardCase{
		{"different script", "What is the capital of Russia?", "Какая столица России?", refuse, "script:"},
		{"same script", "Какая столица России?", "Назови столицу России", allowed, ""},
		{"han against kana", "東京の天気は？", "東京天氣如何", refuse, "script:"},
		{"english against spanish", "What is the best way to learn the guitar?", "¿Cuál es la mejor forma de aprender la guitarra?", refuse, "language:"},
		{"french against german", "Comment faire une tarte aux pommes ?", "Wie mache ich einen Apfelkuchen und was ist das Rezept?", refuse, "language:"},
		// Too few function words to tell the language: left to the cosine.
		{"too short to tell", "Guitar lessons", "Lecciones guitarra", allowed, ""},
	})
}

func TestGuardAntonyms(t *testing.T) {
	runGuardCases(t, []guardCase{
		{"increase decrease", "How to increase heap size", "How to decrease heap size", refuse, "antonym:"},
		{"inflected", "Increasing the font size in Vim", "How do I decrease font sizes in Vim?", refuse, "antonym:"},
		{"best worst", "Best practices for logging", "Worst practices for logging", refuse, "antonym:"},
		{"both sides hold both", "Pros and cons of remote work", "Remote work: cons and pros", allowed, ""},
		{"encrypt decrypt", "encrypt a file with gpg", "decrypt a file with gpg", refuse, "antonym:"},
	})
}

func TestGuardFrame(t *testing.T) {
	runGuardCases(t, []guardCase{
		{"one slot substituted", "How do I bake bread at home?", "How do I bake cookies at home?", uncertain, "unaligned:"},
		{"verb substituted", "How do I rename a folder?", "How do I copy a folder?", uncertain, "unaligned:"},
		{"word added to the same frame", "Write a poem about the sea", "Write a sad poem about the sea", uncertain, "unaligned:"},
		{"reworded paraphrase", "How do I rename a folder?", "What's the way to give a folder a new name?", allowed, ""},
		{"inflection", "Tips for the cat", "Tips for cats", allowed, ""},
		{"reordered", "Ways to save money on groceries", "On groceries, how can I save money?", allowed, ""},
		{"request verbs are not slots", "Tell me a riddle about time", "Give me a riddle about time", allowed, ""},
	})
}

func TestGuardEdgeCases(t *testing.T) {
	runGuardCases(t, []guardCase{
		{"empty", "", "", allowed, ""},
		{"identical", "How do I bake bread?", "How do I bake bread?", allowed, ""},
		{"punctuation only", "?!", "...", allowed, ""},
		{"emoji", "🍕 recipe", "🍕 recipe please", allowed, ""},
		// FuzzGuardAllow: a lone ’ (3 bytes) was read byte-wise before
		// the apostrophe, at index -1.
		{"lone typographic apostrophe", "’", "0", refuse, "number:"},
		{"typographic plural possessive", "Where do the dogs’ bowls go?", "Where do the dogs' bowls go?", allowed, ""},
	})
}

// FuzzDecide: Decide never panics, is symmetric in its verdict, aligns a
// prompt with itself, and gives a reason for every refusal or doubt.
func FuzzDecide(f *testing.F) {
	for _, s := range [][2]string{
		{"What is the capital of France?", "Which city is France's capital?"},
		{"What is 15% of $80?", "What's fifteen percent of 80 dollars?"},
		{"Why is `getUser()` nil in main.go?", "why isn't getUser nil"},
		{"'quoted' “curly” \"straight\"", "'"},
		{"Какая столица России?", "東京の天気は？"},
		{"twenty-one hundred thousand million", "-5 +3 v1.2 0xFF 1,000 2021-03-04"},
		{"How many hosts in a /24 subnet?", "How many hosts in a /26 subnet?"},
		{"Hi! I'm new here. How do I zoom in?", "how do i zoom out"},
		{"Convert the binary number 1101 to decimal.", "Convert the decimal number 1101 to binary."},
	} {
		f.Add(s[0], s[1])
	}
	g := New()
	f.Fuzz(func(t *testing.T, a, b string) {
		pa, pb := g.Prepare(a), g.Prepare(b)
		allow, al, reason := g.Decide(pa, pb)
		if (!allow || !al) && reason == "" {
			t.Fatalf("Decide(%q, %q) = %v, %v without a reason", a, b, allow, al)
		}
		if allow2, al2, _ := g.Decide(pb, pa); allow2 != allow || al2 != al {
			t.Fatalf("not symmetric: Decide(%q, %q) = %v %v, reversed %v %v", a, b, allow, al, allow2, al2)
		}
		if allow, al, reason := g.Decide(pa, g.Prepare(a)); !allow || !al {
			t.Fatalf("Decide(%q, itself) = %v %v: %s", a, allow, al, reason)
		}
	})
}

// BenchmarkDecide measures one candidate's cost: Decide on two prompts
// prepared once (as the cache holds them), and Prepare of one prompt.
func BenchmarkDecide(b *testing.B) {
	g := New()
	for _, c := range []struct{ name, a, b string }{
		{"paraphrase", "What is the capital of France?", "Which city is France's capital?"},
		{"near-miss", "How do I sort a list of tuples in Python by the second element?", "How do I sort a list of tuples in Python by the first element?"},
		{"long", strings.Repeat("the quick brown fox jumps over the lazy dog ", 12), strings.Repeat("a quick brown fox jumped over a lazy dog ", 12)},
	} {
		pa, pb := g.Prepare(c.a), g.Prepare(c.b)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				g.Decide(pa, pb)
			}
		})
		b.Run(c.name+"/prepare", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				g.Prepare(c.a)
			}
		})
	}
}
