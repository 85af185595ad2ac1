package httpapi_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

// TestErrorWireGolden pins the exact bytes of every error answer clients and
// SDKs parse: status, the headers that matter, and the OpenAI envelope.
func TestErrorWireGolden(t *testing.T) {
	s := newStack(t, stackOptions{maxBodyBytes: 2048})
	bearer := "Bearer " + s.secret
	tests := []struct {
		name    string
		method  string
		path    string
		auth    string
		headers map[string]string
		body    string
	}{
		{"no key", "POST", "/v1/chat/completions", "", nil, `{}`},
		{"bad bearer", "POST", "/v1/chat/completions", "Bearer tg-wrong-wrong-wrong", nil, `{}`},
		{"basic auth is not a key", "POST", "/v1/chat/completions", "Basic dXNlcjpwYXNz", nil, `{}`},
		{"malformed json", "POST", "/v1/chat/completions", bearer, nil, `{"model": "sim-small", "messages": [`},
		{"empty body", "POST", "/v1/chat/completions", bearer, nil, ``},
		{"wrong type", "POST", "/v1/chat/completions", bearer, nil, `{"model":"sim-small","messages":[{"role":"user","content":"x"}],"temperature":"hot"}`},
		{"missing messages", "POST", "/v1/chat/completions", bearer, nil, `{"model":"sim-small"}`},
		{"unknown model", "POST", "/v1/chat/completions", bearer, nil, `{"model":"nope","messages":[{"role":"user","content":"x"}]}`},
		{"too large", "POST", "/v1/chat/completions", bearer, nil, `{"model":"sim-small","messages":[{"role":"user","content":"` + strings.Repeat("a", 3000) + `"}]}`},
		{"too large without length", "POST", "/v1/chat/completions", bearer, map[string]string{"Transfer-Encoding": "chunked"}, `{"model":"sim-small","messages":[{"role":"user","content":"` + strings.Repeat("a", 3000) + `"}]}`},
		{"x-api-key accepted, bad embeddings input", "POST", "/v1/embeddings", "", map[string]string{"x-api-key": s.secret}, `{"model":"sim-embed","input":[]}`},
		{"no such endpoint", "GET", "/v1/nothing", bearer, nil, ``},
		{"wrong method", "GET", "/v1/chat/completions", bearer, nil, ``},
		{"admin without key", "GET", "/admin/keys", "", nil, ``},
		{"admin with a gateway key", "GET", "/admin/keys", bearer, nil, ``},
		{"admin unknown field", "POST", "/admin/keys", "Bearer " + adminKey, nil, `{"name":"a","budgett":5}`},
		{"admin missing name", "POST", "/admin/keys", "Bearer " + adminKey, nil, `{"allowed_models":["sim-small"]}`},
		{"admin unknown key", "DELETE", "/admin/keys/key_0000", "Bearer " + adminKey, nil, ``},
	}
	var golden bytes.Buffer
	for _, tt := range tests {
		var body io.Reader = strings.NewReader(tt.body)
		if tt.headers["Transfer-Encoding"] != "" {
			body = io.MultiReader(strings.NewReader(tt.body)) // no length known: chunked
		}
		req, _ := http.NewRequest(tt.method, s.srv.URL+tt.path, body)
		if tt.auth != "" {
			req.Header.Set("Authorization", tt.auth)
		}
		for k, v := range tt.headers {
			if k != "Transfer-Encoding" {
				req.Header.Set(k, v)
			}
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var env struct {
			Error struct {
				Message string  `json:"message"`
				Type    string  `json:"type"`
				Param   *string `json:"param"`
				Code    *string `json:"code"`
			} `json:"error"`
		}
		if err := json.Unmarshal(out, &env); err != nil || env.Error.Message == "" || env.Error.Type == "" {
			t.Errorf("%s: not an OpenAI error envelope: %s", tt.name, out)
		}
		if resp.StatusCode < 400 || resp.StatusCode >= 500 {
			t.Errorf("%s: status %d, want a 4xx", tt.name, resp.StatusCode)
		}
		if !strings.HasPrefix(resp.Header.Get("x-tollgate-request-id"), "req_") {
			t.Errorf("%s: no request id", tt.name)
		}
		fmt.Fprintf(&golden, "### %s: %s %s\n%d %s\ncontent-type: %s\nwww-authenticate: %s\n%s\n\n", tt.name, tt.method, tt.path,
			resp.StatusCode, http.StatusText(resp.StatusCode), resp.Header.Get("Content-Type"), resp.Header.Get("WWW-Authenticate"), out)
	}
	compareGolden(t, filepath.Join("..", "..", "testdata", "httpapi", "errors.golden"), golden.Bytes())
}

func compareGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (run with -update after checking):\n--- got\n%s", path, got)
	}
}
