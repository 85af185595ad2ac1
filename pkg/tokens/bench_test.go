package tokens

import (
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
)

// Benchmark inputs: English prose (the Go spec and memory model with the
// HTML tags removed) and Go code (net/http), 256 KB each, read from the
// local GOROOT.
var (
	benchOnce  sync.Once
	benchTexts map[string]string
)

const benchSize = 256 << 10

func benchInputs(b *testing.B) map[string]string { // b may be nil outside benchmarks
	benchOnce.Do(func() {
		root := runtime.GOROOT()
		tags := regexp.MustCompile(`<[^>]*>`)
		var prose strings.Builder
		for _, f := range []string{"doc/go_spec.html", "doc/go_mem.html"} {
			data, err := os.ReadFile(filepath.Join(root, f))
			if err == nil {
				prose.WriteString(tags.ReplaceAllString(string(data), ""))
			}
		}
		var code strings.Builder
		files, _ := filepath.Glob(filepath.Join(root, "src", "net", "http", "*.go"))
		slices.Sort(files)
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err == nil {
				code.Write(data)
			}
			if code.Len() >= benchSize {
				break
			}
		}
		benchTexts = map[string]string{
			"prose": truncateValid(prose.String(), benchSize),
			"code":  truncateValid(code.String(), benchSize),
		}
	})
	for name, s := range benchTexts {
		if len(s) < benchSize/2 && b != nil {
			b.Skipf("GOROOT gave only %d bytes of %s", len(s), name)
		}
	}
	return benchTexts
}

func truncateValid(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	return strings.ToValidUTF8(s, "")
}

// BenchmarkCount compares this package with tiktoken-go on the same input in
// the same run. "cold" has no cache of any kind (every call tokenizes the
// whole text); "warm" is the default Counter, whose segment cache turns a
// repeated text into one hash.
func BenchmarkCount(b *testing.B) {
	inputs := benchInputs(b)
	for _, enc := range []string{O200K, CL100K} {
		for _, input := range []string{"prose", "code"} {
			text := inputs[input]
			tokens := refCount(b, enc, text)
			run := func(name string, f func() int) {
				b.Run(enc+"/"+input+"/"+name, func(b *testing.B) {
					b.SetBytes(int64(len(text)))
					b.ReportAllocs()
					for b.Loop() {
						if n := f(); n != tokens {
							b.Fatalf("got %d tokens, want %d", n, tokens)
						}
					}
					b.ReportMetric(float64(tokens)*float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
				})
			}
			cold := NewCounter(WithSegmentCache(0), WithPieceCache(0))
			warm := NewCounter()
			ref := reference(b, enc)
			run("tollgate-cold", func() int { n, _ := cold.Count(enc, text); return n })
			run("tollgate-warm", func() int { n, _ := warm.Count(enc, text); return n })
			run("tiktoken-go", func() int { return len(ref.Encode(text, nil, nil)) })
		}
	}
}
