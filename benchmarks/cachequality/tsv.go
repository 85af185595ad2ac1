package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The input files are the dev set's formats (../shared/data/semcache-dev/
// README.md): UTF-8, tab-separated, one header line naming the columns.
// Quotes are literal characters, not CSV quoting (Python's
// csv.QUOTE_NONE): a field is everything between two tabs. Columns are
// found by name, so extra columns (a user's own notes) are allowed.

// tsvRecord is one data line: its line number in the file and the values
// of the columns asked for, in the order asked.
type tsvRecord struct {
	line   int
	values []string
}

// readTSV reads a TSV file with quoting off. The header must name every
// column of want; every data line must have as many fields as the header.
// An empty line is skipped; a CR before the LF is dropped (a file saved on
// Windows reads the same). Errors name the file and line.
func readTSV(r io.Reader, name string, want ...string) ([]tsvRecord, error) {
	br := bufio.NewReader(r)
	var (
		recs    []tsvRecord
		index   []int // column index of each wanted name
		nfields int
	)
	for line := 1; ; line++ {
		text, err := br.ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s:%d: %w", name, line, err)
		}
		if text == "" && errors.Is(err, io.EOF) {
			break
		}
		text = strings.TrimSuffix(strings.TrimSuffix(text, "\n"), "\r")
		if !utf8.ValidString(text) {
			return nil, fmt.Errorf("%s:%d: not valid UTF-8", name, line)
		}
		if index == nil {
			text = strings.TrimPrefix(text, "\ufeff") // a byte-order mark some editors write
			header := strings.Split(text, "\t")
			for _, w := range want {
				i := slices.Index(header, w)
				if i < 0 {
					return nil, fmt.Errorf("%s:%d: the header has no column %q (a header line naming %s is required; got %q)",
						name, line, w, strings.Join(want, ", "), text)
				}
				index = append(index, i)
			}
			nfields = len(header)
		} else if text != "" {
			fields := strings.Split(text, "\t")
			if len(fields) != nfields {
				return nil, fmt.Errorf("%s:%d: %d fields, the header has %d (fields are tab-separated; a field cannot hold a tab)",
					name, line, len(fields), nfields)
			}
			rec := tsvRecord{line: line, values: make([]string, len(index))}
			for j, i := range index {
				rec.values[j] = fields[i]
			}
			recs = append(recs, rec)
		}
		if errors.Is(err, io.EOF) {
			break
		}
	}
	if index == nil {
		return nil, fmt.Errorf("%s: empty: a header line naming %s is required", name, strings.Join(want, ", "))
	}
	return recs, nil
}

// pair is one labelled row of a pairs file: label 1 means b may be served
// a's answer (a paraphrase), label 0 means it may not (a near-miss).
type pair struct {
	Line     int
	Label    int
	Category string
	A, B     string
}

// parsePairs reads a pairs file: columns label, category, a, b.
func parsePairs(r io.Reader, name string) ([]pair, error) {
	recs, err := readTSV(r, name, "label", "category", "a", "b")
	if err != nil {
		return nil, err
	}
	pairs := make([]pair, 0, len(recs))
	for _, rec := range recs {
		v := rec.values
		p := pair{Line: rec.line, Category: v[1], A: v[2], B: v[3]}
		switch v[0] {
		case "0":
		case "1":
			p.Label = 1
		default:
			return nil, fmt.Errorf("%s:%d: label must be 0 or 1, got %q", name, rec.line, v[0])
		}
		if err := nonEmpty(name, rec.line, "category", p.Category, "a", p.A, "b", p.B); err != nil {
			return nil, err
		}
		pairs = append(pairs, p)
	}
	if len(pairs) == 0 {
		return nil, fmt.Errorf("%s: no pairs after the header", name)
	}
	return pairs, nil
}

// request is one row of a workload file.
type request struct {
	Line    int
	Seq     int
	Intent  string
	Variant string // optional column: "" when the file has none
	Prompt  string
}

// parseWorkload reads a workload file: columns seq, intent, prompt (and
// variant, kept when present). Requests come back in seq order. Every
// prompt string must belong to one intent: a served answer is judged by
// the intent of the prompt it encodes.
func parseWorkload(r io.Reader, name string) ([]request, error) {
	br := bufio.NewReader(r)
	// The variant column is optional: peek at the header to know whether
	// to ask for it.
	head, _ := br.Peek(4096)
	first, _, _ := strings.Cut(string(head), "\n")
	want := []string{"seq", "intent", "prompt"}
	hasVariant := slices.Contains(strings.Split(strings.TrimSuffix(first, "\r"), "\t"), "variant")
	if hasVariant {
		want = append(want, "variant")
	}
	recs, err := readTSV(br, name, want...)
	if err != nil {
		return nil, err
	}
	reqs := make([]request, 0, len(recs))
	seqLine := map[int]int{}
	owner := map[string]request{}
	for _, rec := range recs {
		v := rec.values
		seq, err := strconv.Atoi(v[0])
		if err != nil || seq < 1 {
			return nil, fmt.Errorf("%s:%d: seq must be a whole number from 1, got %q", name, rec.line, v[0])
		}
		if l, dup := seqLine[seq]; dup {
			return nil, fmt.Errorf("%s:%d: seq %d again (first at line %d)", name, rec.line, seq, l)
		}
		seqLine[seq] = rec.line
		q := request{Line: rec.line, Seq: seq, Intent: v[1], Prompt: v[2]}
		if hasVariant {
			q.Variant = v[3]
		}
		if err := nonEmpty(name, rec.line, "intent", q.Intent, "prompt", q.Prompt); err != nil {
			return nil, err
		}
		if o, seen := owner[q.Prompt]; seen && o.Intent != q.Intent {
			return nil, fmt.Errorf("%s:%d: this prompt is also intent %q's (line %d): a prompt must belong to one intent",
				name, rec.line, o.Intent, o.Line)
		} else if !seen {
			owner[q.Prompt] = q
		}
		reqs = append(reqs, q)
	}
	if len(reqs) == 0 {
		return nil, fmt.Errorf("%s: no requests after the header", name)
	}
	slices.SortStableFunc(reqs, func(a, b request) int { return a.Seq - b.Seq })
	return reqs, nil
}

// parseSiblings reads a siblings file (columns group, intent) into the
// group of each intent.
func parseSiblings(r io.Reader, name string) (map[string]string, error) {
	recs, err := readTSV(r, name, "group", "intent")
	if err != nil {
		return nil, err
	}
	group := map[string]string{}
	for _, rec := range recs {
		g, intent := rec.values[0], rec.values[1]
		if err := nonEmpty(name, rec.line, "group", g, "intent", intent); err != nil {
			return nil, err
		}
		if old, ok := group[intent]; ok && old != g {
			return nil, fmt.Errorf("%s:%d: intent %q is already in group %q", name, rec.line, intent, old)
		}
		group[intent] = g
	}
	return group, nil
}

// nonEmpty checks (column, value) pairs for empty values.
func nonEmpty(name string, line int, kv ...string) error {
	for i := 0; i+1 < len(kv); i += 2 {
		if strings.TrimSpace(kv[i+1]) == "" {
			return fmt.Errorf("%s:%d: empty %s", name, line, kv[i])
		}
	}
	return nil
}
