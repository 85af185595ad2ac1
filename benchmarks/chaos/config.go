package main

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tollgate/tollgate/pkg/config"
)

// upstreamAPIKey is what the gateway sends the hostile upstream; the
// upstream checks it, so a request that reached it came through the
// configured provider.
const upstreamAPIKey = "chaos-upstream-key"

// Model names and their prices. Prices are whole micro-dollars per token so
// that costs and reservations are exact integers.
const (
	chaosModel      = "chaos-model"     // 1 µ$ per input token, 2 per output token, 16,384 output tokens at most
	unboundedModel  = "chaos-unbounded" // the same prices, no context window and no output limit
	inMicrosPerTok  = 1
	outMicrosPerTok = 2
)

// baseConfig is the configuration every probe starts from: one OpenAI-type
// provider pointing at the probe's hostile upstream, the chaos models, the
// access log on in JSON (the suite reads it), the exact cache on (it keeps
// a stream's chunks, which is part of what a hostile stream can grow) and
// the semantic cache off (it would fetch the embedder's weights).
func baseConfig(upstreamURL string) map[string]any {
	model := func(name string, bounded bool) map[string]any {
		m := map[string]any{
			"name": name, "provider": "hostile", "upstream_model": "chaos-upstream",
			"input_usd_per_mtok": inMicrosPerTok, "output_usd_per_mtok": outMicrosPerTok,
			"streaming": true, "tools": true,
		}
		if bounded {
			m["max_input_tokens"], m["max_output_tokens"] = 128000, 16384
		}
		return m
	}
	return map[string]any{
		"dev_key":       false,
		"drain_timeout": "5s",
		"log":           map[string]any{"level": "info", "format": "json", "access_log": true},
		"cache":         map[string]any{"enabled": true, "semantic": map[string]any{"enabled": false}},
		"providers": []any{map[string]any{
			"name": "hostile", "type": "openai", "base_url": upstreamURL, "api_key": upstreamAPIKey,
			// One attempt: a retried hostile answer would double what each
			// probe measures.
			"retry": map[string]any{"max_attempts": 1},
			// The breaker stays closed: every request of a probe must reach
			// the upstream, however many failed before.
			"breaker": map[string]any{"consecutive_failures": 1_000_000, "min_requests": 1_000_000},
		}},
		"models": []any{model(chaosModel, true), model(unboundedModel, false)},
	}
}

// A setting is a configuration key a probe needs whose place may change as
// the gateway grows: it is put at the first of its paths the config
// accepts. A key no path accepts is left out and said in the report: the
// probe then measures the gateway without it.
type setting struct {
	key   string
	value any
	paths []string
}

// providerSetting is a key of the (only) provider, or of the whole
// configuration in a build that has it there.
func providerSetting(key string, value any) setting {
	return setting{key: key, value: value, paths: []string{"providers[0]." + key, key}}
}

// topSetting is a key of the whole configuration.
func topSetting(key string, value any) setting {
	return setting{key: key, value: value, paths: []string{key}}
}

// placed is a setting once the config was written: where it went ("" if
// nowhere).
type placed struct {
	setting
	path string
}

// gatewayConfig is a probe's configuration as written and as the gateway
// will read it.
type gatewayConfig struct {
	yaml     []byte
	parsed   *config.Config
	tree     map[string]any // parsed, marshalled back: every value in force, defaults included
	settings []placed
	rejected map[string]bool // paths this build refused as unknown fields
}

// buildConfig places each setting in cfg at its first path not rejected,
// validates the result with pkg/config exactly as the gateway will, and
// returns it. An unknown field at a setting's path rejects that path, and
// the setting moves on to its next; any other problem is an error of the
// suite.
func buildConfig(cfg map[string]any, settings []setting, rejected map[string]bool) (*gatewayConfig, error) {
	if rejected == nil {
		rejected = map[string]bool{}
	}
	for {
		tree := deepCopy(cfg).(map[string]any)
		ps := make([]placed, len(settings))
		for i, st := range settings {
			ps[i] = placed{setting: st}
			for _, path := range st.paths {
				if !rejected[path] {
					ps[i].path = path
					break
				}
			}
			if ps[i].path != "" {
				if err := setPath(tree, ps[i].path, st.value); err != nil {
					return nil, err
				}
			}
		}
		y, err := yaml.Marshal(tree)
		if err != nil {
			return nil, err
		}
		parsed, err := config.Parse(bytes.NewReader(y), func(string) string { return "" })
		if err == nil {
			gc := &gatewayConfig{yaml: y, parsed: parsed, settings: ps, rejected: rejected}
			if gc.tree, err = asTree(parsed); err != nil {
				return nil, err
			}
			return gc, nil
		}
		if rejectUnknown(err.Error(), ps, rejected) == 0 {
			return nil, fmt.Errorf("the generated config is invalid:\n%w\n%s", err, y)
		}
	}
}

// unknownField finds the path of an unknown field in pkg/config's errors
// ("providers[0].max_stream_bytes: unknown field (did you mean ...)"),
// also inside a gateway's start-up error.
var unknownField = regexp.MustCompile(`([\w.\[\]]+): unknown field`)

// rejectUnknown rejects every placed path that text calls an unknown
// field and returns how many it rejected.
func rejectUnknown(text string, ps []placed, rejected map[string]bool) int {
	n := 0
	for _, m := range unknownField.FindAllStringSubmatch(text, -1) {
		for _, p := range ps {
			if p.path != "" && p.path == m[1] && !rejected[p.path] {
				rejected[p.path] = true
				n++
			}
		}
	}
	return n
}

// notes says which settings this build does not have.
func (gc *gatewayConfig) notes() []string {
	var out []string
	for _, p := range gc.settings {
		if p.path == "" {
			out = append(out, fmt.Sprintf("%s: not a config key of this build (tried %s); measured without it", p.key, strings.Join(p.paths, ", ")))
		}
	}
	return out
}

// value returns the value in force for a key: where its setting was
// placed, else the default at the first place this build has it (the
// provider's, then the top level's).
func (gc *gatewayConfig) value(key string) (any, string, bool) {
	paths := providerSetting(key, nil).paths
	for _, p := range gc.settings {
		if p.key == key {
			if paths = p.paths; p.path != "" {
				paths = []string{p.path}
			}
		}
	}
	for _, path := range paths {
		if gc.rejected[path] {
			continue
		}
		if v, ok := getPath(gc.tree, path); ok {
			return v, path, true
		}
	}
	return nil, "", false
}

// duration is the value in force of a duration setting; ok is false when
// this build has no such key.
func (gc *gatewayConfig) duration(key string) (time.Duration, bool) {
	v, _, ok := gc.value(key)
	if !ok {
		return 0, false
	}
	s, isString := v.(string)
	if !isString {
		return 0, false
	}
	d, err := time.ParseDuration(s)
	return d, err == nil
}

// bytes is the value in force of a size setting.
func (gc *gatewayConfig) bytes(key string) (int64, bool) {
	v, _, ok := gc.value(key)
	if !ok {
		return 0, false
	}
	switch n := v.(type) {
	case int:
		return int64(n), true
	case int64:
		return n, true
	case uint64:
		return int64(n), true
	case string:
		i, err := strconv.ParseInt(n, 10, 64)
		return i, err == nil
	}
	return 0, false
}

// asTree marshals a parsed config back into maps, where a key's value can
// be looked up by path without the suite naming its Go field (which may
// not exist in every build it is compiled with).
func asTree(c *config.Config) (map[string]any, error) {
	y, err := yaml.Marshal(c)
	if err != nil {
		return nil, err
	}
	var tree map[string]any
	if err := yaml.Unmarshal(y, &tree); err != nil {
		return nil, err
	}
	return tree, nil
}

// A path is dot-separated keys, each optionally indexed: providers[0].timeout.
type pathStep struct {
	key   string
	index int // -1: not indexed
}

func parsePath(path string) ([]pathStep, error) {
	var steps []pathStep
	for _, part := range strings.Split(path, ".") {
		st := pathStep{key: part, index: -1}
		if k, rest, ok := strings.Cut(part, "["); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(rest, "]"))
			if err != nil || !strings.HasSuffix(rest, "]") || n < 0 {
				return nil, fmt.Errorf("bad path %q", path)
			}
			st = pathStep{key: k, index: n}
		}
		if st.key == "" {
			return nil, fmt.Errorf("bad path %q", path)
		}
		steps = append(steps, st)
	}
	return steps, nil
}

// setPath sets a value in a tree of maps and lists, creating maps on the
// way (lists must exist).
func setPath(tree map[string]any, path string, v any) error {
	steps, err := parsePath(path)
	if err != nil {
		return err
	}
	m := tree
	for i, st := range steps {
		last := i == len(steps)-1
		if st.index < 0 {
			if last {
				m[st.key] = v
				return nil
			}
			child, ok := m[st.key].(map[string]any)
			if !ok {
				child = map[string]any{}
				m[st.key] = child
			}
			m = child
			continue
		}
		list, ok := m[st.key].([]any)
		if !ok || st.index >= len(list) {
			return fmt.Errorf("%s: no element %d", path, st.index)
		}
		if last {
			list[st.index] = v
			return nil
		}
		child, ok := list[st.index].(map[string]any)
		if !ok {
			return fmt.Errorf("%s: element %d is not a map", path, st.index)
		}
		m = child
	}
	return nil
}

func getPath(tree map[string]any, path string) (any, bool) {
	steps, err := parsePath(path)
	if err != nil {
		return nil, false
	}
	var cur any = tree
	for _, st := range steps {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[st.key]; !ok {
			return nil, false
		}
		if st.index >= 0 {
			list, ok := cur.([]any)
			if !ok || st.index >= len(list) {
				return nil, false
			}
			cur = list[st.index]
		}
	}
	return cur, true
}

func deepCopy(v any) any {
	switch t := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(t))
		for k, x := range t {
			m[k] = deepCopy(x)
		}
		return m
	case []any:
		l := make([]any, len(t))
		for i, x := range t {
			l[i] = deepCopy(x)
		}
		return l
	}
	return v
}
