package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tollgate/tollgate/internal/pgtest"
	"github.com/tollgate/tollgate/pkg/budget"
	"github.com/tollgate/tollgate/pkg/config"
	"github.com/tollgate/tollgate/pkg/llm"
)

// Replica tests (issue 13): several gateway processes, each started from
// this test binary as main would be, share one PostgreSQL schema and must
// behave as one gateway: exact budgets, shared rate limits, a ledger that
// survives kill -9 of a replica, one alert per threshold and exact cache
// hits across replicas.

// replicaPostgresEnv names the PostgreSQL server of the replica tests.
const replicaPostgresEnv = "TOLLGATE_TEST_POSTGRES"

// The replicas serve "pricey": its input costs nothing and each output
// token pricePerToken µ$, so a request cut at max_tokens k (the sim's
// answers are longer than the sizes used here) reserves and costs exactly
// k·pricePerToken, whatever its prompt. "stalled" is priced alike and never
// answers (its sim waits an hour): a reservation held for as long as the
// test likes.
const pricePerToken = 1000 // µ$: output_usd_per_mtok 1000

// replicaSchema makes a schema of the test's own, dropped at Cleanup after
// the replicas are gone (Cleanup runs last registered first), and returns
// the URL whose search_path is it. It skips the test without PostgreSQL.
func replicaSchema(t *testing.T) string {
	t.Helper()
	return pgtest.NewSchema(t).URL
}

// replicaOptions is what differs between the replica tests' configurations.
type replicaOptions struct {
	postgresURL string // "": driver sqlite, each replica in its own data dir
	lease       string // store.reservation_lease ("": the default)
	redisURL    string // store.redis_url: the rate limits in Redis
	cache       bool   // the exact cache (the semantic cache stays off)
	webhook     string // budget.webhooks[0].url
}

// replicaConfig writes the configuration every replica of a test shares.
func replicaConfig(t *testing.T, o replicaOptions) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("admin_key: an-admin-key-of-enough-length\ndev_key: false\ndrain_timeout: 1s\n")
	if o.postgresURL != "" {
		fmt.Fprintf(&b, "store:\n  driver: postgres\n  postgres_url: %q\n", o.postgresURL)
		if o.lease != "" {
			fmt.Fprintf(&b, "  reservation_lease: %s\n", o.lease)
		}
		if o.redisURL != "" {
			fmt.Fprintf(&b, "  redis_url: %q\n", o.redisURL)
		}
	}
	b.WriteString(`providers:
  - {name: sim, type: sim, sim: {latency: 5ms}}
  - {name: stall, type: sim, sim: {latency: 1h}}
models:
  - {name: pricey, provider: sim, upstream_model: sim-small, input_usd_per_mtok: 0, output_usd_per_mtok: 1000, max_input_tokens: 100000, max_output_tokens: 100000}
  - {name: stalled, provider: stall, upstream_model: sim-small, input_usd_per_mtok: 0, output_usd_per_mtok: 1000, max_input_tokens: 100000, max_output_tokens: 100000}
`)
	fmt.Fprintf(&b, "cache:\n  enabled: %v\n  semantic: {enabled: false}\n", o.cache)
	if o.webhook != "" {
		fmt.Fprintf(&b, "budget:\n  webhooks: [{url: %q}]\n", o.webhook)
	}
	path := filepath.Join(t.TempDir(), "tollgate.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// replica is one gateway process.
type replica struct {
	*command
	url string
}

// startReplicas starts n gateway processes on cfg, each with its own data
// directory (as containers would have): the first alone, which migrates a
// fresh schema, then the others at once. (TestReplicasStartTogether starts
// them all at once.)
func startReplicas(t *testing.T, n int, cfg string) []*replica {
	t.Helper()
	rs := startReplicasAtOnce(t, 1, cfg)
	return append(rs, startReplicasAtOnce(t, n-1, cfg)...)
}

// startReplicasAtOnce starts n gateway processes on cfg together and
// waits until each listens.
func startReplicasAtOnce(t *testing.T, n int, cfg string) []*replica {
	t.Helper()
	rs := make([]*replica, n)
	for i := range rs {
		rs[i] = &replica{command: startCommand(t, "-config", cfg, "-data", t.TempDir())}
	}
	deadline := time.Now().Add(60 * time.Second) // a hang guard
	for i, r := range rs {
		for r.url == "" {
			if m := listenRE.FindStringSubmatch(r.stdout.String()); m != nil {
				r.url = m[1]
				break
			}
			select {
			case <-r.exited:
				t.Fatalf("replica %d exited before listening (status %d); stderr:\n%s", i, r.cmd.ProcessState.ExitCode(), r.stderr.String())
			case <-time.After(10 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("replica %d did not listen; stderr:\n%s", i, r.stderr.String())
			}
		}
	}
	return rs
}

// TestReplicasStartTogether: replicas started at the same moment on a
// fresh database (docker compose starts them so) all start and are ready:
// migrations and any other schema work are safe under concurrency.
func TestReplicasStartTogether(t *testing.T) {
	for _, r := range startReplicasAtOnce(t, 3, replicaConfig(t, replicaOptions{postgresURL: replicaSchema(t)})) {
		resp, err := http.Get(r.url + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s/readyz: %d %s", r.url, resp.StatusCode, body)
		}
	}
}

// replicaClient is shared by the tests: enough idle connections for a
// burst, and a hang guard.
var replicaClient = &http.Client{
	Timeout:   60 * time.Second,
	Transport: &http.Transport{MaxIdleConns: 1000, MaxIdleConnsPerHost: 300},
}

// answer is what a chat request got.
type answer struct {
	status     int
	requestID  string // x-tollgate-request-id
	cost       string // x-tollgate-cost-usd
	cache      string // x-tollgate-cache
	retryAfter string
	code       string // the error envelope's code
	id         string // the completion's id
	body       string
	err        error // transport error: no answer
}

// chat sends one request for the model with max_tokens and the prompt;
// header pairs are added to the request.
func chat(base, secret, model string, maxTokens int, prompt string, header ...string) answer {
	body, _ := json.Marshal(map[string]any{"model": model, "max_tokens": maxTokens,
		"messages": []map[string]string{{"role": "user", "content": prompt}}})
	req, _ := http.NewRequest("POST", base+"/v1/chat/completions", strings.NewReader(string(body)))
	req.Header.Set("Authorization", "Bearer "+secret)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := replicaClient.Do(req)
	if err != nil {
		return answer{err: err}
	}
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	a := answer{status: resp.StatusCode, requestID: resp.Header.Get("x-tollgate-request-id"), cost: resp.Header.Get("x-tollgate-cost-usd"),
		cache: resp.Header.Get("x-tollgate-cache"), retryAfter: resp.Header.Get("Retry-After"), body: string(raw), err: err}
	var env struct {
		ID    string `json:"id"`
		Error struct{ Code string }
	}
	_ = json.Unmarshal(raw, &env)
	a.id, a.code = env.ID, env.Error.Code
	return a
}

func (a answer) String() string {
	if a.err != nil {
		return a.err.Error()
	}
	return fmt.Sprintf("%d %.300s", a.status, a.body)
}

// createReplicaKey creates a key through the replica's admin API.
func createReplicaKey(t *testing.T, base, body string) (id, secret string) {
	t.Helper()
	var key struct{ ID, Key string }
	if st := adminCall(t, base, "POST", "/admin/keys", body, &key); st != http.StatusCreated {
		t.Fatalf("create key %s: %d", body, st)
	}
	return key.ID, key.Key
}

// keyBudget reads the key's first budget (spent and reserved) through the
// replica, waiting (bounded) until the replica knows the key: keys created
// elsewhere arrive through PostgreSQL.
func keyBudget(t *testing.T, base, id string) (spent, reserved llm.Micros) {
	t.Helper()
	var detail struct {
		Budgets []struct {
			Spent    json.Number `json:"spent_usd"`
			Reserved json.Number `json:"reserved_usd"`
		} `json:"budgets"`
	}
	deadline := time.Now().Add(30 * time.Second) // a hang guard
	for {
		st := adminCall(t, base, "GET", "/admin/keys/"+id, "", nil)
		if st == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /admin/keys/%s at %s: %d for 30s", id, base, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	adminCall(t, base, "GET", "/admin/keys/"+id, "", &detail)
	if len(detail.Budgets) == 0 {
		t.Fatalf("key %s has no budget at %s", id, base)
	}
	return usdMicros(t, detail.Budgets[0].Spent.String()), usdMicros(t, detail.Budgets[0].Reserved.String())
}

func usdMicros(t *testing.T, s string) llm.Micros {
	t.Helper()
	m, err := budget.ParseUSD(s)
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return m
}

// ledgerRow is one row of GET /admin/keys/{id}/spend.
type ledgerRow struct {
	RequestID string      `json:"request_id"`
	Cost      json.Number `json:"cost_usd"`
	Status    int         `json:"status"`
}

// ledgerRows reads every ledger row of the key through the replica, page
// by page.
func ledgerRows(t *testing.T, base, id string) []ledgerRow {
	t.Helper()
	var rows []ledgerRow
	cursor := ""
	for {
		var page struct {
			Data   []ledgerRow `json:"data"`
			Cursor *string     `json:"next_cursor"`
		}
		path := "/admin/keys/" + id + "/spend?limit=1000"
		if cursor != "" {
			path += "&cursor=" + url.QueryEscape(cursor)
		}
		if st := adminCall(t, base, "GET", path, "", &page); st != http.StatusOK {
			t.Fatalf("spend of %s at %s: %d", id, base, st)
		}
		rows = append(rows, page.Data...)
		if page.Cursor == nil || len(page.Data) == 0 {
			return rows
		}
		cursor = *page.Cursor
	}
}

// awaitLedger waits (bounded) until the key has want ledger rows and
// returns them.
func awaitLedger(t *testing.T, base, id string, want int) []ledgerRow {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second) // a hang guard
	for {
		rows := ledgerRows(t, base, id)
		if len(rows) >= want || time.Now().After(deadline) {
			return rows
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// burstResult counts a burst's answers.
type burstResult struct {
	served, refused int
	servedCost      llm.Micros
	unexpected      []string
}

// burst sends total concurrent requests, request i to replica i%len(rs)
// with secrets[i%len(rs)] and max_tokens sizes[i%len(sizes)]. A 200 must
// cost exactly max_tokens·pricePerToken and a refusal be a 402
// budget_exceeded.
func burst(t *testing.T, rs []*replica, secrets []string, total int, sizes []int) burstResult {
	t.Helper()
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		res burstResult
	)
	for i := range total {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := sizes[i%len(sizes)]
			a := chat(rs[i%len(rs)].url, secrets[i%len(rs)], "pricey", k, "Write a long essay about the history of toll roads in Europe.")
			mu.Lock()
			defer mu.Unlock()
			switch {
			case a.status == http.StatusOK:
				res.served++
				cost, err := budget.ParseUSD(a.cost)
				if err != nil || cost != llm.Micros(k*pricePerToken) {
					res.unexpected = append(res.unexpected, fmt.Sprintf("max_tokens %d cost %q, want %d µ$", k, a.cost, k*pricePerToken))
				}
				res.servedCost += cost
			case a.status == http.StatusPaymentRequired && a.code == "budget_exceeded":
				res.refused++
			default:
				res.unexpected = append(res.unexpected, fmt.Sprintf("replica %d: %s", i%len(rs), a))
			}
		}()
	}
	wg.Wait()
	return res
}

// TestReplicasKeepBudgetsExact: 600 concurrent requests spread over three
// replicas against a budget that fits exactly N of them (every cost is in
// (L/(N+1), L/N]: any N fit, no N+1 do) → exactly N served, the rest 402,
// and the spend every replica reports is the sum of the ledger rows, at
// most the limit. The control: three replicas each with its own store,
// each enforcing the same limit alone, serve more than N; that is why
// the reservations are shared.
func TestReplicasKeepBudgetsExact(t *testing.T) {
	const (
		n        = 12
		replicas = 3
		total    = 600
	)
	sizes := []int{20, 21}
	limit := llm.Micros(n * 21 * pricePerToken)
	if (n+1)*20*pricePerToken <= int(limit) {
		t.Fatalf("sizes do not separate N from N+1")
	}
	keyBody := fmt.Sprintf(`{"name":"exact","budgets":[{"period":"daily","limit_usd":%s}]}`, limit)

	t.Run("postgres: three replicas share the reservations", func(t *testing.T) {
		rs := startReplicas(t, replicas, replicaConfig(t, replicaOptions{postgresURL: replicaSchema(t)}))
		// Created on one replica; the others have never heard of it
		// when the burst starts.
		id, secret := createReplicaKey(t, rs[0].url, keyBody)
		res := burst(t, rs, []string{secret, secret, secret}, total, sizes)
		if len(res.unexpected) > 0 {
			t.Fatalf("%d unexpected answers, first: %s", len(res.unexpected), res.unexpected[0])
		}
		if res.served != n || res.refused != total-n {
			t.Fatalf("%d served, %d refused; want exactly %d served of %d", res.served, res.refused, n, total)
		}
		// Every request is a ledger row; the served ones carry the money.
		rows := awaitLedger(t, rs[1].url, id, total)
		var sum llm.Micros
		statuses := map[int]int{}
		for _, r := range rows {
			sum += usdMicros(t, r.Cost.String())
			statuses[r.Status]++
		}
		for i, r := range rs {
			spent, reserved := keyBudget(t, r.url, id)
			if spent != sum || spent != res.servedCost || spent > limit || reserved != 0 {
				t.Fatalf("replica %d: spent %s, reserved %s; served %s, ledger sum %s over %d rows, limit %s", i, spent, reserved, res.servedCost, sum, len(rows), limit)
			}
		}
		if len(rows) != total || statuses[200] != n || statuses[402] != total-n {
			t.Fatalf("ledger: %d rows, statuses %v; want %d rows, %d of them 200", len(rows), statuses, total, n)
		}
		t.Logf("%d requests over %d replicas: %d served (spend %s of %s), %d refused", total, replicas, res.served, sum, limit, res.refused)
	})

	t.Run("sqlite: a store per replica overspends", func(t *testing.T) {
		rs := startReplicas(t, replicas, replicaConfig(t, replicaOptions{}))
		secrets := make([]string, replicas)
		for i, r := range rs { // the same limit, enforced by each replica alone
			_, secrets[i] = createReplicaKey(t, r.url, keyBody)
		}
		res := burst(t, rs, secrets, total, sizes)
		if len(res.unexpected) > 0 {
			t.Fatalf("%d unexpected answers, first: %s", len(res.unexpected), res.unexpected[0])
		}
		if res.served <= n || res.servedCost <= limit {
			t.Fatalf("without a shared store %d served (spend %s): the control no longer overspends a limit of %d requests (%s)", res.served, res.servedCost, n, limit)
		}
		t.Logf("without shared reservations: %d served for a limit that fits %d: spend %s of %s (%.1fx)", res.served, n, res.servedCost, limit, float64(res.servedCost)/float64(limit))
	})
}

// TestReplicasShareRateLimits: a key with rpm 10, 30 concurrent requests
// spread over three replicas → 10 served, 20 refused with 429 and
// Retry-After. (GCRA refills one request every 6 s: a burst that took
// longer than that may have one more served per 6 s, counted, not timed.)
func TestReplicasShareRateLimits(t *testing.T) {
	for _, engine := range []string{"postgres", "redis"} {
		t.Run(engine, func(t *testing.T) {
			o := replicaOptions{postgresURL: replicaSchema(t)}
			if engine == "redis" {
				o.redisURL = pgtest.RedisURL(t)
			}
			testSharedRateLimits(t, o)
		})
	}
}

// replicaWarnings is the replicas' log lines at WARN and above (the cause
// of a 5xx is there, never in the answer), at most 20 of them.
func replicaWarnings(rs []*replica) string {
	var out []string
	for i, r := range rs {
		for _, line := range strings.Split(r.stdout.String()+r.stderr.String(), "\n") {
			if len(out) < 20 && (strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") ||
				strings.Contains(line, `"level":"WARN"`) || strings.Contains(line, `"level":"ERROR"`)) {
				out = append(out, fmt.Sprintf("replica %d: %s", i, line))
			}
		}
	}
	return strings.Join(out, "\n")
}

func testSharedRateLimits(t *testing.T, o replicaOptions) {
	rs := startReplicas(t, 3, replicaConfig(t, o))
	_, secret := createReplicaKey(t, rs[0].url, `{"name":"rpm","rpm":10,"budgets":[{"period":"daily","limit_usd":100}]}`)
	const total, rpm = 30, 10
	var (
		wg         sync.WaitGroup
		mu         sync.Mutex
		served     int
		limited    int
		unexpected []string
	)
	began := time.Now()
	for i := range total {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := chat(rs[i%len(rs)].url, secret, "pricey", 5, fmt.Sprintf("question %d", i))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case a.status == http.StatusOK:
				served++
			case a.status == http.StatusTooManyRequests && a.code == "rate_limit_exceeded" && a.retryAfter != "":
				limited++
			default:
				unexpected = append(unexpected, fmt.Sprintf("replica %d: %s (Retry-After %q)", i%len(rs), a, a.retryAfter))
			}
		}()
	}
	wg.Wait()
	refills := int(time.Since(began) / (time.Minute / rpm))
	if len(unexpected) > 0 {
		t.Fatalf("%d unexpected answers, first: %s\nthe replicas' warnings:\n%s", len(unexpected), unexpected[0], replicaWarnings(rs))
	}
	if served < rpm || served > rpm+refills || served+limited != total {
		t.Fatalf("rpm %d over 3 replicas: %d served, %d refused with 429 (%d refills during the burst)", rpm, served, limited, refills)
	}
	t.Logf("rpm %d over 3 replicas: %d served, %d got 429 with Retry-After", rpm, served, limited)
}

// TestReplicaKilledUnderLoad: three replicas under load; one is killed
// with SIGKILL while it holds a reservation. Every request a client saw
// succeed, on any replica, is in the ledger; the two others answer every
// request throughout; once the lease has passed the dead replica's
// reservation is released by the others, and the whole remaining budget
// can be spent (and not a token more).
func TestReplicaKilledUnderLoad(t *testing.T) {
	t.Parallel()
	rs := startReplicas(t, 3, replicaConfig(t, replicaOptions{postgresURL: replicaSchema(t), lease: "2s"}))
	const limit = 10_000_000 // µ$: 10,000 output tokens
	id, secret := createReplicaKey(t, rs[0].url, fmt.Sprintf(`{"name":"crash","budgets":[{"period":"daily","limit_usd":%s}]}`, llm.Micros(limit)))
	victim, survivors := rs[2], rs[:2]

	var (
		mu       sync.Mutex
		acked    = map[string]int{} // request id → replica
		perRep   [3]int             // acks per replica
		failures []string           // the survivors' non-200 answers
		wg       sync.WaitGroup
		stop     = make(chan struct{})
	)
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ri := w % 3
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				a := chat(rs[ri].url, secret, "pricey", 5, fmt.Sprintf("worker %d request %d", w, i))
				if ri == 2 && a.err != nil {
					return // the victim is gone
				}
				mu.Lock()
				switch {
				case a.status == http.StatusOK:
					acked[a.requestID] = ri
					perRep[ri]++
				case ri != 2:
					failures = append(failures, fmt.Sprintf("replica %d: %s", ri, a))
				}
				mu.Unlock()
			}
		}()
	}
	acks := func() (total int, each [3]int) {
		mu.Lock()
		defer mu.Unlock()
		return len(acked), perRep
	}
	awaitAcks := func(what string, ok func(each [3]int) bool) {
		deadline := time.Now().Add(60 * time.Second) // a hang guard
		for {
			if _, each := acks(); ok(each) {
				return
			}
			if time.Now().After(deadline) {
				_, each := acks()
				t.Fatalf("waiting for %s: acks per replica %v", what, each)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	awaitAcks("load on every replica", func(e [3]int) bool { return e[0] >= 30 && e[1] >= 30 && e[2] >= 30 })

	// A request the victim will never finish: its reservation (100 tokens,
	// more than the load can hold at once) is seen in the shared counters.
	go chat(victim.url, secret, "stalled", 100, "wait for me")
	const stallCost = 100 * pricePerToken
	deadline := time.Now().Add(30 * time.Second) // a hang guard
	for {
		if _, reserved := keyBudget(t, survivors[0].url, id); reserved >= stallCost {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the stalled request's reservation never showed in the shared counters")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := victim.cmd.Process.Kill(); err != nil { // SIGKILL, mid-flight
		t.Fatal(err)
	}
	<-victim.exited
	_, atKill := acks()
	awaitAcks("the survivors serving after the kill", func(e [3]int) bool { return e[0] >= atKill[0]+30 && e[1] >= atKill[1]+30 })
	close(stop)
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("the surviving replicas failed %d requests, first: %s", len(failures), failures[0])
	}

	// The dead replica's reservations go once the lease has passed.
	deadline = time.Now().Add(60 * time.Second) // a hang guard
	var spent, reserved llm.Micros
	for {
		if spent, reserved = keyBudget(t, survivors[0].url, id); reserved == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("60s after the kill (lease 2s) %s is still reserved", reserved)
		}
		time.Sleep(100 * time.Millisecond)
	}
	rows := ledgerRows(t, survivors[1].url, id)
	inLedger := map[string]bool{}
	var sum llm.Micros
	for _, r := range rows {
		inLedger[r.RequestID] = true
		sum += usdMicros(t, r.Cost.String())
	}
	mu.Lock()
	missing := map[int]int{}
	for rid, ri := range acked {
		if !inLedger[rid] {
			missing[ri]++
		}
	}
	total, each := len(acked), perRep
	mu.Unlock()
	if len(missing) > 0 {
		t.Fatalf("acknowledged requests missing from the ledger, per replica: %v (of %v)", missing, each)
	}
	// As in TestCrashKeepsSpendExact: a request the dead replica settled
	// has its row, one it did not settle charged nothing.
	if spent != sum {
		t.Fatalf("after the kill: spend %s, ledger sum %s over %d rows (%s charged without a ledger row, or a row without its charge)", spent, sum, len(rows), spent-sum)
	}

	// Everything left can be reserved, and not a token more.
	left := int((limit - spent) / pricePerToken)
	if a := chat(survivors[0].url, secret, "pricey", left+1, "one token too many"); a.status != http.StatusPaymentRequired || a.code != "budget_exceeded" {
		t.Fatalf("max_tokens %d, one more than the %s left: %s", left+1, limit-spent, a)
	}
	if a := chat(survivors[1].url, secret, "pricey", left, "all that is left"); a.status != http.StatusOK {
		t.Fatalf("max_tokens %d, all of the %s left once the lease passed: %s", left, limit-spent, a)
	}
	t.Logf("killed 1 of 3 replicas under load: %d acknowledged (per replica %v), all in the ledger (%d rows, %s); its reservation released after the lease", total, each, len(rows), sum)
}

// TestReplicasAlertOncePerThreshold: a 50% threshold crossed by requests
// on two replicas, each of which sees the key's spend pass it, is
// delivered once, not once per replica.
func TestReplicasAlertOncePerThreshold(t *testing.T) {
	t.Parallel()
	type delivery struct {
		ID        string  `json:"id"`
		Event     string  `json:"event"`
		KeyID     string  `json:"key_id"`
		Threshold float64 `json:"threshold"`
	}
	got := make(chan delivery, 64)
	var projected atomic.Int32
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var d delivery
		body, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(body, &d); err != nil {
			d.Event = "unreadable: " + string(body)
		}
		if d.Event == budget.EventProjected {
			// The daily budget at 80% fires projected_exhaustion too once a
			// tenth of the UTC day has passed (after 02:24): counted apart,
			// so the test does not depend on the time of day.
			projected.Add(1)
			return
		}
		got <- d
	}))
	defer receiver.Close()
	rs := startReplicas(t, 2, replicaConfig(t, replicaOptions{postgresURL: replicaSchema(t), webhook: receiver.URL}))
	a, b := rs[0], rs[1]
	// Ten requests of 5 tokens fill the budget: each is 10%.
	id, secret := createReplicaKey(t, a.url, fmt.Sprintf(`{"name":"alerted","budgets":[{"period":"daily","limit_usd":%s,"alert_thresholds":[0.5]}]}`, llm.Micros(10*5*pricePerToken)))
	// A brings the spend to 40%, B past 50% (to 60%), A on to 80%: each
	// replica settles a request that leaves the spend above the
	// threshold, having seen it below.
	for i, r := range []*replica{a, a, a, a, b, b, a, a} {
		if ans := chat(r.url, secret, "pricey", 5, fmt.Sprintf("question %d", i)); ans.status != http.StatusOK {
			t.Fatalf("request %d: %s", i, ans)
		}
	}
	const interval = 5 * time.Second // budget's default DeliveryInterval
	var first delivery
	select {
	case first = <-got:
	case <-time.After(30 * time.Second): // a hang guard
		t.Fatal("no alert delivered")
	}
	if first.Event != budget.EventThreshold || first.KeyID != id || first.Threshold != 0.5 {
		t.Fatalf("delivery %+v, want the 0.5 threshold of %s", first, id)
	}
	// At least once, so a second delivery would come within a round or
	// two of the deliverer: none may.
	select {
	case d := <-got:
		t.Fatalf("a second delivery: %+v after %+v", d, first)
	case <-time.After(2 * interval):
	}
	if n := projected.Load(); n > 1 {
		t.Fatalf("projected_exhaustion delivered %d times, want at most once", n)
	}
}

// TestReplicasShareExactCache: an answer stored through replica A is an
// exact hit on replica B. B is asked with Cache-Control: no-store until
// the entry shows (entries reach the others a few ms after the answer),
// so that B never serves an entry of its own.
func TestReplicasShareExactCache(t *testing.T) {
	t.Parallel()
	rs := startReplicas(t, 2, replicaConfig(t, replicaOptions{postgresURL: replicaSchema(t), cache: true}))
	_, secret := createReplicaKey(t, rs[0].url, `{"name":"cached","budgets":[{"period":"daily","limit_usd":100}]}`)
	const prompt = "What is the toll on the Severn bridge?"
	first := chat(rs[0].url, secret, "pricey", 8, prompt)
	if first.status != http.StatusOK || first.cache != "miss" {
		t.Fatalf("first ask at A: %s (cache %q)", first, first.cache)
	}
	deadline := time.Now().Add(10 * time.Second) // a hang guard
	for {
		a := chat(rs[1].url, secret, "pricey", 8, prompt, "Cache-Control", "no-store")
		if a.status != http.StatusOK {
			t.Fatalf("at B: %s", a)
		}
		if a.cache == "hit" {
			if a.id != first.id {
				t.Fatalf("B's hit is completion %s, A answered %s", a.id, first.id)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("10s after A answered, B still answers %q", a.cache)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestComposeRunsReplicas checks docker-compose.yml and the replicas'
// configuration without a Docker engine: the configuration loads and
// validates with the environment compose gives it (driver postgres, the
// semantic index in Qdrant); every env: variable it reads is set for
// the replicas; each replica mounts it where its command reads it, has a
// data volume of its own and waits for healthy PostgreSQL and Qdrant; and
// every service that others wait for has a health check on the right
// probe.
func TestComposeRunsReplicas(t *testing.T) {
	type service struct {
		Image     string
		Build     any
		Command   []string
		Volumes   []string
		Env       map[string]string `yaml:"environment"`
		DependsOn map[string]struct {
			Condition string
		} `yaml:"depends_on"`
		Healthcheck struct{ Test []string }
	}
	var compose struct{ Services map[string]service }
	raw, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, &compose); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	probe := map[string]string{"postgres": "pg_isready", "qdrant": "GET /readyz", "tollgate-1": "GET /readyz", "tollgate-2": "GET /readyz"}
	for name, want := range probe {
		s, ok := compose.Services[name]
		if !ok {
			t.Fatalf("no service %s", name)
		}
		if test := strings.Join(s.Healthcheck.Test, " "); !strings.Contains(test, want) {
			t.Errorf("%s: health check %q does not probe %s", name, test, want)
		}
	}

	const configPath = "../../deploy/compose/tollgate.yaml"
	body, err := os.ReadFile(configPath)
	if err != nil {
		t.Fatal(err)
	}
	mount := "./deploy/compose/tollgate.yaml:/etc/tollgate/tollgate.yaml:ro"
	dataVolumes := map[string]string{}
	for _, name := range []string{"tollgate-1", "tollgate-2"} {
		s := compose.Services[name]
		if !slices.Contains(s.Volumes, mount) || !slices.Equal(s.Command, []string{"-config", "/etc/tollgate/tollgate.yaml"}) {
			t.Errorf("%s: volumes %v, command %v: the configuration is not mounted where it is read", name, s.Volumes, s.Command)
		}
		for _, v := range s.Volumes {
			if strings.HasSuffix(v, ":/data") {
				if other, ok := dataVolumes[v]; ok {
					t.Errorf("%s and %s share the data volume %s", other, name, v)
				}
				dataVolumes[v] = name
			}
		}
		for _, dep := range []string{"postgres", "qdrant"} {
			if c := s.DependsOn[dep].Condition; c != "service_healthy" {
				t.Errorf("%s waits for %s with condition %q, want service_healthy", name, dep, c)
			}
		}
		// Every env: reference of the configuration is set for the replica.
		for _, m := range regexp.MustCompile(`(?m)^[^#]*\benv:([A-Z0-9_]+)`).FindAllStringSubmatch(string(body), -1) {
			if _, ok := s.Env[m[1]]; !ok {
				t.Errorf("%s: the configuration reads env:%s, which the service does not set", name, m[1])
			}
		}
		if _, ok := s.Env[config.AdminKeyEnv]; !ok {
			t.Errorf("%s: no %s", name, config.AdminKeyEnv)
		}
	}
	if len(dataVolumes) != 2 {
		t.Errorf("data volumes %v: want one per replica", dataVolumes)
	}

	const pgURL = "postgres://tollgate:secret@postgres:5432/tollgate?sslmode=disable"
	env := map[string]string{"TOLLGATE_POSTGRES_URL": pgURL, "OPENAI_API_KEY": "sk-test", config.AdminKeyEnv: "an-admin-key-of-enough-length"}
	cfg, err := config.Load(configPath, func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("deploy/compose/tollgate.yaml: %v", err)
	}
	if cfg.Store.Driver != "postgres" || cfg.Store.PostgresURL != pgURL || cfg.Cache.Semantic.Index != "qdrant" || !strings.HasPrefix(cfg.Cache.Semantic.Qdrant.URL, "http://qdrant:") {
		t.Fatalf("store %s, semantic index %s at %s: want postgres from TOLLGATE_POSTGRES_URL and qdrant", cfg.Store, cfg.Cache.Semantic.Index, cfg.Cache.Semantic.Qdrant.URL)
	}
}
