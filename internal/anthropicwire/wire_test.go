package anthropicwire

import (
	"net/http"
	"testing"

	"github.com/tollgate/tollgate/pkg/llm"
)

// TestStopReasonsRoundTrip: every stop reason tollgate can report maps to
// a finish_reason that maps back to it.
func TestStopReasonsRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		stop, seq, finish string
	}{
		{"end_turn", "", "stop"},
		{"stop_sequence", "END", "stop"},
		{"max_tokens", "", "length"},
		{"tool_use", "", "tool_calls"},
		{"refusal", "", "content_filter"},
	} {
		t.Run(tc.stop, func(t *testing.T) {
			if got := FinishReason(tc.stop); got != tc.finish {
				t.Fatalf("FinishReason(%q) = %q, want %q", tc.stop, got, tc.finish)
			}
			if got := StopReason(tc.finish, tc.seq); got != tc.stop {
				t.Fatalf("StopReason(%q, %q) = %q, want %q", tc.finish, tc.seq, got, tc.stop)
			}
		})
	}
	if FinishReason("pause_turn") != "stop" || FinishReason("model_context_window_exceeded") != "length" {
		t.Error("pause_turn / model_context_window_exceeded")
	}
}

// TestUsageRoundTrip: Anthropic's usage survives the trip through
// OpenAI's shape; usage nobody reported reads as zero.
func TestUsageRoundTrip(t *testing.T) {
	for _, u := range []Usage{
		{InputTokens: 10, OutputTokens: 5},
		{InputTokens: 10, OutputTokens: 5, CacheReadInputTokens: 300, CacheCreationInputTokens: 40},
		{},
	} {
		l := u.ToLLM()
		if l.PromptTokens != u.InputTokens+u.CacheReadInputTokens+u.CacheCreationInputTokens || l.CachedTokens() != u.CacheReadInputTokens {
			t.Errorf("ToLLM(%+v) = %+v", u, l)
		}
		if back := UsageOf(l); back != u {
			t.Errorf("UsageOf(ToLLM(%+v)) = %+v", u, back)
		}
	}
	if UsageOf(nil) != (Usage{}) {
		t.Error("nil usage")
	}
	// An OpenAI count without details: all of it is plain input.
	if got := UsageOf(&llm.Usage{PromptTokens: 7, CompletionTokens: 2}); got != (Usage{InputTokens: 7, OutputTokens: 2}) {
		t.Errorf("%+v", got)
	}
}

// TestErrorTypes: the statuses tollgate answers map to Anthropic's types,
// and those types back to statuses.
func TestErrorTypes(t *testing.T) {
	for _, tc := range []struct {
		status int
		typ    string
		back   int
	}{
		{400, ErrInvalidRequest, 400},
		{401, ErrAuthentication, 401},
		{402, ErrBilling, 402},
		{403, ErrPermission, 403},
		{404, ErrNotFound, 404},
		{413, ErrTooLarge, 413},
		{429, ErrRateLimit, 429},
		{500, ErrAPI, 500},
		{502, ErrAPI, 500},
		{503, ErrOverloaded, StatusOverloaded},
		{504, ErrTimeout, http.StatusGatewayTimeout},
		{StatusOverloaded, ErrOverloaded, StatusOverloaded},
	} {
		if got := ErrorTypeFor(tc.status); got != tc.typ {
			t.Errorf("ErrorTypeFor(%d) = %q, want %q", tc.status, got, tc.typ)
		}
		if got := StatusFor(tc.typ); got != tc.back {
			t.Errorf("StatusFor(%q) = %d, want %d", tc.typ, got, tc.back)
		}
	}
	if StatusFor("something_new") != http.StatusBadGateway {
		t.Error("unknown type")
	}
}
