package httpapi_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/tollgate/tollgate/pkg/httpapi"
)

// TestEveryResponseCarriesXRequestID: every answer, errors included, has
// x-request-id equal to x-tollgate-request-id, so the OpenAI SDKs, which
// read x-request-id, report the gateway's id.
func TestEveryResponseCarriesXRequestID(t *testing.T) {
	s := newStack(t, stackOptions{})
	params := openai.ChatCompletionNewParams{Model: "sim-small",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hello")}}

	// Through the official SDK: a completion and an error.
	var ok *http.Response
	if _, err := s.client(s.secret, option.WithResponseInto(&ok)).Chat.Completions.New(context.Background(), params); err != nil {
		t.Fatal(err)
	}
	_, err := s.client("tg-not-a-key").Chat.Completions.New(context.Background(), params)
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.Response == nil {
		t.Fatalf("want an API error, got %v", err)
	}
	sdk := map[string]http.Header{"sdk chat completion": ok.Header, "sdk 401": apiErr.Response.Header}

	tests := []struct {
		name, method, path, auth string
		status                   int
	}{
		{"models", "GET", "/v1/models", s.secret, 200},
		{"healthz", "GET", "/healthz", "", 200},
		{"readyz", "GET", "/readyz", "", 200},
		{"admin list", "GET", "/admin/keys", adminKey, 200},
		{"admin 401", "GET", "/admin/keys", "wrong", 401},
		{"unknown model 404", "GET", "/v1/models/nope", s.secret, 404},
		{"no route 404", "GET", "/v2/elsewhere", "", 404},
		{"method 405", "DELETE", "/v1/chat/completions", s.secret, 405},
		{"bad body 400", "POST", "/v1/chat/completions", s.secret, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, s.srv.URL+tt.path, strings.NewReader("{"))
			if tt.auth != "" {
				req.Header.Set("Authorization", "Bearer "+tt.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			checkRequestID(t, resp.Header)
		})
	}
	for name, h := range sdk {
		t.Run(name, func(t *testing.T) { checkRequestID(t, h) })
	}
}

func checkRequestID(t *testing.T, h http.Header) {
	t.Helper()
	id := h.Get("x-request-id")
	if !strings.HasPrefix(id, "req_") || id != h.Get(httpapi.HeaderRequestID) {
		t.Fatalf("x-request-id %q, x-tollgate-request-id %q", id, h.Get(httpapi.HeaderRequestID))
	}
}
