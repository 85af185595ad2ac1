package httpapi_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/openai/openai-go/v3"
)

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestAccessLogOneRedactedLinePerRequest(t *testing.T) {
	var logs syncBuffer
	s := newStack(t, stackOptions{log: &logs})
	prompt := "my secret medical question about zebras"
	client := s.client(s.secret)
	if _, err := client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model: "sim-small", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(prompt)},
	}); err != nil {
		t.Fatal(err)
	}
	_, _ = s.client("tg-wrong-key-wrong-key-wrong-key").Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model: "sim-small", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(prompt)},
	})
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 access log lines, got %d:\n%s", len(lines), logs.String())
	}
	var ok map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &ok); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"id", "key_id", "model", "provider", "status", "latency", "prompt_tokens", "completion_tokens", "attempts"} {
		if _, present := ok[f]; !present {
			t.Errorf("access log lacks %q: %s", f, lines[0])
		}
	}
	if ok["status"] != float64(200) || ok["model"] != "sim-small" {
		t.Errorf("line = %s", lines[0])
	}
	all := logs.String()
	for _, secret := range []string{prompt, "zebras", s.secret, "tg-wrong-key-wrong-key-wrong-key", "[sim-small] reply"} {
		if strings.Contains(all, secret) {
			t.Errorf("access log contains %q", secret)
		}
	}
}
