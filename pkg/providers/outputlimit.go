package providers

import (
	"strconv"
	"strings"

	"github.com/tollgate/tollgate/pkg/llm"
)

// The two spellings of an OpenAI-compatible output cap.
const (
	fieldMaxTokens           = "max_tokens"            // the legacy one, which every compatible server reads
	fieldMaxCompletionTokens = "max_completion_tokens" // OpenAI's and Azure's; their reasoning models refuse max_tokens
)

// OutputLimit is the output cap the upstream is sent: the client's
// (max_completion_tokens, else max_tokens) lowered to MaxTokens, so an
// honest upstream cannot bill past what the gateway reserved; 0 when
// neither is set.
func (r *Request) OutputLimit() int {
	limit := r.Chat.OutputLimit()
	if r.MaxTokens > 0 && (limit <= 0 || r.MaxTokens < limit) {
		limit = r.MaxTokens
	}
	return max(limit, 0)
}

// defaultMaxTokensField is the spelling an OpenAI-compatible upstream is
// sent when the client sent none (or both) and no MaxTokensField is
// configured: max_completion_tokens for OpenAI itself and Azure OpenAI
// (whose reasoning models reject max_tokens), max_tokens for every other
// server (vLLM, Ollama, Groq, Mistral, DeepSeek, Together, OpenRouter,
// Gemini's compatibility layer...), which all read it and not all read the
// newer name.
func defaultMaxTokensField(baseURL string, azure bool) string {
	if azure {
		return fieldMaxCompletionTokens
	}
	host := hostOf(baseURL)
	const azureHost = ".openai.azure.com"
	if strings.EqualFold(host, "api.openai.com") ||
		len(host) > len(azureHost) && strings.EqualFold(host[len(host)-len(azureHost):], azureHost) {
		return fieldMaxCompletionTokens
	}
	return fieldMaxTokens
}

// hostOf is the host of an upstream's base URL, without allocating:
// NewOpenAI checked that baseURL is an http(s) URL with a host.
func hostOf(baseURL string) string {
	host := baseURL
	if i := strings.Index(host, "://"); i >= 0 {
		host = host[i+3:]
	}
	if i := strings.IndexAny(host, "/?#"); i >= 0 {
		host = host[:i]
	}
	if i := strings.LastIndexByte(host, '@'); i >= 0 {
		host = host[i+1:]
	}
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.HasSuffix(host, "]") {
		host = host[:i]
	}
	return host
}

// patchOutputLimit sets the output cap of an OpenAI-compatible body to
// r.OutputLimit() in exactly one member: the configured field if any, else
// the one the client used, else (neither or both) field. Every occurrence
// of both spellings is rewritten, even when the decoded value is already
// right: a body with a key twice decodes to its last value, while an
// upstream may read the first, so only a body with one member of each
// name says the same thing to both.
func patchOutputLimit(body []byte, r *Request, configured, field string) ([]byte, error) {
	limit := r.OutputLimit()
	if limit <= 0 {
		return body, nil
	}
	chat := r.Chat
	switch {
	case configured != "":
		field = configured
	case chat.MaxCompletionTokens != nil && chat.MaxTokens == nil:
		field = fieldMaxCompletionTokens
	case chat.MaxTokens != nil && chat.MaxCompletionTokens == nil:
		field = fieldMaxTokens
	}
	other := fieldMaxTokens
	if field == fieldMaxTokens {
		other = fieldMaxCompletionTokens
	}
	body, err := llm.SetField(body, other, nil)
	if err != nil {
		return nil, err
	}
	return llm.SetField(body, field, strconv.AppendInt(nil, int64(limit), 10))
}
