package config

import "time"

// AdminKeyEnv is the variable that sets the admin key; it wins over the file.
const AdminKeyEnv = "TOLLGATE_ADMIN_KEY"

// Every default lives here.
const (
	DefaultListen         = "127.0.0.1:8080"
	DefaultDataDir        = "./data"
	DefaultMaxBodyBytes   = 4 << 20
	DefaultDrainTimeout   = 30 * time.Second
	DefaultRequestTimeout = 10 * time.Minute

	DefaultCacheTTL           = 24 * time.Hour
	DefaultCacheMaxBytes      = 64 << 20
	DefaultCacheSweepInterval = time.Minute
	// DefaultMaxTemperature is the providers' own default: only requests
	// asking for extra variety skip the cache.
	DefaultMaxTemperature = 1.0
	// DefaultSemanticThreshold is semcache.DefaultThreshold (the guard
	// does the rest); a test holds the two equal.
	DefaultSemanticThreshold = 0.70
)

// base is the configuration a YAML file is decoded over: every scalar
// default, no providers or models.
func base() *Config {
	return &Config{
		Listen:         DefaultListen,
		DataDir:        DefaultDataDir,
		MaxBodyBytes:   DefaultMaxBodyBytes,
		DrainTimeout:   Duration(DefaultDrainTimeout),
		RequestTimeout: Duration(DefaultRequestTimeout),
		DevKey:         true,
		Log:            Log{Level: "info", Format: "text", AccessLog: true},
		Cache: Cache{
			Enabled:        true,
			TTL:            Duration(DefaultCacheTTL),
			MaxBytes:       DefaultCacheMaxBytes,
			MaxTemperature: DefaultMaxTemperature,
			SweepInterval:  Duration(DefaultCacheSweepInterval),
			Semantic: Semantic{
				Enabled:   true,
				Threshold: DefaultSemanticThreshold,
				Turns:     1,
				Embedder:  "use",
				Index:     "embedded",
			},
		},
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
	{"anthropic", "anthropic", "ANTHROPIC_API_KEY", "https://api.anthropic.com"}, // native Messages API
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
	cfg.Providers = append(cfg.Providers, Provider{
		Name: "sim",
		Type: "sim",
		Sim: &Sim{
			Latency:         Latency{Dist: "fixed", P50: Duration(150 * time.Millisecond)},
			TTFT:            Latency{Dist: "fixed", P50: Duration(100 * time.Millisecond)},
			TokensPerSecond: 200,
		},
	})
	// The quick start shows cheapest-capable routing without an account.
	cfg.Routes = map[string]Route{"auto": {Strategy: "cheapest", Candidates: []string{"sim-small", "sim-large"}}}
	for _, kp := range KnownProviders {
		if key := getenv(kp.EnvKey); key != "" {
			cfg.Providers = append(cfg.Providers, Provider{Name: kp.Name, Type: kp.Type, BaseURL: kp.BaseURL, APIKey: key})
		}
	}
	return cfg
}
