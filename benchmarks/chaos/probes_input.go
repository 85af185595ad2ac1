package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

func probeBudgetOverbill(ctx context.Context, e *env, r *result) error {
	// What the upstream bills, whatever output limit it is sent: at 2 µ$
	// a token, $0.20 an answer against a $0.01 limit.
	const billed = 100_000
	const limit = 10_000 // $0.01 in micro-dollars
	rg, err := e.rig(ctx, r, answer(billed), probeGateway{})
	if err != nil {
		return err
	}
	defer rg.close()
	up, g := rg.up, rg.g
	budget := func(name string) map[string]any {
		return map[string]any{"name": name, "budgets": []any{map[string]any{"period": "daily", "limit_usd": 0.01}}}
	}
	overbilled, err := g.createKey(ctx, budget("overbilled"))
	if err != nil {
		return err
	}
	huge, err := g.createKey(ctx, budget("huge-max-tokens"))
	if err != nil {
		return err
	}

	type sent struct {
		id     string
		status int
	}
	var seq []sent
	for range e.sc.budgetRequests {
		rep, err := postChat(ctx, g.base, overbilled.Secret, chatBody(chaosModel, 16, false, nil))
		if err != nil {
			return err
		}
		seq = append(seq, sent{rep.header.Get("x-tollgate-request-id"), rep.status})
	}
	before := up.requests.Load()
	big, err := postChat(ctx, g.base, huge.Secret, chatBody(unboundedModel, 1<<62, false, map[string]any{"n": 2}))
	if err != nil {
		return err
	}
	reached := up.requests.Load() - before
	if !g.terminate(15 * time.Second) {
		r.note("the gateway did not exit within 15s of SIGTERM; killed")
	}

	rows, err := readLedger(ctx, g.dataDir)
	if err != nil {
		return err
	}
	var spent, largest int64
	for _, row := range rows {
		if row.keyID == overbilled.ID {
			spent += row.cost
			largest = max(largest, row.cost)
		}
	}
	// Replay the requests in order: once what was charged before a
	// request reached the limit, it must not be served.
	byID := byRequest(rows)
	var running int64
	served, statuses := 0, make([]string, len(seq))
	for i, s := range seq {
		statuses[i] = strconv.Itoa(s.status)
		if running >= limit && s.status == http.StatusOK {
			served++
		}
		running += byID[s.id].cost
	}
	r.check(spent <= limit+largest, "spend <= the limit + one answer's charge",
		"spent %s against a %s daily limit; the largest answer charged %s", usd(spent), usd(limit), usd(largest))
	r.check(served == 0, "402 once the limit is spent",
		"statuses in order: %s (%d served after the limit was spent)", strings.Join(statuses, " "), served)
	r.check(big.status == http.StatusBadRequest || big.status == http.StatusPaymentRequired, "max_tokens 2^62, n 2, no output limit: 400 or 402",
		"HTTP %d (%d upstream calls): %s", big.status, reached, errorMessage(big.body))
	return nil
}

func probeHostileInput(ctx context.Context, e *env, r *result) error {
	rg, err := e.rig(ctx, r, answer(3), probeGateway{})
	if err != nil {
		return err
	}
	defer rg.close()
	up, g := rg.up, rg.g
	key, err := g.createKey(ctx, map[string]any{"name": "byok", "allow_byok": true})
	if err != nil {
		return err
	}

	// Duplicate keys: the gateway must not reserve for one value while the
	// upstream reads the other (both are valid on their own).
	dup := fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"duplicate %s"}],"max_tokens":16,"max_tokens":4000}`, chaosModel, nonce())
	rep, err := postChat(ctx, g.base, key.Secret, []byte(dup))
	if err != nil {
		return err
	}
	msg := errorMessage(rep.body)
	r.check(rep.status == http.StatusBadRequest && strings.Contains(msg, "max_tokens"), "duplicate max_tokens: 400 naming the key", "HTTP %d: %s", rep.status, msg)

	// An escaped field name is the same field to every JSON decoder.
	credential := "sk-" + randomSecret(32)
	escaped := fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"credentials %s"}],"customer\u005fcredentials":{"hostile":%q}}`, chaosModel, nonce(), credential)
	if rep, err = postChat(ctx, g.base, key.Secret, []byte(escaped)); err != nil {
		return err
	}
	leaked := false
	for _, s := range up.seenRequests() {
		leaked = leaked || bytes.Contains(s.body, []byte(credential))
	}
	verb := "does not hold"
	if leaked {
		verb = "holds"
	}
	r.check(!leaked, `"customer\u005fcredentials": stripped before the upstream (or refused)`, "HTTP %d; the upstream's body %s the credential", rep.status, verb)

	// A 100 KB model name: whatever the answer, the log stays readable.
	if rep, err = postChat(ctx, g.base, key.Secret, chatBody(strings.Repeat("m", 100_000), 16, false, nil)); err != nil {
		return err
	}
	time.Sleep(300 * time.Millisecond) // the log is written every 100ms
	longest, err := longestLine(g.logPath)
	if err != nil {
		return err
	}
	const lineCap = 16 << 10
	r.check(longest < lineCap, "100 KB model name: every log line < "+size(lineCap),
		"HTTP %d (a %s answer); the longest log line is %d bytes", rep.status, mb(rep.size), longest)

	// The admin key where an API key goes, and a near miss of it: no
	// answer, header or log line may carry any of its characters.
	nearMiss := g.adminKey[:len(g.adminKey)-1] + "0"
	var seen [][]byte
	var statuses []string
	for _, a := range []struct {
		method, path, header, value string
		body                        []byte
	}{
		{http.MethodPost, "/v1/chat/completions", "Authorization", "Bearer " + g.adminKey, chatBody(chaosModel, 16, false, nil)},
		{http.MethodGet, "/v1/models", "x-api-key", g.adminKey, nil},
		{http.MethodGet, "/admin/keys", "Authorization", "Bearer " + nearMiss, nil},
	} {
		req, err := http.NewRequestWithContext(ctx, a.method, g.base+a.path, bytes.NewReader(a.body))
		if err != nil {
			return err
		}
		req.Header.Set(a.header, a.value)
		rep, err := doRequest(req)
		if err != nil {
			return err
		}
		statuses = append(statuses, fmt.Sprintf("%s %s: %d", a.method, a.path, rep.status))
		seen = append(seen, rep.body)
		for k, vs := range rep.header {
			seen = append(seen, []byte(k+": "+strings.Join(vs, ", ")))
		}
	}
	time.Sleep(300 * time.Millisecond)
	log, err := os.ReadFile(g.logPath)
	if err != nil {
		return err
	}
	seen = append(seen, log)
	where := "none"
	if run := echoed(g.adminKey, seen...); run != "" {
		where = fmt.Sprintf("%q echoed", run)
	} else if run := echoed(nearMiss, seen...); run != "" {
		where = fmt.Sprintf("%q of the near miss echoed", run)
	}
	r.check(where == "none", "admin key misused: none of its characters echoed (answers, headers, log)", "%s; %s", strings.Join(statuses, ", "), where)
	return nil
}

// echoedRun is how many characters of a secret in a row count as an echo.
const echoedRun = 4

// echoed returns the first run of echoedRun characters of secret found in
// any of the texts, or "".
func echoed(secret string, texts ...[]byte) string {
	for i := 0; i+echoedRun <= len(secret); i++ {
		run := []byte(secret[i : i+echoedRun])
		for _, t := range texts {
			if bytes.Contains(t, run) {
				return string(run)
			}
		}
	}
	return ""
}
