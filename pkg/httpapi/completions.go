package httpapi

// Legacy completions (POST /v1/completions), for the clients that still
// use them: the prompt becomes one user message of a chat completion sent
// through the same gateway flow as /v1/chat/completions, and the answer
// comes back as text_completion objects (JSON, or SSE chunks ending with
// [DONE]). One prompt per request: an array of several is a 400 (each
// would be its own chat call, billed and cached apart; send them as
// separate requests). echo, logprobs, suffix and best_of have no chat
// equivalent and are refused unless they ask for nothing.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"

	"github.com/gin-gonic/gin"

	"github.com/tollgate/tollgate/pkg/gateway"
	"github.com/tollgate/tollgate/pkg/llm"
)

// completionsRequest is a POST /v1/completions body.
type completionsRequest struct {
	Model            string             `json:"model"`
	Prompt           json.RawMessage    `json:"prompt"`
	MaxTokens        *int               `json:"max_tokens,omitempty"`
	Temperature      *float64           `json:"temperature,omitempty"`
	TopP             *float64           `json:"top_p,omitempty"`
	N                *int               `json:"n,omitempty"`
	Stream           bool               `json:"stream,omitempty"`
	StreamOptions    *llm.StreamOptions `json:"stream_options,omitempty"`
	Stop             json.RawMessage    `json:"stop,omitempty"`
	PresencePenalty  *float64           `json:"presence_penalty,omitempty"`
	FrequencyPenalty *float64           `json:"frequency_penalty,omitempty"`
	LogitBias        json.RawMessage    `json:"logit_bias,omitempty"`
	Seed             *int64             `json:"seed,omitempty"`
	User             string             `json:"user,omitempty"`

	// Refused unless they ask for nothing.
	Echo     *bool           `json:"echo,omitempty"`
	Logprobs json.RawMessage `json:"logprobs,omitempty"`
	Suffix   *string         `json:"suffix,omitempty"`
	BestOf   *int            `json:"best_of,omitempty"`

	prompt string
}

var completionsShape = llm.ShapeOf(reflect.TypeFor[completionsRequest]())

func decodeCompletions(body []byte) (*completionsRequest, error) {
	var r completionsRequest
	if err := strictJSON(body, &r, completionsShape); err != nil {
		return nil, err
	}
	if r.Model == "" {
		return nil, llm.InvalidParam("model", "you must provide a model parameter")
	}
	p := bytes.TrimSpace(r.Prompt)
	switch {
	case len(p) == 0 || string(p) == "null":
		return nil, llm.InvalidParam("prompt", "missing required parameter: 'prompt'")
	case p[0] == '"':
		if err := json.Unmarshal(p, &r.prompt); err != nil {
			return nil, llm.InvalidParam("prompt", "prompt must be a string or an array of one string")
		}
	case p[0] == '[':
		var many []string
		if err := json.Unmarshal(p, &many); err != nil {
			return nil, unsupported("prompt", "prompt must be a string or an array of one string: token arrays are not supported by tollgate")
		}
		if len(many) != 1 {
			return nil, unsupported("prompt", fmt.Sprintf("prompt holds %d strings: tollgate serves one prompt per request (send each as its own request)", len(many)))
		}
		r.prompt = many[0]
	default:
		return nil, llm.InvalidParam("prompt", "prompt must be a string or an array of one string")
	}
	switch {
	case r.Echo != nil && *r.Echo:
		return nil, unsupported("echo", "echo is not supported by tollgate: completions are served by chat models")
	case len(r.Logprobs) > 0 && string(r.Logprobs) != "null":
		return nil, unsupported("logprobs", "logprobs is not supported by tollgate on legacy completions")
	case r.Suffix != nil && *r.Suffix != "":
		return nil, unsupported("suffix", "suffix is not supported by tollgate: completions are served by chat models")
	case r.BestOf != nil && *r.BestOf != 1:
		return nil, unsupported("best_of", "best_of is not supported by tollgate")
	}
	if r.MaxTokens != nil && *r.MaxTokens < 1 {
		return nil, llm.InvalidParam("max_tokens", "max_tokens must be at least 1")
	}
	return &r, nil
}

// chatRequest is the chat completion the legacy request becomes.
func (r *completionsRequest) chatRequest() (*llm.ChatRequest, error) {
	return chatOf(&chatBody{Model: r.Model, Messages: []llm.Message{{Role: "user", Content: llm.TextContent(r.prompt)}},
		Stream: r.Stream, StreamOptions: r.StreamOptions, MaxTokens: r.MaxTokens, Temperature: r.Temperature, TopP: r.TopP,
		N: r.N, Stop: r.Stop, PresencePenalty: r.PresencePenalty, FrequencyPenalty: r.FrequencyPenalty,
		LogitBias: r.LogitBias, Seed: r.Seed, User: r.User})
}

// textCompletion is a text_completion object (a whole answer or a chunk).
type textCompletion struct {
	ID                string       `json:"id"`
	Object            string       `json:"object"`
	Created           int64        `json:"created"`
	Model             string       `json:"model"`
	Choices           []textChoice `json:"choices"`
	Usage             *llm.Usage   `json:"usage,omitempty"`
	SystemFingerprint string       `json:"system_fingerprint,omitempty"`
}

type textChoice struct {
	Text         string          `json:"text"`
	Index        int             `json:"index"`
	Logprobs     json.RawMessage `json:"logprobs"`
	FinishReason *string         `json:"finish_reason"`
}

var jsonNull = json.RawMessage("null")

func (s *server) completions(c *gin.Context) {
	req, ok := decodeSeeded(s, c, openAISurface, decodeCompletions)
	if !ok {
		return
	}
	chat, err := req.chatRequest()
	if err != nil {
		writeError(c, err)
		return
	}
	caller, err := callerOf(c, chat)
	if err != nil {
		writeError(c, err)
		return
	}
	id := newObjectID("cmpl")
	if req.Stream {
		s.streamCompletions(c, caller, chat, id)
		return
	}
	resp, meta, err := s.Gateway.Chat(c.Request.Context(), caller, chat)
	s.answer(c, meta, err, func() ([]byte, any) {
		out := &textCompletion{ID: id, Object: "text_completion", Created: resp.Created, Model: resp.Model,
			Choices: make([]textChoice, len(resp.Choices)), Usage: resp.Usage, SystemFingerprint: resp.SystemFingerprint}
		if out.Created == 0 {
			out.Created = s.Now().Unix()
		}
		for i, ch := range resp.Choices {
			finish := ch.FinishReason
			if finish == "tool_calls" || finish == "function_call" {
				finish = "stop"
			}
			out.Choices[i] = textChoice{Text: ch.Message.Content.String(), Index: ch.Index, Logprobs: jsonNull, FinishReason: &finish}
		}
		if out.Usage == nil && meta != nil {
			out.Usage = &llm.Usage{PromptTokens: meta.PromptTokens, CompletionTokens: meta.CompletionTokens, TotalTokens: meta.PromptTokens + meta.CompletionTokens}
		}
		return nil, out
	})
}

// streamCompletions relays a streamed completion as text_completion
// chunks and [DONE] (see dataStream).
func (s *server) streamCompletions(c *gin.Context, caller gateway.Caller, chat *llm.ChatRequest, id string) {
	s.relay(c, caller, chat, func(*gateway.Meta) streamWriter {
		return dataStream{c.Writer, func(w io.Writer, ch *llm.ChatChunk) error {
			out := textCompletion{ID: id, Object: "text_completion", Created: ch.Created, Model: ch.Model, Usage: ch.Usage, SystemFingerprint: ch.SystemFingerprint}
			for _, cc := range ch.Choices {
				text := ""
				if cc.Delta.Content != nil {
					text = *cc.Delta.Content
				}
				if text == "" && cc.FinishReason == nil {
					continue // a role or tool delta: no text to give
				}
				out.Choices = append(out.Choices, textChoice{Text: text, Index: cc.Index, Logprobs: jsonNull, FinishReason: cc.FinishReason})
			}
			if len(out.Choices) == 0 && out.Usage == nil {
				return nil
			}
			if out.Choices == nil {
				out.Choices = []textChoice{}
			}
			return sseLine(w, out)
		}}
	})
}
