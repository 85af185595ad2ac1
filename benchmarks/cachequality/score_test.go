package main

import (
	"context"
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// fakeCache stands in for the gateway in the scoring tests: an exact
// cache per scope, plus a semantic hit wherever similar says so. leaky
// ignores scopes, as a broken gateway would.
type fakeCache struct {
	mu      sync.Mutex
	entries map[string][]string // scope → prompts stored, in order
	similar func(cached, asked string) bool
	leaky   bool
	cost    int64
}

func (f *fakeCache) ask(_ context.Context, system, prompt string) (outcome, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.entries == nil {
		f.entries = map[string][]string{}
	}
	scope := system
	if f.leaky {
		scope = ""
	}
	for _, p := range f.entries[scope] {
		if p == prompt {
			return outcome{Kind: kindHit, Served: p, Saved: f.cost, Priced: true, Similarity: 1}, nil
		}
	}
	for _, p := range f.entries[scope] {
		if f.similar != nil && f.similar(p, prompt) {
			return outcome{Kind: kindSemantic, Served: p, Saved: f.cost, Priced: true, Similarity: 0.9}, nil
		}
	}
	f.entries[scope] = append(f.entries[scope], prompt)
	return outcome{Kind: kindMiss, Served: prompt, Cost: f.cost, Priced: true}, nil
}

// sameFirstWord is a crude similarity for the fake: prompts starting with
// the same word are "similar".
func sameFirstWord(a, b string) bool { return strings.Fields(a)[0] == strings.Fields(b)[0] }

func TestPairsThroughFakeCache(t *testing.T) {
	pairs := []pair{
		{Line: 2, Label: 1, Category: "para", A: "alpha one", B: "alpha two"},   // served (similar)
		{Line: 3, Label: 1, Category: "para", A: "beta", B: "gamma"},            // not served
		{Line: 4, Label: 1, Category: "para", A: "same", B: "same"},             // exact hit
		{Line: 5, Label: 0, Category: "near", A: "delta one", B: "delta two"},   // served: a wrong hit
		{Line: 6, Label: 0, Category: "near", A: "alpha one", B: "epsilon"},     // not served
		{Line: 7, Label: 0, Category: "other", A: "zeta", B: "eta"},             // not served
		{Line: 8, Label: 1, Category: "para", A: "alpha one", B: "alpha three"}, // the same a as line 2: its own scope
	}
	orders := []string{orderAB, orderBA}
	trials, err := runPairs(context.Background(), &fakeCache{similar: sameFirstWord}, pairs, orders, 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := scorePairs(pairs, orders, trials)
	if s.TP != 6 || s.FN != 2 || s.FP != 2 || s.TN != 4 {
		t.Fatalf("TP %d FN %d FP %d TN %d, want 6 2 2 4", s.TP, s.FN, s.FP, s.TN)
	}
	if s.TP+s.FP+s.FN+s.TN != 2*len(pairs) {
		t.Fatalf("trials do not add up to 2 per pair")
	}
	checkRatio(t, "precision", s.Precision, 6.0/8)
	checkRatio(t, "recall", s.Recall, 6.0/8)
	checkRatio(t, "false-hit rate", s.FalseHitRate, 2.0/6)
	checkRatio(t, "wrong share", s.WrongShare, 2.0/8)
	if s.ExactHits != 2 {
		t.Fatalf("exact hits %d, want 2 (the identical pair, both orders)", s.ExactHits)
	}
	var cats []string
	for _, c := range s.Categories {
		cats = append(cats, c.Category)
	}
	if want := []string{"para", "near", "other"}; !reflect.DeepEqual(cats, want) {
		t.Fatalf("categories %v, want %v (paraphrases first, then the file's order)", cats, want)
	}
	para := s.Categories[0]
	if para.Pairs != 4 || para.AB != 3 || para.BA != 3 || para.Both != 3 || para.Either != 3 || para.Trials != 8 || para.Served != 6 {
		t.Fatalf("para row %+v", para)
	}
	if para.Refused[belowThreshold] != 2 {
		t.Fatalf("para refusals %v, want 2 below threshold", para.Refused)
	}
}

func TestScorePairsAsymmetric(t *testing.T) {
	pairs := []pair{{Line: 2, Label: 0, Category: "near", A: "x", B: "y"}}
	trials := []trial{
		{Pair: 0, Order: orderAB, Second: outcome{Kind: kindSemantic, Served: "x"}},
		{Pair: 0, Order: orderBA, Second: outcome{Kind: kindMiss, Reason: "guard: number", Served: "x"}},
	}
	s := scorePairs(pairs, []string{orderAB, orderBA}, trials)
	c := s.Categories[0]
	if s.Asymmetric != 1 || c.AB != 1 || c.BA != 0 || c.Both != 0 || c.Either != 1 || s.FP != 1 || s.TN != 1 {
		t.Fatalf("score %+v, row %+v", s, c)
	}
	if c.Refused["guard: number"] != 1 {
		t.Fatalf("refusals %v", c.Refused)
	}
	// No paraphrases: recall is undefined, not zero.
	if !math.IsNaN(float64(s.Recall)) {
		t.Fatalf("recall %v, want NaN", s.Recall)
	}
	if b, _ := json.Marshal(s.Recall); string(b) != "null" {
		t.Fatalf("NaN marshals as %s, want null", b)
	}
}

func TestRunPairsRefusesLeakyScopes(t *testing.T) {
	pairs := []pair{
		{Line: 2, Label: 1, Category: "para", A: "same", B: "same"},
		{Line: 3, Label: 1, Category: "para", A: "same", B: "same"},
	}
	_, err := runPairs(context.Background(), &fakeCache{leaky: true}, pairs, []string{orderAB}, 1, nil)
	if err == nil || !strings.Contains(err.Error(), "not isolated") {
		t.Fatalf("err = %v, want the leak reported", err)
	}
}

func TestWorkloadThroughFakeCache(t *testing.T) {
	reqs := []request{
		{Seq: 1, Intent: "to-paris", Prompt: "flight to paris"},
		{Seq: 2, Intent: "to-paris", Prompt: "flight to paris"},     // repeat: exact hit, correct
		{Seq: 3, Intent: "from-paris", Prompt: "flight from paris"}, // first: similar to 1: a wrong (sibling) hit
		{Seq: 4, Intent: "to-paris", Prompt: "flight paris bound"},  // semantic-only: correct hit
		{Seq: 5, Intent: "weather", Prompt: "weather today"},        // first: miss
		{Seq: 6, Intent: "weather", Prompt: "what weather"},         // semantic-only: miss
		{Seq: 7, Intent: "from-paris", Prompt: "flight from paris"}, // repeat of a string never stored: wrong again
	}
	siblings := map[string]string{"to-paris": "direction-paris", "from-paris": "direction-paris"}
	f := &fakeCache{similar: sameFirstWord, cost: 100}
	outs, err := runWorkload(context.Background(), f, reqs, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := scoreWorkload(reqs, outs, siblings)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]classScore{
		classRepeat:   {Requests: 2, Hits: 2, Correct: 1, Wrong: 1, SavedCorrect: 100, SavedWrong: 100},
		classSemantic: {Requests: 2, Hits: 1, Correct: 1, SavedCorrect: 100},
		classFirst:    {Requests: 3, Hits: 1, Wrong: 1, SavedWrong: 100},
	}
	for c, w := range want {
		if *s.Classes[c] != w {
			t.Errorf("class %s: %+v, want %+v", c, *s.Classes[c], w)
		}
	}
	if s.Requests != 7 || s.Hits != 4 || s.ExactHits != 1 || s.SemanticHits != 3 || s.Correct != 2 || s.Wrong != 2 || s.SiblingWrong != 2 || s.DistinctWrong != 1 {
		t.Fatalf("score %+v", s)
	}
	if s.ExactBaseline != 2 || s.Oracle != 4 {
		t.Fatalf("baseline %d oracle %d, want 2 and 4", s.ExactBaseline, s.Oracle)
	}
	if s.Spent != 300 || s.SavedCorrect != 200 || s.SavedWrong != 200 || s.Unpriced != 0 {
		t.Fatalf("money: spent %d saved %d wrong %d unpriced %d", s.Spent, s.SavedCorrect, s.SavedWrong, s.Unpriced)
	}
	if len(s.WrongHits) != 2 || s.WrongHits[0].Seq != 3 || s.WrongHits[0].ServedIntent != "to-paris" || !s.WrongHits[0].Sibling {
		t.Fatalf("wrong hits %+v", s.WrongHits)
	}
}

func TestScoreWorkloadRefusesAForeignAnswer(t *testing.T) {
	reqs := []request{{Seq: 1, Intent: "a", Prompt: "A"}}
	outs := []outcome{{Kind: kindSemantic, Served: "not in the file"}}
	if _, err := scoreWorkload(reqs, outs, nil); err == nil || !strings.Contains(err.Error(), "no prompt of the workload") {
		t.Fatalf("err = %v", err)
	}
}

func checkRatio(t *testing.T, name string, got ratio, want float64) {
	t.Helper()
	if math.Abs(float64(got)-want) > 1e-9 {
		t.Errorf("%s = %v, want %v", name, got, want)
	}
}
