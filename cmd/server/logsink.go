package main

import (
	"io"
	"sync"
	"time"
)

// logSink batches log lines in memory and writes them every interval (or
// when maxBuffered is reached), so a request never waits on a write
// syscall for its access-log line. Lines are never dropped; at most one
// interval of lines is lost if the process is killed without a chance to
// Close.
type logSink struct {
	w           io.Writer
	maxBuffered int

	mu  sync.Mutex // guards buf and serialises writes to w
	buf []byte

	stop chan struct{}
	done chan struct{}
}

func newLogSink(w io.Writer, interval time.Duration, maxBuffered int) *logSink {
	s := &logSink{w: w, maxBuffered: maxBuffered, buf: make([]byte, 0, maxBuffered), stop: make(chan struct{}), done: make(chan struct{})}
	go s.loop(interval)
	return s
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf = append(s.buf, p...)
	if len(s.buf) >= s.maxBuffered {
		return len(p), s.flushLocked()
	}
	return len(p), nil
}

func (s *logSink) loop(interval time.Duration) {
	defer close(s.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			s.mu.Lock()
			_ = s.flushLocked()
			s.mu.Unlock()
		case <-s.stop:
			return
		}
	}
}

func (s *logSink) flushLocked() error {
	if len(s.buf) == 0 {
		return nil
	}
	_, err := s.w.Write(s.buf)
	s.buf = s.buf[:0]
	return err
}

// Close flushes what is buffered and stops the background writer.
func (s *logSink) Close() error {
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.flushLocked()
}
