package httpapi_test

import (
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/pkg/metrics"
)

// TestDashboardShell: /ui serves the embedded page and its files without
// authentication (they hold no data), under a strict Content-Security-
// Policy, with the page revalidated on every load and its versioned files
// cached for good.
func TestDashboardShell(t *testing.T) {
	s := newStack(t, stackOptions{})
	get := func(path, etag string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", s.srv.URL+path, nil)
		if etag != "" {
			req.Header.Set("If-None-Match", etag)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	_, page := get("/ui", "")
	versioned := regexp.MustCompile(`"/ui/app\.js\?v=[0-9a-f]{12}"`).FindString(page)
	if versioned == "" {
		t.Fatalf("the page does not load a versioned app.js:\n%s", page)
	}
	versioned = strings.Trim(versioned, `"`)
	tests := []struct {
		name, path, etag  string
		status            int
		ctype, cache, has string
	}{
		{"the page", "/ui", "", 200, "text/html; charset=utf-8", "no-cache", `<script src="/ui/app.js?v=`},
		{"the page with a slash", "/ui/", "", 200, "text/html; charset=utf-8", "no-cache", `id="login-form"`},
		{"the versioned script, cached for good", versioned, "", 200, "text/javascript; charset=utf-8", "public, max-age=31536000, immutable", "textContent"},
		{"the script unversioned, revalidated", "/ui/app.js", "", 200, "text/javascript; charset=utf-8", "no-cache", "sessionStorage"},
		{"the style sheet", "/ui/style.css", "", 200, "text/css; charset=utf-8", "no-cache", ":root"},
		{"the page has the guards panel", "/ui", "", 200, "text/html; charset=utf-8", "no-cache", `id="guards" data-testid="guards"`},
		{"the script lists the guards with their hits", "/ui/app.js", "", 200, "text/javascript; charset=utf-8", "no-cache", "api('/admin/guards')"},
		{"an unknown file is a 404, not the page", "/ui/nope.js", "", 404, "text/plain; charset=utf-8", "no-store", "no such dashboard file"},
		{"a path out of the directory is a 404", "/ui/../server.go", "", 404, "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := get(tt.path, tt.etag)
			if resp.StatusCode != tt.status {
				t.Fatalf("%d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			if tt.ctype == "" {
				return
			}
			h := resp.Header
			if h.Get("Content-Type") != tt.ctype || h.Get("Cache-Control") != tt.cache || !strings.Contains(body, tt.has) {
				t.Fatalf("Content-Type %q, Cache-Control %q, body has %q: %v", h.Get("Content-Type"), h.Get("Cache-Control"), tt.has, strings.Contains(body, tt.has))
			}
			csp := h.Get("Content-Security-Policy")
			if !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "unsafe") ||
				h.Get("X-Content-Type-Options") != "nosniff" || h.Get("X-Frame-Options") != "DENY" {
				t.Fatalf("security headers: %v", h)
			}
			if tt.status == 200 {
				again, _ := get(tt.path, h.Get("ETag"))
				if again.StatusCode != http.StatusNotModified {
					t.Fatalf("revalidation with its ETag: %d, want 304", again.StatusCode)
				}
			}
		})
	}
	// No inline script anywhere in the page: the CSP would block it.
	if regexp.MustCompile(`<script[^>]*>[^<]|\son[a-z]+=`).MatchString(page) {
		t.Fatal("the page has inline script or an inline event handler")
	}
}

type overviewBudget struct {
	Period      string      `json:"period"`
	Spent       json.Number `json:"spent_usd"`
	Remaining   json.Number `json:"remaining_usd"`
	Rate        json.Number `json:"rate_usd_per_hour"`
	Exhausted   bool        `json:"exhausted"`
	ExhaustsAt  *string     `json:"exhausts_at"`
	BeforeReset bool        `json:"exhausts_before_reset"`
	ResetsAt    *string     `json:"resets_at"`
}

type overview struct {
	Object   string           `json:"object"`
	Today    string           `json:"today"`
	TimeZone string           `json:"time_zone"`
	Refusals map[string]int64 `json:"semantic_refusals"`
	Keys     []struct {
		ID         string           `json:"id"`
		Name       string           `json:"name"`
		SpentToday json.Number      `json:"spent_today_usd"`
		Budgets    []overviewBudget `json:"budgets"`
	} `json:"keys"`
}

// TestOverview: GET /admin/overview needs the admin key, lists every key
// with its spend today and each limited budget with its projection, and
// the semantic refusals by rule when metrics count them.
func TestOverview(t *testing.T) {
	tests := []struct {
		name     string
		observer bool
	}{
		{"with metrics: refusals by rule", true},
		{"without metrics: refusals null", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := stackOptions{budgets: true}
			if tt.observer {
				o.observer = metrics.New()
			}
			s := newStack(t, o)
			gatewayKeyRefused(t, s, "/admin/overview")

			_, spender, raw := adminDo(t, s, "POST", "/admin/keys", `{"name":"spender","budgets":[{"period":"daily","limit_usd":1}]}`)
			_, idle, _ := adminDo(t, s, "POST", "/admin/keys", `{"name":"idle","budgets":[{"period":"monthly","limit_usd":5}]}`)
			secret, _ := spender["key"].(string)
			if secret == "" {
				t.Fatal(raw)
			}
			chat(t, s, secret, ask("sim-small", "hello"))
			// A limit lowered below what was spent: exhausted now.
			if st, _, raw := adminDo(t, s, "PUT", "/admin/keys/"+spender["id"].(string)+"/budget", `{"budgets":[{"period":"daily","limit_usd":0.000001}]}`); st != 200 {
				t.Fatalf("%d %s", st, raw)
			}
			st, _, raw := adminDo(t, s, "GET", "/admin/overview", "")
			var ov overview
			if st != 200 || json.Unmarshal([]byte(raw), &ov) != nil {
				t.Fatalf("%d %s", st, raw)
			}
			if ov.Object != "overview" || ov.TimeZone == "" || len(ov.Today) != len("2026-12-07") {
				t.Fatalf("header fields: %s", raw)
			}
			if (ov.Refusals != nil) != tt.observer {
				t.Fatalf("semantic_refusals %v with metrics %v: %s", ov.Refusals, tt.observer, raw)
			}
			byID := map[string]overviewBudget{}
			for _, k := range ov.Keys {
				for _, b := range k.Budgets {
					byID[k.ID] = b
				}
				if k.ID == spender["id"] && k.SpentToday == "0.000000" {
					t.Fatalf("the spender spent nothing today: %s", raw)
				}
			}
			sb, ib := byID[spender["id"].(string)], byID[idle["id"].(string)]
			if !sb.Exhausted || sb.ExhaustsAt == nil || !sb.BeforeReset || sb.Remaining != "0.000000" || sb.Period != "daily" {
				t.Fatalf("the exhausted budget: %+v", sb)
			}
			if ib.Exhausted || ib.ExhaustsAt != nil || ib.Rate != "0.000000" || ib.Spent != "0.000000" || ib.ResetsAt == nil || ib.Period != "monthly" {
				t.Fatalf("the idle budget: %+v", ib)
			}
			if len(ov.Keys) != 3 {
				t.Fatalf("%d keys, want 3 (the stack's own, spender, idle)", len(ov.Keys))
			}
		})
	}
}
