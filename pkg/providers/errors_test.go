package providers

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/pkg/llm"
)

// TestUpstreamErrorRedactsItsKey: an upstream that echoes the key it was
// sent (configured or per request, in whichever header its format uses)
// yields an error whose text, kept for the server's log, does not hold it.
func TestUpstreamErrorRedactsItsKey(t *testing.T) {
	const configured, perRequest = "cfg-Key-0123456789abcdef", "req-Key-fedcba9876543210"
	echo := func(status int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			sent := r.Header.Get("Authorization") + r.Header.Get("X-Api-Key") + r.Header.Get("Api-Key")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"error":{"message":"POST http://%s%s refused credential %s","type":"x","code":"bad_key_%s"}}`,
				r.Host, r.URL.Path, sent, strings.TrimPrefix(sent, "Bearer "))
		}
	}
	newOpenAI := func(authHeader string) func(string) (Provider, error) {
		return func(url string) (Provider, error) {
			return NewOpenAI(OpenAIConfig{Name: "up", BaseURL: url + "/v1", APIKey: configured, AuthHeader: authHeader})
		}
	}
	newAnthropic := func(url string) (Provider, error) {
		return NewAnthropic(AnthropicConfig{Name: "up", BaseURL: url, APIKey: configured})
	}
	tests := []struct {
		name   string
		status int // the upstream's; Anthropic's 529 (overloaded) is read as 503
		newP   func(url string) (Provider, error)
		apiKey string // per request; "": the configured key
	}{
		{"openai 500, configured key", 500, newOpenAI(""), ""},
		{"openai 400, per-request key", 400, newOpenAI(""), perRequest},
		{"azure-style api-key header", 401, newOpenAI("api-key"), ""},
		{"anthropic 400", 400, newAnthropic, ""},
		{"anthropic 529, per-request key", 529, newAnthropic, perRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(echo(tt.status))
			defer srv.Close()
			p, err := tt.newP(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			_, err = p.Chat(context.Background(), &Request{Chat: mustChat(t, clientBody), Model: "m", APIKey: tt.apiKey, MaxTokens: 16})
			e := asLLMError(t, err)
			if want := min(tt.status, 503); e.Status != want || !e.Upstream {
				t.Fatalf("got %+v", e)
			}
			text := e.Error() + " " + e.Code
			if strings.Contains(text, configured) || strings.Contains(text, perRequest) {
				t.Fatalf("the key is in the error: %s", text)
			}
			if !strings.Contains(e.Message, "refused credential") || !strings.Contains(e.Message, "<redacted>") {
				t.Fatalf("the rest of the upstream's message is lost: %s", e.Message)
			}
		})
	}
}

// TestFillFromBodyKeepsOnlyPlainCodes: an error envelope's type, code and
// param are kept when they are plain tokens; free text there (which headers
// and the admin view would quote) moves to the message.
func TestFillFromBodyKeepsOnlyPlainCodes(t *testing.T) {
	tests := []struct {
		name                    string
		body                    string
		typ, code, param, inMsg string
	}{
		{"plain", `{"error":{"message":"m","type":"invalid_request_error","code":"context_length_exceeded","param":"messages[0].content"}}`,
			"invalid_request_error", "context_length_exceeded", "messages[0].content", "m"},
		{"numeric code", `{"error":{"message":"m","code":429}}`, "", "429", "", "m"},
		{"a URL as code", `{"error":{"message":"m","type":"server_error","code":"see http://10.1.2.3:8443/help"}}`,
			"server_error", "", "", "m (upstream code: see http://10.1.2.3:8443/help)"},
		{"a sentence as type and param", `{"error":{"message":"m","type":"Server at gw.internal failed","param":"a b"}}`,
			"", "", "", "m (upstream type: Server at gw.internal failed) (upstream param: a b)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e llm.Error
			if !fillFromBody(&e, []byte(tt.body)) {
				t.Fatal("no envelope read")
			}
			if e.Type != tt.typ || e.Code != tt.code || e.Param != tt.param || e.Message != tt.inMsg {
				t.Fatalf("got type %q code %q param %q message %q", e.Type, e.Code, e.Param, e.Message)
			}
		})
	}
}
