package use

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const benchProse = "the quick brown fox jumps over the lazy dog while the committee talks about the budget for next year " +
	"and the engineers keep shipping small changes to the gateway measuring latency cost and cache hit rates every day " +
	"so that nobody is surprised by the bill at the end of the month and the users get their answers fast and cheap " +
	"because a cache hit costs nothing and a miss costs a call to the model which takes time and money for everyone"

// textWithTokens returns a prefix of benchProse (repeated as needed) with
// exactly n tokens, and n.
func textWithTokens(tb testing.TB, m *Model, n int) (string, int) {
	words := strings.Fields(strings.Repeat(benchProse+" ", 4))
	best, bestN := "", 0
	for k := 1; k <= len(words); k++ {
		s := strings.Join(words[:k], " ")
		got := len(m.Tokenizer().Encode(s))
		if got > n {
			break
		}
		best, bestN = s, got
	}
	// Top up with " a" ("▁a", one token) where a word boundary overshoots.
	for bestN < n {
		best += " a"
		bestN = len(m.Tokenizer().Encode(best))
	}
	if bestN != n {
		tb.Fatalf("no text with %d tokens (got %d)", n, bestN)
	}
	return best, bestN
}

// BenchmarkEmbed is the latency of one prompt (tokenising included): mean
// wall (ns/op), mean process CPU (cpu-ns/op) and median wall (p50-ns). Run
// with -cpu 1 for the one-core figure.
func BenchmarkEmbed(b *testing.B) {
	m := testModel(b)
	ctx := context.Background()
	for _, n := range []int{10, 20, 30, 77, 128} {
		text, got := textWithTokens(b, m, n)
		b.Run(fmt.Sprintf("%dtok", n), func(b *testing.B) {
			b.ReportAllocs()
			in := []string{text}
			var lat []time.Duration
			cpu0 := processCPU()
			for b.Loop() {
				t0 := time.Now()
				if _, err := m.Embed(ctx, in); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			reportCPU(b, cpu0)
			b.ReportMetric(float64(got), "tokens")
			// The median call: robust to the shared machine preempting a few.
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
		})
	}
}

// BenchmarkEmbedBatch compares 16 10-token prompts embedded one call each
// with the same prompts in one call (one forward pass). ns/op is for all 16.
func BenchmarkEmbedBatch(b *testing.B) {
	m := testModel(b)
	ctx := context.Background()
	words := strings.Fields(benchProse)
	texts := make([]string, 16)
	for i := range texts {
		texts[i] = strings.Join(words[i:i+9], " ")
	}
	b.Run("one-by-one", func(b *testing.B) {
		b.ReportAllocs()
		cpu0 := processCPU()
		for b.Loop() {
			for _, t := range texts {
				if _, err := m.Embed(ctx, []string{t}); err != nil {
					b.Fatal(err)
				}
			}
		}
		reportCPU(b, cpu0)
	})
	b.Run("batched", func(b *testing.B) {
		b.ReportAllocs()
		cpu0 := processCPU()
		for b.Loop() {
			if _, err := m.Embed(ctx, texts); err != nil {
				b.Fatal(err)
			}
		}
		reportCPU(b, cpu0)
	})
}

// reportCPU adds the process CPU time per op since cpu0 (0 where unknown).
func reportCPU(b *testing.B, cpu0 time.Duration) {
	if d := processCPU() - cpu0; d > 0 {
		b.ReportMetric(float64(d.Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}

func BenchmarkTokenize(b *testing.B) {
	m := testModel(b)
	text, _ := textWithTokens(b, m, 30)
	var ids []int32
	b.ReportAllocs()
	for b.Loop() {
		ids = m.Tokenizer().AppendEncode(ids[:0], text)
	}
}

// BenchmarkEmbedParallel runs 10-token prompts from 8 goroutines per
// GOMAXPROCS, with concurrent calls coalesced into batched passes and
// without. Run with -cpu 2 (the machine's cores); ns/op is wall time per
// prompt at saturation, cpu-ns/op the CPU per prompt.
func BenchmarkEmbedParallel(b *testing.B) {
	m := testModel(b)
	words := strings.Fields(benchProse)
	for _, mode := range []string{"coalesced", "separate"} {
		b.Run(mode, func(b *testing.B) {
			m.co.off = mode == "separate"
			defer func() { m.co.off = false }()
			b.ReportAllocs()
			b.SetParallelism(8)
			var next atomic.Int64
			cpu0 := processCPU()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := int(next.Add(1)) % (len(words) - 9)
					if _, err := m.Embed(context.Background(), []string{strings.Join(words[i:i+9], " ")}); err != nil {
						b.Error(err)
						return
					}
				}
			})
			reportCPU(b, cpu0)
		})
	}
}

// BenchmarkLoad is the start-up cost of Load (read, verify, unpack fp16,
// pack panels). Run alone (-run XXX -bench Load -benchtime 1x) it also
// reports the process's resident memory with one model loaded and warm.
func BenchmarkLoad(b *testing.B) {
	dir := testFetch(b)
	var m *Model
	for b.Loop() {
		m = nil
		var err error
		if m, err = Load(dir); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := m.Embed(context.Background(), []string{"warm up the workspace"}); err != nil {
		b.Fatal(err)
	}
	runtime.GC()
	debug.FreeOSMemory()
	if rss := residentBytes(); rss > 0 {
		b.ReportMetric(float64(rss)/(1<<20), "RSS-MB")
	}
	runtime.KeepAlive(m)
}

// residentBytes reads VmRSS from /proc (0 where there is none).
func residentBytes() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb int64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb)
			return kb << 10
		}
	}
	return 0
}
