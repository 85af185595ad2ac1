package main

import (
	"fmt"
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

func TestLogSinkBatchesAndLosesNothing(t *testing.T) {
	w := &countingWriter{}
	s := newLogSink(w, time.Hour, 1024) // no timed flush during the test
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
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(w.b.String()), "\n")
	if len(lines) != 800 {
		t.Fatalf("got %d lines, want 800", len(lines))
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "line g=") {
			t.Fatalf("torn line %q", l)
		}
	}
	if w.writes >= 800/4 {
		t.Fatalf("%d writes for 800 lines: not batched", w.writes)
	}
}
