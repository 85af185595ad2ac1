package semcache

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/internal/testmodel"
	"github.com/tollgate/tollgate/pkg/semcache/guard"
)

// The guard's rules are the Checker cmd/server passes in.
var _ Checker = (*guard.Rules)(nil)

// devPair is one line of shared/data/paraphrase-dev.tsv.
type devPair struct {
	para bool // label 1: a paraphrase, else a near-miss
	a, b string
}

func loadDevPairs(t *testing.T) []devPair {
	t.Helper()
	path := filepath.Join("..", "..", "..", "shared", "data", "paraphrase-dev.tsv")
	f, err := os.Open(path)
	if err != nil {
		t.Skipf("no dev set at %s: %v", path, err)
	}
	defer f.Close()
	var out []devPair
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		cols := strings.Split(sc.Text(), "\t")
		if len(cols) != 3 || (cols[0] != "0" && cols[0] != "1") {
			continue
		}
		out = append(out, devPair{para: cols[0] == "1", a: cols[1], b: cols[2]})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// testEmbedder is the real USE-lite model (see testmodel).
func testEmbedder(t *testing.T) Embedder { return testmodel.Open(t) }

func cosine(a, b []float32) float32 {
	var s float32
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

// TestQuality prints the semantic cache's quality on the dev set: for each
// threshold, the paraphrase hit rate and the near-miss false hits with the
// cosine alone and with the guard, plus unrelated pairs (a paraphrase's first
// prompt against another pair's second) as a check that the threshold keeps
// unrelated prompts out. It fails if, at the shipped defaults
// (DefaultThreshold, DefaultUnalignedThreshold and guard.New, no judge), any
// near-miss is served. The paraphrase hit rate is reported, not held to a
// bound here: the recall targets of issue 12 are measured on
// shared/data/semcache-dev by benchmarks/cachequality, and the defaults are
// tuned there.
func TestQuality(t *testing.T) {
	pairs := loadDevPairs(t)
	emb := testEmbedder(t)
	texts := make([]string, 0, 2*len(pairs))
	for _, p := range pairs {
		texts = append(texts, p.a, p.b)
	}
	vecs, err := emb.Embed(context.Background(), texts)
	if err != nil {
		t.Fatal(err)
	}
	g := guard.New()
	type scored struct {
		devPair
		cos         float32
		ok, aligned bool
		reason      string
	}
	decide := func(a, b string) (bool, bool, string) { return g.Decide(g.Prepare(a), g.Prepare(b)) }
	var para, near, unrelated []scored
	for i, p := range pairs {
		ok, aligned, reason := decide(p.a, p.b)
		s := scored{p, cosine(vecs[2*i], vecs[2*i+1]), ok, aligned, reason}
		if p.para {
			para = append(para, s)
		} else {
			near = append(near, s)
		}
	}
	var paraIdx []int
	for i, p := range pairs {
		if p.para {
			paraIdx = append(paraIdx, i)
		}
	}
	for k, i := range paraIdx {
		j := paraIdx[(k+7)%len(paraIdx)]
		ok, aligned, reason := decide(pairs[i].a, pairs[j].b)
		unrelated = append(unrelated, scored{devPair{false, pairs[i].a, pairs[j].b}, cosine(vecs[2*i], vecs[2*j+1]), ok, aligned, reason})
	}
	// served: what the cache serves with th as its floor (no judge).
	served := func(x scored, th float32) bool {
		return x.ok && x.cos >= th && (x.aligned || x.cos >= max(DefaultUnalignedThreshold, th))
	}
	count := func(xs []scored, th float32, guard bool) int {
		n := 0
		for _, x := range xs {
			if (!guard && x.cos >= th) || (guard && served(x, th)) {
				n++
			}
		}
		return n
	}
	var tab strings.Builder
	fmt.Fprintf(&tab, "%d paraphrases, %d near-misses, %d unrelated pairs\n", len(para), len(near), len(unrelated))
	fmt.Fprintf(&tab, "threshold | cosine alone: para hit, near-miss hits, unrelated hits | cosine+guard: para hit, near-miss hits, unrelated hits\n")
	for _, th := range []float32{0.50, 0.55, 0.60, 0.65, 0.70, 0.75, 0.80, 0.85, 0.90, 0.95} {
		mark := ""
		if th == DefaultThreshold {
			mark = "  <- shipped"
		}
		fmt.Fprintf(&tab, "%.2f      | %5.1f%%  %2d/%d  %2d/%d | %5.1f%%  %2d/%d  %2d/%d%s\n", th,
			100*float64(count(para, th, false))/float64(len(para)), count(near, th, false), len(near), count(unrelated, th, false), len(unrelated),
			100*float64(count(para, th, true))/float64(len(para)), count(near, th, true), len(near), count(unrelated, th, true), len(unrelated), mark)
	}
	t.Logf("quality on the dev set:\n%s", tab.String())

	hits, falseHits := count(para, DefaultThreshold, true), count(near, DefaultThreshold, true)
	hitRate := float64(hits) / float64(len(para))
	t.Logf("shipped defaults (threshold %.2f + guard): paraphrase hit rate %.1f%% (%d/%d), near-miss false hits %d/%d, unrelated false hits %d/%d",
		DefaultThreshold, 100*hitRate, hits, len(para), falseHits, len(near), count(unrelated, DefaultThreshold, true), len(unrelated))

	var caught, refused, wrong, below strings.Builder
	for _, x := range near {
		switch {
		case !x.ok:
			fmt.Fprintf(&caught, "  cos %.3f  %-30s %q | %q\n", x.cos, x.reason, x.a, x.b)
		case served(x, DefaultThreshold):
			fmt.Fprintf(&wrong, "  cos %.3f  %q | %q\n", x.cos, x.a, x.b)
		default:
			fmt.Fprintf(&below, "  cos %.3f  %q | %q\n", x.cos, x.a, x.b)
		}
	}
	for _, x := range para {
		switch {
		case !x.ok:
			fmt.Fprintf(&refused, "  cos %.3f  %-30s %q | %q\n", x.cos, x.reason, x.a, x.b)
		case x.cos < DefaultThreshold:
			fmt.Fprintf(&refused, "  cos %.3f  %-30s %q | %q\n", x.cos, "below threshold", x.a, x.b)
		case !served(x, DefaultThreshold):
			fmt.Fprintf(&refused, "  cos %.3f  %-30s %q | %q\n", x.cos, "uncertain, "+x.reason, x.a, x.b)
		}
	}
	t.Logf("near-misses the guard caught (reason):\n%s", caught.String())
	t.Logf("near-misses left out by the threshold alone:\n%s", below.String())
	t.Logf("paraphrases not served (reason):\n%s", refused.String())
	if falseHits > 0 {
		t.Errorf("near-misses served at the shipped defaults:\n%s", wrong.String())
	}
}
