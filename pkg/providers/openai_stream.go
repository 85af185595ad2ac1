package providers

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"

	"github.com/tollgate/tollgate/pkg/llm"
)

// Stream sends a streamed chat completion and returns once the upstream
// answered with its headers. Errors before the first event (status, auth,
// rate limits) come from Stream itself, so the gateway can still fall back.
func (c *OpenAI) Stream(ctx context.Context, r *Request) (Stream, error) {
	body, err := c.chatBody(r, true)
	if err != nil {
		return nil, err
	}
	return c.stream(ctx, r, c.url("chat/completions", r.Model), c.header(true, r.APIKey), body, openAIEvents{})
}

// streamJSONError maps a JSON answer to a streaming request.
func (c *OpenAI) streamJSONError(body []byte) *llm.Error {
	e := badResponse(c.name, "upstream answered JSON to a streaming request", nil)
	e.Retryable = false
	if fillFromBody(e, body) {
		e.Type = llm.TypeUpstream
	}
	return e
}

var doneData = []byte("[DONE]")

// openAIEvents reads OpenAI's stream: each event is one chunk, kept as the
// upstream's bytes in Raw, until [DONE].
type openAIEvents struct{}

func (openAIEvents) final() string { return "[DONE]" }

func (openAIEvents) decode(provider string, data, event []byte, out []*llm.ChatChunk) ([]*llm.ChatChunk, bool, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return out, false, nil
	}
	if bytes.Equal(data, doneData) {
		return out, true, nil
	}
	if string(event) == "error" {
		return out, false, streamError(provider, data)
	}
	raw := bytes.Clone(data)
	chunk := &llm.ChatChunk{}
	if err := decodeJSON(raw, chunk); err != nil {
		return out, false, badResponse(provider, "upstream sent a malformed stream event: "+snippet(string(raw)), err)
	}
	// An OpenAI chunk always has an id; an event without one and
	// without choices may be an {"error":...} sent mid-stream.
	if chunk.ID == "" && len(chunk.Choices) == 0 && chunk.Usage == nil && bytes.Contains(raw, []byte(`"error"`)) {
		return out, false, streamError(provider, raw)
	}
	chunk.Raw = raw
	return append(out, chunk), false, nil
}

// streamError maps an error event. The HTTP status was already 200, so the
// status is 502 unless the envelope says otherwise (429, 5xx).
func streamError(provider string, data []byte) *llm.Error {
	e := &llm.Error{Status: http.StatusBadGateway, Upstream: true, Provider: provider}
	if !fillFromBody(e, data) {
		e.Message = "upstream sent an error event: " + snippet(string(data))
	}
	var withStatus struct {
		Error struct {
			Code   json.RawMessage `json:"code"`
			Status json.RawMessage `json:"status"`
		} `json:"error"`
	}
	_ = json.Unmarshal(data, &withStatus)
	for _, r := range []json.RawMessage{withStatus.Error.Status, withStatus.Error.Code} {
		var n int
		if json.Unmarshal(r, &n) == nil && n >= 400 && n <= 599 {
			e.Status = n
			break
		}
	}
	switch e.Type {
	case "", llm.TypeServer, llm.TypeRateLimit, llm.TypeTimeout, "overloaded_error", "api_error":
		e.Retryable = true
	default:
		e.Retryable = retryableStatus(e.Status) && e.Status != http.StatusBadGateway
	}
	if e.Type == "" {
		e.Type = llm.TypeUpstream
	}
	return e
}
