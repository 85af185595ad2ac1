package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

const examplePath = "../../tollgate.example.yaml"

// parseExample parses tollgate.example.yaml as shipped, with no
// environment variable set: it must need none.
func parseExample(t *testing.T) *Config {
	t.Helper()
	raw, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse(strings.NewReader(string(raw)), env(nil))
	if err != nil {
		t.Fatalf("the example does not parse as shipped: %v", err)
	}
	return cfg
}

// parseExampleWithOpenAI parses the example with its optional OpenAI
// blocks uncommented, as a user would, and OPENAI_API_KEY set.
func parseExampleWithOpenAI(t *testing.T) *Config {
	t.Helper()
	raw, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse(strings.NewReader(uncommentOptional(t, string(raw))), env(map[string]string{"OPENAI_API_KEY": "sk-test"}))
	if err != nil {
		t.Fatalf("the example with its OpenAI blocks uncommented does not parse: %v", err)
	}
	return cfg
}

// uncommentOptional removes the "# " written after the indentation of
// every line between an "---- optional:" marker and its "---- end of the
// optional" marker.
func uncommentOptional(t *testing.T, raw string) string {
	t.Helper()
	lines := strings.Split(raw, "\n")
	in, blocks := false, 0
	for i, l := range lines {
		switch {
		case strings.Contains(l, "# ---- optional:"):
			in = true
			blocks++
			continue
		case strings.Contains(l, "# ---- end of the optional"):
			in = false
			continue
		}
		if in && strings.TrimSpace(l) != "" {
			body := strings.TrimLeft(l, " ")
			if !strings.HasPrefix(body, "# ") {
				t.Fatalf("line %d of an optional block is not commented: %q", i+1, l)
			}
			lines[i] = l[:len(l)-len(body)] + body[2:]
		}
	}
	if blocks == 0 || in {
		t.Fatalf("%d optional blocks, the last one open: %v", blocks, in)
	}
	return strings.Join(lines, "\n")
}

// TestExampleStatesTheDefaults: tollgate.example.yaml shows every field
// with its default. Wherever it states a default (everything but the
// providers, models and routes it gives as examples, whose settings are
// compared field by field), Load applies the same value to a file that
// leaves the field out.
func TestExampleStatesTheDefaults(t *testing.T) {
	ex := parseExample(t)
	def, err := Parse(strings.NewReader(""), nil)
	if err != nil {
		t.Fatal(err)
	}
	var diffs []string

	top := *ex
	top.Providers, top.Models, top.Routes = def.Providers, def.Models, def.Routes
	diffs = append(diffs, differences("", reflect.ValueOf(top), reflect.ValueOf(*def))...)

	// The openai provider (optional, commented out as shipped): all but its
	// identity are defaults.
	openai := parseExampleWithOpenAI(t).Providers[0]
	bare := Provider{Name: openai.Name, Type: openai.Type, BaseURL: openai.BaseURL, APIKey: openai.APIKey}
	bare.setDefaults()
	diffs = append(diffs, differences("providers[0]", reflect.ValueOf(openai), reflect.ValueOf(bare))...)

	// The auto route: all but its candidates are defaults.
	auto := ex.Routes["auto"]
	plain := Route{Candidates: auto.Candidates}
	plain.setDefaults()
	diffs = append(diffs, differences("routes.auto", reflect.ValueOf(auto), reflect.ValueOf(plain))...)

	for _, d := range diffs {
		t.Errorf("tollgate.example.yaml and the defaults differ at %s", d)
	}
}

// TestExampleDocumentsEveryField: every field of the schema is named in the
// example (set, or in a comment).
func TestExampleDocumentsEveryField(t *testing.T) {
	raw, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range fieldPaths("", reflect.TypeFor[Config]()) {
		name := path[strings.LastIndex(path, ".")+1:]
		if !regexp.MustCompile(`\b` + name + `\b`).Match(raw) {
			t.Errorf("%s is not documented in tollgate.example.yaml", path)
		}
	}
}

// fieldPaths lists the yaml path of every field below t.
func fieldPaths(prefix string, t reflect.Type) []string {
	t = indirect(t)
	switch t.Kind() {
	case reflect.Slice:
		return fieldPaths(prefix+"[]", t.Elem())
	case reflect.Map:
		return fieldPaths(prefix+".*", t.Elem())
	case reflect.Struct:
		if t == durationType {
			return nil
		}
		var out []string
		f := fieldsOf(t)
		for _, name := range f.names {
			p := join(prefix, name)
			out = append(out, p)
			out = append(out, fieldPaths(p, t.Field(f.index[name]).Type)...)
		}
		return out
	}
	return nil
}

// differences lists where a and b differ, by path; nil and empty slices or
// maps are the same (the example writes `headers: {}`).
func differences(path string, a, b reflect.Value) []string {
	switch a.Kind() {
	case reflect.Pointer:
		if a.IsNil() || b.IsNil() {
			if a.IsNil() != b.IsNil() {
				return []string{fmt.Sprintf("%s: %v, want %v", path, a, b)}
			}
			return nil
		}
		return differences(path, a.Elem(), b.Elem())
	case reflect.Struct:
		var out []string
		f := fieldsOf(a.Type())
		for _, name := range f.names {
			i := f.index[name]
			out = append(out, differences(join(path, name), a.Field(i), b.Field(i))...)
		}
		return out
	case reflect.Slice, reflect.Map:
		if a.Len() == 0 && b.Len() == 0 {
			return nil
		}
	}
	if !reflect.DeepEqual(a.Interface(), b.Interface()) {
		return []string{fmt.Sprintf("%s: %v, want %v", path, a, b)}
	}
	return nil
}

// TestDefaultsAreApplied: each default constant reaches the configuration
// Load gives a file that sets nothing (or, for the defaults that apply to
// an element, a file that adds one with nothing set).
func TestDefaultsAreApplied(t *testing.T) {
	c, err := Parse(strings.NewReader("providers:\n  - {name: a, type: anthropic}\nmodels:\n  - {name: m, deployments: [{provider: a}]}\n"+
		"routes:\n  r: {candidates: [m]}\nbudget: {defaults: {budgets: [{period: daily, limit_usd: '1'}]}}\ncache: {semantic: {embedder: hashed}}\n"+
		"guardrails: {guards: [{name: g, detectors: [email], action: log}]}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range []struct {
		name      string
		got, want any
	}{
		{"listen", c.Listen, DefaultListen},
		{"data_dir", c.DataDir, DefaultDataDir},
		{"max_body_bytes", c.MaxBodyBytes, int64(DefaultMaxBodyBytes)},
		{"drain_timeout", c.DrainTimeout.Std(), DefaultDrainTimeout},
		{"request_timeout", c.RequestTimeout.Std(), DefaultRequestTimeout},
		{"body_read_timeout", c.BodyReadTimeout.Std(), DefaultBodyReadTimeout},
		{"log.level", c.Log.Level, DefaultLogLevel},
		{"log.format", c.Log.Format, DefaultLogFormat},
		{"providers[0].base_url", c.Providers[0].BaseURL, DefaultAnthropicBaseURL},
		{"providers[0].breaker", *c.Providers[0].Breaker, DefaultBreaker()},
		{"providers[0].retry", *c.Providers[0].Retry, DefaultRetry()},
		{"models[0].deployments[0].weight", c.Models[0].Deployments[0].Weight, DefaultDeploymentWeight},
		{"routes.r.strategy", c.Routes["r"].Strategy, DefaultStrategy},
		{"routes.r.expected_output_tokens", c.Routes["r"].ExpectedOutputTokens, DefaultExpectedOutputTokens},
		{"routes.r.on_exhausted", c.Routes["r"].OnExhausted, DefaultOnExhausted},
		{"budget.timezone", c.Budget.Timezone, DefaultTimezone},
		{"budget.defaults.on_exhausted", c.Budget.Defaults.OnExhausted, DefaultOnExhausted},
		{"budget.defaults.budgets[0].alert_thresholds", c.Budget.Defaults.Budgets[0].AlertThresholds, DefaultAlertThresholds()},
		{"cache.ttl", c.Cache.TTL.Std(), DefaultCacheTTL},
		{"cache.max_bytes", c.Cache.MaxBytes, int64(DefaultCacheMaxBytes)},
		{"cache.sweep_interval", c.Cache.SweepInterval.Std(), DefaultCacheSweepInterval},
		{"cache.max_temperature", c.Cache.MaxTemperature, DefaultMaxTemperature},
		{"cache.semantic.threshold", c.Cache.Semantic.Threshold, DefaultSemanticThreshold},
		{"cache.semantic.turns", c.Cache.Semantic.Turns, DefaultSemanticTurns},
		{"cache.semantic.dimensions", c.Cache.Semantic.Dimensions, DefaultHashedDimensions},
		{"cache.semantic.model_dir", c.ModelDir(), filepath.Join(DefaultDataDir, "models")},
		{"cache.semantic.qdrant.quantization", c.Cache.Semantic.Qdrant.Quantization, DefaultQdrantQuantization},
		{"cache.semantic.qdrant.timeout", c.Cache.Semantic.Qdrant.Timeout.Std(), DefaultQdrantTimeout},
		{"guardrails.scan_limit_bytes", c.Guardrails.ScanLimitBytes, DefaultGuardScanLimit},
		{"guardrails.guards[0].directions", c.Guardrails.Guards[0].Directions, DefaultGuardDirections()},
	} {
		if !reflect.DeepEqual(x.got, x.want) {
			t.Errorf("%s = %v, want %v", x.name, x.got, x.want)
		}
	}
	if d := Default(func(string) string { return "" }).Cache.Semantic; d.Embedder != DefaultEmbedder || d.Index != DefaultIndex {
		t.Errorf("semantic embedder %q index %q", d.Embedder, d.Index)
	}
}
