package main

import (
	"bytes"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tollgate/tollgate/internal/safe"
)

// logWriterWorker names the sink's writer goroutine to the supervisor.
const logWriterWorker = "log writer"

// logSink stands between the logger and stderr so that logging never
// blocks a request: Write appends the line to a bounded buffer and returns
// at once, and one writer goroutine drains the buffer to w. When w stalls
// (stderr is a pipe nobody reads) the buffer fills, and from the first line
// that does not fit until the writer takes the buffer again every line is
// dropped whole and counted, never waited for; the writer then writes what
// the buffer held and a line saying how many were dropped after it. No lock
// is held while w is written to.
type logSink struct {
	w          io.Writer
	maxBytes   int           // bound of the buffer
	flushBytes int           // a buffer this full wakes the writer before its interval
	interval   time.Duration // how long a line may wait for the writer
	// notice renders the line reporting n dropped lines.
	notice func(n int64) []byte

	mu   sync.Mutex // guards buf, lost and closed; never held across a write to w
	buf  []byte
	lost int64 // lines dropped since the writer last took the buffer
	// after holds the lines written since a drop, up to afterBytes: they
	// follow the drop notice (the last words before a shutdown among them).
	after    []byte
	closed   bool
	dropped  atomic.Int64 // lines dropped in all
	wake     chan struct{}
	stop     chan struct{}
	done     chan struct{} // closed when the writer has written its last bytes
	stopOnce sync.Once
}

// newLogSink returns a sink writing to w, holding at most maxBytes of
// lines. Lines reach w within interval, or sooner under load. Start it.
func newLogSink(w io.Writer, interval time.Duration, maxBytes int) *logSink {
	return &logSink{
		w: w, maxBytes: maxBytes, flushBytes: min(maxBytes/2, 64<<10), interval: interval,
		notice: func(n int64) []byte { return fmt.Appendf(nil, "log: dropped %d lines\n", n) },
		buf:    make([]byte, 0, min(maxBytes, 64<<10)),
		wake:   make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
	}
}

// Start runs the writer under sup (nil: on a plain goroutine with the
// supervisor's defaults); the sink exists before the logger and the
// supervisor, which log through it.
func (s *logSink) Start(sup *safe.Supervisor) {
	sup.Loop(logWriterWorker, s.stop, s.loop)
}

// afterBytes bounds the lines kept after a drop until the writer takes
// the buffer and writes the drop notice before them (the newest kept).
const afterBytes = 64 << 10

// Write buffers p (one or more whole lines; a slog handler writes one
// record per call), or drops it when the buffer has no room for it. Once
// a line was dropped, the next lines (the newest afterBytes of them) wait
// to follow the notice of the drops, so the log keeps its order, shows one
// notice per stall and keeps its last words. It never waits for w, and never fails.
func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	switch {
	case s.closed:
		s.lost++
		s.dropped.Add(1)
	case s.lost > 0:
		// Lines after a drop wait for the notice. When they outgrow
		// afterBytes the oldest of them go: the last words (a shutdown's)
		// matter most.
		if len(p) > afterBytes {
			s.lost++
			s.dropped.Add(1)
			break
		}
		for len(s.after)+len(p) > afterBytes {
			i := bytes.IndexByte(s.after, '\n')
			if i < 0 {
				i = len(s.after) - 1
			}
			s.after = s.after[i+1:]
			s.lost++
			s.dropped.Add(1)
		}
		s.after = append(s.after, p...)
	case len(s.buf)+len(p) > s.maxBytes:
		s.lost++
		s.dropped.Add(1)
	default:
		s.buf = append(s.buf, p...)
	}
	full := s.lost > 0 || len(s.buf) >= s.flushBytes
	s.mu.Unlock()
	if full {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
	return len(p), nil
}

// Dropped is how many lines were dropped because the buffer was full (w
// stalled) or the sink closed.
func (s *logSink) Dropped() int64 { return s.dropped.Load() }

// loop drains the buffer to w every interval, when woken, and once more
// when stopped.
func (s *logSink) loop() {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	spare := make([]byte, 0, min(s.maxBytes, 64<<10))
	for {
		select {
		case <-t.C:
		case <-s.wake:
		case <-s.stop:
			s.flush(spare, true)
			close(s.done)
			return
		}
		spare = s.flush(spare, false)
	}
}

// flush swaps the buffer for spare (empty) and writes what it held, with a
// notice for lines dropped after it, outside the lock. It returns the
// written buffer, emptied, as the next spare. The last flush closes the
// sink: lines written after it are dropped, not left unwritten unseen.
func (s *logSink) flush(spare []byte, last bool) []byte {
	s.mu.Lock()
	out := s.buf
	s.buf = spare[:0]
	s.closed = s.closed || last
	if s.lost > 0 {
		// Every line in out was buffered before the first of these drops,
		// every line of after since.
		out = append(out, s.notice(s.lost)...)
		out = append(out, s.after...)
		s.lost, s.after = 0, s.after[:0]
	}
	s.mu.Unlock()
	if len(out) > 0 {
		_, _ = s.w.Write(out)
	}
	return out[:0]
}

// Close writes what is buffered and stops the writer. It waits at most
// wait for w: a writer stalled on it is abandoned, with what it held.
// Lines written after Close are dropped (and counted).
func (s *logSink) Close(wait time.Duration) {
	s.stopOnce.Do(func() { close(s.stop) })
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-s.done:
	case <-t.C:
	}
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
}
