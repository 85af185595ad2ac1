package guard

import (
	"fmt"
	"strings"
	"testing"
)

// The cases below are written for these tests: general English, not pairs
// of any tuning or evaluation set.

func TestAlignPartners(t *testing.T) {
	runGuardCases(t, []guardCase{
		{"identical", "How do I bake bread at home?", "How do I bake bread at home?", aligned, ""},
		{"inflection", "How do I delete a remote branch?", "Deleting remote branches: how?", aligned, ""},
		{"irregular form", "Why did the geese fly south?", "Why does a goose fly south?", aligned, ""},
		{"wordnet synonym", "How do I start a car with a weak battery?", "How do I start an automobile with a weak battery?", aligned, ""},
		{"similar adjective", "What is a quick way to learn chess?", "What is a fast way to learn chess?", aligned, ""},
		{"request verb against question", "What is a hash table?", "Explain hash tables.", aligned, ""},
		{"greeting and thanks are free", "hi! what is a hash table? thanks", "What is a hash table?", aligned, ""},
		{"bare contraction", "whats a hash table", "What's a hash table?", aligned, ""},
		{"typo of a content word", "How do I reverse a strnig in Python?", "How do I reverse a string in Python?", aligned, ""},
		{"transposed letters", "how to boil an egg qiuckly", "how to boil an egg quickly", aligned, ""},
		{"typo of a function word", "hwo to boil an egg", "how to boil an egg", aligned, ""},
		{"clipped word", "set an env variable in bash", "set an environment variable in bash", aligned, ""},
		{"two real words are no typo", "Is Austria in the EU?", "Is Australia in the EU?", refuse, "entity:"},
		{"similar real words of like frequency", "How do I bake a cake?", "How do I take a cake?", uncertain, "unaligned:"},
		{"a substituted slot has no partner", "How do I sort a list?", "How do I shuffle a list?", uncertain, "unaligned:"},
		{"an added word has no partner", "Write a poem about the sea", "Write a sad poem about the sea", uncertain, "unaligned:"},
		{"misspelt name", "What is the capital of Portugl?", "What is the capital of Portugal?", aligned, ""},
		{"acronym spelled like a function word", "Can I drive in the US with a UK licence?", "Can I drive in the UK with a UK licence?", refuse, "entity:"},
	})
}

func TestAlignNumbers(t *testing.T) {
	runGuardCases(t, []guardCase{
		{"subnet slash 24 vs 26", "How many usable hosts are in a /24 network?", "How many usable hosts are in a /26 network?", refuse, "number:"},
		{"same subnet", "How many usable hosts are in a /24 network?", "usable hosts in a /24 network?", aligned, ""},
		{"number glued by hyphens", "Can a 12-year-old ride the bus alone?", "Can a 16-year-old ride the bus alone?", refuse, "number:"},
		{"same hyphenated number", "Can a 12-year-old ride the bus alone?", "Is a 12 year old allowed to ride the bus alone?", allowed, ""},
	})
}

func TestAlignNegation(t *testing.T) {
	runGuardCases(t, []guardCase{
		{"negation on one side", "Which fruits contain vitamin C?", "Which fruits do not contain vitamin C?", refuse, "negation:"},
		{"hedge is not a negation", "I don't know how to tie a tie. How do I tie a tie?", "How do I tie a tie?", aligned, ""},
		{"not sure is a hedge", "Not sure how, but how do I tie a tie?", "How do I tie a tie?", aligned, ""},
		{"negation moved to another word", "The charger works but the cable does not. What is broken?", "The charger does not work but the cable works. What is broken?", refuse, "negation:"},
		{"typographic apostrophe", "Why doesn’t my dog eat?", "Why doesn't my dog eat?", aligned, ""},
		{"typographic apostrophe against none", "Why doesn’t my dog eat?", "Why does my dog eat?", refuse, "negation:"},
		{"negative prefix", "Is it legal to record a phone call?", "Is it illegal to record a phone call?", refuse, "antonym:"},
		{"wordnet antonym", "How do I make a room look bigger?", "How do I make a room look smaller?", refuse, "antonym:"},
	})
}

func TestAlignOrder(t *testing.T) {
	runGuardCases(t, []guardCase{
		{"to against from", "How do I move my contacts to another phone?", "How do I move my contacts from another phone?", refuse, "order:"},
		{"swapped arguments", "Translate this sentence from Spanish to Italian.", "Translate this sentence from Italian to Spanish.", refuse, ""},
		{"swapped around than", "Is a lion heavier than a tiger?", "Is a tiger heavier than a lion?", refuse, "order:"},
		{"swapped around of", "Can I use honey instead of sugar in tea?", "Can I use sugar instead of honey in tea?", refuse, "order:"},
		{"same order reworded", "Convert a PDF file to a Word document", "How do I convert a PDF file into a Word document?", allowed, ""},
		{"clauses reordered", "Before bed, is it bad to drink coffee?", "Is it bad to drink coffee before bed?", aligned, ""},
		{"each clause compared with its own", "If it's noon in Madrid, what time is it in Chicago?", "If it's noon in Chicago, what time is it in Madrid?", refuse, "order:"},
		{"comparison written two ways", "Is Rust faster than Go?", "Rust vs Go: which is faster?", allowed, ""},
		{"numbers swapped around markers", "Scale a recipe written for 4 people to 6 people.", "Scale a recipe written for 6 people to 4 people.", refuse, "order:"},
		{"codes swapped around markers", "Can I use a 9x13 dish for a lasagna written for an 8x8 dish?", "Can I use an 8x8 dish for a lasagna written for a 9x13 dish?", refuse, "order:"},
		{"a repeated head word with its own arguments", "Rooms in Paris and rooms in Rome", "Rooms in Paris and rooms in Rome", aligned, ""},
		{"a repeated head word, arguments swapped", "Flights from Paris and flights from Rome", "Flights from Rome and flights from Madrid", refuse, ""},
		{"a chain of phrases reordered", "Best museums in Paris in winter", "Best museums in winter in Paris", aligned, ""},
		{"particles as words need no partner", "How do I set up a printer?", "How do I set a printer up?", aligned, ""},
		{"particle", "How do I zoom in on a photo?", "How do I zoom out on a photo?", refuse, ""},
		{"question word", "When was the Eiffel Tower built?", "Why was the Eiffel Tower built?", refuse, "question:"},
		{"how against why", "How did the Roman Empire fall?", "Why did the Roman Empire fall?", refuse, "question:"},
		{"how much and how long are one kind", "How long does a passport take?", "How much time does a passport take?", allowed, ""},
	})
}

func TestAlignBackground(t *testing.T) {
	runGuardCases(t, []guardCase{
		{"background sentence is padding", "Hello! My kids are begging for pancakes this morning. How do I make pancakes fluffy? Thanks!", "How do I make pancakes fluffy?", aligned, "aligned:"},
		{"background with a name is not padding", "I live in Boston. What is the sales tax on clothes?", "What is the sales tax on clothes?", refuse, "entity:"},
		{"background negation in padding", "I can't find my notes anywhere. How do I recover a deleted file on a Mac?", "How do I recover a deleted file on a Mac?", aligned, ""},
		{"a request sentence is not background", "Explain photosynthesis. Keep it brief.", "Explain photosynthesis.", uncertain, "unaligned:"},
		{"both prompts add words", "I'm moving soon. How do I pack dishes?", "How do I pack plates safely?", uncertain, "unaligned:"},
	})
}

func TestAlignTooLong(t *testing.T) {
	var b strings.Builder
	for i := range maxAlignWords + 1 {
		fmt.Fprintf(&b, "word%c%c ", 'a'+i%26, 'a'+i/26%26)
	}
	long := b.String()
	runGuardCases(t, []guardCase{
		{"too long to align: uncertain", long, long + "again", uncertain, "unaligned: too long"},
		{"too long, but the hard rules still refuse", long + "5", long + "6", refuse, "number:"},
	})
}

func TestDegraded(t *testing.T) {
	g := WithLexicon(nil)
	if g.Degraded() == nil {
		t.Fatal("rules without a lexicon do not say they are degraded")
	}
	for _, c := range []guardCase{
		{"identical", "How do I bake bread?", "How do I bake bread?", aligned, ""},
		{"inflection by stem", "How do I bake breads?", "How do I bake bread?", aligned, ""},
		{"synonym needs the lexicon", "What is a quick way to learn chess?", "What is a fast way to learn chess?", uncertain, ""},
		{"number still refused", "What is 2+2?", "What is 2+3?", refuse, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			allow, al, reason := g.Decide(g.Prepare(c.query), g.Prepare(c.cached))
			if got := verdictOf(allow, al); got != c.want {
				t.Fatalf("degraded Decide(%q, %q) = %v (%s), want %v", c.query, c.cached, got, reason, c.want)
			}
		})
	}
}

func TestDecideUnprepared(t *testing.T) {
	g := New()
	p := g.Prepare("How do I bake bread?")
	for _, c := range []struct {
		name string
		a, b any
	}{
		{"nil", nil, p},
		{"string", "How do I bake bread?", p},
		{"typed nil", (*Prompt)(nil), p},
	} {
		t.Run(c.name, func(t *testing.T) {
			if allow, _, reason := g.Decide(c.a, c.b); allow || reason == "" {
				t.Fatalf("Decide(%v) allowed (%q)", c.a, reason)
			}
			if allow, _, _ := g.Decide(c.b, c.a); allow {
				t.Fatal("reversed: allowed")
			}
		})
	}
}
