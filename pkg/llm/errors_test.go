package llm

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestForClient(t *testing.T) {
	up := func(status int) *Error {
		return &Error{Status: status, Upstream: true, Provider: "openai", Message: "upstream says no", RetryAfter: 2 * time.Second}
	}
	tests := []struct {
		name   string
		err    error
		status int
		typ    string
		code   string
	}{
		{"client left", fmt.Errorf("reading: %w", context.Canceled), StatusClientClosed, TypeInvalidRequest, ""},
		{"deadline", context.DeadlineExceeded, 504, TypeTimeout, "upstream_timeout"},
		{"plain error hides detail", errors.New("disk on fire"), 500, TypeServer, "internal_error"},
		{"our own error kept", InvalidParam("n", "bad"), 400, TypeInvalidRequest, ""},
		{"upstream 400 is the client's", up(400), 400, TypeInvalidRequest, ""},
		{"upstream 422 is the client's", up(422), 400, TypeInvalidRequest, ""},
		{"upstream 401 is ours", up(401), 502, TypeUpstream, "upstream_auth_failed"},
		{"upstream 403 is ours", up(403), 502, TypeUpstream, "upstream_auth_failed"},
		{"upstream 429 stays 429", up(429), 429, TypeRateLimit, ""},
		{"upstream 500", up(500), 502, TypeUpstream, "upstream_error"},
		{"upstream 503", up(503), 502, TypeUpstream, "upstream_error"},
		{"upstream 504", up(504), 504, TypeTimeout, "upstream_timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := ForClient(tt.err)
			if e.Status != tt.status || e.Type != tt.typ || e.Code != tt.code {
				t.Fatalf("got %d %s %q, want %d %s %q", e.Status, e.Type, e.Code, tt.status, tt.typ, tt.code)
			}
		})
	}
	if e := ForClient(up(429)); e.RetryAfter != 2*time.Second {
		t.Fatal("Retry-After lost")
	}
	if e := ForClient(errors.New("secret sk-123")); e.Message == "" || contains(e.Message, "sk-123") {
		t.Fatalf("internal detail leaked: %q", e.Message)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// TestForClientHidesUpstreamDetail: no upstream address, URL or key in
// what the client gets, whatever the upstream said; the upstream's error
// stays reachable for the log.
func TestForClientHidesUpstreamDetail(t *testing.T) {
	const key = "sk-proj-AbCdEf0123456789xyz"
	leaks := []string{"10.1.2.3", "8443", "internal.example.com", "llm-gw.svc.cluster.local", "https://", key, "AbCdEf0123456789", "9f8e7d6c5b4a39281706f5e4d3c2b1a0f9e8d7c6"}
	tests := []struct {
		name    string
		err     *Error
		status  int
		code    string
		message string // the whole message the client gets
	}{
		{"connection refused", &Error{Status: 502, Type: TypeUpstream, Upstream: true, Provider: "openai-main", Retryable: true,
			Message: "upstream connection failed: dial tcp 10.1.2.3:8443: connect: connection refused"},
			502, "upstream_error", "upstream openai-main failed to serve the request; the details are in tollgate's log"},
		{"TLS", &Error{Status: 502, Type: TypeUpstream, Upstream: true, Provider: "openai-main",
			Message: "upstream connection failed: tls: failed to verify certificate: x509: certificate is valid for internal.example.com, not llm-gw.svc.cluster.local"},
			502, "upstream_error", "upstream openai-main failed to serve the request; the details are in tollgate's log"},
		{"500 echoing its URL and key", &Error{Status: 500, Upstream: true, Provider: "openai-main",
			Message: "POST https://internal.example.com:8443/v1/chat/completions failed with key " + key},
			502, "upstream_error", "upstream openai-main failed to serve the request; the details are in tollgate's log"},
		{"429 quoting the organisation", &Error{Status: 429, Upstream: true, Provider: "openai-main", Code: "rate_limit_exceeded",
			Message: "Rate limit reached for org-9f8e7d6c5b4a39281706f5e4d3c2b1a0f9e8d7c6 at https://internal.example.com"},
			429, "rate_limit_exceeded", "upstream openai-main is rate limiting tollgate (429); retry later"},
		{"401 quoting the key", &Error{Status: 401, Upstream: true, Provider: "openai-main", Code: "invalid_api_key",
			Message: "Incorrect API key provided: " + key},
			502, "upstream_auth_failed", "upstream openai-main rejected tollgate's credentials (401); the gateway's provider configuration needs attention"},
		{"504", &Error{Status: 504, Upstream: true, Provider: "openai-main", Message: "gateway 10.1.2.3:8443 timed out"},
			504, "upstream_timeout", "upstream openai-main did not answer in time"},
		{"400 keeps what the client must fix", &Error{Status: 400, Upstream: true, Provider: "openai-main", Code: "context_length_exceeded", Param: "messages",
			Message: "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens."},
			400, "context_length_exceeded", "upstream openai-main rejected the request (400): This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens."},
		{"400 scrubbed of URL, host, address and key", &Error{Status: 400, Upstream: true, Provider: "openai-main",
			Message: "Invalid URL (POST https://internal.example.com:8443/v1/chat?api_key=" + key + "), host llm-gw.svc.cluster.local at 10.1.2.3:8443, key " + key + ", Bearer 9f8e7d6c5b4a39281706f5e4d3c2b1a0f9e8d7c6"},
			400, "", "upstream openai-main rejected the request (400): Invalid URL (POST <address>), host <address> at <address>, key <redacted>, Bearer <redacted>"},
		{"400 with an unknown key shape", &Error{Status: 422, Upstream: true, Provider: "vllm",
			Message: "token 9f8e7d6c5b4a39281706f5e4d3c2b1a0f9e8d7c6 is not valid for model meta-llama/Llama-3.1-8B-Instruct"},
			400, "", "upstream vllm rejected the request (422): token <redacted> is not valid for model meta-llama/Llama-3.1-8B-Instruct"},
		{"code and param that are not tokens are dropped", &Error{Status: 400, Upstream: true, Provider: "p", Code: "see https://internal.example.com", Param: "x y",
			Message: "bad"},
			400, "", "upstream p rejected the request (400): bad"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := ForClient(tt.err)
			if e.Status != tt.status || e.Code != tt.code || e.Message != tt.message {
				t.Fatalf("got %d %q %q\nwant %d %q %q", e.Status, e.Code, e.Message, tt.status, tt.code, tt.message)
			}
			for _, leak := range leaks {
				if strings.Contains(e.Message+e.Code+e.Param, leak) {
					t.Errorf("client sees %q: %q", leak, e.Message)
				}
			}
			if cause, ok := UpstreamCause(e); !ok || cause != tt.err {
				t.Errorf("the upstream's error is not kept for the log")
			}
		})
	}
}

func TestRedactSecrets(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"OpenAI project key", "Incorrect API key provided: sk-proj-AbCdEf0123456789", "Incorrect API key provided: <redacted>"},
		{"Anthropic key", "x-api-key sk-ant-api03-AbCdEf0123456789 invalid", "x-api-key <redacted> invalid"},
		{"gateway key", "key tg-AbCdEf0123456789AbCdEf", "key <redacted>"},
		{"Groq key", "gsk_AbCdEf0123456789AbCdEf", "<redacted>"},
		{"Google key", "key=AIzaSyA1234567890abcdefghijklmnop", "key=<redacted>"},
		{"bearer", "Authorization: Bearer abc.def.ghi", "Authorization: Bearer <redacted>"},
		{"query", "GET https://h/v1?api-key=s3cr3t&x=1", "GET https://h/v1?api-key=<redacted>&x=1"},
		{"addresses stay for the operator", "dial tcp 10.1.2.3:8443: connection refused", "dial tcp 10.1.2.3:8443: connection refused"},
		{"a model name is no key", "model gpt-4o-mini-2024-07-18 skipped", "model gpt-4o-mini-2024-07-18 skipped"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RedactSecrets(tt.in); got != tt.want {
				t.Fatalf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}
