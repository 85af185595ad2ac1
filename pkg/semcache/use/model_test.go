package use

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestParity compares the Go forward pass with the TF.js reference vectors,
// one sentence per call and all sentences in one batched call.
func TestParity(t *testing.T) {
	m := testModel(t)
	ref := loadReference(t)
	if len(ref.Cases) < 100 {
		t.Fatalf("reference has %d sentences, want at least 100", len(ref.Cases))
	}
	texts := make([]string, len(ref.Cases))
	for i, c := range ref.Cases {
		texts[i] = c.Text
	}
	batched, err := m.Embed(context.Background(), texts)
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"one-by-one", "batched"} {
		minCos, sum := 1.0, 0.0
		worst := ""
		for i, c := range ref.Cases {
			var got []float32
			if mode == "batched" {
				got = batched[i]
			} else {
				v, err := m.Embed(context.Background(), []string{c.Text})
				if err != nil {
					t.Fatal(err)
				}
				got = v[0]
			}
			cos := cosine(got, c.vector(t))
			sum += cos
			if cos < minCos || math.IsNaN(cos) {
				minCos, worst = cos, c.Text
			}
		}
		mean := sum / float64(len(ref.Cases))
		t.Logf("%s: %d sentences, min cosine %.6f (%q), mean %.6f", mode, len(ref.Cases), minCos, short(worst), mean)
		if !(minCos >= 0.999) {
			t.Errorf("%s: min cosine %.6f < 0.999 for %q", mode, minCos, short(worst))
		}
	}
}

func short(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}

func TestTokenizerMatchesReference(t *testing.T) {
	m := testModel(t)
	ref := loadReference(t)
	cases := append(slices.Clone(ref.Cases), ref.Tokens...)
	for _, c := range cases {
		t.Run(short(c.Text), func(t *testing.T) {
			got := m.Tokenizer().Encode(c.Text)
			if c.IDs == nil {
				c.IDs = []int32{}
			}
			if got == nil {
				got = []int32{}
			}
			if !slices.Equal(got, c.IDs) {
				t.Errorf("Encode(%q)\n got %v\nwant %v", c.Text, got, c.IDs)
			}
			limited := m.Tokenizer().AppendEncodeLimit(nil, c.Text, MaxTokens)
			if want := c.IDs[:min(len(c.IDs), MaxTokens)]; !slices.Equal(limited, want) {
				t.Errorf("AppendEncodeLimit(%q)\n got %v\nwant %v", c.Text, limited, want)
			}
		})
	}
}

func TestEmbedProperties(t *testing.T) {
	m := testModel(t)
	ctx := context.Background()
	long := strings.Repeat("the cat sat on the mat ", 40)
	tests := []struct {
		name string
		a, b string
		want func(cos float64) bool
		desc string
	}{
		{"identical", "What is the capital of France?", "What is the capital of France?", func(c float64) bool { return c > 0.99999 }, "> 0.99999"},
		{"paraphrase", "How do I reset my password?", "I forgot my password, how can I reset it?", func(c float64) bool { return c > 0.7 }, "> 0.7"},
		{"unrelated", "How do I reset my password?", "Give me a recipe for pancakes.", func(c float64) bool { return c < 0.5 }, "< 0.5"},
		{"cut at 128 tokens", long + "alpha beta", long + "gamma delta", func(c float64) bool { return c > 0.99999 }, "> 0.99999 (both cut)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := m.Embed(ctx, []string{tt.a, tt.b})
			if err != nil {
				t.Fatal(err)
			}
			if c := cosine(v[0], v[1]); !tt.want(c) {
				t.Errorf("cosine %.4f, want %s", c, tt.desc)
			}
		})
	}
	t.Run("unit length and dim", func(t *testing.T) {
		v, err := m.Embed(ctx, []string{"", " ", "hello", "😀"})
		if err != nil {
			t.Fatal(err)
		}
		for i, x := range v {
			if len(x) != m.Dim() {
				t.Fatalf("vector %d has %d dims", i, len(x))
			}
			if n := math.Sqrt(float64(dot(x, x))); math.Abs(n-1) > 1e-4 {
				t.Errorf("vector %d has norm %v", i, n)
			}
		}
	})
	t.Run("many empty texts", func(t *testing.T) {
		texts := make([]string, 600)
		v, err := m.Embed(ctx, texts)
		if err != nil || len(v) != len(texts) {
			t.Fatalf("got %d vectors, %v", len(v), err)
		}
	})
	t.Run("canceled context", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := m.Embed(cctx, []string{"x"}); err == nil {
			t.Error("want an error for a canceled context")
		}
	})
}

// embedder is the shape pkg/semcache consumes; both embedders must fit it.
type embedder interface {
	Embed(ctx context.Context, texts []string) ([][]float32, error)
	Dim() int
	Name() string
}

var (
	_ embedder = (*Model)(nil)
	_ embedder = (*Hashed)(nil)
)

// TestEmbedConcurrent runs Embed from several goroutines (under -race it
// checks the pooled workspaces and the coalescer's hand-offs) and compares
// with sequential results. With GOMAXPROCS 1 every call beyond the first
// queues and is served in a coalesced pass.
func TestEmbedConcurrent(t *testing.T) {
	m := testModel(t)
	texts := []string{"What is the capital of France?", "HTTP 404 Not Found", "", "naïve café", "Set a timer for 10 minutes."}
	want, err := m.Embed(context.Background(), texts)
	if err != nil {
		t.Fatal(err)
	}
	for _, procs := range []int{1, 2, 4} {
		t.Run(fmt.Sprintf("GOMAXPROCS=%d", procs), func(t *testing.T) {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
			const workers = 6
			errs := make(chan error, workers)
			for g := range workers {
				go func() {
					for i := range 4 {
						k := (g + i) % len(texts)
						batch := []string{texts[k], texts[(k+1)%len(texts)]}
						got, err := m.Embed(context.Background(), batch)
						if err == nil && (cosine(got[0], want[k]) < 0.99999 || cosine(got[1], want[(k+1)%len(texts)]) < 0.99999) {
							err = fmt.Errorf("texts %d, %d: concurrent result differs", k, (k+1)%len(texts))
						}
						if err != nil {
							errs <- err
							return
						}
					}
					errs <- nil
				}()
			}
			for range workers {
				if err := <-errs; err != nil {
					t.Error(err)
				}
			}
			// A serving goroutine gives its slot back just after it wakes
			// its callers, so wait for that (bounded) before checking.
			var active, queued int
			for range 500 {
				m.co.mu.Lock()
				active, queued = m.co.active, len(m.co.queue)
				m.co.mu.Unlock()
				if active == 0 && queued == 0 {
					break
				}
				time.Sleep(2 * time.Millisecond)
			}
			if active != 0 || queued != 0 {
				t.Errorf("after all calls: %d passes active, %d calls queued", active, queued)
			}
		})
	}
}

// TestModelMemory logs what a loaded model keeps on the heap (no threshold:
// it is a figure for the report, and other tests share the process).
func TestModelMemory(t *testing.T) {
	testFetch(t)
	var before, after runtime.MemStats
	runtime.GC() // twice: the first only moves sync.Pool contents aside
	runtime.GC()
	runtime.ReadMemStats(&before)
	m, err := Load(testCacheDir(t))
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	info, _ := os.Stat(filepath.Join(testCacheDir(t), FileName))
	t.Logf("model heap %.1f MB, converted file %.1f MB, kernel %s",
		float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), float64(info.Size())/(1<<20), kernelName)
	runtime.KeepAlive(m)
}

// TestKernelSetsAgree embeds the reference sentences with the model's
// matrices built for each int8 kernel set this CPU runs: the vectors must be
// identical (the kernels compute the same exact sums, scaled the same way).
func TestKernelSetsAgree(t *testing.T) {
	dir := testFetch(t)
	ref := loadReference(t)
	texts := make([]string, len(ref.Cases))
	for i, c := range ref.Cases {
		texts[i] = c.Text
	}
	var first [][]float32
	for i, k := range quantKernels() {
		t.Run(k.name, func(t *testing.T) {
			restore := k.use()
			m, err := Load(dir)
			if err != nil {
				restore()
				t.Fatal(err)
			}
			got, err := m.Embed(context.Background(), texts)
			restore() // after the pass: the pair kernels are chosen at run time
			if err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				first = got
				return
			}
			for s := range got {
				if !slices.Equal(got[s], first[s]) {
					t.Fatalf("%q: vector differs from %s's (cosine %.9f)", short(texts[s]), quantKernels()[0].name, cosine(got[s], first[s]))
				}
			}
		})
	}
}
