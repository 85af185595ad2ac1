package safe

import (
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestLoopRestartsAfterPanicThenGivesUp(t *testing.T) {
	s := New(Options{Logger: slog.New(slog.DiscardHandler), Pause: time.Millisecond, Restarts: 3})
	var runs atomic.Int32
	done := make(chan struct{})
	s.Loop("sweeper", nil, func() {
		if runs.Add(1) == 3 {
			defer close(done)
		}
		panic("boom")
	})
	<-done
	deadline := time.Now().Add(5 * time.Second)
	for s.Err() == nil && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if err := s.Err(); err == nil || !strings.Contains(err.Error(), "sweeper") {
		t.Fatalf("Err = %v, want the sweeper reported", err)
	}
	if got := runs.Load(); got != 3 {
		t.Errorf("runs = %d, want 3", got)
	}
	if s.Panics() != 3 {
		t.Errorf("Panics = %d, want 3", s.Panics())
	}
}

func TestLoopThatReturnsIsNotRestarted(t *testing.T) {
	s := New(Options{Logger: slog.New(slog.DiscardHandler), Pause: time.Millisecond})
	var runs atomic.Int32
	done := make(chan struct{})
	s.Loop("writer", nil, func() {
		if runs.Add(1) == 1 {
			panic("once")
		}
		close(done)
	})
	<-done
	time.Sleep(20 * time.Millisecond)
	if runs.Load() != 2 || s.Err() != nil {
		t.Fatalf("runs = %d, Err = %v; want 2 runs and healthy", runs.Load(), s.Err())
	}
}

func TestGoMarksFailed(t *testing.T) {
	s := New(Options{Logger: slog.New(slog.DiscardHandler)})
	s.Go("rebuild", func() { panic("bad basis") })
	deadline := time.Now().Add(5 * time.Second)
	for s.Err() == nil && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if err := s.Err(); err == nil || !strings.Contains(err.Error(), "rebuild: panicked: bad basis") {
		t.Fatalf("Err = %v", err)
	}
}

func TestNilSupervisorIsUsable(t *testing.T) {
	var s *Supervisor
	done := make(chan struct{})
	s.Go("x", func() { close(done) })
	<-done
	if s.Err() != nil || s.Panics() != 0 {
		t.Fatal("nil supervisor should report nothing")
	}
}
