package guardrails

import (
	"net/netip"
	"slices"
	"strings"
)

// Span is one match: s[Start:End] is the matched value; Kind is the detector's
// placeholder word ("EMAIL", "CARD", ...).
type Span struct {
	Start, End int
	Kind       string
}

// Detector finds one kind of sensitive value in text.
//
// Find appends the matches in s to dst, in increasing Start order and not
// overlapping one another. MaxLen bounds the length in bytes of any match and
// of any run of characters the detector inspects to decide one (plus the one
// character of context on each side), so a stream only has to hold back that
// many bytes; detectors whose candidates may be longer also implement pending.
type Detector interface {
	Name() string
	Kind() string
	Find(dst []Span, s string) []Span
	MaxLen() int
}

// pending is implemented by detectors with long candidates (PEM blocks, JWTs):
// Pending returns the index in s where a candidate that more text could still
// complete begins, or -1, so a stream holds back only while one is open.
type pending interface {
	Pending(s string) int
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }
func isAlnum(c byte) bool {
	return isDigit(c) || c >= 'a' && c <= 'z' || isUpper(c)
}

// isWord reports a word character: ASCII letters, digits, '_' and any byte of
// a multi-byte UTF-8 sequence, so "café" or "naïve" stay whole words.
func isWord(c byte) bool { return isAlnum(c) || c == '_' || c >= 0x80 }

// Builtins returns every built-in detector, in a fixed order.
func Builtins() []Detector {
	return []Detector{Email(), Phone(), Card(), IBAN(), SSN(), IP(), Secret()}
}

// ---- e-mail -----------------------------------------------------------------

type emailDetector struct{}

// Email finds addresses local@domain.tld: a local part of 1–64 characters of
// [A-Za-z0-9._%+-], a domain of dot-separated labels of [A-Za-z0-9-] (up to 253
// bytes) ending in an alphabetic TLD of 2–24 letters. It does not catch quoted
// local parts, IP-literal domains or internationalised (non-ASCII) addresses,
// and skips "user@host" without a dot.
func Email() Detector { return emailDetector{} }

func (emailDetector) Name() string { return "email" }
func (emailDetector) Kind() string { return "EMAIL" }
func (emailDetector) MaxLen() int  { return 64 + 1 + 253 + 2 }

func isLocal(c byte) bool {
	return isAlnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-'
}

func (emailDetector) Find(dst []Span, s string) []Span {
	from := 0
	for {
		at := strings.IndexByte(s[from:], '@')
		if at < 0 {
			return dst
		}
		at += from
		from = at + 1
		start := at
		for start > 0 && isLocal(s[start-1]) && at-start <= 64 {
			start--
		}
		if at-start > 64 || start > 0 && s[start-1] == '@' {
			continue // a run too long to be a local part, or a@b@c
		}
		for start < at && s[start] == '.' {
			start++
		}
		if start == at || s[at-1] == '.' {
			continue
		}
		end, lastLabel, dots := at+1, at+1, 0
		for end < len(s) && end-at <= 254 {
			c := s[end]
			if isAlnum(c) || c == '-' {
				end++
				continue
			}
			if c == '.' && end+1 < len(s) && isAlnum(s[end+1]) && s[end-1] != '.' && end > at+1 {
				dots++
				end++
				lastLabel = end
				continue
			}
			break
		}
		if end-at > 254 || dots == 0 || (end < len(s) && (isWord(s[end]) || s[end] == '@')) {
			continue
		}
		tld := s[lastLabel:end]
		if len(tld) < 2 || len(tld) > 24 || !allLetters(tld) {
			continue
		}
		dst = append(dst, Span{start, end, "EMAIL"})
		from = end
	}
}

func allLetters(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i] | 0x20; c < 'a' || c > 'z' {
			return false
		}
	}
	return true
}

// ---- digit runs (phone, card, SSN) ------------------------------------------

// groups splits a run like "+1 (415) 555-2671" into its digit groups and the
// separators before each group; ok is false when the run holds anything but
// digits, single separators from seps, and the parentheses/plus phones use.
type group struct {
	start, end int
	sep        byte // separator before this group (0 for the first)
}

// digitRun returns the end of the run of digits and single separators (from
// seps) that starts at i, stopping before a separator not followed by a digit.
func digitRun(s string, i int, seps string) int {
	j := i
	for j < len(s) {
		c := s[j]
		if isDigit(c) {
			j++
			continue
		}
		if strings.IndexByte(seps, c) >= 0 && j+1 < len(s) && isDigit(s[j+1]) && j > i {
			j++
			continue
		}
		break
	}
	return j
}

// ---- payment cards ------------------------------------------------------------

type cardDetector struct{}

// Card finds payment card numbers: 13–19 digits, optionally grouped with
// single spaces or dashes, that pass the Luhn check and start with a digit
// 2–6 (the major networks: Mastercard 2/5, Amex 3, Visa 4, Discover 6). The
// whole run must qualify: a 25-digit number or one with a letter attached is
// not searched for a card inside it.
func Card() Detector { return cardDetector{} }

func (cardDetector) Name() string { return "card" }
func (cardDetector) Kind() string { return "CARD" }
func (cardDetector) MaxLen() int  { return 19*2 + 1 }

func (cardDetector) Find(dst []Span, s string) []Span {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			continue
		}
		if i > 0 && (isWord(s[i-1]) || s[i-1] == '.' || s[i-1] == ',') {
			i = skipWord(s, i)
			continue
		}
		end := digitRun(s, i, " -")
		if end-i <= 19*2-1 && (end == len(s) || !isWord(s[end]) && !(s[end] == '.' || s[end] == ',') || end+1 == len(s) || !isDigit(s[end+1])) {
			if n := countDigits(s[i:end]); n >= 13 && n <= 19 && s[i] >= '2' && s[i] <= '6' && luhn(s[i:end]) && consistentSeps(s[i:end]) {
				dst = append(dst, Span{i, end, "CARD"})
			}
		}
		i = end
	}
	return dst
}

// skipWord returns the index of the last character of the word or number run
// containing i, so scanning resumes after it.
func skipWord(s string, i int) int {
	for i+1 < len(s) && (isWord(s[i+1]) || (s[i+1] == '.' || s[i+1] == ',' || s[i+1] == '-') && i+2 < len(s) && isDigit(s[i+2])) {
		i++
	}
	return i
}

func countDigits(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		if isDigit(s[i]) {
			n++
		}
	}
	return n
}

// consistentSeps rejects runs mixing spaces and dashes ("4111-1111 1111-1111"
// reads as two numbers more often than as one card).
func consistentSeps(s string) bool {
	return !(strings.IndexByte(s, ' ') >= 0 && strings.IndexByte(s, '-') >= 0)
}

func luhn(s string) bool {
	sum, double := 0, false
	for i := len(s) - 1; i >= 0; i-- {
		c := s[i]
		if !isDigit(c) {
			continue
		}
		d := int(c - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}

// ---- US social security numbers ---------------------------------------------

type ssnDetector struct{}

// SSN finds US social security numbers written AAA-GG-SSSS that follow the
// SSA's rules: area not 000, 666 or 900–999, group not 00, serial not 0000.
// Undashed nine-digit numbers are not caught: they are too often other IDs.
func SSN() Detector { return ssnDetector{} }

func (ssnDetector) Name() string { return "us_ssn" }
func (ssnDetector) Kind() string { return "US_SSN" }
func (ssnDetector) MaxLen() int  { return 11 + 2 }

func (ssnDetector) Find(dst []Span, s string) []Span {
	for i := 0; i+11 <= len(s); i++ {
		if !isDigit(s[i]) {
			continue
		}
		if i > 0 && (isWord(s[i-1]) || s[i-1] == '-' || s[i-1] == '.') {
			i = skipWord(s, i)
			continue
		}
		end := digitRun(s, i, "-")
		if end-i == 11 && s[i+3] == '-' && s[i+6] == '-' && (end == len(s) || !isWord(s[end]) && s[end] != '-') {
			area, grp, serial := s[i:i+3], s[i+4:i+6], s[i+7:i+11]
			if area != "000" && area != "666" && area[0] != '9' && grp != "00" && serial != "0000" {
				dst = append(dst, Span{i, end, "US_SSN"})
			}
		}
		i = end
	}
	return dst
}

// ---- phone numbers ------------------------------------------------------------

type phoneDetector struct{}

// Phone finds telephone numbers: E.164 with a leading '+' (8–15 digits,
// optionally grouped with spaces, dashes, dots or "(0)"), North American
// numbers "(415) 555-2671", "415-555-2671", "415.555.2671", "1-800-555-0199",
// and trunk-prefixed national numbers "020 7946 0958". It does not catch bare
// digit strings without '+' or separators (order numbers look the same), and
// it rejects version strings (1.2.3.4, 10.0.19041.1) and dates (2024-01-15).
func Phone() Detector { return phoneDetector{} }

func (phoneDetector) Name() string { return "phone" }
func (phoneDetector) Kind() string { return "PHONE" }
func (phoneDetector) MaxLen() int  { return 32 }

// phoneChar is any character a phone run may hold.
func phoneChar(c byte) bool {
	return isDigit(c) || c == ' ' || c == '-' || c == '.' || c == '(' || c == ')' || c == '+'
}

func (phoneDetector) Find(dst []Span, s string) []Span {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isDigit(c) && c != '+' && c != '(' {
			continue
		}
		if i > 0 && (isWord(s[i-1]) || s[i-1] == '.' || s[i-1] == '-' || s[i-1] == '+' || s[i-1] == '/' || s[i-1] == ':' && c != '+') {
			if isDigit(c) {
				i = skipWord(s, i)
			}
			continue
		}
		if end, ok := matchPhone(s, i); ok {
			dst = append(dst, Span{i, end, "PHONE"})
			i = end - 1
			continue
		}
		if isDigit(c) {
			i = skipWord(s, i)
		}
	}
	return dst
}

// matchPhone tries the phone shapes at s[i:] and returns the end of the first
// that fits and is followed by neither a word character nor more number.
func matchPhone(s string, i int) (int, bool) {
	var gs [8]group
	n, end := 0, i
	plus := s[i] == '+'
	j := i
	if plus {
		j++
	}
	parenFirst, prevParen := false, false
	for j < len(s) && n < len(gs) && j-i <= 32 {
		// separators: one of " -." or a parenthesised group, optionally spaced
		k := j
		var sp byte
		paren := false
		if n > 0 || s[j] == '(' {
			if k < len(s) && (s[k] == ' ' || s[k] == '-' || s[k] == '.') && n > 0 {
				sp = s[k]
				k++
			}
			if k < len(s) && s[k] == '(' {
				paren = true
				k++
			}
		}
		if n > 0 && sp == 0 && !paren && !prevParen {
			break
		}
		d := k
		for d < len(s) && isDigit(s[d]) {
			d++
		}
		if d == k || d-k > 5 && !(plus && n > 0 && d-k <= 8) {
			if d-k > 5 && n == 0 && plus && !paren {
				// "+14155552671": E.164 without grouping
				if d-k >= 8 && d-k <= 15 {
					gs[0] = group{k, d, 0}
					n, end = 1, d
				}
			}
			break
		}
		if paren {
			if d >= len(s) || s[d] != ')' {
				break
			}
			d++
			sp = '('
			if n == 0 {
				parenFirst = true
			}
		}
		prevParen = paren
		gs[n] = group{k, d, sp}
		n++
		end = d
		j = d
	}
	// the number must not run on into more digits or a word
	if n == 0 || end < len(s) && (isWord(s[end]) || s[end] == '+' ||
		(s[end] == '.' || s[end] == '-' || s[end] == '/' || s[end] == ':' || s[end] == ',') && end+1 < len(s) && isDigit(s[end+1])) {
		return 0, false
	}
	digits := 0
	lens := make([]int, 0, 8)
	for _, g := range gs[:n] {
		dl := 0
		for p := g.start; p < g.end; p++ {
			if isDigit(s[p]) {
				dl++
			}
		}
		lens = append(lens, dl)
		digits += dl
	}
	if plus {
		// E.164: country code of 1–3 digits, 8–15 digits in all, no dots
		// mixed with other separators.
		if digits < 8 || digits > 15 || (n > 1 && lens[0] > 3) {
			return 0, false
		}
		return end, true
	}
	same := func() bool { // one separator kind after any parenthesised area code
		var first byte
		for _, g := range gs[1:n] {
			if g.sep == '(' {
				return false
			}
			if first == 0 {
				first = g.sep
			} else if g.sep != first {
				return false
			}
		}
		return true
	}
	switch {
	case n == 3 && lens[0] == 3 && lens[1] == 3 && lens[2] == 4 && parenFirst:
		// "(415) 555-2671" / "(415)555-2671"
		return end, gs[2].sep == '-' || gs[2].sep == ' ' || gs[2].sep == '.'
	case n == 3 && lens[0] == 3 && lens[1] == 3 && lens[2] == 4 && same() && s[gs[0].start] >= '2':
		return end, true
	case n == 4 && lens[0] == 1 && s[gs[0].start] == '1' && lens[1] == 3 && lens[2] == 3 && lens[3] == 4 && same():
		return end, true
	case n >= 2 && n <= 4 && s[gs[0].start] == '0' && lens[0] >= 2 && lens[0] <= 5 && digits >= 9 && digits <= 11 && same() && gs[1].sep != '.':
		for _, l := range lens[1:] {
			if l < 3 {
				return 0, false
			}
		}
		return end, true
	}
	return 0, false
}

// ---- IBAN ---------------------------------------------------------------------

type ibanDetector struct{}

// IBAN finds international bank account numbers (ISO 13616): a known country
// code, two check digits, the country's fixed length of alphanumerics, written
// solid or in groups separated by single spaces, passing the mod-97 check.
// Lower-case IBANs are not caught.
func IBAN() Detector { return ibanDetector{} }

func (ibanDetector) Name() string { return "iban" }
func (ibanDetector) Kind() string { return "IBAN" }
func (ibanDetector) MaxLen() int  { return 34*2 + 2 }

// ibanLengths is the registry's length per country (SWIFT IBAN registry).
var ibanLengths = map[string]int{
	"AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29,
	"BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29,
	"ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28,
	"HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20,
	"LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
	"MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29,
	"RO": 24, "RS": 22, "SA": 24, "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28,
	"TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}

func (ibanDetector) Find(dst []Span, s string) []Span {
	for i := 0; i+15 <= len(s); i++ {
		if !isUpper(s[i]) || !isUpper(s[i+1]) || !isDigit(s[i+2]) || !isDigit(s[i+3]) || (i > 0 && isWord(s[i-1])) {
			continue
		}
		want, ok := ibanLengths[s[i:i+2]]
		if !ok {
			continue
		}
		var buf [34]byte
		n, j := 0, i
		for j < len(s) && n < want {
			c := s[j]
			if isDigit(c) || isUpper(c) {
				buf[n] = c
				n++
				j++
				continue
			}
			if c == ' ' && n > 0 && j+1 < len(s) && (isDigit(s[j+1]) || isUpper(s[j+1])) {
				j++
				continue
			}
			break
		}
		if n != want || (j < len(s) && isWord(s[j])) || !mod97(buf[:n]) {
			continue
		}
		dst = append(dst, Span{i, j, "IBAN"})
		i = j - 1
	}
	return dst
}

// mod97 is the ISO 7064 check: move the first four characters to the end,
// letters become 10..35, and the number must be 1 mod 97.
func mod97(b []byte) bool {
	r := 0
	add := func(c byte) {
		if isDigit(c) {
			r = (r*10 + int(c-'0')) % 97
		} else {
			r = (r*100 + int(c-'A'+10)) % 97
		}
	}
	for _, c := range b[4:] {
		add(c)
	}
	for _, c := range b[:4] {
		add(c)
	}
	return r == 1
}

// ---- IP addresses -------------------------------------------------------------

type ipDetector struct{}

// IP finds IPv4 addresses in dotted-quad form and IPv6 addresses (containing
// "::" or eight groups, at least one digit), each validated by net/netip.
// Version strings of three parts ("1.2.3") and out-of-range quads
// ("999.1.1.1") are not caught; a four-part version "1.2.3.4" is a valid
// address and is caught unless a letter is attached ("v1.2.3.4").
func IP() Detector { return ipDetector{} }

func (ipDetector) Name() string { return "ip" }
func (ipDetector) Kind() string { return "IP" }
func (ipDetector) MaxLen() int  { return 45 + 2 }

func isHex(c byte) bool { return isDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

func (ipDetector) Find(dst []Span, s string) []Span {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isHex(c) && c != ':' {
			continue
		}
		if i > 0 && (isWord(s[i-1]) || s[i-1] == '.' || s[i-1] == ':') {
			continue
		}
		// the run of address characters
		j, colons, digits := i, 0, 0
		for j < len(s) && (isHex(s[j]) || s[j] == ':' || s[j] == '.') && j-i <= 46 {
			if s[j] == ':' {
				colons++
			} else if isDigit(s[j]) {
				digits++
			}
			j++
		}
		// trailing punctuation ends a sentence, not the address
		for j > i && (s[j-1] == '.' || s[j-1] == ':' && (j-2 < i || s[j-2] != ':')) {
			j--
		}
		colons = strings.Count(s[i:j], ":")
		if k := strings.IndexByte(s[i:j], ':'); colons == 1 && strings.Count(s[i:i+k], ".") == 3 {
			j, colons = i+k, 0 // an IPv4 address and its port
		}
		if j-i > 45 || j-i < 2 || digits == 0 || (j < len(s) && (isWord(s[j]) || s[j] == '.' && j+1 < len(s) && isHex(s[j+1]))) {
			if !isDigit(c) && c != ':' { // a word like "face": skip it whole
				i = skipWord(s, i)
			}
			continue
		}
		if colons == 0 && strings.Count(s[i:j], ".") != 3 {
			i = j - 1
			continue
		}
		if colons == 1 {
			i = j - 1
			continue
		}
		if _, err := netip.ParseAddr(s[i:j]); err == nil {
			dst = append(dst, Span{i, j, "IP"})
		}
		i = j - 1
	}
	return dst
}

// resolve picks, from spans of several detectors, a non-overlapping set:
// longest first, then earliest, then the detector listed first; the result is
// in text order.
func resolve(spans []Span, order map[string]int) []Span {
	if len(spans) < 2 {
		return spans
	}
	slices.SortStableFunc(spans, func(a, b Span) int {
		if la, lb := a.End-a.Start, b.End-b.Start; la != lb {
			return lb - la
		}
		if a.Start != b.Start {
			return a.Start - b.Start
		}
		return order[a.Kind] - order[b.Kind]
	})
	kept := spans[:0:0]
	for _, sp := range spans {
		ok := true
		for _, k := range kept {
			if sp.Start < k.End && k.Start < sp.End {
				ok = false
				break
			}
		}
		if ok {
			kept = append(kept, sp)
		}
	}
	slices.SortFunc(kept, func(a, b Span) int { return a.Start - b.Start })
	return kept
}
