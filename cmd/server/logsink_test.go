package main

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

type countingWriter struct {
	mu     sync.Mutex
	b      strings.Builder
	writes int
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes++
	return c.b.Write(p)
}

func (c *countingWriter) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.b.String()
}

// stalledWriter blocks every Write until released, as stderr does when it
// is a pipe nobody reads; then it keeps what it was given.
type stalledWriter struct {
	release chan struct{}
	once    sync.Once
	countingWriter
}

func newStalledWriter() *stalledWriter { return &stalledWriter{release: make(chan struct{})} }

func (s *stalledWriter) Write(p []byte) (int, error) {
	<-s.release
	return s.countingWriter.Write(p)
}

func (s *stalledWriter) unblock() { s.once.Do(func() { close(s.release) }) }

func TestLogSinkBatchesAndLosesNothing(t *testing.T) {
	w := &countingWriter{}
	s := newLogSink(w, time.Hour, 1<<20) // no timed flush during the test
	s.Start(nil)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				fmt.Fprintf(s, "line g=%d i=%d\n", g, i)
			}
		}(g)
	}
	wg.Wait()
	s.Close(time.Minute) // a hang guard: the writer is not stalled
	lines := strings.Split(strings.TrimSpace(w.String()), "\n")
	if len(lines) != 800 || s.Dropped() != 0 {
		t.Fatalf("got %d lines, %d dropped; want 800, 0", len(lines), s.Dropped())
	}
	next := map[string]int{}
	for _, l := range lines {
		var g, i int
		if _, err := fmt.Sscanf(l, "line g=%d i=%d", &g, &i); err != nil {
			t.Fatalf("torn line %q", l)
		}
		if k := strconv.Itoa(g); i != next[k] {
			t.Fatalf("goroutine %d: line %d after %d", g, i, next[k]-1)
		}
		next[strconv.Itoa(g)]++
	}
	if w.writes >= 800/4 {
		t.Fatalf("%d writes for 800 lines: not batched", w.writes)
	}
}

// TestLogSinkDropsWholeLines drives the buffer by hand (no writer
// goroutine): flush stands for the writer taking the buffer once stderr
// accepts writes again.
func TestLogSinkDropsWholeLines(t *testing.T) {
	line := func(c byte, n int) string { return strings.Repeat(string(c), n-1) + "\n" }
	tests := []struct {
		name    string
		max     int
		writes  []string // "flush" flushes
		want    string
		dropped int64
	}{
		{"room for every line", 2000,
			[]string{line('a', 100), line('b', 100), "flush"},
			line('a', 100) + line('b', 100), 0},
		{"full buffer: this line dropped, the next kept after the notice", 300,
			[]string{line('a', 200), line('b', 200), line('c', 10), "flush", line('d', 10), "flush"},
			line('a', 200) + "log: dropped 1 lines\n" + line('c', 10) + line('d', 10), 1},
		{"a line larger than the buffer is dropped, the line after it follows the notice", 1000,
			[]string{line('a', 100), line('b', 5000), line('c', 10), "flush"},
			line('a', 100) + "log: dropped 1 lines\n" + line('c', 10), 1},
		{"drops in two stalls: one notice each", 200,
			[]string{line('a', 100), line('b', 1000), "flush", line('c', 100), line('d', 1000), line('e', 10), "flush"},
			line('a', 100) + "log: dropped 1 lines\n" + line('c', 100) + "log: dropped 1 lines\n" + line('e', 10), 2},
		{"lines after a drop are kept up to afterBytes, the newest", 200,
			[]string{line('a', 100), line('b', 1000), line('c', afterBytes-10), line('d', 100), "flush"},
			line('a', 100) + "log: dropped 2 lines\n" + line('d', 100), 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &countingWriter{}
			s := newLogSink(w, time.Hour, tt.max)
			var spare []byte
			for _, l := range tt.writes {
				if l == "flush" {
					spare = s.flush(spare, false)
					continue
				}
				if n, err := s.Write([]byte(l)); n != len(l) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
				if len(s.buf) > tt.max { // no writer goroutine: nothing else touches buf
					t.Fatalf("buffer holds %d bytes, bound %d", len(s.buf), tt.max)
				}
			}
			if got := w.String(); got != tt.want {
				t.Fatalf("written:\n%q\nwant\n%q", got, tt.want)
			}
			if s.Dropped() != tt.dropped {
				t.Fatalf("Dropped() = %d, want %d", s.Dropped(), tt.dropped)
			}
		})
	}
}

func TestLogSinkDropsAfterClose(t *testing.T) {
	w := &countingWriter{}
	s := newLogSink(w, time.Hour, 1<<20)
	s.Start(nil)
	fmt.Fprintln(s, "before")
	s.Close(time.Minute)
	fmt.Fprintln(s, "after")
	if got := w.String(); got != "before\n" || s.Dropped() != 1 {
		t.Fatalf("written %q, %d dropped; want only the line before Close, 1 dropped", got, s.Dropped())
	}
}

var droppedRE = regexp.MustCompile(`^log: dropped (\d+) lines$`)

// TestLogSinkNeverWaitsForAStalledWriter: with the writer stuck in a write
// to stderr, 1,000 Writes return; what could not be buffered is dropped
// whole and counted, and once stderr takes writes again the count is
// written where the lines went missing. Nothing else is lost.
func TestLogSinkNeverWaitsForAStalledWriter(t *testing.T) {
	w := newStalledWriter()
	defer w.unblock()
	s := newLogSink(w, time.Millisecond, 4096)
	s.Start(nil)
	const n = 1000
	returned := make(chan struct{})
	go func() {
		defer close(returned)
		for i := 0; i < n; i++ {
			fmt.Fprintf(s, "line %04d\n", i)
		}
	}()
	select {
	case <-returned:
	case <-time.After(30 * time.Second): // a hang guard
		t.Fatal("Write waited for a stalled writer")
	}
	if s.Dropped() == 0 {
		t.Fatal("no line dropped, yet the writer is stalled and 1,000 lines do not fit 4 KiB")
	}
	w.unblock()
	s.Close(time.Minute)
	var got, noticed int64
	last := -1
	for _, l := range strings.Split(strings.TrimSuffix(w.String(), "\n"), "\n") {
		if m := droppedRE.FindStringSubmatch(l); m != nil {
			k, _ := strconv.ParseInt(m[1], 10, 64)
			noticed += k
			continue
		}
		var i int
		if _, err := fmt.Sscanf(l, "line %d", &i); err != nil || i <= last {
			t.Fatalf("line %q after line %d", l, last)
		}
		last = i
		got++
	}
	if noticed != s.Dropped() || got+noticed != n {
		t.Fatalf("%d lines written, %d noticed as dropped, Dropped() = %d: want %d in all", got, noticed, s.Dropped(), n)
	}
	t.Logf("stalled stderr: %d of %d lines kept, %d dropped", got, n, noticed)
}
