// Package anthropicwire holds Anthropic Messages API wire knowledge that
// both directions of tollgate's translation share: the HTTP layer serving
// POST /v1/messages to Anthropic clients, and the provider translating
// tollgate's OpenAI-shaped internal request for Anthropic upstreams. It
// owns the wire types (request, answer, stream events: request.go,
// response.go), decoded and encoded by both, and the mapping between
// Anthropic's stop reasons, usage and error types and tollgate's (OpenAI's)
// vocabulary, so the two directions cannot drift apart. It imports only
// pkg/llm.
package anthropicwire

import (
	"net/http"

	"github.com/tollgate/tollgate/pkg/llm"
)

// Usage is a Messages answer's usage. InputTokens excludes the tokens read
// from and written to the prompt cache; OpenAI's prompt_tokens includes
// them.
type Usage struct {
	InputTokens              int `json:"input_tokens"`
	OutputTokens             int `json:"output_tokens"`
	CacheCreationInputTokens int `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int `json:"cache_read_input_tokens"`
}

// ToLLM reports usage in OpenAI's shape, as router.Model.Cost expects.
func (u Usage) ToLLM() *llm.Usage {
	prompt := u.InputTokens + u.CacheReadInputTokens + u.CacheCreationInputTokens
	return &llm.Usage{
		PromptTokens:     prompt,
		CompletionTokens: u.OutputTokens,
		TotalTokens:      prompt + u.OutputTokens,
		PromptTokensDetails: &llm.PromptTokensDetails{
			CachedTokens:     u.CacheReadInputTokens,
			CacheWriteTokens: u.CacheCreationInputTokens,
		},
	}
}

// UsageOf is ToLLM's inverse; a nil usage (none reported) is zero.
func UsageOf(u *llm.Usage) Usage {
	if u == nil {
		return Usage{}
	}
	out := Usage{OutputTokens: u.CompletionTokens}
	if d := u.PromptTokensDetails; d != nil {
		out.CacheReadInputTokens, out.CacheCreationInputTokens = d.CachedTokens, d.CacheWriteTokens
	}
	out.InputTokens = max(u.PromptTokens-out.CacheReadInputTokens-out.CacheCreationInputTokens, 0)
	return out
}

// FinishReason maps a stop_reason to OpenAI's finish_reason. pause_turn (a
// server-tool loop paused; tollgate sends no server tools) and unknown
// future values read as stop: the answer so far is complete as far as the
// client can act on it.
func FinishReason(stop string) string {
	switch stop {
	case "max_tokens", "model_context_window_exceeded":
		return "length"
	case "tool_use":
		return "tool_calls"
	case "refusal":
		return "content_filter"
	}
	return "stop"
}

// StopReason is FinishReason's inverse. stopSequence is the sequence that
// ended the answer when the upstream said which (only Anthropic does):
// then the reason is stop_sequence.
func StopReason(finish, stopSequence string) string {
	switch finish {
	case "length":
		return "max_tokens"
	case "tool_calls", "function_call":
		return "tool_use"
	case "content_filter":
		return "refusal"
	}
	if stopSequence != "" {
		return "stop_sequence"
	}
	return "end_turn"
}

// Error types of Anthropic's error envelope.
const (
	ErrInvalidRequest = "invalid_request_error"
	ErrAuthentication = "authentication_error"
	ErrBilling        = "billing_error"
	ErrPermission     = "permission_error"
	ErrNotFound       = "not_found_error"
	ErrTooLarge       = "request_too_large"
	ErrRateLimit      = "rate_limit_error"
	ErrTimeout        = "timeout_error"
	ErrAPI            = "api_error"
	ErrOverloaded     = "overloaded_error"
)

// StatusOverloaded is Anthropic's "API temporarily overloaded" status.
const StatusOverloaded = 529

// ErrorTypeFor is the Anthropic error type a client is shown for an HTTP
// status. 402 (a spent budget) is billing_error, which Anthropic's SDKs do
// not retry, as they would a rate_limit_error.
func ErrorTypeFor(status int) string {
	switch {
	case status == http.StatusUnauthorized:
		return ErrAuthentication
	case status == http.StatusPaymentRequired:
		return ErrBilling
	case status == http.StatusForbidden:
		return ErrPermission
	case status == http.StatusNotFound:
		return ErrNotFound
	case status == http.StatusRequestEntityTooLarge:
		return ErrTooLarge
	case status == http.StatusTooManyRequests:
		return ErrRateLimit
	case status == http.StatusGatewayTimeout || status == http.StatusRequestTimeout:
		return ErrTimeout
	case status == http.StatusServiceUnavailable || status == StatusOverloaded:
		return ErrOverloaded
	case status >= 500:
		return ErrAPI
	}
	return ErrInvalidRequest
}

// StatusFor is the HTTP status of an Anthropic error type delivered
// without one (a stream's error event).
func StatusFor(typ string) int {
	switch typ {
	case ErrInvalidRequest:
		return http.StatusBadRequest
	case ErrAuthentication:
		return http.StatusUnauthorized
	case ErrBilling:
		return http.StatusPaymentRequired
	case ErrPermission:
		return http.StatusForbidden
	case ErrNotFound:
		return http.StatusNotFound
	case ErrTooLarge:
		return http.StatusRequestEntityTooLarge
	case ErrRateLimit:
		return http.StatusTooManyRequests
	case ErrTimeout:
		return http.StatusGatewayTimeout
	case ErrOverloaded:
		return StatusOverloaded
	case ErrAPI:
		return http.StatusInternalServerError
	}
	return http.StatusBadGateway
}

// ErrorBody is Anthropic's error envelope.
type ErrorBody struct {
	Type      string      `json:"type"` // "error"
	Error     ErrorObject `json:"error"`
	RequestID string      `json:"request_id,omitempty"`
}

// ErrorObject is the envelope's error. Details.ErrorCode names the cause
// (Anthropic's SDKs read it as ErrorCode()); tollgate puts its own code
// there (budget_exceeded, model_not_found, ...).
type ErrorObject struct {
	Type    string        `json:"type"`
	Message string        `json:"message"`
	Details *ErrorDetails `json:"details,omitempty"`
}

// ErrorDetails is an error's machine-readable detail.
type ErrorDetails struct {
	ErrorCode string `json:"error_code"`
}
