package router

import (
	"math"
	"math/big"
	"testing"

	"github.com/tollgate/tollgate/pkg/llm"
)

func TestSaturatingArithmetic(t *testing.T) {
	tests := []struct {
		name     string
		a, b     int
		mul, add int
	}{
		{"small", 3, 4, 12, 7},
		{"zero", 0, math.MaxInt, 0, math.MaxInt},
		{"negative counts as zero", -5, 7, 0, 7},
		{"2^62 × 2 saturates", 1 << 62, 2, math.MaxInt, 1<<62 + 2},
		{"2^62 + 2^62 saturates", 1 << 62, 1 << 62, math.MaxInt, math.MaxInt},
		{"max × max", math.MaxInt, math.MaxInt, math.MaxInt, math.MaxInt},
		{"just fits", math.MaxInt / 2, 2, math.MaxInt - 1, math.MaxInt/2 + 2},
		{"add just fits", math.MaxInt - 2, 2, math.MaxInt, math.MaxInt},
		{"min int", math.MinInt, math.MinInt, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := SaturatingMul(tt.a, tt.b); got != tt.mul {
				t.Errorf("SaturatingMul(%d, %d) = %d, want %d", tt.a, tt.b, got, tt.mul)
			}
			if got := SaturatingAdd(tt.a, tt.b); got != tt.add {
				t.Errorf("SaturatingAdd(%d, %d) = %d, want %d", tt.a, tt.b, got, tt.add)
			}
		})
	}
}

// TestEstimateCostNeverWraps: the reservation of max_tokens = 2^62 with
// n = 2 on a model with no output limit must price above any budget, not
// wrap into a small or negative amount.
func TestEstimateCostNeverWraps(t *testing.T) {
	const u = 1_000_000 // $1 per 1M tokens
	model := func(in, out Price) *Model { return &Model{InputPrice: in, OutputPrice: out} }
	tests := []struct {
		name               string
		model              *Model
		prompt, completion int
		want               llm.Micros
	}{
		// 2^62 × 2 saturates to MaxInt tokens, priced exactly: no wrap.
		{"2^62 tokens, n = 2, at 1 µ$/1M", model(1, 1), 10, SaturatingMul(1<<62, 2), 9_223_372_036_855},
		{"2^62 tokens, n = 2, $0.15/$0.60", model(0.15*u, 0.60*u), 10, SaturatingMul(1<<62, 2), 5_534_023_222_112_865_486},
		{"2^62 tokens, n = 2, $2/$8", model(2*u, 8*u), 10, SaturatingMul(1<<62, 2), math.MaxInt64},
		{"2^62 tokens at the highest plausible price", model(maxPrice, maxPrice), 1 << 62, 1 << 62, math.MaxInt64},
		{"max tokens at the largest price", model(math.MaxInt64, math.MaxInt64), math.MaxInt, math.MaxInt, math.MaxInt64},
		{"one token at the largest price", model(0, math.MaxInt64), 0, 1, llm.Micros((math.MaxInt64 + 999_999) / 1_000_000)},
		{"2^62 tokens at $1/1M is exact", model(0, u), 0, 1 << 62, 1 << 62},
		{"negative counts are free", model(u, u), -1, math.MinInt, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.model.EstimateCost(tt.prompt, tt.completion)
			if got.Micros != tt.want || !got.Estimated || got.Unpriced {
				t.Errorf("EstimateCost(%d, %d) = %+v, want %d micros", tt.prompt, tt.completion, got, tt.want)
			}
		})
	}
}

// FuzzCostSaturates: for any token counts and prices, EstimateCost (and
// Cost of the same usage) is ceil(Σ tokens × price / 1e6) computed
// exactly, saturated at math.MaxInt64: never negative, never wrapped.
func FuzzCostSaturates(f *testing.F) {
	f.Add(10, 1<<62, int64(150_000), int64(600_000))
	f.Add(math.MaxInt, math.MaxInt, int64(math.MaxInt64), int64(math.MaxInt64))
	f.Add(-1, 1, int64(1), int64(0))
	f.Add(999_999, 1, int64(1), int64(1))
	f.Fuzz(func(t *testing.T, prompt, completion int, in, out int64) {
		in, out = max(in, 0), max(out, 0)
		m := &Model{InputPrice: Price(in), OutputPrice: Price(out),
			CachedInputPrice: PriceUnknown, CacheWritePrice: PriceUnknown, ReasoningPrice: PriceUnknown}
		want := oracleCost(prompt, completion, in, out)
		if got := m.EstimateCost(prompt, completion); got.Micros != want {
			t.Fatalf("EstimateCost(%d, %d) at %d/%d = %d, want %d", prompt, completion, in, out, got.Micros, want)
		}
		if got := m.Cost(&llm.Usage{PromptTokens: prompt, CompletionTokens: completion}); got.Micros != want {
			t.Fatalf("Cost(%d, %d) at %d/%d = %d, want %d", prompt, completion, in, out, got.Micros, want)
		}
	})
}

func oracleCost(prompt, completion int, in, out int64) llm.Micros {
	total := new(big.Int)
	for _, part := range [][2]int64{{int64(max(prompt, 0)), in}, {int64(max(completion, 0)), out}} {
		total.Add(total, new(big.Int).Mul(big.NewInt(part[0]), big.NewInt(part[1])))
	}
	q, r := new(big.Int).QuoRem(total, big.NewInt(1_000_000), new(big.Int))
	if r.Sign() != 0 {
		q.Add(q, big.NewInt(1))
	}
	if !q.IsInt64() {
		return math.MaxInt64
	}
	return llm.Micros(q.Int64())
}

// TestPlanNeverWraps: absurd max_tokens and n neither wrap the window
// check into a fit nor the cost estimate into one a budget affords.
func TestPlanNeverWraps(t *testing.T) {
	windowed := testModel("windowed", 1, 1, func(m *Model) { m.MaxOutputTokens = 0 })
	unlimited := testModel("unlimited", 1, 1, func(m *Model) { m.MaxOutputTokens, m.MaxInputTokens = 0, 0 })
	c, err := NewCatalog([]Model{windowed, unlimited})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := NewRoutes(c, []Route{
		{Name: "w", Candidates: []string{"windowed"}},
		{Name: "u", Candidates: []string{"unlimited"}, ExpectedOutput: 1 << 62},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		route  string
		needs  Needs
		budget llm.Micros
		status int
		msg    string
	}{
		{"window: prompt + max int output does not wrap into a fit", "w",
			Needs{OutputTokens: math.MaxInt, PromptTokens: prompt(10)}, 0, 400,
			"no model of route w can serve this request: windowed: context window 100000 < 9223372036854775807 tokens"},
		{"cost: 2^62 output × n = 2 does not wrap under a $0.001 budget", "u",
			Needs{OutputTokens: 1 << 62, Choices: 2, PromptTokens: prompt(10)}, 1000, 402,
			"no model of route u can serve this request: unlimited: estimated cost $9223372.036855 > budget $0.001000"},
		{"cost: max int output and choices", "u",
			Needs{OutputTokens: math.MaxInt, Choices: math.MaxInt, PromptTokens: prompt(10)}, 1000, 402,
			"no model of route u can serve this request: unlimited: estimated cost $9223372.036855 > budget $0.001000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := rs.Lookup(tt.route)
			p, err := r.Plan(PlanInput{Needs: tt.needs, MaxCost: tt.budget})
			if err == nil {
				t.Fatalf("planned %+v, want an error", p.Steps)
			}
			e, ok := llm.AsError(err)
			if !ok || e.Status != tt.status || e.Message != tt.msg {
				t.Fatalf("error %v (status %d), want %d %q", err, e.Status, tt.status, tt.msg)
			}
		})
	}
}
