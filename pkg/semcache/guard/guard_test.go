package guard

import (
	"strings"
	"testing"
)

type guardCase struct {
	name     string
	query    string
	cached   string
	ok       bool
	reasonIn string // a substring of the reason when refused
}

func runGuardCases(t *testing.T, cases []guardCase) {
	t.Helper()
	g := New()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ok, reason := g.Allow(c.query, c.cached)
			if ok != c.ok {
				t.Fatalf("Allow(%q, %q) = %v (%s), want %v", c.query, c.cached, ok, reason, c.ok)
			}
			if !ok && !strings.HasPrefix(reason, c.reasonIn) {
				t.Errorf("reason %q, want it to start with %q", reason, c.reasonIn)
			}
			if ok && reason != "" {
				t.Errorf("allowed with reason %q", reason)
			}
			// Symmetric: the other order gives the same answer.
			if ok2, _ := g.Allow(c.cached, c.query); ok2 != ok {
				t.Errorf("Allow is not symmetric: reversed gives %v", ok2)
			}
		})
	}
}

func TestGuardNumbers(t *testing.T) {
	runGuardCases(t, []guardCase{
		{"same number", "How tall is a 12 storey building?", "Height of a 12 storey building?", true, ""},
		{"different number", "What is 17 times 3?", "What is 17 times 4?", false, "number:"},
		{"word equals digit", "Give me three tips for running", "Give me 3 tips for running", true, ""},
		{"compound number word", "List twenty-one prime numbers", "List 21 prime numbers", true, ""},
		{"hundreds in words", "a story of two hundred words", "a story of 200 words", true, ""},
		{"word differs from digit", "Give me three tips for running", "Give me 4 tips for running", false, "number:"},
		{"one is not counted", "What's one way to stay focused?", "What's a way to stay focused?", true, ""},
		{"number only on one side", "Summarise this in 5 bullet points", "Summarise this in bullet points", false, "number:"},
		{"multiset not set", "Add 2 and 2", "Add 2 and 3", false, "number:"},
		{"order free", "difference between 8 and 9", "difference between 9 and 8", true, ""},
		{"decimals", "Round 3.14 to one decimal", "Round 3.15 to one decimal", false, "number:"},
		{"thousands separator", "Is 1,000 a round number?", "Is 1000 a round number?", true, ""},
		{"percentages", "What is 15% of 80?", "What is 15 percent of 80?", true, ""},
		{"percent differs", "What is 15% of 80?", "What is 20% of 80?", false, "number:"},
		{"version prefix", "What changed in v1.2?", "What changed in 1.2?", true, ""},
		{"versions differ", "What changed in Go v1.21?", "What changed in Go v1.22?", false, "number:"},
		{"dates differ", "What happened on 2021-03-04?", "What happened on 2021-03-05?", false, "number:"},
		{"times differ", "Set an alarm for 7:30", "Set an alarm for 7:45", false, "number:"},
		{"negative sign", "Is -5 less than 3?", "Is 5 less than 3?", false, "number:"},
		{"http status codes", "Why does the API return 401?", "Why does the API return 403?", false, "number:"},
	})
}

func TestGuardUnits(t *testing.T) {
	runGuardCases(t, []guardCase{
		{"same unit spelled differently", "How long to walk 5 km?", "How long does a 5 kilometre walk take?", true, ""},
		{"glued unit", "How long to walk 5km?", "How long to walk 5 kilometres?", true, ""},
		{"different unit", "How long to walk 5 km?", "How long to walk 5 miles?", false, "number:"},
		{"currency symbol and word", "Is $20 a fair tip?", "Is 20 dollars a fair tip?", true, ""},
		{"different currency", "Convert $100 to yen", "Convert €100 to yen", false, "number:"},
		{"bare currency symbols", "prices shown in $ please", "prices shown in € please", false, "number:"},
		{"temperature units", "Is 30°C hot?", "Is 30°F hot?", false, "number:"},
		{"storage units", "Is 16 GB of RAM enough?", "Is 16 MB of RAM enough?", false, "number:"},
		{"in is not inches", "Things to do in 2024 in Berlin", "Things to do in Berlin in 2024", true, ""},
	})
}

func TestGuardQuoted(t *testing.T) {
	runGuardCases(t, []guardCase{
		{"same quote", `What does "carpe diem" mean?`, `Meaning of "carpe diem"?`, true, ""},
		{"quote case ignored", `Translate "Thank You" to French`, `Translate "thank you" into French`, true, ""},
		{"different quote", `What does "carpe diem" mean?`, `What does "carpe noctem" mean?`, false, "quoted:"},
		{"single quotes", "Spell 'necessary' backwards", "Spell 'separate' backwards", false, "quoted:"},
		{"curly quotes", "What rhymes with “orange”?", `What rhymes with "orange"?`, true, ""},
		{"apostrophes are not quotes", "What's my dog's name about?", "What is my dog's name about?", true, ""},
		{"quote on one side", `Define "serendipity"`, "Define serendipity", false, "quoted:"},
	})
}

func TestGuardEntities(t *testing.T) {
	runGuardCases(t, []guardCase{
		{"possessive", "What is the capital of France?", "Which city is France's capital?", true, ""},
		{"different country", "What is the largest city in Brazil?", "What is the largest city in Argentina?", false, "entity:"},
		{"sentence start is not an entity", "Explain how vaccines work.", "How do vaccines work? Explain.", true, ""},
		{"entity at sentence start elsewhere", "Is Rust faster than Go?", "Rust vs Go: which is faster?", true, ""},
		{"entity lower-cased by the user", "How do I install Docker on Ubuntu?", "how to install docker on ubuntu", true, ""},
		{"acronyms differ", "Explain how DNS works", "Explain how DHCP works", false, "entity:"},
		{"acronym at sentence start", "NASA budget this year?", "ESA budget this year?", false, "entity:"},
		{"camel case names", "Is JavaScript single-threaded?", "Is TypeScript single-threaded?", false, "entity:"},
		{"people", "When was Ada Lovelace born?", "When was Grace Hopper born?", false, "entity:"},
		{"pronoun I", "Can I freeze bread?", "Is it possible for me to freeze bread? I wonder.", true, ""},
		{"title case text", "How To Bake Sourdough Bread", "how to bake sourdough bread", true, ""},
		{"shouting", "HOW DO I BAKE BREAD", "how do I bake bread", true, ""},
		{"function word capitalised", "Tips for sleep. And for naps?", "Tips for sleep and naps", true, ""},
	})
}

func TestGuardNegation(t *testing.T) {
	runGuardCases(t, []guardCase{
		{"not on one side", "Why is my code working?", "Why is my code not working?", false, "negation:"},
		{"contraction on one side", "Should I use tabs?", "Shouldn't I use tabs?", false, "negation:"},
		{"without", "Pasta recipe with eggs", "Pasta recipe without eggs", false, "negation:"},
		{"never", "Things to say in an interview", "Things to never say in an interview", false, "negation:"},
		{"both negated differently", "Why won't my car start?", "Why doesn't my car start?", true, ""},
		{"negation typed without apostrophe", "why doesnt my car start", "why doesn't my car start", true, ""},
		{"no", "Cake recipe with sugar", "Cake recipe with no sugar", false, "negation:"},
	})
}

func TestGuardCode(t *testing.T) {
	runGuardCases(t, []guardCase{
		{"snake case", "What does os.path_join return?", "What does os.path_split return?", false, "code:"},
		{"camel case", "Why is getUserName undefined?", "Why is getUserId undefined?", false, "code:"},
		{"same identifier", "Why is getUserName undefined?", "getUserName is undefined, why?", true, ""},
		{"dotted names", "How do I use json.Marshal?", "How do I use json.Unmarshal?", false, "code:"},
		{"file names", "How do I parse config.yaml?", "How do I parse config.json?", false, "code:"},
		{"extensions", "Open .csv files in Python", "Open .tsv files in Python", false, "code:"},
		{"backticks", "What does `git stash` do?", "What does `git reset` do?", false, "code:"},
		{"backticks same", "What does `git stash` do?", "Explain `git stash`", true, ""},
		{"error codes", "What does error E1101 mean?", "What does error E1102 mean?", false, "code:"},
		{"paths", "Permission denied on /etc/hosts", "Permission denied on /etc/passwd", false, "code:"},
		{"calls", "When should I call flush()?", "When should I call close()?", false, "code:"},
		{"abbreviation is not code", "Fruits, e.g. apples, are healthy?", "Are fruits, e.g. apples, healthy?", true, ""},
		{"hex", "What is 0xFF in decimal?", "What is 0xFE in decimal?", false, "code:"},
	})
}

func TestGuardLanguage(t *testing.T) {
	runGuardCases(t, []guardCase{
		{"different script", "What is the capital of Russia?", "Какая столица России?", false, "script:"},
		{"same script", "Какая столица России?", "Назови столицу России", true, ""},
		{"han against kana", "東京の天気は？", "東京天氣如何", false, "script:"},
		{"english against spanish", "What is the best way to learn the guitar?", "¿Cuál es la mejor forma de aprender la guitarra?", false, "language:"},
		{"french against german", "Comment faire une tarte aux pommes ?", "Wie mache ich einen Apfelkuchen und was ist das Rezept?", false, "language:"},
		// Too few function words to tell the language: left to the cosine.
		{"too short to tell", "Guitar lessons", "Lecciones guitarra", true, ""},
	})
}

func TestGuardAntonyms(t *testing.T) {
	runGuardCases(t, []guardCase{
		{"increase decrease", "How to increase heap size", "How to decrease heap size", false, "antonym:"},
		{"inflected", "Increasing the font size in Vim", "How do I decrease font sizes in Vim?", false, "antonym:"},
		{"best worst", "Best practices for logging", "Worst practices for logging", false, "antonym:"},
		{"both sides hold both", "Pros and cons of remote work", "Remote work: cons and pros", true, ""},
		{"encrypt decrypt", "encrypt a file with gpg", "decrypt a file with gpg", false, "antonym:"},
	})
}

func TestGuardFrame(t *testing.T) {
	runGuardCases(t, []guardCase{
		{"one slot substituted", "How do I bake bread at home?", "How do I bake cookies at home?", false, "frame:"},
		{"verb substituted", "How do I rename a folder?", "How do I copy a folder?", false, "frame:"},
		{"word added to the same frame", "Write a poem about the sea", "Write a sad poem about the sea", false, "frame:"},
		{"reworded paraphrase", "How do I rename a folder?", "What's the way to give a folder a new name?", true, ""},
		{"inflection", "Tips for the cat", "Tips for cats", true, ""},
		{"reordered", "Ways to save money on groceries", "On groceries, how can I save money?", true, ""},
		{"request verbs are not slots", "Tell me a riddle about time", "Give me a riddle about time", true, ""},
	})
}

func TestGuardEdgeCases(t *testing.T) {
	runGuardCases(t, []guardCase{
		{"empty", "", "", true, ""},
		{"identical", "How do I bake bread?", "How do I bake bread?", true, ""},
		{"punctuation only", "?!", "...", true, ""},
		{"emoji", "🍕 recipe", "🍕 recipe please", true, ""},
		// FuzzGuardAllow: a lone ’ (3 bytes) was read byte-wise before
		// the apostrophe, at index -1.
		{"lone typographic apostrophe", "’", "0", false, "number:"},
		{"typographic plural possessive", "Where do the dogs’ bowls go?", "Where do the dogs' bowls go?", true, ""},
	})
}

// FuzzGuardAllow: Allow never panics, is symmetric in its answer, always
// allows a prompt against itself, and gives a reason exactly when it refuses.
func FuzzGuardAllow(f *testing.F) {
	for _, s := range [][2]string{
		{"What is the capital of France?", "Which city is France's capital?"},
		{"What is 15% of $80?", "What's fifteen percent of 80 dollars?"},
		{"Why is `getUser()` nil in main.go?", "why isn't getUser nil"},
		{"'quoted' “curly” \"straight\"", "'"},
		{"Какая столица России?", "東京の天気は？"},
		{"twenty-one hundred thousand million", "-5 +3 v1.2 0xFF 1,000 2021-03-04"},
	} {
		f.Add(s[0], s[1])
	}
	g := New()
	f.Fuzz(func(t *testing.T, a, b string) {
		ok, reason := g.Allow(a, b)
		if ok != (reason == "") {
			t.Fatalf("ok %v with reason %q", ok, reason)
		}
		if ok2, _ := g.Allow(b, a); ok2 != ok {
			t.Fatalf("not symmetric: Allow(%q, %q) = %v, reversed %v", a, b, ok, ok2)
		}
		if ok, reason := g.Allow(a, a); !ok {
			t.Fatalf("Allow(%q, itself) refused: %s", a, reason)
		}
	})
}

func BenchmarkGuardAllow(b *testing.B) {
	g := New()
	for _, c := range []struct{ name, a, b string }{
		{"paraphrase", "What is the capital of France?", "Which city is France's capital?"},
		{"near-miss", "How do I sort a list of tuples in Python by the second element?", "How do I sort a list of tuples in Python by the first element?"},
		{"long", strings.Repeat("the quick brown fox jumps over the lazy dog ", 12), strings.Repeat("a quick brown fox jumped over a lazy dog ", 12)},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				g.Allow(c.a, c.b)
			}
		})
	}
}
