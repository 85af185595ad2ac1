package tokens

import "strings"

// ForModel returns the default tokenizer name for a model, by family. A
// catalog entry may override it. Provider prefixes ("openai/gpt-4o",
// "openrouter/anthropic/claude-3.5-sonnet") are ignored.
//
//	gpt-4o, chatgpt-4o, gpt-4.1, gpt-4.5, gpt-5, o1, o3, o4, gpt-oss, codex → o200k_base
//	gpt-4 (other), gpt-3.5, text-embedding-3, text-embedding-ada-002    → cl100k_base
//	claude                                                              → estimate:anthropic
//	gemini, gemma                                                       → estimate:gemini
//	anything else                                                       → estimate (o200k-based)
func ForModel(model string) string {
	switch f := family(model); {
	case hasAnyPrefix(f, "gpt-4o", "chatgpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "gpt-oss", "codex", "computer-use"):
		return O200K
	case hasAnyPrefix(f, "gpt-4", "gpt-3.5", "gpt-35", "text-embedding-3", "text-embedding-ada-002"):
		return CL100K
	case strings.HasPrefix(f, "claude"):
		return EstimateAnthropic
	case hasAnyPrefix(f, "gemini", "gemma"):
		return EstimateGemini
	}
	return Estimate
}

// family normalises a model name: lower case, without provider prefixes.
func family(model string) string {
	m := strings.ToLower(strings.TrimSpace(model))
	if i := strings.LastIndexByte(m, '/'); i >= 0 {
		m = m[i+1:]
	}
	return m
}

func hasAnyPrefix(s string, prefixes ...string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
