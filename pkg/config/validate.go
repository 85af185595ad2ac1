package config

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"
)

// Validate reports every problem, one a line, each with its path. Load and
// Parse call it; a caller that edits a loaded Config calls it again.
func (c *Config) Validate() error { return c.check().err() }

func (c *Config) check() problems {
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
	if c.BodyReadTimeout <= 0 {
		p.add("body_read_timeout", "must be positive")
	}
	if c.WriteTimeout <= 0 {
		p.add("write_timeout", "must be positive")
	}
	oneOf(&p, "log.level", c.Log.Level, "debug", "info", "warn", "error")
	oneOf(&p, "log.format", c.Log.Format, "text", "json")
	providers := c.checkProviders(&p)
	models := c.checkModels(&p, providers)
	c.checkRoutes(&p, models)
	c.checkGuardrails(&p)
	c.Budget.check(&p)
	c.Cache.validate(&p)
	c.Store.check(&p)
	c.Otel.check(&p)
	return p
}

func (o *Otel) check(p *problems) {
	if o.Endpoint != "" {
		p.url("otel.endpoint", o.Endpoint, otlpURL)
	}
	for _, k := range sortedKeys(o.Headers) {
		if k == "" || strings.ContainsAny(k, " \t\r\n:") {
			p.add("otel.headers", "invalid header name %q", k)
		}
	}
	if o.ServiceName == "" {
		p.add("otel.service_name", "must not be empty")
	}
	if math.IsNaN(o.SampleRatio) || o.SampleRatio < 0 || o.SampleRatio > 1 {
		p.add("otel.sample_ratio", "must be between 0 and 1, got %g", o.SampleRatio)
	}
}

func (s *Store) check(p *problems) {
	oneOf(p, "store.driver", s.Driver, "sqlite", "postgres")
	if s.ResponsesTTL <= 0 {
		p.add("store.responses_ttl", "must be positive")
	}
	switch {
	case s.Driver == "postgres":
		// Never the value in a message: it may hold a password.
		if s.PostgresURL == "" {
			p.add("store.postgres_url", "required with driver postgres, e.g. env:TOLLGATE_POSTGRES_URL holding postgres://tollgate:PASSWORD@db:5432/tollgate")
			return
		}
		u, err := url.Parse(s.PostgresURL)
		switch {
		case err != nil:
			p.add("store.postgres_url", "not a URL (the value is not shown: it may hold a password)")
		case u.Scheme != "postgres" && u.Scheme != "postgresql":
			p.add("store.postgres_url", "not a URL: the scheme must be postgres or postgresql (the value is not shown: it may hold a password)")
		case u.Host == "":
			p.add("store.postgres_url", "not a URL: no host (the value is not shown: it may hold a password)")
		}
		if s.ReservationLease <= 0 {
			p.add("store.reservation_lease", "must be positive")
		}
		if s.RedisURL != "" {
			if u, err := url.Parse(s.RedisURL); err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
				p.add("store.redis_url", "not a redis:// or rediss:// URL with a host (the value is not shown: it may hold a password)")
			}
		}
	default:
		if s.PostgresURL != "" {
			p.add("store.postgres_url", "only with driver postgres")
		}
		if s.RedisURL != "" {
			p.add("store.redis_url", "only with driver postgres (one process keeps its rate limits in memory)")
		}
	}
}

// redactURL is raw with any password replaced by "xxxxx"; a value that is
// not a URL is not shown at all.
func redactURL(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "(not a URL)"
	}
	return u.Redacted()
}

func (c *Config) checkProviders(p *problems) map[string]bool {
	names := map[string]bool{}
	for i, pr := range c.Providers {
		path := fmt.Sprintf("providers[%d]", i)
		unique(p, path+".name", pr.Name, "provider name", names)
		switch pr.Type {
		case "openai", "azure", "anthropic":
			p.url(path+".base_url", pr.BaseURL, upstreamURL)
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
				pr.Sim.validate(path+".sim", p)
			}
		case "":
			p.add(path+".type", "must not be empty (openai, azure, anthropic or sim)")
		default:
			p.add(path+".type", "unknown provider type %q (openai, azure, anthropic or sim)", pr.Type)
		}
		if pr.Timeout < 0 {
			p.add(path+".timeout", "must not be negative")
		}
		if pr.MaxTokensField != "" {
			oneOf(p, path+".max_tokens_field", pr.MaxTokensField, "max_tokens", "max_completion_tokens")
			if pr.Type != "openai" && pr.Type != "azure" {
				p.add(path+".max_tokens_field", "only for providers of type openai or azure")
			}
		}
		if pr.ResponsesAPI != nil && *pr.ResponsesAPI && pr.Type != "openai" {
			p.add(path+".responses_api", "only for providers of type openai (Azure's /openai/v1 surface is one)")
		}
		pr.checkBounds(p, path)
		if pr.APIKey != "" && len(pr.APIKeys) > 0 {
			p.add(path+".api_keys", "set either api_key or api_keys, not both")
		}
		for j, k := range pr.APIKeys {
			if k == "" {
				p.add(fmt.Sprintf("%s.api_keys[%d]", path, j), "must not be empty")
			}
		}
		if b := pr.Breaker; b != nil {
			bp := path + ".breaker"
			if b.FailureRatio <= 0 || b.FailureRatio > 1 {
				p.add(bp+".failure_ratio", "must be greater than 0 and at most 1, got %v", b.FailureRatio)
			}
			atLeastOne(p, bp+".consecutive_failures", int(b.ConsecutiveFailures))
			atLeastOne(p, bp+".min_requests", int(b.MinRequests))
			atLeastOne(p, bp+".half_open_requests", int(b.HalfOpenRequests))
			positive(p, bp+".window", b.Window)
			positive(p, bp+".cooldown", b.Cooldown)
		}
		if r := pr.Retry; r != nil {
			if r.MaxAttempts < 1 || r.MaxAttempts > 10 {
				p.add(path+".retry.max_attempts", "must be between 1 and 10 (1: no retries), got %d", r.MaxAttempts)
			}
			positive(p, path+".retry.base", r.Base)
			if r.Max < r.Base {
				p.add(path+".retry.max", "must be at least base (%v), got %v", r.Base.Std(), r.Max.Std())
			}
		}
	}
	return names
}

// minBoundBytes is the smallest size bound a provider may set: below it an
// ordinary chunk or answer would not fit.
const minBoundBytes = 1 << 10

// checkBounds checks a provider's stream timeouts and size bounds. A bound
// of 0 is its default (a Provider built in Go rather than loaded has
// zeros); the providers package applies the same defaults.
func (pr *Provider) checkBounds(p *problems, path string) {
	if pr.StreamIdleTimeout < 0 {
		p.add(path+".stream_idle_timeout", "must not be negative (0: none)")
	}
	if pr.TTFTTimeout < 0 {
		p.add(path+".ttft_timeout", "must not be negative (0: none of its own)")
	}
	for _, b := range []struct {
		name string
		v    int64
	}{{"max_response_bytes", pr.MaxResponseBytes}, {"max_event_bytes", pr.MaxEventBytes}, {"max_stream_bytes", pr.MaxStreamBytes}} {
		if b.v != 0 && b.v < minBoundBytes {
			p.add(path+"."+b.name, "must be at least %d (0: the default), got %d", minBoundBytes, b.v)
		}
	}
	event, stream := cmp.Or(pr.MaxEventBytes, DefaultMaxEventBytes), cmp.Or(pr.MaxStreamBytes, DefaultMaxStreamBytes)
	if event > math.MaxInt32 {
		p.add(path+".max_event_bytes", "must be at most %d, got %d", math.MaxInt32, event)
	}
	if stream >= minBoundBytes && stream < event {
		p.add(path+".max_stream_bytes", "must be at least max_event_bytes (%d), got %d", event, stream)
	}
}

func (c *Config) checkModels(p *problems, providers map[string]bool) map[string]bool {
	names := map[string]bool{}
	for i, m := range c.Models {
		path := fmt.Sprintf("models[%d]", i)
		unique(p, path+".name", m.Name, "model", names)
		if m.Provider != "" && !providers[m.Provider] {
			p.add(path+".provider", "no provider named %q", m.Provider)
		}
		if m.Mode != "" {
			oneOf(p, path+".mode", m.Mode, "chat", "embedding")
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
			if f.v != nil {
				atLeastOne(p, path+"."+f.name, *f.v)
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
			atLeastOne(p, dp+".weight", d.Weight)
		}
	}
	return names
}

func (c *Config) checkRoutes(p *problems, models map[string]bool) {
	for _, name := range sortedKeys(c.Routes) {
		r := c.Routes[name]
		path := "routes." + name
		if models[name] {
			p.add(path, "a route alias may not have the name of a configured model")
		}
		oneOf(p, path+".strategy", r.Strategy, "cheapest", "priority", "weighted")
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
		oneOf(p, path+".on_exhausted", r.OnExhausted, "reject", "downgrade")
		atLeastOne(p, path+".expected_output_tokens", r.ExpectedOutputTokens)
		if r.Timeout < 0 {
			p.add(path+".timeout", "must not be negative (0: request_timeout)")
		}
		if r.TTFTTimeout < 0 {
			p.add(path+".ttft_timeout", "must not be negative (0: none of its own)")
		}
		if r.StreamIdleTimeout < 0 {
			p.add(path+".stream_idle_timeout", "must not be negative (0: the provider's)")
		}
	}
}

func (b *Budget) check(p *problems) {
	if _, err := time.LoadLocation(b.Timezone); err != nil || b.Timezone == "" {
		p.add("budget.timezone", "unknown time zone %q", b.Timezone)
	}
	oneOf(p, "budget.defaults.on_exhausted", b.Defaults.OnExhausted, "reject", "downgrade")
	for i, w := range b.Webhooks {
		p.url(fmt.Sprintf("budget.webhooks[%d].url", i), w.URL, webhookURL)
	}
	// Amounts, periods and thresholds are checked where they are parsed
	// (budget.Policy.Validate), with the same paths.
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
		if l.v.Dist != "" {
			oneOf(p, path+"."+l.name+".dist", l.v.Dist, "fixed", "uniform", "normal", "lognormal")
		}
		if l.v.P99 != 0 && l.v.P99 < l.v.P50 {
			p.add(path+"."+l.name+".p99", "must not be below p50")
		}
	}
}

// urlRule is what a field holding a URL accepts.
type urlRule struct {
	schemes []string
	example string // shown when the URL is missing
	// bare: no query or fragment (paths are appended to the URL).
	bare bool
	// noUser: credentials belong in api_key, not in the URL (where logs
	// and error messages would show them).
	noUser bool
}

var (
	upstreamURL = urlRule{schemes: []string{"http", "https"}, example: "https://api.openai.com/v1", bare: true}
	// otlpURL: a collector's OTLP/HTTP endpoint (headers carry its
	// credentials).
	otlpURL    = urlRule{schemes: []string{"http", "https"}, example: "http://collector:4318", bare: true, noUser: true}
	webhookURL = urlRule{schemes: []string{"http", "https"}, example: "https://hooks.slack.com/services/..."}
	// qdrantURL: the gRPC endpoint; https and grpcs turn TLS on.
	qdrantURL = urlRule{schemes: []string{"http", "https", "grpc", "grpcs"}, example: "http://qdrant:6334", bare: true, noUser: true}
)

// url is the configuration's one URL check: every field holding a URL goes
// through it, so they accept and refuse the same things.
func (p *problems) url(path, raw string, r urlRule) {
	if raw == "" {
		p.add(path, "required, e.g. %s", r.example)
		return
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		p.add(path, "not a URL: %q", raw)
	case !slices.Contains(r.schemes, u.Scheme):
		p.add(path, "not a URL: %q: the scheme must be %s", raw, orList(r.schemes))
	case u.Host == "":
		p.add(path, "not a URL: %q: no host", raw)
	case r.noUser && u.User != nil:
		p.add(path, "must not carry credentials (use api_key)")
	case r.bare && (u.RawQuery != "" || u.Fragment != ""):
		p.add(path, "must not carry a query or fragment: %q", raw)
	}
}

// unique records a problem unless name is set and not yet in seen, and
// adds it.
func unique(p *problems, path, name, what string, seen map[string]bool) {
	if name == "" {
		p.add(path, "must not be empty")
	} else if seen[name] {
		p.add(path, "duplicate %s %q", what, name)
	}
	seen[name] = true
}

// oneOf records a problem unless v is one of the allowed values.
func oneOf(p *problems, path, v string, allowed ...string) {
	if !slices.Contains(allowed, v) {
		p.add(path, "must be %s, got %q", orList(allowed), v)
	}
}

func atLeastOne(p *problems, path string, n int) {
	if n < 1 {
		p.add(path, "must be at least 1, got %d", n)
	}
}

func positive(p *problems, path string, d Duration) {
	if d <= 0 {
		p.add(path, "must be positive, got %v", d.Std())
	}
}

// orList writes "a, b or c".
func orList(s []string) string {
	if len(s) < 2 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// problem is one thing wrong with a configuration, at its path.
type problem struct{ path, msg string }

type problems []problem

func (p *problems) add(path, format string, args ...any) {
	*p = append(*p, problem{path, fmt.Sprintf(format, args...)})
}

// merge appends the validation problems v, except those at a path that
// already has a decoding problem: a value that could not be read was left
// at its default, and a complaint about the default would only mislead.
func (p problems) merge(v problems) problems {
	bad := map[string]bool{}
	for _, x := range p {
		bad[x.path] = true
	}
	for _, x := range v {
		if !bad[x.path] {
			p = append(p, x)
		}
	}
	return p
}

func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	lines := make([]string, len(p))
	for i, x := range p {
		lines[i] = x.msg
		if x.path != "" {
			lines[i] = x.path + ": " + x.msg
		}
	}
	return errors.New(strings.Join(lines, "\n"))
}
