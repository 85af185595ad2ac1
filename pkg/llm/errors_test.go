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
