package httpapi

import (
	"bytes"
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/tollgate/tollgate/pkg/gateway"
	"github.com/tollgate/tollgate/pkg/keys"
	"github.com/tollgate/tollgate/pkg/llm"
)

// TestSeedsFillTheCaller: what the seed fields say reaches the Caller the
// gateway is given, on each surface; the body decoded is without them.
func TestSeedsFillTheCaller(t *testing.T) {
	tests := []struct {
		name     string
		surface  surface
		body     string
		customer string
		tags     map[string]string
		opts     gateway.RequestOptions
		creds    map[string]string
		ttl      time.Duration
		kept     string // a member the decoded body still holds
	}{
		{name: "chat: customer_identifier wins over customer_params and user", surface: openAISurface,
			body:     `{"model":"m","messages":[{"role":"user","content":"hi"}],"customer_params":{"customer_identifier":"p-1","email":"a@b.c"},"customer_identifier":"c-1","user":"u-1","metadata":{"team":"search"}}`,
			customer: "c-1", tags: map[string]string{"team": "search"}, kept: `"user":"u-1"`},
		{name: "chat: customer_params before user", surface: openAISurface,
			body:     `{"model":"m","messages":[{"role":"user","content":"hi"}],"user":"u-1","customer_params":{"customer_identifier":"p-1"}}`,
			customer: "p-1"},
		{name: "chat: user alone", surface: openAISurface,
			body:     `{"model":"m","messages":[{"role":"user","content":"hi"}],"user":"u-1"}`,
			customer: "u-1"},
		{name: "chat: every option", surface: openAISurface,
			body: `{"model":"m","messages":[{"role":"user","content":"hi"}],"fallback_models":["a","b"],"cache_enabled":false,"cache_ttl":3600,` +
				`"cache_options":{"cache_by_customer":true},"disable_log":true,"customer_identifier":"c","customer_credentials":{"openai":{"api_key":"sk-1"},"Groq":"gsk-2"}}`,
			customer: "c", opts: gateway.RequestOptions{Fallbacks: []string{"a", "b"}, NoCache: true, CacheByCustomer: true, NoLog: true},
			creds: map[string]string{"openai": "sk-1", "groq": "gsk-2"}, ttl: time.Hour},
		{name: "chat: null is no value", surface: openAISurface,
			body: `{"model":"m","messages":[{"role":"user","content":"hi"}],"fallback_models":null,"metadata":null,"cache_enabled":null}`},
		{name: "completions", surface: openAISurface,
			body:     `{"model":"m","prompt":"hi","metadata":{"k":"v"},"customer_identifier":"c-2"}`,
			customer: "c-2", tags: map[string]string{"k": "v"}},
		{name: "responses: its own metadata are the tags and stay for it", surface: responsesSurface,
			body:     `{"model":"m","input":"hi","metadata":{"k":"v"},"user":"u-3","disable_log":true}`,
			customer: "u-3", tags: map[string]string{"k": "v"}, opts: gateway.RequestOptions{NoLog: true}, kept: `"metadata":{"k":"v"}`},
		{name: "messages: metadata.user_id is the customer", surface: messagesSurface,
			body:     `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}],"metadata":{"user_id":"u-4"},"cache_enabled":false}`,
			customer: "u-4", opts: gateway.RequestOptions{NoCache: true}, kept: `"metadata":{"user_id":"u-4"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rest, sd, err := takeSeeds([]byte(tt.body), tt.surface)
			if err != nil {
				t.Fatal(err)
			}
			if tt.kept != "" && !bytes.Contains(rest, []byte(tt.kept)) {
				t.Errorf("%s lost: %s", tt.kept, rest)
			}
			var req *llm.ChatRequest
			switch {
			case tt.surface == messagesSurface:
				m, err := decodeMessages(rest)
				if err != nil {
					t.Fatal(err)
				}
				req = m.chat
			case tt.surface == responsesSurface:
				r, err := decodeResponses(rest)
				if err != nil {
					t.Fatal(err)
				}
				if req, _, err = r.chatRequest(nil); err != nil {
					t.Fatal(err)
				}
			case strings.Contains(tt.body, `"prompt"`):
				r, err := decodeCompletions(rest)
				if err != nil {
					t.Fatal(err)
				}
				if req, err = r.chatRequest(); err != nil {
					t.Fatal(err)
				}
			default:
				if req, err = decodeChat(rest); err != nil {
					t.Fatal(err)
				}
			}
			gin.SetMode(gin.TestMode)
			c, _ := gin.CreateTestContext(httptest.NewRecorder())
			c.Request = httptest.NewRequest(http.MethodPost, "/", nil)
			c.Writer = &call{ResponseWriter: c.Writer, key: &keys.Key{ID: "k"}, seeds: sd}
			caller, err := callerOf(c, req)
			if err != nil {
				t.Fatal(err)
			}
			if caller.Customer != tt.customer || !maps.Equal(caller.Tags, tt.tags) || !maps.Equal(caller.Credentials, tt.creds) || caller.Cache.TTL != tt.ttl {
				t.Errorf("customer %q tags %v credentials %d ttl %s", caller.Customer, caller.Tags, len(caller.Credentials), caller.Cache.TTL)
			}
			o, want := caller.Options, tt.opts
			if !slices.Equal(o.Fallbacks, want.Fallbacks) || o.NoCache != want.NoCache || o.CacheByCustomer != want.CacheByCustomer || o.NoLog != want.NoLog || o.Config != nil {
				t.Errorf("options %+v, want %+v", o, want)
			}
		})
	}
}

// FuzzTakeSeeds: whatever the body, takeSeeds does not panic, and a body
// it accepts is forwarded without any seed field the surface does not
// keep, still JSON, and untouched when it held none.
func FuzzTakeSeeds(f *testing.F) {
	for _, seed := range []string{
		`{"model":"m","messages":[]}`,
		`{"model":"m","fallback_models":["a"],"cache_enabled":false,"metadata":{"k":"v"}}`,
		`{"customer\u005fcredentials":{"openai":{"api_key":"sk"}},"x":1}`,
		`{"cache_ttl":60 , "disable_log" :true,"customer_params":{"customer_identifier":"c"}}`,
		`{"metadata":{"user_id":"u"},"CACHE_ENABLED":true}`,
		`{"a":{"fallback_models":1},"cache_options":{"cache_by_customer":true}}`,
		` { } `, `[]`, `{"a":`, `{"metadata":{"a":"b","a":"c"}}`,
	} {
		for sf := range 3 {
			f.Add([]byte(seed), uint8(sf))
		}
	}
	f.Fuzz(func(t *testing.T, body []byte, which uint8) {
		sf := surface(which % 3)
		rest, sd, err := takeSeeds(body, sf)
		if err != nil {
			if _, ok := llm.AsError(err); !ok {
				t.Fatalf("not an API error: %v", err)
			}
			return
		}
		if sd == nil && !bytes.Equal(rest, body) {
			t.Fatalf("no seed field, yet the body changed: %q → %q", body, rest)
		}
		if !json.Valid(body) {
			return
		}
		if !json.Valid(rest) {
			t.Fatalf("%q became invalid: %q", body, rest)
		}
		var top map[string]json.RawMessage
		if json.Unmarshal(rest, &top) != nil {
			return // not an object: its surface refuses it
		}
		for k := range top {
			i := seedIndex([]byte(k))
			keeps := i == seedMetadata && sf != openAISurface
			if i >= 0 && !keeps {
				t.Fatalf("%s forwarded: %q → %q", k, body, rest)
			}
		}
	})
}
