package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// buildGateway compiles ./cmd/server of the module the suite runs in into
// dir.
func buildGateway(ctx context.Context, dir string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside the tollgate module: run the suite from the repository")
	}
	bin := filepath.Join(dir, "tollgate")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/server")
	cmd.Dir = filepath.Dir(gomod)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/server: %w\n%s", err, lastLines(string(out), 20))
	}
	return bin, nil
}

// secretAlphabet draws secrets the suite must never see echoed: upper-case
// consonants and digits, which neither request ids (lower-case hex) nor
// English messages contain four of in a row.
const secretAlphabet = "BCDFGHJKLMNPQRSTVWXZ23456789"

func randomSecret(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = secretAlphabet[int(b[i])%len(secretAlphabet)]
	}
	return string(b)
}

// gateway is a running ./cmd/server child.
type gateway struct {
	cmd      *exec.Cmd
	base     string // http://127.0.0.1:port
	dataDir  string
	logPath  string // its stderr (unless the probe took it) and stdout
	adminKey string
	cfg      *gatewayConfig
	mem      *memWatch
	baseline int64    // VmRSS once ready, keys created, warmed up
	warmIDs  []string // request ids of the warm-up requests

	done    chan struct{}
	exitErr error     // set when done is closed
	exitAt  time.Time // set when done is closed
}

// gatewaySpec says how to start one gateway.
type gatewaySpec struct {
	bin     string
	dir     string // config, log; data in dir/data unless dataDir is set
	dataDir string
	cfg     *gatewayConfig
	// stderr, when set, replaces the log file as the gateway's stderr.
	stderr *os.File
}

// launch starts the gateway without waiting for it to serve.
func launch(s gatewaySpec) (*gateway, error) {
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return nil, err
	}
	if s.dataDir == "" {
		s.dataDir = filepath.Join(s.dir, "data")
	}
	cfgPath := filepath.Join(s.dir, "tollgate.yaml")
	if err := os.WriteFile(cfgPath, s.cfg.yaml, 0o644); err != nil {
		return nil, err
	}
	g := &gateway{dataDir: s.dataDir, logPath: filepath.Join(s.dir, "gateway.log"),
		adminKey: randomSecret(40), cfg: s.cfg, done: make(chan struct{})}
	logFile, err := os.Create(g.logPath)
	if err != nil {
		return nil, err
	}
	// Not CommandContext: a probe decides when and how its gateway stops
	// (SIGTERM is what several probes measure).
	// Port 0: the kernel picks a free port, the gateway prints it.
	cmd := exec.Command(s.bin, "-config", cfgPath, "-listen", "127.0.0.1:0", "-data", s.dataDir)
	// The gateway dies with the suite, even if the suite is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Env = append(os.Environ(), "TOLLGATE_ADMIN_KEY="+g.adminKey)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if s.stderr != nil {
		cmd.Stderr = s.stderr
	}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, err
	}
	g.cmd = cmd
	g.mem = watchMem(cmd.Process.Pid, 50*time.Millisecond)
	go func() {
		err := cmd.Wait()
		logFile.Close()
		g.exitErr, g.exitAt = err, time.Now()
		close(g.done)
	}()
	return g, nil
}

// startGateway launches the gateway and waits until /readyz answers 200.
func startGateway(ctx context.Context, s gatewaySpec) (*gateway, error) {
	g, err := launch(s)
	if err != nil {
		return nil, err
	}
	if err := g.waitReady(ctx, 30*time.Second); err != nil {
		g.kill()
		return nil, fmt.Errorf("gateway: %w\n--- %s:\n%s", err, g.logPath, g.logTail(15))
	}
	return g, nil
}

func (g *gateway) pid() int { return g.cmd.Process.Pid }

// listening is what the gateway prints on stdout once it listens.
var listening = regexp.MustCompile(`listening on (http://127\.0\.0\.1:\d+)`)

// waitReady waits for the address the gateway prints, then for /readyz to
// answer 200.
func (g *gateway) waitReady(ctx context.Context, limit time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(limit)
	for {
		select {
		case <-g.done:
			return fmt.Errorf("exited during start-up: %v", g.exitErr)
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if g.base == "" {
			g.base = g.announced()
		}
		if g.base != "" && ready(client, g.base) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("GET /readyz not 200 after %v", limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// announced is the address the gateway printed, or "".
func (g *gateway) announced() string {
	b, err := os.ReadFile(g.logPath)
	if err != nil {
		return ""
	}
	if m := listening.FindSubmatch(b); m != nil {
		return string(m[1])
	}
	return ""
}

func ready(client *http.Client, base string) bool {
	resp, err := client.Get(base + "/readyz")
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// markBaseline records the RSS a probe's growth is measured from.
func (g *gateway) markBaseline() {
	if m, err := readMem(g.pid()); err == nil {
		g.baseline = m.RSS
	}
}

// exited reports whether the process has ended.
func (g *gateway) exited() bool {
	select {
	case <-g.done:
		return true
	default:
		return false
	}
}

// wait waits up to limit for the process to exit.
func (g *gateway) wait(limit time.Duration) bool {
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-g.done:
		return true
	case <-t.C:
		return false
	}
}

// terminate sends SIGTERM and waits up to grace for the exit, then kills.
// It reports whether the process exited by itself.
func (g *gateway) terminate(grace time.Duration) bool {
	if g.exited() {
		return true
	}
	_ = g.cmd.Process.Signal(syscall.SIGTERM)
	if g.wait(grace) {
		return true
	}
	g.kill()
	return false
}

// stop ends the gateway gracefully if it can (its last log lines and
// ledger rows written), else kills it. Probes defer it.
func (g *gateway) stop() { g.terminate(15 * time.Second) }

func (g *gateway) kill() {
	if !g.exited() {
		_ = g.cmd.Process.Kill()
	}
	<-g.done
}

// peakRSS is the process's peak resident memory (VmHWM) as last seen.
func (g *gateway) peakRSS() int64 {
	if !g.exited() {
		g.mem.sample(g.pid())
	}
	return g.mem.Peak()
}

// exitCode is the process's exit status (-1: killed by a signal).
func (g *gateway) exitCode() int {
	var ee *exec.ExitError
	if errors.As(g.exitErr, &ee) {
		return ee.ExitCode()
	}
	if g.exitErr != nil {
		return -1
	}
	return 0
}

func (g *gateway) logTail(n int) string {
	b, _ := os.ReadFile(g.logPath)
	return lastLines(string(b), n)
}

// adminDo sends an admin API request and decodes a 2xx answer into out.
func (g *gateway) adminDo(ctx context.Context, method, path string, body, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, method, g.base+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+g.adminKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, rb)
	}
	if out != nil {
		if err := json.Unmarshal(rb, out); err != nil {
			return fmt.Errorf("%s %s: %w in %s", method, path, err, rb)
		}
	}
	return nil
}

// apiKey is a gateway key the suite created.
type apiKey struct {
	ID     string `json:"id"`
	Secret string `json:"key"`
}

// createKey creates a key through the admin API; body is
// POST /admin/keys's (name, budgets, allow_byok...).
func (g *gateway) createKey(ctx context.Context, body map[string]any) (apiKey, error) {
	var k apiKey
	if err := g.adminDo(ctx, http.MethodPost, "/admin/keys", body, &k); err != nil {
		return k, err
	}
	if k.ID == "" || k.Secret == "" {
		return k, errors.New("POST /admin/keys: no id or key in the answer")
	}
	return k, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	for i, l := range lines {
		if len(l) > 500 {
			lines[i] = l[:500] + "…"
		}
	}
	return strings.Join(lines, "\n")
}
