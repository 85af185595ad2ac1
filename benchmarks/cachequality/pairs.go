package main

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
)

// asker sends one request through the gateway: gatewayProc in a run, a
// fake in the scoring tests.
type asker interface {
	ask(ctx context.Context, system, prompt string) (outcome, error)
}

// Pair orders: ab sends a then b (is b served a's answer?), ba the other
// way round. The decision need not be symmetric, so both are scored.
const (
	orderAB = "ab"
	orderBA = "ba"
)

// trial is one order of one pair, sent into a scope of its own.
type trial struct {
	Pair   int     `json:"pair"` // index in the pairs file's rows
	Order  string  `json:"order"`
	First  outcome `json:"first"`
	Second outcome `json:"second"`
}

func (t trial) served() bool { return t.Second.hit() }

// scopePrompt is the system prompt of a trial's scope. The system prompt
// is part of the cache's scope (pkg/semcache scope.go) and not of the
// embedded text, so each trial sees an empty cache and one pair's entry
// can never serve another's request.
func scopePrompt(p pair, order string) string {
	return fmt.Sprintf("cachequality scope: the pair on line %d, order %s", p.Line, order)
}

// runPairs sends every pair in every order: the first prompt into a fresh
// scope (a miss, stored), then the second (served or not). Trials are
// independent, so workers run them concurrently. A first prompt that is
// not a miss, or a hit serving anything but the first prompt's answer,
// means the scopes leak: that is an error, not a figure.
func runPairs(ctx context.Context, g asker, pairs []pair, orders []string, workers int, progress func(done, total int)) ([]trial, error) {
	trials := make([]trial, 0, len(pairs)*len(orders))
	for i := range pairs {
		for _, o := range orders {
			trials = append(trials, trial{Pair: i, Order: o})
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next     atomic.Int64
		doneMu   sync.Mutex // serialises progress calls
		done     int
		errOnce  sync.Once
		firstErr error
		wg       sync.WaitGroup
	)
	for range max(workers, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(trials) || ctx.Err() != nil {
					return
				}
				if err := runTrial(ctx, g, pairs, &trials[i]); err != nil {
					errOnce.Do(func() { firstErr = err; cancel() })
					return
				}
				if progress != nil {
					doneMu.Lock()
					done++
					progress(done, len(trials))
					doneMu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	return trials, ctx.Err()
}

func runTrial(ctx context.Context, g asker, pairs []pair, t *trial) error {
	p := pairs[t.Pair]
	first, second := p.A, p.B
	if t.Order == orderBA {
		first, second = p.B, p.A
	}
	scope := scopePrompt(p, t.Order)
	var err error
	where := func(err error) error { return fmt.Errorf("pair on line %d, order %s: %w", p.Line, t.Order, err) }
	if t.First, err = g.ask(ctx, scope, first); err != nil {
		return where(err)
	}
	if t.First.Kind != kindMiss || t.First.Served != first {
		return where(fmt.Errorf("the first request into a fresh scope was %s (served %q): the scopes are not isolated", t.First.Kind, clip(t.First.Served, 80)))
	}
	if t.Second, err = g.ask(ctx, scope, second); err != nil {
		return where(err)
	}
	if t.Second.hit() && t.Second.Served != first {
		return where(fmt.Errorf("the second request was served %q, which is not the scope's only entry", clip(t.Second.Served, 80)))
	}
	return nil
}

// categoryScore is one category's row: how many pairs the cache served,
// in each order.
type categoryScore struct {
	Category string `json:"category"`
	Label    int    `json:"label"`
	Pairs    int    `json:"pairs"`
	// AB and BA count the pairs served in that order (b given a's answer,
	// a given b's); Both and Either combine them.
	AB     int `json:"served_ab"`
	BA     int `json:"served_ba"`
	Both   int `json:"served_both"`
	Either int `json:"served_either"`
	// Trials and Served count every order run; Rate is Served/Trials.
	Trials int   `json:"trials"`
	Served int   `json:"served"`
	Rate   ratio `json:"rate"`
	// Refused counts the unserved trials by the gateway's reason; a
	// candidate below the threshold has no reason ("below threshold").
	Refused map[string]int `json:"refused"`
}

// pairsScore is the pairs run's result. Counts are over trials (every
// order of every pair), so with both orders run a pair counts twice.
type pairsScore struct {
	Orders     []string        `json:"orders"`
	Categories []categoryScore `json:"categories"`
	TP         int             `json:"tp"` // paraphrase trials served
	FP         int             `json:"fp"` // near-miss trials served
	FN         int             `json:"fn"`
	TN         int             `json:"tn"`
	Precision  ratio           `json:"precision"`
	Recall     ratio           `json:"recall"`
	// FalseHitRate is FP over near-miss trials; WrongShare the share of
	// hits that were wrong (1 - precision).
	FalseHitRate ratio `json:"false_hit_rate"`
	WrongShare   ratio `json:"wrong_share_of_hits"`
	// Asymmetric counts pairs served in one order and not the other.
	Asymmetric int `json:"asymmetric_pairs"`
	// ExactHits counts served trials that were exact hits (identical
	// prompts), Verified those a judge confirmed.
	ExactHits int `json:"exact_hits"`
	Verified  int `json:"verified_hits"`
}

// belowThreshold names an unserved trial the gateway gave no reason for:
// no candidate reached the threshold.
const belowThreshold = "below threshold"

// scorePairs scores trials (of the orders given) against the labels.
func scorePairs(pairs []pair, orders []string, trials []trial) pairsScore {
	s := pairsScore{Orders: orders}
	type key struct {
		category string
		label    int
	}
	rows := map[key]*categoryScore{}
	var keys []key
	servedIn := make([]map[string]bool, len(pairs))
	for _, t := range trials {
		p := pairs[t.Pair]
		k := key{p.Category, p.Label}
		row := rows[k]
		if row == nil {
			row = &categoryScore{Category: p.Category, Label: p.Label, Refused: map[string]int{}}
			rows[k] = row
			keys = append(keys, k)
		}
		if servedIn[t.Pair] == nil {
			servedIn[t.Pair] = map[string]bool{}
			row.Pairs++
		}
		row.Trials++
		served := t.served()
		servedIn[t.Pair][t.Order] = served
		switch {
		case served:
			row.Served++
			if t.Order == orderAB {
				row.AB++
			} else {
				row.BA++
			}
			if t.Second.Kind == kindHit {
				s.ExactHits++
			}
			if t.Second.Verified != "" {
				s.Verified++
			}
		case t.Second.Reason != "":
			row.Refused[t.Second.Reason]++
		default:
			row.Refused[belowThreshold]++
		}
		switch {
		case served && p.Label == 1:
			s.TP++
		case served:
			s.FP++
		case p.Label == 1:
			s.FN++
		default:
			s.TN++
		}
	}
	for i, in := range servedIn {
		if in == nil {
			continue
		}
		row := rows[key{pairs[i].Category, pairs[i].Label}]
		n := 0
		for _, v := range in {
			if v {
				n++
			}
		}
		if n > 0 {
			row.Either++
		}
		if n == len(in) {
			row.Both++
		}
		if n > 0 && n < len(in) {
			s.Asymmetric++
		}
	}
	// Paraphrase categories first, each group in the file's order.
	sort.SliceStable(keys, func(i, j int) bool { return keys[i].label > keys[j].label })
	for _, k := range keys {
		row := rows[k]
		row.Rate = newRatio(row.Served, row.Trials)
		s.Categories = append(s.Categories, *row)
	}
	s.Precision = newRatio(s.TP, s.TP+s.FP)
	s.Recall = newRatio(s.TP, s.TP+s.FN)
	s.FalseHitRate = newRatio(s.FP, s.FP+s.TN)
	s.WrongShare = newRatio(s.FP, s.TP+s.FP)
	return s
}
