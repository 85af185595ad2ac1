package lexicon

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// The table is gzip-compressed; inside, every number is an unsigned varint
// (encoding/binary) unless said otherwise:
//
//	magic            "tollgate-lexicon\x00\x01"
//	nLemma, nOther
//	strings          nLemma lemmas (ids 1..nLemma) then nOther other
//	                 strings, each part strictly sorted, each string
//	                 front-coded against the one before it in its part:
//	                 shared prefix length, suffix length, suffix bytes
//	entries          per string in that order: nBases<<1 | known, freq,
//	                 then the base ids, sorted: the first as a zigzag
//	                 difference from ref (the string's own id for a lemma,
//	                 else 1 + the number of lemmas that sort before it), the
//	                 next ones as differences from the one before (>= 1)
//	related          per lemma id a in order: the number of related ids
//	                 above a, then those ids as differences (>= 1), the first
//	                 from a; the lists below a are implied (symmetry)
//	antonyms         likewise
//
// Nothing may follow. tools/lexgen writes it.
const magic = "tollgate-lexicon\x00\x01"

// maxRaw bounds the decompressed table, so a corrupt or hostile one cannot
// exhaust memory.
const maxRaw = 64 << 20

// errCorrupt is wrapped by every error about the table's content.
var errCorrupt = errors.New("lexicon: corrupt table")

// Decode reads a table (Default decodes the embedded one). A table that is
// not one, truncated or inconsistent gives an error, never a panic.
func Decode(b []byte) (*Lexicon, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty", errCorrupt)
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errCorrupt, err)
	}
	// gzip's trailer holds the decompressed size (mod 2^32): reading into
	// a buffer of that size saves growing one.
	var buf bytes.Buffer
	// gzip.NewReader has read a 10-byte header, so b has 4 bytes to spare.
	if n := int(binary.LittleEndian.Uint32(b[len(b)-4:])); n <= maxRaw {
		buf.Grow(n + bytes.MinRead)
	}
	if _, err := buf.ReadFrom(io.LimitReader(zr, maxRaw+1)); err != nil {
		return nil, fmt.Errorf("%w: %v", errCorrupt, err)
	}
	if buf.Len() > maxRaw {
		return nil, fmt.Errorf("%w: over %d bytes decompressed", errCorrupt, maxRaw)
	}
	return decodeRaw(buf.Bytes())
}

// decodeRaw reads a decompressed table.
func decodeRaw(raw []byte) (*Lexicon, error) {
	d := &decoder{b: raw}
	l := d.table()
	if d.err != nil {
		return nil, d.err
	}
	return l, nil
}

// decoder reads varints off raw, keeping the first error.
type decoder struct {
	b   []byte
	i   int
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: at byte %d: %s", errCorrupt, d.i, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.i:])
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.i += n
	return v
}

// count reads a number of items that each take at least one byte, so it
// cannot exceed what is left.
func (d *decoder) count() int {
	v := d.uvarint()
	if v > uint64(len(d.b)-d.i) {
		d.fail("count %d exceeds the table", v)
		return 0
	}
	return int(v)
}

func (d *decoder) table() *Lexicon {
	if !bytes.HasPrefix(d.b, []byte(magic)) {
		d.fail("not a lexicon table")
		return nil
	}
	d.i = len(magic)
	nLemma, nOther := d.count(), d.count()
	n := nLemma + nOther
	if d.err != nil || n > len(d.b) {
		d.fail("string counts")
		return nil
	}
	l := &Lexicon{nLemma: nLemma, off: make([]uint32, 1, n+1)}
	text := make([]byte, 0, len(d.b))
	for i := 0; i < n && d.err == nil; i++ {
		prevStart := 0
		if i > 0 && i != nLemma {
			prevStart = int(l.off[i-1])
		}
		prev := text[prevStart:]
		if i == 0 || i == nLemma {
			prev = nil
		}
		shared, suffix := d.count(), d.count()
		if shared > len(prev) || d.i+suffix > len(d.b) || shared+suffix == 0 {
			d.fail("string %d", i)
			break
		}
		start := len(text)
		text = append(text, prev[:shared]...)
		text = append(text, d.b[d.i:d.i+suffix]...)
		d.i += suffix
		if prev != nil && bytes.Compare(prev, text[start:]) >= 0 {
			d.fail("string %d is out of order", i)
		}
		l.off = append(l.off, uint32(len(text)))
	}
	if d.err != nil {
		return nil
	}
	l.text = string(text)

	l.known = make([]bool, n)
	l.freq = make([]uint32, n)
	l.baseOff = make([]uint32, 1, n+1)
	l.bases = make([]Word, 0, n)
	lemmaBelow := 0 // lemmas that sort before the current other string
	for i := 0; i < n && d.err == nil; i++ {
		h := d.uvarint()
		l.known[i] = h&1 == 1
		nb := h >> 1
		if nb > uint64(nLemma) {
			d.fail("string %d has %d bases", i, nb)
			break
		}
		f := d.uvarint()
		if f > 1<<32-1 {
			d.fail("string %d: frequency %d", i, f)
		}
		l.freq[i] = uint32(f)
		ref := int64(i + 1)
		if i >= nLemma {
			s := l.str(i)
			for lemmaBelow < nLemma && l.str(lemmaBelow) < s {
				lemmaBelow++
			}
			ref = int64(lemmaBelow + 1)
		}
		prev := int64(0)
		for j := uint64(0); j < nb && d.err == nil; j++ {
			v := d.uvarint()
			var id int64
			if j == 0 {
				id = ref + int64(v>>1)*(1-2*int64(v&1)) - int64(v&1)
			} else {
				id = prev + int64(v)
				if v == 0 || v > uint64(nLemma) {
					d.fail("string %d: bases out of order", i)
					break
				}
			}
			if id < 1 || id > int64(nLemma) {
				d.fail("string %d: base %d out of range", i, id)
				break
			}
			l.bases = append(l.bases, Word(id))
			prev = id
		}
		l.baseOff = append(l.baseOff, uint32(len(l.bases)))
	}
	l.relOff, l.rel = d.symmetric(nLemma)
	l.antOff, l.ant = d.symmetric(nLemma)
	if d.err == nil && d.i != len(d.b) {
		d.fail("%d bytes after the table", len(d.b)-d.i)
	}
	if d.err != nil {
		return nil
	}
	l.index(d)
	return l
}

func (l *Lexicon) str(i int) string { return l.text[l.off[i]:l.off[i+1]] }

// symmetric reads one relation's lists of ids above each lemma and returns
// the full symmetric adjacency: the neighbours of id w are
// ids[off[w-1]:off[w]], sorted.
func (d *decoder) symmetric(n int) (off []uint32, ids []Word) {
	if d.err != nil {
		return nil, nil
	}
	upOff := make([]int, n+1)
	var up []Word
	degree := make([]uint32, n+1)
	for a := 1; a <= n && d.err == nil; a++ {
		c := d.count()
		prev := uint64(a)
		for range c {
			v := d.uvarint()
			if v == 0 || v > uint64(n) || prev+v > uint64(n) {
				d.fail("relation of %d out of range", a)
				break
			}
			prev += v
			up = append(up, Word(prev))
			degree[a]++
			degree[prev]++
		}
		upOff[a] = len(up)
	}
	if d.err != nil {
		return nil, nil
	}
	off = make([]uint32, n+1)
	for w := 1; w <= n; w++ {
		off[w] = off[w-1] + degree[w]
	}
	ids = make([]Word, off[n])
	fill := make([]uint32, n+1)
	copy(fill, off[:n]) // fill[w] is where lemma w's next neighbour goes, w from 0 as w-1
	// Visiting a in increasing order puts, in every list, the lower
	// neighbours (ascending, added while visiting them) before the higher
	// ones (ascending, added while visiting the list's own lemma).
	for a := 1; a <= n; a++ {
		for _, b := range up[upOff[a-1]:upOff[a]] {
			ids[fill[a-1]] = b
			fill[a-1]++
			ids[fill[b-1]] = Word(a)
			fill[b-1]++
		}
	}
	return off, ids
}

// index builds the hash table over every string; a string twice is corrupt.
// It is at most two thirds full, so a linear probe stays short, and 2 MB
// for the ~308,000 strings of the embedded table.
func (l *Lexicon) index(d *decoder) {
	n := len(l.off) - 1
	size := 1
	for size <= n+n/2 { // at least one empty slot ends every probe
		size <<= 1
	}
	l.slots = make([]uint32, size)
	mask := uint32(size - 1)
	for i := range n {
		s := l.str(i)
		h := hash(s) & mask
		for l.slots[h] != 0 {
			if l.str(int(l.slots[h]-1)) == s {
				d.fail("%q twice", s)
				return
			}
			h = (h + 1) & mask
		}
		l.slots[h] = uint32(i + 1)
	}
}
