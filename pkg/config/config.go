// Package config owns tollgate's configuration: the YAML schema, strict
// decoding (unknown fields are errors), `env:NAME` references, every
// default (defaults.go) and Validate. Problems are reported all at once, one
// a line, each with the path a user wrote: `cache.semantic.treshold: unknown
// field (did you mean threshold?)`, `providers[0].base_url: not a URL: ...`.
package config

import (
	"fmt"
	"io"
	"os"
	"reflect"
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
	// BodyReadTimeout bounds reading a request's body: a client that sends
	// it slower gets a 408 and its connection closed.
	BodyReadTimeout Duration `yaml:"body_read_timeout"`
	// WriteTimeout bounds each write to a client (a stream's event, an
	// answer's body): a client that stops reading is cut after it.
	WriteTimeout Duration `yaml:"write_timeout"`
	// DevKey controls the development key created on the first start with an
	// empty database.
	DevKey    bool       `yaml:"dev_key"`
	Log       Log        `yaml:"log"`
	Catalog   Catalog    `yaml:"catalog"`
	Providers []Provider `yaml:"providers"`
	Models    []Model    `yaml:"models"`
	// Routes are aliases a client may send as its model, e.g. "auto".
	Routes map[string]Route `yaml:"routes"`
	// Guardrails are the guards routes apply to prompts and answers
	// (guardrails.go).
	Guardrails Guardrails `yaml:"guardrails"`
	Budget     Budget     `yaml:"budget"`
	Cache      Cache      `yaml:"cache"`
	Store      Store      `yaml:"store"`
	Otel       Otel       `yaml:"otel"`
}

// Otel configures OpenTelemetry traces, exported over OTLP/HTTP when
// Endpoint is set (else, when the file sets none, from the standard
// OTEL_EXPORTER_OTLP_ENDPOINT variable). Spans carry models, providers,
// tokens, costs and ids, never prompts, completions or key secrets.
type Otel struct {
	// Endpoint is the collector's OTLP/HTTP base URL, e.g.
	// http://collector:4318 (/v1/traces is added unless the path already
	// ends with it). Empty: no tracing.
	Endpoint string `yaml:"endpoint"`
	// Headers are sent with every export (e.g. an API key of a hosted
	// collector: write env:NAME).
	Headers     map[string]string `yaml:"headers"`
	ServiceName string            `yaml:"service_name"` // default DefaultOtelServiceName
	// SampleRatio is the share of requests traced that do not arrive with
	// a sampled parent (default 1; a parent's decision is followed).
	SampleRatio float64 `yaml:"sample_ratio"`
}

// Store selects the database of keys, budgets, the ledger and the cache
// entries: SQLite in data_dir for one process, PostgreSQL shared by
// replicas.
type Store struct {
	Driver string `yaml:"driver"` // sqlite (default) | postgres
	// PostgresURL is the driver postgres database, e.g.
	// postgres://tollgate:PASSWORD@db:5432/tollgate. It may hold a
	// password: write env:NAME, and it is never logged nor shown in an
	// error (String redacts it).
	PostgresURL string `yaml:"postgres_url"`
	// ReservationLease bounds how long a budget reservation held by a
	// replica that died stays held: the other replicas release it once
	// its lease has passed (default 10m). Set it above the longest
	// request (a stream included). Driver postgres only.
	ReservationLease Duration `yaml:"reservation_lease"`
	// RedisURL, when set, keeps the rate limits (rpm, tpm) in Redis
	// instead of PostgreSQL, e.g. redis://redis:6379/0 (env:NAME works;
	// never logged). Driver postgres only.
	RedisURL string `yaml:"redis_url"`
	// ResponsesTTL is how long answers of POST /v1/responses with store
	// are kept for GET /v1/responses/{id} and previous_response_id
	// (default 30 days, as OpenAI keeps them); older ones are swept.
	ResponsesTTL Duration `yaml:"responses_ttl"`
}

// String describes the store without the password of postgres_url.
func (s Store) String() string {
	if s.Driver != "postgres" {
		return s.Driver
	}
	out := s.Driver + " " + redactURL(s.PostgresURL)
	if s.RedisURL != "" {
		out += ", rate limits in redis " + redactURL(s.RedisURL)
	}
	return out
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
	Period   string `yaml:"period"` // daily | weekly | monthly | total
	LimitUSD string `yaml:"limit_usd"`
	// AlertThresholds are shares of the limit that alert (default
	// DefaultAlertThresholds; [] for none).
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
	// the client sets no max_tokens, and caps max_tokens in the estimate
	// (default DefaultExpectedOutputTokens).
	ExpectedOutputTokens int      `yaml:"expected_output_tokens"`
	Timeout              Duration `yaml:"timeout"`      // whole request, all attempts
	TTFTTimeout          Duration `yaml:"ttft_timeout"` // streams: until the first chunk
	// StreamIdleTimeout replaces the providers' stream_idle_timeout for
	// this route's streams (0: the provider's).
	StreamIdleTimeout Duration `yaml:"stream_idle_timeout"`
	// OnExhausted: downgrade serves requests the key's budget cannot afford
	// with the cheapest capable model that fits, for every key on this route.
	OnExhausted string `yaml:"on_exhausted"` // reject (default) | downgrade
	// Guards names the guards of this route's requests, replacing
	// guardrails.default (unset: the default; []: none).
	Guards []string `yaml:"guards"`
	// Enrich adds messages to every prompt of this route.
	Enrich Enrich `yaml:"enrich"`
}

// Breaker configures the circuit breaker of each deployment of a provider
// (default DefaultBreaker; a block keeps the defaults of the fields it
// leaves out).
type Breaker struct {
	ConsecutiveFailures uint32   `yaml:"consecutive_failures"`
	FailureRatio        float64  `yaml:"failure_ratio"`
	MinRequests         uint32   `yaml:"min_requests"`
	Window              Duration `yaml:"window"`
	Cooldown            Duration `yaml:"cooldown"`
	HalfOpenRequests    uint32   `yaml:"half_open_requests"`
}

// Retry configures retries of retryable upstream errors (default
// DefaultRetry; a block keeps the defaults of the fields it leaves out).
type Retry struct {
	MaxAttempts int      `yaml:"max_attempts"` // per deployment, first attempt included
	Base        Duration `yaml:"base"`
	Max         Duration `yaml:"max"`
}

// Deployment serves a model from a provider.
type Deployment struct {
	Provider      string `yaml:"provider"`
	UpstreamModel string `yaml:"upstream_model"`
	Weight        int    `yaml:"weight"` // default 1
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
	Type    string `yaml:"type"`     // openai | azure | anthropic | sim
	BaseURL string `yaml:"base_url"` // anthropic: default DefaultAnthropicBaseURL
	APIKey  string `yaml:"api_key"`
	// APIKeys are several keys of one account or of several: each is its own
	// deployment, balanced by weight, so a 429 on one moves traffic to others.
	APIKeys    []string          `yaml:"api_keys"`
	APIVersion string            `yaml:"api_version"` // azure
	Headers    map[string]string `yaml:"headers"`
	Timeout    Duration          `yaml:"timeout"`
	// StreamIdleTimeout bounds the silence between two stream events (0:
	// none); TTFTTimeout a stream until its first chunk (0: none of its own).
	StreamIdleTimeout Duration `yaml:"stream_idle_timeout"`
	TTFTTimeout       Duration `yaml:"ttft_timeout"`
	// MaxResponseBytes bounds a non-streamed answer, MaxEventBytes one
	// stream line or event, MaxStreamBytes the bytes of one stream.
	MaxResponseBytes int64 `yaml:"max_response_bytes"`
	MaxEventBytes    int64 `yaml:"max_event_bytes"`
	MaxStreamBytes   int64 `yaml:"max_stream_bytes"`
	// NoStreamOptions is for upstreams that reject stream_options.
	NoStreamOptions bool     `yaml:"no_stream_options"`
	Breaker         *Breaker `yaml:"breaker"`
	Retry           *Retry   `yaml:"retry"`
	Sim             *Sim     `yaml:"sim"`

	// MaxTokensField (openai, azure) is the one spelling of the output
	// limit the upstream is sent: max_tokens or max_completion_tokens.
	// Empty: the client's spelling, else max_completion_tokens for OpenAI
	// and Azure hosts and max_tokens for every other upstream.
	MaxTokensField string `yaml:"max_tokens_field"`

	// ResponsesAPI (openai) says whether the upstream serves OpenAI's
	// Responses API at {base_url}/responses: POST /v1/responses is then
	// passed through to it instead of being translated to chat
	// completions. Unset: on for api.openai.com, off for every other host.
	ResponsesAPI *bool `yaml:"responses_api"`
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
			return fmt.Errorf("must be a duration or {dist, p50, p99, min, max}, got %q", n.Value)
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
	if n.Kind != yaml.ScalarNode || err != nil {
		return fmt.Errorf("must be %s, got %q", describeType(durationType), n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration in Go syntax.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// String writes the duration in Go syntax.
func (d Duration) String() string { return time.Duration(d).String() }

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

// Parse decodes YAML strictly over the defaults, resolves env references
// and validates. A file without a providers key keeps the built-in providers
// (the simulator, and those enabled by their key variables) and, when it has
// no routes either, the built-in auto route; every other setting it leaves
// out has its default. The error lists every problem, one a line, each with its
// path: unknown fields, values of the wrong type, unset variables and
// invalid settings together. Only a file that is not YAML at all is
// reported by line, as the YAML parser saw it.
func Parse(r io.Reader, getenv func(string) string) (*Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, err
	}
	cfg := base()
	var p problems
	if doc := deref(&root); doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
		d := decoder{getenv: getenv, p: &p}
		d.decode(doc.Content[0], reflect.ValueOf(cfg).Elem(), "")
	}
	if cfg.Providers == nil {
		// The file does not configure providers (`providers: []` does, and
		// serves nothing): it keeps the built-in ones, as without a file.
		keepBuiltinProviders(cfg, getenv)
	}
	if v := getenv(AdminKeyEnv); v != "" {
		cfg.AdminKey = v
	}
	if cfg.Otel.Endpoint == "" {
		cfg.Otel.Endpoint = getenv(OtelEndpointEnv)
	}
	cfg.complete()
	if err := p.merge(cfg.check()).err(); err != nil {
		return nil, err
	}
	return cfg, nil
}
