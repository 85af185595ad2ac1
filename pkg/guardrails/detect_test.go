package guardrails

import (
	"encoding/base64"
	"slices"
	"strings"
	"testing"
)

type detCase struct {
	name string
	text string
	want []string // matched values, in order; nil for a false-positive case
}

func runDetector(t *testing.T, d Detector, cases []detCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, sp := range d.Find(nil, tc.text) {
				if sp.Kind != d.Kind() {
					t.Errorf("kind %q, want %q", sp.Kind, d.Kind())
				}
				if sp.End-sp.Start > d.MaxLen() {
					t.Errorf("match %q longer than MaxLen %d", tc.text[sp.Start:sp.End], d.MaxLen())
				}
				got = append(got, tc.text[sp.Start:sp.End])
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("Find(%q) = %q, want %q", tc.text, got, tc.want)
			}
		})
	}
}

func TestEmail(t *testing.T) {
	runDetector(t, Email(), []detCase{
		{"plain", "write to alice@example.com today", []string{"alice@example.com"}},
		{"plus and dots", "bob.smith+tag@mail.example.co.uk.", []string{"bob.smith+tag@mail.example.co.uk"}},
		{"two", "a@b.io, c_d@e-f.org", []string{"a@b.io", "c_d@e-f.org"}},
		{"in angle brackets", "<ops@tollgate.dev>", []string{"ops@tollgate.dev"}},
		{"no dot in domain", "root@localhost", nil},
		{"numeric tld", "x@host.123", nil},
		{"handle", "ping @alice on slack", nil},
		{"npm scope", "install @types/node", nil},
		{"leading dot trimmed", "..a@b.com", []string{"a@b.com"}},
		{"local part too long", strings.Repeat("a", 65) + "@b.com", nil},
		{"double at", "a@b@c.com", nil},
	})
}

func TestPhone(t *testing.T) {
	runDetector(t, Phone(), []detCase{
		{"E.164 solid", "call +14155552671 now", []string{"+14155552671"}},
		{"E.164 grouped", "tel: +44 20 7946 0958.", []string{"+44 20 7946 0958"}},
		{"E.164 with trunk in parens", "+44 (0)20 7946 0958", []string{"+44 (0)20 7946 0958"}},
		{"E.164 dashed", "+1-415-555-2671", []string{"+1-415-555-2671"}},
		{"E.164 long group", "+49 30 12345678", []string{"+49 30 12345678"}},
		{"E.164 after tel:", "tel:+14155552671", []string{"+14155552671"}},
		{"E.164 with NANP parens", "+1 (415) 555-2671", []string{"+1 (415) 555-2671"}},
		{"local seven digits", "555-2671", nil},
		{"NANP parens", "(415) 555-2671", []string{"(415) 555-2671"}},
		{"NANP dashes", "415-555-2671", []string{"415-555-2671"}},
		{"NANP dots", "415.555.2671", []string{"415.555.2671"}},
		{"NANP with 1", "1-800-555-0199", []string{"1-800-555-0199"}},
		{"UK national", "ring 020 7946 0958", []string{"020 7946 0958"}},
		{"year before number", "in 2024 415-555-2671", []string{"415-555-2671"}},
		{"version 4 parts", "upgrade to 1.2.3.4", nil},
		{"windows build", "10.0.19041.1", nil},
		{"semver", "v2.14.3", nil},
		{"ISO date", "on 2024-01-15 we", nil},
		{"slash date", "12/01/2024", nil},
		{"time", "at 10:30:45", nil},
		{"bare digits", "order 4155552671", nil},
		{"mixed separators", "415-555.2671", nil},
		{"short", "+12 34", nil},
		{"too long E.164", "+1234567890123456", nil},
		{"ip address", "192.168.100.200", nil},
		{"attached letters", "x415-555-2671", nil},
	})
}

func TestCard(t *testing.T) {
	runDetector(t, Card(), []detCase{
		{"visa spaced", "card 4111 1111 1111 1111 exp", []string{"4111 1111 1111 1111"}},
		{"visa solid", "4111111111111111", []string{"4111111111111111"}},
		{"mastercard dashed", "5555-5555-5555-4444.", []string{"5555-5555-5555-4444"}},
		{"amex 15", "378282246310005", []string{"378282246310005"}},
		{"discover", "6011111111111117", []string{"6011111111111117"}},
		{"fails Luhn", "4111 1111 1111 1112", nil},
		{"fails Luhn solid", "4111111111111112", nil},
		{"too long", "41111111111111111111111", nil},
		{"too short", "411111111111", nil},
		{"bad first digit", "0000000000000000", nil},
		{"mixed separators", "4111-1111 1111-1111", nil},
		{"inside a word", "id4111111111111111", nil},
		{"decimal", "3.4111111111111111", nil},
	})
}

func TestIBAN(t *testing.T) {
	runDetector(t, IBAN(), []detCase{
		{"GB grouped", "pay GB82 WEST 1234 5698 7654 32 now", []string{"GB82 WEST 1234 5698 7654 32"}},
		{"DE solid", "DE89370400440532013000", []string{"DE89370400440532013000"}},
		{"NL", "NL91ABNA0417164300.", []string{"NL91ABNA0417164300"}},
		{"bad checksum", "GB82WEST12345698765433", nil},
		{"wrong length", "DE8937040044053201300", nil},
		{"unknown country", "ZZ89370400440532013000", nil},
		{"glued to a word", "XDE89370400440532013000", nil},
	})
}

func TestSSN(t *testing.T) {
	runDetector(t, SSN(), []detCase{
		{"valid", "ssn 123-45-6789.", []string{"123-45-6789"}},
		{"two", "078-05-1121 and 219-09-9999", []string{"078-05-1121", "219-09-9999"}},
		{"area 000", "000-12-3456", nil},
		{"area 666", "666-12-3456", nil},
		{"area 9xx", "912-34-5678", nil},
		{"group 00", "123-00-6789", nil},
		{"serial 0000", "123-45-0000", nil},
		{"undashed", "123456789", nil},
		{"part of longer", "1123-45-6789", nil},
		{"phone tail", "555-123-45-6789", nil},
		{"date-ish", "2024-01-1234", nil},
	})
}

func TestIP(t *testing.T) {
	runDetector(t, IP(), []detCase{
		{"v4", "host 192.168.1.10 is up", []string{"192.168.1.10"}},
		{"v4 end of sentence", "ping 10.0.0.1.", []string{"10.0.0.1"}},
		{"v6", "addr 2001:db8::8a2e:370:7334 ok", []string{"2001:db8::8a2e:370:7334"}},
		{"v6 loopback", "[::1]:8080", []string{"::1"}},
		{"v4 with port", "http://192.168.0.1:8080/x", []string{"192.168.0.1"}},
		{"v6 with prefix length", "2001:db8::1/64", []string{"2001:db8::1"}},
		{"v6 full", "fe80:0:0:0:202:b3ff:fe1e:8329", []string{"fe80:0:0:0:202:b3ff:fe1e:8329"}},
		{"four-part version is an address", "1.2.3.4", []string{"1.2.3.4"}},
		{"out of range", "999.1.1.1", nil},
		{"three parts", "version 1.2.3", nil},
		{"five parts", "1.2.3.4.5", nil},
		{"v-prefixed", "v1.2.3.4", nil},
		{"leading zero", "01.2.3.4", nil},
		{"time", "10:30:45", nil},
		{"c++ scope", "std::vector", nil},
		{"hex words", "dead::beef", nil},
	})
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func TestSecret(t *testing.T) {
	jwt := b64(`{"alg":"HS256","typ":"JWT"}`) + "." + b64(`{"sub":"1234567890"}`) + ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
	noAlg := b64(`{"typ":"JWT","kid":"k1"}`) + "." + b64(`{"sub":"1"}`) + ".c2lnbmF0dXJl"
	notJSON := b64(`{"alg" but not json`) + "." + b64(`{"sub":"1"}`) + ".c2lnbmF0dXJl"
	pem := "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MhgHcTz6sE2I2yPB\n-----END RSA PRIVATE KEY-----"
	openai := "sk-proj-" + "Ab3dEf6hIj9kLmNoPqRsTuVwXyZ012345"
	anthropic := "sk-ant-" + "api03-AbCdEf0123456789GhIjKlMnOpQr"
	aws := "AKIA" + "IOSFODNN7EXAMPLE"
	gh := "ghp_" + strings.Repeat("aB3", 12)
	ghpat := "github_pat_" + "11ABCDEFG0123456789_abcdefghijklmnop"
	slack := "xoxb-" + "123456789012-123456789012-AbCdEfGhIjKlMnOpQrStUvWx"
	google := "AIza" + "SyA-1234567890abcdefghijklmnopqrstu"
	stripe := "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc"
	runDetector(t, Secret(), []detCase{
		{"openai project key", "key=" + openai + " ok", []string{openai}},
		{"anthropic", "x-api-key: " + anthropic, []string{anthropic}},
		{"aws key id", "aws_access_key_id = " + aws, []string{aws}},
		{"github classic", gh, []string{gh}},
		{"github fine-grained", ghpat, []string{ghpat}},
		{"slack bot", "token " + slack + ".", []string{slack}},
		{"google", google, []string{google}},
		{"stripe live", stripe, []string{stripe}},
		{"jwt", "Bearer " + jwt, []string{jwt}},
		{"pem block", "here:\n" + pem + "\nthanks", []string{pem}},
		{"prose with sk-", "the task-oriented sk-learn-style-pipeline-with-words", nil},
		{"sk- too short", "sk-abc123", nil},
		{"akia in a word", "myAKIA" + "IOSFODNN7EXAMPLE", nil},
		{"akia lower case", "AKIA" + "iosfodnn7example", nil},
		{"jwt header without alg", noAlg, nil},
		{"jwt header not JSON", notJSON, nil},
		{"eyJ in prose", "eyJust kidding", nil},
		{"public key block", "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----", nil},
		{"unterminated private key", "-----BEGIN PRIVATE KEY-----\nMIIB", nil},
		{"words about keys", "rotate your API key and your AWS secret regularly", nil},
	})
}

func TestRegexAndWords(t *testing.T) {
	re, err := Regex("ticket", `\bTCK-[0-9]{4,8}\b`)
	if err != nil {
		t.Fatal(err)
	}
	runDetector(t, re, []detCase{
		{"match", "see TCK-12345.", []string{"TCK-12345"}},
		{"glued", "xTCK-12345", nil},
		{"too short", "TCK-12", nil},
	})
	unbounded, err := Regex("code", `X[0-9]+`)
	if err != nil {
		t.Fatal(err)
	}
	runDetector(t, unbounded, []detCase{
		{"bounded by cap", "X123", []string{"X123"}},
		{"longer than cap ignored", "X" + strings.Repeat("9", maxCustom), nil},
	})
	words, err := Words("codename", []string{"Project Falcon", "nightjar", "Über", "blue-bird.v2"}, true)
	if err != nil {
		t.Fatal(err)
	}
	runDetector(t, words, []detCase{
		{"word", "the NightJar launch", []string{"NightJar"}},
		{"phrase", "project falcon ships", []string{"project falcon"}},
		{"unicode fold", "über alles", []string{"über"}},
		{"inside a word", "nightjars", nil},
		{"phrase prefix only", "project falconer", nil},
		{"first word only", "project x", nil},
		{"punctuation inside an entry", "ship Blue-Bird.v2 now", []string{"Blue-Bird.v2"}},
		{"punctuated entry's first word alone", "a blue sky", nil},
	})
	exact, err := Words("names", []string{"Alice"}, false)
	if err != nil {
		t.Fatal(err)
	}
	runDetector(t, exact, []detCase{
		{"exact", "Alice", []string{"Alice"}},
		{"case differs", "alice", nil},
	})
	for _, bad := range []struct{ name, pattern string }{{"empty", ``}, {"matches empty", `a*`}, {"syntax", `(`}, {"Bad Name", `x`}} {
		if _, err := Regex(bad.name, bad.pattern); err == nil {
			t.Errorf("Regex(%q, %q) accepted", bad.name, bad.pattern)
		}
	}
	if _, err := Words("w", []string{"-dash"}, false); err == nil {
		t.Error("Words accepted an entry starting with punctuation")
	}
}
