package guard

import (
	"slices"
	"testing"
)

// meets is the gate's test: could cached (sketched) be an aligned
// candidate for query?
func meets(query, cached Sketch) bool {
	if query.Bucket != cached.Bucket {
		return false
	}
	shares := func(keys []uint64) bool {
		for _, k := range keys {
			if _, ok := slices.BinarySearch(cached.Keys, k); ok {
				return true
			}
		}
		return false
	}
	if query.Needless {
		return cached.Needless || shares(query.Any)
	}
	for _, need := range query.Need {
		if !shares(need) {
			return false
		}
	}
	return true
}

func sketchOf(t testing.TB, g *Rules, s string) Sketch {
	t.Helper()
	sk, ok := g.Sketch(g.Prepare(s))
	if !ok {
		t.Fatalf("Sketch(%q) not ok", s)
	}
	return sk
}

// TestSketchMeetsAligned: every pair Decide aligns meets in both
// directions, whatever made its words partners; pairs sharing no partner
// do not.
func TestSketchMeetsAligned(t *testing.T) {
	g := New()
	for _, tc := range []struct {
		name, a, b string
		meet       bool
	}{
		{"same words", "How do I bake bread?", "how do i bake bread", true},
		{"a stem", "How do I bake a cake?", "Baking cakes: how?", true},
		{"a synonym", "What is the quickest way to learn Spanish?", "What is the fastest way to learn Spanish?", true},
		{"a verb's hypernym", "How do I delete a file in Linux?", "How do I remove a file in Linux?", true},
		{"a typo of one letter", "What is the capital of France?", "What is the captial of France?", true},
		{"a rare word two letters off", "How do I configure environment variables?", "How do I confgure enviroment variables?", true},
		{"a clipped form", "set an env variable in bash", "set an environment variable in bash", true},
		{"request verbs and fillers", "Explain photosynthesis.", "Hey, what is photosynthesis?", true},
		{"background padding", "I'm new here and a bit nervous. How do I reset my password?", "How do I reset my password?", true},
		{"clauses reordered", "Before bed, is it bad to drink coffee?", "Is it bad to drink coffee before bed?", true},
		{"greetings only", "hello", "hi there", true},
		{"the same numbers", "What is 15% of 80?", "What's 15 % of 80?", true},
		{"other words", "How do I bake bread?", "How do I fix a bicycle tire?", false},
		{"one common word without a partner", "How do I bake bread?", "How do I bake white bread?", false},
		{"other numbers", "How many hosts in a /24 subnet?", "How many hosts in a /26 subnet?", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sa, sb := sketchOf(t, g, tc.a), sketchOf(t, g, tc.b)
			allow, aligned, why := g.Decide(g.Prepare(tc.a), g.Prepare(tc.b))
			if tc.meet && !(allow && aligned) {
				t.Fatalf("the case needs an aligned pair: Decide = %v %v %q", allow, aligned, why)
			}
			if got := meets(sa, sb) && meets(sb, sa); got != tc.meet {
				t.Errorf("meets = %v, want %v (a %+v, b %+v)", got, tc.meet, sa, sb)
			}
		})
	}
}

func TestSketchWithoutLexicon(t *testing.T) {
	g := WithLexicon(nil)
	if _, ok := g.Sketch(g.Prepare("How do I bake bread?")); ok {
		t.Fatal("a guard without its lexicon sketched a prompt")
	}
	if _, ok := New().Sketch("not prepared"); ok {
		t.Fatal("sketched an unprepared prompt")
	}
}

// FuzzSketch: Sketch never panics, and a pair Decide aligns always meets
// from the side of a prompt with a word that needs a partner (the gate's
// exceptions, on Sketch, are all queries needing nothing).
func FuzzSketch(f *testing.F) {
	for _, s := range [][2]string{
		{"What is the capital of France?", "What is the captial of France?"},
		{"set an env variable", "set an environment variable"},
		{"How do I configure environment variables?", "How do I confgure enviroment variables?"},
		{"I'm new. How do I zoom in?", "how do i zoom in"},
		{"What is 15% of $80?", "What's fifteen percent of 80 dollars?"},
	} {
		f.Add(s[0], s[1])
	}
	g := New()
	f.Fuzz(func(t *testing.T, a, b string) {
		pa, pb := g.Prepare(a), g.Prepare(b)
		sa, ok1 := g.Sketch(pa)
		sb, ok2 := g.Sketch(pb)
		if !ok1 || !ok2 {
			t.Fatalf("Sketch not ok: %v %v", ok1, ok2)
		}
		if !slices.IsSorted(sa.Keys) {
			t.Fatal("keys not sorted")
		}
		allow, aligned, _ := g.Decide(pa, pb)
		if !allow || !aligned {
			return
		}
		if !sa.Needless && !meets(sa, sb) {
			t.Fatalf("aligned but %q does not find %q", a, b)
		}
		if !sb.Needless && !meets(sb, sa) {
			t.Fatalf("aligned but %q does not find %q", b, a)
		}
	})
}
