package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/tollgate/tollgate/pkg/budget"
	"github.com/tollgate/tollgate/pkg/llm"
)

func usd(micros int64) string { return "$" + llm.Micros(micros).String() }

// checkLedger compares the gateway's ledger with the money summed from
// the workload's response headers.
func checkLedger(lt ledgerTotals, s *workloadScore) *ledgerCheck {
	c := &ledgerCheck{Requests: lt.Requests, Cost: lt.Cost.String(), Saved: lt.Saved.String()}
	cost, err1 := budget.ParseUSD(c.Cost)
	saved, err2 := budget.ParseUSD(c.Saved)
	c.Agrees = err1 == nil && err2 == nil && lt.Requests == s.Requests &&
		int64(cost) == s.Spent && int64(saved) == s.SavedCorrect+s.SavedWrong
	return c
}

func writeJSON(w io.Writer, rep *report, verbose bool) error {
	if !verbose {
		for i := range rep.Runs {
			rep.Runs[i].Trials = nil
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

func writeTables(w io.Writer, rep *report, in *inputs, verbose bool) {
	if rep.PairsFile != "" {
		fmt.Fprintf(w, "pairs:    %s\n", rep.PairsFile)
	}
	if rep.WorkloadFile != "" {
		fmt.Fprintf(w, "workload: %s", rep.WorkloadFile)
		if rep.SiblingsFile != "" {
			fmt.Fprintf(w, " (siblings: %s)", rep.SiblingsFile)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "model: $%.2f / $%.2f per million input / output tokens, %d completion tokens a call; upstream calls: %d\n",
		rep.Model.InputUSDPerMTok, rep.Model.OutputUSDPerMTok, rep.Model.CompletionTokens, rep.UpstreamCalls)
	if rep.SweepKey == "" || verbose {
		for i := range rep.Runs {
			writeRun(w, &rep.Runs[i], in, verbose)
		}
	}
	if rep.SweepKey != "" {
		writeSweep(w, rep)
	}
}

// writeRun prints one configuration's tables.
func writeRun(w io.Writer, r *runResult, in *inputs, verbose bool) {
	fmt.Fprintln(w)
	title := "== gateway"
	if r.Value != "" {
		title += " with " + r.Overrides[len(r.Overrides)-1]
	}
	fmt.Fprintf(w, "%s (embedder %s)\n   %s\n", title, orDash(r.Embedder), settingsLine(r.Settings))
	if len(r.Overrides) > 0 {
		fmt.Fprintf(w, "   overrides: %s\n", strings.Join(r.Overrides, " "))
	}
	if r.Pairs != nil {
		writePairs(w, r.Pairs, r.Seconds[modePairs], verbose)
	}
	if r.Workload != nil {
		writeWorkload(w, r.Workload, r.Ledger, in, r.Seconds[modeWorkload], verbose)
	}
}

func writePairs(w io.Writer, s *pairsScore, secs float64, verbose bool) {
	fmt.Fprintf(w, "\npairs (orders %s, %.0fs): a pair is served in order ab when b got a hit after a was cached\n",
		strings.Join(s.Orders, "+"), secs)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "category\tlabel\tpairs\tserved ab\tserved ba\tboth\trate\t")
	var sums [2]categoryScore
	for _, c := range s.Categories {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%d\t%s\t\n", c.Category, c.Label, c.Pairs,
			orderCount(s.Orders, orderAB, c.AB), orderCount(s.Orders, orderBA, c.BA), c.Both, c.Rate.pct())
		t := &sums[c.Label]
		t.Pairs += c.Pairs
		t.AB += c.AB
		t.BA += c.BA
		t.Both += c.Both
		t.Served += c.Served
		t.Trials += c.Trials
	}
	for _, label := range []int{1, 0} {
		t := sums[label]
		name := "all paraphrases"
		if label == 0 {
			name = "all near-misses"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%d\t%s\t\n", name, label, t.Pairs,
			orderCount(s.Orders, orderAB, t.AB), orderCount(s.Orders, orderBA, t.BA), t.Both, newRatio(t.Served, t.Trials).pct())
	}
	tw.Flush()
	fmt.Fprintf(w, "precision %s  recall %s  false-hit rate %s  hits wrong %s  (trials: TP %d, FP %d, FN %d, TN %d)\n",
		s.Precision.pct(), s.Recall.pct(), s.FalseHitRate.pct(), s.WrongShare.pct(), s.TP, s.FP, s.FN, s.TN)
	fmt.Fprintf(w, "asymmetric pairs (served in one order only): %d; served by an exact hit: %d; confirmed by a judge: %d\n",
		s.Asymmetric, s.ExactHits, s.Verified)
	if !verbose {
		return
	}
	fmt.Fprintln(w, "\nwhy unserved trials were not served, per category:")
	for _, c := range s.Categories {
		fmt.Fprintf(w, "  %-28s %s\n", c.Category, countsLine(c.Refused))
	}
}

func orderCount(orders []string, order string, n int) string {
	for _, o := range orders {
		if o == order {
			return fmt.Sprint(n)
		}
	}
	return "-"
}

// countsLine lists counts, largest first.
func countsLine(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d %s", m[k], k)
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

func writeWorkload(w io.Writer, s *workloadScore, lc *ledgerCheck, in *inputs, secs float64, verbose bool) {
	intents := map[string]bool{}
	for _, q := range in.workload {
		intents[q.Intent] = true
	}
	fmt.Fprintf(w, "\nworkload (%d requests over %d intents, replayed in seq order into an empty cache, %.0fs)\n",
		s.Requests, len(intents), secs)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "class\trequests\thits\tcorrect\twrong\tsaved (correct)\t\"saved\" (wrong)\t")
	var all classScore
	for _, name := range classes {
		c := s.Classes[name]
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\t%s\t\n", className(name), c.Requests, c.Hits, c.Correct, c.Wrong, usd(c.SavedCorrect), usd(c.SavedWrong))
		all.Requests += c.Requests
	}
	fmt.Fprintf(tw, "all\t%d\t%d\t%d\t%d\t%s\t%s\t\n", all.Requests, s.Hits, s.Correct, s.Wrong, usd(s.SavedCorrect), usd(s.SavedWrong))
	tw.Flush()
	fmt.Fprintf(w, "hits %d (exact %d, semantic %d, judge-confirmed %d): correct %d, wrong %d (%d distinct prompts, %d hits from a sibling intent); hits wrong %s\n",
		s.Hits, s.ExactHits, s.SemanticHits, s.Verified, s.Correct, s.Wrong, s.DistinctWrong, s.SiblingWrong, newRatio(s.Wrong, s.Hits).pct())
	fmt.Fprintf(w, "exact-only baseline %d correct hits; oracle %d; correct hits %+d against the baseline, %s of the oracle\n",
		s.ExactBaseline, s.Oracle, s.Correct-s.ExactBaseline, newRatio(s.Correct, s.Oracle).pct())
	fmt.Fprintf(w, "money (the gateway's figures: x-tollgate-cost-usd of misses, x-tollgate-cache-saved-usd of hits): spent %s; saved by correct hits %s; wrongly \"saved\" by wrong hits %s",
		usd(s.Spent), usd(s.SavedCorrect), usd(s.SavedWrong))
	if s.Unpriced > 0 {
		fmt.Fprintf(w, "; %d responses unpriced", s.Unpriced)
	}
	fmt.Fprintln(w)
	if lc != nil {
		verdict := "agrees"
		if !lc.Agrees {
			verdict = "DISAGREES"
		}
		fmt.Fprintf(w, "ledger (GET /admin/reports/cost) %s: %d requests, cost $%s, saved $%s\n", verdict, lc.Requests, lc.Cost, lc.Saved)
	}
	if s.OtherUpstreamCalls > 0 {
		fmt.Fprintf(w, "upstream calls beyond the misses (the gateway's own, e.g. a judge's): %d\n", s.OtherUpstreamCalls)
	}
	if len(s.Bypassed) > 0 {
		fmt.Fprintf(w, "bypassed: %s\n", countsLine(s.Bypassed))
	}
	if len(s.WrongHits) == 0 {
		return
	}
	if !verbose {
		fmt.Fprintf(w, "(-v lists the %d wrong hits)\n", len(s.WrongHits))
		return
	}
	fmt.Fprintln(w, "wrong hits (seq, class, kind, similarity: request -> served):")
	for _, h := range s.WrongHits {
		sib := ""
		if h.Sibling {
			sib = " [sibling]"
		}
		fmt.Fprintf(w, "  %4d %-8s %-12s %.4f %s: %q\n       -> %s: %q%s\n", h.Seq, h.Class, h.Kind, h.Similarity,
			h.Intent, h.Prompt, h.ServedIntent, h.ServedPrompt, sib)
	}
}

func className(c string) string {
	if c == classSemantic {
		return "semantic-only"
	}
	return c
}

// writeSweep prints one line per swept value and, for pairs, each
// category's rate per value.
func writeSweep(w io.Writer, rep *report) {
	fmt.Fprintf(w, "\nsweep of %s\n", rep.SweepKey)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "value\tparaphrases served\tnear-misses served\tprecision\thits wrong\twl hits\twl correct\twl wrong\tvs exact-only\tsaved (correct)\t")
	for _, r := range rep.Runs {
		cells := []string{r.Value, "-", "-", "-", "-", "-", "-", "-", "-", "-"}
		if p := r.Pairs; p != nil {
			cells[1] = fmt.Sprintf("%d/%d %s", p.TP, p.TP+p.FN, p.Recall.pct())
			cells[2] = fmt.Sprintf("%d/%d %s", p.FP, p.FP+p.TN, p.FalseHitRate.pct())
			cells[3], cells[4] = p.Precision.pct(), p.WrongShare.pct()
		}
		if s := r.Workload; s != nil {
			cells[5], cells[6], cells[7] = fmt.Sprint(s.Hits), fmt.Sprint(s.Correct), fmt.Sprint(s.Wrong)
			cells[8], cells[9] = fmt.Sprintf("%+d", s.Correct-s.ExactBaseline), usd(s.SavedCorrect)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t")
	}
	tw.Flush()
	if len(rep.Runs) == 0 || rep.Runs[0].Pairs == nil {
		return
	}
	fmt.Fprintln(w, "\nserved per category (share of trials)")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := []string{"category", "label"}
	for _, r := range rep.Runs {
		head = append(head, r.Value)
	}
	fmt.Fprintln(tw, strings.Join(head, "\t")+"\t")
	for i, c := range rep.Runs[0].Pairs.Categories {
		row := []string{c.Category, fmt.Sprint(c.Label)}
		for _, r := range rep.Runs {
			row = append(row, r.Pairs.Categories[i].Rate.pct())
		}
		fmt.Fprintln(tw, strings.Join(row, "\t")+"\t")
	}
	tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
