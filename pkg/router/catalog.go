package router

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"unicode"

	"github.com/tollgate/tollgate/pkg/llm"
)

// Price is a token price in micro-dollars per million tokens: $0.15 per 1M
// tokens is 150000. Per-token prices are fractions of a micro-dollar, so a
// per-million unit keeps every real price list an exact integer.
//
// PriceUnknown means nobody told us the price, which is not the same as
// free (0). Other negative prices are invalid.
type Price int64

// PriceUnknown marks a price that is not known.
const PriceUnknown Price = -1

// maxPrice bounds plausible prices: $10,000 per 1M tokens ($0.01 a token) is
// more than ten times the dearest model listed anywhere ($600 per 1M). It catches a per-million price
// typed into a per-token field (2.5 instead of 2.5e-06).
const maxPrice Price = 10_000 * 1_000_000

// Known reports whether the price is known.
func (p Price) Known() bool { return p >= 0 }

// String formats the price in dollars per million tokens, e.g. "$0.150000/1M".
func (p Price) String() string {
	if !p.Known() {
		return "unknown"
	}
	return "$" + llm.Micros(p).String() + "/1M"
}

// PricePerToken converts a price in dollars per token (LiteLLM's unit,
// e.g. 1.5e-07) to a Price. This is the import edge: the only place a float
// becomes money.
func PricePerToken(usd float64) (Price, error) { return priceFromFloat(usd * 1e12) }

// PricePerMillion converts a price in dollars per million tokens (the unit of
// provider price pages and of the YAML config, e.g. 0.15) to a Price.
func PricePerMillion(usd float64) (Price, error) { return priceFromFloat(usd * 1e6) }

func priceFromFloat(microsPerM float64) (Price, error) {
	switch {
	case math.IsNaN(microsPerM) || math.IsInf(microsPerM, 0):
		return PriceUnknown, errors.New("price is not a finite number")
	case microsPerM < 0:
		return PriceUnknown, errors.New("negative price")
	case microsPerM > float64(maxPrice):
		return PriceUnknown, fmt.Errorf("implausible price above %s", maxPrice)
	}
	return Price(math.Round(microsPerM)), nil
}

// Mode is what kind of endpoint a model serves.
type Mode string

// Modes a catalog entry can have.
const (
	ModeChat      Mode = "chat"      // /v1/chat/completions
	ModeEmbedding Mode = "embedding" // /v1/embeddings
	// ModeResponses models are served only by OpenAI's Responses API (LiteLLM
	// mode "responses", e.g. gpt-5-pro). They are listed and priced, but a
	// chat completion must not be routed to them.
	ModeResponses Mode = "responses"
)

func (m Mode) valid() bool { return m == ModeChat || m == ModeEmbedding || m == ModeResponses }

// Tokenizer names used by the catalog. The tokens package maps them to a real
// tokenizer or an estimator.
const (
	TokenizerO200k          = "o200k_base"
	TokenizerCL100k         = "cl100k_base"
	TokenizerEstimate       = "estimate"
	TokenizerEstimateClaude = "estimate:anthropic"
	TokenizerEstimateGemini = "estimate:gemini"
)

// Tier bounds; see Model.
const (
	MinTier = 1
	MaxTier = 5
)

// Model is one catalog entry. Models are immutable once in a Catalog.
//
// Tier is a coarse quality scale used for downgrades and routing policies:
//
//	1  small and cheap: extraction, classification, short answers (gpt-4.1-nano, gemini-2.5-flash-lite, llama-3.1-8b)
//	2  capable small models (gpt-4o-mini, gpt-5-nano, claude-haiku-4-5, llama-3.3-70b)
//	3  strong general models (gpt-4o, gpt-4.1, gpt-5-mini, gemini-2.5-flash, deepseek, o4-mini)
//	4  frontier models (gpt-5, o3, claude-sonnet-4.x, gemini-2.5-pro)
//	5  the strongest and dearest (claude-opus-4.x, gpt-5.5)
//
// Built-in entries are tiered by hand; an entry without a tier gets
// TierForPrice of its output price.
//
// MaxInputTokens and MaxOutputTokens are the context window; 0 means unknown
// (not "no room").
type Model struct {
	Name          string // catalog id: the model name clients send
	Provider      string // openai, azure, anthropic, gemini, vertex_ai, mistral, deepseek, groq, sim, ...
	UpstreamModel string // the model name sent to the provider
	Mode          Mode

	// Prices. InputPrice and OutputPrice may be PriceUnknown (see PriceKnown).
	// CachedInputPrice (prompt-cache reads), CacheWritePrice (prompt-cache
	// writes) and ReasoningPrice (reasoning tokens) are PriceUnknown when the
	// provider has no separate price: those tokens then cost InputPrice or
	// OutputPrice.
	InputPrice       Price
	OutputPrice      Price
	CachedInputPrice Price
	CacheWritePrice  Price
	ReasoningPrice   Price

	MaxInputTokens  int
	MaxOutputTokens int

	Tools      bool // function / tool calling
	Vision     bool // image inputs
	JSONSchema bool // response_format json_schema (structured outputs)
	Streaming  bool
	Reasoning  bool // the model reasons before answering (reasoning tokens)

	Tier      int    // 1 (cheapest, weakest) … 5 (frontier)
	Tokenizer string // o200k_base, cl100k_base, estimate:anthropic, estimate:gemini, estimate
}

// PriceKnown reports whether the model's input and output prices are known,
// i.e. whether its costs mean anything.
func (m *Model) PriceKnown() bool { return m.InputPrice.Known() && m.OutputPrice.Known() }

// TierForPrice is the tier given to a model nobody tiered, from its output
// price in dollars per 1M tokens: below $0.50 → 1, below $3 → 2, below $12 → 3,
// below $40 → 4, else 5; unknown price → 3. Price is a poor proxy for quality
// (DeepSeek is cheap and strong), so the config can set tiers explicitly.
func TierForPrice(output Price) int {
	const usd = 1_000_000
	switch {
	case !output.Known():
		return 3
	case output < 0.50*usd:
		return 1
	case output < 3*usd:
		return 2
	case output < 12*usd:
		return 3
	case output < 40*usd:
		return 4
	}
	return 5
}

// DefaultTokenizer is the tokenizer of a model family, judged from the
// upstream model name (any "provider/" prefix is ignored): gpt-4o, gpt-4.1,
// gpt-5, the o-series, gpt-oss and newer gpt-* → o200k_base; gpt-4, gpt-3.5
// and text-embedding-* → cl100k_base; claude → estimate:anthropic; gemini →
// estimate:gemini; anything else → estimate.
func DefaultTokenizer(model string) string {
	name := strings.ToLower(model)
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	for _, p := range []string{"gpt-4o", "chatgpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "gpt-oss", "codex"} {
		if strings.HasPrefix(name, p) {
			return TokenizerO200k
		}
	}
	for _, p := range []string{"o1", "o3", "o4"} {
		if name == p || strings.HasPrefix(name, p+"-") {
			return TokenizerO200k
		}
	}
	for _, p := range []string{"gpt-4", "gpt-3.5", "text-embedding-"} {
		if strings.HasPrefix(name, p) {
			return TokenizerCL100k
		}
	}
	switch {
	case strings.HasPrefix(name, "gpt-"): // gpt-realtime, gpt-audio, ...: post-gpt-4o models
		return TokenizerO200k
	case strings.Contains(name, "claude"):
		return TokenizerEstimateClaude
	case strings.Contains(name, "gemini"):
		return TokenizerEstimateGemini
	}
	return TokenizerEstimate
}

// ModelPatch changes a catalog entry, or defines a new one. Nil fields are
// left as they are. A patch that names a model not yet in the catalog defines
// it; it must then set Provider, InputPrice and OutputPrice. The other fields
// of a new model default to: Mode chat, UpstreamModel = Name, Streaming true
// for chat, no other capability, no separate cached/cache-write/reasoning
// price, unknown window, Tier from TierForPrice, Tokenizer from
// DefaultTokenizer.
type ModelPatch struct {
	Name string

	Provider      *string
	UpstreamModel *string
	Mode          *Mode

	InputPrice       *Price
	OutputPrice      *Price
	CachedInputPrice *Price
	CacheWritePrice  *Price
	ReasoningPrice   *Price

	MaxInputTokens  *int
	MaxOutputTokens *int

	Tools      *bool
	Vision     *bool
	JSONSchema *bool
	Streaming  *bool
	Reasoning  *bool

	Tier      *int
	Tokenizer *string
}

// Layer is one source of patches, applied after the layers before it.
type Layer struct {
	// Source names the layer in errors, as a config path ("catalog.models")
	// or a file ("litellm:prices.json").
	Source  string
	Patches []ModelPatch
	// PriceList marks a layer that describes prices, windows and
	// capabilities but not where a model is served: its patches never change
	// the provider or upstream name of a model an earlier layer defined.
	// Set it for ImportLiteLLM's patches, whose bare Gemini names are priced
	// for Vertex AI while the built-in entries serve them from Google AI.
	PriceList bool
}

// ModelError is a problem with one catalog entry, naming the model and the
// field (in the source's own vocabulary: "input_cost_per_token" for a
// LiteLLM file, "input_price" for the catalog).
type ModelError struct {
	Source string // the layer's Source, or "" for ImportLiteLLM
	Model  string
	Field  string // "" when the problem is the whole entry
	Msg    string
}

func (e *ModelError) Error() string {
	var b strings.Builder
	if e.Source != "" {
		b.WriteString(e.Source)
		b.WriteString("[")
		b.WriteString(e.Model)
		b.WriteString("]")
		if e.Field != "" {
			b.WriteString(".")
			b.WriteString(e.Field)
		}
	} else {
		b.WriteString(e.Model)
		if e.Field != "" {
			b.WriteString(": ")
			b.WriteString(e.Field)
		}
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	return b.String()
}

// Catalog is the set of known models. It is immutable once built, so any
// number of goroutines may read it without locking; reloading config builds
// a new Catalog and swaps the pointer.
type Catalog struct {
	byName map[string]*Model
	sorted []*Model
}

// NewCatalog builds a catalog from base models (usually Builtin()) and the
// layers on top, later layers overriding earlier ones field by field. Every
// problem is reported, joined in one error; on error no catalog is returned.
func NewCatalog(base []Model, layers ...Layer) (*Catalog, error) {
	var errs []error
	fail := func(source, model, field, msg string) {
		errs = append(errs, &ModelError{Source: source, Model: model, Field: field, Msg: msg})
	}

	byName := make(map[string]*Model, len(base)+64)
	for i := range base {
		m := base[i]
		if _, dup := byName[m.Name]; dup {
			fail("base", m.Name, "", "defined twice in the same layer")
			continue
		}
		if verrs := validate(&m, "base"); len(verrs) > 0 {
			errs = append(errs, verrs...)
			continue
		}
		byName[m.Name] = &m
	}

	for _, l := range layers {
		seen := make(map[string]bool, len(l.Patches))
		for i := range l.Patches {
			p := &l.Patches[i]
			if seen[p.Name] {
				fail(l.Source, p.Name, "", "defined twice in the same layer")
				continue
			}
			seen[p.Name] = true
			old, exists := byName[p.Name]
			var m Model
			if exists {
				m = *old
				if l.PriceList {
					q := *p
					q.Provider, q.UpstreamModel = nil, nil
					p = &q
				}
			} else {
				missing := false
				for _, f := range []struct {
					name string
					set  bool
				}{{"provider", p.Provider != nil}, {"input_price", p.InputPrice != nil}, {"output_price", p.OutputPrice != nil}} {
					if !f.set {
						fail(l.Source, p.Name, f.name, "required for a new model")
						missing = true
					}
				}
				if missing {
					continue
				}
				m = newModel(p.Name)
			}
			p.apply(&m)
			if !exists && p.Streaming == nil {
				m.Streaming = m.Mode != ModeEmbedding
			}
			if verrs := validate(&m, l.Source); len(verrs) > 0 {
				errs = append(errs, verrs...)
				continue
			}
			byName[m.Name] = &m
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	c := &Catalog{byName: byName, sorted: make([]*Model, 0, len(byName))}
	for _, m := range byName {
		if m.UpstreamModel == "" {
			m.UpstreamModel = m.Name
		}
		if m.Tokenizer == "" {
			m.Tokenizer = DefaultTokenizer(m.UpstreamModel)
		}
		if m.Tier == 0 {
			m.Tier = TierForPrice(m.OutputPrice)
		}
		c.sorted = append(c.sorted, m)
	}
	slices.SortFunc(c.sorted, func(a, b *Model) int { return strings.Compare(a.Name, b.Name) })
	return c, nil
}

// newModel is a model with the defaults of an entry defined by a patch.
func newModel(name string) Model {
	return Model{
		Name:             name,
		Mode:             ModeChat,
		InputPrice:       PriceUnknown,
		OutputPrice:      PriceUnknown,
		CachedInputPrice: PriceUnknown,
		CacheWritePrice:  PriceUnknown,
		ReasoningPrice:   PriceUnknown,
	}
}

func (p *ModelPatch) apply(m *Model) {
	set(&m.Provider, p.Provider)
	set(&m.UpstreamModel, p.UpstreamModel)
	set(&m.Mode, p.Mode)
	set(&m.InputPrice, p.InputPrice)
	set(&m.OutputPrice, p.OutputPrice)
	set(&m.CachedInputPrice, p.CachedInputPrice)
	set(&m.CacheWritePrice, p.CacheWritePrice)
	set(&m.ReasoningPrice, p.ReasoningPrice)
	set(&m.MaxInputTokens, p.MaxInputTokens)
	set(&m.MaxOutputTokens, p.MaxOutputTokens)
	set(&m.Tools, p.Tools)
	set(&m.Vision, p.Vision)
	set(&m.JSONSchema, p.JSONSchema)
	set(&m.Streaming, p.Streaming)
	set(&m.Reasoning, p.Reasoning)
	set(&m.Tier, p.Tier)
	set(&m.Tokenizer, p.Tokenizer)
}

func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

// validate reports every problem of a model, with catalog field names.
func validate(m *Model, source string) []error {
	var errs []error
	fail := func(field, msg string) {
		errs = append(errs, &ModelError{Source: source, Model: m.Name, Field: field, Msg: msg})
	}
	switch {
	case m.Name == "":
		fail("", "model name is empty")
	case strings.ContainsFunc(m.Name, unicode.IsSpace):
		fail("", "model name contains white space")
	}
	if strings.TrimSpace(m.Provider) == "" {
		fail("provider", "must not be empty")
	}
	if !m.Mode.valid() {
		fail("mode", fmt.Sprintf("unknown mode %q: expected chat, embedding or responses", m.Mode))
	}
	for _, p := range []struct {
		field string
		v     Price
	}{
		{"input_price", m.InputPrice}, {"output_price", m.OutputPrice}, {"cached_input_price", m.CachedInputPrice},
		{"cache_write_price", m.CacheWritePrice}, {"reasoning_price", m.ReasoningPrice},
	} {
		switch {
		case p.v < 0 && p.v != PriceUnknown:
			fail(p.field, "negative price")
		case p.v > maxPrice:
			fail(p.field, fmt.Sprintf("implausible price above %s", maxPrice))
		}
	}
	if m.MaxInputTokens < 0 {
		fail("max_input_tokens", "must not be negative")
	}
	if m.MaxOutputTokens < 0 {
		fail("max_output_tokens", "must not be negative")
	}
	if m.Tier != 0 && (m.Tier < MinTier || m.Tier > MaxTier) {
		fail("tier", "tier must be between 1 and 5")
	}
	return errs
}

// Lookup returns the model with this catalog name. It does not allocate.
func (c *Catalog) Lookup(name string) (*Model, bool) {
	if c == nil {
		return nil, false
	}
	m, ok := c.byName[name]
	return m, ok
}

// Models returns every model sorted by name. The slice is the caller's; the
// models are shared and must not be modified.
func (c *Catalog) Models() []*Model {
	if c == nil {
		return nil
	}
	return slices.Clone(c.sorted)
}

// Len is the number of models.
func (c *Catalog) Len() int {
	if c == nil {
		return 0
	}
	return len(c.sorted)
}

// upstreamName is the name sent to the provider for a catalog id: the id
// without a leading "provider/" ("groq/openai/gpt-oss-120b" on groq →
// "openai/gpt-oss-120b"); other ids are sent as they are.
func upstreamName(name, provider string) string {
	if provider != "" && len(name) > len(provider)+1 && name[len(provider)] == '/' && name[:len(provider)] == provider {
		return name[len(provider)+1:]
	}
	return name
}
