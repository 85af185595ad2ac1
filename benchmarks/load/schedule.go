package main

import (
	"context"
	"time"
)

// clock is the time source of the open-loop dispatcher, injected so tests
// can check the schedule without sleeping.
type clock interface {
	Now() time.Time
	// SleepUntil returns at t or later, or early when ctx is done.
	SleepUntil(ctx context.Context, t time.Time)
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) SleepUntil(ctx context.Context, t time.Time) {
	d := time.Until(t)
	if d <= 0 {
		return
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
	case <-ctx.Done():
	}
}

// schedule is an open-loop arrival schedule: request i is due at
// start + i/rate seconds, computed from i each time rather than by adding an
// interval, so no rounding error accumulates over a long phase.
type schedule struct {
	start time.Time
	rate  int // requests per second
	n     int // requests in the phase
}

func newSchedule(start time.Time, rate int, d time.Duration) schedule {
	return schedule{start: start, rate: rate, n: int(int64(rate) * int64(d) / int64(time.Second))}
}

func (s schedule) at(i int) time.Time {
	return s.start.Add(time.Duration(int64(i) * int64(time.Second) / int64(s.rate)))
}

// dispatch calls fire(i, intended) for every request of the schedule at its
// intended time. fire must not block: a dispatcher that waited for a busy
// target would send later than planned and hide the target's slowness (the
// coordinated omission of closed-loop tools). When the dispatcher itself is
// late (a slow timer, a descheduled process), it fires the overdue requests
// at once with their original intended times, so latency measured from the
// intended time still includes the delay. It returns the number fired.
func dispatch(ctx context.Context, c clock, s schedule, fire func(i int, intended time.Time)) int {
	for i := 0; i < s.n; i++ {
		t := s.at(i)
		if c.Now().Before(t) {
			c.SleepUntil(ctx, t)
		}
		if ctx.Err() != nil {
			return i
		}
		fire(i, t)
	}
	return s.n
}
