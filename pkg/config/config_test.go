package config

import (
	"os"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestExampleFileIsValid(t *testing.T) {
	f, err := os.Open("../../tollgate.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg, err := Parse(f, env(map[string]string{"OPENAI_API_KEY": "sk-test"}))
	if err != nil {
		t.Fatalf("example config does not parse: %v", err)
	}
	if cfg.Providers[0].APIKey != "sk-test" {
		t.Fatalf("env reference not resolved: %q", cfg.Providers[0].APIKey)
	}
	if cfg.Providers[1].Sim.Latency.P50.Std() != 150*time.Millisecond {
		t.Fatalf("sim latency = %v", cfg.Providers[1].Sim.Latency)
	}
}

// TestComposeConfigIsValid: the config docker-compose.yml mounts is one the
// gateway accepts, with the Qdrant index switched on.
func TestComposeConfigIsValid(t *testing.T) {
	raw, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Configs map[string]struct{ Content string }
	}
	if err := yaml.Unmarshal(raw, &compose); err != nil {
		t.Fatal(err)
	}
	content := compose.Configs["tollgate-config"].Content
	if content == "" {
		t.Fatal("docker-compose.yml has no tollgate-config content")
	}
	cfg, err := Parse(strings.NewReader(content), env(map[string]string{"OPENAI_API_KEY": "sk-test"}))
	if err != nil {
		t.Fatalf("the compose config does not parse: %v", err)
	}
	if s := cfg.Cache.Semantic; !cfg.Cache.Enabled || !s.Enabled || s.Index != "qdrant" || s.Qdrant.URL != "http://qdrant:6334" {
		t.Fatalf("compose cache config: %+v", cfg.Cache)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		env  map[string]string
		want []string // each must appear in the error
	}{
		{"unknown field", "listen: 127.0.0.1:1\nlisten_addr: x\n", nil, []string{"field listen_addr not found"}},
		{"unknown nested field", "providers:\n  - name: a\n    type: sim\n    sim: {latncy: 1s}\n", nil, []string{"field latncy not found"}},
		{"bad url and missing type", "providers:\n  - {name: a, type: openai, base_url: 'not a url'}\n  - {name: b}\n", nil,
			[]string{"providers[0].base_url: not a URL", "providers[1].type: must not be empty"}},
		{"every problem reported", "listen: nope\nmax_body_bytes: 10\nlog: {level: loud}\n", nil,
			[]string{"listen: not a host:port", "max_body_bytes: must be at least 1024", "log.level: must be"}},
		{"unset env", "admin_key: env:NOPE_NOT_SET\n", nil, []string{"line 1: environment variable NOPE_NOT_SET is not set"}},
		{"bad duration", "drain_timeout: soon\n", nil, []string{`"soon" is not a duration`}},
		{"azure needs version", "providers:\n  - {name: az, type: azure, base_url: 'https://x.openai.azure.com'}\n", nil, []string{"providers[0].api_version: required for azure"}},
		{"duplicate provider", "providers:\n  - {name: a, type: sim}\n  - {name: a, type: sim}\n", nil, []string{`providers[1].name: duplicate provider name "a"`}},
		{"model with unknown provider", "models:\n  - {name: m, provider: nope}\n", nil, []string{`models[0].provider: no provider named "nope"`}},
		{"negative price", "models:\n  - {name: m, input_usd_per_mtok: -1}\n", nil, []string{"models[0].input_usd_per_mtok: price must not be negative"}},
		{"sim error kind", "providers:\n  - {name: s, type: sim, sim: {errors: [418]}}\n", nil, []string{`providers[0].sim.errors[0]: unknown error kind "418"`}},
		{"short admin key", "admin_key: short\n", nil, []string{"admin_key: must be at least 16 characters"}},
		{"route problems", "routes:\n  canary: {strategy: weighted, candidates: [a, b], weights: [95]}\n  odd: {strategy: fastest, candidates: []}\n", nil,
			[]string{"routes.canary.weights: weighted routes need one weight per candidate (2 candidates, 1 weights)", `routes.odd.strategy: must be cheapest, priority or weighted, got "fastest"`, "routes.odd.candidates: a route needs at least one candidate"}},
		{"route shadows model", "providers:\n  - {name: s, type: sim}\nmodels:\n  - {name: auto, provider: s}\nroutes:\n  auto: {candidates: [x]}\n", nil, []string{"routes.auto: a route alias may not have the name of a configured model"}},
		{"deployments", "providers:\n  - {name: s, type: sim}\nmodels:\n  - name: m\n    provider: s\n    deployments: [{provider: nope, weight: -1}]\n", nil,
			[]string{"models[0].deployments: set either provider/upstream_model or deployments", `models[0].deployments[0].provider: no provider named "nope"`, "models[0].deployments[0].weight: must not be negative"}},
		{"breaker and retry", "providers:\n  - {name: s, type: sim, breaker: {failure_ratio: 2}, retry: {max_attempts: 50, base: 2s, max: 1s}}\n", nil,
			[]string{"providers[0].breaker.failure_ratio: must be between 0 and 1", "providers[0].retry.max_attempts", "providers[0].retry: base and max"}},
		{"both key forms", "providers:\n  - {name: o, type: openai, base_url: 'http://h/v1', api_key: a, api_keys: [b]}\n", nil, []string{"providers[0].api_keys: set either api_key or api_keys"}},
		{"cache bounds", "cache: {ttl: 0s, max_bytes: -1, max_temperature: 3, route_max_temperature: {auto: -1}, sweep_interval: -1s}\n", nil,
			[]string{"cache.ttl: must be positive", "cache.max_bytes: must not be negative", "cache.max_temperature: must be between 0 and 2", "cache.route_max_temperature.auto", "cache.sweep_interval"}},
		{"cache tenants", "cache:\n  tenants: {team: [key_a, key_b], other: [key_a], empty: []}\n", nil,
			[]string{"cache.tenants.empty: lists no key ids", "is already in tenant"}},
		{"semantic settings", "cache:\n  semantic: {threshold: 1.2, turns: 0, embedder: bert, index: faiss}\n", nil,
			[]string{"cache.semantic.threshold", "cache.semantic.turns: must be at least 1", `cache.semantic.embedder: must be use, provider or hashed, got "bert"`, `cache.semantic.index: must be embedded or qdrant, got "faiss"`}},
		{"provider embedder needs a model", "cache:\n  semantic: {embedder: provider}\n", nil, []string{"cache.semantic.embedding_model"}},
		{"qdrant needs a URL", "cache:\n  semantic: {index: qdrant, qdrant: {quantization: pq}}\n", nil,
			[]string{"cache.semantic.qdrant.url: the qdrant index needs its gRPC URL", `cache.semantic.qdrant.quantization: must be scalar, binary or none, got "pq"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tt.yaml), env(tt.env))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
		})
	}
}

func TestParseValid(t *testing.T) {
	tests := []struct {
		name  string
		yaml  string
		env   map[string]string
		check func(t *testing.T, c *Config)
	}{
		{"empty file gives defaults", "", nil, func(t *testing.T, c *Config) {
			if c.Listen != DefaultListen || c.MaxBodyBytes != DefaultMaxBodyBytes || !c.DevKey || len(c.Providers) != 0 {
				t.Fatalf("%+v", c)
			}
		}},
		{"caches on by default", "", nil, func(t *testing.T, c *Config) {
			cc := c.Cache
			if !cc.Enabled || !cc.Semantic.Enabled || cc.TTL.Std() != DefaultCacheTTL || cc.Semantic.Threshold != DefaultSemanticThreshold ||
				cc.Semantic.Embedder != "use" || cc.Semantic.Index != "embedded" || cc.Semantic.Turns != 1 {
				t.Fatalf("%+v", cc)
			}
		}},
		{"a disabled cache is not checked", "cache: {enabled: false, ttl: 0s}\n", nil, func(t *testing.T, c *Config) {
			if c.Cache.Enabled {
				t.Fatal("enabled")
			}
		}},
		{"qdrant index", "cache:\n  semantic: {index: qdrant, qdrant: {url: 'http://qdrant:6334', api_key: env:QK}}\n", map[string]string{"QK": "secret"}, func(t *testing.T, c *Config) {
			if q := c.Cache.Semantic.Qdrant; q.URL != "http://qdrant:6334" || q.APIKey != "secret" || !c.Cache.Semantic.Enabled {
				t.Fatalf("%+v", c.Cache.Semantic)
			}
		}},
		{"admin key from env wins", "admin_key: from-file-0123456789\n", map[string]string{AdminKeyEnv: "from-env-0123456789"}, func(t *testing.T, c *Config) {
			if c.AdminKey != "from-env-0123456789" {
				t.Fatal(c.AdminKey)
			}
		}},
		{"latency distribution", "providers:\n  - name: s\n    type: sim\n    sim: {latency: {dist: lognormal, p50: 10ms, p99: 90ms}}\n", nil, func(t *testing.T, c *Config) {
			l := c.Providers[0].Sim.Latency
			if l.Dist != "lognormal" || l.P50.Std() != 10*time.Millisecond || l.P99.Std() != 90*time.Millisecond {
				t.Fatalf("%+v", l)
			}
		}},
		{"env value that looks like yaml stays a string", "providers:\n  - {name: o, type: openai, base_url: 'http://h/v1', api_key: env:K}\n", map[string]string{"K": "123: [x"}, func(t *testing.T, c *Config) {
			if c.Providers[0].APIKey != "123: [x" {
				t.Fatal(c.Providers[0].APIKey)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(strings.NewReader(tt.yaml), env(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func TestDefaultEnablesProvidersByEnv(t *testing.T) {
	c := Default(env(map[string]string{"OPENAI_API_KEY": "sk-1", "GROQ_API_KEY": "gq"}))
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range c.Providers {
		names = append(names, p.Name)
	}
	if got := strings.Join(names, ","); got != "sim,openai,groq" {
		t.Fatalf("providers = %s", got)
	}
	if r := c.Routes["auto"]; r.Strategy != "cheapest" || len(r.Candidates) != 2 {
		t.Fatalf("built-in auto route = %+v", r)
	}
	if c.Providers[1].APIKey != "sk-1" {
		t.Fatal("key not set")
	}
}
