package semcache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/tollgate/tollgate/internal/safe"
)

// gateEmbedder records each call's texts and holds it until released; a
// call holding panicOn then panics.
type gateEmbedder struct {
	mu      sync.Mutex
	calls   [][]string
	release chan error
	panicOn string
}

func (g *gateEmbedder) Name() string { return "gate" }
func (g *gateEmbedder) Dim() int     { return 2 }

func (g *gateEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	g.mu.Lock()
	g.calls = append(g.calls, append([]string(nil), texts...))
	g.mu.Unlock()
	if err := <-g.release; err != nil {
		return nil, err
	}
	if g.panicOn != "" && slices.Contains(texts, g.panicOn) {
		panic("injected embedder panic")
	}
	out := make([][]float32, len(texts))
	for i, t := range texts {
		out[i] = []float32{float32(len(t)), 1}
	}
	return out, nil
}

func TestBatchedSharesRequests(t *testing.T) {
	tests := []struct {
		name      string
		max       int
		fail      error
		wantCalls string
	}{
		{"the first call goes alone, the queued ones together", 8, nil, "[[a] [bb ccc dddd]]"},
		{"batches are bounded", 2, nil, "[[a] [bb ccc] [dddd]]"},
		{"an upstream error reaches every caller of its batch", 8, errors.New("upstream down"), "[[a] [bb ccc dddd]]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				g := &gateEmbedder{release: make(chan error, 4)}
				b := Batched(g, tt.max, nil)
				type res struct {
					text string
					v    [][]float32
					err  error
				}
				results := make(chan res, 4)
				embed := func(text string) {
					v, err := b.Embed(context.Background(), []string{text})
					results <- res{text, v, err}
				}
				go embed("a")
				synctest.Wait() // "a" is in flight
				for _, text := range []string{"bb", "ccc", "dddd"} {
					go embed(text)
					synctest.Wait()
				}
				for range 4 { // enough for any number of calls; how many there were is checked below
					g.release <- tt.fail
				}
				for range 4 {
					r := <-results
					if tt.fail != nil {
						if r.err == nil {
							t.Fatalf("%s: no error", r.text)
						}
						continue
					}
					if r.err != nil || len(r.v) != 1 || r.v[0][0] != float32(len(r.text)) {
						t.Fatalf("%s: %v %v", r.text, r.v, r.err)
					}
				}
				if got := fmt.Sprint(g.calls); got != tt.wantCalls {
					t.Fatalf("calls %s, want %s", got, tt.wantCalls)
				}
			})
		})
	}
}

func TestBatchedCallerLeaves(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := &gateEmbedder{release: make(chan error)}
		b := Batched(g, 8, nil)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			_, err := b.Embed(ctx, []string{"x"})
			done <- err
		}()
		synctest.Wait()
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("err %v", err)
		}
		g.release <- nil // the abandoned call ends; the batcher is idle again
		synctest.Wait()
		go func() { g.release <- nil }()
		if v, err := b.Embed(context.Background(), []string{"yy"}); err != nil || v[0][0] != 2 {
			t.Fatalf("%v %v", v, err)
		}
	})
}

// TestBatchedPanic: the embedder panics on a batch. Every caller of that
// batch gets an error (none is left waiting), the caller in flight before
// and the calls after are served, and the supervisor saw the panic without
// marking the batcher failed.
func TestBatchedPanic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := &gateEmbedder{release: make(chan error, 8), panicOn: "boom"}
		sup := safe.New(safe.Options{Logger: slog.New(slog.DiscardHandler)})
		b := Batched(g, 8, sup)
		errs := make(chan error, 3)
		embed := func(text string) {
			_, err := b.Embed(context.Background(), []string{text})
			errs <- err
		}
		go embed("a")
		synctest.Wait() // "a" is in flight; the next two queue as one batch
		go embed("boom")
		synctest.Wait()
		go embed("cc")
		synctest.Wait()
		g.release <- nil // "a"
		if err := <-errs; err != nil {
			t.Fatalf("a: %v", err)
		}
		g.release <- nil // [boom cc]: panics
		for range 2 {
			if err := <-errs; err == nil || !strings.Contains(err.Error(), "panicked") {
				t.Fatalf("a caller of the panicked batch got %v, want an error", err)
			}
		}
		synctest.Wait()
		g.release <- nil
		if v, err := b.Embed(context.Background(), []string{"ddd"}); err != nil || v[0][0] != 3 {
			t.Fatalf("after the panic: %v %v", v, err)
		}
		if got := fmt.Sprint(g.calls); got != "[[a] [boom cc] [ddd]]" {
			t.Fatalf("calls %s", got)
		}
		if sup.Panics() != 1 || sup.Err() != nil {
			t.Fatalf("supervisor: %d panics, err %v; want 1 and none", sup.Panics(), sup.Err())
		}
	})
}
