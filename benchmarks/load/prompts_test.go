package main

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
)

// TestGeneratedDistinct: requests drawn from one source by concurrent
// workers (as the phases, repeats and the prefill of a scenario draw them)
// are all different, and so are their last user messages, the text the
// semantic cache embeds.
func TestGeneratedDistinct(t *testing.T) {
	tests := []struct {
		name    string
		kind    promptKind
		workers int
		each    int
	}{
		{"short, 8 workers", shortPrompt, 8, 5000},
		{"medium, 4 workers", mediumPrompt, 4, 1000},
		{"long, 4 workers", longPrompt, 4, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := &generated{gen: promptGen{kind: tt.kind, seed: 7}}
			got := make([][]request, tt.workers)
			var wg sync.WaitGroup
			for w := range tt.workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range tt.each {
						got[w] = append(got[w], src.next())
					}
				}()
			}
			wg.Wait()
			bodies, lasts := map[string]bool{}, map[string]bool{}
			for _, rs := range got {
				for _, r := range rs {
					if bodies[string(r.body)] {
						t.Fatalf("body sent twice: %s", r.body)
					}
					bodies[string(r.body)] = true
					var req chatRequest
					if err := json.Unmarshal(r.body, &req); err != nil {
						t.Fatalf("bad JSON %s: %v", r.body, err)
					}
					last := req.Messages[len(req.Messages)-1]
					if last.Role != "user" {
						t.Fatalf("last message is %s's", last.Role)
					}
					lasts[last.Content] = true
				}
			}
			if n := tt.workers * tt.each; len(bodies) != n {
				t.Fatalf("%d distinct bodies of %d", len(bodies), n)
			}
			// Long conversations are made distinct by their first turn;
			// their final questions may repeat (they do in real traffic),
			// but must vary.
			if min := len(bodies) * 9 / 10; len(lasts) < min {
				t.Errorf("%d distinct last user messages of %d, want at least %d", len(lasts), len(bodies), min)
			}
		})
	}
}

// TestSlotsDistinct: the first ids each get their own (quality, thing,
// place) triple, and consecutive ids differ in every slot most of the time
// (the bijection scatters them).
func TestSlotsDistinct(t *testing.T) {
	tests := []struct {
		name string
		seed uint64
		from uint64
		n    uint64
	}{
		{"seed 1, first ids", 1, 0, 200_000},
		{"seed 2, first ids", 2, 0, 200_000},
		{"random seed, last ids", 0x9e3779b97f4a7c15, slotSpace - 50_000, 50_000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := promptGen{seed: tt.seed}
			seen := make(map[[3]string]bool, tt.n)
			same := 0
			var prev [3]string
			for id := tt.from; id < tt.from+tt.n; id++ {
				q, th, p := g.slots(id)
				k := [3]string{q, th, p}
				if seen[k] {
					t.Fatalf("id %d repeats slots %v", id, k)
				}
				seen[k] = true
				if k[0] == prev[0] || k[1] == prev[1] || k[2] == prev[2] {
					same++
				}
				prev = k
			}
			if same > int(tt.n)/20 {
				t.Errorf("%d of %d consecutive ids share a slot", same, tt.n)
			}
		})
	}
	if slotSpace < 10_000_000 {
		t.Errorf("capacity %d: too few distinct conversations for a long run", slotSpace)
	}
}

// TestSlotListsDisjoint: distinctness needs each slot list free of
// duplicates and no word in two of them.
func TestSlotListsDisjoint(t *testing.T) {
	owner := map[string]string{}
	for _, l := range []struct {
		name  string
		words []string
	}{{"qualities", qualities}, {"things", things}, {"places", places}} {
		for _, w := range l.words {
			if o, ok := owner[w]; ok {
				t.Errorf("%q is in %s and %s", w, o, l.name)
			}
			owner[w] = l.name
			if w != strings.TrimSpace(w) || w == "" || strings.ContainsAny(w, "{}") {
				t.Errorf("%s: bad word %q", l.name, w)
			}
		}
	}
}

// TestPromptTokenCounts measures each kind's sizes with the gateway's
// tokenizer code, on a sample and for two seeds.
func TestPromptTokenCounts(t *testing.T) {
	tests := []struct {
		name                   string
		kind                   promptKind
		seed                   uint64
		meanLo, meanHi         float64 // mean tokens, chat format
		lastUserLo, lastUserHi float64 // mean tokens of the last user message
		minMessages            float64
	}{
		{"short, seed 1", shortPrompt, 1, 18, 28, 12, 20, 1},
		{"short, seed 99", shortPrompt, 99, 18, 28, 12, 20, 1},
		{"medium, seed 1", mediumPrompt, 1, 135, 165, 130, 160, 1},
		{"medium, seed 99", mediumPrompt, 99, 135, 165, 130, 160, 1},
		{"long, seed 1", longPrompt, 1, 1400, 1600, 50, 150, 7},
		{"long, seed 99", longPrompt, 99, 1400, 1600, 50, 150, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := measurePrompts(promptGen{kind: tt.kind, seed: tt.seed}, 150)
			if err != nil {
				t.Fatal(err)
			}
			lo, hi := tt.kind.tokenRange()
			if st.Mean < tt.meanLo || st.Mean > tt.meanHi {
				t.Errorf("mean %.1f tokens, want %.0f-%.0f", st.Mean, tt.meanLo, tt.meanHi)
			}
			if st.Min < lo || st.Max > hi {
				t.Errorf("sizes %d-%d tokens, outside the kind's range %d-%d", st.Min, st.Max, lo, hi)
			}
			if st.LastUser < tt.lastUserLo || st.LastUser > tt.lastUserHi {
				t.Errorf("last user message %.1f tokens, want %.0f-%.0f", st.LastUser, tt.lastUserLo, tt.lastUserHi)
			}
			if st.Messages < tt.minMessages {
				t.Errorf("%.1f messages, want at least %.0f", st.Messages, tt.minMessages)
			}
		})
	}
}

// TestLongConversationShape: system first, then user and assistant
// alternating, ending with the user.
func TestLongConversationShape(t *testing.T) {
	g := promptGen{kind: longPrompt, seed: 3}
	for id := range uint64(200) {
		c := g.conversation(id)
		if c[0].Role != "system" {
			t.Fatalf("id %d starts with %s", id, c[0].Role)
		}
		for i, m := range c[1:] {
			want := "user"
			if i%2 == 1 {
				want = "assistant"
			}
			if m.Role != want {
				t.Fatalf("id %d: message %d is %s's, want %s's", id, i+1, m.Role, want)
			}
		}
	}
}

// TestGeneratedDeterministic: a seed and an id fix the request; another
// seed or id changes it.
func TestGeneratedDeterministic(t *testing.T) {
	tests := []struct {
		name         string
		a, b         promptGen
		idA, idB     uint64
		wantSameBody bool
	}{
		{"same seed and id", promptGen{mediumPrompt, 5}, promptGen{mediumPrompt, 5}, 42, 42, true},
		{"other id", promptGen{mediumPrompt, 5}, promptGen{mediumPrompt, 5}, 42, 43, false},
		{"other seed", promptGen{mediumPrompt, 5}, promptGen{mediumPrompt, 6}, 42, 42, false},
		{"short, other seed", promptGen{shortPrompt, 5}, promptGen{shortPrompt, 6}, 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := tt.a.request(tt.idA), tt.b.request(tt.idB)
			if same := string(a.body) == string(b.body); same != tt.wantSameBody {
				t.Errorf("same body %v, want %v:\n%s\n%s", same, tt.wantSameBody, a.body, b.body)
			}
		})
	}
}

// TestTemplatesExpand: every template expands to a capitalised sentence
// with no placeholder left.
func TestTemplatesExpand(t *testing.T) {
	lists := []struct {
		name string
		tpls []string
	}{
		{"short", shortTemplates}, {"backgrounds", backgrounds}, {"questions", questions},
		{"openings", openings}, {"advice", advice}, {"steps", steps}, {"followUps", followUps},
	}
	e := &expander{r: rand.New(rand.NewPCG(1, 2)), q: "old", t: "ukulele", s: "orchard"}
	for _, l := range lists {
		for _, tpl := range l.tpls {
			t.Run(l.name+"/"+tpl, func(t *testing.T) {
				for range 20 {
					s := e.fill(tpl)
					if strings.ContainsAny(s, "{}") {
						t.Fatalf("placeholder left: %q", s)
					}
					if s[0] < 'A' || s[0] > 'Z' {
						t.Fatalf("not capitalised: %q", s)
					}
					if strings.Contains(s, " a a") || strings.Contains(s, " a o") || strings.Contains(s, " a u") {
						t.Fatalf("wrong article: %q", s)
					}
				}
			})
		}
	}
}

func TestArticle(t *testing.T) {
	tests := []struct{ word, want string }{
		{"old", "an"}, {"urgent", "an"}, {"bicycle", "a"}, {"e-bike", "an"}, {"", "a"},
	}
	for _, tt := range tests {
		t.Run(tt.word, func(t *testing.T) {
			if got := article(tt.word); got != tt.want {
				t.Errorf("article(%q) = %q, want %q", tt.word, got, tt.want)
			}
		})
	}
}
