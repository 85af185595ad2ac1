package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestResponsesAreStoredByTheServer: run wires the stored-responses store,
// so a response made through the server is found again by its id, and
// legacy completions are served.
func TestResponsesAreStoredByTheServer(t *testing.T) {
	r := start(t, nil, "-data", t.TempDir())
	m := devKeyRE.FindStringSubmatch(r.stdout.String())
	if m == nil {
		t.Fatalf("no development key printed:\n%s", r.stdout.String())
	}
	call := func(method, path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, r.url+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+m[1])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	status, body := call("POST", "/v1/responses", `{"model":"sim-small","input":"hi there"}`)
	var created struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}
	if err := json.Unmarshal([]byte(body), &created); status != 200 || err != nil || created.Status != "completed" {
		t.Fatalf("POST /v1/responses: %d %s", status, body)
	}
	if status, got := call("GET", "/v1/responses/"+created.ID, ""); status != 200 || !strings.Contains(got, created.ID) {
		t.Errorf("GET /v1/responses/%s: %d %s", created.ID, status, got)
	}
	if status, got := call("POST", "/v1/completions", `{"model":"sim-small","prompt":"hi"}`); status != 200 || !strings.Contains(got, `"text_completion"`) {
		t.Errorf("POST /v1/completions: %d %s", status, got)
	}
}
