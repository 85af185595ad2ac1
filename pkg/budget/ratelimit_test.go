package budget

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/pkg/llm"
)

func TestAllow(t *testing.T) {
	clk := newClock("2026-03-10T12:00:00Z")
	l, _ := newTestDB(t).open(t, Options{Now: clk.Now})
	if err := l.Accounts.SetPolicy(ctx, "k", Policy{RPM: 3, TPM: 1000}); err != nil {
		t.Fatal(err)
	}
	// rpm 3: a request unit refills every 20 s; tpm 1000: a token every 60 ms.
	steps := []struct {
		name       string
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
		{"first request", 0, 100, true, 2, 900, "20s", "6s", 0, ""},
		{"second request", 0, 100, true, 1, 800, "40s", "12s", 0, ""},
		{"too many tokens for now", 0, 900, false, 1, 800, "40s", "12s", 6 * time.Second, "tokens per minute"},
		{"the refused request cost nothing", 0, 100, true, 0, 700, "1m0s", "18s", 0, ""},
		{"too many requests", 0, 1, false, 0, 700, "1m0s", "18s", 20 * time.Second, "requests per minute"},
		{"a request unit refilled", 20 * time.Second, 1, true, 0, 999, "1m0s", "60ms", 0, ""},
		{"more than the tpm in one prompt never fits", 60 * time.Second, 1001, false, 3, 1000, "0s", "0s", 0, "Request too large"},
		{"full again after a minute", 0, 1000, true, 2, 0, "20s", "1m0s", 0, ""},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			clk.Advance(s.advance)
			st, err := l.Limits.Allow("k", s.tokens)
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
		for range 1000 {
			st, err := l.Limits.Allow("unlimited", 1_000_000)
			if err != nil {
				t.Fatal(err)
			}
			h := http.Header{}
			st.SetHeaders(h)
			if len(h) != 0 {
				t.Fatalf("headers %v", h)
			}
		}
	})
	t.Run("only rpm", func(t *testing.T) {
		if err := l.Accounts.SetPolicy(ctx, "rpm-only", Policy{RPM: 60}); err != nil {
			t.Fatal(err)
		}
		for i := range 61 {
			_, err := l.Limits.Allow("rpm-only", 1_000_000)
			if (err == nil) != (i < 60) {
				t.Fatalf("request %d: %v", i, err)
			}
		}
		clk.Advance(time.Second) // one request refills per second
		if _, err := l.Limits.Allow("rpm-only", 0); err != nil {
			t.Fatal(err)
		}
	})
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
