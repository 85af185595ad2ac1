package router

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"unicode"
)

// ImportLiteLLM reads a price list in the format of LiteLLM's
// model_prices_and_context_window.json and returns one patch per usable
// entry, sorted by name, to be applied as a Layer with PriceList set.
//
// How entries map:
//   - The key is the catalog id, as it is: "gpt-4o", "azure/gpt-4o" and
//     "groq/llama-3.3-70b-versatile" are three models. The upstream name is
//     the key without a leading "<provider>/" when that prefix is the entry's
//     provider.
//   - litellm_provider is the provider; "vertex_ai-language-models" and the
//     other "vertex_ai-*" kinds become "vertex_ai", "text-completion-openai"
//     becomes "openai".
//   - mode "chat", "embedding" and "responses" are kept (responses as
//     ModeResponses: priced, never planned for chat completions); every other
//     mode (image_generation, audio_*, completion, realtime, …) is skipped
//     silently, as is "sample_spec", the format's documentation entry.
//   - input_cost_per_token, output_cost_per_token, cache_read_input_token_cost,
//     cache_creation_input_token_cost and output_cost_per_reasoning_token
//     (dollars per token) become Prices; max_input_tokens and
//     max_output_tokens (else the legacy max_tokens) the window;
//     supports_function_calling, supports_vision, supports_response_schema,
//     supports_reasoning and supports_native_streaming the capabilities.
//     A field the entry does not have is left unset, so the layer below keeps
//     its value. Tiered prices (above 200k tokens, priority, flex, batch) and
//     every other field are ignored.
//
// An entry with a problem is skipped and every problem reported as a
// *ModelError naming the model and the field, e.g.
// "gpt-x: input_cost_per_token: negative price". Entries must have
// litellm_provider, mode and input_cost_per_token, and chat models
// output_cost_per_token (an embedding without one costs nothing to output).
// A file that is not a JSON object yields one error and no patches.
func ImportLiteLLM(r io.Reader) ([]ModelPatch, []error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, []error{fmt.Errorf("litellm price list: %w", err)}
	}
	var entries map[string]json.RawMessage
	if err := json.Unmarshal(data, &entries); err != nil {
		return nil, []error{fmt.Errorf("litellm price list: not a JSON object of models: %w", err)}
	}
	names := make([]string, 0, len(entries))
	for name := range entries {
		names = append(names, name)
	}
	slices.Sort(names)

	var patches []ModelPatch
	var errs []error
	for _, name := range names {
		if name == "sample_spec" {
			continue
		}
		p, keep, entryErrs := liteLLMEntry(name, entries[name])
		if len(entryErrs) > 0 {
			errs = append(errs, entryErrs...)
			continue
		}
		if keep {
			patches = append(patches, p)
		}
	}
	return patches, errs
}

// liteLLMEntry converts one entry. keep is false for modes tollgate does not
// serve.
func liteLLMEntry(name string, raw json.RawMessage) (p ModelPatch, keep bool, errs []error) {
	fail := func(field, msg string) {
		errs = append(errs, &ModelError{Model: name, Field: field, Msg: msg})
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		fail("", "entry is not a JSON object")
		return p, false, errs
	}
	f := liteLLMFields{fields: fields, fail: fail}
	if name == "" || strings.ContainsFunc(name, unicode.IsSpace) {
		// Checked here too so that a bad key is one skipped entry rather
		// than a catalog that fails to build.
		fail("", "model name is empty or contains white space")
		return p, false, errs
	}

	mode, ok := f.str("mode")
	if !ok {
		return p, false, errs
	}
	switch mode {
	case "chat", "embedding", "responses":
	default:
		return p, false, nil // not a model tollgate serves
	}
	m := Mode(mode)
	p = ModelPatch{Name: name, Mode: &m}

	if provider, ok := f.str("litellm_provider"); ok {
		norm := normalizeLiteLLMProvider(provider)
		up := upstreamName(name, provider)
		if up == name {
			up = upstreamName(name, norm)
		}
		p.Provider, p.UpstreamModel = &norm, &up
	}

	p.InputPrice = f.price("input_cost_per_token", true)
	if m == ModeEmbedding {
		p.OutputPrice = f.price("output_cost_per_token", false)
		if p.OutputPrice == nil && f.has("input_cost_per_token") {
			zero := Price(0)
			p.OutputPrice = &zero
		}
	} else {
		p.OutputPrice = f.price("output_cost_per_token", true)
	}
	p.CachedInputPrice = f.price("cache_read_input_token_cost", false)
	p.CacheWritePrice = f.price("cache_creation_input_token_cost", false)
	p.ReasoningPrice = f.price("output_cost_per_reasoning_token", false)

	p.MaxInputTokens = f.tokens("max_input_tokens")
	if f.has("max_output_tokens") {
		p.MaxOutputTokens = f.tokens("max_output_tokens")
	} else if m != ModeEmbedding {
		p.MaxOutputTokens = f.tokens("max_tokens")
	}

	p.Tools = f.boolean("supports_function_calling")
	p.Vision = f.boolean("supports_vision")
	p.JSONSchema = f.boolean("supports_response_schema")
	p.Reasoning = f.boolean("supports_reasoning")
	p.Streaming = f.boolean("supports_native_streaming")
	return p, true, errs
}

func normalizeLiteLLMProvider(p string) string {
	switch {
	case strings.HasPrefix(p, "vertex_ai-"):
		return "vertex_ai"
	case p == "text-completion-openai":
		return "openai"
	}
	return p
}

// liteLLMFields reads typed fields of one entry, reporting problems.
type liteLLMFields struct {
	fields map[string]json.RawMessage
	fail   func(field, msg string)
}

// has reports whether the field is present and not null.
func (f liteLLMFields) has(name string) bool {
	v, ok := f.fields[name]
	return ok && !bytes.Equal(bytes.TrimSpace(v), []byte("null"))
}

func (f liteLLMFields) str(name string) (string, bool) {
	if !f.has(name) {
		f.fail(name, "missing")
		return "", false
	}
	var s string
	if err := json.Unmarshal(f.fields[name], &s); err != nil {
		f.fail(name, "expected a string, got "+jsonKind(f.fields[name]))
		return "", false
	}
	if strings.TrimSpace(s) == "" {
		f.fail(name, "empty")
		return "", false
	}
	return s, true
}

func (f liteLLMFields) number(name string) (float64, bool) {
	var v float64
	if err := json.Unmarshal(f.fields[name], &v); err != nil {
		f.fail(name, "expected a number, got "+jsonKind(f.fields[name]))
		return 0, false
	}
	return v, true
}

func (f liteLLMFields) price(name string, required bool) *Price {
	if !f.has(name) {
		if required {
			f.fail(name, "missing")
		}
		return nil
	}
	v, ok := f.number(name)
	if !ok {
		return nil
	}
	p, err := PricePerToken(v)
	if err != nil {
		f.fail(name, err.Error())
		return nil
	}
	return &p
}

func (f liteLLMFields) tokens(name string) *int {
	if !f.has(name) {
		return nil
	}
	v, ok := f.number(name)
	if !ok {
		return nil
	}
	switch {
	case v < 0:
		f.fail(name, "negative token count")
		return nil
	case v != math.Trunc(v) || v > 1<<40:
		f.fail(name, fmt.Sprintf("%v is not a plausible token count", v))
		return nil
	}
	n := int(v)
	return &n
}

func (f liteLLMFields) boolean(name string) *bool {
	if !f.has(name) {
		return nil
	}
	var b bool
	if err := json.Unmarshal(f.fields[name], &b); err != nil {
		f.fail(name, "expected true or false, got "+jsonKind(f.fields[name]))
		return nil
	}
	return &b
}

// jsonKind names the JSON type of a value for error messages.
func jsonKind(v json.RawMessage) string {
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return "nothing"
	}
	switch v[0] {
	case '"':
		return "string " + string(v)
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	}
	return "number " + string(v)
}
