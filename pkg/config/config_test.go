package config

import (
	"bytes"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// TestExampleFileIsValid: as shipped, the example needs no variable and
// configures only the simulator, and its auto route names only simulated
// models, so nothing leaves the machine; with its optional OpenAI blocks
// uncommented it is valid too.
func TestExampleFileIsValid(t *testing.T) {
	cfg := parseExample(t)
	if len(cfg.Providers) != 1 || cfg.Providers[0].Type != "sim" {
		t.Fatalf("providers as shipped: %+v", cfg.Providers)
	}
	if cfg.Providers[0].Sim.Latency.P50.Std() != 150*time.Millisecond {
		t.Fatalf("sim latency = %v", cfg.Providers[0].Sim.Latency)
	}
	for _, c := range cfg.Routes["auto"].Candidates {
		if !strings.HasPrefix(c, "sim-") {
			t.Errorf("the shipped auto route names %s, not a simulated model", c)
		}
	}
	with := parseExampleWithOpenAI(t)
	if with.Providers[0].Name != "openai" || with.Providers[0].APIKey != "sk-test" {
		t.Fatalf("env reference not resolved: %+v", with.Providers[0])
	}
	if len(with.Models) != 1 || with.Models[0].Provider != "openai" {
		t.Fatalf("models with OpenAI: %+v", with.Models)
	}
	if g := with.Guardrails; len(g.Guards) != 4 || !slices.Equal(g.Default, []string{"secrets"}) || len(with.Routes["auto"].Guards) != 2 || with.Routes["auto"].Enrich.Empty() {
		t.Fatalf("guardrails with the optional blocks uncommented: %+v, route auto %+v", g, with.Routes["auto"])
	}
	if g := cfg.Guardrails; g.Guards != nil || g.Default != nil || cfg.Routes["auto"].Guards != nil {
		t.Fatalf("guardrails as shipped: %+v", g)
	}
}

// TestComposeConfigIsValid: the config docker-compose.yml mounts in its
// replicas (deploy/compose/tollgate.yaml) is one the gateway accepts, with
// the shared store and the Qdrant index switched on.
func TestComposeConfigIsValid(t *testing.T) {
	f, err := os.Open("../../deploy/compose/tollgate.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const pgURL = "postgres://tollgate:secret@postgres:5432/tollgate?sslmode=disable"
	cfg, err := Parse(f, env(map[string]string{"OPENAI_API_KEY": "sk-test", "TOLLGATE_POSTGRES_URL": pgURL}))
	if err != nil {
		t.Fatalf("the compose config does not parse: %v", err)
	}
	if s := cfg.Cache.Semantic; !cfg.Cache.Enabled || !s.Enabled || s.Index != "qdrant" || s.Qdrant.URL != "http://qdrant:6334" {
		t.Fatalf("compose cache config: %+v", cfg.Cache)
	}
	if cfg.Store.Driver != "postgres" || cfg.Store.PostgresURL != pgURL {
		t.Fatalf("compose store: %s", cfg.Store)
	}
	// No provider key needed: the simulator alone without one, OpenAI too
	// with OPENAI_API_KEY.
	for _, tc := range []struct {
		name, key, want string
	}{{"no provider key", "", "sim"}, {"an OpenAI key", "sk-test", "sim,openai"}} {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := os.ReadFile("../../deploy/compose/tollgate.yaml")
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := Parse(bytes.NewReader(raw), env(map[string]string{"OPENAI_API_KEY": tc.key, "TOLLGATE_POSTGRES_URL": pgURL}))
			if err != nil {
				t.Fatalf("the compose config does not parse: %v", err)
			}
			var names []string
			for _, p := range cfg.Providers {
				names = append(names, p.Name)
			}
			if got := strings.Join(names, ","); got != tc.want {
				t.Fatalf("providers %s, want %s", got, tc.want)
			}
		})
	}
}

// TestParseErrors: every problem of a file is reported at once, one a line,
// each at the path the user wrote, in the order decoding (unknown fields,
// wrong types, unset variables) then validation finds them.
func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // the error's lines, exactly
	}{
		{"unknown field at the top", "listen: 127.0.0.1:1\nlisten_addr: x\n", []string{
			"listen_addr: unknown field",
		}},
		{"unknown field in a struct", "cache:\n  semantic: {treshold: 0.8}\n", []string{
			"cache.semantic.treshold: unknown field (did you mean threshold?)",
		}},
		{"unknown field in a list", "providers:\n  - {name: o, type: openai, bas_url: 'http://h/v1'}\n", []string{
			"providers[0].bas_url: unknown field (did you mean base_url?)",
			"providers[0].base_url: required, e.g. https://api.openai.com/v1",
		}},
		{"unknown field in a map", "routes:\n  fast: {candidatez: [gpt-4o-mini]}\n", []string{
			"routes.fast.candidatez: unknown field (did you mean candidates?)",
			"routes.fast.candidates: a route needs at least one candidate",
		}},
		{"unknown field under a shorthand", "providers:\n  - name: a\n    type: sim\n    sim: {latncy: 1s, ttft: {dst: fixed}}\n", []string{
			"providers[0].sim.latncy: unknown field (did you mean latency?)",
			"providers[0].sim.ttft.dst: unknown field (did you mean dist?)",
		}},
		{"every unknown field at once with the rest", "listen: nope\nlog: {levl: debug}\nproviders:\n  - {name: o, type: openai, baseURL: 'http://h/v1', api_key: k}\nroutes:\n  fast: {candidates: [o], stratgy: priority}\ncache:\n  semantic: {treshold: 0.8, qdrant: {colection: x}}\nbogus: 1\n", []string{
			"log.levl: unknown field (did you mean level?)",
			"providers[0].baseURL: unknown field (did you mean base_url?)",
			"routes.fast.stratgy: unknown field (did you mean strategy?)",
			"cache.semantic.treshold: unknown field (did you mean threshold?)",
			"cache.semantic.qdrant.colection: unknown field (did you mean collection?)",
			"bogus: unknown field",
			`listen: not a host:port address: "nope"`,
			"providers[0].base_url: required, e.g. https://api.openai.com/v1",
		}},
		{"wrong types", "max_body_bytes: lots\ndev_key: maybe\nlog: debug\nproviders: {name: a}\ncache:\n  max_temperature: [1]\n  semantic: {threshold: high, turns: 1.5}\n", []string{
			`max_body_bytes: must be an integer, got "lots"`,
			`dev_key: must be true or false, got "maybe"`,
			`log: must be a mapping of fields, got "debug"`,
			"providers: must be a list, got a mapping",
			"cache.max_temperature: must be a number, got a list",
			`cache.semantic.threshold: must be a number, got "high"`,
			`cache.semantic.turns: must be an integer, got "1.5"`,
		}},
		{"wrong types inside lists and maps", "providers:\n  - {name: s, type: sim, breaker: {consecutive_failures: -1, window: [60s]}}\nroutes:\n  auto: {candidates: gpt-4o-mini}\n", []string{
			`providers[0].breaker.consecutive_failures: must be a non-negative integer, got "-1"`,
			"providers[0].breaker.window: must be a duration (e.g. 30s, 5m), got a list",
			`routes.auto.candidates: must be a list, got "gpt-4o-mini"`,
		}},
		{"set twice", "listen: 127.0.0.1:1\nlisten: 127.0.0.1:2\n", []string{
			"listen: set twice",
		}},
		{"not a mapping", "- a\n- b\n", []string{
			"must be a mapping of fields, got a list",
		}},
		{"bad duration", "drain_timeout: soon\n", []string{
			`drain_timeout: must be a duration (e.g. 30s, 5m), got "soon"`,
		}},
		{"body read timeout not positive", "body_read_timeout: 0s\n", []string{
			"body_read_timeout: must be positive",
		}},
		{"bad latency", "providers:\n  - {name: s, type: sim, sim: {latency: fast}}\n", []string{
			`providers[0].sim.latency: must be a duration or {dist, p50, p99, min, max}, got "fast"`,
		}},
		{"unset env", "admin_key: env:NOPE_NOT_SET\n", []string{
			"admin_key: environment variable NOPE_NOT_SET is not set",
		}},
		{"unset env in a list", "providers:\n  - {name: o, type: openai, base_url: env:NOPE_URL}\n", []string{
			"providers[0].base_url: environment variable NOPE_URL is not set",
		}},
		{"bad url and missing type", "providers:\n  - {name: a, type: openai, base_url: 'not a url'}\n  - {name: b}\n", []string{
			`providers[0].base_url: not a URL: "not a url": the scheme must be http or https`,
			"providers[1].type: must not be empty (openai, azure, anthropic or sim)",
		}},
		{"provider urls", "providers:\n  - {name: a, type: openai, base_url: 'ftp://h/v1'}\n  - {name: b, type: anthropic, base_url: 'https:///v1'}\n  - {name: c, type: azure, api_version: v, base_url: 'https://x.openai.azure.com/?api-version=1'}\n  - {name: d, type: openai}\n", []string{
			`providers[0].base_url: not a URL: "ftp://h/v1": the scheme must be http or https`,
			`providers[1].base_url: not a URL: "https:///v1": no host`,
			`providers[2].base_url: must not carry a query or fragment: "https://x.openai.azure.com/?api-version=1"`,
			"providers[3].base_url: required, e.g. https://api.openai.com/v1",
		}},
		{"webhook urls", "budget:\n  webhooks: [{url: hooks.slack.com/x}, {url: ''}, {url: 'http://[::1'}]\n", []string{
			`budget.webhooks[0].url: not a URL: "hooks.slack.com/x": the scheme must be http or https`,
			"budget.webhooks[1].url: required, e.g. https://hooks.slack.com/services/...",
			`budget.webhooks[2].url: not a URL: "http://[::1"`,
		}},
		{"qdrant urls", "cache:\n  semantic: {index: qdrant, qdrant: {url: 'qdrant:6334'}}\n", []string{
			`cache.semantic.qdrant.url: not a URL: "qdrant:6334": the scheme must be http, https, grpc or grpcs`,
		}},
		{"qdrant url credentials", "cache:\n  semantic: {index: qdrant, qdrant: {url: 'http://u:p@qdrant:6334'}}\n", []string{
			"cache.semantic.qdrant.url: must not carry credentials (use api_key)",
		}},
		{"qdrant needs a url", "cache:\n  semantic: {index: qdrant, qdrant: {quantization: pq, timeout: 0s}}\n", []string{
			"cache.semantic.qdrant.url: required, e.g. http://qdrant:6334",
			`cache.semantic.qdrant.quantization: must be scalar, binary or none, got "pq"`,
			"cache.semantic.qdrant.timeout: must be positive, got 0s",
		}},
		{"every problem reported", "listen: nope\nmax_body_bytes: 10\nlog: {level: loud}\n", []string{
			`listen: not a host:port address: "nope"`,
			"max_body_bytes: must be at least 1024, got 10",
			`log.level: must be debug, info, warn or error, got "loud"`,
		}},
		{"azure needs version", "providers:\n  - {name: az, type: azure, base_url: 'https://x.openai.azure.com'}\n", []string{
			"providers[0].api_version: required for azure (e.g. 2024-10-21)",
		}},
		{"duplicate provider", "providers:\n  - {name: a, type: sim}\n  - {name: a, type: sim}\n", []string{
			`providers[1].name: duplicate provider name "a"`,
		}},
		{"model with unknown provider", "models:\n  - {name: m, provider: nope}\n", []string{
			`models[0].provider: no provider named "nope"`,
		}},
		{"negative price", "models:\n  - {name: m, input_usd_per_mtok: -1}\n", []string{
			"models[0].input_usd_per_mtok: price must not be negative",
		}},
		{"sim error kind", "providers:\n  - {name: s, type: sim, sim: {errors: [418]}}\n", []string{
			`providers[0].sim.errors[0]: unknown error kind "418" (429, 500, 503, timeout, stream_cut)`,
		}},
		{"short admin key", "admin_key: short\n", []string{
			"admin_key: must be at least 16 characters",
		}},
		{"route problems", "routes:\n  canary: {strategy: weighted, candidates: [a, b], weights: [95]}\n  odd: {strategy: fastest, candidates: [], expected_output_tokens: 0, on_exhausted: never}\n", []string{
			"routes.canary.weights: weighted routes need one weight per candidate (2 candidates, 1 weights)",
			`routes.odd.strategy: must be cheapest, priority or weighted, got "fastest"`,
			"routes.odd.candidates: a route needs at least one candidate",
			`routes.odd.on_exhausted: must be reject or downgrade, got "never"`,
			"routes.odd.expected_output_tokens: must be at least 1, got 0",
		}},
		{"route shadows model", "providers:\n  - {name: s, type: sim}\nmodels:\n  - {name: auto, provider: s}\nroutes:\n  auto: {candidates: [x]}\n", []string{
			"routes.auto: a route alias may not have the name of a configured model",
		}},
		{"deployments", "providers:\n  - {name: s, type: sim}\nmodels:\n  - name: m\n    provider: s\n    deployments: [{provider: nope, weight: 0}]\n", []string{
			"models[0].deployments: set either provider/upstream_model or deployments, not both",
			`models[0].deployments[0].provider: no provider named "nope"`,
			"models[0].deployments[0].weight: must be at least 1, got 0",
		}},
		{"breaker and retry", "providers:\n  - {name: s, type: sim, breaker: {failure_ratio: 2, cooldown: 0s}, retry: {max_attempts: 50, base: 2s, max: 1s}}\n", []string{
			"providers[0].breaker.failure_ratio: must be greater than 0 and at most 1, got 2",
			"providers[0].breaker.cooldown: must be positive, got 0s",
			"providers[0].retry.max_attempts: must be between 1 and 10 (1: no retries), got 50",
			"providers[0].retry.max: must be at least base (2s), got 1s",
		}},
		{"stream and answer bounds", "write_timeout: 0s\nproviders:\n  - {name: o, type: openai, base_url: 'http://h/v1', stream_idle_timeout: -1s, ttft_timeout: -1s, max_response_bytes: 10, max_event_bytes: 4096, max_stream_bytes: 2048}\n  - {name: s, type: sim, max_event_bytes: 100, max_stream_bytes: 0}\n  - {name: t, type: sim, max_event_bytes: 0, max_stream_bytes: 0}\n  - {name: u, type: sim, max_event_bytes: 67108865, max_stream_bytes: 0}\nroutes:\n  fast: {candidates: [m], stream_idle_timeout: -5s}\n", []string{
			"write_timeout: must be positive",
			"providers[0].stream_idle_timeout: must not be negative (0: none)",
			"providers[0].ttft_timeout: must not be negative (0: none of its own)",
			"providers[0].max_response_bytes: must be at least 1024 (0: the default), got 10",
			"providers[0].max_stream_bytes: must be at least max_event_bytes (4096), got 2048",
			"providers[1].max_event_bytes: must be at least 1024 (0: the default), got 100",
			"providers[3].max_stream_bytes: must be at least max_event_bytes (67108865), got 67108864",
			"routes.fast.stream_idle_timeout: must not be negative (0: the provider's)",
		}},
		{"both key forms", "providers:\n  - {name: o, type: openai, base_url: 'http://h/v1', api_key: a, api_keys: [b]}\n", []string{
			"providers[0].api_keys: set either api_key or api_keys, not both",
		}},
		{"max_tokens_field", "providers:\n  - {name: o, type: openai, base_url: 'http://h/v1', max_tokens_field: tokens}\n  - {name: s, type: sim, max_tokens_field: max_tokens}\n", []string{
			`providers[0].max_tokens_field: must be max_tokens or max_completion_tokens, got "tokens"`,
			"providers[1].max_tokens_field: only for providers of type openai or azure",
		}},
		{"responses_api", "providers:\n  - {name: a, type: anthropic, base_url: 'http://h/v1', responses_api: true}\n  - {name: z, type: azure, api_version: v, base_url: 'https://x.openai.azure.com', responses_api: true}\n", []string{
			"providers[0].responses_api: only for providers of type openai (Azure's /openai/v1 surface is one)",
			"providers[1].responses_api: only for providers of type openai (Azure's /openai/v1 surface is one)",
		}},
		{"cache bounds", "cache: {ttl: 0s, max_bytes: 0, max_temperature: 3, route_max_temperature: {auto: -1}, sweep_interval: -1s}\n", []string{
			"cache.ttl: must be positive",
			"cache.max_bytes: must be positive",
			"cache.max_temperature: must be between 0 and 2, got 3",
			"cache.route_max_temperature.auto: must be between 0 and 2, got -1",
			"cache.sweep_interval: must not be negative",
		}},
		{"cache tenants", "cache:\n  tenants: {team: [key_a, key_b], other: [key_a], empty: []}\n", []string{
			"cache.tenants.empty: lists no key ids",
			"cache.tenants.team[0]: key key_a is already in tenant other: a key belongs to one tenant",
		}},
		{"semantic settings", "cache:\n  semantic: {threshold: 1.2, turns: 0, embedder: bert, index: faiss}\n", []string{
			"cache.semantic.threshold: must be greater than 0 and at most 1, got 1.2",
			"cache.semantic.turns: must be at least 1",
			`cache.semantic.embedder: must be use, provider or hashed, got "bert"`,
			`cache.semantic.index: must be embedded or qdrant, got "faiss"`,
		}},
		{"unaligned threshold out of range", "cache:\n  semantic: {unaligned_threshold: 1.5}\n", []string{
			"cache.semantic.unaligned_threshold: must be greater than 0 and at most 1.01 (above 1: never), got 1.5",
		}},
		{"unaligned threshold below the threshold", "cache:\n  semantic: {threshold: 0.8, unaligned_threshold: 0.75}\n", []string{
			"cache.semantic.unaligned_threshold: must be at least threshold (0.8): an unaligned candidate is never served more easily than an aligned one, got 0.75",
		}},
		{"judge settings", "cache:\n  semantic: {verify: {model: judge, min_similarity: 1.5, timeout: 0s}}\n", []string{
			"cache.semantic.verify.min_similarity: must be greater than 0 and at most 1 (0: the threshold), got 1.5",
			"cache.semantic.verify.timeout: must be positive, got 0s",
		}},
		{"route threshold out of range", "cache:\n  semantic: {routes: {faq: {threshold: 1.2}}}\n", []string{
			"cache.semantic.routes.faq.threshold: must be greater than 0 and at most 1 (0: cache.semantic.threshold), got 1.2",
		}},
		{"route unaligned threshold below the route's floor", "cache:\n  semantic: {routes: {faq: {threshold: 0.9, unaligned_threshold: 0.85}}}\n", []string{
			"cache.semantic.routes.faq.unaligned_threshold: must be at least the route's threshold (0.9), got 0.85",
		}},
		{"route unaligned threshold below the default floor", "cache:\n  semantic: {threshold: 0.6, routes: {faq: {unaligned_threshold: 0.55}}}\n", []string{
			"cache.semantic.routes.faq.unaligned_threshold: must be at least the route's threshold (0.6), got 0.55",
		}},
		{"a judge that is never asked", "cache:\n  semantic: {unaligned_threshold: 0.9, verify: {model: judge, min_similarity: 0.95}}\n", []string{
			"cache.semantic.verify.min_similarity: must be below unaligned_threshold (0.9), or the judge is never asked, got 0.95",
		}},
		{"provider embedder needs a model", "cache:\n  semantic: {embedder: provider}\n", []string{
			"cache.semantic.embedding_model: the provider embedder needs an embeddings model this gateway serves",
		}},
		{"otel endpoint not a URL", "otel: {endpoint: 'collector:4318'}\n", []string{
			`otel.endpoint: not a URL: "collector:4318": the scheme must be http or https`,
		}},
		{"otel endpoint without host", "otel: {endpoint: 'http://'}\n", []string{
			`otel.endpoint: not a URL: "http://": no host`,
		}},
		{"otel settings", "otel: {endpoint: 'https://u:p@collector:4318', service_name: '', sample_ratio: 1.5, headers: {'bad name': x}}\n", []string{
			"otel.endpoint: must not carry credentials (use api_key)",
			`otel.headers: invalid header name "bad name"`,
			"otel.service_name: must not be empty",
			"otel.sample_ratio: must be between 0 and 1, got 1.5",
		}},
		{"otel unknown field", "otel: {endpont: 'http://c:4318'}\n", []string{
			"otel.endpont: unknown field (did you mean endpoint?)",
		}},
		{"budget settings", "budget: {timezone: Mars/Olympus, defaults: {on_exhausted: beg}}\n", []string{
			`budget.timezone: unknown time zone "Mars/Olympus"`,
			`budget.defaults.on_exhausted: must be reject or downgrade, got "beg"`,
		}},
		{"guard fields", "guardrails:\n  scan_limit_bytes: 10\n  guards:\n" +
			"    - {name: pii, detectors: [email, phon, email], action: mask, directions: [request, out, request]}\n" +
			"    - {name: ticket, regex: 'TCK-(', action: log}\n" +
			"    - {name: Bad-Name, words: [], action: drop}\n" +
			"    - {name: pii, detectors: [ip], action: log, directions: [answer], unmask_answers: true}\n" +
			"    - {name: nothing, action: log, directions: []}\n" +
			"    - {name: both, regex: x, words: [y], action: log}\n" +
			"    - {name: blank, regex: 'a*', action: log}\n" +
			"    - {name: email, detectors: [email], regex: 'x@y', action: log}\n" +
			"    - {name: secrets, detectors: [secret], case_insensitive: true}\n" +
			"    - {name: w, words: ['-x'], action: mask, directions: [answer], unmask_answers: true}\n", []string{
			"guardrails.scan_limit_bytes: must be at least 1024, got 10",
			`guardrails.guards[0].directions[1]: must be request or answer, got "out"`,
			"guardrails.guards[0].directions[2]: request listed twice",
			`guardrails.guards[0].detectors[1]: unknown detector "phon" (did you mean phone?) (built-in: card, email, iban, ip, phone, secret, us_ssn)`,
			`guardrails.guards[0].detectors[2]: detector "email" listed twice`,
			"guardrails.guards[1].regex: error parsing regexp: missing closing ): `TCK-(`",
			`guardrails.guards[2].name: must be 1 to 32 lower-case letters, digits or '_', got "Bad-Name"`,
			`guardrails.guards[2].action: must be block, mask or log, got "drop"`,
			"guardrails.guards[2].words: empty word list",
			`guardrails.guards[3].name: duplicate guard name "pii"`,
			"guardrails.guards[3].unmask_answers: only with action mask on requests (it restores what the request's masking replaced)",
			"guardrails.guards[4].directions: must name request, answer or both",
			"guardrails.guards[4]: looks for nothing: set detectors, regex or words",
			"guardrails.guards[5].words: set either regex or words, not both: make them two guards",
			"guardrails.guards[6].regex: pattern matches the empty string",
			"guardrails.guards[7].name: a guard with regex or words may not be named after one of its detectors (email)",
			`guardrails.guards[8].action: must be block, mask or log, got ""`,
			"guardrails.guards[8].case_insensitive: only with words (a regex says (?i) itself)",
			"guardrails.guards[9].unmask_answers: only with action mask on requests (it restores what the request's masking replaced)",
			`guardrails.guards[9].words: entry "-x" must start and end with a letter or digit`,
		}},
		{"guard lists", "guardrails:\n  default: [pii, contacts]\n  guards:\n" +
			"    - {name: pii, detectors: [email, phone], action: mask}\n    - {name: contacts, detectors: [email], action: log}\n" +
			"    - {name: ticket, regex: 'TCK-(', action: log}\n" +
			"routes:\n  support: {candidates: [m], guards: [pi, ticket, pii, pii]}\n  sales: {candidates: [m], guards: [contacts, pii]}\n  none: {candidates: [m], guards: []}\n", []string{
			"guardrails.guards[2].regex: error parsing regexp: missing closing ): `TCK-(`",
			"guardrails.default: guards pii and contacts both look for email",
			"routes.sales.guards: guards contacts and pii both look for email",
			`routes.support.guards[0]: no guard named "pi" (did you mean pii?)`,
			"routes.support.guards[3]: guard pii listed twice",
		}},
		{"enrichment", "routes:\n  support:\n    candidates: [m]\n    enrich:\n" +
			"      prepend: [{role: admin, content: 'Hi {{key_nam}}'}, {role: system, content: ''}]\n" +
			"      append: [{role: user, content: 'Today {{date'}, {role: developer, content: '{{ customer }} {{nope}}'}]\n", []string{
			`routes.support.enrich.prepend[0].role: must be system, developer or user, got "admin"`,
			"routes.support.enrich.prepend[0].content: unknown field {{key_nam}} (did you mean key_name?) (known: key_name, key_id, customer, date, route, model)",
			"routes.support.enrich.prepend[1].content: must not be empty",
			"routes.support.enrich.append[0].content: unclosed {{",
			"routes.support.enrich.append[1].content: unknown field {{nope}} (known: key_name, key_id, customer, date, route, model)",
		}},
		{"guardrails unknown fields", "guardrails:\n  scan_limit_byte: 2048\n  guards: [{name: x, detector: [email], action: log}]\nroutes:\n  r: {candidates: [m], guard: [x], enrich: {prepnd: []}}\n", []string{
			"guardrails.scan_limit_byte: unknown field (did you mean scan_limit_bytes?)",
			"guardrails.guards[0].detector: unknown field (did you mean detectors?)",
			"routes.r.guard: unknown field (did you mean guards?)",
			"routes.r.enrich.prepnd: unknown field (did you mean prepend?)",
			"guardrails.guards[0]: looks for nothing: set detectors, regex or words",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tt.yaml), env(nil))
			if err == nil {
				t.Fatal("no error")
			}
			if got, want := err.Error(), strings.Join(tt.want, "\n"); got != want {
				t.Errorf("error:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

// TestSyntaxErrorsKeepTheirLine: a file that is not YAML has no paths yet;
// the parser's line is all there is.
func TestSyntaxErrorsKeepTheirLine(t *testing.T) {
	_, err := Parse(strings.NewReader("listen: 127.0.0.1:1\nlog: {level: info\n"), nil)
	if err == nil || !strings.Contains(err.Error(), "line") {
		t.Fatalf("error %v, want one naming the line", err)
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
			if c.Listen != DefaultListen || c.MaxBodyBytes != DefaultMaxBodyBytes || !c.DevKey || len(c.Providers) != 1 || c.Providers[0].Name != "sim" {
				t.Fatalf("%+v", c)
			}
		}},
		{"otel off by default", "", nil, func(t *testing.T, c *Config) {
			if c.Otel.Endpoint != "" || c.Otel.ServiceName != DefaultOtelServiceName || c.Otel.SampleRatio != DefaultOtelSampleRatio {
				t.Fatalf("%+v", c.Otel)
			}
		}},
		{"otel from the file", "otel: {endpoint: 'http://collector:4318', headers: {x-api-key: env:OTK}, sample_ratio: 0.25}\n",
			map[string]string{"OTK": "s3cret", OtelEndpointEnv: "http://other:4318"}, func(t *testing.T, c *Config) {
				if c.Otel.Endpoint != "http://collector:4318" || c.Otel.Headers["x-api-key"] != "s3cret" || c.Otel.SampleRatio != 0.25 {
					t.Fatalf("%+v", c.Otel)
				}
			}},
		{"otel endpoint from the standard variable", "log: {level: info}\n", map[string]string{OtelEndpointEnv: "http://collector:4318"}, func(t *testing.T, c *Config) {
			if c.Otel.Endpoint != "http://collector:4318" {
				t.Fatalf("%+v", c.Otel)
			}
		}},
		{"max_tokens_field", "providers:\n  - {name: a, type: openai, base_url: 'http://h/v1', max_tokens_field: max_tokens}\n  - {name: b, type: azure, api_version: v, base_url: 'https://x.openai.azure.com'}\n", nil, func(t *testing.T, c *Config) {
			if c.Providers[0].MaxTokensField != "max_tokens" || c.Providers[1].MaxTokensField != "" {
				t.Fatalf("%q %q", c.Providers[0].MaxTokensField, c.Providers[1].MaxTokensField)
			}
		}},
		{"responses_api", "providers:\n  - {name: a, type: openai, base_url: 'http://h/v1', responses_api: true}\n  - {name: b, type: openai, base_url: 'https://api.openai.com/v1', responses_api: false}\n  - {name: c, type: openai, base_url: 'https://api.openai.com/v1'}\n", nil, func(t *testing.T, c *Config) {
			if p := c.Providers; p[0].ResponsesAPI == nil || !*p[0].ResponsesAPI || p[1].ResponsesAPI == nil || *p[1].ResponsesAPI || p[2].ResponsesAPI != nil {
				t.Fatalf("%v %v %v", p[0].ResponsesAPI, p[1].ResponsesAPI, p[2].ResponsesAPI)
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
		{"stream bounds: defaults, explicit values, 0 idle means none", "providers:\n  - {name: a, type: openai, base_url: 'http://h/v1'}\n  - {name: b, type: openai, base_url: 'http://h/v1', stream_idle_timeout: 0s, ttft_timeout: 5s, max_response_bytes: 2048, max_event_bytes: 4096, max_stream_bytes: 8192}\nroutes:\n  fast: {candidates: [m], stream_idle_timeout: 2m}\nwrite_timeout: 5s\n", nil, func(t *testing.T, c *Config) {
			a, b := c.Providers[0], c.Providers[1]
			if a.StreamIdleTimeout.Std() != DefaultStreamIdleTimeout || a.TTFTTimeout != 0 || a.MaxResponseBytes != DefaultMaxResponseBytes ||
				a.MaxEventBytes != DefaultMaxEventBytes || a.MaxStreamBytes != DefaultMaxStreamBytes {
				t.Errorf("defaults: %+v", a)
			}
			if b.StreamIdleTimeout != 0 || b.TTFTTimeout.Std() != 5*time.Second || b.MaxResponseBytes != 2048 || b.MaxEventBytes != 4096 || b.MaxStreamBytes != 8192 {
				t.Errorf("explicit: %+v", b)
			}
			if r := c.Routes["fast"]; r.StreamIdleTimeout.Std() != 2*time.Minute {
				t.Errorf("route: %+v", r)
			}
			if c.WriteTimeout.Std() != 5*time.Second {
				t.Errorf("write_timeout %v", c.WriteTimeout)
			}
		}},
		{"max_temperature 0 means 0", "cache: {max_temperature: 0, route_max_temperature: {creative: 0}}\n", nil, func(t *testing.T, c *Config) {
			if c.Cache.MaxTemperature != 0 {
				t.Fatalf("max_temperature = %v, want 0", c.Cache.MaxTemperature)
			}
			if v, ok := c.Cache.RouteMaxTemperature["creative"]; !ok || v != 0 {
				t.Fatalf("route_max_temperature = %v", c.Cache.RouteMaxTemperature)
			}
		}},
		{"explicit values win, the rest keep their defaults", "providers:\n  - {name: s, type: sim, breaker: {failure_ratio: 0.3}}\n  - {name: t, type: sim, retry: {max_attempts: 1}}\n" +
			"models:\n  - {name: m, deployments: [{provider: s}, {provider: t, weight: 3}]}\nroutes:\n  fast: {candidates: [m]}\n  slow: {candidates: [m], strategy: priority, expected_output_tokens: 64}\n" +
			"budget: {defaults: {rpm: 0, budgets: [{period: daily, limit_usd: '1'}, {period: monthly, limit_usd: '9', alert_thresholds: []}]}}\n", nil, func(t *testing.T, c *Config) {
			wantBreaker := DefaultBreaker()
			wantBreaker.FailureRatio = 0.3
			wantRetry := DefaultRetry()
			wantRetry.MaxAttempts = 1
			if *c.Providers[0].Breaker != wantBreaker || *c.Providers[0].Retry != DefaultRetry() {
				t.Errorf("provider s: breaker %+v retry %+v", *c.Providers[0].Breaker, *c.Providers[0].Retry)
			}
			if *c.Providers[1].Breaker != DefaultBreaker() || *c.Providers[1].Retry != wantRetry {
				t.Errorf("provider t: breaker %+v retry %+v", *c.Providers[1].Breaker, *c.Providers[1].Retry)
			}
			if d := c.Models[0].Deployments; d[0].Weight != DefaultDeploymentWeight || d[1].Weight != 3 {
				t.Errorf("deployments %+v", d)
			}
			if r := c.Routes["fast"]; r.Strategy != DefaultStrategy || r.ExpectedOutputTokens != DefaultExpectedOutputTokens || r.OnExhausted != DefaultOnExhausted {
				t.Errorf("route fast %+v", r)
			}
			if r := c.Routes["slow"]; r.Strategy != "priority" || r.ExpectedOutputTokens != 64 {
				t.Errorf("route slow %+v", r)
			}
			b := c.Budget.Defaults.Budgets
			if fmt.Sprint(b[0].AlertThresholds) != fmt.Sprint(DefaultAlertThresholds()) || b[1].AlertThresholds == nil || len(b[1].AlertThresholds) != 0 {
				t.Errorf("alert thresholds %v and %#v: want the defaults, then none", b[0].AlertThresholds, b[1].AlertThresholds)
			}
		}},
		{"defaults that depend on other fields", "providers:\n  - {name: a, type: anthropic}\ncache:\n  semantic: {embedder: hashed}\n", nil, func(t *testing.T, c *Config) {
			if c.Providers[0].BaseURL != DefaultAnthropicBaseURL || c.Cache.Semantic.Dimensions != DefaultHashedDimensions {
				t.Fatalf("base_url %q dimensions %d", c.Providers[0].BaseURL, c.Cache.Semantic.Dimensions)
			}
		}},
		{"the judge asks from the threshold by default", "cache:\n  semantic: {threshold: 0.8, verify: {model: gpt-4o-mini}}\n", nil, func(t *testing.T, c *Config) {
			if v := c.Cache.Semantic.Verify; v.MinSimilarity != 0.8 || v.Timeout.Std() != DefaultVerifyTimeout || c.Cache.Semantic.UnalignedThreshold != DefaultUnalignedThreshold {
				t.Fatalf("verify %+v, unaligned %v", v, c.Cache.Semantic.UnalignedThreshold)
			}
		}},
		{"no judge by default", "", nil, func(t *testing.T, c *Config) {
			if v := c.Cache.Semantic.Verify; v.Model != "" || v.MinSimilarity != 0 {
				t.Fatalf("verify %+v", v)
			}
		}},
		{"null keeps the defaults", "cache:\n  semantic:\nproviders:\n  - {name: s, type: sim, breaker: ~}\n", nil, func(t *testing.T, c *Config) {
			if s := c.Cache.Semantic; !s.Enabled || s.Threshold != DefaultSemanticThreshold || *c.Providers[0].Breaker != DefaultBreaker() {
				t.Fatalf("%+v %+v", s, c.Providers[0].Breaker)
			}
		}},
		{"env values take the field's type", "max_body_bytes: env:MB\nrequest_timeout: env:RT\ndev_key: env:DK\ncache: {semantic: {threshold: env:TH}}\n",
			map[string]string{"MB": "2048", "RT": "90s", "DK": "false", "TH": "0.8"}, func(t *testing.T, c *Config) {
				if c.MaxBodyBytes != 2048 || c.RequestTimeout.Std() != 90*time.Second || c.DevKey || c.Cache.Semantic.Threshold != 0.8 {
					t.Fatalf("%d %v %v %v", c.MaxBodyBytes, c.RequestTimeout.Std(), c.DevKey, c.Cache.Semantic.Threshold)
				}
			}},
		{"anchors and merge keys", "providers:\n  - &s {name: a, type: sim, retry: {max_attempts: 2}}\n  - <<: *s\n    name: b\n", nil, func(t *testing.T, c *Config) {
			if p := c.Providers[1]; p.Name != "b" || p.Type != "sim" || p.Retry.MaxAttempts != 2 || p.Retry.Base != DefaultRetry().Base {
				t.Fatalf("%+v %+v", p, p.Retry)
			}
		}},
		{"guardrails", "guardrails:\n  scan_limit_bytes: 65536\n  default: [secrets]\n  guards:\n" +
			"    - {name: pii, detectors: [email, phone, card, iban, us_ssn, ip], action: mask, unmask_answers: true}\n" +
			"    - {name: secrets, detectors: [secret], action: block, directions: [request]}\n" +
			"    - {name: ticket, regex: 'TCK-[0-9]{6}', action: log, directions: [answer]}\n" +
			"    - {name: banned, words: [foo, bar], case_insensitive: true, action: block}\n" +
			"routes:\n  support:\n    candidates: [m]\n    guards: [pii, secrets, ticket, banned]\n    enrich:\n" +
			"      prepend: [{role: system, content: 'You serve customers of {{key_name}}. Today is {{ date }}.'}]\n" +
			"      append: [{role: user, content: Answer in English.}]\n" +
			"  open: {candidates: [m], guards: []}\n  plain: {candidates: [m]}\n", nil, func(t *testing.T, c *Config) {
			want := Guardrails{ScanLimitBytes: 65536, Default: []string{"secrets"}, Guards: []Guard{
				{Name: "pii", Detectors: []string{"email", "phone", "card", "iban", "us_ssn", "ip"}, Action: "mask", Directions: []string{"request", "answer"}, UnmaskAnswers: true},
				{Name: "secrets", Detectors: []string{"secret"}, Action: "block", Directions: []string{"request"}},
				{Name: "ticket", Regex: "TCK-[0-9]{6}", Action: "log", Directions: []string{"answer"}},
				{Name: "banned", Words: []string{"foo", "bar"}, CaseInsensitive: true, Action: "block", Directions: []string{"request", "answer"}},
			}}
			if !reflect.DeepEqual(c.Guardrails, want) {
				t.Errorf("guardrails\n%+v\nwant\n%+v", c.Guardrails, want)
			}
			wantEnrich := Enrich{
				Prepend: []EnrichMessage{{Role: "system", Content: "You serve customers of {{key_name}}. Today is {{ date }}."}},
				Append:  []EnrichMessage{{Role: "user", Content: "Answer in English."}},
			}
			if r := c.Routes["support"]; !slices.Equal(r.Guards, []string{"pii", "secrets", "ticket", "banned"}) || !reflect.DeepEqual(r.Enrich, wantEnrich) {
				t.Errorf("route support: guards %v enrich %+v", r.Guards, r.Enrich)
			}
			// [] is no guards; unset is the default list.
			if open, plain := c.Routes["open"], c.Routes["plain"]; open.Guards == nil || len(open.Guards) != 0 || plain.Guards != nil || !plain.Enrich.Empty() {
				t.Errorf("route open guards %#v, route plain guards %#v enrich %+v", open.Guards, plain.Guards, plain.Enrich)
			}
			spec := c.Guardrails.Guards[2].Spec()
			if spec.Request || !spec.Answer || spec.Regex != "TCK-[0-9]{6}" || spec.Name != "ticket" {
				t.Errorf("ticket's spec %+v", spec)
			}
		}},
		{"no guardrails by default", "", nil, func(t *testing.T, c *Config) {
			if g := c.Guardrails; g.ScanLimitBytes != DefaultGuardScanLimit || g.Default != nil || g.Guards != nil {
				t.Fatalf("%+v", g)
			}
		}},
		{"qdrant over grpcs", "cache:\n  semantic: {index: qdrant, qdrant: {url: 'grpcs://qdrant.example:6334'}}\n", nil, func(t *testing.T, c *Config) {
			if q := c.Cache.Semantic.Qdrant; q.Quantization != DefaultQdrantQuantization || q.Timeout.Std() != DefaultQdrantTimeout {
				t.Fatalf("%+v", q)
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

// TestFileKeepsBuiltinProvidersUnlessItConfiguresThem: a file without a
// providers key serves what the built-in defaults serve (the simulator,
// the providers enabled by their key variables, and the auto route when
// the file has no routes); `providers: []` serves nothing.
func TestFileKeepsBuiltinProvidersUnlessItConfiguresThem(t *testing.T) {
	tests := []struct {
		name      string
		yaml      string
		env       map[string]string
		providers string // names, in order
		routes    string // names, sorted
	}{
		{"only logging", "log: {level: debug}\n", nil, "sim", "auto"},
		{"only logging, a key variable set", "log: {level: debug}\n", map[string]string{"OPENAI_API_KEY": "sk-1"}, "sim,openai", "auto"},
		{"routes without providers", "routes: {small: {candidates: [sim-small]}}\n", nil, "sim", "small"},
		{"providers: null is not configuring them", "providers:\n", nil, "sim", "auto"},
		{"providers: [] serves nothing", "providers: []\n", nil, "", ""},
		{"configured providers only", "providers: [{name: s2, type: sim}]\n", map[string]string{"OPENAI_API_KEY": "sk-1"}, "s2", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(strings.NewReader(tt.yaml), env(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			var names, routes []string
			for _, p := range c.Providers {
				names = append(names, p.Name)
			}
			for r := range c.Routes {
				routes = append(routes, r)
			}
			slices.Sort(routes)
			if got := strings.Join(names, ","); got != tt.providers {
				t.Errorf("providers %q, want %q", got, tt.providers)
			}
			if got := strings.Join(routes, ","); got != tt.routes {
				t.Errorf("routes %q, want %q", got, tt.routes)
			}
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
	for _, p := range c.Providers {
		if p.Breaker == nil || *p.Breaker != DefaultBreaker() || p.Retry == nil || *p.Retry != DefaultRetry() {
			t.Fatalf("provider %s has no default breaker and retry", p.Name)
		}
	}
	if r := c.Routes["auto"]; r.ExpectedOutputTokens != DefaultExpectedOutputTokens || r.OnExhausted != DefaultOnExhausted {
		t.Fatalf("built-in auto route without its defaults: %+v", r)
	}
}

// FuzzParse: no input makes Parse panic, and an accepted config validates.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"", "listen: 127.0.0.1:1\n", "providers:\n  - &p {name: a, type: sim}\n  - <<: *p\n    name: b\n",
		"routes: {auto: {candidates: [a], weights: [1]}}\n", "cache: {semantic: {threshold: env:T}}\n",
		"a: &a [*a]\n", "<<: {listen: 'x:1'}\n", "providers: [{<<: [{name: a}, 3]}]\n", "{? [a]: b}\n",
		"guardrails: {default: [g], guards: [{name: g, regex: 'a(', words: [x], action: log}]}\nroutes: {r: {candidates: [a], enrich: {append: [{role: user, content: '{{x'}]}}}\n",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		c, err := Parse(strings.NewReader(in), env(map[string]string{"T": "0.8"}))
		if err == nil {
			if err := c.Validate(); err != nil {
				t.Fatalf("Parse accepted a config Validate refuses: %v", err)
			}
		}
	})
}
