package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"
)

// TestMessagesShareTheCacheWithChat: a Messages request is cached as the
// internal (chat) request it translates to, and each surface renders the
// cached answer in its own format. So the same question asked through
// /v1/messages, streamed or not, and through /v1/chat/completions with the
// equal body is one upstream call; a different question is another.
func TestMessagesShareTheCacheWithChat(t *testing.T) {
	s := newMsgStack(t, stackOptions{cache: true})
	s.oa.set(func(w http.ResponseWriter, _ map[string]any) {
		writeJSON(w, oaAnswer(`{"role":"assistant","content":"Paris."}`, "stop"))
	})
	var h http.Header
	client := s.anthropicClient(s.secret, option.WithMiddleware(func(r *http.Request, next option.MiddlewareNext) (*http.Response, error) {
		resp, err := next(r)
		if resp != nil {
			h = resp.Header
		}
		return resp, err
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second) // a hang guard
	defer cancel()
	params := anthropic.MessageNewParams{Model: "gpt-up", MaxTokens: 100,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Capital of France?"))}}

	m, err := client.Messages.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if h.Get("x-tollgate-cache") != "miss" || m.Content[0].Text != "Paris." || s.oa.calls() != 1 {
		t.Fatalf("first: cache %q calls %d %s", h.Get("x-tollgate-cache"), s.oa.calls(), m.RawJSON())
	}
	translated := s.oa.last()

	if m, err = client.Messages.New(ctx, params); err != nil {
		t.Fatal(err)
	}
	if h.Get("x-tollgate-cache") != "hit" || m.Content[0].Text != "Paris." || m.Usage.OutputTokens != 12 {
		t.Fatalf("repeat: cache %q %s", h.Get("x-tollgate-cache"), m.RawJSON())
	}

	stream := client.Messages.NewStreaming(ctx, params)
	var acc anthropic.Message
	for stream.Next() {
		if err := acc.Accumulate(stream.Current()); err != nil {
			t.Fatal(err)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if h.Get("x-tollgate-cache") != "hit" || len(acc.Content) != 1 || acc.Content[0].Text != "Paris." || acc.StopReason != anthropic.StopReasonEndTurn {
		t.Fatalf("streamed repeat: cache %q %s", h.Get("x-tollgate-cache"), acc.RawJSON())
	}

	// The equal chat request, as the upstream received it.
	resp, raw := postMessages(t, s.stack, "/v1/chat/completions", map[string]string{"Authorization": "Bearer " + s.secret}, string(translated))
	var chat struct {
		Object  string `json:"object"`
		Choices []struct {
			Message struct {
				Content string `json:"content"`
			} `json:"message"`
		} `json:"choices"`
	}
	if err := json.Unmarshal([]byte(raw), &chat); err != nil || resp.Header.Get("x-tollgate-cache") != "hit" ||
		chat.Object != "chat.completion" || chat.Choices[0].Message.Content != "Paris." {
		t.Fatalf("chat: %d cache %q %s", resp.StatusCode, resp.Header.Get("x-tollgate-cache"), raw)
	}

	params.Messages = []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Capital of Spain?"))}
	if _, err := client.Messages.New(ctx, params); err != nil {
		t.Fatal(err)
	}
	if h.Get("x-tollgate-cache") != "miss" || s.oa.calls() != 2 {
		t.Fatalf("another question: cache %q calls %d", h.Get("x-tollgate-cache"), s.oa.calls())
	}
}
