package main

import (
	"reflect"
	"strings"
	"testing"
)

func TestReadTSV(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    [][]string // values per record
		lines   []int
		wantErr string
	}{
		{name: "quotes are literal characters",
			in:   "a\tb\n\"x\"\the said \"hi\n'y'\t\"\"\n",
			want: [][]string{{`"x"`, `he said "hi`}, {`'y'`, `""`}}, lines: []int{2, 3}},
		{name: "columns found by name, extra columns ignored",
			in:   "note\tb\ta\nn1\tB1\tA1\n",
			want: [][]string{{"A1", "B1"}}, lines: []int{2}},
		{name: "CRLF, a byte-order mark and blank lines",
			in:   "\ufeffa\tb\r\n\r\nA\tB\r\n\n",
			want: [][]string{{"A", "B"}}, lines: []int{3}},
		{name: "no final newline",
			in:   "a\tb\nA\tB",
			want: [][]string{{"A", "B"}}, lines: []int{2}},
		{name: "empty fields are kept",
			in:   "a\tb\n\t\n",
			want: [][]string{{"", ""}}, lines: []int{2}},
		{name: "header only", in: "a\tb\n", want: nil},
		{name: "empty file", in: "", wantErr: "t.tsv: empty: a header line naming a, b is required"},
		{name: "no header: the first line is data", in: "1\tx\n", wantErr: `t.tsv:1: the header has no column "a"`},
		{name: "missing column", in: "a\tc\nA\tC\n", wantErr: `t.tsv:1: the header has no column "b"`},
		{name: "too few fields", in: "a\tb\nA\tB\nA\n", wantErr: "t.tsv:3: 1 fields, the header has 2"},
		{name: "too many fields", in: "a\tb\nA\tB\tC\n", wantErr: "t.tsv:2: 3 fields, the header has 2"},
		{name: "not UTF-8", in: "a\tb\nA\t\xff\n", wantErr: "t.tsv:2: not valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs, err := readTSV(strings.NewReader(tt.in), "t.tsv", "a", "b")
			if !wantErr(t, err, tt.wantErr) {
				return
			}
			var got [][]string
			var lines []int
			for _, r := range recs {
				got = append(got, r.values)
				lines = append(lines, r.line)
			}
			if !reflect.DeepEqual(got, tt.want) || !reflect.DeepEqual(lines, tt.lines) {
				t.Fatalf("got %q at lines %v, want %q at %v", got, lines, tt.want, tt.lines)
			}
		})
	}
}

func TestParsePairs(t *testing.T) {
	const header = "label\tcategory\ta\tb\n"
	tests := []struct {
		name    string
		in      string
		want    []pair
		wantErr string
	}{
		{name: "labels and literal quotes",
			in: header + "1\tpara-x\tSay \"hi\"\tSay \"hi\" please\n0\tnear-y\tA\tB\n",
			want: []pair{{Line: 2, Label: 1, Category: "para-x", A: `Say "hi"`, B: `Say "hi" please`},
				{Line: 3, Label: 0, Category: "near-y", A: "A", B: "B"}}},
		{name: "a label that is neither 0 nor 1", in: header + "1\tc\tA\tB\nyes\tc\tA\tB\n", wantErr: `p.tsv:3: label must be 0 or 1, got "yes"`},
		{name: "an empty prompt", in: header + "1\tc\t \tB\n", wantErr: "p.tsv:2: empty a"},
		{name: "an empty category", in: header + "0\t\tA\tB\n", wantErr: "p.tsv:2: empty category"},
		{name: "no rows", in: header, wantErr: "p.tsv: no pairs after the header"},
		{name: "a workload file given as pairs", in: "seq\tintent\tvariant\tprompt\n1\ti\t0\tp\n", wantErr: `p.tsv:1: the header has no column "label"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parsePairs(strings.NewReader(tt.in), "p.tsv")
			if !wantErr(t, err, tt.wantErr) {
				return
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseWorkload(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []request
		wantErr string
	}{
		{name: "sorted by seq, variant kept",
			in: "seq\tintent\tvariant\tprompt\n2\tb\t1\tB?\n1\ta\t0\t\"A\"\n",
			want: []request{{Line: 3, Seq: 1, Intent: "a", Variant: "0", Prompt: `"A"`},
				{Line: 2, Seq: 2, Intent: "b", Variant: "1", Prompt: "B?"}}},
		{name: "the variant column is optional",
			in:   "prompt\tintent\tseq\nA\ta\t1\n",
			want: []request{{Line: 2, Seq: 1, Intent: "a", Prompt: "A"}}},
		{name: "a repeated prompt of the same intent", in: "seq\tintent\tprompt\n1\ta\tA\n2\ta\tA\n",
			want: []request{{Line: 2, Seq: 1, Intent: "a", Prompt: "A"}, {Line: 3, Seq: 2, Intent: "a", Prompt: "A"}}},
		{name: "seq not a number", in: "seq\tintent\tprompt\nfirst\ta\tA\n", wantErr: `w.tsv:2: seq must be a whole number from 1, got "first"`},
		{name: "seq zero", in: "seq\tintent\tprompt\n0\ta\tA\n", wantErr: "w.tsv:2: seq must be a whole number from 1"},
		{name: "seq repeated", in: "seq\tintent\tprompt\n1\ta\tA\n1\tb\tB\n", wantErr: "w.tsv:3: seq 1 again (first at line 2)"},
		{name: "a prompt of two intents", in: "seq\tintent\tprompt\n1\ta\tA\n2\tb\tA\n", wantErr: `w.tsv:3: this prompt is also intent "a"'s (line 2)`},
		{name: "an empty intent", in: "seq\tintent\tprompt\n1\t\tA\n", wantErr: "w.tsv:2: empty intent"},
		{name: "no prompt column", in: "seq\tintent\n1\ta\n", wantErr: `w.tsv:1: the header has no column "prompt"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseWorkload(strings.NewReader(tt.in), "w.tsv")
			if !wantErr(t, err, tt.wantErr) {
				return
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseSiblings(t *testing.T) {
	got, err := parseSiblings(strings.NewReader("group\tintent\ng1\ta\ng1\tb\ng2\tc\n"), "s.tsv")
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"a": "g1", "b": "g1", "c": "g2"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	_, err = parseSiblings(strings.NewReader("group\tintent\ng1\ta\ng2\ta\n"), "s.tsv")
	if err == nil || !strings.Contains(err.Error(), `s.tsv:3: intent "a" is already in group "g1"`) {
		t.Fatalf("err = %v, want the second group refused at line 3", err)
	}
}

// wantErr checks err against want (a substring; "" wants no error) and
// reports whether the test should go on to check the result.
func wantErr(t *testing.T, err error, want string) bool {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Fatal(err)
	case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
		t.Fatalf("err = %v, want one containing %q", err, want)
	}
	return want == ""
}
