package guardrails

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func mustGuard(t *testing.T, s Spec) *Guard {
	t.Helper()
	g, err := Compile(s)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestCompileRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec Spec
		want string
	}{
		{"bad name", Spec{Name: "PII", Detectors: []string{"email"}, Action: Mask, Request: true}, "lower-case"},
		{"bad action", Spec{Name: "pii", Detectors: []string{"email"}, Action: "redact", Request: true}, "want block, mask or log"},
		{"no direction", Spec{Name: "pii", Detectors: []string{"email"}, Action: Mask}, "neither"},
		{"unknown detector", Spec{Name: "pii", Detectors: []string{"passport"}, Action: Mask, Request: true}, "unknown"},
		{"detector twice", Spec{Name: "pii", Detectors: []string{"email", "email"}, Action: Mask, Request: true}, "twice"},
		{"nothing to look for", Spec{Name: "pii", Action: Mask, Request: true}, "no detectors"},
		{"pattern does not compile", Spec{Name: "ticket", Regex: "TCK-(", Action: Block, Request: true}, "missing closing )"},
		{"pattern matches empty", Spec{Name: "ticket", Regex: "x*", Action: Block, Request: true}, "empty string"},
		{"regex and words", Spec{Name: "ticket", Regex: "TCK", Words: []string{"a"}, Action: Block, Request: true}, "two guards"},
		{"unmask without mask", Spec{Name: "pii", Detectors: []string{"email"}, Action: Log, Request: true, UnmaskAnswers: true}, "unmask_answers"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile(tc.spec)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one saying %q", err, tc.want)
			}
		})
	}
}

func TestPolicyRefusesTwoGuardsOfOneKind(t *testing.T) {
	a := mustGuard(t, Spec{Name: "a", Detectors: []string{"email", "phone"}, Action: Mask, Request: true})
	b := mustGuard(t, Spec{Name: "b", Detectors: []string{"email"}, Action: Block, Request: true})
	if _, err := NewPolicy([]Use{{Guard: a}, {Guard: b}}, 0); err == nil || !strings.Contains(err.Error(), "guards a and b both look for email") {
		t.Fatalf("err = %v", err)
	}
	if _, err := NewPolicy([]Use{{Guard: a, Action: "drop"}}, 0); err == nil {
		t.Fatal("a bad action override was accepted")
	}
	if p, err := NewPolicy(nil, 0); p != nil || err != nil {
		t.Fatalf("empty policy = %v, %v", p, err)
	}
}

func TestRunActions(t *testing.T) {
	pii := mustGuard(t, Spec{Name: "pii", Detectors: []string{"email", "card"}, Action: Mask, Request: true, Answer: true, UnmaskAnswers: true})
	secrets := mustGuard(t, Spec{Name: "secrets", Detectors: []string{"secret"}, Action: Block, Request: true, Answer: true})
	ticket := mustGuard(t, Spec{Name: "ticket", Regex: `TCK-[0-9]{4}`, Action: Log, Request: true})
	policy, err := NewPolicy([]Use{{Guard: pii}, {Guard: secrets}, {Guard: ticket}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		request   []string
		answer    string
		wantReq   []string
		wantAns   string // masked answer
		wantShown string // answer as the client sees it
		blocked   string
		hits      string
	}{
		{
			name:    "mask and restore the user's own value only",
			request: []string{"I am ann@x.io, card 4111 1111 1111 1111", "ann@x.io again, ticket TCK-1234"},
			answer:  "Hi [EMAIL_1]; your card [CARD_1]; write to help@shop.example",
			wantReq: []string{"I am [EMAIL_1], card [CARD_1]", "[EMAIL_1] again, ticket TCK-1234"},
			wantAns: "Hi [EMAIL_1]; your card [CARD_1]; write to [EMAIL_2]", wantShown: "Hi ann@x.io; your card 4111 1111 1111 1111; write to [EMAIL_2]",
			hits: "pii request 3, ticket request 1, pii answer 1",
		},
		{
			name:    "block in the request",
			request: []string{"fine", "my key is ghp_abcdefghijklmnopqrstuvwxyz0123456789"}, wantReq: []string{"fine"},
			blocked: "secrets", hits: "secrets request 1",
		},
		{
			name:    "block in the answer",
			request: []string{"hello"}, wantReq: []string{"hello"},
			answer: "use AKIAIOSFODNN7EXAMPLE", blocked: "secrets", hits: "secrets answer 1",
		},
		{
			name:    "log leaves the text",
			request: []string{"see TCK-0001 and TCK-0002"},
			wantReq: []string{"see TCK-0001 and TCK-0002"}, answer: "ok", wantAns: "ok", wantShown: "ok",
			hits: "ticket request 2",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run := policy.Begin()
			var err error
			for i, text := range tc.request {
				var out string
				if out, err = run.Request(text); err != nil {
					break
				}
				if out != tc.wantReq[i] {
					t.Errorf("request[%d] = %q, want %q", i, out, tc.wantReq[i])
				}
			}
			if err == nil && tc.answer != "" {
				var out string
				if out, err = run.Answer(tc.answer); err == nil {
					if out != tc.wantAns {
						t.Errorf("answer = %q, want %q", out, tc.wantAns)
					}
					if shown := run.Unmask(out); shown != tc.wantShown {
						t.Errorf("shown = %q, want %q", shown, tc.wantShown)
					}
				}
			}
			var b *Blocked
			switch {
			case tc.blocked == "" && err != nil:
				t.Fatalf("unexpected error %v", err)
			case tc.blocked != "" && (!errors.As(err, &b) || b.Guard != tc.blocked):
				t.Fatalf("err = %v, want blocked by %s", err, tc.blocked)
			}
			var hits []string
			for _, h := range run.Hits() {
				hits = append(hits, fmt.Sprintf("%s %s %d", h.Guard, h.Direction, h.Count))
			}
			if got := strings.Join(hits, ", "); got != tc.hits {
				t.Errorf("hits = %q, want %q", got, tc.hits)
			}
		})
	}
}

func TestRunKeyOverridesAction(t *testing.T) {
	pii := mustGuard(t, Spec{Name: "pii", Detectors: []string{"email"}, Action: Mask, Request: true})
	policy, err := NewPolicy([]Use{{Guard: pii, Action: Block}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := policy.Begin().Request("mail ann@x.io"); err == nil {
		t.Fatal("the key's block action was not applied")
	}
}

func TestRunScanLimitFailsClosed(t *testing.T) {
	pii := mustGuard(t, Spec{Name: "pii", Detectors: []string{"email"}, Action: Mask, Request: true, Answer: true})
	policy, err := NewPolicy([]Use{{Guard: pii}}, 32)
	if err != nil {
		t.Fatal(err)
	}
	run := policy.Begin()
	if _, err := run.Request(strings.Repeat("x", 20)); err != nil {
		t.Fatal(err)
	}
	// The answer shares the request's budget.
	if _, err := run.Answer(strings.Repeat("y", 20)); !errors.Is(err, ErrScanLimit) {
		t.Fatalf("err = %v, want ErrScanLimit", err)
	}
}

func TestAnswerStreamEqualsOneShotAndRestores(t *testing.T) {
	pii := mustGuard(t, Spec{Name: "pii", Detectors: []string{"email", "card"}, Action: Mask, Request: true, Answer: true, UnmaskAnswers: true})
	policy, err := NewPolicy([]Use{{Guard: pii}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	answer := "Dear [EMAIL_1], card 5500 0000 0000 0004 is new; mail ops@corp.example."
	for split := 1; split < len(answer); split += 3 {
		run := policy.Begin()
		if _, err := run.Request("from ann@x.io"); err != nil {
			t.Fatal(err)
		}
		s, u := run.Stream(), run.Unmasker()
		var masked, shown strings.Builder
		for i := 0; i < len(answer); i += split {
			out, err := s.Write(answer[i:min(i+split, len(answer))])
			if err != nil {
				t.Fatal(err)
			}
			masked.WriteString(out)
			shown.WriteString(u.Write(out))
		}
		rest, err := s.Flush()
		if err != nil {
			t.Fatal(err)
		}
		masked.WriteString(rest)
		shown.WriteString(u.Write(rest) + u.Flush())
		if want := "Dear [EMAIL_1], card [CARD_1] is new; mail [EMAIL_2]."; masked.String() != want {
			t.Fatalf("split %d: masked %q", split, masked.String())
		}
		if want := "Dear ann@x.io, card [CARD_1] is new; mail [EMAIL_2]."; shown.String() != want {
			t.Fatalf("split %d: shown %q", split, shown.String())
		}
	}
}
