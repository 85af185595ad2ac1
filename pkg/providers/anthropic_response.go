package providers

import (
	"bytes"
	"encoding/json"
	"strings"
	"time"

	"github.com/tollgate/tollgate/pkg/llm"
)

// antMessageResponse is a Messages answer (also message_start's message).
type antMessageResponse struct {
	ID         string         `json:"id"`
	Type       string         `json:"type"`
	Role       string         `json:"role"`
	Model      string         `json:"model"`
	Content    []antRespBlock `json:"content"`
	StopReason string         `json:"stop_reason"`
	Usage      antUsage       `json:"usage"`
	Error      *antError      `json:"error"`
}

// antRespBlock is one response content block. Only text and tool_use reach
// the client; thinking, redacted_thinking and server-tool blocks do not
// (OpenAI's chat format has no place for them; their tokens are part of
// output_tokens, so they are still paid for and reported).
type antRespBlock struct {
	Type  string          `json:"type"`
	Text  string          `json:"text"`
	ID    string          `json:"id"`
	Name  string          `json:"name"`
	Input json.RawMessage `json:"input"`
}

type antUsage struct {
	InputTokens              int `json:"input_tokens"`
	OutputTokens             int `json:"output_tokens"`
	CacheCreationInputTokens int `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int `json:"cache_read_input_tokens"`
}

type antError struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

// toOpenAI reports usage in OpenAI's shape, as router.Model.Cost expects:
// Anthropic's input_tokens excludes cache reads and writes, OpenAI's
// prompt_tokens includes them.
func (u antUsage) toOpenAI() *llm.Usage {
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

// finishReason maps stop_reason. pause_turn (a server-tool loop paused;
// tollgate sends no server tools) and unknown future values read as stop:
// the answer so far is complete as far as the client can act on it.
func finishReason(stop string) string {
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

// toolArguments renders a tool_use input as OpenAI's arguments string:
// compact JSON, "{}" when absent.
func toolArguments(input json.RawMessage) string {
	input = bytes.TrimSpace(input)
	if len(input) == 0 || string(input) == "null" {
		return "{}"
	}
	var b bytes.Buffer
	if json.Compact(&b, input) != nil {
		return string(input)
	}
	return b.String()
}

// toOpenAI translates a Messages answer into a chat completion. Raw stays
// nil: the gateway marshals the typed value.
func (m *antMessageResponse) toOpenAI(now time.Time) *llm.ChatResponse {
	msg := llm.Message{Role: "assistant"}
	var text strings.Builder
	hasText := false
	for _, b := range m.Content {
		switch b.Type {
		case "text":
			text.WriteString(b.Text)
			hasText = true
		case "tool_use":
			msg.ToolCalls = append(msg.ToolCalls, llm.ToolCall{ID: b.ID, Type: "function",
				Function: llm.FunctionCall{Name: b.Name, Arguments: toolArguments(b.Input)}})
		}
	}
	switch {
	case hasText || len(msg.ToolCalls) == 0:
		msg.Content = llm.TextContent(text.String())
	default:
		msg.Content = llm.Content{Null: true} // OpenAI sends null content with tool calls only
	}
	return &llm.ChatResponse{
		ID:      m.ID,
		Object:  "chat.completion",
		Created: now.Unix(),
		Model:   m.Model,
		Choices: []llm.Choice{{Index: 0, Message: msg, FinishReason: finishReason(m.StopReason)}},
		Usage:   m.Usage.toOpenAI(),
	}
}
