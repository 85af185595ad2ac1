package main

import (
	"context"
	"testing"
	"time"
)

// fakeClock advances only when the dispatcher sleeps, optionally oversleeping
// by lag to play a descheduled process.
type fakeClock struct {
	now    time.Time
	lag    time.Duration
	sleeps int
}

func (c *fakeClock) Now() time.Time { return c.now }

func (c *fakeClock) SleepUntil(_ context.Context, t time.Time) {
	c.sleeps++
	if t.After(c.now) {
		c.now = t.Add(c.lag)
	}
}

func TestScheduleIntendedTimesAreExact(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		rate int
		d    time.Duration
		want []time.Duration // offsets from start, all of them
	}{
		{"whole intervals", 4, time.Second, []time.Duration{0, 250 * time.Millisecond, 500 * time.Millisecond, 750 * time.Millisecond}},
		// 1/3 s is not a whole number of nanoseconds: each time is
		// rounded down on its own, so the error never accumulates.
		{"thirds", 3, 2 * time.Second, []time.Duration{0, 333333333, 666666666, time.Second, 1333333333, 1666666666}},
		{"partial second", 1000, 5 * time.Millisecond, []time.Duration{0, time.Millisecond, 2 * time.Millisecond, 3 * time.Millisecond, 4 * time.Millisecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &fakeClock{now: start}
			var got []time.Duration
			n := dispatch(context.Background(), c, newSchedule(start, tt.rate, tt.d), func(i int, at time.Time) {
				if len(got) != i {
					t.Fatalf("fired %d out of order (after %d)", i, len(got))
				}
				if c.now.Before(at) {
					t.Fatalf("request %d fired at %v, before its time %v", i, c.now, at)
				}
				got = append(got, at.Sub(start))
			})
			if n != len(tt.want) || len(got) != len(tt.want) {
				t.Fatalf("fired %d (returned %d), want %d", len(got), n, len(tt.want))
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("request %d intended at +%v, want +%v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestScheduleLongRunHasNoDrift(t *testing.T) {
	start := time.Unix(0, 0)
	s := newSchedule(start, 7, time.Hour)
	if s.n != 7*3600 {
		t.Fatalf("n = %d", s.n)
	}
	// Request 7k is due at exactly k seconds, however many came before.
	for _, k := range []int{1, 60, 3599} {
		if got := s.at(7 * k).Sub(start); got != time.Duration(k)*time.Second {
			t.Errorf("request %d at %v, want %ds", 7*k, got, k)
		}
	}
}

func TestLateDispatcherKeepsIntendedTimes(t *testing.T) {
	// Each sleep overshoots by 25ms at 100 req/s (10ms apart): the
	// dispatcher falls behind, and must then fire overdue requests without
	// sleeping, each still carrying its own scheduled time so that the
	// delay is charged to it.
	start := time.Unix(100, 0)
	c := &fakeClock{now: start, lag: 25 * time.Millisecond}
	var late []time.Duration
	var intended []time.Time
	dispatch(context.Background(), c, newSchedule(start, 100, 100*time.Millisecond), func(i int, at time.Time) {
		intended = append(intended, at)
		late = append(late, c.now.Sub(at))
	})
	if len(intended) != 10 {
		t.Fatalf("fired %d, want 10", len(intended))
	}
	for i, at := range intended {
		if want := start.Add(time.Duration(i) * 10 * time.Millisecond); !at.Equal(want) {
			t.Errorf("request %d intended %v, want %v", i, at, want)
		}
	}
	if c.sleeps >= 10 {
		t.Errorf("slept %d times: overdue requests must go out without sleeping", c.sleeps)
	}
	var maxLate time.Duration
	for _, l := range late {
		maxLate = max(maxLate, l)
	}
	if maxLate < 25*time.Millisecond {
		t.Errorf("lateness not visible from the intended times: max %v", maxLate)
	}
}

func TestDispatchStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	start := time.Unix(0, 0)
	c := &fakeClock{now: start}
	n := dispatch(ctx, c, newSchedule(start, 10, time.Second), func(i int, _ time.Time) {
		if i == 3 {
			cancel()
		}
	})
	if n != 4 {
		t.Fatalf("fired %d after cancel at the 4th, want 4", n)
	}
}
