package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/testmodel"
	"github.com/tollgate/tollgate/pkg/budget"
)

// lockedBuffer collects run's stdout while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type running struct {
	url    string
	stdout *lockedBuffer
	cancel context.CancelFunc
	done   chan error
}

var listenRE = regexp.MustCompile(`listening on (http://[0-9.:]+)`)

// start runs the server in-process on a free port and waits until it listens.
// The USE-lite model is fetched first, so that its download is not part of
// the start-up window.
func start(t *testing.T, env map[string]string, args ...string) *running {
	t.Helper()
	return startWithStderr(t, env, io.Discard, args...)
}

// startWithStderr is start with run's stderr (the log) going to stderr.
func startWithStderr(t *testing.T, env map[string]string, stderr io.Writer, args ...string) *running {
	t.Helper()
	return startIn(t, context.Background(), env, stderr, args...)
}

// startIn is startWithStderr with run's context derived from parent (which
// may carry reload requests: withReloadRequests).
func startIn(t *testing.T, parent context.Context, env map[string]string, stderr io.Writer, args ...string) *running {
	t.Helper()
	testmodel.Prefetch(t)
	ctx, cancel := context.WithCancel(parent)
	r := &running{stdout: &lockedBuffer{}, cancel: cancel, done: make(chan error, 1)}
	getenv := func(k string) string {
		if v, ok := env[k]; ok {
			return v
		}
		if k == modelDirEnv {
			return testmodel.Dir()
		}
		return ""
	}
	go func() {
		r.done <- run(ctx, append([]string{"-listen", "127.0.0.1:0"}, args...), getenv, r.stdout, stderr)
	}()
	deadline := time.Now().Add(30 * time.Second) // a hang guard
	for time.Now().Before(deadline) {
		if m := listenRE.FindStringSubmatch(r.stdout.String()); m != nil {
			r.url = m[1]
			t.Cleanup(func() { r.stop(t) })
			return r
		}
		select {
		case err := <-r.done:
			t.Fatalf("run returned early: %v\n%s", err, r.stdout.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatal("server did not start")
	return nil
}

func (r *running) stop(t *testing.T) error {
	r.cancel()
	select {
	case err, ok := <-r.done:
		if ok {
			close(r.done)
		}
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return after cancel")
		return nil
	}
}

var devKeyRE = regexp.MustCompile(`\n    (tg-[A-Za-z0-9_-]+)\n`)

func TestFirstStartPrintsDevKeyOnce(t *testing.T) {
	data := t.TempDir()
	r := start(t, nil, "-data", data)
	m := devKeyRE.FindStringSubmatch(r.stdout.String())
	if m == nil {
		t.Fatalf("no development key printed:\n%s", r.stdout.String())
	}
	req, _ := http.NewRequest("POST", r.url+"/v1/chat/completions", strings.NewReader(`{"model":"sim-small","messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Authorization", "Bearer "+m[1])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "hi") {
		t.Fatalf("quick start request: %d %s", resp.StatusCode, body)
	}
	// The simulated chat models embed too, with no account.
	for _, model := range []string{"sim-small", "sim-large", "sim-embed"} {
		req, _ := http.NewRequest("POST", r.url+"/v1/embeddings", strings.NewReader(`{"model":"`+model+`","input":"hello"}`))
		req.Header.Set("Authorization", "Bearer "+m[1])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), `"embedding"`) {
			t.Fatalf("embeddings with %s: %d %s", model, resp.StatusCode, body)
		}
	}
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(data, "tollgate.db")); err != nil {
		t.Fatal("no database in -data dir")
	}

	r2 := start(t, nil, "-data", data)
	if devKeyRE.MatchString(r2.stdout.String()) {
		t.Fatal("development key printed again on the second start")
	}
}

func TestAdminKeyFromEnvCreatesKeys(t *testing.T) {
	admin := "an-admin-key-of-enough-length"
	r := start(t, map[string]string{"TOLLGATE_ADMIN_KEY": admin}, "-data", t.TempDir())
	req, _ := http.NewRequest("POST", r.url+"/admin/keys", strings.NewReader(`{"name":"ci"}`))
	req.Header.Set("Authorization", "Bearer "+admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || !strings.Contains(string(body), `"key":"tg-`) || !strings.Contains(string(body), `"id":"key_`) {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(r.url + path)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %v %v", path, resp, err)
		}
		resp.Body.Close()
	}
}

func TestBadStartupsFailClearly(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("providers:\n  - {name: x, type: openai, base_url: nope}\nlisten_port: 3\n"), 0o644)
	invalid := filepath.Join(dir, "invalid.yaml")
	os.WriteFile(invalid, []byte("providers:\n  - {name: x, type: openai, base_url: nope}\n"), 0o644)
	badGuard := filepath.Join(dir, "guard.yaml")
	os.WriteFile(badGuard, []byte("guardrails:\n  guards:\n    - {name: ticket, regex: 'TCK-([0-9]{6}', action: block}\n"), 0o644)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown field, with the other problems", []string{"-config", bad}, "listen_port: unknown field\nproviders[0].base_url: not a URL"},
		{"invalid value with path", []string{"-config", invalid}, "providers[0].base_url: not a URL"},
		{"guard pattern that does not compile", []string{"-config", badGuard}, "guardrails.guards[0].regex: error parsing regexp: missing closing )"},
		{"missing file", []string{"-config", filepath.Join(dir, "nope.yaml")}, "no such file"},
		{"bad flag", []string{"-nope"}, "flag provided but not defined"},
		{"stray argument", []string{"serve"}, "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := run(context.Background(), append(tt.args, "-data", dir), func(string) string { return "" }, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

// TestShutdownDrainsInFlightStream: SIGTERM (ctx cancel) while a stream is
// being served lets the stream finish.
func TestShutdownDrainsInFlightStream(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "tollgate.yaml")
	os.WriteFile(cfg, []byte(`
admin_key: an-admin-key-of-enough-length
drain_timeout: 30s
providers:
  - name: sim
    type: sim
    sim: {tokens_per_second: 40}
`), 0o644)
	r := start(t, nil, "-config", cfg, "-data", dir)
	secret := devKeyRE.FindStringSubmatch(r.stdout.String())[1]
	req, _ := http.NewRequest("POST", r.url+"/v1/chat/completions", strings.NewReader(
		`{"model":"sim-large","stream":true,"messages":[{"role":"user","content":"`+strings.Repeat("tell me more ", 20)+`"}]}`))
	req.Header.Set("Authorization", "Bearer "+secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	if !sc.Scan() { // the stream has started
		t.Fatal("no first event")
	}
	stopped := make(chan error, 1)
	go func() { stopped <- r.stop(t) }()
	// Shutdown closes the listener first: once a new connection is refused,
	// the drain has begun while the stream is still being written.
	for {
		c, err := net.Dial("tcp", strings.TrimPrefix(r.url, "http://"))
		if err != nil {
			break
		}
		c.Close()
		time.Sleep(5 * time.Millisecond)
	}
	var last string
	after := 0
	for sc.Scan() {
		if sc.Text() != "" {
			last = sc.Text()
			after++
		}
	}
	if after < 2 || last != "data: [DONE]" {
		t.Fatalf("stream cut by shutdown: %d events after it began, last line %q", after, last)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("run after drain: %v", err)
	}
}

// TestExampleConfigStartsOffline: the documented example starts as shipped
// with no environment variable at all (no OPENAI_API_KEY), serves only the
// simulator (the start log says so), and answers a chat completion, by
// name and through its auto route, without leaving the machine.
func TestExampleConfigStartsOffline(t *testing.T) {
	var log lockedBuffer
	r := startWithStderr(t, map[string]string{}, &log, "-config", "../../tollgate.example.yaml", "-data", t.TempDir())
	secret := devKeyRE.FindStringSubmatch(r.stdout.String())[1]
	tests := []struct{ name, model, route string }{
		{"by name", "sim-small", ""},
		{"auto route", "auto", "cheapest of 2 capable: sim-small"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", r.url+"/v1/chat/completions", strings.NewReader(`{"model":"`+tt.model+`","messages":[{"role":"user","content":"hi"}]}`))
			req.Header.Set("Authorization", "Bearer "+secret)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			h := resp.Header
			if resp.StatusCode != 200 || h.Get("x-tollgate-model") != "sim-small" || h.Get("x-tollgate-provider") != "sim" || !strings.Contains(string(body), `"chat.completion"`) {
				t.Fatalf("%d model %q provider %q route %q: %s", resp.StatusCode, h.Get("x-tollgate-model"), h.Get("x-tollgate-provider"), h.Get("x-tollgate-route"), body)
			}
			if !strings.Contains(h.Get("x-tollgate-route"), tt.route) {
				t.Fatalf("route %q, want %q", h.Get("x-tollgate-route"), tt.route)
			}
		})
	}
	if err := r.stop(t); err != nil { // the log is flushed
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), `msg="serving 3 models from 1 provider: sim (3 models)"`) {
		t.Errorf("the start log does not say only the simulator is served:\n%s", log.String())
	}
}

// TestBudgetAlertsReachConfiguredWebhook: the configured webhook receives a
// signed threshold alert when a key's spend crosses it.
func TestBudgetAlertsReachConfiguredWebhook(t *testing.T) {
	const secret = "whsec-test-secret"
	got := make(chan string, 16)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := budget.VerifySignature(secret, r.Header.Get(budget.SignatureHeader), body, time.Now(), time.Minute); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			got <- "bad signature: " + err.Error()
			return
		}
		got <- string(body)
	}))
	defer receiver.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "tollgate.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`
admin_key: an-admin-key-of-enough-length
dev_key: false
providers:
  - {name: sim, type: sim}
budget:
  webhooks: [{url: %q}]
  webhook_secret: %s
`, receiver.URL, secret)), 0o644)
	r := start(t, nil, "-config", cfg, "-data", dir)
	var key struct{ ID, Key string }
	if st := adminCall(t, r.url, "POST", "/admin/keys", `{"name":"alerted","budgets":[{"period":"daily","limit_usd":0.0001,"alert_thresholds":[0.5]}]}`, &key); st != 201 {
		t.Fatalf("create: %d", st)
	}
	for i := 0; i < 20; i++ { // each call reserves and costs under $0.00001: the 50% threshold is crossed
		// Distinct questions: a cached answer would cost nothing.
		req, _ := http.NewRequest("POST", r.url+"/v1/chat/completions", strings.NewReader(fmt.Sprintf(`{"model":"sim-small","max_tokens":20,"messages":[{"role":"user","content":"hello there, question %d"}]}`, i)))
		req.Header.Set("Authorization", "Bearer "+key.Key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	deadline := time.After(30 * time.Second) // a hang guard
	for {
		select {
		case body := <-got:
			if strings.HasPrefix(body, "bad signature") {
				t.Fatal(body)
			}
			if strings.Contains(body, `"threshold_reached"`) {
				if !strings.Contains(body, key.ID) || !strings.Contains(body, `"alerted"`) || !strings.Contains(body, `"threshold":0.5`) {
					t.Fatalf("alert body: %s", body)
				}
				return
			}
		case <-deadline:
			t.Fatal("no threshold alert delivered")
		}
	}
}
