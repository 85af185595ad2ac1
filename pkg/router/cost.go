package router

import (
	"math"
	"math/bits"

	"github.com/tollgate/tollgate/pkg/llm"
)

// Cost is what a response cost, in integer micro-dollars.
type Cost struct {
	Micros llm.Micros
	// Estimated is set when the cost comes from tokens tollgate counted or
	// expects (no usage reported: a stream without usage, an error midway,
	// a reservation) rather than from usage the provider reported.
	Estimated bool
	// Unpriced is set when the model's input or output price is unknown:
	// Micros is then 0 and means nothing. Unknown is not free.
	Unpriced bool
}

// Cost is the cost of a response from the usage the provider reported, in
// OpenAI's shape (providers translate other wire formats into it):
//
//   - prompt_tokens includes every prompt token. Of them,
//     prompt_tokens_details.cached_tokens (cache reads) cost CachedInputPrice
//     and prompt_tokens_details.cache_write_tokens cost CacheWritePrice, each
//     falling back to InputPrice when the model has no separate price; the
//     rest cost InputPrice.
//   - completion_tokens includes reasoning tokens
//     (completion_tokens_details.reasoning_tokens). They cost OutputPrice,
//     or ReasoningPrice when the model has a separate one.
//
// Translators must report usage that way. OpenAI (and OpenAI-compatible
// upstreams: Groq, DeepSeek, Mistral) already does, non-streamed and in the
// final stream chunk. Anthropic's input_tokens excludes cache reads and
// writes, so its translator reports prompt_tokens = input_tokens +
// cache_read_input_tokens + cache_creation_input_tokens, cached_tokens =
// cache_read_input_tokens, cache_write_tokens = cache_creation_input_tokens
// and completion_tokens = output_tokens (thinking is part of it). Gemini's
// promptTokenCount already includes cachedContentTokenCount, while
// thoughtsTokenCount is beside candidatesTokenCount, so its translator
// reports completion_tokens = candidatesTokenCount + thoughtsTokenCount and
// reasoning_tokens = thoughtsTokenCount.
//
// Breakdowns larger than their totals are clamped, so a confused upstream
// can never make a part count twice or a cost negative.
//
// A nil u means the provider reported nothing; the result is then an
// Estimated zero: call EstimateCost with the tokens tollgate counted instead.
func (m *Model) Cost(u *llm.Usage) Cost {
	if u == nil {
		return Cost{Estimated: true, Unpriced: !m.PriceKnown()}
	}
	if !m.PriceKnown() {
		return Cost{Unpriced: true}
	}
	prompt := max(u.PromptTokens, 0)
	var cached, written int
	if d := u.PromptTokensDetails; d != nil {
		cached = clamp(d.CachedTokens, prompt)
		written = clamp(d.CacheWriteTokens, prompt-cached)
	}
	completion := max(u.CompletionTokens, 0)
	var reasoning int
	if d := u.CompletionTokensDetails; d != nil && m.ReasoningPrice.Known() {
		reasoning = clamp(d.ReasoningTokens, completion)
	}

	var s sum
	s.add(prompt-cached-written, m.InputPrice)
	s.add(cached, orPrice(m.CachedInputPrice, m.InputPrice))
	s.add(written, orPrice(m.CacheWritePrice, m.InputPrice))
	s.add(completion-reasoning, m.OutputPrice)
	s.add(reasoning, m.ReasoningPrice)
	return Cost{Micros: s.micros()}
}

// EstimateCost is the cost of promptTokens at InputPrice plus
// completionTokens at OutputPrice, marked Estimated. It prices a request
// before it is sent (planning, budget reservations: pass the output limit as
// completionTokens) and settles a response whose provider reported no usage
// (pass the tokens tollgate counted). It assumes no prompt-cache discount,
// so it never under-estimates a response without usage. Any counts are
// safe: the sum is exact in 128 bits and saturates at math.MaxInt64
// micro-dollars, so an absurd output limit prices as more than any budget
// rather than wrapping into a small one.
func (m *Model) EstimateCost(promptTokens, completionTokens int) Cost {
	if !m.PriceKnown() {
		return Cost{Estimated: true, Unpriced: true}
	}
	var s sum
	s.add(promptTokens, m.InputPrice)
	s.add(completionTokens, m.OutputPrice)
	return Cost{Micros: s.micros(), Estimated: true}
}

func clamp(n, hi int) int { return min(max(n, 0), max(hi, 0)) }

// SaturatingMul is a × b for token counts: negative counts count as 0 and
// a product past math.MaxInt is math.MaxInt, so output limit × choices
// can never wrap into a small or negative number of tokens to price.
func SaturatingMul(a, b int) int {
	if a <= 0 || b <= 0 {
		return 0
	}
	if a > math.MaxInt/b {
		return math.MaxInt
	}
	return a * b
}

// SaturatingAdd is a + b for token counts, negative counts counting as 0,
// saturating at math.MaxInt.
func SaturatingAdd(a, b int) int {
	a, b = max(a, 0), max(b, 0)
	if a > math.MaxInt-b {
		return math.MaxInt
	}
	return a + b
}

func orPrice(p, fallback Price) Price {
	if p.Known() {
		return p
	}
	return fallback
}

// sum accumulates tokens × price (micro-dollars per 1M tokens) exactly in
// 128 bits, so neither an absurd token count from an upstream nor rounding
// of each part can skew the total.
type sum struct {
	hi, lo   uint64
	overflow bool
}

func (s *sum) add(tokens int, p Price) {
	if tokens <= 0 || p <= 0 {
		return
	}
	hi, lo := bits.Mul64(uint64(tokens), uint64(p))
	var carry uint64
	s.lo, carry = bits.Add64(s.lo, lo, 0)
	s.hi, carry = bits.Add64(s.hi, hi, carry)
	s.overflow = s.overflow || carry != 0
}

// micros is ceil(total / 1e6), saturating at the largest Micros. Rounding up
// once, on the total, means tollgate never under-charges a budget and
// over-charges by less than one micro-dollar per response.
func (s *sum) micros() llm.Micros {
	const perMillion = 1_000_000
	if s.overflow || s.hi >= perMillion { // the quotient would not fit 64 bits
		return math.MaxInt64
	}
	q, r := bits.Div64(s.hi, s.lo, perMillion)
	if q >= math.MaxInt64 {
		return math.MaxInt64
	}
	if r != 0 {
		q++
	}
	return llm.Micros(q)
}
