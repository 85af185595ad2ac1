package semcache

import (
	"strings"
	"testing"
)

func TestScope(t *testing.T) {
	base := req(t, "t1", baseBody)
	baseKeys, err := computeKeys(base, 1)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		tenant string
		model  string
		body   string
		same   bool
	}{
		{"tenant", "t2", "", baseBody, false},
		{"model or route", "", "fast-route", baseBody, false},
		{"system prompt", "", "", strings.Replace(baseBody, "Be brief.", "Be verbose.", 1), false},
		{"developer message is system prompt", "", "", strings.Replace(baseBody, `"role":"system"`, `"role":"developer"`, 1), false},
		{"tools", "", "", with(`"tools":[{"type":"function","function":{"name":"f"}}]`), false},
		{"tool choice", "", "", with(`"tool_choice":"none"`), false},
		{"response format", "", "", with(`"response_format":{"type":"json_object"}`), false},
		{"temperature bucket", "", "", strings.Replace(baseBody, "0.2", "0.7", 1), false},
		{"top_p bucket", "", "", with(`"top_p":0.5`), false},
		{"seed presence", "", "", with(`"seed":1`), false},
		{"stop", "", "", with(`"stop":"END"`), false},
		{"earlier conversation", "", "", strings.Replace(baseBody, `{"role":"user"`, `{"role":"user","content":"hi"},{"role":"assistant","content":"hello"},{"role":"user"`, 1), false},
		// The semantic path matches across these: same scope.
		{"user turn text", "", "", strings.Replace(baseBody, "capital of France", "capital city of France", 1), true},
		{"temperature within its bucket", "", "", strings.Replace(baseBody, "0.2", "0.21", 1), true},
		{"max_tokens", "", "", strings.Replace(baseBody, "64", "128", 1), true},
		{"stream and user", "", "", with(`"stream":true,"user":"u"`), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := req(t, "t1", tt.body)
			if tt.tenant != "" {
				r.Tenant = tt.tenant
			}
			if tt.model != "" {
				r.Model = tt.model
			}
			k, err := computeKeys(r, 1)
			if err != nil {
				t.Fatal(err)
			}
			if (k.scope == baseKeys.scope) != tt.same {
				t.Errorf("same scope = %v, want %v", k.scope == baseKeys.scope, tt.same)
			}
		})
	}
}

func TestSeedValuesShareScope(t *testing.T) {
	a, _ := computeKeys(req(t, "t1", with(`"seed":1`)), 1)
	b, _ := computeKeys(req(t, "t1", with(`"seed":2`)), 1)
	if a.scope != b.scope || a.exact == b.exact {
		t.Errorf("seed 1 vs 2: scope equal %v (want true), exact equal %v (want false)", a.scope == b.scope, a.exact == b.exact)
	}
}

func TestSemanticWindow(t *testing.T) {
	tests := []struct {
		name       string
		body       string
		turns      int
		query      string
		noSemantic bool
	}{
		{"last user turn", baseBody, 1, "What is the capital of France?", false},
		{"last two turns", `{"model":"m","messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"},{"role":"user","content":"c"}]}`, 2, "a\nc", false},
		{"fewer turns than asked", `{"model":"m","messages":[{"role":"user","content":"a"}]}`, 3, "a", false},
		{"ends with a tool result", `{"model":"m","messages":[{"role":"user","content":"a"},{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c1","content":"r"}]}`, 1, "", true},
		{"image in the turn", `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"what is this?"},{"type":"image_url","image_url":{"url":"https://x/y.png"}}]}]}`, 1, "", true},
		{"text parts joined", `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}]}`, 1, "a\nb", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := computeKeys(req(t, "t1", tt.body), tt.turns)
			if err != nil {
				t.Fatal(err)
			}
			if k.query != tt.query || (k.noSemantic != "") != tt.noSemantic {
				t.Errorf("query %q (no semantic: %q), want %q (no semantic: %v)", k.query, k.noSemantic, tt.query, tt.noSemantic)
			}
		})
	}
}
