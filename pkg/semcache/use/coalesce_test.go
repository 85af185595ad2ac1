package use

import (
	"context"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/safe"
)

// TestEmbedPanicFailsItsCallers makes passes panic (onPass, on the text
// "boom"): a pass served by the coalescer for queued calls, and a pass run
// by its own caller. Every caller of a panicked pass gets an error, none
// waits for ever, the slot is given back (later calls are embedded), and
// the supervisor saw both panics without marking anything failed.
func TestEmbedPanicFailsItsCallers(t *testing.T) {
	sup := safe.New(safe.Options{Logger: slog.New(slog.DiscardHandler)})
	m, err := Load(testFetch(t), WithSupervisor(sup))
	if err != nil {
		t.Fatal(err)
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1)) // one slot: the second call queues
	held, release := make(chan struct{}), make(chan struct{})
	m.co.onPass = func(texts []string) {
		if slices.Contains(texts, "hold") {
			held <- struct{}{}
			<-release
		}
		if slices.Contains(texts, "boom") {
			panic("injected pass panic")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	embed := func(text string) error {
		_, err := m.Embed(ctx, []string{text})
		return err
	}
	errs := make(chan error, 3)
	go func() { errs <- embed("hold") }()
	<-held // the one slot is taken
	for _, text := range []string{"boom", "fine"} {
		go func() { errs <- embed(text) }()
	}
	for queued := 0; queued < 2; time.Sleep(time.Millisecond) {
		if ctx.Err() != nil {
			t.Fatal("the two calls never queued")
		}
		m.co.mu.Lock()
		queued = len(m.co.queue)
		m.co.mu.Unlock()
	}
	close(release)
	if err := <-errs; err != nil {
		t.Fatalf("the call holding the slot: %v", err)
	}
	// The two queued calls share one served pass, which panics.
	for range 2 {
		if err := <-errs; err == nil || !strings.Contains(err.Error(), "panicked") {
			t.Fatalf("a caller of the panicked pass got %v, want an error", err)
		}
	}
	// A caller's own pass panics: an error, and the slot is free again.
	if err := embed("boom"); err == nil || !strings.Contains(err.Error(), "panicked") {
		t.Fatalf("own pass: %v, want an error", err)
	}
	if v, err := m.Embed(ctx, []string{"fine"}); err != nil || len(v) != 1 || len(v[0]) != Dim {
		t.Fatalf("after the panics: %v", err)
	}
	if sup.Panics() != 2 || sup.Err() != nil {
		t.Fatalf("supervisor: %d panics, err %v; want 2 and none", sup.Panics(), sup.Err())
	}
}
