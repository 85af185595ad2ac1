package guardrails

import (
	"encoding/base64"
	"encoding/json"
	"strings"
)

type secretDetector struct{}

// Secret finds credentials by the shapes their issuers give them:
//
//   - OpenAI "sk-…" / "sk-proj-…" and Anthropic "sk-ant-…": 20–255 characters of
//     [A-Za-z0-9_-] holding at least one letter and one digit
//   - AWS access key ids "AKIA…" / "ASIA…" + 16 of [A-Z0-9]
//   - GitHub "ghp_" / "gho_" / "ghu_" / "ghs_" / "ghr_" + 36–255 alphanumerics,
//     and fine-grained "github_pat_…"
//   - Slack "xoxb-" / "xoxp-" / "xoxa-" / "xoxo-" / "xoxr-" / "xoxs-" tokens
//   - Google API keys "AIza" + 35 of [A-Za-z0-9_-]
//   - Stripe live keys "sk_live_" / "rk_live_"
//   - PEM private-key blocks "-----BEGIN … PRIVATE KEY-----" … "-----END … PRIVATE KEY-----" (up to 8 KiB)
//   - JWTs: three base64url parts whose header decodes to a JSON object with "alg"
//     (up to 4 KiB)
//
// A prefix glued to a longer word ("task-…", "myAKIA…") is not a key. AWS
// secret access keys (40 unmarked base64 characters) and generic high-entropy
// strings are not caught: without a prefix they cannot be told from hashes.
func Secret() Detector { return secretDetector{} }

func (secretDetector) Name() string { return "secret" }
func (secretDetector) Kind() string { return "SECRET" }

// MaxLen covers the prefixed tokens; PEM blocks and JWTs are longer and are
// held back only while open (Pending).
func (secretDetector) MaxLen() int { return len("github_pat_") + 255 + 2 }

const (
	maxPEM = 8 << 10
	maxJWT = 4 << 10
)

type tokenShape struct {
	prefix   string
	min, max int // length of the body after the prefix
	body     func(byte) bool
	mixed    bool // the body must hold a letter and a digit
}

func keyChar(c byte) bool   { return isAlnum(c) || c == '_' || c == '-' }
func upperNum(c byte) bool  { return isUpper(c) || isDigit(c) }
func patChar(c byte) bool   { return isAlnum(c) || c == '_' }
func slackChar(c byte) bool { return isAlnum(c) || c == '-' }

// shapes is ordered so that a longer prefix is tried before its own prefix.
var shapes = []tokenShape{
	{"sk-ant-", 20, 255, keyChar, true},
	{"sk-proj-", 20, 255, keyChar, true},
	{"sk-", 20, 255, keyChar, true},
	{"sk_live_", 16, 255, isAlnum, false},
	{"rk_live_", 16, 255, isAlnum, false},
	{"AKIA", 16, 16, upperNum, false},
	{"ASIA", 16, 16, upperNum, false},
	{"ghp_", 36, 255, isAlnum, false},
	{"gho_", 36, 255, isAlnum, false},
	{"ghu_", 36, 255, isAlnum, false},
	{"ghs_", 36, 255, isAlnum, false},
	{"ghr_", 36, 255, isAlnum, false},
	{"github_pat_", 22, 255, patChar, false},
	{"xoxb-", 10, 255, slackChar, false},
	{"xoxp-", 10, 255, slackChar, false},
	{"xoxa-", 10, 255, slackChar, false},
	{"xoxo-", 10, 255, slackChar, false},
	{"xoxr-", 10, 255, slackChar, false},
	{"xoxs-", 10, 255, slackChar, false},
	{"AIza", 35, 35, keyChar, false},
}

// byFirst lists, for each byte a shape's prefix starts with, the shapes in
// the order of shapes: one pass over the text tries only these.
var byFirst = func() (t [256][]*tokenShape) {
	for k := range shapes {
		sh := &shapes[k]
		t[sh.prefix[0]] = append(t[sh.prefix[0]], sh)
	}
	return t
}()

func (secretDetector) Find(dst []Span, s string) []Span {
	n0 := len(dst)
	for at := 0; at < len(s); at++ {
		cands := byFirst[s[at]]
		if cands == nil || at > 0 && keyChar(s[at-1]) {
			continue // a token starts only after a non-key character
		}
		for _, sh := range cands {
			if !strings.HasPrefix(s[at:], sh.prefix) {
				continue
			}
			b := at + len(sh.prefix)
			e := b
			for e < len(s) && keyChar(s[e]) && e-b <= sh.max {
				e++
			}
			if e-b > sh.max || e-b < sh.min || !allOf(s[b:e], sh.body) || (sh.mixed && !hasLetterAndDigit(s[b:e])) {
				continue
			}
			dst = append(dst, Span{at, e, "SECRET"})
			at = e - 1
			break
		}
	}
	dst = findBlocks(dst, s, n0, pemBegin, pemBlock)
	dst = findBlocks(dst, s, n0, "eyJ", jwtAt)
	sortSpans(dst[n0:])
	return dst
}

func allOf(s string, f func(byte) bool) bool {
	for i := 0; i < len(s); i++ {
		if !f(s[i]) {
			return false
		}
	}
	return true
}

func hasLetterAndDigit(s string) bool {
	l, d := false, false
	for i := 0; i < len(s); i++ {
		if isDigit(s[i]) {
			d = true
		} else if isAlnum(s[i]) {
			l = true
		}
	}
	return l && d
}

func overlaps(spans []Span, start, end int) bool {
	for _, sp := range spans {
		if start < sp.End && sp.Start < end {
			return true
		}
	}
	return false
}

func sortSpans(spans []Span) {
	for i := 1; i < len(spans); i++ { // few spans: insertion sort, no allocation
		for j := i; j > 0 && spans[j].Start < spans[j-1].Start; j-- {
			spans[j], spans[j-1] = spans[j-1], spans[j]
		}
	}
}

const pemBegin, pemKey = "-----BEGIN ", "PRIVATE KEY-----"

// pemBlock returns the end of the private-key block whose BEGIN line starts at
// at, or -1 if there is none (yet) within maxPEM bytes.
func pemBlock(s string, at int) (end int, open bool) {
	line := strings.IndexByte(s[at:], '\n')
	head := s[at:]
	if line >= 0 {
		head = s[at : at+line]
	}
	if len(head) > 64 {
		return -1, false
	}
	if !strings.HasSuffix(head, pemKey) {
		return -1, line < 0 // the BEGIN line is not finished yet
	}
	label := head[len(pemBegin):]
	endLine := "-----END " + label
	lim := min(len(s), at+maxPEM)
	e := strings.Index(s[at:lim], endLine)
	if e < 0 {
		return -1, lim == len(s)
	}
	return at + e + len(endLine), false
}

// findBlocks appends the blocks that start with marker and that at accepts
// (PEM blocks, JWTs), skipping those overlapping a match found already.
func findBlocks(dst []Span, s string, n0 int, marker string, at func(s string, i int) (int, bool)) []Span {
	from := 0
	for {
		i := strings.Index(s[from:], marker)
		if i < 0 {
			return dst
		}
		i += from
		from = i + 1
		if end, _ := at(s, i); end > 0 && !overlaps(dst[n0:], i, end) {
			dst = append(dst, Span{i, end, "SECRET"})
			from = end
		}
	}
}

func b64Char(c byte) bool { return isAlnum(c) || c == '_' || c == '-' }

// jwtAt returns the end of the JWT starting at at ("eyJ"), or -1; open reports
// that the token runs to the end of s and more text could change the verdict.
func jwtAt(s string, at int) (end int, open bool) {
	if at > 0 && (b64Char(s[at-1]) || s[at-1] == '.') {
		return -1, false
	}
	var dots [2]int
	nd, e := 0, at
	for e < len(s) && e-at <= maxJWT {
		c := s[e]
		if b64Char(c) {
			e++
			continue
		}
		if c == '.' && nd < 2 && e+1 < len(s) && b64Char(s[e+1]) {
			dots[nd] = e
			nd++
			e++
			continue
		}
		if c == '.' && nd < 2 && e+1 == len(s) {
			return -1, true // a dot at the end: the next part may follow
		}
		break
	}
	if e-at > maxJWT {
		return -1, false
	}
	open = e == len(s)
	if nd != 2 || dots[0]-at < 10 || dots[1]-dots[0] < 3 {
		return -1, open
	}
	hdr := s[at:dots[0]]
	var buf [512]byte
	if base64.RawURLEncoding.DecodedLen(len(hdr)) > len(buf) {
		return -1, open
	}
	n, err := base64.RawURLEncoding.Decode(buf[:], []byte(hdr))
	if err != nil {
		return -1, open
	}
	var h struct {
		Alg *string `json:"alg"`
	}
	if json.Unmarshal(buf[:n], &h) != nil || h.Alg == nil {
		return -1, open
	}
	return e, open
}

// Pending returns where an open PEM block or JWT starts, so a stream holds it
// back until it closes (or outgrows its cap).
func (secretDetector) Pending(s string) int {
	p := -1
	// any BEGIN line within the last maxPEM bytes may be open, not only the
	// last one ("BEGIN PRIVATE KEY … BEGIN PUBLIC KEY" before either END)
	for from := max(0, len(s)-maxPEM); ; {
		at := strings.Index(s[from:], pemBegin)
		if at < 0 {
			break
		}
		at += from
		if _, open := pemBlock(s, at); open {
			p = at
			break
		}
		from = at + 1
	}
	// only the JWT candidate whose run reaches the end of s can be open
	lo := max(0, len(s)-maxJWT-1)
	for i := len(s); i > lo; i-- {
		c := s[i-1]
		if !b64Char(c) && c != '.' {
			break
		}
		if i-1+3 <= len(s) && s[i-1:min(len(s), i+2)] == "eyJ" || (len(s)-(i-1) < 3 && strings.HasPrefix("eyJ", s[i-1:])) {
			if _, open := jwtAt(s, i-1); open && (p < 0 || i-1 < p) {
				p = i - 1
			}
		}
	}
	return p
}
