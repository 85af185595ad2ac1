package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
)

// upstreamKey is the API key the gateway sends the upstream; the upstream
// refuses any other, so a request that reached it came through the
// configured provider.
const upstreamKey = "cachequality-upstream"

// answerPrefix starts every upstream answer; the rest is the prompt the
// upstream received (its last user turn), base64-encoded so that any text
// survives the round trip unchanged.
const answerPrefix = "ANSWER:"

func encodeAnswer(prompt string) string {
	return answerPrefix + base64.StdEncoding.EncodeToString([]byte(prompt))
}

// decodeAnswer returns the prompt an answer encodes.
func decodeAnswer(content string) (string, error) {
	rest, ok := strings.CutPrefix(content, answerPrefix)
	if !ok {
		return "", fmt.Errorf("answer %q does not start with %q: not the benchmark upstream's", clip(content, 60), answerPrefix)
	}
	b, err := base64.StdEncoding.DecodeString(rest)
	if err != nil {
		return "", fmt.Errorf("answer %q: %w", clip(content, 60), err)
	}
	return string(b), nil
}

// upstream is an in-process OpenAI-compatible chat completions server
// whose answer encodes the prompt it was sent. It reports usage: prompt
// tokens from a rough count (4 characters a token, 4 a message), a fixed
// number of completion tokens, so the gateway prices every call.
type upstream struct {
	srv              *httptest.Server
	completionTokens int
	calls            atomic.Int64
}

func newUpstream(completionTokens int) *upstream {
	u := &upstream{completionTokens: completionTokens}
	u.srv = httptest.NewServer(http.HandlerFunc(u.serve))
	return u
}

// url is the base URL of an OpenAI-type provider: .../v1.
func (u *upstream) url() string { return u.srv.URL + "/v1" }

func (u *upstream) close() { u.srv.Close() }

type chatMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

// text is a message's text: a string, or the text parts of a list.
func (m chatMessage) text() string {
	var s string
	if json.Unmarshal(m.Content, &s) == nil {
		return s
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	_ = json.Unmarshal(m.Content, &parts)
	var b strings.Builder
	for _, p := range parts {
		if p.Type == "text" {
			b.WriteString(p.Text)
		}
	}
	return b.String()
}

func (u *upstream) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/chat/completions" {
		upstreamError(w, http.StatusNotFound, "only POST /v1/chat/completions is served")
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+upstreamKey {
		upstreamError(w, http.StatusUnauthorized, "wrong upstream key")
		return
	}
	var req struct {
		Model    string        `json:"model"`
		Messages []chatMessage `json:"messages"`
		Stream   bool          `json:"stream"`
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
	if err == nil {
		err = json.Unmarshal(body, &req)
	}
	if err != nil {
		upstreamError(w, http.StatusBadRequest, "bad body: "+err.Error())
		return
	}
	if req.Stream {
		upstreamError(w, http.StatusBadRequest, "the benchmark upstream does not stream")
		return
	}
	prompt, promptTokens := "", 0
	for _, m := range req.Messages {
		t := m.text()
		promptTokens += 4 + (len(t)+3)/4
		if m.Role == "user" {
			prompt = t
		}
	}
	n := u.calls.Add(1)
	resp := map[string]any{
		"id": fmt.Sprintf("chatcmpl-cq%d", n), "object": "chat.completion", "created": 1_700_000_000, "model": req.Model,
		"choices": []any{map[string]any{
			"index": 0, "finish_reason": "stop",
			"message": map[string]any{"role": "assistant", "content": encodeAnswer(prompt)},
		}},
		"usage": map[string]any{
			"prompt_tokens": promptTokens, "completion_tokens": u.completionTokens,
			"total_tokens": promptTokens + u.completionTokens,
		},
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp)
}

func upstreamError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"message": msg, "type": "invalid_request_error"}})
}

// clip shortens s to at most n bytes for messages, cutting at a rune.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }
