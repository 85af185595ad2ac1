package main

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"sort"
)

// magic opens the table; the format is described in
// pkg/semcache/guard/lexicon/format.go, which reads what encode writes.
const magic = "tollgate-lexicon\x00\x01"

// encode writes the table in the lexicon's format, gzip-compressed with a
// header that holds no name and no time, so the bytes depend on the table
// only.
func (t *table) encode() ([]byte, error) {
	var raw []byte
	u := func(v uint64) { raw = binary.AppendUvarint(raw, v) }
	raw = append(raw, magic...)
	u(uint64(len(t.lemmas)))
	u(uint64(len(t.others)))
	for _, section := range [][]string{t.lemmas, t.others} {
		prev := ""
		for _, w := range section {
			n := 0
			for n < len(prev) && n < len(w) && prev[n] == w[n] {
				n++
			}
			u(uint64(n))
			u(uint64(len(w) - n))
			raw = append(raw, w[n:]...)
			prev = w
		}
	}
	for i, e := range t.info {
		// ref is the id the first base form is written against: the
		// string's own id for a lemma, else the id of the first lemma
		// that sorts after it (inflections sort near their lemma).
		ref := uint32(i + 1)
		if i >= len(t.lemmas) {
			w := t.others[i-len(t.lemmas)]
			ref = uint32(sort.SearchStrings(t.lemmas, w) + 1)
		}
		known := uint64(0)
		if e.known {
			known = 1
		}
		u(uint64(len(e.lemmas))<<1 | known)
		u(uint64(e.freq))
		prev := ref
		for j, l := range e.lemmas {
			if j == 0 {
				u(zigzag(int64(l) - int64(ref)))
			} else {
				u(uint64(l - prev))
			}
			prev = l
		}
	}
	for _, adj := range [][][]uint32{t.related, t.antonyms} {
		for i, ns := range adj {
			self := uint32(i + 1)
			var up []uint32
			for _, n := range ns {
				if n > self {
					up = append(up, n)
				}
			}
			u(uint64(len(up)))
			prev := self
			for _, n := range up {
				u(uint64(n - prev))
				prev = n
			}
		}
	}
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(raw); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("compress: %w", err)
	}
	return buf.Bytes(), nil
}

func zigzag(v int64) uint64 { return uint64(v<<1) ^ uint64(v>>63) }
