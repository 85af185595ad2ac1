package router

import (
	"errors"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
)

func ptr[T any](v T) *T { return &v }

func TestBuiltin(t *testing.T) {
	models := Builtin()
	cat, err := NewCatalog(models)
	if err != nil {
		t.Fatal(err)
	}
	if cat.Len() != len(models) {
		t.Fatalf("catalog has %d models, Builtin %d", cat.Len(), len(models))
	}
	providers := map[string]bool{}
	for _, m := range cat.Models() {
		providers[m.Provider] = true
		if m.Tier < MinTier || m.Tier > MaxTier {
			t.Errorf("%s: tier %d", m.Name, m.Tier)
		}
		if !m.PriceKnown() {
			t.Errorf("%s: built-in price unknown", m.Name)
		}
		if m.Tokenizer == "" || m.UpstreamModel == "" {
			t.Errorf("%s: tokenizer %q, upstream %q", m.Name, m.Tokenizer, m.UpstreamModel)
		}
		if m.Mode == ModeChat && (m.MaxInputTokens == 0 || !m.Streaming) {
			t.Errorf("%s: chat model without a window or streaming", m.Name)
		}
	}
	for _, p := range []string{"openai", "anthropic", "gemini", "mistral", "deepseek", "groq", "sim"} {
		if !providers[p] {
			t.Errorf("no built-in model from %s", p)
		}
	}

	small, _ := cat.Lookup("sim-small")
	large, _ := cat.Lookup("sim-large")
	embed, _ := cat.Lookup("sim-embed")
	if large.InputPrice != 10*small.InputPrice || large.OutputPrice != 10*small.OutputPrice || large.CachedInputPrice != 10*small.CachedInputPrice {
		t.Errorf("sim-large prices %s/%s are not 10x sim-small's %s/%s", large.InputPrice, large.OutputPrice, small.InputPrice, small.OutputPrice)
	}
	if large.MaxInputTokens <= small.MaxInputTokens || !large.Vision || small.Vision || large.Tier <= small.Tier {
		t.Errorf("sim-large should have a larger window, vision and a higher tier than sim-small: %+v vs %+v", *large, *small)
	}
	if !small.Tools || !small.JSONSchema || !small.Streaming || small.Tokenizer != TokenizerO200k {
		t.Errorf("sim-small: %+v", *small)
	}
	if embed.Mode != ModeEmbedding || embed.Provider != "sim" {
		t.Errorf("sim-embed: %+v", *embed)
	}
	if m, _ := cat.Lookup("groq/openai/gpt-oss-120b"); m.UpstreamModel != "openai/gpt-oss-120b" || m.Tokenizer != TokenizerO200k {
		t.Errorf("groq-hosted gpt-oss: %+v", *m)
	}

	// Builtin hands out a fresh slice each time.
	models[0].InputPrice = 1
	if again := Builtin(); again[0].InputPrice == 1 {
		t.Error("Builtin shares its table with callers")
	}
}

func TestLayersOverrideInOrder(t *testing.T) {
	base := Builtin()
	priceList := Layer{Source: "litellm:prices.json", PriceList: true, Patches: []ModelPatch{
		{Name: "sim-small", InputPrice: ptr[Price](200_000), MaxInputTokens: ptr(65_536), Provider: ptr("vertex_ai"), UpstreamModel: ptr("elsewhere")},
		{Name: "gpt-4o", OutputPrice: ptr[Price](9_000_000)},
		{Name: "brand-new", Provider: ptr("openai"), InputPrice: ptr[Price](1_000_000), OutputPrice: ptr[Price](45_000_000)},
	}}
	config := Layer{Source: "catalog.models", Patches: []ModelPatch{
		{Name: "sim-small", InputPrice: ptr[Price](300_000), Tier: ptr(2)},
		{Name: "gpt-4o", Provider: ptr("azure"), UpstreamModel: ptr("my-gpt4o-deployment")},
		{Name: "my-llama", Provider: ptr("groq"), UpstreamModel: ptr("llama-3.3-70b-versatile"), InputPrice: ptr[Price](590_000), OutputPrice: ptr[Price](790_000), MaxInputTokens: ptr(131_072), Tools: ptr(true)},
		{Name: "my-embedder", Provider: ptr("sim"), Mode: ptr(ModeEmbedding), InputPrice: ptr[Price](10_000), OutputPrice: ptr[Price](0)},
	}}
	cat, err := NewCatalog(base, priceList, config)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		check func(m *Model) bool
		why   string
	}{
		{"sim-small", func(m *Model) bool { return m.InputPrice == 300_000 }, "config overrides the price list"},
		{"sim-small", func(m *Model) bool { return m.MaxInputTokens == 65_536 }, "a field only the price list sets survives the config"},
		{"sim-small", func(m *Model) bool { return m.OutputPrice == 400_000 && m.Tools && m.Tokenizer == TokenizerO200k }, "fields no layer sets keep the built-in value"},
		{"sim-small", func(m *Model) bool { return m.Provider == "sim" && m.UpstreamModel == "sim-small" }, "a price list never moves a known model"},
		{"sim-small", func(m *Model) bool { return m.Tier == 2 }, "config sets the tier"},
		{"gpt-4o", func(m *Model) bool { return m.OutputPrice == 9_000_000 && m.InputPrice == 2_500_000 }, "the price list patches one price"},
		{"gpt-4o", func(m *Model) bool { return m.Provider == "azure" && m.UpstreamModel == "my-gpt4o-deployment" }, "config may move a model"},
		{"brand-new", func(m *Model) bool {
			return m.Provider == "openai" && m.UpstreamModel == "brand-new" && m.Mode == ModeChat && m.Streaming &&
				!m.Tools && !m.CachedInputPrice.Known() && m.Tier == 5 && m.Tokenizer == TokenizerEstimate
		}, "a new model gets the documented defaults, tier from its output price"},
		{"my-llama", func(m *Model) bool { return m.Tier == 2 && m.Tools && m.Tokenizer == TokenizerEstimate }, "config defines a model"},
		{"my-embedder", func(m *Model) bool { return m.Mode == ModeEmbedding && !m.Streaming && m.Tier == 1 }, "new embedding models do not stream"},
	}
	for _, tt := range tests {
		t.Run(tt.name+"/"+tt.why, func(t *testing.T) {
			m, ok := cat.Lookup(tt.name)
			if !ok {
				t.Fatal("not in the catalog")
			}
			if !tt.check(m) {
				t.Errorf("%s: %+v", tt.why, *m)
			}
		})
	}
	if cat.Len() != len(base)+3 {
		t.Errorf("catalog has %d models, want %d", cat.Len(), len(base)+3)
	}
	// The input slice is not modified by building.
	if base[slices.IndexFunc(base, func(m Model) bool { return m.Name == "sim-small" })].InputPrice != 100_000 {
		t.Error("NewCatalog modified its base slice")
	}
}

func TestNewCatalogErrors(t *testing.T) {
	tests := []struct {
		name   string
		layers []Layer
		want   []string
	}{
		{
			name: "new model without required fields",
			layers: []Layer{{Source: "catalog.models", Patches: []ModelPatch{
				{Name: "my-model", MaxInputTokens: ptr(8000)},
			}}},
			want: []string{
				"catalog.models[my-model].provider: required for a new model",
				"catalog.models[my-model].input_price: required for a new model",
				"catalog.models[my-model].output_price: required for a new model",
			},
		},
		{
			name: "new model missing only a price",
			layers: []Layer{{Source: "catalog.models", Patches: []ModelPatch{
				{Name: "half-priced", Provider: ptr("openai"), InputPrice: ptr[Price](1)},
			}}},
			want: []string{"catalog.models[half-priced].output_price: required for a new model"},
		},
		{
			name: "bad values patched onto a known model",
			layers: []Layer{{Source: "catalog.models", Patches: []ModelPatch{
				{Name: "gpt-4o", InputPrice: ptr[Price](-5), Tier: ptr(7), Mode: ptr(Mode("completion")), MaxOutputTokens: ptr(-1), Provider: ptr(" ")},
			}}},
			want: []string{
				"catalog.models[gpt-4o].provider: must not be empty",
				`catalog.models[gpt-4o].mode: unknown mode "completion": expected chat, embedding or responses`,
				"catalog.models[gpt-4o].input_price: negative price",
				"catalog.models[gpt-4o].max_output_tokens: must not be negative",
				"catalog.models[gpt-4o].tier: tier must be between 1 and 5",
			},
		},
		{
			name: "implausible price",
			layers: []Layer{{Source: "catalog.models", Patches: []ModelPatch{
				{Name: "sim-small", OutputPrice: ptr(maxPrice + 1)},
			}}},
			want: []string{"catalog.models[sim-small].output_price: implausible price above $10000.000000/1M"},
		},
		{
			name: "explicitly unknown price is allowed",
			layers: []Layer{{Source: "catalog.models", Patches: []ModelPatch{
				{Name: "mystery", Provider: ptr("openai"), InputPrice: ptr(PriceUnknown), OutputPrice: ptr(PriceUnknown)},
			}}},
		},
		{
			name: "bad names",
			layers: []Layer{{Source: "catalog.models", Patches: []ModelPatch{
				{Name: "", Provider: ptr("sim"), InputPrice: ptr[Price](0), OutputPrice: ptr[Price](0)},
				{Name: "two words", Provider: ptr("sim"), InputPrice: ptr[Price](0), OutputPrice: ptr[Price](0)},
			}}},
			want: []string{
				"catalog.models[]: model name is empty",
				"catalog.models[two words]: model name contains white space",
			},
		},
		{
			name: "duplicate in one layer",
			layers: []Layer{{Source: "catalog.models", Patches: []ModelPatch{
				{Name: "sim-small", Tier: ptr(1)},
				{Name: "sim-small", Tier: ptr(2)},
			}}},
			want: []string{"catalog.models[sim-small]: defined twice in the same layer"},
		},
		{
			name: "every layer reports",
			layers: []Layer{
				{Source: "litellm:a.json", PriceList: true, Patches: []ModelPatch{{Name: "x", Provider: ptr("openai"), InputPrice: ptr[Price](1)}}},
				{Source: "catalog.models", Patches: []ModelPatch{{Name: "y"}}},
			},
			want: []string{
				"litellm:a.json[x].output_price: required for a new model",
				"catalog.models[y].provider: required for a new model",
				"catalog.models[y].input_price: required for a new model",
				"catalog.models[y].output_price: required for a new model",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cat, err := NewCatalog(Builtin(), tt.layers...)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || cat != nil {
				t.Fatalf("got catalog %v, error %v; want errors", cat, err)
			}
			var got []string
			for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
				var me *ModelError
				if !errors.As(e, &me) {
					t.Errorf("%v: not a *ModelError", e)
				}
				got = append(got, e.Error())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestNewCatalogDuplicateBase(t *testing.T) {
	base := append(Builtin(), Builtin()[0])
	if _, err := NewCatalog(base); err == nil || !strings.Contains(err.Error(), "defined twice") {
		t.Errorf("error = %v, want a duplicate", err)
	}
}

func TestDefaultTokenizer(t *testing.T) {
	tests := []struct{ model, want string }{
		{"gpt-4o", TokenizerO200k},
		{"gpt-4o-mini-2024-07-18", TokenizerO200k},
		{"gpt-4.1-nano", TokenizerO200k},
		{"gpt-5.4-mini", TokenizerO200k},
		{"o1", TokenizerO200k},
		{"o3-mini-2025-01-31", TokenizerO200k},
		{"o4-mini", TokenizerO200k},
		{"openai/gpt-oss-120b", TokenizerO200k},
		{"gpt-realtime-mini", TokenizerO200k},
		{"gpt-4", TokenizerCL100k},
		{"gpt-4-turbo-2024-04-09", TokenizerCL100k},
		{"gpt-3.5-turbo", TokenizerCL100k},
		{"text-embedding-3-small", TokenizerCL100k},
		{"claude-sonnet-4-5-20250929", TokenizerEstimateClaude},
		{"anthropic.claude-opus-4-1-v1:0", TokenizerEstimateClaude},
		{"gemini-2.5-flash", TokenizerEstimateGemini},
		{"vertex_ai/gemini-2.5-pro", TokenizerEstimateGemini},
		{"llama-3.3-70b-versatile", TokenizerEstimate},
		{"mistral-large-latest", TokenizerEstimate},
		{"o3xyz", TokenizerEstimate},
		{"", TokenizerEstimate},
	}
	for _, tt := range tests {
		t.Run(tt.model, func(t *testing.T) {
			if got := DefaultTokenizer(tt.model); got != tt.want {
				t.Errorf("DefaultTokenizer(%q) = %q, want %q", tt.model, got, tt.want)
			}
		})
	}
}

func TestTierForPrice(t *testing.T) {
	tests := []struct {
		name   string
		output Price
		want   int
	}{
		{"unknown", PriceUnknown, 3},
		{"free", 0, 1},
		{"just under $0.50", 499_999, 1},
		{"$0.50", 500_000, 2},
		{"$2.99", 2_990_000, 2},
		{"$3", 3_000_000, 3},
		{"$10", 10_000_000, 3},
		{"$12", 12_000_000, 4},
		{"$39.99", 39_990_000, 4},
		{"$40", 40_000_000, 5},
		{"$600", 600_000_000, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := TierForPrice(tt.output); got != tt.want {
				t.Errorf("TierForPrice(%s) = %d, want %d", tt.output, got, tt.want)
			}
		})
	}
}

func TestPriceConversions(t *testing.T) {
	tests := []struct {
		name    string
		conv    func(float64) (Price, error)
		in      float64
		want    Price
		wantErr string
	}{
		{"per token", PricePerToken, 1.5e-07, 150_000, ""},
		{"per token, float noise rounds away", PricePerToken, 3.625e-09, 3_625, ""},
		{"per token, dearest listed", PricePerToken, 0.0006, 600_000_000, ""},
		{"per token, free", PricePerToken, 0, 0, ""},
		{"per token, negative", PricePerToken, -1e-06, PriceUnknown, "negative price"},
		{"per token, NaN", PricePerToken, math.NaN(), PriceUnknown, "price is not a finite number"},
		{"per token, infinite", PricePerToken, math.Inf(1), PriceUnknown, "price is not a finite number"},
		{"per token given per million", PricePerToken, 2.5, PriceUnknown, "implausible price above $10000.000000/1M"},
		{"per million", PricePerMillion, 0.15, 150_000, ""},
		{"per million, sub-micro", PricePerMillion, 0.0375, 37_500, ""},
		{"per million, negative", PricePerMillion, -0.15, PriceUnknown, "negative price"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.conv(tt.in)
			if got != tt.want || (err == nil) != (tt.wantErr == "") || (err != nil && err.Error() != tt.wantErr) {
				t.Errorf("got %d, %v; want %d, %q", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestPriceString(t *testing.T) {
	for p, want := range map[Price]string{150_000: "$0.150000/1M", 0: "$0.000000/1M", PriceUnknown: "unknown", 75_000_000: "$75.000000/1M"} {
		if got := p.String(); got != want {
			t.Errorf("Price(%d).String() = %q, want %q", int64(p), got, want)
		}
	}
}

func TestCatalogModelsSorted(t *testing.T) {
	cat := builtinCatalog(t)
	models := cat.Models()
	if !slices.IsSortedFunc(models, func(a, b *Model) int { return strings.Compare(a.Name, b.Name) }) {
		t.Error("Models() is not sorted by name")
	}
	models[0] = nil
	if cat.Models()[0] == nil {
		t.Error("Models() shares its slice with the caller")
	}
}

func TestCatalogNil(t *testing.T) {
	var c *Catalog
	if _, ok := c.Lookup("gpt-4o"); ok || c.Len() != 0 || c.Models() != nil {
		t.Error("a nil catalog should be empty")
	}
}

func TestLookupConcurrent(t *testing.T) {
	cat := builtinCatalog(t)
	names := make([]string, 0, cat.Len())
	for _, m := range cat.Models() {
		names = append(names, m.Name)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for _, n := range names {
				if m, ok := cat.Lookup(n); !ok || m.Name != n {
					t.Errorf("Lookup(%q) = %v, %v", n, m, ok)
				}
				_ = cat.Models()
			}
		})
	}
	wg.Wait()
}

func TestLookupDoesNotAllocate(t *testing.T) {
	cat := builtinCatalog(t)
	name := string([]byte("claude-sonnet-4-5")) // not a constant the compiler could intern
	if n := testing.AllocsPerRun(100, func() {
		if _, ok := cat.Lookup(name); !ok {
			t.Fatal("missing")
		}
		_, _ = cat.Lookup("no-such-model")
	}); n != 0 {
		t.Errorf("Lookup allocates %v times", n)
	}
}

func BenchmarkLookup(b *testing.B) {
	cat, err := NewCatalog(Builtin())
	if err != nil {
		b.Fatal(err)
	}
	if f := openSharedPriceListIfPresent(); f != nil {
		// The realistic size: built-in plus the community list.
		patches, _ := ImportLiteLLM(f)
		f.Close()
		if c, err := NewCatalog(Builtin(), Layer{Source: "litellm", Patches: patches, PriceList: true}); err == nil {
			cat = c
		}
	}
	names := []string{"gpt-4o-mini", "claude-sonnet-4-5", "groq/openai/gpt-oss-120b", "sim-small", "unknown-model"}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		_, _ = cat.Lookup(names[i%len(names)])
		i++
	}
}
