package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"

	"github.com/tollgate/tollgate/pkg/llm"
	"github.com/tollgate/tollgate/pkg/tokens"
)

// Generated prompts: the miss-path scenarios send a conversation nobody has
// sent before with every request, so that a cache in front of the upstream
// never finds it and each request pays the whole miss path (exact lookup,
// embedding, vector search, guard, upstream call, store).
//
// A conversation is made from templates and word lists (words.go) with a
// random source seeded by the run's seed and the request's id: varied
// everyday English, not a counter appended to a fixed sentence, which an
// embedder or a tokenizer's segment cache could shortcut. Distinctness does
// not rest on chance: every conversation names a quality, a thing and a
// setting taken from its id by a bijection (slots), so two ids below
// capacity never produce the same text.

// promptKind is the shape of the generated conversations.
type promptKind int

const (
	// shortPrompt: one user question of about 15 tokens.
	shortPrompt promptKind = iota
	// mediumPrompt: one user message of about 150 tokens (a situation,
	// details and a question).
	mediumPrompt
	// longPrompt: about 1,500 tokens: a system prompt, several user and
	// assistant turns and a final user question.
	longPrompt
)

func (k promptKind) String() string {
	switch k {
	case shortPrompt:
		return "short"
	case mediumPrompt:
		return "medium"
	case longPrompt:
		return "long"
	}
	return fmt.Sprintf("promptKind(%d)", int(k))
}

// tokenRange bounds the size of a kind's conversations in o200k tokens,
// counted in the chat format (about 7 tokens of overhead for a single
// message: a 15-token question is about 22). The generator estimates
// tokens as words x 1.3 while it builds; promptStats measures them.
func (k promptKind) tokenRange() (lo, hi int) {
	switch k {
	case shortPrompt:
		return 14, 32
	case mediumPrompt:
		return 120, 190
	default:
		return 1250, 1800
	}
}

type message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// chatRequest is the body sent: the model, the conversation and an output
// limit; no sampling fields, so the cache's default policy applies.
type chatRequest struct {
	Model     string    `json:"model"`
	Messages  []message `json:"messages"`
	MaxTokens int       `json:"max_tokens"`
}

// promptGen generates the conversation of a kind for an id. The same seed
// and id always give the same conversation.
type promptGen struct {
	kind promptKind
	seed uint64
}

// slotSpace is how many distinct (quality, thing, setting) triples there
// are; slotMul is coprime with it, so id*slotMul+seed mod slotSpace is a
// bijection that also scatters consecutive ids over all three lists.
var slotSpace, slotMul = func() (uint64, uint64) {
	m := uint64(len(qualities) * len(things) * len(places))
	p := m*618/1000 | 1
	for gcd(p, m) != 1 {
		p += 2
	}
	return m, p
}()

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// capacity is how many ids have distinct conversations: ids from 0 to
// capacity-1 (a run sends far fewer: 100,000 prefilled entries and a few
// hundred thousand measured requests).
func (g promptGen) capacity() uint64 { return slotSpace }

// slots are the quality, thing and setting of id.
func (g promptGen) slots(id uint64) (q, t, s string) {
	x := (id%slotSpace*slotMul + g.seed%slotSpace) % slotSpace
	q = qualities[x%uint64(len(qualities))]
	x /= uint64(len(qualities))
	t = things[x%uint64(len(things))]
	x /= uint64(len(things))
	return q, t, places[x]
}

// conversation is the messages of id.
func (g promptGen) conversation(id uint64) []message {
	q, t, s := g.slots(id)
	e := &expander{r: rand.New(rand.NewPCG(g.seed, id)), q: q, t: t, s: s}
	switch g.kind {
	case shortPrompt:
		return []message{{"user", e.fill(pick(e.r, shortTemplates))}}
	case mediumPrompt:
		lo, hi := g.kind.tokenRange()
		return []message{{"user", e.userMessage(lo+10, hi-20)}}
	}
	return e.longConversation()
}

// request is the chat request of id, encoded.
func (g promptGen) request(id uint64) request {
	b, err := json.Marshal(chatRequest{Model: "bench-model", Messages: g.conversation(id), MaxTokens: 256})
	if err != nil {
		panic(err) // strings only: cannot fail
	}
	return request{name: g.kind.String(), path: "/chat/completions", body: b}
}

// expander fills templates for one conversation.
type expander struct {
	r       *rand.Rand
	q, t, s string // the id's slots
	b       strings.Builder
}

func pick[T any](r *rand.Rand, list []T) T { return list[r.IntN(len(list))] }

// article is "a" or "an" for the word that follows it.
func article(w string) string {
	if w != "" && strings.ContainsRune("aeiou", rune(w[0])) {
		return "an"
	}
	return "a"
}

// withArticle puts "a" or "an" before w when the placeholder's name asks
// for it ({aX} rather than {X}).
func withArticle(name, w string) string {
	if name[0] == 'a' {
		return article(w) + " " + w
	}
	return w
}

// fill expands the placeholders of tpl (see words.go), a sentence: its
// first letter is capitalised.
func (e *expander) fill(tpl string) string {
	e.b.Reset()
	for {
		i := strings.IndexByte(tpl, '{')
		if i < 0 {
			e.b.WriteString(tpl)
			break
		}
		j := strings.IndexByte(tpl[i:], '}')
		if j < 0 {
			panic("template without closing brace: " + tpl)
		}
		e.b.WriteString(tpl[:i])
		e.b.WriteString(e.value(tpl[i+1 : i+j]))
		tpl = tpl[i+j+1:]
	}
	s := e.b.String()
	if s != "" && 'a' <= s[0] && s[0] <= 'z' {
		s = string(s[0]-'a'+'A') + s[1:]
	}
	return s
}

func (e *expander) value(name string) string {
	r := e.r
	switch name {
	case "Q":
		return e.q
	case "aQ":
		return article(e.q) + " " + e.q
	case "T":
		return e.t
	case "S":
		return e.s
	case "aS":
		return article(e.s) + " " + e.s
	case "V":
		return pick(r, actions).base
	case "Ving":
		return pick(r, actions).ing
	case "Ved":
		return pick(r, actions).past
	case "X", "aX":
		return withArticle(name, pick(r, things))
	case "Y", "aY":
		return withArticle(name, pick(r, places))
	case "Z", "aZ":
		return withArticle(name, pick(r, qualities))
	case "N":
		return fmt.Sprint(2 + r.IntN(11))
	case "N2":
		return fmt.Sprint(50 + 10*r.IntN(86))
	case "N3":
		return fmt.Sprint(1 + r.IntN(5))
	case "P":
		return pick(r, persons)
	case "W":
		return pick(r, timesOfDay)
	case "D":
		return pick(r, weekdays)
	case "tail":
		return pick(r, tails)
	}
	panic("unknown placeholder {" + name + "}")
}

// estTokens is the generator's running estimate: words x 1.3.
func estTokens(s string) int { return len(strings.Fields(s)) * 13 / 10 }

// between is a random size in [lo, hi].
func (e *expander) between(lo, hi int) int { return lo + e.r.IntN(hi-lo+1) }

// sentences appends background sentences, in a random order without
// repeats, until the text reaches about want tokens.
func (e *expander) sentences(parts []string, want int) []string {
	n := 0
	for _, p := range parts {
		n += estTokens(p)
	}
	for _, i := range e.r.Perm(len(backgrounds)) {
		if n >= want {
			break
		}
		s := e.fill(backgrounds[i])
		parts = append(parts, s)
		n += estTokens(s)
	}
	return parts
}

// userMessage is an opening naming the slots, background and a question,
// of lo to hi tokens (estimated).
func (e *expander) userMessage(lo, hi int) string {
	want := e.between(lo, hi)
	q := e.fill(pick(e.r, questions))
	f := pick(e.r, formats)
	parts := e.sentences([]string{e.fill(pick(e.r, openings))}, want-estTokens(q)-estTokens(f))
	parts = append(parts, q)
	if f != "" {
		parts = append(parts, f)
	}
	return strings.Join(parts, " ")
}

// answer is an assistant turn: advice, numbered steps, more advice.
func (e *expander) answer() string {
	var b strings.Builder
	for i := range 1 + e.r.IntN(2) {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(e.fill(pick(e.r, advice)))
	}
	b.WriteString("\n\nHere is a simple plan:\n")
	for i, k := range e.r.Perm(len(steps))[:3+e.r.IntN(4)] {
		fmt.Fprintf(&b, "%d. %s\n", i+1, e.fill(steps[k]))
	}
	b.WriteByte('\n')
	for i := range 1 + e.r.IntN(3) {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(e.fill(pick(e.r, advice)))
	}
	return b.String()
}

// followUp is a later user turn of lo to hi tokens (estimated); last ends
// it with a question.
func (e *expander) followUp(lo, hi int, last bool) string {
	want := e.between(lo, hi)
	parts := e.sentences([]string{e.fill(pick(e.r, followUps))}, want)
	if last {
		parts = append(parts, e.fill(pick(e.r, questions)))
	}
	return strings.Join(parts, " ")
}

// longConversation alternates user and assistant turns until the whole is
// close to its target size, then asks a final question.
func (e *expander) longConversation() []message {
	lo, hi := longPrompt.tokenRange()
	want := e.between(lo+100, hi-150)
	msgs := []message{{"system", pick(e.r, systemPrompts)}, {"user", e.userMessage(120, 200)}}
	n := estTokens(msgs[0].Content) + estTokens(msgs[1].Content)
	final := e.followUp(50, 110, true)
	for n+estTokens(final) < want {
		a := e.answer()
		msgs = append(msgs, message{"assistant", a})
		n += estTokens(a)
		if n+estTokens(final) >= want {
			break
		}
		u := e.followUp(30, 90, false)
		msgs = append(msgs, message{"user", u})
		n += estTokens(u)
		if n+estTokens(final) >= want {
			// The turn before the final question must be the assistant's.
			a := e.answer()
			msgs = append(msgs, message{"assistant", a})
			n += estTokens(a)
		}
	}
	return append(msgs, message{"user", final})
}

// generated is a request source: every request is a new conversation, ids
// counted across all targets, phases and workers of a scenario (and its
// prefill), so no two requests of a run are the same.
type generated struct {
	gen promptGen
	ids atomic.Uint64
}

func (g *generated) next() request { return g.gen.request(g.ids.Add(1) - 1) }

// promptStats describes the conversations of a generator, measured on a
// sample with the gateway's own tokenizer code.
type promptStats struct {
	Kind      string  `json:"kind"`
	Tokenizer string  `json:"tokenizer"`
	Sample    int     `json:"sample"`
	Mean      float64 `json:"mean_tokens"`
	Min       int     `json:"min_tokens"`
	Max       int     `json:"max_tokens"`
	// LastUser is the mean size of the last user message, the text the
	// semantic cache embeds (cache.semantic.turns: 1).
	LastUser  float64 `json:"mean_last_user_tokens"`
	Messages  float64 `json:"mean_messages"`
	Estimated float64 `json:"mean_words_x1.3"`
	Example   string  `json:"example"`
}

// measurePrompts counts the tokens of n conversations of g (ids far above
// any a run sends, so the sample is not the requests themselves but drawn
// the same way) as the gateway counts a chat request for an OpenAI model:
// o200k_base with the chat format's per-message overheads.
func measurePrompts(g promptGen, n int) (promptStats, error) {
	c := tokens.NewCounter(tokens.WithSegmentCache(0))
	st := promptStats{Kind: g.kind.String(), Tokenizer: tokens.O200K + " (chat format, as the gateway counts)", Sample: n}
	var sum, last, msgs, est float64
	base := g.capacity() - uint64(n)
	for i := range n {
		conv := g.conversation(base + uint64(i))
		req := &llm.ChatRequest{Model: "bench-model"}
		e := 0
		for _, m := range conv {
			req.Messages = append(req.Messages, llm.Message{Role: m.Role, Content: llm.TextContent(m.Content)})
			e += estTokens(m.Content)
		}
		t, err := c.CountChat(tokens.O200K, "bench-model", req)
		if err != nil {
			return st, err
		}
		lu, err := c.Count(tokens.O200K, conv[len(conv)-1].Content)
		if err != nil {
			return st, err
		}
		if i == 0 || t < st.Min {
			st.Min = t
		}
		st.Max = max(st.Max, t)
		sum += float64(t)
		last += float64(lu)
		msgs += float64(len(conv))
		est += float64(e)
		if i == 0 {
			st.Example = conv[len(conv)-1].Content
		}
	}
	st.Mean, st.LastUser, st.Messages, st.Estimated = sum/float64(n), last/float64(n), msgs/float64(n), est/float64(n)
	return st, nil
}
