package router

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tollgate/tollgate/pkg/llm"
)

// Breaker tests run inside a synctest bubble: time.Now is a fake clock
// there, and time.Sleep advances it at once, so cooldowns and windows are
// crossed exactly and without waiting.

func newTestBreakers(t *testing.T, cfg BreakerConfig) *Breakers {
	t.Helper()
	b, err := NewBreakers(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// call makes one call through the breaker with outcome o; it fails the test
// when the breaker refuses.
func call(t *testing.T, b *Breakers, id string, o Outcome) {
	t.Helper()
	p, err := b.Allow(id)
	if err != nil {
		t.Fatalf("Allow(%s): %v", id, err)
	}
	p.Done(o, "upstream 503: overloaded")
}

func wantState(t *testing.T, b *Breakers, id string, want BreakerState) {
	t.Helper()
	if got := b.State(id); got != want {
		t.Fatalf("state of %s = %s, want %s", id, got, want)
	}
}

func TestBreakerLifecycle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newTestBreakers(t, BreakerConfig{}) // defaults: 5 faults, 30s cooldown, 3 probes
		b.Add("openai-key1", "openai")
		const id = "openai-key1"

		for range 4 {
			call(t, b, id, OutcomeFault)
			wantState(t, b, id, BreakerClosed)
		}
		call(t, b, id, OutcomeFault) // the 5th in a row
		wantState(t, b, id, BreakerOpen)

		if _, err := b.Allow(id); !errors.Is(err, ErrBreakerOpen) {
			t.Fatalf("Allow while open: %v, want ErrBreakerOpen", err)
		}
		st := b.Snapshot()[0]
		if st.State != BreakerOpen || st.HalfOpenIn != 30*time.Second || st.LastError != "upstream 503: overloaded" || st.LastErrorAt.IsZero() {
			t.Errorf("snapshot while open = %+v", st)
		}

		time.Sleep(30*time.Second - time.Nanosecond)
		wantState(t, b, id, BreakerOpen)
		if st := b.Snapshot()[0]; st.HalfOpenIn != time.Nanosecond {
			t.Errorf("HalfOpenIn = %v, want 1ns", st.HalfOpenIn)
		}
		time.Sleep(2 * time.Nanosecond) // past the cooldown
		wantState(t, b, id, BreakerHalfOpen)

		// Half-open: three probes at once, the fourth is refused.
		var probes []Permit
		for range 3 {
			p, err := b.Allow(id)
			if err != nil {
				t.Fatalf("probe refused: %v", err)
			}
			probes = append(probes, p)
		}
		if _, err := b.Allow(id); !errors.Is(err, ErrProbesBusy) {
			t.Fatalf("4th probe: %v, want ErrProbesBusy", err)
		}
		// A neutral outcome frees its slot without deciding anything.
		probes[0].Done(OutcomeNeutral, "")
		wantState(t, b, id, BreakerHalfOpen)
		p, err := b.Allow(id)
		if err != nil {
			t.Fatalf("probe after a neutral one: %v", err)
		}
		probes[0] = p
		for i, p := range probes {
			p.Done(OutcomeSuccess, "")
			if i < 2 { // closes on the third success
				wantState(t, b, id, BreakerHalfOpen)
			}
		}
		wantState(t, b, id, BreakerClosed)
		if st := b.Snapshot()[0]; st.HalfOpenIn != 0 || !st.OpenUntil.IsZero() {
			t.Errorf("closed breaker snapshot = %+v", st)
		}
	})
}

func TestBreakerFailedProbeReopens(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newTestBreakers(t, BreakerConfig{Default: BreakerSettings{ConsecutiveFailures: 2, Cooldown: 10 * time.Second}})
		const id = "d"
		call(t, b, id, OutcomeFault)
		call(t, b, id, OutcomeFault)
		wantState(t, b, id, BreakerOpen)
		time.Sleep(10*time.Second + 1)
		wantState(t, b, id, BreakerHalfOpen)

		call(t, b, id, OutcomeSuccess)
		call(t, b, id, OutcomeFault) // one failed probe is enough
		wantState(t, b, id, BreakerOpen)
		if st := b.Snapshot()[0]; st.HalfOpenIn != 10*time.Second {
			t.Errorf("reopened for %v, want a full cooldown of 10s", st.HalfOpenIn)
		}
	})
}

func TestBreakerNeutralOutcomes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newTestBreakers(t, BreakerConfig{Default: BreakerSettings{ConsecutiveFailures: 3, MinRequests: 1000}})
		const id = "d"
		call(t, b, id, OutcomeFault)
		call(t, b, id, OutcomeFault)
		for range 50 { // client 400s: neither failures nor a reset of the row
			call(t, b, id, OutcomeOf(llm.InvalidParam("messages", "bad")))
		}
		wantState(t, b, id, BreakerClosed)
		c := b.Snapshot()[0].Counts
		if c.Failures != 2 || c.ConsecutiveFailures != 2 || c.Neutral != 50 || c.Successes != 0 {
			t.Errorf("counts after 2 faults and 50 client errors = %+v", c)
		}
		call(t, b, id, OutcomeFault)
		wantState(t, b, id, BreakerOpen)
	})
}

func TestBreakerFailureRatio(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newTestBreakers(t, BreakerConfig{Default: BreakerSettings{
			ConsecutiveFailures: 100, FailureRatio: 0.5, MinRequests: 10, Window: 10 * time.Second,
		}})
		const id = "d"
		// 9 calls, 5 of them faults: over the ratio but under MinRequests.
		for i := range 9 {
			o := OutcomeSuccess
			if i%2 == 0 {
				o = OutcomeFault
			}
			call(t, b, id, o)
		}
		wantState(t, b, id, BreakerClosed)
		// The window rolls: 9 old calls fall out, one fault is 1 call of 1.
		time.Sleep(11 * time.Second)
		call(t, b, id, OutcomeFault)
		wantState(t, b, id, BreakerClosed)
		if c := b.Snapshot()[0].Counts; c.Failures != 1 || c.Successes != 0 {
			t.Fatalf("counts after the window rolled = %+v, want 1 failure", c)
		}
		// 4 successes and 5 more faults within the window: 6 of 10 failed.
		for range 4 {
			call(t, b, id, OutcomeSuccess)
		}
		for range 4 {
			call(t, b, id, OutcomeFault)
			wantState(t, b, id, BreakerClosed)
		}
		call(t, b, id, OutcomeFault) // the 10th completed call
		wantState(t, b, id, BreakerOpen)
	})
}

func TestBreakerPerProviderSettings(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var changes []string
		b := newTestBreakers(t, BreakerConfig{
			Default:   BreakerSettings{ConsecutiveFailures: 4},
			Providers: map[string]BreakerSettings{"flaky": {ConsecutiveFailures: 2, Cooldown: 5 * time.Second}},
			OnStateChange: func(id, provider string, from, to BreakerState) {
				mu.Lock()
				defer mu.Unlock()
				changes = append(changes, fmt.Sprintf("%s/%s %s->%s", id, provider, from, to))
			},
		})
		b.Add("f1", "flaky")
		b.Add("s1", "steady")
		for range 2 {
			call(t, b, "f1", OutcomeFault)
			call(t, b, "s1", OutcomeFault)
			call(t, b, "unregistered", OutcomeFault)
		}
		wantState(t, b, "f1", BreakerOpen)
		wantState(t, b, "s1", BreakerClosed)
		wantState(t, b, "unregistered", BreakerClosed)
		for range 2 {
			call(t, b, "s1", OutcomeFault)
		}
		wantState(t, b, "s1", BreakerOpen) // the default's 4

		snap := b.Snapshot()
		if len(snap) != 3 || snap[0].ID != "f1" || snap[1].ID != "s1" || snap[2].ID != "unregistered" || snap[2].Provider != "" {
			t.Fatalf("snapshot = %+v", snap)
		}
		if snap[0].HalfOpenIn != 5*time.Second || snap[1].HalfOpenIn != 30*time.Second {
			t.Errorf("HalfOpenIn = %v, %v; want the flaky 5s and the default 30s", snap[0].HalfOpenIn, snap[1].HalfOpenIn)
		}
		time.Sleep(6 * time.Second)
		wantState(t, b, "f1", BreakerHalfOpen)
		mu.Lock()
		defer mu.Unlock()
		want := "f1/flaky closed->open, s1/steady closed->open, f1/flaky open->half-open"
		if got := strings.Join(changes, ", "); got != want {
			t.Errorf("state changes = %s\n          want %s", got, want)
		}
	})
}

func TestBreakerLastErrorIsBounded(t *testing.T) {
	b := newTestBreakers(t, BreakerConfig{})
	p, err := b.Allow("d")
	if err != nil {
		t.Fatal(err)
	}
	p.Done(OutcomeFault, strings.Repeat("é", 300))
	if got := b.Snapshot()[0].LastError; len(got) > maxLastError+3 || !strings.HasSuffix(got, "...") {
		t.Errorf("last error is %d bytes: %q", len(got), got)
	}
	Permit{}.Done(OutcomeFault, "") // the zero permit does nothing
}

func TestNewBreakersValidates(t *testing.T) {
	_, err := NewBreakers(BreakerConfig{
		Default:   BreakerSettings{FailureRatio: 1.5},
		Providers: map[string]BreakerSettings{"p": {Cooldown: -1, Window: -1}},
	})
	for _, want := range []string{"breakers.default.failure_ratio", "breakers.providers.p.window", "breakers.providers.p.cooldown"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %q", err, want)
		}
	}
}

func TestOutcomeOf(t *testing.T) {
	up := func(status int) error { return &llm.Error{Status: status, Upstream: true, Provider: "p"} }
	tests := []struct {
		name string
		err  error
		want Outcome
	}{
		{"success", nil, OutcomeSuccess},
		{"500", up(500), OutcomeFault},
		{"502 connection failed", up(http.StatusBadGateway), OutcomeFault},
		{"503", up(503), OutcomeFault},
		{"504 timeout", up(http.StatusGatewayTimeout), OutcomeFault},
		{"429", up(http.StatusTooManyRequests), OutcomeFault},
		{"408", up(http.StatusRequestTimeout), OutcomeFault},
		{"upstream 401: our key", up(http.StatusUnauthorized), OutcomeFault},
		{"upstream 403: our key", up(http.StatusForbidden), OutcomeFault},
		{"retryable odd status", &llm.Error{Status: 418, Upstream: true, Retryable: true}, OutcomeFault},
		{"client 400", up(http.StatusBadRequest), OutcomeNeutral},
		{"client 404", up(http.StatusNotFound), OutcomeNeutral},
		{"client 413", up(http.StatusRequestEntityTooLarge), OutcomeNeutral},
		{"client 422", up(http.StatusUnprocessableEntity), OutcomeNeutral},
		{"gateway's own 403", &llm.Error{Status: http.StatusForbidden}, OutcomeNeutral},
		{"499", &llm.Error{Status: llm.StatusClientClosed}, OutcomeNeutral},
		{"client canceled", fmt.Errorf("upstream p: %w", context.Canceled), OutcomeNeutral},
		{"deadline", fmt.Errorf("upstream p: %w", context.DeadlineExceeded), OutcomeFault},
		{"wrapped 503", fmt.Errorf("call: %w", up(503)), OutcomeFault},
		{"connection reset", errors.New("read: connection reset by peer"), OutcomeFault},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := OutcomeOf(tc.err); got != tc.want {
				t.Errorf("OutcomeOf(%v) = %s, want %s", tc.err, got, tc.want)
			}
		})
	}
}

func BenchmarkBreakersAllowDone(b *testing.B) {
	br, err := NewBreakers(BreakerConfig{})
	if err != nil {
		b.Fatal(err)
	}
	for i := range 16 {
		br.Add(fmt.Sprintf("deployment-%d", i), "openai")
	}
	b.ReportAllocs()
	for b.Loop() {
		p, err := br.Allow("deployment-7")
		if err != nil {
			b.Fatal(err)
		}
		p.Done(OutcomeSuccess, "")
	}
}
