package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate/pkg/config"
)

// fakeOpenAI is an OpenAI-compatible upstream that answers every chat
// completion with 10 prompt and 5 completion tokens. Upstream model
// "slow" waits for release (a non-streamed answer before answering, a
// stream after its first chunk); "fail" answers 500. It counts the
// requests per upstream model and the API keys it was sent.
type fakeOpenAI struct {
	*httptest.Server
	release chan struct{}
	started chan string // an upstream model, when a slow request has begun
	calls   callCounts
}

type callCounts struct{ ok, failed atomic.Int64 }

func newFakeOpenAI(t *testing.T) *fakeOpenAI {
	f := &fakeOpenAI{release: make(chan struct{}), started: make(chan string, 4)}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Model  string `json:"model"`
			Stream bool   `json:"stream"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || r.URL.Path != "/chat/completions" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		if req.Model == "fail" {
			f.calls.failed.Add(1)
			http.Error(w, `{"error":{"message":"down","type":"server_error"}}`, http.StatusInternalServerError)
			return
		}
		f.calls.ok.Add(1)
		usage := `"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}`
		if !req.Stream {
			if req.Model == "slow" {
				f.started <- req.Model
				<-f.release
			}
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"id":"c1","object":"chat.completion","created":1,"model":%q,"choices":[{"index":0,"message":{"role":"assistant","content":"hello from %s"},"finish_reason":"stop"}],%s}`, req.Model, req.Model, usage)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		chunk := func(s string) {
			fmt.Fprintf(w, "data: %s\n\n", s)
			w.(http.Flusher).Flush()
		}
		chunk(fmt.Sprintf(`{"id":"c1","object":"chat.completion.chunk","created":1,"model":%q,"choices":[{"index":0,"delta":{"role":"assistant","content":"first "},"finish_reason":null}]}`, req.Model))
		if req.Model == "slow" {
			f.started <- req.Model
			<-f.release
		}
		chunk(fmt.Sprintf(`{"id":"c1","object":"chat.completion.chunk","created":1,"model":%q,"choices":[{"index":0,"delta":{"content":"second"},"finish_reason":"stop"}]}`, req.Model))
		chunk(fmt.Sprintf(`{"id":"c1","object":"chat.completion.chunk","created":1,"model":%q,"choices":[],%s}`, req.Model, usage))
		chunk("[DONE]")
	}))
	t.Cleanup(f.Close)
	return f
}

// reloadable is a gateway started in-process with a config file it
// reloads on request.
type reloadable struct {
	*running
	file   string
	hup    chan struct{}
	log    *lockedBuffer
	secret string
	done   int // reloads finished so far
}

func startReloadable(t *testing.T, yaml string) *reloadable {
	t.Helper()
	dir := t.TempDir()
	g := &reloadable{file: filepath.Join(dir, "tollgate.yaml"), hup: make(chan struct{}, 1), log: &lockedBuffer{}}
	g.write(t, yaml)
	g.running = startIn(t, withReloadRequests(context.Background(), g.hup), nil, g.log, "-config", g.file, "-data", dir)
	_, g.secret = createKey(t, g.url)
	return g
}

// reloadHeader is what every test config starts with.
const reloadHeader = "admin_key: an-admin-key-of-enough-length\ndev_key: false\ncache: {enabled: false}\n"

func (g *reloadable) write(t *testing.T, yaml string) {
	t.Helper()
	if err := os.WriteFile(g.file, []byte(reloadHeader+yaml), 0o644); err != nil {
		t.Fatal(err)
	}
}

// reload rewrites the file, sends SIGHUP and waits until the reload has
// been applied or refused (its last log line).
func (g *reloadable) reload(t *testing.T, yaml string) {
	t.Helper()
	g.write(t, yaml)
	g.hup <- struct{}{}
	g.done++
	deadline := time.Now().Add(30 * time.Second) // a hang guard
	for time.Now().Before(deadline) {
		s := g.log.String()
		if strings.Count(s, `msg="config reload applied"`)+strings.Count(s, `msg="config reload refused: the running configuration is kept"`) >= g.done {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("reload %d did not finish:\n%s", g.done, g.log.String())
}

// chat sends a completion and returns the status, the headers and the body.
func (g *reloadable) chat(t *testing.T, model string, stream bool) (int, http.Header, string) {
	t.Helper()
	return g.call(t, g.secret, "/v1/chat/completions", fmt.Sprintf(`{"model":%q,"stream":%v,"max_tokens":16,"messages":[{"role":"user","content":"hi"}]}`, model, stream))
}

// call POSTs body to path (GETs it when body is empty) with bearer.
func (g *reloadable) call(t *testing.T, bearer, path, body string) (int, http.Header, string) {
	t.Helper()
	method := "POST"
	if body == "" {
		method = "GET"
	}
	req, _ := http.NewRequest(method, g.url+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+bearer)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err) // not Fatal: chat runs in goroutines too
		return 0, nil, ""
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(raw)
}

type auditRow struct {
	Actor         struct{ Kind, Name string }
	Target        string
	Before, After map[string]any
}

func (g *reloadable) reloadsAudited(t *testing.T) []auditRow {
	t.Helper()
	var l struct{ Data []auditRow }
	if st := adminCall(t, g.url, "GET", "/admin/audit?action=config.reload", "", &l); st != http.StatusOK {
		t.Fatalf("GET /admin/audit: %d", st)
	}
	return l.Data
}

func (g *reloadable) metric(t *testing.T, name string) string {
	t.Helper()
	_, _, raw := g.call(t, "an-admin-key-of-enough-length", "/metrics", "")
	for _, line := range strings.Split(raw, "\n") {
		if strings.HasPrefix(line, name+" ") {
			return strings.TrimPrefix(line, name+" ")
		}
	}
	return ""
}

func costMicros(t *testing.T, h http.Header) int64 {
	t.Helper()
	usd, err := strconv.ParseFloat(h.Get("x-tollgate-cost-usd"), 64)
	if err != nil {
		t.Fatalf("x-tollgate-cost-usd %q: %v", h.Get("x-tollgate-cost-usd"), err)
	}
	return int64(usd*1e6 + 0.5)
}

// providerYAML serves upstream model a as model-a from one provider, at
// the given prices (USD per million tokens).
func providerYAML(name, url, key string) string {
	return fmt.Sprintf("  - {name: %s, type: openai, base_url: '%s', api_key: %s, retry: {max_attempts: 1}, breaker: {consecutive_failures: 1, cooldown: 1h}}\n", name, url, key)
}

func modelYAML(name, provider, upstream string, in, out float64) string {
	return fmt.Sprintf("  - {name: %s, provider: %s, upstream_model: %s, mode: chat, input_usd_per_mtok: %v, output_usd_per_mtok: %v, max_output_tokens: 1000}\n", name, provider, upstream, in, out)
}

// TestReloadAppliesGoodFile: a file that adds a provider, a model and a
// route and changes a price is applied: the new route serves, the new
// price is charged, and the audit log has the reload with what changed,
// without the API keys.
func TestReloadAppliesGoodFile(t *testing.T) {
	up := newFakeOpenAI(t)
	g := startReloadable(t, "providers:\n"+providerYAML("one", up.URL, "secret-key-one")+
		"models:\n"+modelYAML("model-a", "one", "a", 1, 2))
	if st, h, body := g.chat(t, "model-a", false); st != http.StatusOK || costMicros(t, h) != 10*1+5*2 {
		t.Fatalf("before: %d cost %s: %s", st, h.Get("x-tollgate-cost-usd"), body)
	}
	if st, _, _ := g.chat(t, "smart", false); st != http.StatusNotFound {
		t.Fatalf("route smart before the reload: %d, want 404", st)
	}
	// A key without a policy of its own follows the budget defaults.
	_, plain := createReplicaKey(t, g.url, `{"name":"plain"}`)
	plainChat := func() int {
		st, _, _ := g.call(t, plain, "/v1/chat/completions", `{"model":"model-a","messages":[{"role":"user","content":"hi"}]}`)
		return st
	}
	for range 2 {
		if st := plainChat(); st != http.StatusOK {
			t.Fatalf("plain key before the reload: %d", st)
		}
	}

	g.reload(t, "providers:\n"+providerYAML("one", up.URL, "secret-key-one")+providerYAML("two", up.URL, "secret-key-two")+
		"models:\n"+modelYAML("model-a", "one", "a", 100, 200)+modelYAML("model-b", "two", "b", 3, 4)+
		"routes:\n  smart: {strategy: priority, candidates: [model-b, model-a]}\n"+
		"budget: {defaults: {rpm: 1}}\nmax_body_bytes: 4096\n")
	if st1, st2 := plainChat(), plainChat(); st1 != http.StatusOK || st2 != http.StatusTooManyRequests {
		t.Fatalf("plain key after the reload set the default rpm to 1: %d then %d, want 200 then 429", st1, st2)
	}

	tests := []struct {
		name, model  string
		wantModel    string
		wantProvider string
		wantCost     int64
	}{
		{"new price charged", "model-a", "model-a", "one", 10*100 + 5*200},
		{"new route served by the new provider", "smart", "model-b", "two", 10*3 + 5*4},
		{"new model", "model-b", "model-b", "two", 10*3 + 5*4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, h, body := g.chat(t, tt.model, false)
			if st != http.StatusOK {
				t.Fatalf("%d: %s", st, body)
			}
			if h.Get("x-tollgate-model") != tt.wantModel || h.Get("x-tollgate-provider") != tt.wantProvider || costMicros(t, h) != tt.wantCost {
				t.Fatalf("model %s provider %s cost %d, want %s %s %d", h.Get("x-tollgate-model"), h.Get("x-tollgate-provider"), costMicros(t, h),
					tt.wantModel, tt.wantProvider, tt.wantCost)
			}
		})
	}

	rows := g.reloadsAudited(t)
	if len(rows) != 1 {
		t.Fatalf("audit rows %+v, want 1", rows)
	}
	row := rows[0]
	if row.Actor.Kind != "system" || row.Actor.Name != "SIGHUP" || row.Target != g.file || row.After["result"] != "applied" {
		t.Fatalf("audit row %+v", row)
	}
	raw, _ := json.Marshal(row)
	for _, secret := range []string{"secret-key-one", "secret-key-two"} {
		if strings.Contains(string(raw), secret) || strings.Contains(g.log.String(), secret) {
			t.Fatalf("an API key is in the audit row or the log: %s", raw)
		}
	}
	beforeA := row.Before["models"].(map[string]any)["model-a"].(map[string]any)
	afterA := row.After["models"].(map[string]any)["model-a"].(map[string]any)
	if beforeA["input_price"] == afterA["input_price"] {
		t.Fatalf("model-a's price change is not in the audit row: %s", raw)
	}
	for _, section := range []string{"providers", "routes", "budget_defaults"} {
		if _, ok := row.After[section]; !ok {
			t.Errorf("section %s changed but is not in the audit row: %s", section, raw)
		}
	}
	if _, ok := row.After["providers"].(map[string]any)["two"]; !ok {
		t.Errorf("provider two added but not in the audit row: %s", raw)
	}
	if _, ok := row.After["providers"].(map[string]any)["one"]; ok {
		t.Errorf("provider one is unchanged but in the audit row: %s", raw)
	}
	if nr, _ := row.After["needs_restart"].([]any); len(nr) != 1 || nr[0] != "max_body_bytes" {
		t.Errorf("needs_restart %v, want [max_body_bytes]", row.After["needs_restart"])
	}
	if !strings.Contains(g.log.String(), "needs_restart=max_body_bytes") {
		t.Errorf("the restart-only change is not logged:\n%s", g.log.String())
	}
	if got := g.metric(t, `tollgate_config_reloads_total{result="applied"}`); got != "1" {
		t.Errorf("applied reloads metric %q, want 1", got)
	}
}

// TestPinRestartOnly: settings a running gateway cannot change keep their
// running values and are reported; a cache can be turned off and on again
// only if the gateway started with it.
func TestPinRestartOnly(t *testing.T) {
	load := func(yaml string) *config.Config {
		t.Helper()
		cfg, err := config.Parse(strings.NewReader("providers: [{name: sim, type: sim}]\n"+yaml), func(string) string { return "" })
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	tests := []struct {
		name                string
		started, cur, next  string
		want                string
		wantCache, wantSem  bool   // next's after pinning
		wantListen, wantTTL string // next's after pinning
	}{
		{"nothing changed", "", "", "", "", true, true, config.DefaultListen, "24h0m0s"},
		{"listen and log need a restart", "", "", "listen: 127.0.0.1:9999\nlog: {level: debug}\n", "listen,log", true, true, config.DefaultListen, "24h0m0s"},
		{"thresholds and ttl are applied", "", "", "cache: {ttl: 1h, semantic: {threshold: 0.9}}\n", "", true, true, config.DefaultListen, "1h0m0s"},
		{"turned off", "", "", "cache: {enabled: false}\n", "", false, true, config.DefaultListen, "24h0m0s"},
		{"on again after off", "", "cache: {enabled: false}\n", "", "", true, true, config.DefaultListen, "24h0m0s"},
		{"on, started without", "cache: {enabled: false}\n", "cache: {enabled: false}\n", "", "cache.enabled", false, true, config.DefaultListen, "24h0m0s"},
		{"semantic on, started without", "cache: {semantic: {enabled: false}}\n", "cache: {semantic: {enabled: false}}\n", "", "cache.semantic.enabled", true, false, config.DefaultListen, "24h0m0s"},
		{"embedder and max_bytes", "", "", "cache: {max_bytes: 1000, semantic: {embedder: hashed}}\n", "cache.max_bytes,cache.semantic.embedder,cache.semantic.dimensions", true, true, config.DefaultListen, "24h0m0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next := load(tt.next)
			got := strings.Join(pinRestartOnly(load(tt.started), load(tt.cur), next), ",")
			if got != tt.want {
				t.Errorf("needs restart %q, want %q", got, tt.want)
			}
			if next.Cache.Enabled != tt.wantCache || next.Cache.Semantic.Enabled != tt.wantSem || next.Listen != tt.wantListen || next.Cache.TTL.String() != tt.wantTTL {
				t.Errorf("pinned: cache %v semantic %v listen %s ttl %s", next.Cache.Enabled, next.Cache.Semantic.Enabled, next.Listen, next.Cache.TTL)
			}
		})
	}
}

// TestReloadRefusesBadFile: a file with problems changes nothing; every
// problem is logged at ERROR with its path, and the refusal is audited
// with them and counted. Problems of the file itself are all found
// together; a route's candidates are checked against the catalog once the
// file is valid, as at start.
func TestReloadRefusesBadFile(t *testing.T) {
	up := newFakeOpenAI(t)
	good := "providers:\n" + providerYAML("one", up.URL, "k") + "models:\n" + modelYAML("model-a", "one", "a", 1, 2)
	tests := []struct {
		name         string
		file         string
		wantProblems []string // paths
	}{
		{"invalid file", "providers:\n" + providerYAML("one", up.URL, "k") + "  - {name: two, type: carrier-pigeon}\n" +
			"models:\n" + modelYAML("model-a", "one", "a", -5, 2) + "  - {name: model-x, provider: nobody}\n" +
			"routes:\n  smart: {strategy: fastest, candidates: [model-a]}\n",
			[]string{"providers[1].type", "models[0].input_usd_per_mtok", "models[1].provider", "routes.smart.strategy"}},
		{"route to models the catalog lacks", good + "routes:\n  smart: {candidates: [no-such-model, model-a, nor-this]}\n",
			[]string{"routes.smart.candidates[0]", "routes.smart.candidates[2]"}},
		{"guard that does not compile", good + "guardrails:\n  guards:\n    - {name: pii, detectors: [email], action: mask}\n    - {name: ticket, regex: 'TCK-(', action: block}\n" +
			"routes:\n  smart: {candidates: [model-a], guards: [pii, tickets]}\n",
			[]string{"guardrails.guards[1].regex", "routes.smart.guards[1]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := startReloadable(t, good)
			g.reload(t, tt.file)
			for _, path := range tt.wantProblems {
				found := false
				for _, line := range strings.Split(g.log.String(), "\n") {
					if strings.Contains(line, "level=ERROR") && strings.Contains(line, "config reload refused: "+path+":") {
						found = true
					}
				}
				if !found {
					t.Errorf("no ERROR line for %s in the log:\n%s", path, g.log.String())
				}
			}
			st, h, body := g.chat(t, "model-a", false)
			if st != http.StatusOK || costMicros(t, h) != 10*1+5*2 {
				t.Fatalf("after the refused reload: %d cost %s (want the old price): %s", st, h.Get("x-tollgate-cost-usd"), body)
			}
			if st, _, _ := g.chat(t, "smart", false); st != http.StatusNotFound {
				t.Fatalf("route smart after the refused reload: %d, want 404", st)
			}
			rows := g.reloadsAudited(t)
			if len(rows) != 1 || rows[0].After["result"] != "refused" || rows[0].Before != nil {
				t.Fatalf("audit rows %+v, want one refused", rows)
			}
			problems, _ := rows[0].After["problems"].([]any)
			if len(problems) != len(tt.wantProblems) {
				t.Fatalf("audited problems %v, want %v", problems, tt.wantProblems)
			}
			for i, path := range tt.wantProblems {
				if p, _ := problems[i].(string); !strings.HasPrefix(p, path+":") {
					t.Errorf("audited problem %d: %q, want %s", i, p, path)
				}
			}
			if got := g.metric(t, `tollgate_config_reloads_total{result="refused"}`); got != "1" {
				t.Errorf("refused reloads metric %q, want 1", got)
			}
			if got := g.metric(t, `tollgate_config_reloads_total{result="applied"}`); got != "0" {
				t.Errorf("applied reloads metric %q, want 0", got)
			}

			// The file fixed is applied.
			g.reload(t, good)
			if got := g.metric(t, `tollgate_config_reloads_total{result="applied"}`); got != "1" {
				t.Errorf("applied reloads metric %q, want 1", got)
			}
		})
	}
}

// TestReloadLeavesInFlightRequests: a stream mid-body and a non-streamed
// request waiting on their upstream finish on the configuration they
// started with, whole, while a reload removes their provider; the next
// request is served by the new one.
func TestReloadLeavesInFlightRequests(t *testing.T) {
	oldUp, newUp := newFakeOpenAI(t), newFakeOpenAI(t)
	g := startReloadable(t, "providers:\n"+providerYAML("old", oldUp.URL, "k")+
		"models:\n"+modelYAML("model-a", "old", "slow", 1, 2))

	type result struct {
		status int
		body   string
	}
	results := make(chan result, 2)
	for _, stream := range []bool{true, false} {
		go func() {
			st, _, body := g.chat(t, "model-a", stream)
			results <- result{st, body}
		}()
	}
	for range 2 {
		select {
		case <-oldUp.started:
		case <-time.After(30 * time.Second):
			t.Fatal("the slow requests did not reach the upstream")
		}
	}

	g.reload(t, "providers:\n"+providerYAML("new", newUp.URL, "k")+
		"models:\n"+modelYAML("model-a", "new", "a", 1, 2))
	st, h, body := g.chat(t, "model-a", false)
	if st != http.StatusOK || h.Get("x-tollgate-provider") != "new" || newUp.calls.ok.Load() != 1 {
		t.Fatalf("after the reload: %d provider %q, new upstream calls %d: %s", st, h.Get("x-tollgate-provider"), newUp.calls.ok.Load(), body)
	}

	close(oldUp.release)
	for range 2 {
		r := <-results
		if r.status != http.StatusOK {
			t.Fatalf("in-flight request: %d %s", r.status, r.body)
		}
		full := strings.Contains(r.body, "hello from slow") || // the non-streamed answer
			(strings.Contains(r.body, `"first "`) && strings.Contains(r.body, `"second"`) && strings.Contains(r.body, "data: [DONE]"))
		if !full {
			t.Fatalf("in-flight request cut: %s", r.body)
		}
	}
}

// TestReloadKeepsBreakers: a reload keeps the open breaker of a deployment
// it did not change (requests are not let through to the failing
// upstream), and gives a fresh one to a deployment whose provider changed.
func TestReloadKeepsBreakers(t *testing.T) {
	tests := []struct {
		name      string
		key       string // the flaky provider's key after the reload
		wantState string
		wantCalls int64 // upstream calls after the reload's request
	}{
		{"unchanged deployment stays open", "k", "open", 1},
		{"changed provider starts closed", "k2", "closed", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := newFakeOpenAI(t)
			file := func(key string, price float64) string {
				return "providers:\n" + providerYAML("steady", up.URL, "k") + providerYAML("flaky", up.URL, key) +
					"models:\n" + modelYAML("model-a", "steady", "a", price, 2) + modelYAML("model-f", "flaky", "fail", 1, 2)
			}
			g := startReloadable(t, file("k", 1))
			if st, _, _ := g.chat(t, "model-f", false); st != http.StatusBadGateway {
				t.Fatalf("failing upstream: %d, want 502", st)
			}
			if got := breakerState(t, g, "flaky/fail"); got != "open" {
				t.Fatalf("breaker %q before the reload, want open", got)
			}

			g.reload(t, file(tt.key, 5)) // model-a's price changes in both cases
			if got := breakerState(t, g, "flaky/fail"); got != tt.wantState {
				t.Fatalf("breaker %q after the reload, want %s", got, tt.wantState)
			}
			g.chat(t, "model-f", false)
			if n := up.calls.failed.Load(); n != tt.wantCalls {
				t.Fatalf("failing upstream called %d times, want %d", n, tt.wantCalls)
			}
		})
	}
}

func breakerState(t *testing.T, g *reloadable, id string) string {
	t.Helper()
	var l struct {
		Data []struct{ ID, State string }
	}
	if st := adminCall(t, g.url, "GET", "/admin/providers", "", &l); st != http.StatusOK {
		t.Fatalf("GET /admin/providers: %d", st)
	}
	for _, d := range l.Data {
		if d.ID == id {
			return d.State
		}
	}
	t.Fatalf("no deployment %s in %+v", id, l.Data)
	return ""
}
