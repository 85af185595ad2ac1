package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
)

func adminDo(t *testing.T, s *stack, method, path, body string) (int, map[string]any, string) {
	t.Helper()
	req, _ := http.NewRequest(method, s.srv.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+adminKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return resp.StatusCode, m, string(raw)
}

func TestAdminKeysLifecycle(t *testing.T) {
	s := newStack(t, stackOptions{})
	status, created, raw := adminDo(t, s, "POST", "/admin/keys", `{"name":"team-a","allowed_models":["sim-small"],"metadata":{"owner":"ana"}}`)
	if status != http.StatusCreated {
		t.Fatalf("create: %d %s", status, raw)
	}
	id, _ := created["id"].(string)
	secret, _ := created["key"].(string)
	if !strings.HasPrefix(id, "key_") || !strings.HasPrefix(secret, "tg-") {
		t.Fatalf("create answer lacks id/key: %s", raw)
	}

	// The secret is never shown again.
	for _, path := range []string{"/admin/keys", "/admin/keys/" + id} {
		status, _, raw := adminDo(t, s, "GET", path, "")
		if status != http.StatusOK || strings.Contains(raw, secret) || strings.Contains(raw, secret[len(secret)-10:]) {
			t.Fatalf("GET %s: %d leaks the secret or fails: %s", path, status, raw)
		}
		if !strings.Contains(raw, `"team-a"`) || !strings.Contains(raw, `"owner":"ana"`) {
			t.Fatalf("GET %s: %s", path, raw)
		}
	}

	// The key works, within its allowed models.
	client := s.client(secret)
	if _, err := client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model: "sim-small", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
	}); err != nil {
		t.Fatal(err)
	}

	// Revocation takes effect at once.
	status, revoked, raw := adminDo(t, s, "DELETE", "/admin/keys/"+id, "")
	if status != http.StatusOK || revoked["revoked"] != true {
		t.Fatalf("revoke: %d %s", status, raw)
	}
	_, err := client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model: "sim-small", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
	})
	assertAPIError(t, err, 401, "Incorrect API key")
	if status, _, _ := adminDo(t, s, "DELETE", "/admin/keys/"+id, ""); status != http.StatusOK {
		t.Fatalf("second revoke: %d", status)
	}
}

func TestAdminRejectsBadBodies(t *testing.T) {
	s := newStack(t, stackOptions{})
	tests := []struct {
		name, body, want string
	}{
		{"not json", `{"name":`, "invalid JSON body"},
		{"wrong type", `{"name":"a","allowed_models":"sim-small"}`, "invalid type for 'allowed_models': expected an array"},
		{"empty model name", `{"name":"a","allowed_models":[" "]}`, "model names must not be empty"},
		{"trailing data", `{"name":"a"} {}`, "trailing data"},
		{"blank name", `{"name":"  "}`, "a key needs a name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _, raw := adminDo(t, s, "POST", "/admin/keys", tt.body)
			if status != http.StatusBadRequest || !strings.Contains(raw, tt.want) {
				t.Fatalf("%d %s", status, raw)
			}
		})
	}
}
