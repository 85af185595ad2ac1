package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

func probeStalledStderr(ctx context.Context, e *env, r *result) error {
	sc := e.sc
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	defer pr.Close()
	// A small pipe: a few lines fill it.
	if _, err := unix.FcntlInt(pw.Fd(), unix.F_SETPIPE_SZ, 16<<10); err != nil {
		r.note("could not shrink the pipe (%v): it holds the default 64 KiB", err)
	}
	rg, err := e.rig(ctx, r, answer(3), probeGateway{stderr: pw})
	pw.Close() // the gateway holds its own end; the pipe ends when it exits
	if err != nil {
		return err
	}
	defer rg.close()
	g, key := rg.g, rg.key

	// The chat requests are the probe; the requests for a long unknown path
	// are log volume (each access-log line carries the path, and the error
	// naming it, capped or not), some MiB of it, so that the gateway's log
	// buffer overflows and it has lines to drop and count.
	chats, heavy := sc.logRequests, 5000
	heavyPath := "/chaos-" + strings.Repeat("x", 8000)
	// Far longer than the flood takes when nothing blocks (a few seconds).
	flood := 30 * time.Second
	if sc.short {
		flood = 10 * time.Second
	}
	jobs := make([]bool, 0, chats+heavy) // interleaved; true: log-heavy
	for i := 0; len(jobs) < chats+heavy; i++ {
		if i < chats {
			jobs = append(jobs, false)
		}
		if i < heavy {
			jobs = append(jobs, true)
		}
	}
	fctx, cancel := context.WithTimeout(ctx, flood)
	defer cancel()
	start := time.Now()
	var next, chatsAnswered, chatsOK, heavyAnswered atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(len(jobs)) && fctx.Err() == nil; i = next.Add(1) - 1 {
				rctx, cancel := context.WithTimeout(fctx, 5*time.Second)
				if jobs[i] {
					req, err := http.NewRequestWithContext(rctx, http.MethodGet, g.base+heavyPath, nil)
					if err == nil {
						if _, err := doRequest(req); err == nil {
							heavyAnswered.Add(1)
						}
					}
				} else {
					rep, err := postChat(rctx, g.base, key.Secret, chatBody(chaosModel, 16, false, nil))
					if err == nil {
						chatsAnswered.Add(1)
						if rep.status == http.StatusOK {
							chatsOK.Add(1)
						}
					}
				}
				cancel()
			}
		})
	}
	health := probeHealth(fctx, g.base, 100*time.Millisecond)
	wg.Wait()
	took := time.Since(start)
	cancel()
	h := <-health

	r.check(chatsAnswered.Load() == int64(chats), fmt.Sprintf("all %d chat requests answered", chats),
		"%d of %d answered (%d x 200) in %s, with %d of %d log-heavy requests", chatsAnswered.Load(), chats, chatsOK.Load(), secs(took), heavyAnswered.Load(), heavy)
	r.check(h.tries > 0 && h.ok == h.tries && h.slowest <= time.Second, "/healthz answers within 1s throughout",
		"%d of %d /healthz answered, the slowest in %s", h.ok, h.tries, secs(h.slowest))

	// Now read the pipe, keeping what it held: every line answered must be
	// there, or counted in a "log: dropped N lines" notice.
	keep, err := os.Create(filepath.Join(e.dir, r.Probe, "stderr.log"))
	if err != nil {
		return err
	}
	defer keep.Close()
	d := drainLog(pr, &limitedWriter{w: keep, n: 64 << 20})
	_ = waitFor(ctx, 5*time.Second, func() bool { return d.notices.Load() > 0 })
	if !g.terminate(15 * time.Second) {
		r.note("the gateway did not exit within 15s of SIGTERM; killed")
	}
	<-d.done
	written := 0
	for _, l := range d.lines {
		if l.Path == "/healthz" || strings.HasPrefix(l.Path, "/chaos-") || l.Path == "/v1/chat/completions" && !slices.Contains(g.warmIDs, l.ID) {
			written++
		}
	}
	answered := chatsAnswered.Load() + heavyAnswered.Load() + int64(h.ok)
	dropped := d.dropped.Load()
	r.check(int64(written)+dropped >= answered, `every access-log line written or counted ("log: dropped N lines")`,
		"%d requests; %d lines written once the pipe drained, %d reported dropped in %s", answered, written, dropped, plural(int(d.notices.Load()), "notice"))
	if dropped == 0 && d.notices.Load() == 0 {
		r.note("no line was dropped: the gateway's log buffer held the whole flood, so counting drops was not exercised")
	}
	return nil
}

// healthFigures is what repeated GET /healthz saw.
type healthFigures struct {
	tries, ok int
	slowest   time.Duration
}

// probeHealth asks GET /healthz every period until ctx ends, each with
// 2s to answer, and sends what it saw.
func probeHealth(ctx context.Context, base string, period time.Duration) <-chan healthFigures {
	out := make(chan healthFigures, 1)
	go func() {
		var h healthFigures
		defer func() { out <- h }()
		hc := &http.Client{Timeout: 2 * time.Second}
		for ctx.Err() == nil {
			start := time.Now()
			h.tries++
			resp, err := hc.Get(base + "/healthz")
			took := time.Since(start)
			h.slowest = max(h.slowest, took)
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					h.ok++
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(period):
			}
		}
	}()
	return out
}

// dropNotice matches the gateway's count of dropped log lines, in text
// ("log: dropped 12 lines") or a JSON record holding it.
var dropNotice = regexp.MustCompile(`dropped\D{0,24}?(\d+)`)

// maxLogLine bounds what drainLog holds of one line.
const maxLogLine = 1 << 20

// drainedLog is what drainLog read of a log stream.
type drainedLog struct {
	dropped atomic.Int64 // the sum of the dropped-lines notices so far
	notices atomic.Int64
	lines   []accessLine  // the access-log lines; read after done
	done    chan struct{} // closed at the stream's end
}

// drainLog reads a JSON log stream to its end, copying it to keep,
// counting dropped-lines notices as they come and collecting the
// access-log lines.
func drainLog(rd io.Reader, keep io.Writer) *drainedLog {
	d := &drainedLog{done: make(chan struct{})}
	go func() {
		defer close(d.done)
		br := bufio.NewReaderSize(rd, 64<<10)
		var long []byte
		for {
			part, err := br.ReadSlice('\n')
			_, _ = keep.Write(part)
			if errors.Is(err, bufio.ErrBufferFull) {
				if len(long) < maxLogLine { // past it, the line is kept but not parsed whole
					long = append(long, part...)
				}
				continue
			}
			line := part
			if long != nil {
				line, long = append(long, part...), nil
			}
			d.parse(line)
			if err != nil {
				return
			}
		}
	}()
	return d
}

func (d *drainedLog) parse(line []byte) {
	var a accessLine
	if json.Unmarshal(line, &a) == nil && a.Msg == "request" {
		d.lines = append(d.lines, a)
		return
	}
	if m := dropNotice.FindSubmatch(line); m != nil {
		if n, err := strconv.ParseInt(string(m[1]), 10, 64); err == nil {
			d.dropped.Add(n)
			d.notices.Add(1)
		}
	}
}

// limitedWriter writes the first n bytes it is given and drops the rest.
type limitedWriter struct {
	w io.Writer
	n int64
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		k, err := l.w.Write(p[:min(int64(len(p)), l.n)])
		l.n -= int64(k)
		if err != nil {
			l.n = 0
		}
	}
	return len(p), nil
}

func probeSigtermStreams(ctx context.Context, e *env, r *result) error {
	sc := e.sc
	n := sc.sigtermStreams
	// Each stream lasts far longer than the drain timeout.
	rg, err := e.rig(ctx, r, ticker(100*time.Millisecond, 20*sc.drainTimeout+20*time.Second), probeGateway{tweak: func(cfg map[string]any) { cfg["drain_timeout"] = sc.drainTimeout.String() }})
	if err != nil {
		return err
	}
	defer rg.close()
	up, g, key := rg.up, rg.g, rg.key

	sctx, cancel := context.WithTimeout(ctx, sc.drainTimeout+60*time.Second)
	defer cancel()
	results := make([]streamResult, n)
	var started atomic.Int64
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			results[i] = stream(sctx, g.base, key.Secret, chatBody(chaosModel, streamMaxTokens, true, nil), 1<<20, func(streamResult) { started.Add(1) })
		})
	}
	if err := waitFor(ctx, 30*time.Second, func() bool { return started.Load() >= int64(n) }); err != nil {
		r.note("only %d of %d streams had started after 30s", started.Load(), n)
	}
	term := time.Now()
	_ = g.cmd.Process.Signal(syscall.SIGTERM)
	grace := sc.drainTimeout + 30*time.Second
	if !g.wait(grace) {
		r.note("the gateway had not exited %s after SIGTERM; killed", grace)
		g.kill()
	}
	wg.Wait()
	r.figure("exited %s after SIGTERM (drain_timeout %s), exit code %d", secs(g.exitAt.Sub(term)), sc.drainTimeout, g.exitCode())
	r.figure("the clients saw: %s", tally(results, func(s streamResult) string { return s.how }))

	var ids []string
	for _, s := range results {
		if s.requestID != "" {
			ids = append(ids, s.requestID)
		}
	}
	missing, err := missingRows(ctx, g.dataDir, ids)
	if err != nil {
		return err
	}
	tgt := "0 ledger rows lost"
	figure := fmt.Sprintf("%d of %d streams' rows in the ledger after exit", len(ids)-missing, n)
	if len(ids) < n {
		figure += fmt.Sprintf(" (%d streams never got a request id)", n-len(ids))
	}
	if missing > 0 {
		// Rows journaled but not yet applied are not lost: a restart
		// replays the journal.
		g2, _, err := e.start(ctx, r, up, probeGateway{sub: "restart", dataDir: g.dataDir})
		if err != nil {
			return fmt.Errorf("restarting to replay the journal: %w", err)
		}
		g2.terminate(15 * time.Second)
		if missing, err = missingRows(ctx, g.dataDir, ids); err != nil {
			return err
		}
		figure += fmt.Sprintf("; %d missing after a restart replayed the journal", missing)
	}
	r.check(missing == 0 && len(ids) == n, tgt, "%s", figure)
	return nil
}

// missingRows counts the request ids without a ledger row.
func missingRows(ctx context.Context, dataDir string, ids []string) (int, error) {
	rows, err := readLedger(ctx, dataDir)
	if err != nil {
		return 0, err
	}
	m := byRequest(rows)
	missing := 0
	for _, id := range ids {
		if _, ok := m[id]; !ok {
			missing++
		}
	}
	return missing, nil
}

// tally counts the distinct values of f: "18 error event, 2 cut without [DONE]".
func tally[T any](xs []T, f func(T) string) string {
	counts := map[string]int{}
	for _, x := range xs {
		counts[f(x)]++
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int { return counts[b] - counts[a] })
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d %s", counts[k], k)
	}
	return strings.Join(parts, ", ")
}

func probeSecondProcess(ctx context.Context, e *env, r *result) error {
	rg, err := e.rig(ctx, r, answer(3), probeGateway{})
	if err != nil {
		return err
	}
	defer rg.close()
	first := rg.g
	second, err := launch(gatewaySpec{bin: e.bin, dir: filepath.Join(e.dir, r.Probe, "second"), dataDir: first.dataDir, cfg: first.cfg})
	if err != nil {
		return err
	}
	defer second.stop()
	start := time.Now()
	// It should exit at once; one that serves instead has failed.
	if second.waitReady(ctx, 15*time.Second) == nil {
		r.check(false, "exits non-zero", "the second process serves on the same data directory after %s", secs(time.Since(start)))
	} else if !second.exited() {
		r.check(false, "exits non-zero", "the second process still runs after %s, not serving", secs(time.Since(start)))
	} else {
		r.check(second.exitCode() != 0, "exits non-zero", "exited with code %d after %s", second.exitCode(), secs(second.exitAt.Sub(start)))
		msg := lastLines(second.logTail(5), 1)
		pid := regexp.MustCompile(`\b` + strconv.Itoa(first.pid()) + `\b`)
		r.check(strings.Contains(msg, first.dataDir) && pid.MatchString(msg),
			fmt.Sprintf("the message names the directory and pid %d", first.pid()), "%q", msg)
	}
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Get(first.base + "/healthz")
	status := 0
	if err == nil {
		resp.Body.Close()
		status = resp.StatusCode
	}
	r.check(status == http.StatusOK, "the first process serves on", "GET /healthz on the first: %d", status)
	return nil
}

func probeDripBody(ctx context.Context, e *env, r *result) error {
	sc := e.sc
	n := sc.drippers
	drain := 4 * sc.bodyTimeout
	rg, err := e.rig(ctx, r, answer(3), probeGateway{
		tweak:    func(cfg map[string]any) { cfg["drain_timeout"] = drain.String() },
		settings: []setting{topSetting("body_read_timeout", sc.bodyTimeout.String())},
	})
	if err != nil {
		return err
	}
	defer rg.close()
	g, key := rg.g, rg.key
	bodyTimeout := durationOr(g, "body_read_timeout", sc.bodyTimeout)

	addr := strings.TrimPrefix(g.base, "http://")
	results := make([]dripResult, n)
	var connected atomic.Int64
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			results[i] = drip(ctx, addr, key.Secret, 250*time.Millisecond, drain+10*time.Second, &connected)
		})
	}
	_ = waitFor(ctx, 5*time.Second, func() bool { return connected.Load() >= int64(n) })
	time.Sleep(500 * time.Millisecond)
	term := time.Now()
	_ = g.cmd.Process.Signal(syscall.SIGTERM)
	exited := g.wait(drain + 15*time.Second)
	if !exited {
		r.note("the gateway had not exited %s after SIGTERM; killed", drain+15*time.Second)
		g.kill()
	}
	wg.Wait()

	open := 0
	var slowest time.Duration
	for _, d := range results {
		if d.closed.IsZero() {
			open++
			continue
		}
		slowest = max(slowest, d.closed.Sub(d.start))
	}
	const slack = time.Second
	r.check(open == 0 && slowest <= bodyTimeout+slack, fmt.Sprintf("every body cut within body_read_timeout (%s) + %s", bodyTimeout, secs(slack)),
		"%d of %d cut, the last after %s: %s", n-open, n, secs(slowest), tally(results, func(d dripResult) string { return d.answer }))
	exitAfter := g.exitAt.Sub(term)
	r.check(exited && exitAfter <= bodyTimeout+2*time.Second, fmt.Sprintf("exit within body_read_timeout + 2s of SIGTERM (drain_timeout %s)", drain),
		"exited %s after SIGTERM, code %d", secs(exitAfter), g.exitCode())
	return nil
}
