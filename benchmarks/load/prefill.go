package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// cacheStats is what GET /admin/cache reports (the fields the harness uses).
type cacheStats struct {
	Embedder      string `json:"embedder"`
	Entries       int    `json:"entries"`
	Bytes         int64  `json:"bytes"`
	IndexPoints   int    `json:"index_points"`
	Hits          int64  `json:"hits"`
	SemanticHits  int64  `json:"semantic_hits"`
	Misses        int64  `json:"misses"`
	Bypasses      int64  `json:"bypasses"`
	GuardRefusals int64  `json:"guard_refusals"`
}

// errCacheOff is GET /admin/cache's 404: the gateway has no response cache.
var errCacheOff = fmt.Errorf("the gateway's response cache is off")

// adminCache reads a gateway's cache statistics through its admin API.
func (g *gateway) adminCache(ctx context.Context) (*cacheStats, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+g.addr+"/admin/cache", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+g.adminKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET /admin/cache: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return nil, errCacheOff
	default:
		return nil, fmt.Errorf("GET /admin/cache: %s: %.300s", resp.Status, b)
	}
	var r struct {
		Stats cacheStats `json:"stats"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("GET /admin/cache: %w: %.300s", err, b)
	}
	return &r.Stats, nil
}

// prefillRun is one gateway's prefill, as reported.
type prefillRun struct {
	Target      string            `json:"target"`
	Requested   int               `json:"requested"` // entries asked for
	Stored      int64             `json:"stored"`    // answers that were misses, each one stored
	OK          uint64            `json:"ok"`
	Errors      uint64            `json:"errors"`
	ErrorSample string            `json:"error_sample,omitempty"`
	Conns       int               `json:"conns"`
	Elapsed     string            `json:"elapsed"`
	RPS         float64           `json:"rps"`
	Cache       map[string]uint64 `json:"cache,omitempty"` // x-tollgate-cache of the answers
	// EntriesBefore and EntriesAfter are GET /admin/cache's entries:
	// the prefill's entries are the running gateway's own.
	EntriesBefore int    `json:"entries_before"`
	EntriesAfter  int    `json:"entries_after"`
	IndexPoints   int    `json:"index_points_after"`
	Skipped       string `json:"skipped,omitempty"`
}

func (p prefillRun) line() string {
	if p.Skipped != "" {
		return "skipped: " + p.Skipped
	}
	s := fmt.Sprintf("%d requests in %s (%.0f/s at %d conns), %d errors; entries %d -> %d, index points %d; x-tollgate-cache: %s",
		p.OK, p.Elapsed, p.RPS, p.Conns, p.Errors, p.EntriesBefore, p.EntriesAfter, p.IndexPoints, cacheCounts(p.Cache))
	if p.Stored < int64(p.Requested) {
		s += fmt.Sprintf("; only %d of the %d entries asked for (2n requests sent)", p.Stored, p.Requested)
	}
	if p.ErrorSample != "" {
		s += "; first error: " + p.ErrorSample
	}
	return s
}

// prefill fills the gateway's cache with n entries before it is measured:
// requests from the scenario's source, so new conversations in the scope the
// measured requests use (the same key, model and request shape) and never
// one of theirs, sent by conns workers through the gateway's chat API. Each
// answered as a miss is stored as any other miss is; one answered from the
// cache (a semantic hit on an earlier prompt) stores nothing, so requests
// go on until n misses were answered (a few more: those in flight then
// finish), or 2n requests were sent (a gateway that hits more often than it
// misses). The entry count is read back from GET /admin/cache before and
// after.
func prefill(ctx context.Context, g *gateway, l *loader, n, conns int, every time.Duration, logf func(string, ...any)) (prefillRun, error) {
	run := prefillRun{Target: l.t.name, Requested: n, Conns: conns}
	before, err := g.adminCache(ctx)
	if err != nil {
		if err == errCacheOff {
			run.Skipped = "no response cache to fill"
			return run, nil
		}
		return run, err
	}
	run.EntriesBefore = before.Entries
	logf("prefill %s: %d entries from new prompts at %d conns (cache holds %d entries)", l.t.name, n, conns, before.Entries)

	tr := newTransport(conns)
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: l.timeout}
	var sent, done, stored atomic.Int64
	outs := make([]outcome, conns)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := &worker{l: l, c: client}
			for ctx.Err() == nil && stored.Load() < int64(n) && sent.Add(1) <= 2*int64(n) {
				misses := outs[i].cache["miss"]
				w.do(ctx, time.Now(), &outs[i])
				stored.Add(int64(outs[i].cache["miss"] - misses))
				done.Add(1)
			}
		}()
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for waiting := true; waiting; {
		select {
		case <-finished:
			waiting = false
		case <-tick.C:
			st, el := stored.Load(), time.Since(start)
			rate := float64(st) / el.Seconds()
			eta := "-"
			if rate > 0 {
				eta = (time.Duration(float64(int64(n)-st)/rate) * time.Second).Round(time.Second).String()
			}
			logf("prefill %s: %d/%d entries stored, %d requests (%.0f entries/s, %s left)", l.t.name, st, n, done.Load(), rate, eta)
		}
	}
	elapsed := time.Since(start)
	if ctx.Err() != nil {
		return run, ctx.Err()
	}
	total := &outcome{}
	for i := range outs {
		total.merge(&outs[i])
	}
	run.OK, run.Errors, run.ErrorSample, run.Cache, run.Stored = total.ok, total.errors, total.sample, total.cache, stored.Load()
	run.Elapsed, run.RPS = elapsed.Round(time.Second).String(), float64(total.ok)/elapsed.Seconds()
	after, err := g.adminCache(ctx)
	if err != nil {
		return run, err
	}
	run.EntriesAfter, run.IndexPoints = after.Entries, after.IndexPoints
	logf("prefill %s: %s", l.t.name, run.line())
	return run, nil
}
