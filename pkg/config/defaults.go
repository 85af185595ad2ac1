package config

import (
	"time"

	"github.com/tollgate/tollgate/pkg/guardrails"
)

// AdminKeyEnv is the variable that sets the admin key; it wins over the file.
const AdminKeyEnv = "TOLLGATE_ADMIN_KEY"

// OtelEndpointEnv is the standard OpenTelemetry variable that sets
// otel.endpoint when the file sets none.
const OtelEndpointEnv = "OTEL_EXPORTER_OTLP_ENDPOINT"

// Every default of the configuration lives in this file: the constants
// below; base, the configuration a file is decoded over; setDefaults, what
// a new element of a list or map starts from before its fields are read
// (so a value written explicitly, 0 included, always wins); and complete,
// the defaults that depend on other fields. cmd/server hands every value to
// the components explicitly; the fallbacks some of them keep for direct
// callers are held equal to these by a test there (cmd/server imports both;
// config imports none of them but guardrails, whose own constants it
// names).
const (
	DefaultListen         = "127.0.0.1:8080"
	DefaultDataDir        = "./data"
	DefaultMaxBodyBytes   = 4 << 20
	DefaultDrainTimeout   = 30 * time.Second
	DefaultRequestTimeout = 10 * time.Minute
	DefaultWriteTimeout   = 30 * time.Second
	DefaultLogLevel       = "info"
	DefaultLogFormat      = "text"

	// DefaultAnthropicBaseURL is the base_url of a provider of type
	// anthropic that names none.
	DefaultAnthropicBaseURL = "https://api.anthropic.com"

	// DefaultBodyReadTimeout bounds reading one request body.
	DefaultBodyReadTimeout = 30 * time.Second

	// A provider's stream and answer bounds: silence between two events,
	// a non-streamed answer, one stream line or event, one stream.
	DefaultStreamIdleTimeout = 60 * time.Second
	DefaultMaxResponseBytes  = 32 << 20
	DefaultMaxEventBytes     = 1 << 20
	DefaultMaxStreamBytes    = 64 << 20

	DefaultStrategy = "cheapest"
	// DefaultExpectedOutputTokens is a route's completion estimate when the
	// client sends no max_tokens: roughly the median chat completion.
	DefaultExpectedOutputTokens = 512
	DefaultOnExhausted          = "reject"
	DefaultDeploymentWeight     = 1
	DefaultTimezone             = "UTC"

	DefaultCacheTTL           = 24 * time.Hour
	DefaultCacheMaxBytes      = 64 << 20
	DefaultCacheSweepInterval = time.Minute
	// DefaultMaxTemperature is the providers' own default: only requests
	// asking for extra variety skip the cache.
	DefaultMaxTemperature = 1.0
	// DefaultSemanticThreshold was measured with the USE-lite embedder and
	// the guard (see semcache.DefaultThreshold, which documents how).
	DefaultSemanticThreshold = 0.50
	// DefaultUnalignedThreshold: above 1, a candidate the guard cannot
	// align is never served on its cosine alone (semcache's own default).
	DefaultUnalignedThreshold = 1.01
	// MaxUnalignedThreshold is the highest unaligned_threshold: 1.01, the
	// conventional way to write "never".
	MaxUnalignedThreshold = 1.01
	// DefaultVerifyTimeout bounds the judge's call (gateway's own
	// default).
	DefaultVerifyTimeout = 5 * time.Second
	DefaultSemanticTurns = 1
	DefaultEmbedder      = "use"
	DefaultIndex         = "embedded"
	// DefaultHashedDimensions is the size of the hashed embedder's vectors,
	// the USE model's own.
	DefaultHashedDimensions   = 512
	DefaultQdrantQuantization = "scalar"
	DefaultQdrantTimeout      = 5 * time.Second
	DefaultStoreDriver        = "sqlite"
	DefaultReservationLease   = Duration(10 * time.Minute)
	DefaultResponsesTTL       = Duration(30 * 24 * time.Hour)

	DefaultOtelServiceName = "tollgate"
	DefaultOtelSampleRatio = 1.0

	// DefaultGuardScanLimit bounds the text one request and its answer
	// may have scanned by guards (4 MiB).
	DefaultGuardScanLimit = guardrails.DefaultScanLimit
)

// DefaultGuardDirections are the directions a guard scans when it names
// none: requests and answers.
func DefaultGuardDirections() []string { return []string{guardrails.Request, guardrails.Answer} }

// DefaultBreaker is a provider's circuit breaker when it sets none: trip
// after 5 upstream faults in a row, or when half of at least 20 calls in
// the last 60s failed; stay open 30s; close after 3 successful probes.
func DefaultBreaker() Breaker {
	return Breaker{
		ConsecutiveFailures: 5,
		FailureRatio:        0.5,
		MinRequests:         20,
		Window:              Duration(60 * time.Second),
		Cooldown:            Duration(30 * time.Second),
		HalfOpenRequests:    3,
	}
}

// DefaultRetry is a provider's retry policy when it sets none: up to 3
// attempts per deployment, waits drawn below 250ms, 500ms... up to 8s.
func DefaultRetry() Retry {
	return Retry{MaxAttempts: 3, Base: Duration(250 * time.Millisecond), Max: Duration(8 * time.Second)}
}

// DefaultAlertThresholds are the shares of a budget limit that alert when
// the limit names none ([] names none: no alerts).
func DefaultAlertThresholds() []float64 { return []float64{0.5, 0.8, 1.0} }

// base is the configuration a YAML file is decoded over: every scalar
// default, no providers or models.
func base() *Config {
	return &Config{
		Listen:         DefaultListen,
		DataDir:        DefaultDataDir,
		MaxBodyBytes:   DefaultMaxBodyBytes,
		DrainTimeout:   Duration(DefaultDrainTimeout),
		RequestTimeout: Duration(DefaultRequestTimeout),
		WriteTimeout:   Duration(DefaultWriteTimeout),
		DevKey:         true,
		Log:            Log{Level: DefaultLogLevel, Format: DefaultLogFormat, AccessLog: true},

		BodyReadTimeout: Duration(DefaultBodyReadTimeout),
		Store:           Store{Driver: DefaultStoreDriver, ReservationLease: DefaultReservationLease, ResponsesTTL: DefaultResponsesTTL},
		Otel:            Otel{ServiceName: DefaultOtelServiceName, SampleRatio: DefaultOtelSampleRatio},
		Guardrails:      Guardrails{ScanLimitBytes: DefaultGuardScanLimit},
		Budget: Budget{
			Timezone: DefaultTimezone,
			Defaults: KeyPolicy{OnExhausted: DefaultOnExhausted},
		},
		Cache: Cache{
			Enabled:        true,
			TTL:            Duration(DefaultCacheTTL),
			MaxBytes:       DefaultCacheMaxBytes,
			MaxTemperature: DefaultMaxTemperature,
			SweepInterval:  Duration(DefaultCacheSweepInterval),
			Semantic: Semantic{
				Enabled:            true,
				Threshold:          DefaultSemanticThreshold,
				UnalignedThreshold: DefaultUnalignedThreshold,
				Verify:             Verify{Timeout: Duration(DefaultVerifyTimeout)},
				Turns:              DefaultSemanticTurns,
				Embedder:           DefaultEmbedder,
				Index:              DefaultIndex,
				Qdrant:             Qdrant{Quantization: DefaultQdrantQuantization, Timeout: Duration(DefaultQdrantTimeout)},
			},
		},
	}
}

// setDefaults fills what a provider leaves out: its breaker and retry
// policy (a block that sets some of their fields keeps these for the rest),
// its stream idle timeout and size bounds.
func (p *Provider) setDefaults() {
	if p.StreamIdleTimeout == 0 {
		p.StreamIdleTimeout = Duration(DefaultStreamIdleTimeout)
	}
	if p.MaxResponseBytes == 0 {
		p.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if p.MaxEventBytes == 0 {
		p.MaxEventBytes = DefaultMaxEventBytes
	}
	if p.MaxStreamBytes == 0 {
		p.MaxStreamBytes = DefaultMaxStreamBytes
	}
	if p.Breaker == nil {
		b := DefaultBreaker()
		p.Breaker = &b
	}
	if p.Retry == nil {
		r := DefaultRetry()
		p.Retry = &r
	}
}

func (r *Route) setDefaults() {
	if r.Strategy == "" {
		r.Strategy = DefaultStrategy
	}
	if r.ExpectedOutputTokens == 0 {
		r.ExpectedOutputTokens = DefaultExpectedOutputTokens
	}
	if r.OnExhausted == "" {
		r.OnExhausted = DefaultOnExhausted
	}
}

func (g *Guard) setDefaults() {
	if g.Directions == nil {
		g.Directions = DefaultGuardDirections()
	}
}

func (d *Deployment) setDefaults() {
	if d.Weight == 0 {
		d.Weight = DefaultDeploymentWeight
	}
}

func (l *BudgetLimit) setDefaults() {
	if l.AlertThresholds == nil {
		l.AlertThresholds = DefaultAlertThresholds()
	}
}

// complete fills the defaults that depend on other fields, once they are
// all read.
func (c *Config) complete() {
	for i := range c.Providers {
		if p := &c.Providers[i]; p.Type == "anthropic" && p.BaseURL == "" {
			p.BaseURL = DefaultAnthropicBaseURL
		}
	}
	if s := &c.Cache.Semantic; s.Embedder == "hashed" && s.Dimensions == 0 {
		s.Dimensions = DefaultHashedDimensions
	}
	if s := &c.Cache.Semantic; s.Verify.Model != "" && s.Verify.MinSimilarity == 0 {
		s.Verify.MinSimilarity = s.Threshold
	}
}

// keepBuiltinProviders gives a file that does not configure providers the
// built-in ones of Default (and its auto route, when the file has no
// routes), so that a file setting only, say, logging still serves sim-small.
func keepBuiltinProviders(cfg *Config, getenv func(string) string) {
	def := Default(getenv)
	cfg.Providers = def.Providers
	if cfg.Routes == nil {
		cfg.Routes = def.Routes
	}
}

// KnownProvider is an OpenAI-compatible upstream enabled by its key variable
// in the built-in defaults.
type KnownProvider struct {
	Name, Type, EnvKey, BaseURL string
}

// KnownProviders are the upstreams the built-in defaults enable when their
// key variable is set. Each speaks OpenAI's wire format at BaseURL.
var KnownProviders = []KnownProvider{
	{"openai", "openai", "OPENAI_API_KEY", "https://api.openai.com/v1"},
	{"anthropic", "anthropic", "ANTHROPIC_API_KEY", DefaultAnthropicBaseURL}, // native Messages API
	{"gemini", "openai", "GEMINI_API_KEY", "https://generativelanguage.googleapis.com/v1beta/openai"},
	{"groq", "openai", "GROQ_API_KEY", "https://api.groq.com/openai/v1"},
	{"mistral", "openai", "MISTRAL_API_KEY", "https://api.mistral.ai/v1"},
	{"deepseek", "openai", "DEEPSEEK_API_KEY", "https://api.deepseek.com/v1"},
	{"openrouter", "openai", "OPENROUTER_API_KEY", "https://openrouter.ai/api/v1"},
	{"together", "openai", "TOGETHER_API_KEY", "https://api.together.xyz/v1"},
}

// Default is the configuration used without a file: the simulated provider
// (serving sim-small, sim-large and sim-embed from the catalog) plus every
// known provider whose key variable is set, and an auto route.
func Default(getenv func(string) string) *Config {
	cfg := base()
	cfg.AdminKey = getenv(AdminKeyEnv)
	cfg.Otel.Endpoint = getenv(OtelEndpointEnv)
	sim := Provider{
		Name: "sim",
		Type: "sim",
		Sim: &Sim{
			Latency:         Latency{Dist: "fixed", P50: Duration(150 * time.Millisecond)},
			TTFT:            Latency{Dist: "fixed", P50: Duration(100 * time.Millisecond)},
			TokensPerSecond: 200,
		},
	}
	sim.setDefaults()
	cfg.Providers = append(cfg.Providers, sim)
	// The quick start shows cheapest-capable routing without an account.
	auto := Route{Strategy: "cheapest", Candidates: []string{"sim-small", "sim-large"}}
	auto.setDefaults()
	cfg.Routes = map[string]Route{"auto": auto}
	for _, kp := range KnownProviders {
		if key := getenv(kp.EnvKey); key != "" {
			p := Provider{Name: kp.Name, Type: kp.Type, BaseURL: kp.BaseURL, APIKey: key}
			p.setDefaults()
			cfg.Providers = append(cfg.Providers, p)
		}
	}
	cfg.complete()
	return cfg
}
