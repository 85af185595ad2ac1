package providers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/tollgate/tollgate/pkg/llm"
)

// OpenAI's Responses API, passed through: the client's Responses body
// (ChatRequest.ResponsesBody) goes to {BaseURL}/responses with the
// upstream's model and the reserved output cap patched in, and the answer
// is read both ways: its output items kept byte for byte for the client,
// its text, tool calls and usage as a chat answer for the gateway.

// servesResponses reports whether an upstream is sent Responses bodies:
// as configured, else only OpenAI itself.
func servesResponses(cfg OpenAIConfig) bool {
	if cfg.ResponsesAPI != nil {
		return *cfg.ResponsesAPI
	}
	return cfg.Flavor != FlavorAzure && strings.EqualFold(hostOf(cfg.BaseURL), "api.openai.com")
}

// ServesResponses reports whether Responses requests are passed through
// to this upstream (OpenAIConfig.ResponsesAPI).
func (c *OpenAI) ServesResponses() bool { return c.respURL != "" }

// Respond sends a non-streamed Responses request.
func (c *OpenAI) Respond(ctx context.Context, r *Request) (*llm.ChatResponse, error) {
	body, err := c.responsesBody(r, false)
	if err != nil {
		return nil, err
	}
	raw, err := c.call(ctx, c.respURL, c.header(false, r.APIKey), body)
	if err != nil {
		return nil, err
	}
	var a responsesAnswer
	if err := decodeJSON(raw, &a); err != nil {
		return nil, badResponse(c.name, "upstream sent a malformed response object: "+snippet(string(raw)), err)
	}
	return a.chat(c.name)
}

// StreamResponse sends a streamed Responses request and returns once the
// upstream answered with its headers.
func (c *OpenAI) StreamResponse(ctx context.Context, r *Request) (Stream, error) {
	body, err := c.responsesBody(r, true)
	if err != nil {
		return nil, err
	}
	return c.stream(ctx, r, c.respURL, c.header(true, r.APIKey), body, &responsesEvents{})
}

// responsesBody is the Responses body with what this call must change:
// the upstream's model, stream, and max_output_tokens, always sent when
// there is a cap (r.OutputLimit: the client's, lowered to what the
// gateway reserved) so an honest upstream cannot bill past the
// reservation.
func (c *OpenAI) responsesBody(r *Request, stream bool) ([]byte, error) {
	if !c.ServesResponses() {
		return nil, fmt.Errorf("providers: %s is not configured to serve the Responses API", c.name)
	}
	if r.Chat == nil || len(r.Chat.ResponsesBody) == 0 {
		return nil, errors.New("providers: responses request without a Responses body")
	}
	body := []byte(r.Chat.ResponsesBody)
	var err error
	set := func(key string, val []byte) {
		if err == nil {
			body, err = llm.SetField(body, key, val)
		}
	}
	if r.Model != "" {
		set("model", quote(r.Model))
	}
	if stream {
		set("stream", []byte("true"))
	} else {
		set("stream", nil)
		set("stream_options", nil)
	}
	if limit := r.OutputLimit(); limit > 0 {
		set("max_output_tokens", strconv.AppendInt(nil, int64(limit), 10))
	}
	if err != nil {
		return nil, fmt.Errorf("providers: patching the responses body: %w", err)
	}
	return body, nil
}

// responsesAnswer is the part of a response object tollgate reads.
type responsesAnswer struct {
	ID                string          `json:"id"`
	CreatedAt         float64         `json:"created_at"`
	Model             string          `json:"model"`
	Status            string          `json:"status"`
	Error             *responsesError `json:"error"`
	IncompleteDetails *struct {
		Reason string `json:"reason"`
	} `json:"incomplete_details"`
	Output json.RawMessage `json:"output"`
	Usage  *responsesUsage `json:"usage"`
}

type responsesError struct {
	Code    json.RawMessage `json:"code"`
	Message string          `json:"message"`
}

// responsesItem is the part of an output item tollgate reads.
type responsesItem struct {
	Type    string `json:"type"`
	Content []struct {
		Type    string `json:"type"`
		Text    string `json:"text"`
		Refusal string `json:"refusal"`
	} `json:"content"`
	CallID    string `json:"call_id"`
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
	Summary   []struct {
		Text string `json:"text"`
	} `json:"summary"`
}

type responsesUsage struct {
	InputTokens        int `json:"input_tokens"`
	OutputTokens       int `json:"output_tokens"`
	TotalTokens        int `json:"total_tokens"`
	InputTokensDetails *struct {
		CachedTokens int `json:"cached_tokens"`
	} `json:"input_tokens_details"`
	OutputTokensDetails *struct {
		ReasoningTokens int `json:"reasoning_tokens"`
	} `json:"output_tokens_details"`
}

// usage is the chat usage of a Responses usage; nil when none was given.
func (u *responsesUsage) usage() *llm.Usage {
	if u == nil {
		return nil
	}
	out := &llm.Usage{PromptTokens: u.InputTokens, CompletionTokens: u.OutputTokens, TotalTokens: u.TotalTokens}
	if out.TotalTokens == 0 {
		out.TotalTokens = u.InputTokens + u.OutputTokens
	}
	if d := u.InputTokensDetails; d != nil {
		out.PromptTokensDetails = &llm.PromptTokensDetails{CachedTokens: d.CachedTokens}
	}
	if d := u.OutputTokensDetails; d != nil {
		out.CompletionTokensDetails = &llm.CompletionTokensDetails{ReasoningTokens: d.ReasoningTokens}
	}
	return out
}

// chat reads a finished response object as a chat answer, its output
// kept in ResponsesOutput. A failed response is an upstream error.
func (a *responsesAnswer) chat(provider string) (*llm.ChatResponse, error) {
	if err := a.failure(provider); err != nil {
		return nil, err
	}
	var items []responsesItem
	if err := decodeJSON(a.Output, &items); err != nil || items == nil {
		return nil, badResponse(provider, "upstream sent a response object without its output: "+snippet(string(a.Output)), err)
	}
	m := llm.Message{Role: "assistant", Content: llm.Content{Null: true}}
	var text, refusal, reasoning strings.Builder
	hasText := false
	for _, it := range items {
		switch it.Type {
		case "message":
			for _, p := range it.Content {
				switch p.Type {
				case "output_text":
					text.WriteString(p.Text)
					hasText = true
				case "refusal":
					refusal.WriteString(p.Refusal)
				}
			}
		case "function_call":
			m.ToolCalls = append(m.ToolCalls, llm.ToolCall{ID: it.CallID, Type: "function", Function: llm.FunctionCall{Name: it.Name, Arguments: it.Arguments}})
		case "reasoning":
			for _, s := range it.Summary {
				reasoning.WriteString(s.Text)
			}
		}
	}
	if hasText {
		m.Content = llm.TextContent(text.String())
	}
	if refusal.Len() > 0 {
		r := refusal.String()
		m.Refusal = &r
	}
	m.ReasoningContent = reasoning.String()
	return &llm.ChatResponse{ID: a.ID, Object: "chat.completion", Created: int64(a.CreatedAt), Model: a.Model,
		Choices: []llm.Choice{{Message: m, FinishReason: a.finishReason(len(m.ToolCalls) > 0)}},
		Usage:   a.Usage.usage(), ResponsesOutput: a.Output}, nil
}

// failure is the error a response's status reports: failed (its error),
// or a status a finished response cannot have (queued, in_progress,
// cancelled).
func (a *responsesAnswer) failure(provider string) *llm.Error {
	switch a.Status {
	case "completed", "incomplete":
		return nil
	case "failed":
		e := &llm.Error{Status: http.StatusBadGateway, Type: llm.TypeUpstream, Upstream: true, Provider: provider, Retryable: true,
			Message: "upstream response failed"}
		if a.Error != nil {
			e.Code = plain(e, "code", rawString(a.Error.Code))
			if a.Error.Message != "" {
				e.Message = "upstream response failed: " + snippet(a.Error.Message)
			}
		}
		return e
	}
	return badResponse(provider, fmt.Sprintf("upstream answered a response with status %q", llm.Clip(a.Status, 32)), nil)
}

// finishReason is chat's finish reason for the response's end.
func (a *responsesAnswer) finishReason(calls bool) string {
	if a.Status == "incomplete" && a.IncompleteDetails != nil {
		switch a.IncompleteDetails.Reason {
		case "content_filter":
			return "content_filter"
		default: // max_output_tokens
			return "length"
		}
	}
	if a.Status == "incomplete" {
		return "length"
	}
	if calls {
		return "tool_calls"
	}
	return "stop"
}

// responsesEvents reads a Responses stream. Every event becomes a chunk
// carrying it in ResponsesEvent, with what it adds to the answer in chat's
// terms: output_text and refusal deltas as content, function calls as
// tool calls (numbered in order, whatever their output_index), the
// terminal event as the finish reason and usage. response.created and
// response.in_progress are held until the next event, so a response that
// fails at once is an error before the first chunk and the gateway can
// still fall back.
type responsesEvents struct {
	id, model string
	started   bool             // an event other than the lifecycle ones was passed on
	held      []*llm.ChatChunk // response.created and .in_progress, until then
	calls     map[int]int      // output_index → tool call index
}

func (*responsesEvents) final() string { return "response.completed" }

// responsesEvent is the part of a stream event tollgate reads.
type responsesEvent struct {
	Type        string           `json:"type"`
	Delta       string           `json:"delta"`
	OutputIndex int              `json:"output_index"`
	Item        *responsesItem   `json:"item"`
	Response    *responsesAnswer `json:"response"`
	Code        json.RawMessage  `json:"code"`
	Message     string           `json:"message"`
}

func (d *responsesEvents) decode(provider string, data, event []byte, out []*llm.ChatChunk) ([]*llm.ChatChunk, bool, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || bytes.Equal(data, doneData) {
		return out, false, nil
	}
	raw := bytes.Clone(data)
	var ev responsesEvent
	if err := decodeJSON(raw, &ev); err != nil {
		return out, false, badResponse(provider, "upstream sent a malformed stream event: "+snippet(string(raw)), err)
	}
	if ev.Type == "" && string(event) != "" {
		ev.Type = string(event)
	}
	if r := ev.Response; r != nil {
		if r.ID != "" {
			d.id = r.ID
		}
		if r.Model != "" {
			d.model = r.Model
		}
	}
	chunk := &llm.ChatChunk{ID: d.id, Object: "chat.completion.chunk", Model: d.model, ResponsesEvent: raw}
	done := false
	switch ev.Type {
	case "error":
		return out, false, responsesStreamError(provider, ev.Code, ev.Message, raw)
	case "response.failed":
		var e error = badResponse(provider, "upstream response failed", nil)
		if ev.Response != nil {
			e = ev.Response.failure(provider)
		}
		return out, false, e
	case "response.created", "response.in_progress", "response.queued":
		if !d.started {
			d.held = append(d.held, chunk)
			return out, false, nil
		}
	case "response.output_text.delta":
		delta := ev.Delta
		chunk.Choices = []llm.ChunkChoice{{Delta: llm.Delta{Content: &delta}}}
	case "response.refusal.delta":
		delta := ev.Delta
		chunk.Choices = []llm.ChunkChoice{{Delta: llm.Delta{Refusal: &delta}}}
	case "response.output_item.added":
		if ev.Item != nil && ev.Item.Type == "function_call" {
			if d.calls == nil {
				d.calls = map[int]int{}
			}
			idx := len(d.calls)
			d.calls[ev.OutputIndex] = idx
			chunk.Choices = []llm.ChunkChoice{{Delta: llm.Delta{ToolCalls: []llm.ToolCall{{Index: &idx, ID: ev.Item.CallID, Type: "function",
				Function: llm.FunctionCall{Name: ev.Item.Name, Arguments: ev.Item.Arguments}}}}}}
		}
	case "response.function_call_arguments.delta":
		if idx, ok := d.calls[ev.OutputIndex]; ok {
			chunk.Choices = []llm.ChunkChoice{{Delta: llm.Delta{ToolCalls: []llm.ToolCall{{Index: &idx, Function: llm.FunctionCall{Arguments: ev.Delta}}}}}}
		}
	case "response.completed", "response.incomplete":
		if ev.Response == nil {
			return out, false, badResponse(provider, "upstream sent "+ev.Type+" without its response: "+snippet(string(raw)), nil)
		}
		finish := ev.Response.finishReason(len(d.calls) > 0)
		chunk.Choices = []llm.ChunkChoice{{FinishReason: &finish}}
		chunk.Usage = ev.Response.Usage.usage()
		done = true
	}
	d.started = true
	out = append(out, d.held...)
	d.held = nil
	return append(out, chunk), done, nil
}

// responsesStreamError maps a Responses stream's error event ({"type":
// "error","code":...,"message":...}), or an OpenAI error envelope.
func responsesStreamError(provider string, code json.RawMessage, msg string, raw []byte) *llm.Error {
	if msg == "" {
		return streamError(provider, raw)
	}
	e := &llm.Error{Status: http.StatusBadGateway, Type: llm.TypeUpstream, Upstream: true, Provider: provider, Retryable: true,
		Message: "upstream sent an error event: " + snippet(msg)}
	e.Code = plain(e, "code", rawString(code))
	if e.Code == "rate_limit_exceeded" {
		e.Status, e.Type = http.StatusTooManyRequests, llm.TypeRateLimit
	}
	return e
}
