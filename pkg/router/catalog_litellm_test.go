package router

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// sharedPriceList is the real LiteLLM-format file the team shares; it is read
// in place and never copied into the repository.
var sharedPriceList = filepath.Join("..", "..", "..", "shared", "data", "model_prices_and_context_window.json")

func openSharedPriceList(t testing.TB) *os.File {
	t.Helper()
	f, err := os.Open(sharedPriceList)
	if os.IsNotExist(err) {
		t.Skipf("%s not found: the shared LiteLLM price list lives next to the repository", sharedPriceList)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestImportLiteLLMSharedFile(t *testing.T) {
	patches, errs := ImportLiteLLM(openSharedPriceList(t))
	for _, err := range errs {
		t.Errorf("import error: %v", err)
	}

	// Count the entries tollgate serves independently of the importer.
	data, err := os.ReadFile(sharedPriceList)
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]struct {
		Mode string `json:"mode"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	served := 0
	for name, e := range raw {
		if name != "sample_spec" && (e.Mode == "chat" || e.Mode == "embedding" || e.Mode == "responses") {
			served++
		}
	}
	if len(patches) != served {
		t.Errorf("imported %d models, want the %d chat, embedding and responses entries of %d", len(patches), served, len(raw))
	}
	t.Logf("imported %d of %d entries (%d errors)", len(patches), len(raw), len(errs))

	cat, err := NewCatalog(Builtin(), Layer{Source: "litellm", Patches: patches, PriceList: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("catalog: %d models (%d built in)", cat.Len(), len(Builtin()))

	tests := []struct {
		name  string
		check func(m *Model) bool
	}{
		{"gpt-4o-mini", func(m *Model) bool {
			return m.InputPrice == 150_000 && m.OutputPrice == 600_000 && m.CachedInputPrice == 75_000 &&
				m.MaxInputTokens == 128_000 && m.MaxOutputTokens == 16_384 && m.Tools && m.Vision && m.JSONSchema
		}},
		{"claude-sonnet-4-5", func(m *Model) bool {
			return m.InputPrice == 3_000_000 && m.CachedInputPrice == 300_000 && m.CacheWritePrice == 3_750_000 &&
				m.OutputPrice == 15_000_000 && m.MaxInputTokens == 200_000 && m.MaxOutputTokens == 64_000 && m.Reasoning
		}},
		{"gemini-2.5-flash", func(m *Model) bool {
			// The file prices the bare name for Vertex AI; as a price list it
			// must not move the built-in entry off the Gemini API.
			return m.Provider == "gemini" && m.UpstreamModel == "gemini-2.5-flash" &&
				m.ReasoningPrice == 2_500_000 && m.MaxInputTokens == 1_048_576 && m.MaxOutputTokens == 65_535
		}},
		{"gemini-3-flash", func(m *Model) bool {
			return m.Provider == "vertex_ai" && m.InputPrice == 500_000 && m.Tokenizer == TokenizerEstimateGemini && m.Tier == 3
		}},
		{"gpt-5-pro", func(m *Model) bool {
			return m.Mode == ModeResponses && !m.Streaming && m.OutputPrice == 120_000_000 &&
				!m.CachedInputPrice.Known() && m.Tier == 5
		}},
		{"gemini-embedding-001", func(m *Model) bool {
			return m.Mode == ModeEmbedding && m.InputPrice == 150_000 && m.OutputPrice == 0 && m.MaxInputTokens == 2048 && !m.Streaming
		}},
		{"deepseek-v4-pro", func(m *Model) bool {
			return m.InputPrice == 435_000 && m.CachedInputPrice == 3_625 && m.CacheWritePrice == 0 && m.MaxInputTokens == 1_000_000
		}},
		{"gpt-3.5-turbo", func(m *Model) bool {
			return m.Tokenizer == TokenizerCL100k && m.MaxInputTokens == 16_385 && m.Tier == 2
		}},
		{"claude-sonnet-4-5-20250929-v1:0", func(m *Model) bool { return m.Provider == "bedrock" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, ok := cat.Lookup(tt.name)
			if !ok {
				t.Fatal("not in the catalog")
			}
			if !tt.check(m) {
				t.Errorf("unexpected entry: %+v", *m)
			}
		})
	}
	for _, skipped := range []string{"gpt-image-1", "gpt-4o-transcribe", "gpt-4o-mini-tts", "gpt-3.5-turbo-instruct", "gemini-live-2.5-flash-preview-native-audio-09-2025"} {
		if _, ok := cat.Lookup(skipped); ok {
			t.Errorf("%s: a model tollgate does not serve was imported", skipped)
		}
	}
}

// TestBuiltinAgreesWithSharedFile keeps the hand-written table honest: every
// built-in model the community list also has carries its prices and window.
func TestBuiltinAgreesWithSharedFile(t *testing.T) {
	patches, errs := ImportLiteLLM(openSharedPriceList(t))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	byName := make(map[string]*ModelPatch, len(patches))
	for i := range patches {
		byName[patches[i].Name] = &patches[i]
	}
	compared := 0
	for _, b := range Builtin() {
		p, ok := byName[b.Name]
		if !ok {
			continue
		}
		compared++
		for _, f := range []struct {
			field   string
			builtin Price
			file    *Price
		}{
			{"input", b.InputPrice, p.InputPrice}, {"output", b.OutputPrice, p.OutputPrice},
			{"cached input", b.CachedInputPrice, p.CachedInputPrice}, {"cache write", b.CacheWritePrice, p.CacheWritePrice},
		} {
			if f.file != nil && *f.file != f.builtin {
				t.Errorf("%s: %s price %s, file says %s", b.Name, f.field, f.builtin, *f.file)
			}
		}
		if p.MaxInputTokens != nil && *p.MaxInputTokens != b.MaxInputTokens {
			t.Errorf("%s: max input %d, file says %d", b.Name, b.MaxInputTokens, *p.MaxInputTokens)
		}
		if p.MaxOutputTokens != nil && *p.MaxOutputTokens != b.MaxOutputTokens {
			t.Errorf("%s: max output %d, file says %d", b.Name, b.MaxOutputTokens, *p.MaxOutputTokens)
		}
	}
	if compared < 20 {
		t.Errorf("only %d built-in models found in the shared file", compared)
	}
}

func TestImportLiteLLMBadEntries(t *testing.T) {
	f, err := os.Open(filepath.Join("..", "..", "testdata", "catalog", "litellm_bad.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	patches, errs := ImportLiteLLM(f)

	var gotErrs []string
	for _, err := range errs {
		if _, ok := err.(*ModelError); !ok {
			t.Errorf("%v: want a *ModelError, got %T", err, err)
		}
		gotErrs = append(gotErrs, err.Error())
	}
	wantErrs := []string{
		`bool-as-string: supports_vision: expected true or false, got string "yes"`,
		`fractional-window: max_input_tokens: 1000.5 is not a plausible token count`,
		`gpt x: model name is empty or contains white space`,
		`missing-mode: mode: missing`,
		`missing-output-price: output_cost_per_token: missing`,
		`missing-provider: litellm_provider: missing`,
		`multiple-problems: input_cost_per_token: negative price`,
		`multiple-problems: output_cost_per_token: expected a number, got string "1.5e-05"`,
		`multiple-problems: max_output_tokens: negative token count`,
		`negative-price: input_cost_per_token: negative price`,
		`not-an-object: entry is not a JSON object`,
		`per-million-typo: input_cost_per_token: implausible price above $10000.000000/1M`,
		`per-million-typo: output_cost_per_token: implausible price above $10000.000000/1M`,
		`string-price: input_cost_per_token: expected a number, got string "0.000001"`,
		`string-window: max_input_tokens: expected a number, got string "128k"`,
	}
	if !slices.Equal(gotErrs, wantErrs) {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(gotErrs, "\n"), strings.Join(wantErrs, "\n"))
	}

	var names []string
	got := make(map[string]ModelPatch)
	for _, p := range patches {
		names = append(names, p.Name)
		got[p.Name] = p
	}
	wantNames := []string{"embed-no-output-price", "good-chat", "groq/llama-x-70b", "legacy-max-tokens", "null-optional-price", "vertex_ai/gemini-x-pro"}
	if !slices.Equal(names, wantNames) {
		t.Fatalf("imported %q, want %q (sample_spec and the image model skipped)", names, wantNames)
	}

	tests := []struct {
		name  string
		check func(p ModelPatch) bool
	}{
		{"good-chat", func(p ModelPatch) bool {
			return *p.Provider == "openai" && *p.UpstreamModel == "good-chat" && *p.Mode == ModeChat &&
				*p.InputPrice == 150_000 && *p.OutputPrice == 600_000 && *p.CachedInputPrice == 75_000 &&
				p.CacheWritePrice == nil && p.ReasoningPrice == nil &&
				*p.MaxInputTokens == 128_000 && *p.MaxOutputTokens == 16_384 &&
				*p.Tools && *p.Vision && *p.JSONSchema && !*p.Reasoning && p.Streaming == nil &&
				p.Tier == nil && p.Tokenizer == nil
		}},
		{"groq/llama-x-70b", func(p ModelPatch) bool {
			return *p.Provider == "groq" && *p.UpstreamModel == "llama-x-70b" && p.Vision == nil
		}},
		{"vertex_ai/gemini-x-pro", func(p ModelPatch) bool {
			return *p.Provider == "vertex_ai" && *p.UpstreamModel == "gemini-x-pro" && *p.ReasoningPrice == 12_000_000
		}},
		{"embed-no-output-price", func(p ModelPatch) bool {
			return *p.Mode == ModeEmbedding && *p.InputPrice == 20_000 && *p.OutputPrice == 0 &&
				*p.MaxInputTokens == 8191 && p.MaxOutputTokens == nil
		}},
		{"legacy-max-tokens", func(p ModelPatch) bool { return *p.MaxInputTokens == 8192 && *p.MaxOutputTokens == 4096 }},
		{"null-optional-price", func(p ModelPatch) bool {
			return *p.Mode == ModeResponses && p.CachedInputPrice == nil && !*p.Streaming
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !tt.check(got[tt.name]) {
				t.Errorf("unexpected patch: %s", patchString(got[tt.name]))
			}
		})
	}
}

func TestImportLiteLLMNotAnObject(t *testing.T) {
	for _, in := range []string{`[]`, `"x"`, `{`, ``} {
		patches, errs := ImportLiteLLM(strings.NewReader(in))
		if len(patches) != 0 || len(errs) != 1 || !strings.HasPrefix(errs[0].Error(), "litellm price list: ") {
			t.Errorf("%q: got %d patches, errors %v; want one file-level error", in, len(patches), errs)
		}
	}
}

func patchString(p ModelPatch) string {
	b, _ := json.Marshal(p)
	return string(b)
}

func openSharedPriceListIfPresent() *os.File {
	f, err := os.Open(sharedPriceList)
	if err != nil {
		return nil
	}
	return f
}

// FuzzImportLiteLLM checks that no input makes the importer panic and that
// whatever it accepts builds a catalog: a bad entry in a downloaded price
// list is reported and skipped, never a reason the gateway cannot start.
func FuzzImportLiteLLM(f *testing.F) {
	for _, name := range []string{"litellm_bad.json"} {
		data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "catalog", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"a b":{"mode":"chat","litellm_provider":" ","input_cost_per_token":1e-6,"output_cost_per_token":1e-6}}`))
	f.Add([]byte(`{"gpt-4o":{"mode":"chat","litellm_provider":"openai","input_cost_per_token":1e300,"output_cost_per_token":-0,"max_tokens":1e300}}`))
	f.Add([]byte(`{"":{"mode":"embedding","litellm_provider":"x","input_cost_per_token":0}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		patches, _ := ImportLiteLLM(bytes.NewReader(data))
		if _, err := NewCatalog(Builtin(), Layer{Source: "fuzz", Patches: patches, PriceList: true}); err != nil {
			t.Errorf("accepted patches do not build: %v", err)
		}
	})
}
