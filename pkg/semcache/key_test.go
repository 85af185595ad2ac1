package semcache

import (
	"strings"
	"testing"
)

const baseBody = `{"model":"gpt-4o-mini","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"What is the capital of France?"}],"temperature":0.2,"max_tokens":64}`

// with returns baseBody with its closing brace replaced by extra members.
func with(extra string) string {
	return strings.TrimSuffix(baseBody, "}") + "," + extra + "}"
}

func TestExactKeyCanonical(t *testing.T) {
	env := newTestEnv(t)
	c := env.open(t, nil)
	tests := []struct {
		name string
		a, b string
		same bool
	}{
		// Equivalent spellings.
		{"key order and whitespace", baseBody, `{ "max_tokens": 64, "temperature": 0.2,
			"messages": [ {"content": "Be brief.", "role": "system"}, {"role": "user", "content": "What is the capital of France?"} ],
			"model": "gpt-4o-mini" }`, true},
		{"number spelling", with(`"top_p":1`), strings.Replace(with(`"top_p":1.0e0`), "0.2", "2e-1", 1), true},
		{"string escapes", baseBody, strings.Replace(baseBody, "France", `Fr\u0061nce`, 1), true},
		{"single text part is a string", baseBody, strings.Replace(baseBody, `"content":"What is the capital of France?"`, `"content":[{"type":"text","text":"What is the capital of France?"}]`, 1), true},
		{"model field replaced by asked model", baseBody, strings.Replace(baseBody, `"model":"gpt-4o-mini"`, `"model":"something-else"`, 1), true},
		// Fields that do not change the output.
		{"stream", baseBody, with(`"stream":true,"stream_options":{"include_usage":true}`), true},
		{"user", baseBody, with(`"user":"alice"`), true},
		{"metadata and store", baseBody, with(`"metadata":{"run":"7"},"store":true`), true},
		{"service tier", baseBody, with(`"service_tier":"flex"`), true},
		{"safety identifier and prompt cache key", baseBody, with(`"safety_identifier":"u1","prompt_cache_key":"k"`), true},
		// Output-changing parameters.
		{"user text", baseBody, strings.Replace(baseBody, "France", "Spain", 1), false},
		{"system prompt", baseBody, strings.Replace(baseBody, "Be brief.", "Be verbose.", 1), false},
		{"temperature", baseBody, strings.Replace(baseBody, "0.2", "0.21", 1), false},
		{"max_tokens", baseBody, strings.Replace(baseBody, "64", "65", 1), false},
		{"max_completion_tokens", baseBody, with(`"max_completion_tokens":10`), false},
		{"top_p", baseBody, with(`"top_p":0.5`), false},
		{"seed", baseBody, with(`"seed":42`), false},
		{"seed value", with(`"seed":9007199254740993`), with(`"seed":9007199254740992`), false},
		{"stop", baseBody, with(`"stop":["\n"]`), false},
		{"frequency penalty", baseBody, with(`"frequency_penalty":0.5`), false},
		{"presence penalty", baseBody, with(`"presence_penalty":0.5`), false},
		{"logit bias", baseBody, with(`"logit_bias":{"50256":-100}`), false},
		{"tools", baseBody, with(`"tools":[{"type":"function","function":{"name":"f"}}]`), false},
		{"tool choice", with(`"tools":[{"type":"function","function":{"name":"f"}}]`), with(`"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"required"`), false},
		{"parallel tool calls", baseBody, with(`"parallel_tool_calls":false`), false},
		{"response format", baseBody, with(`"response_format":{"type":"json_object"}`), false},
		{"reasoning effort", baseBody, with(`"reasoning_effort":"high"`), false},
		{"unknown field counts", baseBody, with(`"some_new_knob":1`), false},
		{"message name", baseBody, strings.Replace(baseBody, `"role":"user"`, `"role":"user","name":"bob"`, 1), false},
		{"two text parts are not one string", baseBody, strings.Replace(baseBody, `"content":"What is the capital of France?"`, `"content":[{"type":"text","text":"What is the capital "},{"type":"text","text":"of France?"}]`, 1), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := c.ExactKey(req(t, "t1", tt.a))
			b := c.ExactKey(req(t, "t1", tt.b))
			if a == "" || b == "" {
				t.Fatal("empty key")
			}
			if (a == b) != tt.same {
				t.Errorf("same key = %v, want %v", a == b, tt.same)
			}
		})
	}
}

func TestExactKeyScopedByTenantAndModel(t *testing.T) {
	env := newTestEnv(t)
	c := env.open(t, nil)
	base := req(t, "t1", baseBody)
	other := base
	other.Tenant = "t2"
	if c.ExactKey(base) == c.ExactKey(other) {
		t.Error("tenants share an exact key")
	}
	other = base
	other.Model = "fast-route"
	if c.ExactKey(base) == c.ExactKey(other) {
		t.Error("models share an exact key")
	}
}

func TestExactKeyWithoutRaw(t *testing.T) {
	env := newTestEnv(t)
	c := env.open(t, nil)
	r := req(t, "t1", baseBody)
	r.Chat.Raw = nil // typed view only: still a key, still stable
	if k := c.ExactKey(r); k == "" || k != c.ExactKey(r) {
		t.Errorf("key %q not stable", k)
	}
	if k := c.ExactKey(Request{Tenant: "t1"}); k != "" {
		t.Errorf("no chat: key %q, want empty", k)
	}
}

func FuzzExactKey(f *testing.F) {
	f.Add(baseBody)
	f.Add(`{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"x"}]}],"n":1e0}`)
	f.Fuzz(func(t *testing.T, body string) {
		r, err := llmDecode(body)
		if err != nil {
			return
		}
		k1, err1 := computeKeys(Request{Tenant: "t", Model: "m", Chat: r}, 1)
		k2, err2 := computeKeys(Request{Tenant: "t", Model: "m", Chat: r}, 1)
		if (err1 == nil) != (err2 == nil) || k1 != k2 {
			t.Fatalf("unstable keys for %s", body)
		}
	})
}
