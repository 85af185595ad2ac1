package main

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/tollgate/tollgate/pkg/audit"
	"github.com/tollgate/tollgate/pkg/budget"
	"github.com/tollgate/tollgate/pkg/config"
	"github.com/tollgate/tollgate/pkg/gateway"
	"github.com/tollgate/tollgate/pkg/metrics"
	"github.com/tollgate/tollgate/pkg/providers"
	"github.com/tollgate/tollgate/pkg/semcache"
	"github.com/tollgate/tollgate/pkg/tokens"
)

// This file is SIGHUP: the configuration file is loaded and validated
// again and, when it is good, what can change while serving is applied
// (providers, models and prices, routes, the request timeout, the cache's
// policy and tenants, budget defaults, guards and prompt enrichment)
// without touching a request in flight: the gateway swaps its routing
// table (gateway.Reconfigure), and each request keeps the table it began
// with. Settings that need a restart (restartOnly) keep their running
// value and are reported. A bad file changes nothing. Every reload,
// applied or refused, is logged, audited and counted.

// overrides are the flags and variables that take precedence over the
// file: applied to every configuration loaded, at start and at reload.
type overrides struct {
	listen, dataDir, modelDir string
}

func (o overrides) apply(cfg *config.Config) {
	if o.listen != "" {
		cfg.Listen = o.listen
	}
	if o.dataDir != "" {
		cfg.DataDir = o.dataDir
	}
	if o.modelDir != "" {
		cfg.Cache.Semantic.ModelDir = o.modelDir
	}
}

// reloader holds what a reload replaces and what it is applied to. Only
// its loop touches it, so reloads are serialised.
type reloader struct {
	path    string // "" : the built-in defaults
	getenv  func(string) string
	flags   overrides
	log     *slog.Logger
	counter *tokens.Counter
	// upstream is the HTTP client new providers' clients use (it carries
	// the trace context).
	upstream *http.Client
	gw       *gateway.Gateway
	ledger   *budget.Ledger
	cache    *cacheParts
	audit    *audit.Store
	mx       *metrics.Metrics
	reloads  *metrics.Reloads
	now      func() time.Time

	started *config.Config // what the gateway opened with (its cache)
	cfg     *config.Config // running
	table   gateway.Table  // running
	clients map[string][]providers.Provider
}

// loop reloads on each request until ctx ends.
func (r *reloader) loop(ctx context.Context, hup <-chan struct{}) {
	for {
		select {
		case <-hup:
			r.reload(ctx)
		case <-ctx.Done():
			return
		}
	}
}

func (r *reloader) target() string {
	if r.path == "" {
		return "(built-in defaults)"
	}
	return r.path
}

// reload loads the file and applies it, or refuses it whole.
func (r *reloader) reload(ctx context.Context) {
	next, err := config.Load(r.path, r.getenv)
	if err != nil {
		r.refuse(ctx, err)
		return
	}
	r.flags.apply(next)
	restart := pinRestartOnly(r.started, r.cfg, next)
	clients, err := reuseProviders(r.cfg, next, r.clients, r.counter, r.upstream)
	if err != nil {
		r.refuse(ctx, err)
		return
	}
	defaults, err := policyOf(next.Budget.Defaults)
	if err == nil {
		err = defaults.Validate()
	}
	if err != nil {
		r.refuse(ctx, errors.New("budget.defaults: "+err.Error()))
		return
	}
	tb, err := buildTable(next, clients, r.cache, r.log, r.mx)
	if err == nil {
		err = judgeErr(r.gw.Reconfigure(tb), tb.Judge)
	}
	if err != nil {
		r.refuse(ctx, err)
		return
	}
	// The table is swapped: from here on nothing can fail but the
	// budget defaults, validated above.
	if !reflect.DeepEqual(r.cfg.Budget.Defaults, next.Budget.Defaults) {
		if err := r.ledger.Accounts.SetDefaults(defaults); err != nil {
			r.log.Error("config reload: budget defaults not applied", "err", err)
		}
	}
	if r.cache.cache != nil {
		if err := r.cache.cache.SetPolicy(cachePolicy(next.Cache)); errors.Is(err, semcache.ErrGated) {
			restart = append(restart, "cache.semantic.verify or unaligned_threshold (the cache opened aligned-only)")
		}
	}
	before, after := changes(summarize(r.cfg, r.table), summarize(next, tb))
	r.cfg, r.table, r.clients = next, tb, clients
	now := r.now()
	r.reloads.Applied(now)
	after["result"] = "applied"
	if len(restart) > 0 {
		after["needs_restart"] = restart
		r.log.Warn("config reload: these settings changed in the file but need a restart; their running values are kept",
			"file", r.target(), "needs_restart", strings.Join(restart, ","))
	}
	changed := make([]string, 0, len(before))
	for k := range before {
		changed = append(changed, k)
	}
	for k := range after {
		if _, ok := before[k]; !ok && k != "result" && k != "needs_restart" {
			changed = append(changed, k)
		}
	}
	sort.Strings(changed)
	r.log.Info("config reload applied", "file", r.target(), "changed", strings.Join(changed, ","))
	r.record(ctx, now, before, after)
}

// refuse keeps the running configuration and says why, every problem on
// its own line with its path.
func (r *reloader) refuse(ctx context.Context, err error) {
	problems := problemsOf(err, r.path)
	for _, p := range problems {
		r.log.Error("config reload refused: "+p, "file", r.target())
	}
	r.log.Error("config reload refused: the running configuration is kept", "file", r.target(), "problems", len(problems))
	r.reloads.Refused()
	r.record(ctx, r.now(), nil, map[string]any{"result": "refused", "problems": problems})
}

// problemsOf splits a configuration error into its problems, one a line,
// without the "config <file>: " prefix Load puts on the first.
func problemsOf(err error, path string) []string {
	msg := strings.TrimPrefix(err.Error(), "config "+path+": ")
	var out []string
	for _, line := range strings.Split(msg, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			out = append(out, line)
		}
	}
	return out
}

// record writes the reload's audit row; a failure is logged (the reload
// itself stands).
func (r *reloader) record(ctx context.Context, now time.Time, before, after map[string]any) {
	if r.audit == nil {
		return
	}
	e := audit.Entry{Time: now, Actor: audit.Actor{Kind: "system", Name: "SIGHUP"}, Action: audit.ActionConfigReload, Target: r.target()}
	var err error
	if before != nil {
		if e.Before, err = json.Marshal(before); err != nil {
			r.log.Error("config reload: audit", "err", err)
			return
		}
	}
	if e.After, err = json.Marshal(after); err != nil {
		r.log.Error("config reload: audit", "err", err)
		return
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := r.audit.Record(actx, e); err != nil {
		r.log.Error("config reload: the audit row could not be written", "err", err)
	}
}

// restartOnly are the settings a running gateway cannot change: its
// listener, its store and data directory, what its HTTP layer and log were
// built with, the alert delivery, and what the cache opened at start (its
// memory bound, sweeper, embedder and index). A reload keeps their running
// values and reports the ones the file changed.
var restartOnly = []struct {
	path  string
	field func(*config.Config) any // a pointer to the setting
}{
	{"listen", func(c *config.Config) any { return &c.Listen }},
	{"data_dir", func(c *config.Config) any { return &c.DataDir }},
	{"store", func(c *config.Config) any { return &c.Store }},
	{"admin_key", func(c *config.Config) any { return &c.AdminKey }},
	{"max_body_bytes", func(c *config.Config) any { return &c.MaxBodyBytes }},
	{"drain_timeout", func(c *config.Config) any { return &c.DrainTimeout }},
	{"body_read_timeout", func(c *config.Config) any { return &c.BodyReadTimeout }},
	{"write_timeout", func(c *config.Config) any { return &c.WriteTimeout }},
	{"dev_key", func(c *config.Config) any { return &c.DevKey }},
	{"log", func(c *config.Config) any { return &c.Log }},
	{"budget.timezone", func(c *config.Config) any { return &c.Budget.Timezone }},
	{"budget.webhooks", func(c *config.Config) any { return &c.Budget.Webhooks }},
	{"budget.webhook_secret", func(c *config.Config) any { return &c.Budget.WebhookSecret }},
	{"cache.max_bytes", func(c *config.Config) any { return &c.Cache.MaxBytes }},
	{"cache.sweep_interval", func(c *config.Config) any { return &c.Cache.SweepInterval }},
	{"cache.semantic.turns", func(c *config.Config) any { return &c.Cache.Semantic.Turns }},
	{"cache.semantic.embedder", func(c *config.Config) any { return &c.Cache.Semantic.Embedder }},
	{"cache.semantic.embedding_model", func(c *config.Config) any { return &c.Cache.Semantic.EmbeddingModel }},
	{"cache.semantic.dimensions", func(c *config.Config) any { return &c.Cache.Semantic.Dimensions }},
	{"cache.semantic.model_dir", func(c *config.Config) any { return &c.Cache.Semantic.ModelDir }},
	{"cache.semantic.index", func(c *config.Config) any { return &c.Cache.Semantic.Index }},
	{"cache.semantic.qdrant", func(c *config.Config) any { return &c.Cache.Semantic.Qdrant }},
	{"otel", func(c *config.Config) any { return &c.Otel }},
}

// pinRestartOnly gives next the running values of the settings that need
// a restart, and returns the paths of those the file changed. A cache (or
// semantic cache) the gateway started without cannot be turned on; one it
// started with can be turned off, and on again.
func pinRestartOnly(started, cur, next *config.Config) []string {
	var changed []string
	for _, s := range restartOnly {
		a, b := reflect.ValueOf(s.field(cur)).Elem(), reflect.ValueOf(s.field(next)).Elem()
		if !reflect.DeepEqual(a.Interface(), b.Interface()) {
			changed = append(changed, s.path)
			b.Set(a)
		}
	}
	if !started.Cache.Enabled && next.Cache.Enabled {
		changed = append(changed, "cache.enabled")
		next.Cache = cur.Cache
	}
	if !started.Cache.Semantic.Enabled && next.Cache.Semantic.Enabled {
		changed = append(changed, "cache.semantic.enabled")
		next.Cache.Semantic = cur.Cache.Semantic
	}
	return changed
}

// reuseProviders makes the clients of next's providers, keeping the
// running clients of every provider whose settings did not change: their
// deployments are unchanged (their breakers and cooldowns carry over) and
// keep their connections.
func reuseProviders(cur, next *config.Config, running map[string][]providers.Provider, counter *tokens.Counter, client *http.Client) (map[string][]providers.Provider, error) {
	old := make(map[string]config.Provider, len(cur.Providers))
	for _, p := range cur.Providers {
		old[p.Name] = p
	}
	out := make(map[string][]providers.Provider, len(next.Providers))
	var errs []error
	for i, p := range next.Providers {
		if o, ok := old[p.Name]; ok && reflect.DeepEqual(o, p) && running[p.Name] != nil {
			out[p.Name] = running[p.Name]
			continue
		}
		list, err := providerClients(p, counter, client)
		if err != nil {
			errs = append(errs, providerErr(i, p.Name, err))
			continue
		}
		out[p.Name] = list
	}
	return out, errors.Join(errs...)
}

// summary is what the audit log keeps of a configuration: what a reload
// can change, without a secret (no API key, no header value, no password
// in a URL).
type summary struct {
	Providers      map[string]providerSummary `json:"providers"`
	Models         map[string]modelSummary    `json:"models"`
	Routes         map[string]routeSummary    `json:"routes"`
	RequestTimeout string                     `json:"request_timeout"`
	Cache          cacheSummary               `json:"cache"`
	BudgetDefaults config.KeyPolicy           `json:"budget_defaults"`
	Guardrails     guardrailsSummary          `json:"guardrails"`
}

// guardrailsSummary names the guards with their actions; what they look
// for is fingerprinted (a word list may itself be confidential).
type guardrailsSummary struct {
	ScanLimit int                     `json:"scan_limit_bytes"`
	Default   []string                `json:"default,omitempty"`
	Guards    map[string]guardSummary `json:"guards,omitempty"`
}

type guardSummary struct {
	Action     string   `json:"action"`
	Directions []string `json:"directions"`
	Settings   string   `json:"settings"`
}

type providerSummary struct {
	Type    string `json:"type"`
	BaseURL string `json:"base_url,omitempty"`
	Keys    int    `json:"api_keys"`
	// Settings fingerprints the rest (keys, headers, timeouts, ...) so
	// that a change of a secret shows as a change without its value.
	Settings string `json:"settings"`
}

type modelSummary struct {
	Deployments []string `json:"deployments"`
	Input       string   `json:"input_price"`
	Output      string   `json:"output_price"`
	CachedInput string   `json:"cached_input_price,omitempty"`
}

type routeSummary struct {
	Strategy   string   `json:"strategy"`
	Candidates []string `json:"candidates"`
	Weights    []int    `json:"weights,omitempty"`
	// Guards is the route's own list (absent: the default; []: none).
	Guards *[]string `json:"guards,omitempty"`
	// Enrich fingerprints the route's added messages.
	Enrich string `json:"enrich,omitempty"`
}

type cacheSummary struct {
	Enabled             bool                            `json:"enabled"`
	TTL                 string                          `json:"ttl"`
	MaxTemperature      float64                         `json:"max_temperature"`
	Semantic            bool                            `json:"semantic"`
	Threshold           float64                         `json:"threshold"`
	UnalignedThreshold  float64                         `json:"unaligned_threshold"`
	Routes              map[string]config.RouteSemantic `json:"routes,omitempty"`
	Judge               string                          `json:"judge,omitempty"`
	Tenants             int                             `json:"tenants"`
	SideEffectTools     []string                        `json:"side_effect_tools,omitempty"`
	RouteMaxTemperature map[string]float64              `json:"route_max_temperature,omitempty"`
}

func summarize(cfg *config.Config, tb gateway.Table) map[string]any {
	s := summary{Providers: map[string]providerSummary{}, Models: map[string]modelSummary{}, Routes: map[string]routeSummary{},
		RequestTimeout: cfg.RequestTimeout.String(), BudgetDefaults: cfg.Budget.Defaults}
	for _, p := range cfg.Providers {
		keys := len(p.APIKeys)
		if keys == 0 && p.APIKey != "" {
			keys = 1
		}
		s.Providers[p.Name] = providerSummary{Type: p.Type, BaseURL: redactBaseURL(p.BaseURL), Keys: keys, Settings: fingerprint(p)}
	}
	for _, m := range tb.Models {
		ms := modelSummary{Input: m.Spec.InputPrice.String(), Output: m.Spec.OutputPrice.String()}
		if m.Spec.CachedInputPrice.Known() {
			ms.CachedInput = m.Spec.CachedInputPrice.String()
		}
		for _, d := range m.Deployments {
			ms.Deployments = append(ms.Deployments, d.ID)
		}
		s.Models[m.Name] = ms
	}
	for name, rt := range cfg.Routes {
		rs := routeSummary{Strategy: rt.Strategy, Candidates: rt.Candidates, Weights: rt.Weights}
		if rt.Guards != nil {
			rs.Guards = &rt.Guards
		}
		if !rt.Enrich.Empty() {
			raw, _ := json.Marshal(rt.Enrich)
			rs.Enrich = shortHash(raw)
		}
		s.Routes[name] = rs
	}
	g := cfg.Guardrails
	s.Guardrails = guardrailsSummary{ScanLimit: g.ScanLimitBytes, Default: g.Default, Guards: map[string]guardSummary{}}
	for _, gd := range g.Guards {
		raw, _ := json.Marshal(gd)
		s.Guardrails.Guards[gd.Name] = guardSummary{Action: gd.Action, Directions: gd.Directions, Settings: shortHash(raw)}
	}
	c := cfg.Cache
	s.Cache = cacheSummary{Enabled: c.Enabled, TTL: c.TTL.String(), MaxTemperature: c.MaxTemperature, Semantic: c.Semantic.Enabled,
		Threshold: c.Semantic.Threshold, UnalignedThreshold: c.Semantic.UnalignedThreshold, Routes: c.Semantic.Routes,
		Judge: c.Semantic.Verify.Model, Tenants: len(c.Tenants), SideEffectTools: c.SideEffectTools, RouteMaxTemperature: c.RouteMaxTemperature}
	// Through JSON, so that changes compares what the audit row shows.
	raw, _ := json.Marshal(s)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return out
}

// changes keeps of two summaries what differs: the sections that changed
// and, in providers, models and routes, only the entries that did (an
// entry on one side only was added or removed).
func changes(before, after map[string]any) (map[string]any, map[string]any) {
	b, a := map[string]any{}, map[string]any{}
	for k, bv := range before {
		av := after[k]
		if reflect.DeepEqual(bv, av) {
			continue
		}
		bm, bok := bv.(map[string]any)
		am, aok := av.(map[string]any)
		if k == "providers" || k == "models" || k == "routes" {
			if !bok {
				bm = map[string]any{}
			}
			if !aok {
				am = map[string]any{}
			}
			bd, ad := map[string]any{}, map[string]any{}
			for name, v := range bm {
				if !reflect.DeepEqual(v, am[name]) {
					bd[name] = v
				}
			}
			for name, v := range am {
				if !reflect.DeepEqual(v, bm[name]) {
					ad[name] = v
				}
			}
			b[k], a[k] = bd, ad
			continue
		}
		b[k], a[k] = bv, av
	}
	return b, a
}

// fingerprint is a short hash of a provider's settings, keys included:
// it changes when they do and says nothing of them.
func fingerprint(p config.Provider) string {
	raw, _ := json.Marshal(p)
	return shortHash(raw)
}

// redactBaseURL drops a URL's user information (a password) and query (a
// key some upstreams take there).
func redactBaseURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(not shown)"
	}
	u.User, u.RawQuery = nil, ""
	return u.String()
}

// cachePolicy is the part of the cache's settings a running cache takes.
func cachePolicy(cc config.Cache) semcache.Policy {
	s := cc.Semantic
	p := semcache.Policy{TTL: cc.TTL.Std(), MaxTemperature: &cc.MaxTemperature, RouteMaxTemperature: cc.RouteMaxTemperature,
		SideEffectTools: cc.SideEffectTools, NoSemantic: !s.Enabled,
		Threshold: float32(s.Threshold), UnalignedThreshold: float32(s.UnalignedThreshold), RouteThresholds: routeThresholds(s)}
	if s.Verify.Model != "" {
		p.Verify, p.VerifyThreshold = true, float32(s.Verify.MinSimilarity)
	}
	return p
}

// providerErr names the provider a client could not be made for.
func providerErr(i int, name string, err error) error {
	return fmt.Errorf("providers[%d] (%s): %w", i, name, err)
}

// fingerprintKey keys the settings fingerprints: drawn at start, so a
// fingerprint tells a change within this process and nothing to anyone
// guessing a key offline.
var fingerprintKey = func() []byte {
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	return k
}()

func shortHash(b []byte) string {
	h := hmac.New(sha256.New, fingerprintKey)
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil)[:6])
}
