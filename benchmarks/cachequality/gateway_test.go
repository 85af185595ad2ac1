package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

func TestAnswerRoundTrip(t *testing.T) {
	for _, p := range []string{"", "plain", `quotes " and 'tabs'`, "ünïcödé ’ and\nnewline", "ANSWER:nested"} {
		got, err := decodeAnswer(encodeAnswer(p))
		if err != nil || got != p {
			t.Errorf("%q: got %q, %v", p, got, err)
		}
	}
	if _, err := decodeAnswer("a real model's answer"); err == nil {
		t.Error("an answer without the prefix was accepted")
	}
}

func TestUpstreamEncodesTheLastUserTurn(t *testing.T) {
	u := newUpstream(7)
	defer u.close()
	post := func(key string, body any) (*http.Response, map[string]any) {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest(http.MethodPost, u.url()+"/chat/completions", bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp, out
	}
	msgs := []any{
		map[string]any{"role": "system", "content": "scope"},
		map[string]any{"role": "user", "content": "an earlier turn"},
		map[string]any{"role": "assistant", "content": "ok"},
		map[string]any{"role": "user", "content": []any{map[string]any{"type": "text", "text": "the question"}}},
	}
	resp, out := post(upstreamKey, map[string]any{"model": "echo", "messages": msgs})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %v", resp.StatusCode, out)
	}
	content := out["choices"].([]any)[0].(map[string]any)["message"].(map[string]any)["content"].(string)
	if got, err := decodeAnswer(content); err != nil || got != "the question" {
		t.Fatalf("answer encodes %q (%v), want the last user turn", got, err)
	}
	usage := out["usage"].(map[string]any)
	// 4 messages: 4 tokens each plus ceil(len/4): scope 2, earlier turn 4, ok 1, the question 3.
	if usage["prompt_tokens"] != float64(4*4+2+4+1+3) || usage["completion_tokens"] != float64(7) {
		t.Fatalf("usage %v", usage)
	}
	if resp, _ := post("another key", map[string]any{"model": "echo", "messages": msgs}); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a wrong key got %d, want 401", resp.StatusCode)
	}
	if got := u.calls.Load(); got != 1 {
		t.Fatalf("calls %d, want 1 (the refused one does not count)", got)
	}
}

func TestReadOutcome(t *testing.T) {
	body := func(prompt string) []byte {
		b, _ := json.Marshal(map[string]any{"choices": []any{map[string]any{"message": map[string]any{"content": encodeAnswer(prompt)}}}})
		return b
	}
	tests := []struct {
		name    string
		headers map[string]string
		body    []byte
		want    outcome
		wantErr string
	}{
		{name: "miss with its cost",
			headers: map[string]string{headerCache: "miss", headerCost: "0.002033", headerSimilarity: "0.8123", headerReason: "guard: number"},
			body:    body("asked"),
			want:    outcome{Kind: kindMiss, Served: "asked", Cost: 2033, Priced: true, Similarity: 0.8123, Reason: "guard: number"}},
		{name: "semantic hit with what it saved",
			headers: map[string]string{headerCache: "semantic-hit", headerCost: "0.000000", headerSaved: "0.001500", headerSimilarity: "0.9100", headerVerified: "judge"},
			body:    body("cached"),
			want:    outcome{Kind: kindSemantic, Served: "cached", Saved: 1500, Priced: true, Similarity: 0.91, Verified: "judge"}},
		{name: "an unpriced miss",
			headers: map[string]string{headerCache: "miss", headerCost: "unknown"},
			body:    body("asked"),
			want:    outcome{Kind: kindMiss, Served: "asked"}},
		{name: "no cache header", headers: map[string]string{}, body: body("x"), wantErr: "is the cache on?"},
		{name: "not the benchmark's answer", headers: map[string]string{headerCache: "miss"},
			body: []byte(`{"choices":[{"message":{"content":"hello"}}]}`), wantErr: "not the benchmark upstream's"},
		{name: "no choices", headers: map[string]string{headerCache: "miss"}, body: []byte(`{"choices":[]}`), wantErr: "no choices"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tt.headers {
				h.Set(k, v)
			}
			got, err := readOutcome(h, tt.body)
			if !wantErr(t, err, tt.wantErr) {
				return
			}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestOverrides(t *testing.T) {
	tests := []struct {
		name    string
		sets    []string
		check   func(t *testing.T, c *gatewayConfig)
		wantErr string
	}{
		{name: "a value keeps its YAML type", sets: []string{"cache.semantic.threshold=0.85", "cache.semantic.turns=2"},
			check: func(t *testing.T, c *gatewayConfig) {
				if c.semantic["cache.semantic.threshold"] != 0.85 || c.semantic["cache.semantic.turns"] != 2 {
					t.Fatalf("settings %v", c.semantic)
				}
			}},
		{name: "later overrides win", sets: []string{"cache.semantic.threshold=0.8", "cache.semantic.threshold=0.9"},
			check: func(t *testing.T, c *gatewayConfig) {
				if c.semantic["cache.semantic.threshold"] != 0.9 {
					t.Fatalf("threshold %v", c.semantic["cache.semantic.threshold"])
				}
			}},
		{name: "an unknown key is named", sets: []string{"cache.semantic.treshold=0.8"}, wantErr: "cache.semantic.treshold"},
		{name: "a bad value is named", sets: []string{"cache.semantic.threshold=2"}, wantErr: "cache.semantic.threshold"},
		{name: "lists cannot be reached", sets: []string{"providers.x=1"}, wantErr: "providers is not a map"},
		{name: "no value", sets: []string{"cache.semantic.threshold"}, wantErr: "want key=value"},
		{name: "an empty key", sets: []string{"cache..threshold=1"}, wantErr: "empty key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ovs []override
			var err error
			for _, s := range tt.sets {
				var o override
				if o, err = parseOverride(s); err != nil {
					break
				}
				ovs = append(ovs, o)
			}
			var c *gatewayConfig
			if err == nil {
				c, err = buildConfig(baseConfig("http://127.0.0.1:1/v1", prices{1, 2}), ovs)
			}
			if !wantErr(t, err, tt.wantErr) {
				return
			}
			tt.check(t, c)
		})
	}
}

func TestList(t *testing.T) {
	got, err := list("workload, pairs,pairs", "-mode", modePairs, modeWorkload)
	if err != nil || strings.Join(got, ",") != "pairs,workload" {
		t.Fatalf("got %v, %v", got, err)
	}
	if _, err := list("pairs,sweep", "-mode", modePairs, modeWorkload); err == nil {
		t.Fatal("an unknown mode was accepted")
	}
}

func TestModuleRoot(t *testing.T) {
	root, err := moduleRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(filepath.Join(root, "benchmarks", "cachequality"))
	if here, _ := filepath.Abs("."); abs != here {
		t.Fatalf("root %s: this package is not at benchmarks/cachequality below it", root)
	}
	if _, err := moduleRoot(t.TempDir()); err == nil {
		t.Fatal("a directory outside the repository was given a root")
	}
}
