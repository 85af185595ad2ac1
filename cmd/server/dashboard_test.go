package main

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// browserDir holds the Node driver and its pinned playwright-core.
const browserDir = "testdata/browser"

// browserTools finds what TestDashboardInChromium needs: Debian's chromium
// (or $CHROMIUM), node, and playwright-core in browserDir/node_modules,
// which it installs itself with `npm ci` when npm is there, so that the
// README's test command covers a fresh machine. Without them the test
// skips, saying what is missing; with TOLLGATE_TEST_BROWSER=1 (set by
// .ci/run once it installed them) that is a failure instead.
func browserTools(t *testing.T) (node, chromium string) {
	t.Helper()
	required := os.Getenv("TOLLGATE_TEST_BROWSER") == "1"
	missing := func(what string) {
		t.Helper()
		if required {
			t.Fatalf("TOLLGATE_TEST_BROWSER=1 but %s", what)
		}
		t.Skipf("skipping the browser test: %s (.ci/run installs it: apt-get install -y chromium; npm ci in cmd/server/%s)", what, browserDir)
	}
	chromium = os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		missing("no chromium at " + chromium + " (set CHROMIUM to another path)")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("no node on PATH")
	}
	if _, err := os.Stat(filepath.Join(browserDir, "node_modules", "playwright-core", "package.json")); err != nil {
		npm, lerr := exec.LookPath("npm")
		if lerr != nil {
			missing("no playwright-core in " + browserDir + "/node_modules and no npm to install it")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund")
		cmd.Dir = browserDir
		if out, err := cmd.CombinedOutput(); err != nil {
			missing("npm ci in " + browserDir + " failed: " + err.Error() + "\n" + string(out))
		}
	}
	return node, chromium
}

// driverResult is what driver.mjs read off the page.
type driverResult struct {
	Status          int      `json:"status"`
	CSP             string   `json:"csp"`
	ConsoleErrors   []string `json:"consoleErrors"`
	PageErrors      []string `json:"pageErrors"`
	FailedRequests  []string `json:"failedRequests"`
	BadResponses    []string `json:"badResponses"`
	CSPViolations   []string `json:"cspViolations"`
	From            string   `json:"from"`
	Totals          money    `json:"totals"`
	ByKey           groups   `json:"byKey"`
	ByModel         groups   `json:"byModel"`
	KeyNames        []string `json:"keyNames"`
	Audit           []auditSeen
	Budgets         []struct{ Key, Period, Spent, Projection string }
	Breakers        []string `json:"breakers"`
	Guards          []guardSeen
	Charts          int    `json:"charts"`
	Refusals        string `json:"refusals"`
	InjectedElement int    `json:"injectedElements"`
	XSS             int    `json:"xss"`
	Screenshot      string `json:"screenshot"`
}

type money struct{ Spend, Saved string }
type groups map[string]money
type auditSeen struct{ Action, Target string }

// guardSeen is a guard's row: its name and hits as the page shows them.
type guardSeen struct{ Name, Request, Answer, Blocked string }

// TestDashboardInChromium: the real server, seeded with traffic of several
// keys and models (an exact cache hit, a budget downgrade, a 402) and
// admin actions, shown by the dashboard in headless Chromium. The page
// loads without an error of any kind, its figures equal GET
// /admin/reports/cost for the same days, per key and per model, it lists
// the audit log, renders hostile names as text, and leaves a screenshot.
func TestDashboardInChromium(t *testing.T) {
	node, chromium := browserTools(t)
	const admin = "an-admin-key-for-the-dashboard-test"
	// A file with guards only: the built-in providers and routes stay.
	cfg := filepath.Join(t.TempDir(), "tollgate.yaml")
	if err := os.WriteFile(cfg, []byte("guardrails:\n  default: [pii, secrets]\n  guards:\n"+
		"    - {name: pii, detectors: [email, phone], action: mask}\n"+
		"    - {name: secrets, detectors: [secret], action: block, directions: [request]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := start(t, map[string]string{"TOLLGATE_ADMIN_KEY": admin}, "-config", cfg, "-data", t.TempDir())
	do := func(method, path, bearer, body string, header ...string) []byte {
		t.Helper()
		req, _ := http.NewRequest(method, r.url+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+bearer)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 300 && resp.StatusCode != http.StatusPaymentRequired && !strings.Contains(string(b), "content_blocked") {
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
		}
		return b
	}
	// Markup in names and audit fields must reach the page as text: had it
	// been parsed, the image's handler (or the script) would set __xss.
	const hostile = `search <img src=x onerror="window.__xss=1"><script>window.__xss=2</script>`
	newKey := func(body string) (id, secret string) {
		t.Helper()
		var k struct{ ID, Key string }
		if err := json.Unmarshal(do("POST", "/admin/keys", admin, body, "x-tollgate-actor", "alice <b>ops</b>"), &k); err != nil {
			t.Fatal(err)
		}
		return k.ID, k.Key
	}
	name, _ := json.Marshal(hostile)
	searchID, search := newKey(`{"name":` + string(name) + `,"on_exhausted":"downgrade","budgets":[{"period":"daily","limit_usd":0.01}]}`)
	batchID, batch := newKey(`{"name":"batch-jobs","budgets":[{"period":"monthly","limit_usd":50}]}`)
	goneID, gone := newKey(`{"name":"intern-laptop"}`)
	chat := func(key, model, prompt string) {
		t.Helper()
		b, _ := json.Marshal(map[string]any{"model": model, "messages": []map[string]string{{"role": "user", "content": prompt}}})
		do("POST", "/v1/chat/completions", key, string(b))
	}
	chat(search, "sim-small", "Summarise the incident report for the platform team")
	chat(search, "sim-small", "Summarise the incident report for the platform team") // an exact hit
	chat(search, "sim-large", "Draft the quarterly roadmap")                         // downgraded: the budget cannot hold sim-large
	chat(search, "sim-small", "How do I reverse a list in Python?")
	chat(search, "sim-small", "How can I reverse a list in Python?") // a semantic hit
	chat(search, "sim-small", "Is it safe to delete the cache directory?")
	chat(search, "sim-small", "Is it not safe to delete the cache directory?") // refused by the guard's negation rule
	chat(batch, "sim-large", "Classify ticket 1 by severity")
	chat(batch, "sim-large", "Classify ticket 2 by severity")
	chat(batch, "auto", "Translate the release notes to German")
	chat(gone, "sim-small", "hello")
	chat(batch, "sim-small", "Send the summary to ops@example.com and oncall@example.com")       // two masked
	chat(batch, "sim-small", "Is sk-proj-Abcdefghijklmnopqrstuvwxyz0123456789ABCD still valid?") // blocked
	do("DELETE", "/admin/keys/"+goneID, admin, "")
	do("PUT", "/admin/keys/"+batchID+"/budget", admin, `{"budgets":[{"period":"monthly","limit_usd":80}]}`)
	do("DELETE", "/admin/cache?model="+url.QueryEscape(`<img src=x onerror="window.__xss=3">`), admin, "", "x-tollgate-actor", `<script>window.__xss=4</script>`)

	outDir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "driver.mjs", r.url, admin, outDir)
	cmd.Dir = browserDir
	cmd.Env = append(os.Environ(), "CHROMIUM="+chromium)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("driver.mjs: %v\n%s", err, stderr.String())
	}
	var got driverResult
	if err := json.Unmarshal(stdout, &got); err != nil {
		t.Fatalf("driver.mjs printed %q: %v", stdout, err)
	}
	t.Logf("dashboard screenshot: %s", got.Screenshot)

	if got.Status != http.StatusOK || !strings.Contains(got.CSP, "script-src 'self'") || strings.Contains(got.CSP, "unsafe") {
		t.Errorf("GET /ui: %d, Content-Security-Policy %q", got.Status, got.CSP)
	}
	for what, list := range map[string][]string{"console errors": got.ConsoleErrors, "page errors": got.PageErrors,
		"failed requests": got.FailedRequests, "error responses": got.BadResponses, "CSP violations": got.CSPViolations} {
		if len(list) > 0 {
			t.Errorf("%s: %q", what, list)
		}
	}
	if got.XSS != 0 || got.InjectedElement != 0 || !slices.Contains(got.KeyNames, hostile) {
		t.Errorf("markup in user input was parsed: __xss=%d, %d injected elements; key names shown %q", got.XSS, got.InjectedElement, got.KeyNames)
	}

	// The page's figures for its range are the cost report's for the same days.
	if got.From == "" {
		t.Fatal("the page shows no range start")
	}
	report := func(groupBy string) (money, groups) {
		var rep struct {
			Rows   []map[string]json.RawMessage
			Totals map[string]json.RawMessage
		}
		if err := json.Unmarshal(do("GET", "/admin/reports/cost?from="+got.From+"&group_by="+groupBy, admin, ""), &rep); err != nil {
			t.Fatal(err)
		}
		str := func(m map[string]json.RawMessage, f string) string {
			var s string
			if json.Unmarshal(m[f], &s) == nil {
				return s
			}
			return string(m[f]) // amounts are JSON numbers with six decimals
		}
		g := groups{}
		for _, row := range rep.Rows {
			g[str(row, groupBy)] = money{str(row, "cost_usd"), str(row, "saved_usd")}
		}
		return money{str(rep.Totals, "cost_usd"), str(rep.Totals, "saved_usd")}, g
	}
	totals, byKey := report("key")
	_, byModel := report("model")
	if got.Totals != totals {
		t.Errorf("the page's totals %+v, the cost report's %+v", got.Totals, totals)
	}
	if !maps.Equal(got.ByKey, byKey) {
		t.Errorf("per key: the page shows %+v, the cost report %+v", got.ByKey, byKey)
	}
	if !maps.Equal(got.ByModel, byModel) {
		t.Errorf("per model: the page shows %+v, the cost report %+v", got.ByModel, byModel)
	}
	if totals.Spend == "0.000000" || totals.Saved == "0.000000" || len(byKey) < 3 || len(byModel) < 2 {
		t.Errorf("the seeded traffic is not in the report: totals %+v, %d keys, %d models", totals, len(byKey), len(byModel))
	}

	// Every audit entry, hostile actor and model included, is listed.
	var audit struct{ Data []auditSeen }
	if err := json.Unmarshal(do("GET", "/admin/audit", admin, ""), &audit); err != nil {
		t.Fatal(err)
	}
	if len(audit.Data) != 6 || !slices.Equal(got.Audit, audit.Data) {
		t.Errorf("audit: the page lists %+v, GET /admin/audit %+v (want the 6 seeded actions)", got.Audit, audit.Data)
	}
	budgets := map[string]bool{}
	for _, b := range got.Budgets {
		budgets[b.Key+"/"+b.Period] = b.Projection != ""
	}
	if !maps.Equal(budgets, map[string]bool{searchID + "/daily": true, batchID + "/monthly": true}) {
		t.Errorf("budgets shown %+v, want the daily one of %s and the monthly one of %s, each with a projection", got.Budgets, searchID, batchID)
	}
	if !strings.Contains(got.Refusals, "negation") {
		t.Errorf("semantic refusals shown: %q, want the negation rule", got.Refusals)
	}
	// The guards panel shows each guard's hits as GET /admin/guards has them.
	var guards struct {
		Guards []struct {
			Name string
			Hits struct{ Request, Answer, Blocked int }
		}
	}
	if err := json.Unmarshal(do("GET", "/admin/guards", admin, ""), &guards); err != nil {
		t.Fatal(err)
	}
	var listed []guardSeen
	for _, g := range guards.Guards {
		listed = append(listed, guardSeen{g.Name, strconv.Itoa(g.Hits.Request), strconv.Itoa(g.Hits.Answer), strconv.Itoa(g.Hits.Blocked)})
	}
	if want := []guardSeen{{"pii", "2", "0", "0"}, {"secrets", "1", "0", "1"}}; !slices.Equal(listed, want) || !slices.Equal(got.Guards, listed) {
		t.Errorf("guards: the page shows %+v, GET /admin/guards %+v, want %+v", got.Guards, listed, want)
	}
	if len(got.Breakers) == 0 || got.Charts == 0 {
		t.Errorf("%d breakers and %d chart shapes drawn", len(got.Breakers), got.Charts)
	}
	checkScreenshot(t, got.Screenshot, outDir)
	// TOLLGATE_TEST_ARTIFACTS keeps a copy past the test (CI uploads it).
	if dir := os.Getenv("TOLLGATE_TEST_ARTIFACTS"); dir != "" {
		b, err := os.ReadFile(got.Screenshot)
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, "dashboard.png"), b, 0o644)
		}
		if err != nil {
			t.Errorf("copying the screenshot to TOLLGATE_TEST_ARTIFACTS: %v", err)
		}
	}
}

// checkScreenshot: a PNG in dir, as large as the page, with more on it than
// a blank or one-colour image.
func checkScreenshot(t *testing.T, path, dir string) {
	t.Helper()
	if filepath.Dir(path) != dir {
		t.Fatalf("screenshot %s is not in the test's directory %s", path, dir)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	b := img.Bounds()
	colours := map[[4]uint32]bool{}
	for y := b.Min.Y; y < b.Max.Y; y += 3 {
		for x := b.Min.X; x < b.Max.X; x += 3 {
			r, g, bl, a := img.At(x, y).RGBA()
			colours[[4]uint32{r, g, bl, a}] = true
		}
	}
	if b.Dx() < 1200 || b.Dy() < 900 || len(colours) < 64 {
		t.Errorf("screenshot %s: %dx%d with %d colours: not the dashboard", path, b.Dx(), b.Dy(), len(colours))
	}
}
