// Package safe keeps tollgate's background goroutines from killing the
// process silently: a Supervisor runs each one, recovers its panics, logs
// them with their stack, restarts loops that can go on, and remembers
// those that cannot, so /readyz turns red instead of the gateway limping
// on without a ledger writer or a sweeper.
package safe

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Supervisor watches background goroutines. The zero value is not usable;
// a nil *Supervisor is: it logs to slog.Default and keeps no health.
type Supervisor struct {
	log      *slog.Logger
	pause    time.Duration
	restarts int // consecutive panics before a loop is given up

	panics atomic.Int64
	mu     sync.Mutex
	failed map[string]string // worker → why it stopped for good
}

// Options configures a Supervisor.
type Options struct {
	Logger *slog.Logger
	// Pause is the wait before a panicked loop is restarted (default 1s).
	Pause time.Duration
	// Restarts is how many panics in a row a loop may have before it is
	// given up and reported unhealthy (default 5). A run that lasts longer
	// than a minute resets the count.
	Restarts int
}

// New returns a Supervisor.
func New(o Options) *Supervisor {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Pause <= 0 {
		o.Pause = time.Second
	}
	if o.Restarts <= 0 {
		o.Restarts = 5
	}
	return &Supervisor{log: o.Logger, pause: o.Pause, restarts: o.Restarts, failed: map[string]string{}}
}

func (s *Supervisor) logger() *slog.Logger {
	if s == nil {
		return slog.Default()
	}
	return s.log
}

// Recovered logs a recovered panic value v of the named worker with the
// stack, and counts it. Call it with the value of recover(), from the
// deferred function that recovered.
func (s *Supervisor) Recovered(name string, v any) {
	if s != nil {
		s.panics.Add(1)
	}
	s.logger().Error("panic recovered", "worker", name, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
}

// Fail marks the named worker as stopped for good: Err reports it until
// the process restarts.
func (s *Supervisor) Fail(name, why string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	s.failed[name] = why
	s.mu.Unlock()
}

// Go runs fn once on its own goroutine. A panic is recovered and logged,
// and the worker is marked failed (fn does not run again): use it for
// work whose loss must show on /readyz.
func (s *Supervisor) Go(name string, fn func()) {
	go func() {
		defer func() {
			if v := recover(); v != nil {
				s.Recovered(name, v)
				s.Fail(name, fmt.Sprintf("panicked: %v", v))
			}
		}()
		fn()
	}()
}

// Loop runs loop on its own goroutine until it returns normally. A panic
// is recovered, logged with its stack, and loop is started again after a
// pause; after too many panics in a row the worker is given up and marked
// failed. stop, when closed, ends the wait between restarts.
func (s *Supervisor) Loop(name string, stop <-chan struct{}, loop func()) {
	go func() {
		pause, limit := time.Second, 5
		if s != nil {
			pause, limit = s.pause, s.restarts
		}
		streak := 0
		for {
			began := time.Now()
			if !s.runOnce(name, loop) {
				return // returned normally
			}
			if time.Since(began) > time.Minute {
				streak = 0
			}
			streak++
			if streak >= limit {
				s.Fail(name, fmt.Sprintf("panicked %d times in a row; given up", streak))
				return
			}
			t := time.NewTimer(pause)
			select {
			case <-t.C:
			case <-stop:
				t.Stop()
				return
			}
		}
	}()
}

// runOnce runs loop and reports whether it panicked.
func (s *Supervisor) runOnce(name string, loop func()) (panicked bool) {
	defer func() {
		if v := recover(); v != nil {
			s.Recovered(name, v)
			panicked = true
		}
	}()
	loop()
	return false
}

// Panics is how many panics have been recovered.
func (s *Supervisor) Panics() int64 {
	if s == nil {
		return 0
	}
	return s.panics.Load()
}

// Err reports the workers that stopped for good, nil when there are none.
func (s *Supervisor) Err() error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.failed) == 0 {
		return nil
	}
	var parts []string
	for name, why := range s.failed {
		parts = append(parts, name+": "+why)
	}
	sort.Strings(parts)
	return errors.New("background workers stopped: " + strings.Join(parts, "; "))
}
