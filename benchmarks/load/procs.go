package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is a child process the harness started and must stop.
type proc struct {
	name string
	cmd  *exec.Cmd
	addr string // host:port it serves on
	log  string // file holding its stderr
	done chan struct{}
	err  error // set when done is closed
}

// newCmd prepares a child that cannot outlive the harness: Pdeathsig kills
// it if the harness dies (even by SIGKILL), and ctx's end sends SIGTERM,
// then SIGKILL after a grace period.
func newCmd(ctx context.Context, logPath string, name string, args ...string) (*exec.Cmd, *os.File, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 3 * time.Second
	f, err := os.Create(logPath)
	if err != nil {
		return nil, nil, err
	}
	cmd.Stderr = f
	return cmd, f, nil
}

func (p *proc) start(f *os.File) error {
	if err := p.cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", p.name, err)
	}
	p.done = make(chan struct{})
	go func() {
		p.err = p.cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return nil
}

// stop ends the process and waits for it: SIGTERM, then SIGKILL.
func (p *proc) stop() {
	if p == nil || p.done == nil {
		return
	}
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(3 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// logTail returns the last lines of the child's stderr, for error messages.
func (p *proc) logTail() string {
	b, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return strings.Join(lines, "\n")
}

// startChild re-executes the harness binary in a role and waits for the
// address it announces.
func startChild(ctx context.Context, dir, role string, args ...string) (*proc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	p := &proc{name: role, log: filepath.Join(dir, role+".log")}
	cmd, f, err := newCmd(ctx, p.log, exe, append([]string{"-role", role}, args...)...)
	if err != nil {
		return nil, err
	}
	cmd.Env = append(os.Environ(), childEnv+"=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		f.Close()
		return nil, err
	}
	p.cmd = cmd
	if err := p.start(f); err != nil {
		return nil, err
	}
	type result struct {
		addr string
		err  error
	}
	rc := make(chan result, 1)
	go func() {
		a, err := readAddr(out)
		rc <- result{a, err}
		_, _ = io.Copy(io.Discard, out) // keep the pipe drained
	}()
	select {
	case r := <-rc:
		if r.err != nil {
			p.stop()
			return nil, fmt.Errorf("%s: %w\n%s", role, r.err, p.logTail())
		}
		p.addr = r.addr
		return p, nil
	case <-time.After(10 * time.Second):
		p.stop()
		return nil, fmt.Errorf("%s: no address after 10s\n%s", role, p.logTail())
	}
}

// moduleRoot finds the repository root (where go.mod is) with the go tool,
// which works from any directory inside the module, including a test's.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside the tollgate module; run from the repository")
	}
	return filepath.Dir(gomod), nil
}

// errGatewayUnavailable marks a gateway that cannot be built yet: its targets
// are skipped with the reason, the rest of the run goes on.
var errGatewayUnavailable = errors.New("gateway unavailable")

// buildGateway compiles ./cmd/server into dir.
func buildGateway(ctx context.Context, dir string) (string, error) {
	root, err := moduleRoot(ctx)
	if err != nil {
		return "", fmt.Errorf("%w: %v", errGatewayUnavailable, err)
	}
	if _, err := os.Stat(filepath.Join(root, "cmd", "server")); err != nil {
		return "", fmt.Errorf("%w: %s/cmd/server does not exist yet", errGatewayUnavailable, root)
	}
	bin := filepath.Join(dir, "tollgate")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/server")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(lines) > 10 {
			lines = append(lines[:10], "...")
		}
		return "", fmt.Errorf("%w: go build ./cmd/server failed: %v\n%s", errGatewayUnavailable, err, strings.Join(lines, "\n"))
	}
	return bin, nil
}

// freePort asks the kernel for an unused loopback port. Another process could
// take it before the gateway binds it; on a bench machine that is rare, and
// the gateway's start-up failure would say so.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func randomHex(n int) string {
	b := make([]byte, n/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// gateway is a started gateway and the key the load uses.
type gateway struct {
	*proc
	key      string
	adminKey string
}

// startGateway writes the variant's config, starts the binary, waits for
// /readyz and creates a key through the admin API.
func startGateway(ctx context.Context, bin, dir string, v variant, cfgYAML []byte, keyBody map[string]any, env []string) (*gateway, error) {
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	gdir := filepath.Join(dir, v.Name)
	if err := os.MkdirAll(filepath.Join(gdir, "data"), 0o755); err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(gdir, "tollgate.yaml")
	if err := os.WriteFile(cfgPath, cfgYAML, 0o644); err != nil {
		return nil, err
	}
	adminKey := randomHex(32)
	// The access log goes to stderr, hence to a file: a pipe read by the
	// harness would bill the harness for the gateway's logging.
	p := &proc{name: v.Name, log: filepath.Join(gdir, "stderr.log")}
	cmd, f, err := newCmd(ctx, p.log, bin, "-config", cfgPath, "-listen", addr, "-data", filepath.Join(gdir, "data"))
	if err != nil {
		return nil, err
	}
	cmd.Env = append(append(os.Environ(), env...), "TOLLGATE_ADMIN_KEY="+adminKey)
	cmd.Stdout = f
	p.cmd, p.addr = cmd, addr
	if err := p.start(f); err != nil {
		return nil, err
	}
	g := &gateway{proc: p, adminKey: adminKey}
	fail := func(err error) (*gateway, error) {
		p.stop()
		return nil, fmt.Errorf("%s: %w\n--- %s:\n%s", v.Name, err, p.log, p.logTail())
	}
	client := &http.Client{Timeout: 5 * time.Second}
	base := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-p.done:
			return fail(fmt.Errorf("exited during start-up: %v", p.err))
		case <-ctx.Done():
			return fail(ctx.Err())
		default:
		}
		resp, err := client.Get(base + "/readyz")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			return fail(fmt.Errorf("GET /readyz not 200 after 30s (last: %v)", statusOrErr(resp, err)))
		}
		time.Sleep(50 * time.Millisecond)
	}
	body, _ := json.Marshal(keyBody)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/admin/keys", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+adminKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return fail(fmt.Errorf("POST /admin/keys: %w", err))
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusCreated {
		return fail(fmt.Errorf("POST /admin/keys: %s: %s", resp.Status, rb))
	}
	var k struct {
		ID  string `json:"id"`
		Key string `json:"key"`
	}
	if err := json.Unmarshal(rb, &k); err != nil || k.Key == "" {
		return fail(fmt.Errorf("POST /admin/keys: no key in %s", rb))
	}
	g.key = k.Key
	return g, nil
}

func statusOrErr(resp *http.Response, err error) string {
	if err != nil {
		return err.Error()
	}
	return resp.Status
}

// cpuTicks is the CPU time (user + system, all threads) a process has used,
// from /proc/<pid>/stat, in clock ticks.
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces;
	// fields are counted from the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad utime/stime", pid)
	}
	return ut + st, nil
}

// clockTick is USER_HZ, the unit of /proc CPU times. Linux fixes it at 100
// on every architecture Go supports, whatever the kernel's own HZ.
const clockTick = 10 * time.Millisecond

// machineBusyTicks is the CPU time the whole machine spent not idle, from
// the first line of /proc/stat, so a phase can report how much of the
// machine other people's work took while it ran.
func machineBusyTicks() (int64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 8 || f[0] != "cpu" {
		return 0, errors.New("/proc/stat: unexpected format")
	}
	var busy int64
	// user nice system idle iowait irq softirq steal: all but idle and iowait.
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		v, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return 0, err
		}
		busy += v
	}
	return busy, nil
}

// rssMB is a process's resident memory now and at its peak, in MB, from
// /proc/<pid>/status (VmRSS, VmHWM); zeros when it cannot be read.
func rssMB(pid int) (now, peak float64) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			continue
		}
		kb, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		switch k {
		case "VmRSS":
			now = kb / 1024
		case "VmHWM":
			peak = kb / 1024
		}
	}
	return now, peak
}
