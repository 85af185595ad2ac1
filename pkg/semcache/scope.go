package semcache

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
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

// The top-level members the scope reads, by how.
const (
	fieldTool     = iota + 1 // tools, tool_choice, parallel_tool_calls, functions, function_call: the tools hash
	fieldSampling            // temperature, top_p, frequency_penalty, presence_penalty: bucketed (rounded to 0.1)
	fieldSeed                // seed: only whether it is set
	fieldExact               // stop, logit_bias, ...: kept whole
)

// scopeFields are the members of the tools hash and of the sampling bucket,
// each in its hash's canonical (sorted) order. Bucketed sampling values let
// the semantic path match across close values; the exact key still holds
// their precise values.
var scopeFields = func() []struct {
	name string
	kind int
} {
	tools := []string{"tools", "tool_choice", "parallel_tool_calls", "functions", "function_call"}
	bucketed := []string{"temperature", "top_p", "frequency_penalty", "presence_penalty"}
	exact := []string{"stop", "logit_bias", "reasoning_effort", "verbosity", "modalities", "audio", "prediction", "web_search_options"}
	var fs []struct {
		name string
		kind int
	}
	add := func(kind int, names ...string) {
		for _, n := range names {
			fs = append(fs, struct {
				name string
				kind int
			}{n, kind})
		}
	}
	add(fieldTool, tools...)
	add(fieldSampling, bucketed...)
	add(fieldSeed, "seed")
	add(fieldExact, exact...)
	slices.SortFunc(fs, func(a, b struct {
		name string
		kind int
	}) int {
		return strings.Compare(a.name, b.name)
	})
	return fs
}()

// scopeField is the index in scopeFields of a top-level member, or -1.
// (A comparison with string(key) does not allocate; a comparator would.)
func scopeField(key []byte) int {
	for i, f := range scopeFields {
		if f.name == string(key) {
			return i
		}
	}
	return -1
}

var canonPool = sync.Pool{New: func() any { return new(canon) }}

// maxPooled bounds the scratch a pooled canon keeps: one huge request must
// not pin its buffers for good.
const maxPooled = 64 << 10

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
// The exact key hashes the scope and the whole canonical request. Both are
// computed in one pass over the raw body into pooled buffers: no decoded
// tree is built (see canon).
func computeKeys(r Request, turns int) (requestKeys, error) {
	if r.Chat == nil {
		return requestKeys{}, errNoRequest
	}
	raw := []byte(r.Chat.Raw)
	if len(raw) == 0 {
		var err error
		if raw, err = json.Marshal(r.Chat); err != nil {
			return requestKeys{}, err
		}
	}
	c := canonPool.Get().(*canon)
	defer func() {
		c.in = nil
		clear(c.texts)
		if cap(c.out) <= maxPooled && cap(c.body) <= maxPooled && cap(c.scope) <= maxPooled {
			canonPool.Put(c)
		}
	}()
	return c.keysOf(raw, r.Tenant, r.Model, turns)
}

func (c *canon) keysOf(raw []byte, tenant, model string, turns int) (requestKeys, error) {
	c.reset(raw)
	i := c.skipSpace(0)
	if i >= len(raw) || raw[i] != '{' || c.object(i, modeTop) < 0 {
		return requestKeys{}, errNotObject // trailing bytes are ignored, as encoding/json's Decoder did
	}
	// model is replaced by the asked model: a last member of that name wins.
	ks, kv := len(c.keys), len(c.out)
	c.keys = append(c.keys, "model"...)
	c.out = append(c.out, `"model":`...)
	vs := len(c.out)
	c.out = strconv.AppendQuote(c.out, model)
	c.mems = append(c.mems, member{key: span{ks, len(c.keys)}, kv: span{kv, len(c.out)}, val: span{vs, len(c.out)}})

	// The canonical request, after the exact key's digest header.
	const header = 8 + 32 + 8
	c.body = append(c.body[:0], make([]byte, header)...)
	c.body = append(c.body, '{')
	var fields [32]member // by scopeFields index; val absent when the member is
	ms := c.mems
	c.sortMembers(ms)
	for j, m := range ms {
		key := c.key(m)
		if j+1 < len(ms) && string(key) == string(c.key(ms[j+1])) || ignored(key) {
			continue
		}
		if len(c.body) > header+1 {
			c.body = append(c.body, ',')
		}
		c.body = append(c.body, c.out[m.kv.start:m.kv.end]...)
		if f := scopeField(key); f >= 0 {
			fields[f] = m
		}
	}
	c.body = append(c.body, '}')

	var k requestKeys
	k.query, k.noSemantic = c.window(turns)

	c.scope = c.scope[:0]
	c.scope = appendPart(c.scope, []byte(tenant))
	c.scope = appendPart(c.scope, []byte(model))
	c.scope = c.appendMessages(c.scope, true)
	p := beginPart(&c.scope)
	c.scope = c.appendFields(c.scope, fields[:], fieldTool)
	endPart(c.scope, p)
	p = beginPart(&c.scope)
	if rf := c.topValue(ms, "response_format"); rf != nil {
		c.scope = append(c.scope, rf...)
	} else {
		c.scope = append(c.scope, "null"...)
	}
	endPart(c.scope, p)
	p = beginPart(&c.scope)
	c.scope = c.appendFields(c.scope, fields[:], fieldSampling, fieldSeed, fieldExact)
	endPart(c.scope, p)
	c.scope = c.appendMessages(c.scope, false)
	sum := sha256.Sum256(c.scope)
	hex.Encode(c.body[8:40], sum[:16])
	k.scope = string(c.body[8:40])

	binary.LittleEndian.PutUint64(c.body[0:8], 32)
	binary.LittleEndian.PutUint64(c.body[40:48], uint64(len(c.body)-header))
	sum = sha256.Sum256(c.body)
	var exact [32]byte
	hex.Encode(exact[:], sum[:16])
	k.exact = string(exact[:])
	return k, nil
}

// topValue is the canonical value of the request's last member named key,
// or nil. ms are sorted.
func (c *canon) topValue(ms []member, key string) []byte {
	var v []byte
	for _, m := range ms {
		if string(c.key(m)) == key {
			v = c.out[m.val.start:m.val.end]
		}
	}
	return v
}

// The digest framing: each part is prefixed by its length (8 bytes, little
// endian), so that no two different lists of parts collide by
// concatenation; a key is the first 16 bytes of the SHA-256, in hex.
// SHA-256 rather than a faster keyed hash: it keeps every key ever
// persisted valid, and with SHA-NI it costs well under a microsecond here.

func beginPart(b *[]byte) int {
	*b = append(*b, make([]byte, 8)...)
	return len(*b)
}

func endPart(b []byte, p int) { binary.LittleEndian.PutUint64(b[p-8:p], uint64(len(b)-p)) }

func appendPart(b, part []byte) []byte {
	b = binary.LittleEndian.AppendUint64(b, uint64(len(part)))
	return append(b, part...)
}

// appendMessages writes as one part the system prompt (system true: the
// system and developer messages) or the conversation context (the other
// messages but the embedded user turns).
func (c *canon) appendMessages(b []byte, system bool) []byte {
	p := beginPart(&b)
	b = append(b, '[')
	n := 0
	for _, m := range c.msgs {
		if (m.role == roleSystem) != system || m.window {
			continue
		}
		if n++; n > 1 {
			b = append(b, ',')
		}
		b = append(b, c.out[m.elem.start:m.elem.end]...)
	}
	b = append(b, ']')
	endPart(b, p)
	return b
}

// appendFields writes the object of the present scope fields of the given
// kinds, as the scope sees them.
func (c *canon) appendFields(b []byte, fields []member, kinds ...int) []byte {
	b = append(b, '{')
	first := true
	for i, f := range scopeFields {
		m := fields[i]
		if !slices.Contains(kinds, f.kind) || !m.kv.present() {
			continue
		}
		v := c.out[m.val.start:m.val.end]
		switch f.kind {
		case fieldSampling:
			if raw := c.in[m.raw.start:m.raw.end]; raw[0] == '-' || isDigit(raw[0]) {
				x, err := strconv.ParseFloat(string(raw), 64)
				if err != nil {
					continue
				}
				b = appendMember(b, &first, f.name)
				b = append(b, '"')
				b = strconv.AppendFloat(b, math.Round(x*10)/10, 'f', 1, 64)
				b = append(b, '"')
				continue
			}
			if string(v) == "null" {
				continue
			}
		case fieldSeed:
			if string(v) == "null" {
				continue
			}
			v = []byte("true")
		}
		b = appendMember(b, &first, f.name)
		b = append(b, v...)
	}
	return append(b, '}')
}

func appendMember(b []byte, first *bool, name string) []byte {
	if !*first {
		b = append(b, ',')
	}
	*first = false
	b = append(b, '"')
	b = append(b, name...)
	return append(b, '"', ':')
}

// window picks the user turns the semantic path embeds: the last turns
// user messages, provided the conversation ends with a user message and
// they hold only text. It marks those messages and returns their text or,
// when the semantic path does not apply, why.
func (c *canon) window(turns int) (query, noSemantic string) {
	if turns < 1 {
		turns = 1
	}
	msgs := c.msgs
	if len(msgs) == 0 || msgs[len(msgs)-1].role != roleUser {
		return "", "the conversation does not end with a user turn"
	}
	texts := c.texts[:0]
	for i := len(msgs) - 1; i >= 0 && len(texts) < turns; i-- {
		if msgs[i].role != roleUser {
			continue
		}
		text, ok := c.textOf(msgs[i])
		if !ok {
			c.clearWindow()
			return "", "a user turn holds more than text"
		}
		texts = append(texts, text)
		msgs[i].window = true
	}
	c.texts = texts
	slices.Reverse(texts)
	query = strings.Join(texts, "\n")
	if strings.TrimSpace(query) == "" {
		c.clearWindow()
		return "", "the user turn is empty"
	}
	return query, ""
}

func (c *canon) clearWindow() {
	for i := range c.msgs {
		c.msgs[i].window = false
	}
}

// textOf returns a message's text when its content is only text: a string
// or text parts (joined by newlines).
func (c *canon) textOf(m message) (string, bool) {
	if !m.content.present() {
		return "", false
	}
	v := c.out[m.content.start:m.content.end]
	switch v[0] {
	case '"':
		return unquote(v), true
	case '[':
		var parts []string
		for i := 1; v[i] != ']'; i++ {
			e := canonEnd(v, i)
			part := v[i:e]
			if part[0] != '{' || string(canonField(part, `"type"`)) != `"text"` {
				return "", false
			}
			s := ""
			if t := canonField(part, `"text"`); len(t) > 0 && t[0] == '"' {
				s = unquote(t)
			}
			parts = append(parts, s)
			if i = e; v[i] == ']' {
				break
			}
		}
		return strings.Join(parts, "\n"), true
	}
	return "", false
}

// canonField is the value of the member named (quoted) name in the
// canonical object obj, or nil.
func canonField(obj []byte, name string) []byte {
	for i := 1; i < len(obj) && obj[i] == '"'; {
		ke := canonEnd(obj, i)
		ve := canonEnd(obj, ke+1)
		if string(obj[i:ke]) == name {
			return obj[ke+1 : ve]
		}
		i = ve + 1
	}
	return nil
}

// unquote decodes a canonical (strconv.Quote) string.
func unquote(q []byte) string {
	if !slices.Contains(q, '\\') {
		return string(q[1 : len(q)-1])
	}
	s, err := strconv.Unquote(string(q))
	if err != nil {
		panic("semcache: canonical string does not unquote: " + err.Error())
	}
	return s
}

// Scopes with nothing to find.
//
// When every conversation is its own scope (the scope hashes the earlier
// turns), most scopes hold one entry or none, and embedding a miss there
// only to search an empty scope is the largest cost of the miss path. With
// an embedded index (Cache.lazy) the cache knows every point the index
// holds, so it keeps per scope the number of entries with a vector in the
// index and the entries stored without one (pending: their query was never
// embedded). A lookup in a scope with neither skips the embedding; a lookup
// in a scope with pending entries embeds the query and theirs in one call
// and indexes them before searching. A shared index (Qdrant) may hold
// other replicas' points: there every lookup embeds.

// maxPendingEmbed bounds the pending entries one lookup embeds with its
// query; the rest wait for the next lookup in the scope.
const maxPendingEmbed = 63

// scopeState is what a scope holds for the semantic path. Guarded by
// Cache.mu.
type scopeState struct {
	vectored int      // live entries whose vector is in the index
	pending  []uint64 // entries with a query and no vector, not claimed by a lookup
}

// trackLocked counts m (just added, or just made vectored) in its scope.
// c.mu is held.
func (c *Cache) trackLocked(id uint64, m *entryMeta) {
	if !c.lazy || (!m.vectored && !m.pending) {
		return
	}
	st := c.scopes[m.scope]
	if st == nil {
		st = &scopeState{}
		c.scopes[m.scope] = st
	}
	if m.vectored {
		st.vectored++
	} else {
		st.pending = append(st.pending, id)
	}
}

// untrackLocked uncounts m (dropped from memory). c.mu is held.
func (c *Cache) untrackLocked(id uint64, m *entryMeta) {
	st := c.scopes[m.scope]
	if !c.lazy || st == nil {
		return
	}
	if m.vectored {
		st.vectored--
	} else if i := slices.Index(st.pending, id); i >= 0 {
		st.pending = slices.Delete(st.pending, i, i+1)
	}
	c.dropEmptyLocked(m.scope)
}

func (c *Cache) dropEmptyLocked(scope string) {
	if st := c.scopes[scope]; st != nil && st.vectored <= 0 && len(st.pending) == 0 {
		delete(c.scopes, scope)
	}
}

// claimed are pending entries a lookup took to embed with its query.
type claimed struct {
	ids   []uint64
	metas []*entryMeta
	texts []string
}

// claimPending says whether scope may hold a candidate (worth embedding
// the query) and takes up to maxPendingEmbed of its pending entries, which
// the caller must index (indexPending) or give back (restorePending).
func (c *Cache) claimPending(scope string) (worth bool, cl claimed) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.scopes[scope]
	if st == nil {
		return false, cl
	}
	n := min(len(st.pending), maxPendingEmbed)
	for _, id := range st.pending[:n] {
		if m := c.meta[id]; m != nil && m.pending {
			cl.ids = append(cl.ids, id)
			cl.metas = append(cl.metas, m)
			cl.texts = append(cl.texts, m.query)
		}
	}
	st.pending = slices.Delete(st.pending, 0, n)
	return true, cl
}

// restorePending gives back claimed entries still held and still pending.
func (c *Cache) restorePending(cl claimed) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, id := range cl.ids {
		if m := cl.metas[i]; c.meta[id] == m && m.pending {
			c.trackLocked(id, m)
		}
	}
	if len(cl.metas) > 0 {
		c.dropEmptyLocked(cl.metas[0].scope)
	}
}
