package guardrails

import (
	"errors"
	"strings"
	"testing"
)

func builtinSet(t testing.TB) *Set {
	t.Helper()
	s, err := NewSet(Builtins()...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// sample holds one value of every kind, between prose.
var sample = "Hi, I'm alice@example.com, call +1-415-555-2671 or (415) 555-2671. " +
	"Card 4111 1111 1111 1111 exp 12/27, IBAN GB82 WEST 1234 5698 7654 32, SSN 123-45-6789. " +
	"Server 10.0.0.1 and 2001:db8::1 run v1.2.3 since 2024-01-15. Key " + "sk-proj-" + "Ab3dEf6hIj9kLmNoPqRsTuVwXyZ012345" +
	" and token " + b64(`{"alg":"HS256"}`) + "." + b64(`{"sub":"1"}`) + ".c2ln. Again alice@example.com!\n" +
	"-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\nbye"

func TestMaskerPlaceholders(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"nothing", "plain prose, version 1.2.3", "plain prose, version 1.2.3"},
		{"one of each", "mail a@b.io, card 4111111111111111", "mail [EMAIL_1], card [CARD_1]"},
		{"repeat value same placeholder", "a@b.io then a@b.io then c@d.io", "[EMAIL_1] then [EMAIL_1] then [EMAIL_2]"},
		{"typed numbering", "10.0.0.1 a@b.io 10.0.0.2", "[IP_1] [EMAIL_1] [IP_2]"},
	}
	set := builtinSet(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := set.Masker()
			got, err := m.Mask(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("Mask = %q, want %q", got, tc.want)
			}
			if back := m.Unmask(got); back != tc.in {
				t.Errorf("Unmask(Mask) = %q, want %q", back, tc.in)
			}
		})
	}
}

func TestMaskerAcrossMessagesAndAnswer(t *testing.T) {
	m := builtinSet(t).Masker()
	a, _ := m.Mask("I am a@b.io")
	b, _ := m.Mask("again a@b.io and c@d.io")
	if a != "I am [EMAIL_1]" || b != "again [EMAIL_1] and [EMAIL_2]" {
		t.Fatalf("placeholders not shared across one request's texts: %q %q", a, b)
	}
	answer := "Sure [EMAIL_2], I wrote to [EMAIL_1]; [EMAIL_9] and [note] stay."
	if got := m.Unmask(answer); got != "Sure c@d.io, I wrote to a@b.io; [EMAIL_9] and [note] stay." {
		t.Errorf("Unmask = %q", got)
	}
	if other := builtinSet(t).Masker(); other.Unmask(answer) != answer {
		t.Error("another request's masker restored values it never saw")
	}
}

func TestMaskerRoundTripSample(t *testing.T) {
	m := builtinSet(t).Masker()
	got, err := m.Mask(sample)
	if err != nil {
		t.Fatal(err)
	}
	for _, leak := range []string{"alice@", "2671", "4111", "WEST", "6789", "10.0.0.1", "db8", "sk-proj", "eyJ", "MIIE"} {
		if strings.Contains(got, leak) {
			t.Errorf("masked text still holds %q:\n%s", leak, got)
		}
	}
	for _, keep := range []string{"v1.2.3", "2024-01-15", "12/27"} {
		if !strings.Contains(got, keep) {
			t.Errorf("masked text lost %q:\n%s", keep, got)
		}
	}
	if m.Unmask(got) != sample {
		t.Errorf("round trip failed:\n%s", m.Unmask(got))
	}
}

func TestOverlapsResolvedLongestThenEarliest(t *testing.T) {
	ticket, err := Regex("digits", `[0-9]{4}`)
	if err != nil {
		t.Fatal(err)
	}
	word, err := Words("word", []string{"4111"}, false)
	if err != nil {
		t.Fatal(err)
	}
	set, err := NewSet(Card(), ticket, word)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, in, want string }{
		{"card beats its digit groups", "4111 1111 1111 1111", "[CARD_1]"},
		{"equal length: detector listed first", "4111 x", "[DIGITS_1] x"},
		{"equal length: earliest", "12345", "[DIGITS_1]5"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got, _ := set.Masker().Mask(tc.in); got != tc.want {
				t.Errorf("Mask(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
	if _, err := NewSet(Email(), Email()); err == nil {
		t.Error("NewSet accepted two detectors of one kind")
	}
}

func TestScanLimit(t *testing.T) {
	m := builtinSet(t).WithScanLimit(10).Masker()
	if _, err := m.Mask("0123456789"); err != nil {
		t.Fatalf("within limit: %v", err)
	}
	if _, err := m.Mask("x"); !errors.Is(err, ErrScanLimit) {
		t.Fatalf("over limit: err %v, want ErrScanLimit", err)
	}
	if _, err := m.Stream().Write("y"); !errors.Is(err, ErrScanLimit) {
		t.Fatalf("stream over limit: err %v, want ErrScanLimit", err)
	}
}
