package tokens

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDumpEstimatorCorpus writes the texts the estimator factors were
// measured on, with their o200k_base counts, as JSON lines, when
// TOKENS_DUMP_DIR is set. The reference counts come from npm tokenizers run
// outside the repository (see estimate.go); the Go tests never need npm.
func TestDumpEstimatorCorpus(t *testing.T) {
	dir := os.Getenv("TOKENS_DUMP_DIR")
	if dir == "" {
		t.Skip("set TOKENS_DUMP_DIR to dump the estimator corpus")
	}
	type doc struct {
		Category string `json:"category"`
		Text     string `json:"text"`
		O200K    int    `json:"o200k"`
	}
	c := NewCounter(WithSegmentCache(0))
	var docs []doc
	add := func(cat, text string) {
		n, err := c.Count(O200K, text)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, doc{cat, text, n})
	}
	inputs := benchInputs(nil)
	for _, cat := range []string{"prose", "code"} {
		s := inputs[cat]
		for i := 0; i+4096 <= len(s) && i < 40*4096; i += 4096 {
			add("english-"+cat, strings.ToValidUTF8(s[i:i+4096], ""))
		}
	}
	for _, line := range strings.Split(readTestdata(t, "multilingual.txt"), "\n") {
		if line != "" {
			add("multilingual-line", line)
		}
	}
	for _, p := range testCorpus(t) {
		if p.name == "json" || p.name == "generated-prose" {
			for i, d := range p.docs {
				if i < 30 {
					add(p.name, strings.ToValidUTF8(d, ""))
				}
			}
		}
	}
	f, err := os.Create(filepath.Join(dir, "estimator-corpus.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	enc := json.NewEncoder(f)
	for _, d := range docs {
		if err := enc.Encode(d); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("wrote %d documents", len(docs))
}
