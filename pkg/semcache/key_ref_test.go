// The reference canonicaliser: the original implementation over a generic
// encoding/json value, kept verbatim (renamed) so the differential tests and
// FuzzKeysMatchReference can assert the byte-level one gives the same keys.

package semcache

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"sort"
	"strconv"
	"strings"
)

// refIgnoredFields are the top-level request members that do not change what
// the model answers, so requests differing only in them share an entry:
//
//   - stream, stream_options: the shape of the answer, not its content
//     (a hit is replayed in whichever shape the client asks for);
//   - user, safety_identifier, metadata: labels for abuse tracking and the
//     provider's dashboards;
//   - store: whether the provider keeps the completion for its own tools;
//   - service_tier: latency and price class, not the output;
//   - prompt_cache_key: a routing hint for the provider's prompt cache.
//
// model is not ignored but replaced by the model or route the client asked
// for (Request.Model). Every other member counts, including ones tollgate
// does not know: an unknown field is assumed to change the output.
var refIgnoredFields = map[string]bool{
	"stream":            true,
	"stream_options":    true,
	"user":              true,
	"safety_identifier": true,
	"metadata":          true,
	"store":             true,
	"service_tier":      true,
	"prompt_cache_key":  true,
}

var refErrNoRequest = errors.New("semcache: request has no chat body")

// refDecodeRequest parses the request body into a generic value. Raw is used
// when present (it holds fields the typed view does not know); otherwise the
// typed view is encoded.
func refDecodeRequest(r Request) (map[string]any, error) {
	if r.Chat == nil {
		return nil, refErrNoRequest
	}
	raw := []byte(r.Chat.Raw)
	if len(raw) == 0 {
		var err error
		if raw, err = json.Marshal(r.Chat); err != nil {
			return nil, err
		}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var body map[string]any
	if err := dec.Decode(&body); err != nil {
		return nil, err
	}
	if body == nil {
		return nil, refErrNoRequest
	}
	return body, nil
}

// refCanonicalBody removes the fields that do not change the output, replaces
// model by the asked model and normalises message content, in place.
func refCanonicalBody(body map[string]any, model string) {
	for k := range refIgnoredFields {
		delete(body, k)
	}
	body["model"] = model
	if msgs, ok := body["messages"].([]any); ok {
		for _, m := range msgs {
			if mm, ok := m.(map[string]any); ok {
				refNormaliseContent(mm)
			}
		}
	}
}

// refNormaliseContent makes the equivalent spellings of a message's content
// one: a single text part is the same as a plain string, and a null content
// the same as none.
func refNormaliseContent(m map[string]any) {
	c, present := m["content"]
	if !present {
		return
	}
	switch c := c.(type) {
	case nil:
		delete(m, "content")
	case []any:
		if len(c) != 1 {
			return
		}
		p, ok := c[0].(map[string]any)
		if !ok || len(p) != 2 || p["type"] != "text" {
			return
		}
		if s, ok := p["text"].(string); ok {
			m["content"] = s
		}
	}
}

// refAppendCanonical encodes v with object keys sorted, no whitespace and
// numbers normalised (see refAppendNumber). The encoding is only ever hashed.
func refAppendCanonical(b []byte, v any) []byte {
	switch v := v.(type) {
	case nil:
		return append(b, "null"...)
	case bool:
		return strconv.AppendBool(b, v)
	case json.Number:
		return refAppendNumber(b, v)
	case string:
		return strconv.AppendQuote(b, v)
	case []any:
		b = append(b, '[')
		for i, e := range v {
			if i > 0 {
				b = append(b, ',')
			}
			b = refAppendCanonical(b, e)
		}
		return append(b, ']')
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendQuote(b, k)
			b = append(b, ':')
			b = refAppendCanonical(b, v[k])
		}
		return append(b, '}')
	}
	// Only the types above come out of a json.Decoder with UseNumber.
	return append(b, '?')
}

// refAppendNumber writes a JSON number so that every spelling of one value is
// the same: 1, 1.0, 1e0 and 10e-1 all become 1. Integers are kept exact
// (seeds do not fit a float64's 53 bits); other values go through float64.
func refAppendNumber(b []byte, n json.Number) []byte {
	s := string(n)
	if !strings.ContainsAny(s, ".eE") {
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return strconv.AppendInt(b, i, 10)
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return append(b, s...)
	}
	if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		return strconv.AppendInt(b, int64(f), 10)
	}
	return strconv.AppendFloat(b, f, 'g', -1, 64)
}

// refDigest hashes its parts, each length-prefixed so that no two different
// lists of parts collide by concatenation, into 32 hex characters.
func refDigest(parts ...[]byte) string {
	h := sha256.New()
	var n [8]byte
	for _, p := range parts {
		l := len(p)
		for i := range n {
			n[i] = byte(l >> (8 * i))
		}
		h.Write(n[:])
		h.Write(p)
	}
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0])[:16])
}

// refRequestKeys is what one parse of a request yields for the cache.
type refRequestKeys struct {
	// exact is the exact cache key: scope and canonical request.
	exact string
	// scope isolates entries, exact and semantic: see refComputeKeys.
	scope string
	// query is the text the semantic path embeds: the last Turns user
	// turns, joined by newlines.
	query string
	// noSemantic says why the semantic path does not apply ("" when it does).
	noSemantic string
}

// refToolFields are the members that describe the tools a model may call and
// how; together they make the scope's tools hash.
var refToolFields = []string{"tools", "tool_choice", "parallel_tool_calls", "functions", "function_call"}

// refSamplingFields are bucketed (rounded to 0.1) in the scope: close values
// share a scope, so the semantic path can match across them. The exact key
// still holds their precise values.
var refSamplingFields = []string{"temperature", "top_p", "frequency_penalty", "presence_penalty"}

// refSamplingExact are output-changing parameters the scope keeps whole.
var refSamplingExact = []string{"stop", "logit_bias", "reasoning_effort", "verbosity", "modalities", "audio", "prediction", "web_search_options"}

// refComputeKeys parses r once and derives its keys. The scope hashes:
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
func refComputeKeys(r Request, turns int) (refRequestKeys, error) {
	body, err := refDecodeRequest(r)
	if err != nil {
		return refRequestKeys{}, err
	}
	refCanonicalBody(body, r.Model)
	msgs, _ := body["messages"].([]any)

	var k refRequestKeys
	var window map[int]bool // indexes of the embedded user turns
	k.query, window, k.noSemantic = refSemanticWindow(msgs, turns)

	var system, context []any
	for i, m := range msgs {
		switch refRole(m) {
		case "system", "developer":
			system = append(system, m)
		default:
			if !window[i] {
				context = append(context, m)
			}
		}
	}
	tools := map[string]any{}
	for _, f := range refToolFields {
		if v, ok := body[f]; ok {
			tools[f] = v
		}
	}
	buf := make([]byte, 0, 512)
	canon := func(v any) []byte {
		start := len(buf)
		buf = refAppendCanonical(buf, v)
		return buf[start:len(buf):len(buf)]
	}
	k.scope = refDigest(
		[]byte(r.Tenant),
		[]byte(r.Model),
		canon(system),
		canon(tools),
		canon(body["response_format"]),
		canon(refSamplingBucket(body)),
		canon(context),
	)
	k.exact = refDigest([]byte(k.scope), refAppendCanonical(nil, body))
	return k, nil
}

// refSamplingBucket is the scope's view of the sampling parameters.
func refSamplingBucket(body map[string]any) map[string]any {
	b := map[string]any{}
	for _, f := range refSamplingFields {
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
	for _, f := range refSamplingExact {
		if v, ok := body[f]; ok {
			b[f] = v
		}
	}
	return b
}

// refSemanticWindow picks the user turns the semantic path embeds: the last
// turns user messages, provided the conversation ends with a user message
// and they hold only text. It returns the text, the indexes of those
// messages and, when the semantic path does not apply, why.
func refSemanticWindow(msgs []any, turns int) (string, map[int]bool, string) {
	if turns < 1 {
		turns = 1
	}
	if len(msgs) == 0 || refRole(msgs[len(msgs)-1]) != "user" {
		return "", nil, "the conversation does not end with a user turn"
	}
	var texts []string
	window := map[int]bool{}
	for i := len(msgs) - 1; i >= 0 && len(texts) < turns; i-- {
		if refRole(msgs[i]) != "user" {
			continue
		}
		text, ok := refTextOf(msgs[i])
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

func refRole(m any) string {
	mm, _ := m.(map[string]any)
	s, _ := mm["role"].(string)
	return s
}

// refTextOf returns a message's text when its content is only text.
func refTextOf(m any) (string, bool) {
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
