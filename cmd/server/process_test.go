package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tollgate/tollgate/pkg/config"
)

// The test binary doubles as the gateway command itself (main, signals and
// exit status included) when mainEnv holds its arguments as JSON. init runs
// before TestMain.
const mainEnv = "TOLLGATE_TEST_MAIN_ARGS"

func init() {
	args := os.Getenv(mainEnv)
	if args == "" {
		return
	}
	var argv []string
	if err := json.Unmarshal([]byte(args), &argv); err != nil {
		panic(err)
	}
	os.Args = append([]string{os.Args[0]}, argv...)
	main()
	os.Exit(0)
}

// lightConfig writes a configuration that starts quickly (the hashed
// embedder: no model to load) with the given extra top-level lines.
func lightConfig(t *testing.T, dir, extra string) string {
	t.Helper()
	path := filepath.Join(dir, "tollgate.yaml")
	body := "admin_key: an-admin-key-of-enough-length\ndev_key: false\n" + extra +
		"\ncache:\n  semantic: {embedder: hashed}\n"
	if !strings.Contains(extra, "providers:") {
		body += "providers:\n  - {name: sim, type: sim}\n"
	}
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// createKey makes a key with a roomy daily budget through the admin API.
func createKey(t *testing.T, base string) (id, secret string) {
	t.Helper()
	var key struct{ ID, Key string }
	if st := adminCall(t, base, "POST", "/admin/keys", `{"name":"t","budgets":[{"period":"daily","limit_usd":100}]}`, &key); st != http.StatusCreated {
		t.Fatalf("create key: %d", st)
	}
	return key.ID, key.Key
}

// TestStalledStderrNeverBlocksRequests: with stderr a pipe nobody reads (a
// writer that blocks), thousands of requests, each logging its access line,
// are all answered, /healthz included; the lines the buffer cannot hold are
// dropped and said so once stderr is read again.
func TestStalledStderrNeverBlocksRequests(t *testing.T) {
	stderr := newStalledWriter()
	defer stderr.unblock()
	dir := t.TempDir()
	r := startWithStderr(t, nil, stderr, "-config", lightConfig(t, dir, ""), "-data", dir)
	client := &http.Client{Timeout: 30 * time.Second} // a hang guard
	// About 400 bytes of access-log line each (an unknown path is logged
	// up to 256 bytes): 1.6 MB in all, more than the 1 MiB buffer holds.
	long := "/" + strings.Repeat("x", 300)
	const workers, each = 4, 500
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		go func() {
			for i := 0; i < each; i++ {
				for _, c := range []struct {
					path string
					want int
				}{{"/healthz", http.StatusOK}, {long, http.StatusNotFound}} {
					resp, err := client.Get(r.url + c.path)
					if err != nil {
						errs <- err
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != c.want {
						errs <- fmt.Errorf("%.20s: %d", c.path, resp.StatusCode)
						return
					}
				}
			}
			errs <- nil
		}()
	}
	for w := 0; w < workers; w++ {
		if err := <-errs; err != nil {
			t.Fatalf("with stderr stalled: %v", err)
		}
	}
	if stderr.String() != "" {
		t.Fatal("the stalled writer wrote")
	}
	stderr.unblock()
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	log := stderr.String()
	m := regexp.MustCompile(`msg="log: dropped (\d+) lines"`).FindAllStringSubmatch(log, -1)
	if len(m) != 1 {
		t.Fatalf("%d dropped-lines notices in the log once stderr was read (%d bytes), want 1", len(m), len(log))
	}
	if !strings.Contains(log, `msg=stopped`) {
		t.Fatal("the log after the stall is missing its last line")
	}
	t.Logf("%d requests with stderr stalled: all answered; %s access-log lines dropped", 2*workers*each, m[0][1])
}

// TestOneProcessPerDataDir: a second gateway on a data directory in use
// refuses to start, naming the directory and the holder's pid; once the
// first has stopped the directory can be used again.
func TestOneProcessPerDataDir(t *testing.T) {
	dir := t.TempDir()
	cfg := lightConfig(t, dir, "")
	first := start(t, nil, "-config", cfg, "-data", dir)
	if b, err := os.ReadFile(filepath.Join(dir, lockFile)); err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(os.Getpid()) {
		t.Fatalf("lock file holds %q (%v), want this process's pid %d", b, err, os.Getpid())
	}
	// Another open of the lock file, as another process would make, even
	// from this process: flock locks belong to the open file description.
	err := run(context.Background(), []string{"-config", cfg, "-data", dir, "-listen", "127.0.0.1:0"}, func(string) string { return "" }, io.Discard, io.Discard)
	want := fmt.Sprintf("data directory %s is in use by another tollgate process (pid %d holds %s)", dir, os.Getpid(), filepath.Join(dir, lockFile))
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("second gateway: err = %v, want %q", err, want)
	}
	if err := first.stop(t); err != nil {
		t.Fatal(err)
	}
	start(t, nil, "-config", cfg, "-data", dir) // the lock went with the first
}

// command is the gateway run as its own process, through main.
type command struct {
	cmd            *exec.Cmd
	stdout, stderr *lockedBuffer
	exited         chan struct{}
}

func startCommand(t *testing.T, args ...string) *command {
	t.Helper()
	argv, _ := json.Marshal(append([]string{"-listen", "127.0.0.1:0"}, args...))
	c := &command{stdout: &lockedBuffer{}, stderr: &lockedBuffer{}, exited: make(chan struct{})}
	c.cmd = exec.Command(os.Args[0], "-test.run=^$")
	c.cmd.Env = append(os.Environ(), mainEnv+"="+string(argv))
	c.cmd.Stdout, c.cmd.Stderr = c.stdout, c.stderr
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.cmd.Wait(); close(c.exited) }()
	t.Cleanup(func() {
		c.cmd.Process.Kill()
		<-c.exited
	})
	return c
}

// wait waits for the process to exit and returns its exit status.
func (c *command) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-c.exited:
		return c.cmd.ProcessState.ExitCode()
	case <-time.After(60 * time.Second): // a hang guard
		t.Fatalf("the gateway process did not exit\nstderr:\n%s", c.stderr.String())
		return -1
	}
}

// await waits until what reads the output finds something in it.
func await(t *testing.T, what string, out *lockedBuffer, find func(string) string) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second) // a hang guard
	for time.Now().Before(deadline) {
		if s := find(out.String()); s != "" {
			return s
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no %s in:\n%s", what, out.String())
	return ""
}

func TestSecondGatewayProcessExitsNonZero(t *testing.T) {
	dir := t.TempDir()
	cfg := lightConfig(t, dir, "")
	start(t, nil, "-config", cfg, "-data", dir) // this process holds the directory
	c := startCommand(t, "-config", cfg, "-data", dir)
	if code := c.wait(t); code == 0 {
		t.Fatalf("second gateway exited 0\nstderr:\n%s", c.stderr.String())
	}
	want := fmt.Sprintf("tollgate: data directory %s is in use by another tollgate process (pid %d holds", dir, os.Getpid())
	if !strings.Contains(c.stderr.String(), want) {
		t.Fatalf("stderr:\n%s\nwant %q", c.stderr.String(), want)
	}
	if strings.Contains(c.stdout.String(), "listening") {
		t.Fatal("the second gateway listened")
	}
}

// TestSIGHUPReloads: SIGHUP reloads the configuration file (main turns
// the signal into a reload request) and the gateway goes on serving (it
// used to kill the process); SIGTERM then stops it cleanly.
func TestSIGHUPReloads(t *testing.T) {
	dir := t.TempDir()
	c := startCommand(t, "-config", lightConfig(t, dir, ""), "-data", dir)
	url := await(t, "listening line", c.stdout, func(s string) string {
		if m := listenRE.FindStringSubmatch(s); m != nil {
			return m[1]
		}
		return ""
	})
	for i := 0; i < 2; i++ {
		if err := c.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	await(t, "SIGHUP log line", c.stderr, func(s string) string {
		if strings.Contains(s, `msg="config reload applied"`) {
			return "found"
		}
		return ""
	})
	resp, err := http.Get(url + "/healthz")
	if err != nil {
		t.Fatalf("after SIGHUP: %v\nstderr:\n%s", err, c.stderr.String())
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("after SIGHUP: /healthz %d", resp.StatusCode)
	}
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := c.wait(t); code != 0 {
		t.Fatalf("after SIGTERM: exit status %d\nstderr:\n%s", code, c.stderr.String())
	}
}

// rawRequest sends a chat request's head and the first sent bytes of a body
// of declared length, then reads the answer on the same connection.
func rawRequest(t *testing.T, base, secret string, length int, sent string) (*http.Response, []byte, net.Conn) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", secret, length, sent)
	conn.SetReadDeadline(time.Now().Add(30 * time.Second)) // a hang guard
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// Anything after the answer: the server closes a connection it will
	// not read again.
	_, err = br.ReadByte()
	if !errors.Is(err, io.EOF) {
		t.Fatalf("after the answer the connection is not closed: %v", err)
	}
	return resp, body, conn
}

// TestDripFedBodyTimesOut: a body that does not arrive within
// body_read_timeout is answered with a 408 in OpenAI's shape and the
// connection closed; a body that arrives is served; and a stream lasting
// far longer than body_read_timeout is not cut by it (the deadline covers
// the body only).
func TestDripFedBodyTimesOut(t *testing.T) {
	dir := t.TempDir()
	cfg := lightConfig(t, dir, "body_read_timeout: 200ms\nproviders:\n  - {name: sim, type: sim, sim: {tokens_per_second: 20}}\n")
	r := start(t, nil, "-config", cfg, "-data", dir)
	_, secret := createKey(t, r.url)
	full := `{"model":"sim-small","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`

	resp, body, _ := rawRequest(t, r.url, secret, len(full), full[:10])
	var e struct {
		Error struct{ Message, Type, Code string }
	}
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("408 body %q: %v", body, err)
	}
	if resp.StatusCode != http.StatusRequestTimeout || e.Error.Type != "invalid_request_error" || e.Error.Code != "request_timeout" ||
		!strings.Contains(e.Error.Message, "200ms") || !resp.Close {
		t.Fatalf("drip-fed body: %d %s (Connection: close %v)", resp.StatusCode, body, resp.Close)
	}

	// A stream of ~60 tokens at 20 a second outlasts the body deadline
	// many times over.
	req, _ := http.NewRequest("POST", r.url+"/v1/chat/completions", strings.NewReader(
		`{"model":"sim-small","stream":true,"max_tokens":60,"messages":[{"role":"user","content":"`+strings.Repeat("tell me more ", 20)+`"}]}`))
	req.Header.Set("Authorization", "Bearer "+secret)
	sresp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer sresp.Body.Close()
	sc := bufio.NewScanner(sresp.Body)
	var last string
	events := 0
	for sc.Scan() {
		if sc.Text() != "" {
			last = sc.Text()
			events++
		}
	}
	if sresp.StatusCode != http.StatusOK || last != "data: [DONE]" || events < 10 {
		t.Fatalf("long stream: %d, %d events, last %q", sresp.StatusCode, events, last)
	}
}

// TestShutdownRecordsCutRequests: streams that outlast drain_timeout are
// cut at shutdown, and each still has its ledger row after run returns
// (the ledger closes only once their handlers have finished).
func TestShutdownRecordsCutRequests(t *testing.T) {
	dir := t.TempDir()
	cfg := lightConfig(t, dir, "drain_timeout: 100ms\nproviders:\n  - {name: sim, type: sim, sim: {tokens_per_second: 5}}\n")
	r := start(t, nil, "-config", cfg, "-data", dir)
	keyID, secret := createKey(t, r.url)
	const streams = 8
	ids := make([]string, streams)
	bodies := make([]io.ReadCloser, streams)
	for i := range streams {
		req, _ := http.NewRequest("POST", r.url+"/v1/chat/completions", strings.NewReader(fmt.Sprintf(
			`{"model":"sim-small","stream":true,"max_tokens":100,"messages":[{"role":"user","content":"stream %d: %s"}]}`, i, strings.Repeat("tell me more ", 20))))
		req.Header.Set("Authorization", "Bearer "+secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if !bufio.NewScanner(resp.Body).Scan() { // the stream has started
			t.Fatalf("stream %d: no first event", i)
		}
		ids[i], bodies[i] = resp.Header.Get("x-tollgate-request-id"), resp.Body
	}
	var wg sync.WaitGroup
	for _, b := range bodies { // read on, as clients do, until cut
		wg.Add(1)
		go func() { defer wg.Done(); io.Copy(io.Discard, b); b.Close() }()
	}
	err := r.stop(t)
	if err == nil || !strings.Contains(err.Error(), "drain timeout (100ms) passed") {
		t.Fatalf("run after a cut drain: %v", err)
	}
	wg.Wait()

	r2 := start(t, nil, "-config", cfg, "-data", dir)
	var hist struct {
		Data []struct {
			RequestID string `json:"request_id"`
			Status    int    `json:"status"`
		} `json:"data"`
	}
	if st := adminCall(t, r2.url, "GET", "/admin/keys/"+keyID+"/spend?limit=1000", "", &hist); st != http.StatusOK {
		t.Fatalf("spend: %d", st)
	}
	rows := map[string]int{}
	for _, row := range hist.Data {
		rows[row.RequestID] = row.Status
	}
	for i, id := range ids {
		if _, ok := rows[id]; !ok {
			t.Errorf("stream %d (%s) cut at shutdown has no ledger row", i, id)
		}
	}
	t.Logf("%d streams cut at shutdown, %d ledger rows: %v", streams, len(hist.Data), rows)
}

// TestServeWaitsForCutHandlers: after the drain timeout cuts a request,
// serve returns only once its handler has (the handler's work after the
// cut, such as writing its ledger row, comes before the deferred closes
// that follow serve), or after the last-resort limit, saying how many
// handlers were still running.
func TestServeWaitsForCutHandlers(t *testing.T) {
	tests := []struct {
		name    string
		limit   time.Duration
		finish  bool // the handler finishes once cut
		wantLog string
		want    []string
	}{
		{"a cut handler finishes: serve returns after it", time.Minute, true, "", []string{"handler recorded", "serve returned"}},
		{"a handler that never returns: serve gives up after the limit and says so", time.Millisecond, false,
			`closing the ledger without their rows" running=1`, []string{"serve returned"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var (
				mu     sync.Mutex
				events []string
			)
			event := func(e string) { mu.Lock(); events = append(events, e); mu.Unlock() }
			cut, proceed := make(chan struct{}), make(chan struct{})
			defer close(proceed)
			handlers := newInFlight(tt.limit)
			h := handlers.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusOK)
				w.(http.Flusher).Flush()
				<-r.Context().Done() // cut
				close(cut)
				if tt.finish {
					// Work after the cut takes a while (a ledger write): a
					// serve that did not wait would have returned by now.
					time.Sleep(20 * time.Millisecond)
					event("handler recorded")
					return
				}
				<-proceed
			}))
			cfg := &config.Config{Listen: "127.0.0.1:0", DrainTimeout: config.Duration(time.Millisecond)}
			log, stdout := &lockedBuffer{}, &lockedBuffer{}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			served := make(chan error, 1)
			go func() {
				err := serve(ctx, cfg, h, handlers, slog.New(slog.NewTextHandler(log, nil)), stdout)
				event("serve returned")
				served <- err
			}()
			url := await(t, "listening line", stdout, func(s string) string {
				if m := listenRE.FindStringSubmatch(s); m != nil {
					return m[1]
				}
				return ""
			})
			resp, err := http.Get(url)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			cancel()
			<-cut
			select {
			case err = <-served:
			case <-time.After(time.Minute): // a hang guard
				t.Fatal("serve did not return")
			}
			if err == nil || !strings.Contains(err.Error(), "drain timeout (1ms) passed") {
				t.Fatalf("serve: %v", err)
			}
			mu.Lock()
			got := strings.Join(events, ", ")
			mu.Unlock()
			if got != strings.Join(tt.want, ", ") {
				t.Fatalf("events %s, want %s", got, strings.Join(tt.want, ", "))
			}
			if !strings.Contains(log.String(), tt.wantLog) {
				t.Fatalf("log:\n%s\nwant %q", log.String(), tt.wantLog)
			}
		})
	}
}
