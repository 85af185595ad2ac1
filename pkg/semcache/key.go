package semcache

import (
	"bytes"
	"errors"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// ignored says whether a top-level request member does not change what the
// model answers, so that requests differing only in it share an entry:
//
//   - stream, stream_options: the shape of the answer, not its content
//     (a hit is replayed in whichever shape the client asks for);
//   - user, safety_identifier, metadata: labels for abuse tracking and the
//     provider's dashboards;
//   - store: whether the provider keeps the completion for its own tools;
//   - service_tier: latency and price class, not the output;
//   - prompt_cache_key: a routing hint for the provider's prompt cache.
//
// model is not ignored but replaced by the model or route the client asked
// for (Request.Model). Every other member counts, including ones tollgate
// does not know: an unknown field is assumed to change the output.
func ignored(key []byte) bool {
	switch string(key) {
	case "stream", "stream_options", "user", "safety_identifier", "metadata",
		"store", "service_tier", "prompt_cache_key":
		return true
	}
	return false
}

var (
	errNoRequest = errors.New("semcache: request has no chat body")
	errNotObject = errors.New("semcache: request body is not a valid JSON object")
)

// maxDepth is encoding/json's nesting limit. The canonical form was first
// defined over encoding/json's decoding, under which deeper input is an
// error; it stays one.
const maxDepth = 10000

// The canonical form of a JSON value: object members sorted by their
// (unescaped) names, the last of duplicate names winning, no whitespace,
// strings as strconv.Quote writes them (so "\u00e9" and "é" are one
// spelling) and numbers as appendNumber writes them. It is what the keys
// hash; it was defined as the encoding of encoding/json's generic decoding
// (UseNumber) and the tests hold this single-pass version to that
// definition byte for byte, which keeps persisted exact keys valid.

// span is a half-open range of bytes.
type span struct{ start, end int }

func (s span) present() bool { return s.end > s.start }

// member is one object member as parsed: its unescaped name (in
// canon.keys), its canonical `"name":value` and value (in canon.out) and
// its raw value (in canon.in).
type member struct {
	key, kv, val, raw span
}

type roleKind uint8

const (
	roleOther  roleKind = iota
	roleUser            // "user"
	roleSystem          // "system" or "developer"
)

// message is one element of the request's messages array.
type message struct {
	elem    span // canonical element in canon.out
	role    roleKind
	content span // canonical normalised content in canon.out; absent when empty
	window  bool // one of the user turns the semantic path embeds
}

// How a value is canonicalised, by where it sits.
const (
	modeAny      = iota
	modeTop      // the request object: members are left for computeKeys
	modeMessages // the top-level messages value
	modeMessage  // an element of it: content is normalised, role noted
)

// canon is the scratch of one key computation; computeKeys pools them.
type canon struct {
	in    []byte
	out   []byte // canonical values, in input order at the top level
	keys  []byte // unescaped member names, a stack
	mems  []member
	msgs  []message
	depth int
	// What the last modeMessage object held, for the array holding it.
	role    roleKind
	content span
	body    []byte // digest input of the exact key: header, canonical request
	scope   []byte // digest input of the scope
	texts   []string
}

func (c *canon) reset(in []byte) {
	c.in = in
	c.out, c.keys, c.mems, c.msgs = c.out[:0], c.keys[:0], c.mems[:0], c.msgs[:0]
	c.body, c.scope, c.texts = c.body[:0], c.scope[:0], c.texts[:0]
	c.depth = 0
}

func isSpace(b byte) bool { return b == ' ' || b == '\t' || b == '\n' || b == '\r' }

func (c *canon) skipSpace(i int) int {
	for i < len(c.in) && isSpace(c.in[i]) {
		i++
	}
	return i
}

// value canonicalises the JSON value at in[i] onto out and returns its end,
// or -1 when the input is not valid JSON there.
func (c *canon) value(i, mode int) int {
	if i >= len(c.in) {
		return -1
	}
	switch b := c.in[i]; {
	case b == '{':
		return c.object(i, mode)
	case b == '[':
		return c.array(i, mode)
	case b == '"':
		return c.str(i, false)
	case b == 't':
		return c.literal(i, "true")
	case b == 'f':
		return c.literal(i, "false")
	case b == 'n':
		return c.literal(i, "null")
	case b == '-' || '0' <= b && b <= '9':
		return c.number(i)
	}
	return -1
}

func (c *canon) literal(i int, word string) int {
	if !bytes.HasPrefix(c.in[i:], []byte(word)) {
		return -1
	}
	c.out = append(c.out, word...)
	return i + len(word)
}

func isDigit(b byte) bool { return b >= '0' && b <= '9' }

func (c *canon) digits(i int) int {
	for i < len(c.in) && isDigit(c.in[i]) {
		i++
	}
	return i
}

func (c *canon) number(i int) int {
	in, start := c.in, i
	if in[i] == '-' {
		i++
	}
	switch {
	case i < len(in) && in[i] == '0':
		i++
	case i < len(in) && isDigit(in[i]):
		i = c.digits(i)
	default:
		return -1
	}
	plain := true
	if i < len(in) && in[i] == '.' {
		plain = false
		if j := c.digits(i + 1); j > i+1 {
			i = j
		} else {
			return -1
		}
	}
	if i < len(in) && (in[i] == 'e' || in[i] == 'E') {
		plain = false
		i++
		if i < len(in) && (in[i] == '+' || in[i] == '-') {
			i++
		}
		if j := c.digits(i); j > i {
			i = j
		} else {
			return -1
		}
	}
	lit := in[start:i]
	switch {
	case plain && len(lit) <= 18: // an int64 already in AppendInt's spelling but for -0
		if string(lit) == "-0" {
			lit = lit[1:]
		}
		c.out = append(c.out, lit...)
	default:
		c.out = appendNumber(c.out, string(lit))
	}
	return i
}

// appendNumber writes a JSON number so that every spelling of one value is
// the same: 1, 1.0, 1e0 and 10e-1 all become 1. Integers are kept exact
// (seeds do not fit a float64's 53 bits); other values go through float64.
func appendNumber(b []byte, s string) []byte {
	if !strings.ContainsAny(s, ".eE") {
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return strconv.AppendInt(b, i, 10)
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return append(b, s...)
	}
	if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		return strconv.AppendInt(b, int64(f), 10)
	}
	return strconv.AppendFloat(b, f, 'g', -1, 64)
}

// str writes the JSON string at in[i] as strconv.Quote writes its decoded
// value (decoded as encoding/json does: invalid UTF-8 and lone surrogates
// become U+FFFD) and, for a member name, the decoded value onto keys.
func (c *canon) str(i int, key bool) int {
	in := c.in
	c.out = append(c.out, '"')
	i++
	for {
		j := i
		for j < len(in) && in[j] >= 0x20 && in[j] < 0x7f && in[j] != '"' && in[j] != '\\' {
			j++
		}
		c.out = append(c.out, in[i:j]...)
		if key {
			c.keys = append(c.keys, in[i:j]...)
		}
		if j >= len(in) {
			return -1
		}
		i = j
		var r rune
		switch b := in[i]; {
		case b == '"':
			c.out = append(c.out, '"')
			return i + 1
		case b < 0x20:
			return -1
		case b == '\\':
			if i+1 >= len(in) {
				return -1
			}
			switch e := in[i+1]; e {
			case '"', '\\', '/':
				r = rune(e)
			case 'b':
				r = '\b'
			case 'f':
				r = '\f'
			case 'n':
				r = '\n'
			case 'r':
				r = '\r'
			case 't':
				r = '\t'
			case 'u':
				if r = hex4(in[i:]); r < 0 {
					return -1
				}
				i += 4
				if utf16.IsSurrogate(r) {
					if d := utf16.DecodeRune(r, hex4(in[i+2:])); d != utf8.RuneError {
						r = d
						i += 6
					} else {
						r = utf8.RuneError
					}
				}
			default:
				return -1
			}
			i += 2
		case b < utf8.RuneSelf: // DEL
			r = rune(b)
			i++
		default:
			var n int
			r, n = utf8.DecodeRune(in[i:]) // invalid: RuneError, as encoding/json
			i += n
		}
		c.out = appendQuotedRune(c.out, r)
		if key {
			c.keys = utf8.AppendRune(c.keys, r)
		}
	}
}

// hex4 decodes the \uXXXX escape at the start of b, or returns -1.
func hex4(b []byte) rune {
	if len(b) < 6 || b[0] != '\\' || b[1] != 'u' {
		return -1
	}
	var r rune
	for _, h := range b[2:6] {
		switch {
		case '0' <= h && h <= '9':
			h -= '0'
		case 'a' <= h && h <= 'f':
			h = h - 'a' + 10
		case 'A' <= h && h <= 'F':
			h = h - 'A' + 10
		default:
			return -1
		}
		r = r<<4 | rune(h)
	}
	return r
}

// appendQuotedRune writes r as strconv.Quote writes it inside a string.
func appendQuotedRune(b []byte, r rune) []byte {
	switch {
	case r == '"' || r == '\\':
		return append(b, '\\', byte(r))
	case 0x20 <= r && r < 0x7f:
		return append(b, byte(r))
	case r >= utf8.RuneSelf && strconv.IsPrint(r):
		return utf8.AppendRune(b, r)
	}
	// Not printable: QuoteRune escapes it as Quote does (the two differ
	// only in which quote they escape, and r is neither).
	var q [16]byte
	e := strconv.AppendQuoteRune(q[:0], r)
	return append(b, e[1:len(e)-1]...)
}

func (c *canon) array(i, mode int) int {
	if c.depth++; c.depth > maxDepth {
		return -1
	}
	c.out = append(c.out, '[')
	elemMode := modeAny
	if mode == modeMessages {
		elemMode = modeMessage
	}
	if i = c.skipSpace(i + 1); i < len(c.in) && c.in[i] == ']' {
		c.out = append(c.out, ']')
		c.depth--
		return i + 1
	}
	for n := 0; ; n++ {
		if n > 0 {
			c.out = append(c.out, ',')
		}
		start := len(c.out)
		c.role, c.content = roleOther, span{}
		if i = c.value(i, elemMode); i < 0 {
			return -1
		}
		if mode == modeMessages {
			c.msgs = append(c.msgs, message{elem: span{start, len(c.out)}, role: c.role, content: c.content})
		}
		if i = c.skipSpace(i); i >= len(c.in) {
			return -1
		}
		switch c.in[i] {
		case ']':
			c.out = append(c.out, ']')
			c.depth--
			return i + 1
		case ',':
			i = c.skipSpace(i + 1)
		default:
			return -1
		}
	}
}

func (c *canon) object(i, mode int) int {
	if c.depth++; c.depth > maxDepth {
		return -1
	}
	base, memBase, keyBase := len(c.out), len(c.mems), len(c.keys)
	c.out = append(c.out, '{')
	if i = c.skipSpace(i + 1); i < len(c.in) && c.in[i] == '}' {
		i++
	} else {
		for {
			if i >= len(c.in) || c.in[i] != '"' {
				return -1
			}
			if len(c.mems) > memBase {
				c.out = append(c.out, ',')
			}
			kv, ks := len(c.out), len(c.keys)
			if i = c.str(i, true); i < 0 {
				return -1
			}
			key := span{ks, len(c.keys)}
			if i = c.skipSpace(i); i >= len(c.in) || c.in[i] != ':' {
				return -1
			}
			c.out = append(c.out, ':')
			i = c.skipSpace(i + 1)
			vmode := modeAny
			if mode == modeTop && string(c.keys[key.start:key.end]) == "messages" {
				vmode = modeMessages
				c.msgs = c.msgs[:0] // the last messages member wins
			}
			vs, raw := len(c.out), i
			if i = c.value(i, vmode); i < 0 {
				return -1
			}
			c.mems = append(c.mems, member{key: key, kv: span{kv, len(c.out)}, val: span{vs, len(c.out)}, raw: span{raw, i}})
			if i = c.skipSpace(i); i >= len(c.in) {
				return -1
			}
			if c.in[i] == '}' {
				i++
				break
			}
			if c.in[i] != ',' {
				return -1
			}
			i = c.skipSpace(i + 1)
		}
	}
	c.depth--
	if mode == modeTop {
		return i // computeKeys orders the members
	}
	c.out = append(c.out, '}')
	c.finish(base, c.mems[memBase:], mode)
	c.mems, c.keys = c.mems[:memBase], c.keys[:keyBase]
	return i
}

func (c *canon) key(m member) []byte { return c.keys[m.key.start:m.key.end] }

// sortMembers orders ms by name, keeping the input order of equal names,
// and says whether they were already strictly ordered (so unique).
func (c *canon) sortMembers(ms []member) (ordered bool) {
	ordered = true
	for j := 1; j < len(ms) && ordered; j++ {
		ordered = bytes.Compare(c.key(ms[j-1]), c.key(ms[j])) < 0
	}
	if !ordered {
		slices.SortStableFunc(ms, func(a, b member) int { return bytes.Compare(c.key(a), c.key(b)) })
	}
	return ordered
}

// finish puts the object written at out[base:] in canonical member order
// and, for a message, normalises its content and notes its role.
func (c *canon) finish(base int, ms []member, mode int) {
	if c.sortMembers(ms) && mode != modeMessage {
		return // written in canonical order already
	}
	start := len(c.out)
	c.out = append(c.out, '{')
	var content span
	role := roleOther
	for j, m := range ms {
		if j+1 < len(ms) && bytes.Equal(c.key(m), c.key(ms[j+1])) {
			continue // a later duplicate wins
		}
		val := m.val
		isContent := false
		if mode == modeMessage {
			switch string(c.key(m)) {
			case "content":
				isContent = true
				v := c.out[val.start:val.end]
				if string(v) == "null" {
					continue // null content is no content
				}
				if s, ok := singleText(v); ok {
					val = span{val.start + s.start, val.start + s.end}
				}
			case "role":
				switch string(c.out[val.start:val.end]) {
				case `"user"`:
					role = roleUser
				case `"system"`, `"developer"`:
					role = roleSystem
				}
			}
		}
		if len(c.out) > start+1 {
			c.out = append(c.out, ',')
		}
		c.out = append(c.out, c.out[m.kv.start:m.val.start]...) // "name":
		vs := len(c.out)
		c.out = append(c.out, c.out[val.start:val.end]...)
		if isContent {
			content = span{vs, len(c.out)}
		}
	}
	c.out = append(c.out, '}')
	n := copy(c.out[base:], c.out[start:])
	c.out = c.out[:base+n]
	if mode == modeMessage {
		c.role = role
		if content.present() {
			content = span{content.start - start + base, content.end - start + base}
		}
		c.content = content
	}
}

// singleText reports whether the canonical content v is one text part,
// [{"text":S,"type":"text"}] with S a string, and where S lies in v: such
// content means the same as the plain string S.
func singleText(v []byte) (span, bool) {
	const pre, suf = `[{"text":`, `,"type":"text"}]`
	if len(v) < len(pre)+len(suf)+2 || string(v[:len(pre)]) != pre || string(v[len(v)-len(suf):]) != suf {
		return span{}, false
	}
	s := span{len(pre), len(v) - len(suf)}
	if v[s.start] != '"' || canonEnd(v, s.start) != s.end {
		return span{}, false
	}
	return s, true
}

// canonEnd returns the end of the canonical value at b[i]. Canonical
// strings hold a quote only escaped, so it need not validate anything.
func canonEnd(b []byte, i int) int {
	depth := 0
	for j := i; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			for j++; j < len(b) && b[j] != '"'; j++ {
				if b[j] == '\\' {
					j++
				}
			}
			if depth == 0 {
				return j + 1
			}
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return j
			}
			if depth--; depth == 0 {
				return j + 1
			}
		case ',':
			if depth == 0 {
				return j
			}
		}
	}
	return len(b)
}

// ExactKey is the exact cache key of r: a hash of its scope and of the
// canonical request (see ignored). Two requests have the same key exactly
// when they would be served the same exact entry. It is "" when the
// request cannot be parsed. (Prepare computes it with the other keys.)
func (c *Cache) ExactKey(r Request) string {
	k, err := computeKeys(r, c.turns)
	if err != nil {
		return ""
	}
	return k.exact
}
