package lexicon

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"slices"
	"testing"
)

// raw builds an uncompressed table from varints and strings.
func raw(parts ...any) []byte {
	b := []byte(magic)
	for _, p := range parts {
		switch v := p.(type) {
		case int:
			b = binary.AppendUvarint(b, uint64(v))
		case string:
			b = append(b, v...)
		}
	}
	return b
}

func gz(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// small is a valid table: lemmas "go" (1) and "run" (2), other strings
// "ran" (base run, known, freq 7) and "zzz" (unknown, freq 3); go and run
// related, no antonyms.
func small() []byte {
	return raw(2, 2,
		0, 2, "go", 0, 3, "run", // lemmas
		0, 3, "ran", 0, 3, "zzz", // others
		1<<1|1, 5, 0, // go: base itself
		1<<1|1, 9, 0, // run: base itself
		1<<1|1, 7, 0, // ran: ref is 2 (only "go" sorts before it), run is 2: zigzag(0)
		0<<1|0, 3, // zzz
		1, 1, 0, // related: go-run; run has none above
		0, 0, // antonyms
	)
}

func TestDecodeSmallTable(t *testing.T) {
	l, err := Decode(gz(t, small()))
	if err != nil {
		t.Fatal(err)
	}
	if got := texts(l, l.Lemmas("ran")); !slices.Equal(got, []string{"run"}) {
		t.Errorf("Lemmas(ran) = %q", got)
	}
	if got := texts(l, l.Related(1)); !slices.Equal(got, []string{"run"}) {
		t.Errorf("Related(go) = %q", got)
	}
	if got := texts(l, l.Related(2)); !slices.Equal(got, []string{"go"}) {
		t.Errorf("Related(run) = %q", got)
	}
	if !l.Known("ran") || l.Known("zzz") || l.Freq("zzz") != 3 || l.Freq("go") != 5 {
		t.Errorf("Known(ran) %v, Known(zzz) %v, Freq(zzz) %d, Freq(go) %d", l.Known("ran"), l.Known("zzz"), l.Freq("zzz"), l.Freq("go"))
	}
}

// TestDecodeCorrupt feeds broken tables: each gives an error, not a panic
// and not a lexicon.
func TestDecodeCorrupt(t *testing.T) {
	good := gz(t, small())
	flipped := slices.Clone(embedded)
	flipped[len(flipped)/2] ^= 0x40
	cases := []struct {
		name  string
		table []byte
	}{
		{"empty", nil},
		{"not gzip", []byte("tollgate-lexicon")},
		{"embedded table truncated", embedded[:len(embedded)/2]},
		{"embedded table with a flipped bit", flipped},
		{"gzip trailer cut", good[:len(good)-3]},
		{"wrong magic", gz(t, []byte("tollgate-lexicoN\x00\x01"))},
		{"no counts", gz(t, []byte(magic))},
		{"count beyond the table", gz(t, raw(1000, 0))},
		{"lemmas out of order", gz(t, raw(2, 0, 0, 3, "run", 0, 2, "go"))},
		{"same lemma twice", gz(t, raw(2, 0, 0, 2, "go", 2, 0))},
		{"lemma also an other string", gz(t, raw(1, 1, 0, 2, "go", 0, 2, "go", 1<<1|1, 0, 0, 1<<1|1, 0, 1, 0, 0))},
		{"prefix longer than the previous string", gz(t, raw(2, 0, 0, 2, "go", 5, 1, "x"))},
		{"base out of range", gz(t, raw(1, 0, 0, 2, "go", 1<<1|1, 0, 4, 0, 0))},
		{"bases out of order", gz(t, raw(2, 0, 0, 2, "go", 0, 3, "run", 2<<1|1, 0, 0, 0, 1<<1|1, 0, 0, 0, 0, 0, 0))},
		{"relation beyond the last id", gz(t, raw(1, 0, 0, 2, "go", 1<<1|1, 0, 0, 1, 1, 0))},
		{"relation to itself", gz(t, raw(1, 0, 0, 2, "go", 1<<1|1, 0, 0, 1, 0, 0))},
		{"trailing bytes", gz(t, append(small(), 0))},
		{"truncated", gz(t, small()[:len(small())-1])},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l, err := Decode(c.table)
			if err == nil || l != nil {
				t.Fatalf("Decode = %v, %v; want an error", l, err)
			}
			if !errors.Is(err, errCorrupt) {
				t.Errorf("error %v does not wrap errCorrupt", err)
			}
		})
	}
}

// FuzzDecodeRaw checks that no decompressed table makes the decoder panic,
// and that what it accepts answers lookups within bounds.
func FuzzDecodeRaw(f *testing.F) {
	f.Add(small())
	f.Add(raw(1, 0, 0, 2, "go", 1<<1|1, 0, 0, 0, 0))
	f.Add(raw(2, 0, 0, 2, "go", 0, 3, "run", 2<<1|1, 0, 0, 0, 1<<1|1, 0, 0, 0, 0, 0, 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := decodeRaw(b)
		if err != nil {
			return
		}
		for id := Word(0); int(id) <= l.nLemma+1; id++ {
			w := l.Text(id)
			_ = l.Lemmas(w)
			_ = l.Known(w)
			_ = l.Freq(w)
			for _, n := range slices.Concat(l.Related(id), l.Antonyms(id)) {
				if n == 0 || int(n) > l.nLemma {
					t.Fatalf("id %d links to %d of %d", id, n, l.nLemma)
				}
			}
		}
	})
}
