package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// target is one thing under load: the upstream directly, the floor proxy or
// a gateway variant.
type target struct {
	name    string
	baseURL string // http://host:port/v1
	auth    string // Authorization header value
	pid     int    // process whose CPU is billed to the target; 0 for none
}

// loader sends requests from src to one target. Each phase gets a fresh
// transport so no connection (or its warm-up state) carries over from
// another phase.
type loader struct {
	t       target
	src     source
	timeout time.Duration
}

// source yields the requests to send; it is shared by a phase's workers.
type source interface{ next() request }

// cycle sends a fixed mix in order, over and over: one per target, so
// every target sees the same sequence.
type cycle struct {
	mix []request
	i   atomic.Uint64
}

func (c *cycle) next() request { return c.mix[int(c.i.Add(1)-1)%len(c.mix)] }

func newTransport(conns int) *http.Transport {
	return &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     30 * time.Second,
		// Compression would cost both ends CPU the targets never pay in
		// production behind a client that does not ask for it.
		DisableCompression: true,
	}
}

// outcome tallies a phase's results. Workers keep their own and merge at the
// end, so the hot path touches no shared memory except the source.
type outcome struct {
	hist     histogram
	ok       uint64
	errors   uint64
	byStatus map[string]uint64 // error kind -> count
	sample   string            // first error, verbatim
	cache    map[string]uint64 // x-tollgate-cache of the successful answers that carry it
}

func (o *outcome) fail(kind, detail string) {
	o.errors++
	if o.byStatus == nil {
		o.byStatus = map[string]uint64{}
	}
	o.byStatus[kind]++
	if o.sample == "" {
		o.sample = detail
	}
}

func (o *outcome) merge(x *outcome) {
	o.hist.merge(&x.hist)
	o.ok += x.ok
	o.errors += x.errors
	for k, v := range x.byStatus {
		if o.byStatus == nil {
			o.byStatus = map[string]uint64{}
		}
		o.byStatus[k] += v
	}
	if o.sample == "" {
		o.sample = x.sample
	}
	o.cache = addCounts(o.cache, x.cache)
}

// addCounts adds b's counts into a (allocated when needed) and returns it.
func addCounts(a, b map[string]uint64) map[string]uint64 {
	for k, v := range b {
		if a == nil {
			a = map[string]uint64{}
		}
		a[k] += v
	}
	return a
}

// worker owns a reusable response buffer.
type worker struct {
	l   *loader
	c   *http.Client
	buf bytes.Buffer
}

// do sends the next request of the source and records it in o, its latency
// counted from since. Only a 2xx with a complete body counts as done: a
// streamed answer must end with [DONE], a JSON one must carry usage, so a
// target answering fast but wrong cannot pass for throughput.
func (w *worker) do(ctx context.Context, since time.Time, o *outcome) {
	r := w.l.src.next()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.l.t.baseURL+r.path, bytes.NewReader(r.body))
	if err != nil {
		o.fail("request", err.Error())
		return
	}
	req.Header["Content-Type"] = []string{"application/json"}
	req.Header["Authorization"] = []string{w.l.t.auth}
	resp, err := w.c.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			o.fail("cancelled", err.Error())
		} else {
			o.fail("transport", err.Error())
		}
		return
	}
	w.buf.Reset()
	_, err = w.buf.ReadFrom(resp.Body)
	resp.Body.Close()
	d := time.Since(since)
	switch {
	case err != nil:
		o.fail("body", fmt.Sprintf("%s: %v after %d bytes, %v", r.name, err, w.buf.Len(), resp.Header))
	case resp.StatusCode/100 != 2:
		b := w.buf.Bytes()
		if len(b) > 300 {
			b = b[:300]
		}
		o.fail(strconv.Itoa(resp.StatusCode), fmt.Sprintf("%s %s: %s: %s", r.name, r.path, resp.Status, b))
	case r.stream && !bytes.HasSuffix(bytes.TrimRight(w.buf.Bytes(), "\n"), []byte("data: [DONE]")):
		o.fail("incomplete-stream", fmt.Sprintf("%s: stream without data: [DONE] (%d bytes)", r.name, w.buf.Len()))
	case !r.stream && !bytes.Contains(w.buf.Bytes(), []byte(`"usage"`)):
		o.fail("no-usage", fmt.Sprintf("%s: 200 without usage: %.200s", r.name, w.buf.Bytes()))
	default:
		o.ok++
		o.hist.record(d)
		// The gateway says whether it answered from its cache: a miss
		// scenario must show misses, a hit scenario hits.
		if c := resp.Header["X-Tollgate-Cache"]; len(c) > 0 {
			if o.cache == nil {
				o.cache = map[string]uint64{}
			}
			o.cache[c[0]]++
		}
	}
}

// closedLoop runs conns workers, each sending its next request as soon as
// the previous one is answered, for d. It measures the most a target can
// serve; its latencies are not meaningful under saturation (each worker waits
// for the previous answer), which is why fixed rates are run open-loop.
func (l *loader) closedLoop(ctx context.Context, conns int, d time.Duration) (*outcome, time.Duration) {
	tr := newTransport(conns)
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: l.timeout}
	var stop atomic.Bool
	outs := make([]outcome, conns)
	var wg sync.WaitGroup
	start := time.Now()
	timer := time.AfterFunc(d, func() { stop.Store(true) })
	defer timer.Stop()
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := &worker{l: l, c: client}
			// In-flight requests finish after the deadline rather than
			// being cancelled, which would count them as errors.
			for !stop.Load() && ctx.Err() == nil {
				w.do(ctx, time.Now(), &outs[i])
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	total := &outcome{}
	for i := range outs {
		total.merge(&outs[i])
	}
	return total, elapsed
}

// openLoop sends rate requests per second for d, each at its scheduled time
// whatever the target's progress, and measures each latency from the
// scheduled time, so a stall is charged to every request it delays
// (no coordinated omission). Requests wait for one of maxInflight workers in
// an unbounded queue; the wait counts as latency. It returns the outcome and
// the time from the first scheduled send to the last answer.
func (l *loader) openLoop(ctx context.Context, c clock, rate int, d time.Duration, maxInflight int) (*outcome, time.Duration) {
	tr := newTransport(maxInflight)
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: l.timeout}
	s := newSchedule(c.Now().Add(10*time.Millisecond), rate, d)
	queue := make(chan time.Time, s.n) // never blocks the dispatcher
	outs := make([]outcome, maxInflight)
	var wg sync.WaitGroup
	for i := range maxInflight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := &worker{l: l, c: client}
			for intended := range queue {
				if ctx.Err() != nil {
					outs[i].fail("cancelled", ctx.Err().Error())
					continue
				}
				w.do(ctx, intended, &outs[i])
			}
		}()
	}
	dispatch(ctx, c, s, func(_ int, intended time.Time) { queue <- intended })
	close(queue)
	wg.Wait()
	elapsed := time.Since(s.start)
	total := &outcome{}
	for i := range outs {
		total.merge(&outs[i])
	}
	return total, elapsed
}

// cpuMeter reads the CPU time of the processes a phase involves before and
// after it.
type cpuMeter struct {
	pids   map[string]int // role -> pid
	before map[string]int64
	busy0  int64
	t0     time.Time
}

func startCPU(pids map[string]int) (*cpuMeter, error) {
	m := &cpuMeter{pids: pids, before: map[string]int64{}, t0: time.Now()}
	for k, pid := range pids {
		t, err := cpuTicks(pid)
		if err != nil {
			return nil, fmt.Errorf("cpu of %s: %w", k, err)
		}
		m.before[k] = t
	}
	var err error
	m.busy0, err = machineBusyTicks()
	return m, err
}

// cpuUse is a phase's CPU time per role, and what the rest of the machine
// used meanwhile, in cores: other people's compilers and tests, plus
// interrupt time the kernel bills to no process (some of it our loopback
// traffic), so it is an upper bound on the disturbance.
type cpuUse struct {
	byRole      map[string]time.Duration
	otherCores  float64
	elapsed     time.Duration
	machineBusy time.Duration
}

func (m *cpuMeter) stop() (cpuUse, error) {
	u := cpuUse{byRole: map[string]time.Duration{}, elapsed: time.Since(m.t0)}
	var ours int64
	for k, pid := range m.pids {
		t, err := cpuTicks(pid)
		if err != nil {
			return u, fmt.Errorf("cpu of %s: %w", k, err)
		}
		u.byRole[k] = time.Duration(t-m.before[k]) * clockTick
		ours += t - m.before[k]
	}
	busy, err := machineBusyTicks()
	if err != nil {
		return u, err
	}
	u.machineBusy = time.Duration(busy-m.busy0) * clockTick
	other := time.Duration(busy-m.busy0-ours) * clockTick
	u.otherCores = max(0, other.Seconds()/u.elapsed.Seconds())
	return u, nil
}

// errorKinds formats error counts for the report, most frequent first.
func errorKinds(m map[string]uint64) string {
	type kv struct {
		k string
		v uint64
	}
	var s []kv
	for k, v := range m {
		s = append(s, kv{k, v})
	}
	sort.Slice(s, func(i, j int) bool { return s[i].v > s[j].v || s[i].v == s[j].v && s[i].k < s[j].k })
	var b bytes.Buffer
	for i, e := range s {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s: %d", e.k, e.v)
	}
	return b.String()
}
