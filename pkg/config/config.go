// Package config owns tollgate's configuration: the YAML schema, strict
// decoding (unknown fields are errors), `env:NAME` references, the built-in
// defaults (all in Default) and Validate, which reports every problem with
// its path.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the whole configuration. tollgate.example.yaml documents every field.
type Config struct {
	Listen       string   `yaml:"listen"`
	DataDir      string   `yaml:"data_dir"`
	AdminKey     string   `yaml:"admin_key"`
	MaxBodyBytes int64    `yaml:"max_body_bytes"`
	DrainTimeout Duration `yaml:"drain_timeout"`
	// RequestTimeout bounds one client request end to end (all attempts).
	RequestTimeout Duration `yaml:"request_timeout"`
	// DevKey controls the development key created on the first start with an
	// empty database.
	DevKey    bool       `yaml:"dev_key"`
	Log       Log        `yaml:"log"`
	Catalog   Catalog    `yaml:"catalog"`
	Providers []Provider `yaml:"providers"`
	Models    []Model    `yaml:"models"`
	// Routes are aliases a client may send as its model, e.g. "auto".
	Routes map[string]Route `yaml:"routes"`
	Budget Budget           `yaml:"budget"`
	Cache  Cache            `yaml:"cache"`
}

// Budget configures budgets, rate limits and alerts.
type Budget struct {
	// Timezone aligns daily, weekly (Monday) and monthly periods, e.g.
	// "Europe/Paris" (default UTC).
	Timezone string `yaml:"timezone"`
	// Defaults apply to keys that have no policy of their own.
	Defaults KeyPolicy `yaml:"defaults"`
	// Webhooks receive every key's alerts.
	Webhooks []Webhook `yaml:"webhooks"`
	// WebhookSecret signs alerts (x-tollgate-signature: t=<unix>,v1=<hex>).
	WebhookSecret string `yaml:"webhook_secret"`
}

// KeyPolicy is a key's budget policy, as the admin API takes it.
type KeyPolicy struct {
	Budgets     []BudgetLimit `yaml:"budgets"`
	RPM         int           `yaml:"rpm"`
	TPM         int           `yaml:"tpm"`
	OnExhausted string        `yaml:"on_exhausted"` // reject (default) | downgrade
}

// BudgetLimit is one limit: at most LimitUSD per Period.
type BudgetLimit struct {
	Period          string    `yaml:"period"` // daily | weekly | monthly | total
	LimitUSD        string    `yaml:"limit_usd"`
	AlertThresholds []float64 `yaml:"alert_thresholds"`
}

// Webhook is an alert receiver.
type Webhook struct {
	URL   string `yaml:"url"`
	Slack bool   `yaml:"slack"` // Slack's incoming-webhook format
}

// Route is a route alias: candidates and how to choose among them.
type Route struct {
	Strategy   string   `yaml:"strategy"` // cheapest (default) | priority | weighted
	Candidates []string `yaml:"candidates"`
	Weights    []int    `yaml:"weights"` // weighted: one per candidate
	Sticky     bool     `yaml:"sticky"`  // weighted: the same key always gets the same candidate
	MinTier    int      `yaml:"min_tier"`
	// ExpectedOutputTokens estimates a completion's length for costing when
	// the client sets no max_tokens, and caps max_tokens in the estimate.
	ExpectedOutputTokens int      `yaml:"expected_output_tokens"`
	Timeout              Duration `yaml:"timeout"`      // whole request, all attempts
	TTFTTimeout          Duration `yaml:"ttft_timeout"` // streams: until the first chunk
	// OnExhausted: downgrade serves requests the key's budget cannot afford
	// with the cheapest capable model that fits, for every key on this route.
	OnExhausted string `yaml:"on_exhausted"` // reject (default) | downgrade
}

// Breaker configures the circuit breaker of each deployment of a provider.
type Breaker struct {
	ConsecutiveFailures uint32   `yaml:"consecutive_failures"`
	FailureRatio        float64  `yaml:"failure_ratio"`
	MinRequests         uint32   `yaml:"min_requests"`
	Window              Duration `yaml:"window"`
	Cooldown            Duration `yaml:"cooldown"`
	HalfOpenRequests    uint32   `yaml:"half_open_requests"`
}

// Retry configures retries of retryable upstream errors.
type Retry struct {
	MaxAttempts int      `yaml:"max_attempts"` // per deployment, first attempt included
	Base        Duration `yaml:"base"`
	Max         Duration `yaml:"max"`
}

// Deployment serves a model from a provider.
type Deployment struct {
	Provider      string `yaml:"provider"`
	UpstreamModel string `yaml:"upstream_model"`
	Weight        int    `yaml:"weight"`
}

// Log configures logging.
type Log struct {
	Level     string `yaml:"level"`  // debug | info | warn | error
	Format    string `yaml:"format"` // text | json
	AccessLog bool   `yaml:"access_log"`
}

// Catalog configures the model catalog's sources.
type Catalog struct {
	// Import is a file in LiteLLM's model_prices_and_context_window.json format.
	Import string `yaml:"import"`
}

// Provider is one upstream.
type Provider struct {
	Name    string `yaml:"name"`
	Type    string `yaml:"type"` // openai | azure | sim
	BaseURL string `yaml:"base_url"`
	APIKey  string `yaml:"api_key"`
	// APIKeys are several keys of one account or of several: each is its own
	// deployment, balanced by weight, so a 429 on one moves traffic to others.
	APIKeys    []string          `yaml:"api_keys"`
	APIVersion string            `yaml:"api_version"` // azure
	Headers    map[string]string `yaml:"headers"`
	Timeout    Duration          `yaml:"timeout"`
	// NoStreamOptions is for upstreams that reject stream_options.
	NoStreamOptions bool     `yaml:"no_stream_options"`
	Breaker         *Breaker `yaml:"breaker"`
	Retry           *Retry   `yaml:"retry"`
	Sim             *Sim     `yaml:"sim"`
}

// Sim configures a simulated provider.
type Sim struct {
	Latency         Latency  `yaml:"latency"`
	TTFT            Latency  `yaml:"ttft"`
	TokensPerSecond float64  `yaml:"tokens_per_second"`
	ErrorRate       float64  `yaml:"error_rate"`
	Errors          []string `yaml:"errors"` // 429 | 500 | 503 | timeout | stream_cut
	RetryAfter      Duration `yaml:"retry_after"`
	Seed            int64    `yaml:"seed"`
}

// Latency is a fixed duration ("20ms") or a distribution
// ({dist: lognormal, p50: 20ms, p99: 200ms}).
type Latency struct {
	Dist string   `yaml:"dist"` // fixed | uniform | normal | lognormal
	P50  Duration `yaml:"p50"`
	P99  Duration `yaml:"p99"`
	Min  Duration `yaml:"min"`
	Max  Duration `yaml:"max"`
}

// UnmarshalYAML accepts a plain duration as a fixed latency.
func (l *Latency) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		d, err := time.ParseDuration(n.Value)
		if err != nil {
			return fmt.Errorf("line %d: latency %q: %v", n.Line, n.Value, err)
		}
		*l = Latency{Dist: "fixed", P50: Duration(d)}
		return nil
	}
	type plain Latency
	return n.Decode((*plain)(l))
}

// Model binds a model name to a provider and may override or define its
// catalog entry. Price fields are USD per million tokens.
type Model struct {
	Name          string `yaml:"name"`
	Provider      string `yaml:"provider"`
	UpstreamModel string `yaml:"upstream_model"`
	Mode          string `yaml:"mode"` // chat | embedding
	// Deployments serve the model from several providers or keys; without
	// them the model is served by Provider (or its catalog provider).
	Deployments []Deployment `yaml:"deployments"`

	InputPerMTok       *float64 `yaml:"input_usd_per_mtok"`
	OutputPerMTok      *float64 `yaml:"output_usd_per_mtok"`
	CachedInputPerMTok *float64 `yaml:"cached_input_usd_per_mtok"`
	CacheWritePerMTok  *float64 `yaml:"cache_write_usd_per_mtok"`
	MaxInputTokens     *int     `yaml:"max_input_tokens"`
	MaxOutputTokens    *int     `yaml:"max_output_tokens"`
	Tools              *bool    `yaml:"tools"`
	Vision             *bool    `yaml:"vision"`
	JSONSchema         *bool    `yaml:"json_schema"`
	Streaming          *bool    `yaml:"streaming"`
	Reasoning          *bool    `yaml:"reasoning"`
	Tier               *int     `yaml:"tier"`
	Tokenizer          *string  `yaml:"tokenizer"`
}

// Duration is a time.Duration written as "30s" in YAML.
type Duration time.Duration

// UnmarshalYAML parses Go duration syntax.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (e.g. 30s, 5m)", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration in Go syntax.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// Std returns the time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// Load reads the configuration: the file at path when path is not empty,
// otherwise the built-in defaults. getenv resolves env:NAME references
// (os.Getenv when nil). The result is validated.
func Load(path string, getenv func(string) string) (*Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	if path == "" {
		cfg := Default(getenv)
		return cfg, cfg.Validate()
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	cfg, err := Parse(f, getenv)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// Parse decodes YAML strictly over the defaults, resolves env references and
// validates.
func Parse(r io.Reader, getenv func(string) string) (*Config, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, err
	}
	var envProblems []string
	resolveEnv(&root, getenv, &envProblems)
	resolved, err := yaml.Marshal(&root)
	if err != nil {
		return nil, err
	}
	cfg := base()
	if len(bytes.TrimSpace(data)) > 0 {
		dec := yaml.NewDecoder(bytes.NewReader(resolved))
		dec.KnownFields(true)
		if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
	}
	if v := getenv(AdminKeyEnv); v != "" {
		cfg.AdminKey = v
	}
	if err := cfg.Validate(); err != nil {
		if len(envProblems) > 0 {
			return nil, fmt.Errorf("%s\n%w", strings.Join(envProblems, "\n"), err)
		}
		return nil, err
	}
	if len(envProblems) > 0 {
		return nil, errors.New(strings.Join(envProblems, "\n"))
	}
	return cfg, nil
}

// resolveEnv replaces scalar values of the form env:NAME with the variable's
// value. An unset variable is a problem reported with the YAML line.
func resolveEnv(n *yaml.Node, getenv func(string) string, problems *[]string) {
	if n.Kind == yaml.ScalarNode && strings.HasPrefix(n.Value, "env:") {
		name := strings.TrimPrefix(n.Value, "env:")
		v := getenv(name)
		if v == "" {
			*problems = append(*problems, fmt.Sprintf("line %d: environment variable %s is not set", n.Line, name))
		}
		n.Value, n.Tag, n.Style = v, "!!str", yaml.DoubleQuotedStyle
		return
	}
	for _, c := range n.Content {
		resolveEnv(c, getenv, problems)
	}
}

// Validate reports every problem, one per line, each with its path.
func (c *Config) Validate() error {
	var p problems
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		p.add("listen", "not a host:port address: %q", c.Listen)
	}
	if c.AdminKey != "" && len(c.AdminKey) < 16 {
		p.add("admin_key", "must be at least 16 characters")
	}
	if c.DataDir == "" {
		p.add("data_dir", "must not be empty")
	}
	if c.MaxBodyBytes < 1024 {
		p.add("max_body_bytes", "must be at least 1024, got %d", c.MaxBodyBytes)
	}
	if c.DrainTimeout < 0 {
		p.add("drain_timeout", "must not be negative")
	}
	if c.RequestTimeout <= 0 {
		p.add("request_timeout", "must be positive")
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		p.add("log.level", "must be debug, info, warn or error, got %q", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		p.add("log.format", "must be text or json, got %q", c.Log.Format)
	}
	providers := map[string]bool{}
	for i, pr := range c.Providers {
		path := fmt.Sprintf("providers[%d]", i)
		if pr.Name == "" {
			p.add(path+".name", "must not be empty")
		} else if providers[pr.Name] {
			p.add(path+".name", "duplicate provider name %q", pr.Name)
		}
		providers[pr.Name] = true
		switch pr.Type {
		case "openai", "azure", "anthropic":
			if pr.Type == "anthropic" && pr.BaseURL == "" {
				break // Anthropic's own API
			}
			if u, err := url.Parse(pr.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				p.add(path+".base_url", "not a URL: %q", pr.BaseURL)
			}
			if pr.Type == "azure" && pr.APIVersion == "" {
				p.add(path+".api_version", "required for azure (e.g. 2024-10-21)")
			}
			if pr.Sim != nil {
				p.add(path+".sim", "only for providers of type sim")
			}
		case "sim":
			if pr.BaseURL != "" {
				p.add(path+".base_url", "a sim provider has no base_url")
			}
			if pr.Sim != nil {
				pr.Sim.validate(path+".sim", &p)
			}
		case "":
			p.add(path+".type", "must not be empty (openai, azure, anthropic or sim)")
		default:
			p.add(path+".type", "unknown provider type %q (openai, azure, anthropic or sim)", pr.Type)
		}
		if pr.Timeout < 0 {
			p.add(path+".timeout", "must not be negative")
		}
		if pr.APIKey != "" && len(pr.APIKeys) > 0 {
			p.add(path+".api_keys", "set either api_key or api_keys, not both")
		}
		for j, k := range pr.APIKeys {
			if k == "" {
				p.add(fmt.Sprintf("%s.api_keys[%d]", path, j), "must not be empty")
			}
		}
		if b := pr.Breaker; b != nil {
			if b.FailureRatio < 0 || b.FailureRatio > 1 {
				p.add(path+".breaker.failure_ratio", "must be between 0 and 1")
			}
			if b.Window < 0 || b.Cooldown < 0 {
				p.add(path+".breaker", "window and cooldown must not be negative")
			}
		}
		if r := pr.Retry; r != nil {
			if r.MaxAttempts < 0 || r.MaxAttempts > 10 {
				p.add(path+".retry.max_attempts", "must be between 1 and 10 (0: default)")
			}
			if r.Base < 0 || r.Max < 0 || (r.Max > 0 && r.Max < r.Base) {
				p.add(path+".retry", "base and max must be positive, max at least base")
			}
		}
	}
	names := map[string]bool{}
	for i, m := range c.Models {
		path := fmt.Sprintf("models[%d]", i)
		if m.Name == "" {
			p.add(path+".name", "must not be empty")
		} else if names[m.Name] {
			p.add(path+".name", "duplicate model %q", m.Name)
		}
		names[m.Name] = true
		if m.Provider != "" && !providers[m.Provider] {
			p.add(path+".provider", "no provider named %q", m.Provider)
		}
		switch m.Mode {
		case "", "chat", "embedding":
		default:
			p.add(path+".mode", "must be chat or embedding, got %q", m.Mode)
		}
		for _, f := range []struct {
			name string
			v    *float64
		}{{"input_usd_per_mtok", m.InputPerMTok}, {"output_usd_per_mtok", m.OutputPerMTok}, {"cached_input_usd_per_mtok", m.CachedInputPerMTok}, {"cache_write_usd_per_mtok", m.CacheWritePerMTok}} {
			if f.v != nil && *f.v < 0 {
				p.add(path+"."+f.name, "price must not be negative")
			}
		}
		for _, f := range []struct {
			name string
			v    *int
		}{{"max_input_tokens", m.MaxInputTokens}, {"max_output_tokens", m.MaxOutputTokens}} {
			if f.v != nil && *f.v < 1 {
				p.add(path+"."+f.name, "must be at least 1")
			}
		}
		if m.Tier != nil && (*m.Tier < 1 || *m.Tier > 5) {
			p.add(path+".tier", "must be between 1 and 5")
		}
		if len(m.Deployments) > 0 && (m.Provider != "" || m.UpstreamModel != "") {
			p.add(path+".deployments", "set either provider/upstream_model or deployments, not both")
		}
		for j, d := range m.Deployments {
			dp := fmt.Sprintf("%s.deployments[%d]", path, j)
			if !providers[d.Provider] {
				p.add(dp+".provider", "no provider named %q", d.Provider)
			}
			if d.Weight < 0 {
				p.add(dp+".weight", "must not be negative")
			}
		}
	}
	for _, name := range sortedKeys(c.Routes) {
		r := c.Routes[name]
		path := "routes." + name
		if names[name] {
			p.add(path, "a route alias may not have the name of a configured model")
		}
		switch r.Strategy {
		case "", "cheapest", "priority", "weighted":
		default:
			p.add(path+".strategy", "must be cheapest, priority or weighted, got %q", r.Strategy)
		}
		if len(r.Candidates) == 0 {
			p.add(path+".candidates", "a route needs at least one candidate")
		}
		if r.Strategy == "weighted" && len(r.Weights) != len(r.Candidates) {
			p.add(path+".weights", "weighted routes need one weight per candidate (%d candidates, %d weights)", len(r.Candidates), len(r.Weights))
		}
		if r.Strategy != "weighted" && (len(r.Weights) > 0 || r.Sticky) {
			p.add(path+".weights", "weights and sticky apply only to the weighted strategy")
		}
		for i, w := range r.Weights {
			if w < 0 {
				p.add(fmt.Sprintf("%s.weights[%d]", path, i), "must not be negative")
			}
		}
		if r.MinTier < 0 || r.MinTier > 5 {
			p.add(path+".min_tier", "must be between 1 and 5 (0: any)")
		}
		if r.OnExhausted != "" && r.OnExhausted != "reject" && r.OnExhausted != "downgrade" {
			p.add(path+".on_exhausted", "must be reject or downgrade, got %q", r.OnExhausted)
		}
		if r.ExpectedOutputTokens < 0 || r.Timeout < 0 || r.TTFTTimeout < 0 {
			p.add(path, "expected_output_tokens, timeout and ttft_timeout must not be negative")
		}
	}
	if c.Budget.Timezone != "" {
		if _, err := time.LoadLocation(c.Budget.Timezone); err != nil {
			p.add("budget.timezone", "unknown time zone %q", c.Budget.Timezone)
		}
	}
	for i, w := range c.Budget.Webhooks {
		if u, err := url.Parse(w.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			p.add(fmt.Sprintf("budget.webhooks[%d].url", i), "not a URL: %q", w.URL)
		}
	}
	// Amounts, periods and thresholds are checked where they are parsed
	// (budget.Policy.Validate), with the same paths.
	c.Cache.validate(&p)
	return p.err()
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (s *Sim) validate(path string, p *problems) {
	if s.ErrorRate < 0 || s.ErrorRate > 1 {
		p.add(path+".error_rate", "must be between 0 and 1, got %v", s.ErrorRate)
	}
	if s.TokensPerSecond < 0 {
		p.add(path+".tokens_per_second", "must not be negative")
	}
	for i, e := range s.Errors {
		switch e {
		case "429", "500", "503", "timeout", "stream_cut":
		default:
			p.add(fmt.Sprintf("%s.errors[%d]", path, i), "unknown error kind %q (429, 500, 503, timeout, stream_cut)", e)
		}
	}
	for _, l := range []struct {
		name string
		v    Latency
	}{{"latency", s.Latency}, {"ttft", s.TTFT}} {
		switch l.v.Dist {
		case "", "fixed", "uniform", "normal", "lognormal":
		default:
			p.add(path+"."+l.name+".dist", "must be fixed, uniform, normal or lognormal, got %q", l.v.Dist)
		}
		if l.v.P99 != 0 && l.v.P99 < l.v.P50 {
			p.add(path+"."+l.name+".p99", "must not be below p50")
		}
	}
}

type problems []string

func (p *problems) add(path, format string, args ...any) {
	*p = append(*p, path+": "+fmt.Sprintf(format, args...))
}

func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	return errors.New(strings.Join(p, "\n"))
}
