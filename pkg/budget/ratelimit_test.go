package budget

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/pkg/llm"
)

// TestRateLimitsAllow is the rpm/tpm sequence, on an injected clock,
// against every RateStore: memory always, PostgreSQL and Redis when
// pgtest's variables name servers.
func TestRateLimitsAllow(t *testing.T) {
	forEachRateBackend(t, func(t *testing.T, b rateBackend) {
		clk := newClock("2026-03-10T12:00:00Z")
		l := newRateLimitsStore(Options{Now: clk.Now}, b.shared(t, clk.Now, 0)())
		l.set("k", Policy{RPM: 3, TPM: 1000})
		l.set("fresh", Policy{RPM: 3, TPM: 1000})
		// rpm 3: a request unit refills every 20 s; tpm 1000: a token every 60 ms.
		steps := []struct {
			name       string
			key        string
			advance    time.Duration
			tokens     int
			ok         bool
			remReq     int
			remTok     int
			resetReq   string
			resetTok   string
			retryAfter time.Duration
			message    string
		}{
			{"first request", "k", 0, 100, true, 2, 900, "20s", "6s", 0, ""},
			{"second request", "k", 0, 100, true, 1, 800, "40s", "12s", 0, ""},
			{"too many tokens for now", "k", 0, 900, false, 1, 800, "40s", "12s", 6 * time.Second, "tokens per minute"},
			{"the refused request cost nothing", "k", 0, 100, true, 0, 700, "1m0s", "18s", 0, ""},
			{"too many requests", "k", 0, 1, false, 0, 700, "1m0s", "18s", 20 * time.Second, "requests per minute"},
			{"a request unit refilled", "k", 20 * time.Second, 1, true, 0, 999, "1m0s", "60ms", 0, ""},
			{"more than the tpm in one prompt never fits", "k", 60 * time.Second, 1001, false, 3, 1000, "0s", "0s", 0, "Request too large"},
			{"full again after a minute", "k", 0, 1000, true, 2, 0, "20s", "1m0s", 0, ""},
			{"a whole minute of tokens again: retry in a minute", "k", 0, 1000, false, 2, 0, "20s", "1m0s", time.Minute, "tokens per minute"},
			{"a new key's refused first request", "fresh", 0, 1001, false, 3, 1000, "0s", "0s", 0, "Request too large"},
			{"charged nothing", "fresh", 0, 1000, true, 2, 0, "20s", "1m0s", 0, ""},
		}
		for _, s := range steps {
			t.Run(s.name, func(t *testing.T) {
				clk.Advance(s.advance)
				st, err := l.Allow(s.key, s.tokens)
				h := http.Header{}
				st.SetHeaders(h)
				if s.ok != (err == nil) {
					t.Fatalf("err = %v, want ok %v", err, s.ok)
				}
				if !s.ok {
					if !errors.Is(err, ErrRateLimited) {
						t.Fatalf("err %v not ErrRateLimited", err)
					}
					e, _ := llm.AsError(err)
					if e.Status != http.StatusTooManyRequests || e.Type != llm.TypeRateLimit || e.Code != "rate_limit_exceeded" || e.RetryAfter != s.retryAfter ||
						!strings.Contains(e.Message, s.message) {
						t.Fatalf("error %+v", e)
					}
					h = e.Header
				}
				want := map[string]string{
					"x-ratelimit-limit-requests": "3", "x-ratelimit-remaining-requests": itoa(s.remReq), "x-ratelimit-reset-requests": s.resetReq,
					"x-ratelimit-limit-tokens": "1000", "x-ratelimit-remaining-tokens": itoa(s.remTok), "x-ratelimit-reset-tokens": s.resetTok,
				}
				for k, v := range want {
					if got := h.Get(k); got != v {
						t.Errorf("%s = %q, want %q", k, got, v)
					}
				}
			})
		}
		t.Run("no limits: always allowed, no headers", func(t *testing.T) {
			for range 100 {
				st, err := l.Allow("unlimited", 1_000_000)
				if err != nil {
					t.Fatal(err)
				}
				h := http.Header{}
				st.SetHeaders(h)
				if st != (RateState{}) || len(h) != 0 {
					t.Fatalf("state %+v, headers %v", st, h)
				}
			}
		})
		t.Run("only rpm", func(t *testing.T) {
			l.set("rpm-only", Policy{RPM: 60})
			for i := range 61 {
				_, err := l.Allow("rpm-only", 1_000_000)
				if (err == nil) != (i < 60) {
					t.Fatalf("request %d: %v", i, err)
				}
			}
			clk.Advance(time.Second) // one request refills per second
			if _, err := l.Allow("rpm-only", 0); err != nil {
				t.Fatal(err)
			}
		})
		t.Run("only tpm", func(t *testing.T) {
			l.set("tpm-only", Policy{TPM: 100})
			for i := range 11 {
				st, err := l.Allow("tpm-only", 10)
				if (err == nil) != (i < 10) || st.LimitRequests != 0 {
					t.Fatalf("request %d: %+v %v", i, st, err)
				}
			}
		})
	})
}

// TestLedgerRateLimitsFollowPolicies: a Ledger's RateLimits size a key's
// buckets by the policy stored through its Accounts, and by a changed one
// from the next request on.
func TestLedgerRateLimitsFollowPolicies(t *testing.T) {
	clk := newClock("2026-03-10T12:00:00Z")
	l, _ := newTestDB(t).open(t, Options{Now: clk.Now})
	for _, tc := range []struct {
		name           string
		policy         Policy
		tokens         int
		ok             bool
		limReq, limTok string
	}{
		{"rpm 3, tpm 1000", Policy{RPM: 3, TPM: 1000}, 100, true, "3", "1000"},
		{"raised tpm", Policy{RPM: 3, TPM: 2000}, 1500, true, "3", "2000"},
		{"lowered rpm: the two requests so far use it up", Policy{RPM: 2, TPM: 2000}, 1, false, "2", "2000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := l.Accounts.SetPolicy(ctx, "k", tc.policy); err != nil {
				t.Fatal(err)
			}
			st, err := l.Limits.Allow("k", tc.tokens)
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok %v", err, tc.ok)
			}
			h := http.Header{}
			st.SetHeaders(h)
			if e, ok := llm.AsError(err); ok {
				h = e.Header
			}
			if h.Get("x-ratelimit-limit-requests") != tc.limReq || h.Get("x-ratelimit-limit-tokens") != tc.limTok {
				t.Fatalf("headers %v", h)
			}
		})
	}
}

func itoa(n int) string {
	b := []byte{}
	if n == 0 {
		return "0"
	}
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}
