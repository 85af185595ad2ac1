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

// ignoredFields are the top-level request members that do not change what
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
var ignoredFields = map[string]bool{
	"stream":            true,
	"stream_options":    true,
	"user":              true,
	"safety_identifier": true,
	"metadata":          true,
	"store":             true,
	"service_tier":      true,
	"prompt_cache_key":  true,
}

var errNoRequest = errors.New("semcache: request has no chat body")

// decodeRequest parses the request body into a generic value. Raw is used
// when present (it holds fields the typed view does not know); otherwise the
// typed view is encoded.
func decodeRequest(r Request) (map[string]any, error) {
	if r.Chat == nil {
		return nil, errNoRequest
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
		return nil, errNoRequest
	}
	return body, nil
}

// canonicalBody removes the fields that do not change the output, replaces
// model by the asked model and normalises message content, in place.
func canonicalBody(body map[string]any, model string) {
	for k := range ignoredFields {
		delete(body, k)
	}
	body["model"] = model
	if msgs, ok := body["messages"].([]any); ok {
		for _, m := range msgs {
			if mm, ok := m.(map[string]any); ok {
				normaliseContent(mm)
			}
		}
	}
}

// normaliseContent makes the equivalent spellings of a message's content
// one: a single text part is the same as a plain string, and a null content
// the same as none.
func normaliseContent(m map[string]any) {
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

// appendCanonical encodes v with object keys sorted, no whitespace and
// numbers normalised (see appendNumber). The encoding is only ever hashed.
func appendCanonical(b []byte, v any) []byte {
	switch v := v.(type) {
	case nil:
		return append(b, "null"...)
	case bool:
		return strconv.AppendBool(b, v)
	case json.Number:
		return appendNumber(b, v)
	case string:
		return strconv.AppendQuote(b, v)
	case []any:
		b = append(b, '[')
		for i, e := range v {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendCanonical(b, e)
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
			b = appendCanonical(b, v[k])
		}
		return append(b, '}')
	}
	// Only the types above come out of a json.Decoder with UseNumber.
	return append(b, '?')
}

// appendNumber writes a JSON number so that every spelling of one value is
// the same: 1, 1.0, 1e0 and 10e-1 all become 1. Integers are kept exact
// (seeds do not fit a float64's 53 bits); other values go through float64.
func appendNumber(b []byte, n json.Number) []byte {
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

// digest hashes its parts, each length-prefixed so that no two different
// lists of parts collide by concatenation, into 32 hex characters.
func digest(parts ...[]byte) string {
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

// ExactKey is the exact cache key of r: a hash of its scope and of the
// canonical request (see ignoredFields). Two requests have the same key
// exactly when they would be served the same exact entry, so the gateway
// collapses identical concurrent misses on it (Flight). It is "" when the
// request cannot be parsed.
func (c *Cache) ExactKey(r Request) string {
	k, err := computeKeys(r, c.turns)
	if err != nil {
		return ""
	}
	return k.exact
}
