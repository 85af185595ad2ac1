// Package tokens owns token counting for tollgate: the tokenizer of each
// model family, the chat-format overheads that turn a request into the
// prompt_tokens a provider bills, image token rules, and documented estimates
// for families whose tokenizer is not public.
//
// # Tokenizers
//
// ForModel maps a model to a tokenizer name (a catalog entry may override
// it): "o200k_base" (gpt-4o, gpt-4.1, gpt-4.5, o-series, gpt-5), "cl100k_base"
// (gpt-4, gpt-3.5, text-embedding-3), "estimate:anthropic", "estimate:gemini"
// and "estimate" for everything else. Unknown names are an error.
//
// The two BPE encodings count exactly what tiktoken-go's Encode(text, nil,
// nil) returns, which is what OpenAI's tiktoken returns for valid UTF-8.
// The vocabularies come from the files embedded in
// github.com/pkoukk/tiktoken-go-loader, loaded once per process on first use;
// nothing touches the network. Counting does not use tiktoken-go's code path:
// a hand-written pre-tokenizer splits text exactly as the encodings' regexes
// do (pretokenize.go) and a count-only byte-pair merge runs on each piece
// without building token slices. Tests prove identical counts on a 1.19 MB
// corpus and piece-by-piece identical splits; FuzzCount keeps checking.
// Measured on this project's shared 2-core machine in thread CPU time with
// no cache at all (BenchmarkSpeedup, interleaved with tiktoken-go on the same
// 256 KB inputs): 17-20x tiktoken-go on English prose and on o200k code,
// 12x on cl100k code. A Counter's segment cache makes a repeated long text
// (system prompt, tool schema) cost one hash: over 1.8 GB/s (BenchmarkCount,
// "warm"). For text seen for the first time, its piece cache (piececache.go)
// answers the count of a word-sized piece it has met before without the
// rank table, and ASCII words are split by a byte fast path: a new
// ~1,500-token, 15-message conversation costs about 2.2x less CPU than
// without them (BenchmarkCountChatDistinct).
//
// # Chat requests
//
// CountChat follows the OpenAI cookbook "How to count tokens with tiktoken":
// 3 tokens per message, 1 per name, 3 to prime the reply (2 for reasoning
// models), the cookbook's function-definition constants, and image parts by
// the model's tile or patch rule read from the data URL's header. The
// reported prompt_tokens it reproduces, and where each number comes from,
// are in testdata/tokens/chat_golden.json. Tool calls and tool results follow
// a rule calibrated on one usage report; see toolCallOverhead.
//
// # Estimates
//
// Claude's and Gemini's current tokenizers are not public. Their estimates
// are linear in the o200k count, ASCII digits and non-ASCII runes, fitted
// against npm reference tokenizers; the measured errors (about 6% mean on
// mixed text, up to ~50% on short single-script non-Latin lines) are in
// estimate.go.
package tokens
