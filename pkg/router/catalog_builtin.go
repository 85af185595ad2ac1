package router

// usd is one dollar per million tokens as a Price. Go evaluates constant
// expressions exactly, so 0.075 * usd is the integer 75000.
const usd = 1_000_000

// Builtin returns the built-in catalog: current popular models with their
// list prices and windows, plus tollgate's simulated models.
//
// Catalog ids are the names clients send. A model that one company both
// makes and serves has its bare name (gpt-4o, claude-sonnet-4-5,
// deepseek-chat); an open-weight model served by a third-party host is
// "host/model" (groq/llama-3.3-70b-versatile), because the same weights are
// sold by many hosts at different prices. Both follow LiteLLM's keys, so an
// imported community price list lands on the same entries.
//
// OpenAI, Anthropic, Google and DeepSeek figures are LiteLLM's community list
// (prices as of 2026-07); Mistral, Groq and the text-embedding-3 models are
// not in that list and come from the providers' price pages. Mistral does
// not publish output limits, so those are unknown (0).
//
// Each call returns a fresh slice the caller may modify.
func Builtin() []Model {
	return []Model{
		// OpenAI.
		chat("gpt-4o", "openai", 2.50*usd, 10*usd, 1.25*usd, 128_000, 16_384, 3, caps{tools, vision, schema}),
		chat("gpt-4o-mini", "openai", 0.15*usd, 0.60*usd, 0.075*usd, 128_000, 16_384, 2, caps{tools, vision, schema}),
		chat("gpt-4.1", "openai", 2*usd, 8*usd, 0.50*usd, 1_047_576, 32_768, 3, caps{tools, vision, schema}),
		chat("gpt-4.1-mini", "openai", 0.40*usd, 1.60*usd, 0.10*usd, 1_047_576, 32_768, 2, caps{tools, vision, schema}),
		chat("gpt-4.1-nano", "openai", 0.10*usd, 0.40*usd, 0.025*usd, 1_047_576, 32_768, 1, caps{tools, vision, schema}),
		chat("o3", "openai", 2*usd, 8*usd, 0.50*usd, 200_000, 100_000, 4, caps{tools, vision, schema, reasoning}),
		chat("o4-mini", "openai", 1.10*usd, 4.40*usd, 0.275*usd, 200_000, 100_000, 3, caps{tools, vision, schema, reasoning}),
		chat("gpt-5", "openai", 1.25*usd, 10*usd, 0.125*usd, 272_000, 128_000, 4, caps{tools, vision, schema, reasoning}),
		chat("gpt-5-mini", "openai", 0.25*usd, 2*usd, 0.025*usd, 272_000, 128_000, 3, caps{tools, vision, schema, reasoning}),
		chat("gpt-5-nano", "openai", 0.05*usd, 0.40*usd, 0.005*usd, 272_000, 128_000, 2, caps{tools, vision, schema, reasoning}),
		chat("gpt-5.4", "openai", 2.50*usd, 15*usd, 0.25*usd, 1_050_000, 128_000, 4, caps{tools, vision, schema, reasoning}),
		chat("gpt-5.4-mini", "openai", 0.75*usd, 4.50*usd, 0.075*usd, 400_000, 128_000, 3, caps{tools, vision, schema, reasoning}),
		chat("gpt-5.5", "openai", 5*usd, 30*usd, 0.50*usd, 1_050_000, 128_000, 5, caps{tools, vision, schema, reasoning}),
		embedding("text-embedding-3-small", "openai", 0.02*usd, 8_191),
		embedding("text-embedding-3-large", "openai", 0.13*usd, 8_191),

		// Anthropic: cache writes (5-minute TTL) cost 1.25x input, reads 0.1x.
		withCacheWrite(chat("claude-haiku-4-5", "anthropic", 1*usd, 5*usd, 0.10*usd, 200_000, 64_000, 2, caps{tools, vision, schema, reasoning}), 1.25*usd),
		withCacheWrite(chat("claude-sonnet-4-5", "anthropic", 3*usd, 15*usd, 0.30*usd, 200_000, 64_000, 4, caps{tools, vision, schema, reasoning}), 3.75*usd),
		withCacheWrite(chat("claude-sonnet-4-6", "anthropic", 3*usd, 15*usd, 0.30*usd, 1_000_000, 64_000, 4, caps{tools, vision, schema, reasoning}), 3.75*usd),
		withCacheWrite(chat("claude-opus-4-1", "anthropic", 15*usd, 75*usd, 1.50*usd, 200_000, 32_000, 5, caps{tools, vision, schema, reasoning}), 18.75*usd),
		withCacheWrite(chat("claude-opus-4-5", "anthropic", 5*usd, 25*usd, 0.50*usd, 200_000, 64_000, 5, caps{tools, vision, schema, reasoning}), 6.25*usd),
		withCacheWrite(chat("claude-opus-4-7", "anthropic", 5*usd, 25*usd, 0.50*usd, 1_000_000, 128_000, 5, caps{tools, vision, schema, reasoning}), 6.25*usd),

		// Google (Gemini API). Prices for prompts up to 200k tokens.
		chat("gemini-2.5-flash-lite", "gemini", 0.10*usd, 0.40*usd, 0.01*usd, 1_048_576, 65_535, 1, caps{tools, vision, schema, reasoning}),
		chat("gemini-2.5-flash", "gemini", 0.30*usd, 2.50*usd, 0.03*usd, 1_048_576, 65_535, 3, caps{tools, vision, schema, reasoning}),
		chat("gemini-2.5-pro", "gemini", 1.25*usd, 10*usd, 0.125*usd, 1_048_576, 65_535, 4, caps{tools, vision, schema, reasoning}),

		// Mistral.
		chat("mistral-small-latest", "mistral", 0.10*usd, 0.30*usd, PriceUnknown, 128_000, 0, 2, caps{tools, vision, schema}),
		chat("mistral-medium-latest", "mistral", 0.40*usd, 2*usd, PriceUnknown, 128_000, 0, 3, caps{tools, vision, schema}),
		chat("mistral-large-latest", "mistral", 0.50*usd, 1.50*usd, PriceUnknown, 256_000, 0, 3, caps{tools, vision, schema}),

		// DeepSeek: deepseek-reasoner takes no tools.
		chat("deepseek-chat", "deepseek", 0.28*usd, 0.42*usd, 0.028*usd, 131_072, 8_192, 3, caps{tools, schema}),
		chat("deepseek-reasoner", "deepseek", 0.28*usd, 0.42*usd, 0.028*usd, 131_072, 65_536, 3, caps{schema, reasoning}),

		// Open-weight models hosted by Groq.
		chat("groq/llama-3.1-8b-instant", "groq", 0.05*usd, 0.08*usd, PriceUnknown, 131_072, 131_072, 1, caps{tools}),
		chat("groq/llama-3.3-70b-versatile", "groq", 0.59*usd, 0.79*usd, PriceUnknown, 131_072, 32_768, 2, caps{tools}),
		chat("groq/openai/gpt-oss-20b", "groq", 0.075*usd, 0.30*usd, 0.0375*usd, 131_072, 65_536, 2, caps{tools, schema, reasoning}),
		chat("groq/openai/gpt-oss-120b", "groq", 0.15*usd, 0.60*usd, 0.075*usd, 131_072, 65_536, 3, caps{tools, schema, reasoning}),
		chat("groq/qwen/qwen3-32b", "groq", 0.29*usd, 0.59*usd, PriceUnknown, 131_072, 40_960, 2, caps{tools, reasoning}),

		// Simulated models (provider "sim"): costs, budgets and routing can be
		// exercised without any provider account. sim-large costs 10x
		// sim-small and adds vision, reasoning and a 4x larger window.
		withTokenizer(chat("sim-small", "sim", 0.10*usd, 0.40*usd, 0.05*usd, 32_768, 8_192, 1, caps{tools, schema}), TokenizerO200k),
		withTokenizer(withCacheWrite(chat("sim-large", "sim", 1*usd, 4*usd, 0.50*usd, 131_072, 16_384, 4, caps{tools, vision, schema, reasoning}), 1.25*usd), TokenizerO200k),
		withTokenizer(embedding("sim-embed", "sim", 0.02*usd, 8_192), TokenizerO200k),
	}
}

type capability int

const (
	tools capability = iota
	vision
	schema
	reasoning
)

type caps []capability

func chat(name, provider string, in, out, cachedIn Price, maxIn, maxOut, tier int, c caps) Model {
	m := Model{
		Name:             name,
		Provider:         provider,
		UpstreamModel:    upstreamName(name, provider),
		Mode:             ModeChat,
		InputPrice:       in,
		OutputPrice:      out,
		CachedInputPrice: cachedIn,
		CacheWritePrice:  PriceUnknown,
		ReasoningPrice:   PriceUnknown,
		MaxInputTokens:   maxIn,
		MaxOutputTokens:  maxOut,
		Streaming:        true,
		Tier:             tier,
	}
	for _, x := range c {
		switch x {
		case tools:
			m.Tools = true
		case vision:
			m.Vision = true
		case schema:
			m.JSONSchema = true
		case reasoning:
			m.Reasoning = true
		}
	}
	m.Tokenizer = DefaultTokenizer(m.UpstreamModel)
	return m
}

func embedding(name, provider string, in Price, maxIn int) Model {
	m := Model{
		Name:             name,
		Provider:         provider,
		UpstreamModel:    upstreamName(name, provider),
		Mode:             ModeEmbedding,
		InputPrice:       in,
		OutputPrice:      0, // embeddings produce no tokens
		CachedInputPrice: PriceUnknown,
		CacheWritePrice:  PriceUnknown,
		ReasoningPrice:   PriceUnknown,
		MaxInputTokens:   maxIn,
		Tier:             1,
	}
	m.Tokenizer = DefaultTokenizer(m.UpstreamModel)
	return m
}

func withCacheWrite(m Model, p Price) Model { m.CacheWritePrice = p; return m }
func withTokenizer(m Model, t string) Model { m.Tokenizer = t; return m }
