package providers

import (
	"bytes"
	"encoding/json"
	"strings"
	"time"

	"github.com/tollgate/tollgate/internal/anthropicwire"
	"github.com/tollgate/tollgate/pkg/llm"
)

// The Messages answer's wire types are anthropicwire's, shared with the
// HTTP layer that answers Anthropic clients; the mapping of stop reasons
// and usage lives with them, used by both directions of the translation.
//
// Of an answer's content blocks, text and tool_use reach the client;
// thinking becomes the message's reasoning_content (its signature kept in
// process, for an Anthropic client to send back); redacted_thinking and
// server-tool blocks do not (OpenAI's chat format has no place for them;
// their tokens are part of output_tokens, so they are still paid for and
// reported).
type (
	antUsage = anthropicwire.Usage
	antError = anthropicwire.ErrorObject
)

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

// chatResponseOf translates a Messages answer into a chat completion. Raw
// stays nil: the gateway marshals the typed value.
func chatResponseOf(m *anthropicwire.Response, now time.Time) *llm.ChatResponse {
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
		case "thinking":
			msg.ReasoningContent += b.Thinking
			msg.ReasoningSignature = b.Signature // the last block's: Anthropic checks the latest
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
		Choices: []llm.Choice{{Index: 0, Message: msg, FinishReason: anthropicwire.FinishReason(deref(m.StopReason)), StopSequence: deref(m.StopSequence)}},
		Usage:   m.Usage.ToLLM(),
	}
}

// deref is a nullable string's value, "" for null.
func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
