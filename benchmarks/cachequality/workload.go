package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
)

// Request classes, as the dev set's score.py splits a replay.
const (
	classRepeat   = "repeat"   // the prompt string was sent earlier: an exact cache can serve it
	classSemantic = "semantic" // a new string of an intent seen earlier: only a semantic hit can serve it
	classFirst    = "first"    // the intent's first request: every hit is wrong
)

var classes = []string{classRepeat, classSemantic, classFirst}

// runWorkload replays the requests in order, in one scope (no system
// prompt, one key), against the gateway's empty cache.
func runWorkload(ctx context.Context, g asker, reqs []request, progress func(done, total int)) ([]outcome, error) {
	outs := make([]outcome, len(reqs))
	for i, q := range reqs {
		o, err := g.ask(ctx, "", q.Prompt)
		if err != nil {
			return nil, fmt.Errorf("workload seq %d (line %d): %w", q.Seq, q.Line, err)
		}
		if !o.hit() && o.Served != q.Prompt {
			return nil, fmt.Errorf("workload seq %d (line %d): a %s answered another prompt (%q)", q.Seq, q.Line, o.Kind, clip(o.Served, 80))
		}
		outs[i] = o
		if progress != nil {
			progress(i+1, len(reqs))
		}
	}
	return outs, nil
}

// classScore is one request class's share of a replay.
type classScore struct {
	Requests int `json:"requests"`
	Hits     int `json:"hits"`
	Correct  int `json:"correct"`
	Wrong    int `json:"wrong"`
	// SavedCorrect is what correct hits saved; SavedWrong what wrong hits
	// "saved" (an answer to another question is no saving), in
	// micro-dollars, as the gateway reported them.
	SavedCorrect int64 `json:"saved_correct_micros"`
	SavedWrong   int64 `json:"saved_wrong_micros"`
}

// wrongHit is a hit that served another intent's answer.
type wrongHit struct {
	Seq          int     `json:"seq"`
	Class        string  `json:"class"`
	Kind         string  `json:"kind"`
	Similarity   float64 `json:"similarity"`
	Intent       string  `json:"intent"`
	Prompt       string  `json:"prompt"`
	ServedIntent string  `json:"served_intent"`
	ServedPrompt string  `json:"served_prompt"`
	Sibling      bool    `json:"sibling"` // the two intents are in one sibling group
}

// workloadScore is a replay's result.
type workloadScore struct {
	Requests     int `json:"requests"`
	Hits         int `json:"hits"`
	ExactHits    int `json:"exact_hits"`
	SemanticHits int `json:"semantic_hits"`
	Verified     int `json:"verified_hits"`
	Correct      int `json:"correct"`
	Wrong        int `json:"wrong"`
	SiblingWrong int `json:"wrong_from_a_sibling"`
	// DistinctWrong counts the distinct request prompts among the wrong
	// hits: a hit stores nothing, so a prompt once served a wrong answer
	// tends to be served it at each repeat.
	DistinctWrong int `json:"distinct_wrong_prompts"`
	// ExactBaseline is the hits an exact-only cache would give (every
	// repeat, all correct); Oracle the most correct hits possible (every
	// request after its intent's first).
	ExactBaseline int                    `json:"exact_baseline"`
	Oracle        int                    `json:"oracle"`
	Classes       map[string]*classScore `json:"classes"`
	// Money in micro-dollars as the gateway priced it: Spent on misses
	// (x-tollgate-cost-usd), saved by hits (x-tollgate-cache-saved-usd:
	// what the served entry's call cost). Unpriced counts responses that
	// carried no price.
	Spent        int64 `json:"spent_micros"`
	SavedCorrect int64 `json:"saved_correct_micros"`
	SavedWrong   int64 `json:"saved_wrong_micros"`
	Unpriced     int   `json:"unpriced"`
	// OtherUpstreamCalls counts upstream calls beyond the requests not
	// served from the cache: the gateway's own, such as a judge's.
	OtherUpstreamCalls int `json:"other_upstream_calls"`
	// Bypassed counts requests the cache did not look up (by reason).
	Bypassed  map[string]int `json:"bypassed,omitempty"`
	WrongHits []wrongHit     `json:"wrong_hits"`
}

// scoreWorkload judges each outcome: a hit is correct iff the prompt its
// answer encodes belongs to the request's intent.
func scoreWorkload(reqs []request, outs []outcome, siblings map[string]string) (workloadScore, error) {
	owner := make(map[string]string, len(reqs))
	for _, q := range reqs {
		owner[q.Prompt] = q.Intent
	}
	s := workloadScore{Requests: len(reqs), Classes: map[string]*classScore{}}
	for _, c := range classes {
		s.Classes[c] = &classScore{}
	}
	seenPrompt, seenIntent, wrongPrompt := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for i, q := range reqs {
		o := outs[i]
		class := classFirst
		switch {
		case seenPrompt[q.Prompt]:
			class = classRepeat
		case seenIntent[q.Intent]:
			class = classSemantic
		}
		seenPrompt[q.Prompt], seenIntent[q.Intent] = true, true
		c := s.Classes[class]
		c.Requests++
		if !o.Priced {
			s.Unpriced++
		}
		if !o.hit() {
			s.Spent += o.Cost
			if o.Kind == kindBypass {
				if s.Bypassed == nil {
					s.Bypassed = map[string]int{}
				}
				s.Bypassed[o.Reason]++
			}
			continue
		}
		s.Hits++
		c.Hits++
		if o.Kind == kindHit {
			s.ExactHits++
		} else {
			s.SemanticHits++
		}
		if o.Verified != "" {
			s.Verified++
		}
		servedIntent, ok := owner[o.Served]
		if !ok {
			return s, fmt.Errorf("workload seq %d: served %q, which is no prompt of the workload", q.Seq, clip(o.Served, 80))
		}
		if servedIntent == q.Intent {
			s.Correct++
			c.Correct++
			c.SavedCorrect += o.Saved
			s.SavedCorrect += o.Saved
			continue
		}
		s.Wrong++
		c.Wrong++
		if !wrongPrompt[q.Prompt] {
			wrongPrompt[q.Prompt] = true
			s.DistinctWrong++
		}
		c.SavedWrong += o.Saved
		s.SavedWrong += o.Saved
		g := siblings[q.Intent]
		sib := g != "" && g == siblings[servedIntent]
		if sib {
			s.SiblingWrong++
		}
		s.WrongHits = append(s.WrongHits, wrongHit{Seq: q.Seq, Class: class, Kind: o.Kind, Similarity: o.Similarity,
			Intent: q.Intent, Prompt: q.Prompt, ServedIntent: servedIntent, ServedPrompt: o.Served, Sibling: sib})
	}
	s.ExactBaseline = s.Classes[classRepeat].Requests
	s.Oracle = s.Classes[classRepeat].Requests + s.Classes[classSemantic].Requests
	return s, nil
}

// ratio is a share that may be undefined (0/0): NaN, written as null in
// JSON and "-" in tables.
type ratio float64

func newRatio(n, d int) ratio {
	if d == 0 {
		return ratio(math.NaN())
	}
	return ratio(float64(n) / float64(d))
}

func (r ratio) MarshalJSON() ([]byte, error) {
	if math.IsNaN(float64(r)) {
		return []byte("null"), nil
	}
	return json.Marshal(math.Round(float64(r)*1e6) / 1e6)
}

// pct formats a ratio as a percentage with one decimal.
func (r ratio) pct() string {
	if math.IsNaN(float64(r)) {
		return "-"
	}
	return strconv.FormatFloat(float64(r)*100, 'f', 1, 64) + "%"
}
