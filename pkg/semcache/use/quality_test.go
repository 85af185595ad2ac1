package use

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestParaphraseSeparation logs, for both embedders, how well cosine
// separates the paraphrase pairs of shared/data/paraphrase-dev.tsv from its
// near-miss pairs and from unrelated pairs (a paraphrase's first prompt with
// another pair's second). It is a figure for tuning, not a gate: the only
// assertion is that USE-lite beats the hashed fallback on unrelated pairs.
func TestParaphraseSeparation(t *testing.T) {
	path := filepath.Join("..", "..", "..", "..", "shared", "data", "paraphrase-dev.tsv")
	f, err := os.Open(path)
	if err != nil {
		t.Skipf("no %s: %v", path, err)
	}
	defer f.Close()
	var para, near [][2]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		cols := strings.Split(sc.Text(), "\t")
		if len(cols) != 3 {
			continue
		}
		switch cols[0] {
		case "1":
			para = append(para, [2]string{cols[1], cols[2]})
		case "0":
			near = append(near, [2]string{cols[1], cols[2]})
		}
	}
	var unrelated [][2]string
	for i := range para {
		unrelated = append(unrelated, [2]string{para[i][0], para[(i+7)%len(para)][1]})
	}
	m := testModel(t)
	aucs := map[string]float64{}
	for _, e := range []embedder{m, NewHashed(512)} {
		scores := func(pairs [][2]string) []float64 {
			var out []float64
			for _, p := range pairs {
				v, err := e.Embed(context.Background(), []string{p[0], p[1]})
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, cosine(v[0], v[1]))
			}
			return out
		}
		ps, ns, us := scores(para), scores(near), scores(unrelated)
		aucs[e.Name()] = auc(ps, us)
		t.Logf("%-22s mean cosine: paraphrase %.3f, near-miss %.3f, unrelated %.3f; AUC paraphrase vs unrelated %.3f, vs near-miss %.3f",
			e.Name(), mean(ps), mean(ns), mean(us), auc(ps, us), auc(ps, ns))
	}
	if aucs[ModelName] < aucs["hashed-ngram-v1-512"] {
		t.Errorf("USE-lite AUC %.3f below the hashed fallback's %.3f", aucs[ModelName], aucs["hashed-ngram-v1-512"])
	}
}

func mean(xs []float64) float64 {
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(max(len(xs), 1))
}

// auc is the probability that a positive scores above a negative.
func auc(pos, neg []float64) float64 {
	var wins float64
	for _, p := range pos {
		for _, n := range neg {
			switch {
			case p > n:
				wins++
			case p == n:
				wins += 0.5
			}
		}
	}
	return wins / float64(len(pos)*len(neg))
}
