package main

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"
)

// streamMaxTokens is the output limit the stream probes ask for: their
// reservation.
const streamMaxTokens = 1000

// cutOff reports whether a stream ended the way a gateway ends one it
// refuses to relay: a 502 before the first byte, or an error event after.
func cutOff(res streamResult) bool {
	return res.how == endErrorEvent || (res.how == endStatus && res.status == 502)
}

func probeEndlessStream(ctx context.Context, e *env, r *result) error {
	sc := e.sc
	// The upstream's own bound lies well past where the client gives up.
	rg, err := e.rig(ctx, r, flood(2*sc.endlessCap, false), probeGateway{settings: sizeSetting("max_stream_bytes", sc.maxStreamBytes)})
	if err != nil {
		return err
	}
	defer rg.close()
	g, key := rg.g, rg.key
	limit, known := limitOr(g, "max_stream_bytes", sc.maxStreamBytes)
	target := rssTarget{ceiling: 300e6}
	if sc.short {
		target = rssTarget{growth: readGrowth(limit)}
	}

	sctx, stopped, cancel := guardRSS(ctx, g, target.stopAt(g.baseline))
	res := stream(sctx, g.base, key.Secret, chatBody(chaosModel, streamMaxTokens, true, nil), sc.endlessCap, nil)
	cancel()
	target.check(r, g, stopped())
	tgt, bound := "a 502 or an error event before the client gives up at "+size(sc.endlessCap), sc.endlessCap
	if limit > 0 {
		tgt, bound = fmt.Sprintf("a 502 or an error event within max_stream_bytes (%s)", size(limit)), limit+limit/10+1<<20
	}
	if !known && sc.maxStreamBytes == 0 {
		r.note("max_stream_bytes: not in this build")
	}
	r.check(cutOff(res) && res.bytes <= bound, tgt, "the client read %s in %s, then %s", mb(res.bytes), secs(res.end.Sub(res.start)), res)

	if !g.terminate(15 * time.Second) {
		r.note("the gateway did not exit within 15s of SIGTERM; killed")
	}
	rows, err := readLedger(ctx, g.dataDir)
	if err != nil {
		return err
	}
	row, ok := byRequest(rows)[res.requestID]
	tgt = fmt.Sprintf("a ledger row charging at most the reservation (prompt + %d output tokens)", streamMaxTokens)
	if !ok {
		r.check(false, tgt, "no ledger row for request %q", res.requestID)
		return nil
	}
	reservation := row.promptTokens*inMicrosPerTok + streamMaxTokens*outMicrosPerTok
	r.check(row.cost <= reservation, tgt, "charged %s (%d completion tokens), reservation %s", usd(row.cost), row.completionTokens, usd(reservation))
	return nil
}

func probeGiantLine(ctx context.Context, e *env, r *result) error {
	sc := e.sc
	rg, err := e.rig(ctx, r, giantLine(sc.lineBytes), probeGateway{settings: sizeSetting("max_event_bytes", sc.maxEventBytes)})
	if err != nil {
		return err
	}
	defer rg.close()
	up, g, key := rg.up, rg.g, rg.key
	limit, _ := limitOr(g, "max_event_bytes", sc.maxEventBytes)
	target := rssTarget{ceiling: 300e6}
	if sc.short {
		target = rssTarget{growth: readGrowth(limit)}
	}

	sctx, stopped, cancel := guardRSS(ctx, g, target.stopAt(g.baseline))
	res := stream(sctx, g.base, key.Secret, chatBody(chaosModel, streamMaxTokens, true, nil), sc.lineBytes+1<<20, nil)
	cancel()
	target.check(r, g, stopped())
	r.check(cutOff(res), "a 502 or an error event", "%s after %s; the client read %s", res, secs(res.end.Sub(res.start)), mb(res.bytes))
	r.figure("the upstream wrote %s of a %s line", mb(up.written.Load()), mb(sc.lineBytes))
	return nil
}

func probeStalledStream(ctx context.Context, e *env, r *result) error {
	sc := e.sc
	rg, err := e.rig(ctx, r, stall(10*sc.idleTimeout+10*time.Second), probeGateway{settings: []setting{providerSetting("stream_idle_timeout", sc.idleTimeout.String())}})
	if err != nil {
		return err
	}
	defer rg.close()
	g, key := rg.g, rg.key
	idle := durationOr(g, "stream_idle_timeout", sc.idleTimeout)

	sctx, cancel := context.WithTimeout(ctx, idle+5*time.Second)
	defer cancel()
	res := stream(sctx, g.base, key.Secret, chatBody(chaosModel, streamMaxTokens, true, nil), 1<<20, nil)
	const slack = 1500 * time.Millisecond
	tgt := fmt.Sprintf("an error event within stream_idle_timeout (%s) + %s of the first chunk", idle, secs(slack))
	if res.firstEvent.IsZero() {
		r.check(false, tgt, "no chunk reached the client: %s", res)
		return nil
	}
	// A cut without an error event looks to the client like a network
	// failure, not like the upstream's silence.
	r.check(res.how == endErrorEvent && res.afterFirst() <= idle+slack, tgt, "%s %s after the first chunk", res, secs(res.afterFirst()))
	return nil
}

func probeHugeResponse(ctx context.Context, e *env, r *result) error {
	sc := e.sc
	rg, err := e.rig(ctx, r, hugeJSON(sc.responseBytes), probeGateway{settings: sizeSetting("max_response_bytes", sc.maxRespBytes)})
	if err != nil {
		return err
	}
	defer rg.close()
	up, g, key := rg.up, rg.g, rg.key
	limit, known := limitOr(g, "max_response_bytes", sc.maxRespBytes)
	if limit == 0 {
		limit = 32 << 20 // the default
	}
	if !known && sc.maxRespBytes == 0 {
		r.note("max_response_bytes: not in this build; the RSS target assumes %s", size(limit))
	}
	// A bounded read of the answer costs a few times the bound, whatever
	// the answer's size.
	target := rssTarget{growth: readGrowth(limit)}

	sctx, stopped, cancel := guardRSS(ctx, g, target.stopAt(g.baseline))
	start := time.Now()
	rep, err := postChat(sctx, g.base, key.Secret, chatBody(chaosModel, streamMaxTokens, false, nil))
	cancel()
	tgt := fmt.Sprintf("refused: 502 (max_response_bytes %s)", size(limit))
	if err != nil {
		r.check(false, tgt, "no answer after %s: %v", secs(time.Since(start)), err)
	} else {
		r.check(rep.status == 502, tgt, "HTTP %d after %s: %s", rep.status, secs(time.Since(start)), errorMessage(rep.body))
	}
	target.check(r, g, stopped())
	r.figure("the upstream wrote %s of %s", mb(up.written.Load()), mb(sc.responseBytes))
	return nil
}

// releasedHandlers are the access-log lines of the probe's chat requests:
// a handler writes its line when it returns.
func releasedHandlers(g *gateway) []accessLine {
	lines, _ := readAccessLog(g.logPath)
	var out []accessLine
	for _, l := range lines {
		if l.Path == "/v1/chat/completions" && !slices.Contains(g.warmIDs, l.ID) {
			out = append(out, l)
		}
	}
	return out
}

func probeNonReaders(ctx context.Context, e *env, r *result) error {
	sc := e.sc
	n := sc.nonReaders
	rg, err := e.rig(ctx, r, flood(sc.nonReaderBytes, true), probeGateway{settings: []setting{topSetting("write_timeout", sc.writeTimeout.String())}})
	if err != nil {
		return err
	}
	defer rg.close()
	up, g, key := rg.up, rg.g, rg.key
	wt := durationOr(g, "write_timeout", sc.writeTimeout)
	// The 500 MB for 200 clients; the short form scales it. The
	// suite stops the probe only at three times the target: the release of
	// the handlers is measured past a failed RSS target too (what a
	// gateway holds is bounded by the upstream's streams anyway).
	target := rssTarget{ceiling: 500e6, stopFactor: 3}
	if sc.short {
		target = rssTarget{growth: int64(n) * 500e6 / 200, stopFactor: 3}
	}
	gctx, stopped, cancel := guardRSS(ctx, g, target.stopAt(g.baseline))
	defer cancel()

	addr := strings.TrimPrefix(g.base, "http://")
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range n {
		c, err := dialNonReader(gctx, addr, key.Secret, chatBody(chaosModel, streamMaxTokens, true, nil))
		if err != nil {
			return fmt.Errorf("client %d: %w", len(conns)+1, err)
		}
		conns = append(conns, c)
	}
	sent := time.Now()
	_ = waitFor(gctx, 10*time.Second, func() bool { return up.requests.Load() >= int64(n) })
	// A handler can only be held once its client's socket is full: the
	// kernel takes megabytes per connection before a write blocks, and
	// with many clients the gateway takes a while to relay that much. Once
	// every stream is blocked on its client the gateway goes idle; from
	// then on, write_timeout must release every handler.
	const slack = 2 * time.Second
	tgt := fmt.Sprintf("every handler released within write_timeout (%s) + %s of the gateway going idle", wt, secs(slack))
	idle, idleErr := waitIdle(gctx, g.pid(), time.Second, 0.02, 60*time.Second)
	released := releasedHandlers(g)
	if idleErr == nil {
		_ = waitFor(gctx, wt+slack, func() bool { released = releasedHandlers(g); return len(released) >= n })
	}
	measured := time.Now()
	target.check(r, g, stopped())
	var slowest time.Duration
	for _, l := range released {
		slowest = max(slowest, l.latency)
	}
	held := n - len(released)
	switch {
	case stopped():
		r.check(false, tgt, "not measured: the suite stopped the probe %s after the clients sent, %d of %d handlers held", secs(measured.Sub(sent)), held, n)
	case idleErr != nil:
		r.check(false, tgt, "the gateway never went idle (%v) in %s; %d of %d handlers held", idleErr, secs(measured.Sub(sent)), held, n)
	default:
		r.check(held == 0, tgt, "idle %s after the clients sent; %d of %d handlers held %s later; the slowest was held %s in all",
			secs(idle.Sub(sent)), held, n, secs(measured.Sub(idle)), secs(slowest))
	}
	r.figure("upstream streams still open then: %d of %d; the upstream wrote %s in all", up.inFlight.Load(), n, mb(up.written.Load()))
	return nil
}
