package providers

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/tollgate/tollgate/pkg/llm"
)

// sdkFront serves /v1/chat/completions from p the way the gateway does at
// its simplest (typed values marshalled, chunks as SSE), so the official
// OpenAI SDK can read what the translator produces.
func sdkFront(t *testing.T, p Provider) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body bytes.Buffer
		body.ReadFrom(r.Body)
		chat, err := llm.DecodeChatRequest(body.Bytes())
		if err != nil {
			t.Errorf("decode: %v", err)
			http.Error(w, err.Error(), 400)
			return
		}
		req := &Request{Chat: chat, Model: "claude-sonnet-4-5"}
		if !chat.Stream {
			resp, err := p.Chat(r.Context(), req)
			if err != nil {
				t.Errorf("chat: %v", err)
				http.Error(w, err.Error(), 502)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(resp)
			return
		}
		st, err := p.Stream(r.Context(), req)
		if err != nil {
			t.Errorf("stream: %v", err)
			http.Error(w, err.Error(), 502)
			return
		}
		defer st.Close()
		w.Header().Set("Content-Type", "text/event-stream")
		for {
			c, err := st.Recv()
			if err != nil {
				break
			}
			b, _ := json.Marshal(c)
			w.Write([]byte("data: "))
			w.Write(b)
			w.Write([]byte("\n\n"))
		}
		w.Write([]byte("data: [DONE]\n\n"))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestAnthropicWithOpenAISDK drives the translator with the official
// openai-go SDK: a tool-calling round trip, then a stream with usage.
func TestAnthropicWithOpenAISDK(t *testing.T) {
	round := 0
	upstream, last := fakeAnthropic(t, "sk-ant", func(w http.ResponseWriter, r *http.Request) {
		round++
		switch round {
		case 1:
			replyJSON(anthropicFixture(t, "upstream_tool_use.json"))(w, r)
		case 2:
			replyJSON(anthropicFixture(t, "upstream_text.json"))(w, r)
		default:
			replySSE(anthropicFixture(t, "upstream_stream_tool.sse"))(w, r)
		}
	})
	a := newTestAnthropic(t, AnthropicConfig{BaseURL: upstream.URL, APIKey: "sk-ant"})
	front := sdkFront(t, a)
	client := openai.NewClient(option.WithBaseURL(front.URL+"/v1"), option.WithAPIKey("gw-key"), option.WithMaxRetries(0))
	ctx := context.Background()

	weather := openai.ChatCompletionFunctionTool(openai.FunctionDefinitionParam{
		Name:       "get_weather",
		Parameters: openai.FunctionParameters{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}},
	})
	params := openai.ChatCompletionNewParams{
		Model:    "claude",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("Be terse."), openai.UserMessage("Weather in Paris?")},
		Tools:    []openai.ChatCompletionToolUnionParam{weather},
	}
	resp, err := client.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	calls := resp.Choices[0].Message.ToolCalls
	if resp.Choices[0].FinishReason != "tool_calls" || len(calls) != 2 || calls[0].Function.Name != "get_weather" ||
		calls[0].Function.Arguments != `{"city":"Paris","unit":"celsius"}` || resp.Usage.PromptTokens != 402 {
		t.Fatalf("tool call answer: %+v", resp)
	}

	params.Messages = append(params.Messages, resp.Choices[0].Message.ToParam(),
		openai.ToolMessage(`{"temp_c":18}`, calls[0].ID), openai.ToolMessage("12:00", calls[1].ID))
	resp, err = client.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Choices[0].Message.Content != "Hello! How can I help you today?" || resp.Choices[0].FinishReason != "stop" {
		t.Fatalf("final answer: %+v", resp)
	}
	var sent struct {
		System   string `json:"system"`
		Messages []struct {
			Role    string `json:"role"`
			Content []struct {
				Type      string          `json:"type"`
				ID        string          `json:"id"`
				ToolUseID string          `json:"tool_use_id"`
				Input     json.RawMessage `json:"input"`
			} `json:"content"`
		} `json:"messages"`
	}
	if err := json.Unmarshal(last().body, &sent); err != nil {
		t.Fatal(err)
	}
	if sent.System != "Be terse." || len(sent.Messages) != 3 || sent.Messages[1].Role != "assistant" || sent.Messages[2].Role != "user" ||
		len(sent.Messages[2].Content) != 2 || sent.Messages[2].Content[1].ToolUseID != "toolu_01B" ||
		sent.Messages[1].Content[0].ID != calls[0].ID || string(sent.Messages[1].Content[0].Input) != `{"city":"Paris","unit":"celsius"}` {
		t.Errorf("second round sent %s", last().body)
	}

	params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	stream := client.Chat.Completions.NewStreaming(ctx, params)
	var acc openai.ChatCompletionAccumulator
	for stream.Next() {
		acc.AddChunk(stream.Current())
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	msg := acc.Choices[0].Message
	if msg.Content != "Let me check the weather <now>." || len(msg.ToolCalls) != 2 ||
		msg.ToolCalls[0].Function.Arguments != `{"city": "Paris"}` || msg.ToolCalls[1].Function.Arguments != "{}" ||
		acc.Choices[0].FinishReason != "tool_calls" {
		t.Errorf("streamed message %+v finish %q", msg, acc.Choices[0].FinishReason)
	}
	if acc.Usage.PromptTokens != 4325 || acc.Usage.PromptTokensDetails.CachedTokens != 4000 || acc.Usage.CompletionTokens != 89 {
		t.Errorf("streamed usage %+v", acc.Usage)
	}
}
