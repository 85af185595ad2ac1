package router

import (
	"testing"
	"time"
)

func fixed(r float64) func() float64 { return func() float64 { return r } }

func TestBackoffDelay(t *testing.T) {
	b := Backoff{Base: 100 * time.Millisecond, Max: time.Second}
	tests := []struct {
		name       string
		attempt    int
		retryAfter time.Duration
		rnd        float64
		want       time.Duration
	}{
		{"first retry, top of the jitter", 1, 0, 0.999999, 99_999_900},
		{"first retry, half", 1, 0, 0.5, 50 * time.Millisecond},
		{"full jitter can wait nothing", 1, 0, 0, 0},
		{"doubles", 2, 0, 0.5, 100 * time.Millisecond},
		{"doubles again", 3, 0, 0.5, 200 * time.Millisecond},
		{"capped by Max", 5, 0, 0.5, 500 * time.Millisecond},
		{"no overflow far out", 200, 0, 0.5, 500 * time.Millisecond},
		{"attempt 0 reads as 1", 0, 0, 0.5, 50 * time.Millisecond},
		{"Retry-After longer than the jitter wins", 1, 3 * time.Second, 0.5, 3 * time.Second},
		{"Retry-After shorter than the jitter", 3, 10 * time.Millisecond, 0.5, 200 * time.Millisecond},
		{"a bad random source is clamped", 1, 0, 7, 100 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := b.Delay(tc.attempt, tc.retryAfter, fixed(tc.rnd)); got != tc.want {
				t.Errorf("Delay(%d, %v, %v) = %v, want %v", tc.attempt, tc.retryAfter, tc.rnd, got, tc.want)
			}
		})
	}
	// The default source stays under the ceiling.
	for range 100 {
		if d := b.Delay(1, 0, nil); d < 0 || d > 100*time.Millisecond {
			t.Fatalf("Delay with the default source = %v, want within [0, 100ms]", d)
		}
	}
}

func TestBackoffNext(t *testing.T) {
	b := Backoff{Base: 100 * time.Millisecond, Max: time.Second, MaxAttempts: 3, MaxRetryAfter: 10 * time.Second, MinAttempt: time.Second}
	tests := []struct {
		name       string
		attempt    int
		retryAfter time.Duration
		remaining  time.Duration
		want       time.Duration
		ok         bool
	}{
		{"first retry", 1, 0, time.Minute, 50 * time.Millisecond, true},
		{"last retry", 2, 0, time.Minute, 100 * time.Millisecond, true},
		{"attempts spent", 3, 0, time.Minute, 0, false},
		{"Retry-After honoured", 1, 5 * time.Second, time.Minute, 5 * time.Second, true},
		{"Retry-After at the cap", 1, 10 * time.Second, time.Minute, 10 * time.Second, true},
		{"Retry-After beyond the cap: fall back", 1, 10*time.Second + 1, time.Hour, 0, false},
		{"the wait leaves exactly MinAttempt", 1, 0, 1050 * time.Millisecond, 50 * time.Millisecond, true},
		{"the wait leaves less than MinAttempt", 1, 0, 1049 * time.Millisecond, 0, false},
		{"Retry-After past the deadline", 1, 5 * time.Second, 5 * time.Second, 0, false},
		{"deadline gone", 1, 0, -time.Second, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := b.Next(tc.attempt, tc.retryAfter, tc.remaining, fixed(0.5))
			if got != tc.want || ok != tc.ok {
				t.Errorf("Next(%d, %v, %v) = %v, %v; want %v, %v", tc.attempt, tc.retryAfter, tc.remaining, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestBackoffZeroValueUsesDefaults(t *testing.T) {
	var b Backoff
	d := DefaultBackoff()
	if got, want := b.Delay(2, 0, fixed(0.5)), d.Delay(2, 0, fixed(0.5)); got != want || got != 250*time.Millisecond {
		t.Errorf("zero Backoff Delay = %v, default = %v, want 250ms", got, want)
	}
	if _, ok := b.Next(d.MaxAttempts, 0, time.Hour, nil); ok {
		t.Error("zero Backoff retries past the default MaxAttempts")
	}
	if !b.Fits(0, d.MinAttempt) || b.Fits(1, d.MinAttempt) {
		t.Error("zero Backoff Fits does not use the default MinAttempt")
	}
}
