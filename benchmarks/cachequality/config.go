package main

import (
	"bytes"
	"fmt"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/tollgate/tollgate/pkg/config"
)

// benchModel is the model every request asks for; its prices are flags.
const benchModel = "cachequality-model"

// prices are USD per million tokens, as the config writes them.
type prices struct {
	input, output float64
}

// baseConfig is the gateway's configuration before overrides: one
// OpenAI-type provider (the benchmark's upstream), one priced model, JSON
// logs (the benchmark reads which embedder loaded), no access log, and the
// caches on with every cache.semantic setting at the build's default.
func baseConfig(upstreamURL string, p prices) map[string]any {
	return map[string]any{
		"dev_key":       false,
		"drain_timeout": "5s",
		"log":           map[string]any{"level": "info", "format": "json", "access_log": false},
		"cache":         map[string]any{"enabled": true, "semantic": map[string]any{"enabled": true}},
		"providers": []any{map[string]any{
			"name": "upstream", "type": "openai", "base_url": upstreamURL, "api_key": upstreamKey,
			// A failed call is an error of the benchmark, not something to retry.
			"retry": map[string]any{"max_attempts": 1},
		}},
		"models": []any{map[string]any{
			"name": benchModel, "provider": "upstream", "upstream_model": "echo",
			"input_usd_per_mtok": p.input, "output_usd_per_mtok": p.output,
			"max_input_tokens": 128000, "max_output_tokens": 16384,
		}},
	}
}

// override is one "key=value" setting: a dotted path into the config
// (cache.semantic.threshold) and a YAML value (0.8, true, [a, b]).
type override struct {
	path  string
	value any
}

func (o override) String() string { return fmt.Sprintf("%s=%v", o.path, o.value) }

// parseOverride parses "path=value"; the value is read as YAML so that
// numbers, booleans and lists keep their types.
func parseOverride(s string) (override, error) {
	path, raw, ok := strings.Cut(s, "=")
	path = strings.TrimSpace(path)
	if !ok || path == "" {
		return override{}, fmt.Errorf("-set %q: want key=value, e.g. cache.semantic.threshold=0.8", s)
	}
	for _, part := range strings.Split(path, ".") {
		if part == "" {
			return override{}, fmt.Errorf("-set %q: empty key in %q", s, path)
		}
	}
	var v any
	if err := yaml.Unmarshal([]byte(raw), &v); err != nil {
		return override{}, fmt.Errorf("-set %q: the value is not YAML: %w", s, err)
	}
	return override{path: path, value: v}, nil
}

// apply sets the value in a tree of maps, creating maps on the way. Lists
// (providers, models) cannot be reached: the benchmark owns them.
func (o override) apply(tree map[string]any) error {
	keys := strings.Split(o.path, ".")
	m := tree
	for i, k := range keys[:len(keys)-1] {
		switch child := m[k].(type) {
		case map[string]any:
			m = child
		case nil:
			next := map[string]any{}
			m[k] = next
			m = next
		default:
			return fmt.Errorf("%s: %s is not a map of settings", o, strings.Join(keys[:i+1], "."))
		}
	}
	m[keys[len(keys)-1]] = o.value
	return nil
}

// gatewayConfig is one run's configuration, as written and as the gateway
// reads it.
type gatewayConfig struct {
	yaml []byte
	// semantic is every cache.semantic setting in force, defaults
	// included, flattened to dotted keys (qdrant's left out).
	semantic map[string]any
}

// buildConfig applies the overrides in order to tree (a fresh
// baseConfig, which it changes) and validates the result with pkg/config,
// exactly as the gateway will (an unknown key is an error naming it, with
// a suggestion).
func buildConfig(tree map[string]any, overrides []override) (*gatewayConfig, error) {
	for _, o := range overrides {
		if err := o.apply(tree); err != nil {
			return nil, err
		}
	}
	y, err := yaml.Marshal(tree)
	if err != nil {
		return nil, err
	}
	parsed, err := config.Parse(bytes.NewReader(y), func(string) string { return "" })
	if err != nil {
		return nil, fmt.Errorf("the gateway's config is invalid:\n%w", err)
	}
	// Marshalled back, the parsed config holds every value in force
	// without the benchmark naming fields this build may not have.
	back, err := yaml.Marshal(parsed.Cache.Semantic)
	if err != nil {
		return nil, err
	}
	var sem map[string]any
	if err := yaml.Unmarshal(back, &sem); err != nil {
		return nil, err
	}
	delete(sem, "qdrant")
	flat := map[string]any{}
	flatten("cache.semantic", sem, flat)
	return &gatewayConfig{yaml: y, semantic: flat}, nil
}

func flatten(prefix string, v any, out map[string]any) {
	m, ok := v.(map[string]any)
	if !ok {
		out[prefix] = v
		return
	}
	for k, x := range m {
		flatten(prefix+"."+k, x, out)
	}
}

// settingsLine lists the settings in force, sorted, for a report's header.
func settingsLine(s map[string]any) string {
	keys := make([]string, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		v := s[k]
		if str, ok := v.(string); ok && str == "" {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s=%v", strings.TrimPrefix(k, "cache.semantic."), v))
	}
	return strings.Join(parts, " ")
}
