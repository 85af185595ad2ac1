package guardrails

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrScanLimit is returned once a request has fed more text than the set's
// scan limit: the caller refuses the request rather than pass it unmasked.
var ErrScanLimit = errors.New("guardrails: request text exceeds the scan limit")

// DefaultScanLimit bounds the bytes one request may have scanned (prompt and
// answer together), so the cost of the detectors per request is bounded.
const DefaultScanLimit = 4 << 20

// Set is a compiled, immutable list of detectors shared by all requests.
type Set struct {
	dets      []Detector
	order     map[string]int // kind → position, for deterministic ties
	hold      int            // bytes a stream holds back (longest MaxLen)
	maxKind   int
	scanLimit int
}

// NewSet compiles a set; detector kinds must be distinct.
func NewSet(dets ...Detector) (*Set, error) {
	if len(dets) == 0 {
		return nil, errors.New("guardrails: no detectors")
	}
	s := &Set{dets: dets, order: map[string]int{}, scanLimit: DefaultScanLimit}
	for i, d := range dets {
		if _, dup := s.order[d.Kind()]; dup {
			return nil, fmt.Errorf("guardrails: two detectors named %q", d.Name())
		}
		s.order[d.Kind()] = i
		s.hold = max(s.hold, d.MaxLen())
		s.maxKind = max(s.maxKind, len(d.Kind()))
	}
	return s, nil
}

// WithScanLimit returns a copy of the set with a different per-request limit.
func (s *Set) WithScanLimit(n int) *Set {
	c := *s
	c.scanLimit = n
	return &c
}

// Hold is the number of bytes a StreamMasker holds back (besides open PEM
// blocks and JWTs, held until they close).
func (s *Set) Hold() int { return s.hold }

// find returns the resolved matches in text.
func (s *Set) find(dst []Span, text string) []Span {
	for _, d := range s.dets {
		dst = d.Find(dst, text)
	}
	return resolve(dst, s.order)
}

// Masker masks the text of one request: same value, same placeholder; the map
// from placeholder to value lives only as long as the Masker. Not safe for
// concurrent use.
type Masker struct {
	set   *Set
	st    *maskState
	spans []Span
	// keep lists kinds whose matches are counted but left in the text
	// (a guard whose action is log); hits counts every match by kind.
	keep map[string]bool
	hits map[string]int
}

// maskState is what the maskers of one request share, whatever set each
// scans with: the placeholders (so a value has one placeholder in the
// prompt and the answer) and the bytes scanned (one scan limit).
type maskState struct {
	scanned int
	byValue map[string]string // kind + "\x00" + value → placeholder
	values  map[string]string // placeholder → value
	counts  map[string]int
}

// Masker starts the masking of one request.
func (s *Set) Masker() *Masker {
	return &Masker{set: s, st: &maskState{}}
}

// Sibling returns a masker scanning with set that shares this one's
// placeholders and scan budget: the answer of a request masked with the
// request's numbering. Its hits are its own.
func (m *Masker) Sibling(set *Set) *Masker {
	return &Masker{set: set, st: m.st}
}

// Keep makes the masker count the matches of kind but leave them in the
// text (a log action).
func (m *Masker) Keep(kind string) {
	if m.keep == nil {
		m.keep = map[string]bool{}
	}
	m.keep[kind] = true
}

// Hits returns the matches so far by kind (not to be modified).
func (m *Masker) Hits() map[string]int { return m.hits }

// Mask replaces every match in text with its placeholder ("[EMAIL_1]").
func (m *Masker) Mask(text string) (string, error) {
	if err := m.charge(len(text)); err != nil {
		return "", err
	}
	m.spans = m.set.find(m.spans[:0], text)
	if len(m.spans) == 0 {
		return text, nil
	}
	var b strings.Builder
	b.Grow(len(text))
	m.write(&b, text, m.spans, 0, len(text))
	return b.String(), nil
}

func (m *Masker) charge(n int) error {
	m.st.scanned += n
	if m.st.scanned > m.set.scanLimit {
		return ErrScanLimit
	}
	return nil
}

// write copies text[from:to] to b with the spans (all within it) replaced.
func (m *Masker) write(b *strings.Builder, text string, spans []Span, from, to int) {
	for _, sp := range spans {
		if m.hits == nil {
			m.hits = map[string]int{}
		}
		m.hits[sp.Kind]++
		if m.keep[sp.Kind] {
			continue
		}
		b.WriteString(text[from:sp.Start])
		b.WriteString(m.placeholder(sp.Kind, text[sp.Start:sp.End]))
		from = sp.End
	}
	b.WriteString(text[from:to])
}

func (m *Masker) placeholder(kind, value string) string {
	st := m.st
	if st.byValue == nil {
		st.byValue, st.values, st.counts = map[string]string{}, map[string]string{}, map[string]int{}
	}
	key := kind + "\x00" + value
	if p, ok := st.byValue[key]; ok {
		return p
	}
	st.counts[kind]++
	p := "[" + kind + "_" + strconv.Itoa(st.counts[kind]) + "]"
	st.byValue[key] = p
	st.values[p] = value
	return p
}

// Values returns the number of distinct values masked so far.
func (m *Masker) Values() int { return len(m.st.values) }

// Restorer returns a masker that unmasks only the placeholders of the
// given kinds issued so far: the user's own values, restored in an answer,
// while values the answer itself brought stay masked.
func (m *Masker) Restorer(kinds func(kind string) bool) *Masker {
	r := &Masker{set: m.set, st: &maskState{values: map[string]string{}}}
	for key, p := range m.st.byValue {
		kind, _, _ := strings.Cut(key, "\x00")
		if kinds(kind) {
			r.st.values[p] = m.st.values[p]
		}
	}
	return r
}

// maxPlaceholder is the longest placeholder this masker can produce.
func (m *Masker) maxPlaceholder() int { return m.set.maxKind + len("[_]") + 10 }

// Unmask restores the values behind the placeholders this masker issued;
// other bracketed text is left alone.
func (m *Masker) Unmask(text string) string {
	if len(m.st.values) == 0 {
		return text
	}
	var b strings.Builder
	out, _ := m.unmask(&b, text, true)
	if out < 0 {
		return text
	}
	return b.String()
}

// unmask writes text to b with placeholders restored; when final is false it
// stops before a trailing '[' that may begin a placeholder and returns the
// index where it stopped (-1 if nothing was replaced and final).
func (m *Masker) unmask(b *strings.Builder, text string, final bool) (int, bool) {
	from, i, replaced := 0, 0, false
	for {
		at := strings.IndexByte(text[i:], '[')
		if at < 0 {
			break
		}
		at += i
		end := strings.IndexByte(text[at:min(len(text), at+m.maxPlaceholder()+1)], ']')
		if end < 0 {
			if !final && len(text)-at <= m.maxPlaceholder() {
				b.WriteString(text[from:at])
				return at, true
			}
			i = at + 1
			continue
		}
		end += at + 1
		if v, ok := m.st.values[text[at:end]]; ok {
			b.WriteString(text[from:at])
			b.WriteString(v)
			from, replaced = end, true
			i = end
			continue
		}
		i = at + 1
	}
	if final && !replaced {
		return -1, false
	}
	b.WriteString(text[from:])
	return len(text), replaced
}
