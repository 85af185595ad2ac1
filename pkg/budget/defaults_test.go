package budget

import (
	"errors"
	"testing"
)

// TestSetDefaults: keys without a policy of their own (seen before the
// change or first seen after it) take the new defaults, limits and rate
// limits; keys with their own keep it; an invalid policy changes nothing.
func TestSetDefaults(t *testing.T) {
	clk := newClock("2026-03-10T12:00:00Z")
	d := newTestDB(t)
	l, _ := d.open(t, Options{Now: clk.Now, Defaults: daily(2)})
	if err := l.Accounts.SetPolicy(ctx, "own", daily(5)); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Accounts.Reserve(ctx, "seen", "r1", 1_500_000); err != nil { // within the old daily $2
		t.Fatal(err)
	}
	if err := l.Accounts.SetDefaults(Policy{RPM: -1}); err == nil {
		t.Fatal("invalid defaults accepted")
	}
	next := daily(1)
	next.RPM = 1
	if err := l.Accounts.SetDefaults(next); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		key       string
		wantLimit int64 // micros of the daily limit
		wantOwn   bool
		wantRPM1  bool // a second request in the minute is refused
	}{
		{"key seen before", "seen", 1_000_000, false, true},
		{"key first seen after", "later", 1_000_000, false, true},
		{"key with its own policy", "own", 5_000_000, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, own := l.Accounts.Policy(tt.key)
			if own != tt.wantOwn || len(p.Limits) != 1 || int64(p.Limits[0].Amount) != tt.wantLimit {
				t.Fatalf("policy %+v own %v, want limit %d own %v", p, own, tt.wantLimit, tt.wantOwn)
			}
			if _, err := l.Limits.Allow(tt.key, 0); err != nil {
				t.Fatalf("first request: %v", err)
			}
			_, err := l.Limits.Allow(tt.key, 0)
			if refused := err != nil; refused != tt.wantRPM1 {
				t.Fatalf("second request refused %v (%v), want %v", refused, err, tt.wantRPM1)
			}
		})
	}
	// The key seen before already holds $1.50 of its new $1 limit.
	if _, err := l.Accounts.Reserve(ctx, "seen", "r2", 1); !errors.Is(err, ErrExhausted) {
		t.Fatalf("reserve past the new default limit: %v, want ErrExhausted", err)
	}
	if got := l.Accounts.Defaults(); got.RPM != 1 || got.Limits[0].Amount != 1_000_000 {
		t.Fatalf("Defaults() = %+v", got)
	}
}
