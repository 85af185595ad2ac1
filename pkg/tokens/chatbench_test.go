//go:build linux

package tokens

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/pkg/llm"
)

// benchConversations builds n distinct conversations the way the gateway
// sees them on its miss path (benchmarks/load's "long" and "short" kinds):
// every request is new, so the segment cache finds at most the system
// prompt, and the text is varied prose drawn from the benchmark corpus (the
// Go spec: a wider vocabulary than everyday chat, so a per-piece cache is
// not flattered). long: a system prompt and about 15 alternating turns,
// about 1,500 o200k tokens; short: one user question of about 12 words.
func benchConversations(b *testing.B, long bool, n int) []*llm.ChatRequest {
	prose := benchInputs(b)["prose"]
	var sentences []string
	var cur []string
	for w := range strings.FieldsSeq(prose) {
		cur = append(cur, w)
		if strings.HasSuffix(w, ".") || strings.HasSuffix(w, "?") || strings.HasSuffix(w, ":") {
			if len(cur) >= 4 && len(cur) <= 60 {
				sentences = append(sentences, strings.Join(cur, " "))
			}
			cur = cur[:0]
		}
	}
	if len(sentences) < 100 {
		b.Skipf("only %d sentences in the corpus", len(sentences))
	}
	systems := []string{
		"You are a helpful assistant. Answer the user's questions clearly and concisely, and say so when you are not sure.",
		"You are a patient tutor for a programming language. Explain with short examples and check the student's understanding.",
		"You are a support agent. Be polite, cite the relevant section, and never invent rules that are not in the specification.",
	}
	r := rand.New(rand.NewPCG(1, 2))
	words := func(want int) string {
		var parts []string
		for got := 0; got < want; {
			s := sentences[r.IntN(len(sentences))]
			parts = append(parts, s)
			got += len(strings.Fields(s))
		}
		return strings.Join(parts, " ")
	}
	reqs := make([]*llm.ChatRequest, n)
	for i := range reqs {
		req := &llm.ChatRequest{Model: "gpt-4o"}
		add := func(role, text string) {
			req.Messages = append(req.Messages, llm.Message{Role: role, Content: llm.TextContent(text)})
		}
		if !long {
			ws := strings.Fields(words(12))
			add("user", strings.Join(ws[:min(12, len(ws))], " ")+fmt.Sprintf(" (%d)?", i))
			reqs[i] = req
			continue
		}
		add("system", systems[r.IntN(len(systems))])
		for t := range 14 {
			role := "user"
			if t%2 == 1 {
				role = "assistant"
			}
			add(role, words(50+r.IntN(35)))
		}
		reqs[i] = req
	}
	return reqs
}

// BenchmarkCountChatDistinct counts a new conversation per call with the
// default Counter, as the gateway does on every cache miss. The pool of 1,024
// requests cycles, so pieces are seen again (as across the gateway's
// requests) but a message text only after 1,023 others.
func BenchmarkCountChatDistinct(b *testing.B) {
	for _, tc := range []struct {
		name string
		long bool
	}{{"long", true}, {"short", false}} {
		b.Run(tc.name, func(b *testing.B) {
			reqs := benchConversations(b, tc.long, 1024)
			c, uncached := NewCounter(), NewCounter(WithSegmentCache(0), WithPieceCache(0))
			want := make([]int, len(reqs))
			total := 0
			for i, req := range reqs {
				want[i], _ = uncached.CountChat("", "gpt-4o", req)
				total += want[i]
			}
			c.CountChat("", "gpt-4o", reqs[0]) // the piece cache is made on first use
			b.ReportAllocs()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			i := 0
			cpu0 := threadCPU()
			for b.Loop() {
				if n, _ := c.CountChat("", "gpt-4o", reqs[i]); n != want[i] {
					b.Fatalf("request %d: got %d, want %d", i, n, want[i])
				}
				i++
				if i == len(reqs) {
					i = 0
				}
			}
			// Thread CPU per call: unlike ns/op, it does not count the
			// time spent waiting for a core on a shared machine.
			b.ReportMetric(float64(threadCPU()-cpu0)/float64(b.N), "cpu-ns/op")
			b.ReportMetric(float64(total)/float64(len(reqs)), "tokens/req")
		})
	}
}
