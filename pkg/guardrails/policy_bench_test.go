package guardrails

import (
	"os"
	"strings"
	"testing"
)

// benchTexts are a realistic 2 KB prompt (a customer's message to a billing
// desk: two e-mails, two phones, a card, and version strings, dates and
// order numbers that must not match) and a 500-byte answer that uses the
// placeholders the prompt's values get and names a new e-mail address.
// testdata/prompt-2k.txt is also the 2 KB prompt of httpapi's
// BenchmarkChatHandler/guards-*.
func benchTexts(b *testing.B) (prompt, answer string) {
	b.Helper()
	p, err := os.ReadFile("testdata/prompt-2k.txt")
	if err != nil {
		b.Fatal(err)
	}
	a, err := os.ReadFile("testdata/answer-500.txt")
	if err != nil {
		b.Fatal(err)
	}
	return string(p), string(a)
}

// clean has every sensitive value of the bench texts replaced with words,
// so that no detector matches and nothing is restored.
var clean = strings.NewReplacer(
	"maria.keller@northwind-example.com", "the finance team's mailbox",
	"tom.okafor@northwind-example.com", "our controller",
	"4111 1111 1111 1111", "of the company",
	"+44 20 7946 0958", "at the London office",
	"(415) 555-2671", "at the San Francisco office",
	"[EMAIL_1]", "the finance team's mailbox",
	"[EMAIL_2]", "the controller",
	"billing-desk@vendor-example.org", "the billing desk",
	"[PHONE_1]", "at the London office",
)

// BenchmarkPolicyRun2KB is what the guards cost one request with every
// built-in detector on, masking in both directions and restoring the
// user's values in the answer: Begin, the 2 KB prompt through Request,
// the 500-byte answer through Answer and then Unmask.
func BenchmarkPolicyRun2KB(b *testing.B) {
	prompt, answer := benchTexts(b)
	g, err := Compile(Spec{Name: "all", Detectors: BuiltinNames(), Action: Mask, Request: true, Answer: true, UnmaskAnswers: true})
	if err != nil {
		b.Fatal(err)
	}
	p, err := NewPolicy([]Use{{Guard: g}}, 0)
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name           string
		prompt, answer string
		hits           int // request and answer matches
	}{
		{"values", prompt, answer, 6},
		{"no-match", clean.Replace(prompt), clean.Replace(answer), 0},
	} {
		b.Run(tc.name, func(b *testing.B) {
			run := func() (req, ans string, hits int) {
				r := p.Begin()
				req, err := r.Request(tc.prompt)
				if err != nil {
					b.Fatal(err)
				}
				ans, err = r.Answer(tc.answer)
				if err != nil {
					b.Fatal(err)
				}
				for _, h := range r.Hits() {
					hits += h.Count
				}
				return req, r.Unmask(ans), hits
			}
			// Once untimed: the texts are what they claim to be.
			req, ans, hits := run()
			if hits != tc.hits || strings.Contains(req, "@") || strings.Contains(ans, "vendor-example.org") ||
				tc.hits > 0 && !strings.Contains(ans, "maria.keller@northwind-example.com") {
				b.Fatalf("%d hits (want %d); request %q; answer %q", hits, tc.hits, req, ans)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(tc.prompt) + len(tc.answer)))
			for b.Loop() {
				run()
			}
		})
	}
}
