package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"
)

// probe is one hostile situation reproduced against the real server.
type probe struct {
	name string
	doc  string
	run  func(ctx context.Context, e *env, r *result) error
}

// probes run in this order; each starts and stops its own gateway.
var probes = []probe{
	{"endless-stream", "an upstream stream that never ends (4 KiB chunks no tokenizer counts): RSS bounded, the client cut at max_stream_bytes, the ledger charges at most the reservation", probeEndlessStream},
	{"giant-line", "one SSE line of hundreds of MB: RSS bounded, the client gets a 502 or an error event (max_event_bytes)", probeGiantLine},
	{"stalled-stream", "a stream that stalls after its first chunk ends with an error event within stream_idle_timeout", probeStalledStream},
	{"huge-response", "a 100 MB non-streamed answer is refused (max_response_bytes) with RSS bounded", probeHugeResponse},
	{"non-reading-clients", "clients that never read a large stream: every handler released within write_timeout, RSS bounded", probeNonReaders},
	{"budget-overbill", "a $0.01 daily limit and an upstream that bills a huge completion: spend at most the limit plus one answer, then 402; max_tokens 2^62 with n 2 is refused", probeBudgetOverbill},
	{"stalled-stderr", "stderr a pipe nobody reads: requests and /healthz still answer, dropped log lines are counted", probeStalledStderr},
	{"sigterm-streams", "SIGTERM with streams longer than drain_timeout: no ledger row lost", probeSigtermStreams},
	{"second-process", "a second process on the same data directory exits non-zero, naming the directory and the holder's pid", probeSecondProcess},
	{"drip-body", "request bodies fed one byte at a time are cut at body_read_timeout and do not stretch shutdown", probeDripBody},
	{"hostile-input", "duplicate JSON keys, an escaped customer_credentials, a 100 KB model name, the admin key used as an API key", probeHostileInput},
}

// scale is how big a run's probes are: the full form mirrors the issue's
// numbers, the short form scales them down for CI (2 cores, under 2
// minutes in all).
type scale struct {
	short        bool
	probeTimeout time.Duration

	endlessCap     int64 // endless-stream: the client gives up after this many bytes
	maxStreamBytes int64 // set in the config; 0: the gateway's default
	lineBytes      int64 // giant-line
	maxEventBytes  int64
	idleTimeout    time.Duration // stalled-stream
	responseBytes  int64         // huge-response
	maxRespBytes   int64
	nonReaders     int   // non-reading-clients
	nonReaderBytes int64 // the stream each is sent
	writeTimeout   time.Duration
	budgetRequests int // budget-overbill
	logRequests    int // stalled-stderr
	sigtermStreams int // sigterm-streams
	drainTimeout   time.Duration
	drippers       int // drip-body
	bodyTimeout    time.Duration
}

var fullScale = scale{
	probeTimeout:   3 * time.Minute,
	endlessCap:     1 << 30,
	lineBytes:      300_000_000,
	idleTimeout:    5 * time.Second,
	responseBytes:  100_000_000,
	nonReaders:     200,
	nonReaderBytes: 8 << 20,
	writeTimeout:   5 * time.Second,
	budgetRequests: 10,
	logRequests:    1000,
	sigtermStreams: 200,
	drainTimeout:   3 * time.Second,
	drippers:       50,
	bodyTimeout:    5 * time.Second,
}

var shortScale = scale{
	short:          true,
	probeTimeout:   time.Minute,
	endlessCap:     96 << 20,
	maxStreamBytes: 8 << 20,
	lineBytes:      40_000_000,
	maxEventBytes:  1 << 20,
	idleTimeout:    2 * time.Second,
	responseBytes:  40_000_000,
	maxRespBytes:   4 << 20,
	nonReaders:     20,
	nonReaderBytes: 8 << 20,
	writeTimeout:   2 * time.Second,
	budgetRequests: 5,
	logRequests:    300,
	sigtermStreams: 200, // cheap; with 20, a gateway that loses rows at shutdown was seen to lose none
	drainTimeout:   time.Second,
	drippers:       10,
	bodyTimeout:    2 * time.Second,
}

// env is what every probe of a run shares.
type env struct {
	bin string // the gateway binary
	dir string // the run's working directory
	sc  scale
}

// probeGateway says how a probe's gateway differs from the base one.
type probeGateway struct {
	tweak    func(cfg map[string]any)
	settings []setting
	stderr   *os.File // default: a file
	sub      string   // a directory under the probe's, for a second gateway
	dataDir  string   // default: its own
}

// rig is a probe's hostile upstream and the gateway pointed at it, with
// a key.
type rig struct {
	up  *upstream
	g   *gateway
	key apiKey
}

// rig starts a hostile upstream behaving as b and the probe's gateway in
// front of it.
func (e *env) rig(ctx context.Context, r *result, b behaviour, pg probeGateway) (*rig, error) {
	up, err := startUpstream(b)
	if err != nil {
		return nil, err
	}
	g, key, err := e.start(ctx, r, up, pg)
	if err != nil {
		up.Close()
		return nil, err
	}
	return &rig{up: up, g: g, key: key}, nil
}

// close stops the gateway (gracefully if it can), then the upstream.
func (rg *rig) close() {
	rg.g.stop()
	rg.up.Close()
}

// sizeSetting sets a provider's size bound when the scale gives one (0:
// the gateway's default).
func sizeSetting(key string, v int64) []setting {
	if v <= 0 {
		return nil
	}
	return []setting{providerSetting(key, v)}
}

// readGrowth is the RSS growth allowed to a gateway that reads a hostile
// answer within limit: the bound, a copy and the garbage of growing a
// buffer to it, whatever the answer's size.
func readGrowth(limit int64) int64 { return 3*limit + 16<<20 }

// start writes the probe's config (baseConfig pointed at up, tweaked, the
// settings placed), starts its gateway in its own directory, creates a key
// and records the RSS growth is measured from. Settings this build does
// not have become notes.
func (e *env) start(ctx context.Context, r *result, up *upstream, pg probeGateway) (*gateway, apiKey, error) {
	cfg := baseConfig(up.URL)
	if pg.tweak != nil {
		pg.tweak(cfg)
	}
	rejected := map[string]bool{}
	var g *gateway
	for g == nil {
		gc, err := buildConfig(cfg, pg.settings, rejected)
		if err != nil {
			return nil, apiKey{}, err
		}
		g, err = startGateway(ctx, gatewaySpec{bin: e.bin, dir: filepath.Join(e.dir, r.Probe, pg.sub), dataDir: pg.dataDir, cfg: gc, stderr: pg.stderr})
		// A gateway of another build (-gateway-bin) may refuse a key this
		// tree's config has: the setting moves on, as for pkg/config.
		if err != nil && rejectUnknown(err.Error(), gc.settings, rejected) == 0 {
			return nil, apiKey{}, err
		}
	}
	if pg.sub == "" {
		r.Notes = append(r.Notes, g.cfg.notes()...)
	}
	key, err := g.createKey(ctx, map[string]any{"name": "chaos"})
	if err != nil {
		g.kill()
		return nil, apiKey{}, err
	}
	if err := g.warmUp(ctx, key); err != nil {
		g.stop()
		return nil, apiKey{}, err
	}
	g.markBaseline()
	return g, key, nil
}

// warmUp sends a JSON and a streamed request answered normally, so that
// what every first request loads (the tokenizer's tables above all, some
// 20 MB) is in the RSS baseline rather than counted as a probe's growth.
func (g *gateway) warmUp(ctx context.Context, key apiKey) error {
	body := func(stream bool) []byte {
		return chatBody(chaosModel, 16, stream, map[string]any{"messages": []any{map[string]any{"role": "user", "content": warmUpMarker + " " + nonce()}}})
	}
	rep, err := postChat(ctx, g.base, key.Secret, body(false))
	if err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	if rep.status != 200 {
		return fmt.Errorf("warm-up: HTTP %d: %s", rep.status, snippet(rep.body))
	}
	g.warmIDs = append(g.warmIDs, rep.header.Get("x-tollgate-request-id"))
	res := stream(ctx, g.base, key.Secret, body(true), 1<<20, nil)
	if res.how != endDone {
		return fmt.Errorf("warm-up stream: %s", res)
	}
	g.warmIDs = append(g.warmIDs, res.requestID)
	return nil
}

// rssTarget is a probe's memory target: a ceiling on the gateway's peak
// RSS (the full form: the numbers), or a bound on its growth over
// the RSS it had when ready (the short form, whose sizes are too small for
// a ceiling to tell a bounded gateway from one that is not).
type rssTarget struct {
	ceiling, growth int64
	// stopFactor times the target is where the suite stops the probe
	// (default 2): by then it has failed, and more growth would only weigh
	// on a shared machine.
	stopFactor int64
}

// stopAt is the RSS at which the suite stops a probe.
func (t rssTarget) stopAt(baseline int64) int64 {
	f := t.stopFactor
	if f == 0 {
		f = 2
	}
	if t.ceiling > 0 {
		return f * t.ceiling
	}
	return baseline + f*t.growth
}

func (t rssTarget) check(r *result, g *gateway, stopped bool) {
	peak := g.peakRSS()
	suffix := ""
	if stopped {
		suffix = " (the suite stopped the probe there)"
	}
	if t.ceiling > 0 {
		r.check(peak < t.ceiling, "RSS peak < "+mb(t.ceiling), "RSS peak %s, %s when ready%s", mb(peak), mb(g.baseline), suffix)
		return
	}
	r.check(peak-g.baseline < t.growth, "RSS growth < "+size(t.growth), "RSS peak %s, +%s over ready%s", mb(peak), mb(peak-g.baseline), suffix)
}

// guardRSS returns a context cancelled when the gateway's RSS passes
// limit, and whether that happened.
func guardRSS(ctx context.Context, g *gateway, limit int64) (context.Context, func() bool, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	var tripped atomic.Bool
	go func() {
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if m, err := readMem(g.pid()); err == nil && m.RSS > limit {
				tripped.Store(true)
				cancel()
				return
			}
		}
	}()
	return ctx, tripped.Load, cancel
}

// accessLine is one access-log line of the gateway (log.format json).
type accessLine struct {
	ID      string          `json:"id"`
	Msg     string          `json:"msg"`
	Path    string          `json:"path"`
	Status  int             `json:"status"`
	RawLat  json.RawMessage `json:"latency"`
	latency time.Duration
}

// readAccessLog returns the access-log lines in a JSON log.
func readAccessLog(path string) ([]accessLine, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []accessLine
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		var a accessLine
		if json.Unmarshal(line, &a) != nil || a.Msg != "request" {
			continue
		}
		a.latency = parseLatency(a.RawLat)
		out = append(out, a)
	}
	return out, sc.Err()
}

// parseLatency reads slog's JSON duration (nanoseconds) or a Go duration
// string.
func parseLatency(raw json.RawMessage) time.Duration {
	if n, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
		return time.Duration(n)
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if d, err := time.ParseDuration(s); err == nil {
			return d
		}
	}
	return 0
}

// longestLine is the length of the longest line of a file.
func longestLine(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	longest := 0
	for line := range bytes.Lines(b) {
		longest = max(longest, len(bytes.TrimRight(line, "\n")))
	}
	return longest, nil
}

// limitOr is a size setting's value in force, else want; known says which.
func limitOr(g *gateway, key string, want int64) (v int64, known bool) {
	if v, ok := g.cfg.bytes(key); ok {
		return v, true
	}
	return want, false
}

// durationOr is a duration setting's value in force, else want.
func durationOr(g *gateway, key string, want time.Duration) time.Duration {
	if v, ok := g.cfg.duration(key); ok {
		return v
	}
	return want
}

func plural(n int, one string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %ss", n, one)
}
