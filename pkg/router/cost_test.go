package router

import (
	"bufio"
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/pkg/llm"
)

// TestCostGolden prices real wire payloads (testdata/catalog/usage) with the
// built-in catalog. The usage is read the way the provider translators must
// report it (see Model.Cost); each expected cost is worked out by hand from
// the built-in prices, in micro-dollars per 1M tokens (µ$/M).
func TestCostGolden(t *testing.T) {
	cat := builtinCatalog(t)
	tests := []struct {
		name    string
		file    string
		wire    func(t *testing.T, data []byte) *llm.Usage
		model   string
		counted [2]int // prompt, completion tokens tollgate counted, used when no usage was reported
		want    Cost
	}{
		{
			// gpt-4o-mini: in 150000, out 600000 µ$/M.
			// 1200×150000 + 300×600000 = 180e6 + 180e6 = 360e6 → 360 µ$.
			name: "openai non-streamed", file: "openai_chat.json", wire: openAIJSON, model: "gpt-4o-mini",
			want: Cost{Micros: 360},
		},
		{
			// Final chunk usage: 17×150000 + 9×600000 = 2.55e6 + 5.4e6 = 7.95e6 → 7.95 → ceil 8 µ$.
			name: "openai streamed final chunk", file: "openai_stream.sse", wire: openAISSE, model: "gpt-4o-mini",
			want: Cost{Micros: 8},
		},
		{
			// gpt-4o: in 2500000, cached 1250000, out 10000000 µ$/M.
			// (2006-1920)×2500000 + 1920×1250000 + 300×10000000
			// = 215e6 + 2400e6 + 3000e6 = 5615e6 → 5615 µ$ (5985 without the cache discount).
			name: "openai cached prompt tokens", file: "openai_chat_cached.json", wire: openAIJSON, model: "gpt-4o",
			want: Cost{Micros: 5615},
		},
		{
			// o4-mini: in 1100000, out 4400000 µ$/M; the 1024 reasoning tokens are
			// part of the 1186 completion tokens, billed once at the output price.
			// 75×1100000 + 1186×4400000 = 82.5e6 + 5218.4e6 = 5300.9e6 → ceil 5301 µ$.
			name: "openai reasoning tokens", file: "openai_chat_reasoning.json", wire: openAIJSON, model: "o4-mini",
			want: Cost{Micros: 5301},
		},
		{
			// gpt-5-mini: in 250000, cached 25000, out 2000000 µ$/M.
			// (3000-2048)×250000 + 2048×25000 + 500×2000000
			// = 238e6 + 51.2e6 + 1000e6 = 1289.2e6 → ceil 1290 µ$.
			name: "openai streamed cached and reasoning", file: "openai_stream_cached_reasoning.sse", wire: openAISSE, model: "gpt-5-mini",
			want: Cost{Micros: 1290},
		},
		{
			// sim-small: in 100000, out 400000 µ$/M. No usage in the stream
			// (no stream_options.include_usage): counted 1000 prompt, 250 completion.
			// 1000×100000 + 250×400000 = 100e6 + 100e6 = 200e6 → 200 µ$, estimated.
			name: "openai stream without usage", file: "openai_stream_no_usage.sse", wire: openAISSE, model: "sim-small",
			counted: [2]int{1000, 250},
			want:    Cost{Micros: 200, Estimated: true},
		},
		{
			// text-embedding-3-small: in 20000 µ$/M. 8×20000 = 160000 → 0.16 → ceil 1 µ$.
			name: "openai embeddings", file: "openai_embeddings.json", wire: openAIJSON, model: "text-embedding-3-small",
			want: Cost{Micros: 1},
		},
		{
			// claude-sonnet-4-5: in 3000000, cache read 300000, cache write 3750000, out 15000000 µ$/M.
			// input_tokens 50 excludes the 10000 read and 2000 written:
			// 50×3000000 + 10000×300000 + 2000×3750000 + 400×15000000
			// = 150e6 + 3000e6 + 7500e6 + 6000e6 = 16650e6 → 16650 µ$.
			name: "anthropic non-streamed with cache read and write", file: "anthropic_message.json", wire: anthropicJSON, model: "claude-sonnet-4-5",
			want: Cost{Micros: 16650},
		},
		{
			// claude-haiku-4-5: in 1000000, cache write 1250000, out 5000000 µ$/M.
			// message_start: input 25, cache write 1500; message_delta: output 220 (cumulative).
			// 25×1000000 + 1500×1250000 + 220×5000000 = 25e6 + 1875e6 + 1100e6 = 3000e6 → 3000 µ$.
			name: "anthropic streamed with cache write", file: "anthropic_stream.sse", wire: anthropicSSE, model: "claude-haiku-4-5",
			want: Cost{Micros: 3000},
		},
		{
			// The stream broke before message_delta: no final usage. Counted 1200
			// prompt and 6 completion tokens on claude-sonnet-4-5:
			// 1200×3000000 + 6×15000000 = 3600e6 + 90e6 = 3690e6 → 3690 µ$, estimated.
			name: "anthropic stream error midway", file: "anthropic_stream_error.sse", wire: anthropicSSE, model: "claude-sonnet-4-5",
			counted: [2]int{1200, 6},
			want:    Cost{Micros: 3690, Estimated: true},
		},
		{
			// gemini-2.5-flash: in 300000, cached 30000, out 2500000 µ$/M.
			// promptTokenCount 5000 includes the 4000 cached; thoughts (800) are
			// beside candidates (200), so completion = 1000.
			// 1000×300000 + 4000×30000 + 1000×2500000 = 300e6 + 120e6 + 2500e6 = 2920e6 → 2920 µ$.
			name: "gemini cached and thinking tokens", file: "gemini_generate.json", wire: geminiJSON, model: "gemini-2.5-flash",
			want: Cost{Micros: 2920},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "catalog", "usage", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			m, ok := cat.Lookup(tt.model)
			if !ok {
				t.Fatalf("model %q not in the built-in catalog", tt.model)
			}
			u := tt.wire(t, data)
			var got Cost
			if u != nil {
				got = m.Cost(u)
			} else {
				got = m.EstimateCost(tt.counted[0], tt.counted[1])
			}
			if got != tt.want {
				t.Errorf("cost = %+v, want %+v (usage %+v)", got, tt.want, u)
			}
		})
	}
}

func TestCost(t *testing.T) {
	const u = usd
	base := Model{
		Name: "m", Provider: "p", Mode: ModeChat,
		InputPrice: 2 * u, OutputPrice: 8 * u,
		CachedInputPrice: PriceUnknown, CacheWritePrice: PriceUnknown, ReasoningPrice: PriceUnknown,
	}
	with := func(f func(*Model)) *Model { m := base; f(&m); return &m }
	usage := func(prompt, cached, written, completion, reasoning int) *llm.Usage {
		return &llm.Usage{
			PromptTokens: prompt, CompletionTokens: completion, TotalTokens: prompt + completion,
			PromptTokensDetails:     &llm.PromptTokensDetails{CachedTokens: cached, CacheWriteTokens: written},
			CompletionTokensDetails: &llm.CompletionTokensDetails{ReasoningTokens: reasoning},
		}
	}
	tests := []struct {
		name  string
		model *Model
		usage *llm.Usage
		want  Cost
	}{
		{
			name: "zero usage is a known zero", model: &base, usage: &llm.Usage{},
			want: Cost{Micros: 0},
		},
		{
			name: "no details", model: &base, usage: &llm.Usage{PromptTokens: 1000, CompletionTokens: 100},
			// 1000×2e6 + 100×8e6 = 2e9 + 0.8e9 = 2.8e9 → 2800.
			want: Cost{Micros: 2800},
		},
		{
			name: "cached without a cached price costs the input price", model: &base, usage: usage(1000, 600, 0, 100, 0),
			want: Cost{Micros: 2800},
		},
		{
			name:  "cache write without a write price costs the input price",
			model: with(func(m *Model) { m.CachedInputPrice = 0.2 * u }), usage: usage(1000, 0, 400, 100, 0),
			want: Cost{Micros: 2800},
		},
		{
			name: "cached price and write price",
			model: with(func(m *Model) {
				m.CachedInputPrice = 0.2 * u
				m.CacheWritePrice = 2.5 * u
			}),
			usage: usage(1000, 500, 300, 100, 0),
			// 200×2e6 + 500×0.2e6 + 300×2.5e6 + 100×8e6 = 400e6 + 100e6 + 750e6 + 800e6 = 2050e6.
			want: Cost{Micros: 2050},
		},
		{
			name:  "free cache reads are free, not unknown",
			model: with(func(m *Model) { m.CachedInputPrice = 0 }), usage: usage(1000, 1000, 0, 0, 0),
			want: Cost{Micros: 0},
		},
		{
			name:  "separate reasoning price",
			model: with(func(m *Model) { m.ReasoningPrice = 12 * u }), usage: usage(0, 0, 0, 1000, 600),
			// 400×8e6 + 600×12e6 = 3200e6 + 7200e6 = 10400e6.
			want: Cost{Micros: 10400},
		},
		{
			name: "reasoning without a separate price is output", model: &base, usage: usage(0, 0, 0, 1000, 600),
			want: Cost{Micros: 8000},
		},
		{
			name: "cached beyond prompt is clamped", model: with(func(m *Model) { m.CachedInputPrice = 0 }),
			usage: usage(100, 5000, 7000, 0, 0),
			want:  Cost{Micros: 0},
		},
		{
			name: "reasoning beyond completion is clamped", model: with(func(m *Model) { m.ReasoningPrice = 0 }),
			usage: usage(0, 0, 0, 100, 900),
			want:  Cost{Micros: 0},
		},
		{
			name: "negative counts count as zero", model: &base, usage: usage(-5, -3, -1, -7, -2),
			want: Cost{Micros: 0},
		},
		{
			name: "one token rounds up to a micro-dollar", model: &base, usage: &llm.Usage{PromptTokens: 1},
			want: Cost{Micros: 2},
		},
		{
			name: "rounding happens once, on the total", model: with(func(m *Model) { m.InputPrice, m.OutputPrice = 0.3*u, 0.3*u }),
			usage: &llm.Usage{PromptTokens: 1, CompletionTokens: 1},
			// 0.3 + 0.3 = 0.6 → 1, not ceil(0.3)+ceil(0.3) = 2.
			want: Cost{Micros: 1},
		},
		{
			name: "absurd usage saturates", model: with(func(m *Model) { m.OutputPrice = maxPrice }),
			usage: &llm.Usage{PromptTokens: math.MaxInt64, CompletionTokens: math.MaxInt64},
			want:  Cost{Micros: math.MaxInt64},
		},
		{
			name: "unknown price", model: with(func(m *Model) { m.OutputPrice = PriceUnknown }), usage: usage(10, 0, 0, 10, 0),
			want: Cost{Unpriced: true},
		},
		{
			name: "no usage reported", model: &base, usage: nil,
			want: Cost{Estimated: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.model.Cost(tt.usage); got != tt.want {
				t.Errorf("Cost = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestEstimateCost(t *testing.T) {
	cat := builtinCatalog(t)
	small, _ := cat.Lookup("sim-small")
	large, _ := cat.Lookup("sim-large")
	tests := []struct {
		name               string
		model              *Model
		prompt, completion int
		want               Cost
	}{
		// 1000×100000 + 500×400000 = 100e6 + 200e6 = 300e6 → 300.
		{"sim-small", small, 1000, 500, Cost{Micros: 300, Estimated: true}},
		// 1000×1000000 + 500×4000000 = 1e9 + 2e9 = 3e9 → 3000: ten times sim-small.
		{"sim-large", large, 1000, 500, Cost{Micros: 3000, Estimated: true}},
		{"nothing", small, 0, 0, Cost{Micros: 0, Estimated: true}},
		{"unknown price", &Model{InputPrice: PriceUnknown, OutputPrice: 1}, 10, 10, Cost{Estimated: true, Unpriced: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.model.EstimateCost(tt.prompt, tt.completion); got != tt.want {
				t.Errorf("EstimateCost(%d, %d) = %+v, want %+v", tt.prompt, tt.completion, got, tt.want)
			}
		})
	}
}

func TestCostDoesNotAllocate(t *testing.T) {
	m, _ := builtinCatalog(t).Lookup("claude-sonnet-4-5")
	u := &llm.Usage{PromptTokens: 12050, CompletionTokens: 400, PromptTokensDetails: &llm.PromptTokensDetails{CachedTokens: 10000, CacheWriteTokens: 2000}}
	if n := testing.AllocsPerRun(100, func() { _ = m.Cost(u) }); n != 0 {
		t.Errorf("Cost allocates %v times", n)
	}
}

func BenchmarkCost(b *testing.B) {
	c, err := NewCatalog(Builtin())
	if err != nil {
		b.Fatal(err)
	}
	m, _ := c.Lookup("claude-sonnet-4-5")
	u := &llm.Usage{PromptTokens: 12050, CompletionTokens: 400, PromptTokensDetails: &llm.PromptTokensDetails{CachedTokens: 10000, CacheWriteTokens: 2000}}
	b.ReportAllocs()
	for b.Loop() {
		_ = m.Cost(u)
	}
}

func builtinCatalog(t *testing.T) *Catalog {
	t.Helper()
	c, err := NewCatalog(Builtin())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The readers below turn each provider's wire usage into OpenAI-shaped
// llm.Usage exactly as Model.Cost documents the translators must. They
// return nil when the payload carries no usage.

func openAIJSON(t *testing.T, data []byte) *llm.Usage {
	t.Helper()
	var body struct {
		Usage *llm.Usage `json:"usage"`
	}
	if err := json.Unmarshal(data, &body); err != nil {
		t.Fatal(err)
	}
	return body.Usage
}

// openAISSE takes usage from the stream's final chunk (the one chunk with
// usage when stream_options.include_usage is set).
func openAISSE(t *testing.T, data []byte) *llm.Usage {
	t.Helper()
	var u *llm.Usage
	for _, ev := range sseEvents(data) {
		if ev.data == "[DONE]" {
			break
		}
		var c llm.ChatChunk
		if err := json.Unmarshal([]byte(ev.data), &c); err != nil {
			t.Fatal(err)
		}
		if c.Usage != nil {
			u = c.Usage
		}
	}
	return u
}

type anthropicUsage struct {
	InputTokens              int `json:"input_tokens"`
	CacheCreationInputTokens int `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int `json:"cache_read_input_tokens"`
	OutputTokens             int `json:"output_tokens"`
}

func (a anthropicUsage) toOpenAI() *llm.Usage {
	prompt := a.InputTokens + a.CacheReadInputTokens + a.CacheCreationInputTokens
	return &llm.Usage{
		PromptTokens:     prompt,
		CompletionTokens: a.OutputTokens,
		TotalTokens:      prompt + a.OutputTokens,
		PromptTokensDetails: &llm.PromptTokensDetails{
			CachedTokens:     a.CacheReadInputTokens,
			CacheWriteTokens: a.CacheCreationInputTokens,
		},
	}
}

func anthropicJSON(t *testing.T, data []byte) *llm.Usage {
	t.Helper()
	var body struct {
		Usage *anthropicUsage `json:"usage"`
	}
	if err := json.Unmarshal(data, &body); err != nil {
		t.Fatal(err)
	}
	if body.Usage == nil {
		return nil
	}
	return body.Usage.toOpenAI()
}

// anthropicSSE takes input and cache counts from message_start and the
// cumulative output count from message_delta. A stream that ends without
// message_delta (an error midway) has no trustworthy usage.
func anthropicSSE(t *testing.T, data []byte) *llm.Usage {
	t.Helper()
	var start anthropicUsage
	final := false
	for _, ev := range sseEvents(data) {
		var e struct {
			Type    string `json:"type"`
			Message struct {
				Usage anthropicUsage `json:"usage"`
			} `json:"message"`
			Usage *anthropicUsage `json:"usage"`
		}
		if err := json.Unmarshal([]byte(ev.data), &e); err != nil {
			t.Fatal(err)
		}
		switch e.Type {
		case "message_start":
			start = e.Message.Usage
		case "message_delta":
			if e.Usage != nil {
				start.OutputTokens = e.Usage.OutputTokens
				final = true
			}
		}
	}
	if !final {
		return nil
	}
	return start.toOpenAI()
}

func geminiJSON(t *testing.T, data []byte) *llm.Usage {
	t.Helper()
	var body struct {
		UsageMetadata *struct {
			PromptTokenCount        int `json:"promptTokenCount"`
			CachedContentTokenCount int `json:"cachedContentTokenCount"`
			CandidatesTokenCount    int `json:"candidatesTokenCount"`
			ThoughtsTokenCount      int `json:"thoughtsTokenCount"`
		} `json:"usageMetadata"`
	}
	if err := json.Unmarshal(data, &body); err != nil {
		t.Fatal(err)
	}
	g := body.UsageMetadata
	if g == nil {
		return nil
	}
	completion := g.CandidatesTokenCount + g.ThoughtsTokenCount
	return &llm.Usage{
		PromptTokens:            g.PromptTokenCount,
		CompletionTokens:        completion,
		TotalTokens:             g.PromptTokenCount + completion,
		PromptTokensDetails:     &llm.PromptTokensDetails{CachedTokens: g.CachedContentTokenCount},
		CompletionTokensDetails: &llm.CompletionTokensDetails{ReasoningTokens: g.ThoughtsTokenCount},
	}
}

type sseEvent struct{ event, data string }

func sseEvents(data []byte) []sseEvent {
	var evs []sseEvent
	var cur sseEvent
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur.data != "" {
				evs = append(evs, cur)
			}
			cur = sseEvent{}
		case strings.HasPrefix(line, "event:"):
			cur.event = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
		case strings.HasPrefix(line, "data:"):
			cur.data = strings.TrimSpace(strings.TrimPrefix(line, "data:"))
		}
	}
	if cur.data != "" {
		evs = append(evs, cur)
	}
	return evs
}
