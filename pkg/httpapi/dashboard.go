package httpapi

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"net/http"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/tollgate/tollgate/pkg/budget"
	"github.com/tollgate/tollgate/pkg/llm"
)

// The dashboard (GET /ui) is a static page: HTML, CSS and JavaScript
// embedded in the binary, written by hand, with no data in them. The page
// asks for the admin key, keeps it in the tab's sessionStorage and sends
// it as a bearer token to the admin JSON API, which is where every figure
// comes from (GET /admin/reports/cost, /admin/keys, /admin/providers,
// /admin/cache, /admin/audit, /admin/guards and /admin/overview below). So the shell can
// be served without authentication and nothing in it needs protecting.

//go:embed ui
var uiFiles embed.FS

// uiCSP lets the page run its own script and style and talk to this
// origin only: no inline script, no eval, no third party, no framing.
const uiCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// uiAsset is one embedded file, ready to serve.
type uiAsset struct {
	body  []byte
	ctype string
	etag  string
}

// uiTypes are the dashboard files' content types, fixed here rather than
// read from the system's mime.types, which can name JavaScript otherwise.
var uiTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".svg":  "image/svg+xml",
}

// uiAssets are the dashboard's files by name. index.html refers to the
// others with ?v=<their hash>, so a browser may keep them for a year and
// still never runs a stale script after an upgrade; index.html itself is
// revalidated on every load (its ETag makes that a 304).
var uiAssets = loadUIAssets()

func loadUIAssets() map[string]uiAsset {
	out := map[string]uiAsset{}
	hashes := map[string]string{}
	err := fs.WalkDir(uiFiles, "ui", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := uiFiles.ReadFile(p)
		if err != nil {
			return err
		}
		name := strings.TrimPrefix(p, "ui/")
		sum := sha256.Sum256(b)
		hashes[name] = hex.EncodeToString(sum[:6])
		out[name] = uiAsset{body: b, ctype: uiTypes[path.Ext(name)]}
		return nil
	})
	if err != nil {
		panic("httpapi: the embedded dashboard cannot be read: " + err.Error())
	}
	idx := out["index.html"]
	for name, h := range hashes {
		idx.body = bytes.ReplaceAll(idx.body, []byte(`"/ui/`+name+`"`), []byte(`"/ui/`+name+`?v=`+h+`"`))
	}
	out["index.html"] = idx
	for name, a := range out {
		sum := sha256.Sum256(a.body)
		a.etag = `"` + hex.EncodeToString(sum[:8]) + `"`
		if a.ctype == "" {
			panic("httpapi: the dashboard file " + name + " has no content type in uiTypes")
		}
		out[name] = a
	}
	return out
}

// ui serves the dashboard's shell: /ui and /ui/ are the page, /ui/NAME its
// files. Unknown names are a 404 (in HTML's terms: the page is for
// browsers), never the page, so a typo does not look like a blank page.
func (s *server) ui(c *gin.Context) {
	name := strings.TrimPrefix(c.Param("file"), "/")
	if name == "" {
		name = "index.html"
	}
	h := c.Writer.Header()
	h.Set("Content-Security-Policy", uiCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	a, ok := uiAssets[name]
	if !ok {
		h.Set("Cache-Control", "no-store")
		c.Data(http.StatusNotFound, "text/plain; charset=utf-8", []byte("404: no such dashboard file\n"))
		return
	}
	switch {
	case name == "index.html":
		h.Set("Cache-Control", "no-cache")
	case c.Query("v") != "":
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	default:
		h.Set("Cache-Control", "no-cache")
	}
	h.Set("ETag", a.etag)
	if inm := c.GetHeader("If-None-Match"); inm != "" && slices.Contains(strings.Split(strings.ReplaceAll(inm, " ", ""), ","), a.etag) {
		c.Status(http.StatusNotModified)
		return
	}
	c.Data(http.StatusOK, a.ctype, a.body)
}

// overviewBudget is one limited period of a key with its projection.
type overviewBudget struct {
	Period      budget.Period `json:"period"`
	Limit       json.Number   `json:"limit_usd"`
	Spent       json.Number   `json:"spent_usd"`
	Reserved    json.Number   `json:"reserved_usd"`
	Remaining   json.Number   `json:"remaining_usd"`
	Start       *time.Time    `json:"period_start"` // null for total
	ResetsAt    *time.Time    `json:"resets_at"`    // null for total: it never resets
	Rate        json.Number   `json:"rate_usd_per_hour"`
	Exhausted   bool          `json:"exhausted"`
	ExhaustsAt  *time.Time    `json:"exhausts_at"` // null: not at the current rate
	BeforeReset bool          `json:"exhausts_before_reset"`
}

// overviewKey is a key with its money in the current periods.
type overviewKey struct {
	ID         string           `json:"id"`
	Name       string           `json:"name"`
	Hint       string           `json:"hint"`
	CreatedAt  time.Time        `json:"created_at"`
	Revoked    bool             `json:"revoked"`
	OwnPolicy  bool             `json:"own_policy"`
	SpentToday json.Number      `json:"spent_today_usd"`
	SpentMonth json.Number      `json:"spent_month_usd"`
	Budgets    []overviewBudget `json:"budgets"`
}

// refusalCounter is an Observer that counts semantic refusals by rule
// (metrics.Metrics).
type refusalCounter interface {
	SemanticRefusals() map[string]int64
}

// overview is GET /admin/overview: what the dashboard needs that no other
// endpoint gives. The clock and the ledger's time zone (so the page asks
// the cost report for the same days the server means); every key with its
// spend today and this month and each limited budget projected to its
// exhaustion at the current period's rate (budget.Project); the semantic
// cache's refusals by rule since the start (null without metrics).
func (s *server) overview(c *gin.Context) {
	now := s.Now()
	loc := time.UTC
	if s.Budget != nil {
		loc = s.Budget.Accounts.Location()
	}
	out := struct {
		Object   string           `json:"object"`
		Now      time.Time        `json:"now"`
		TimeZone string           `json:"time_zone"`
		Today    string           `json:"today"`
		Budgets  bool             `json:"budgets_enabled"`
		Keys     []overviewKey    `json:"keys"`
		Refusals map[string]int64 `json:"semantic_refusals"`
		CacheOn  bool             `json:"cache_enabled"`
		AuditOn  bool             `json:"audit_enabled"`
	}{Object: "overview", Now: now, TimeZone: loc.String(), Today: now.In(loc).Format(time.DateOnly), Budgets: s.Budget != nil,
		Keys: []overviewKey{}, CacheOn: s.Cache != nil, AuditOn: s.Audit != nil}
	if rc, ok := s.Observer.(refusalCounter); ok {
		out.Refusals = rc.SemanticRefusals()
	}
	for _, k := range s.Keys.List() {
		ok := overviewKey{ID: k.ID, Name: k.Name, Hint: k.Hint + "…", CreatedAt: k.CreatedAt, Revoked: k.RevokedAt != nil,
			SpentToday: "0.000000", SpentMonth: "0.000000", Budgets: []overviewBudget{}}
		if s.Budget != nil {
			st := s.Budget.Accounts.Status(k.ID)
			ok.OwnPolicy = st.OwnPolicy
			for _, p := range st.Periods {
				switch p.Period {
				case budget.Daily:
					ok.SpentToday = usdNumber(p.Spent)
				case budget.Monthly:
					ok.SpentMonth = usdNumber(p.Spent)
				}
			}
			for _, b := range st.Budgets {
				ok.Budgets = append(ok.Budgets, projected(b, k.CreatedAt, now))
			}
		}
		out.Keys = append(out.Keys, ok)
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, out)
}

// projected is b with its projection at now; since is the key's creation,
// the start of its total period.
func projected(b budget.PeriodStatus, since, now time.Time) overviewBudget {
	p := budget.Project(b, since, now)
	o := overviewBudget{Period: b.Period, Limit: usdNumber(b.Limit), Spent: usdNumber(b.Spent), Reserved: usdNumber(b.Reserved),
		Remaining: usdNumber(b.Remaining), Rate: usdNumber(p.Rate), Exhausted: p.Exhausted, BeforeReset: p.BeforeReset}
	if !b.Start.IsZero() {
		o.Start = &b.Start
	}
	if !b.ResetsAt.IsZero() {
		o.ResetsAt = &b.ResetsAt
	}
	if !p.At.IsZero() {
		o.ExhaustsAt = &p.At
	}
	return o
}

func usdNumber(m llm.Micros) json.Number { return json.Number(m.String()) }
