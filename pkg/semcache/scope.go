package semcache

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
)

// requestKeys is what one parse of a request yields for the cache.
type requestKeys struct {
	// exact is the exact cache key: scope and canonical request.
	exact string
	// scope isolates entries, exact and semantic: see computeKeys.
	scope string
	// query is the text the semantic path embeds: the last Turns user
	// turns, joined by newlines.
	query string
	// noSemantic says why the semantic path does not apply ("" when it does).
	noSemantic string
}

// toolFields are the members that describe the tools a model may call and
// how; together they make the scope's tools hash.
var toolFields = []string{"tools", "tool_choice", "parallel_tool_calls", "functions", "function_call"}

// samplingFields are bucketed (rounded to 0.1) in the scope: close values
// share a scope, so the semantic path can match across them. The exact key
// still holds their precise values.
var samplingFields = []string{"temperature", "top_p", "frequency_penalty", "presence_penalty"}

// samplingExact are output-changing parameters the scope keeps whole.
var samplingExact = []string{"stop", "logit_bias", "reasoning_effort", "verbosity", "modalities", "audio", "prediction", "web_search_options"}

// computeKeys parses r once and derives its keys. The scope hashes:
//
//   - the tenant (the key's own tenant or the shared tenant it belongs to);
//   - the model or route asked for;
//   - the system prompt (every system and developer message, in order);
//   - the tools (tools, tool_choice, parallel_tool_calls and the legacy
//     functions/function_call);
//   - the response format;
//   - the sampling bucket: temperature, top_p and the penalties rounded to
//     0.1, whether a seed is set, and stop, logit_bias, reasoning_effort,
//     verbosity, modalities, audio, prediction, web_search_options whole;
//   - the conversation context: every non-system message except the user
//     turns the semantic path embeds. A paraphrased follow-up question only
//     matches an entry whose earlier conversation was identical.
//
// The exact key hashes the scope and the whole canonical request.
func computeKeys(r Request, turns int) (requestKeys, error) {
	body, err := decodeRequest(r)
	if err != nil {
		return requestKeys{}, err
	}
	canonicalBody(body, r.Model)
	msgs, _ := body["messages"].([]any)

	var k requestKeys
	var window map[int]bool // indexes of the embedded user turns
	k.query, window, k.noSemantic = semanticWindow(msgs, turns)

	var system, context []any
	for i, m := range msgs {
		switch role(m) {
		case "system", "developer":
			system = append(system, m)
		default:
			if !window[i] {
				context = append(context, m)
			}
		}
	}
	tools := map[string]any{}
	for _, f := range toolFields {
		if v, ok := body[f]; ok {
			tools[f] = v
		}
	}
	buf := make([]byte, 0, 512)
	canon := func(v any) []byte {
		start := len(buf)
		buf = appendCanonical(buf, v)
		return buf[start:len(buf):len(buf)]
	}
	k.scope = digest(
		[]byte(r.Tenant),
		[]byte(r.Model),
		canon(system),
		canon(tools),
		canon(body["response_format"]),
		canon(samplingBucket(body)),
		canon(context),
	)
	k.exact = digest([]byte(k.scope), appendCanonical(nil, body))
	return k, nil
}

// samplingBucket is the scope's view of the sampling parameters.
func samplingBucket(body map[string]any) map[string]any {
	b := map[string]any{}
	for _, f := range samplingFields {
		if n, ok := body[f].(json.Number); ok {
			if v, err := n.Float64(); err == nil {
				b[f] = strconv.FormatFloat(math.Round(v*10)/10, 'f', 1, 64)
			}
		} else if v, ok := body[f]; ok && v != nil {
			b[f] = v
		}
	}
	if v, ok := body["seed"]; ok && v != nil {
		b["seed"] = true
	}
	for _, f := range samplingExact {
		if v, ok := body[f]; ok {
			b[f] = v
		}
	}
	return b
}

// semanticWindow picks the user turns the semantic path embeds: the last
// turns user messages, provided the conversation ends with a user message
// and they hold only text. It returns the text, the indexes of those
// messages and, when the semantic path does not apply, why.
func semanticWindow(msgs []any, turns int) (string, map[int]bool, string) {
	if turns < 1 {
		turns = 1
	}
	if len(msgs) == 0 || role(msgs[len(msgs)-1]) != "user" {
		return "", nil, "the conversation does not end with a user turn"
	}
	var texts []string
	window := map[int]bool{}
	for i := len(msgs) - 1; i >= 0 && len(texts) < turns; i-- {
		if role(msgs[i]) != "user" {
			continue
		}
		text, ok := textOf(msgs[i])
		if !ok {
			return "", nil, "a user turn holds more than text"
		}
		texts = append(texts, text)
		window[i] = true
	}
	for i, j := 0, len(texts)-1; i < j; i, j = i+1, j-1 {
		texts[i], texts[j] = texts[j], texts[i]
	}
	query := strings.Join(texts, "\n")
	if strings.TrimSpace(query) == "" {
		return "", nil, "the user turn is empty"
	}
	return query, window, ""
}

func role(m any) string {
	mm, _ := m.(map[string]any)
	s, _ := mm["role"].(string)
	return s
}

// textOf returns a message's text when its content is only text.
func textOf(m any) (string, bool) {
	mm, _ := m.(map[string]any)
	switch c := mm["content"].(type) {
	case string:
		return c, true
	case []any:
		var parts []string
		for _, p := range c {
			pm, _ := p.(map[string]any)
			if pm["type"] != "text" {
				return "", false
			}
			s, _ := pm["text"].(string)
			parts = append(parts, s)
		}
		return strings.Join(parts, "\n"), true
	}
	return "", false
}
