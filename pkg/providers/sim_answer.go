package providers

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/tollgate/tollgate/pkg/llm"
)

// simAnswer is everything a Sim says to one request, before it is shaped
// into a response or a stream.
type simAnswer struct {
	id      string
	model   string
	prompt  int
	choices []simChoice
}

type simChoice struct {
	pieces []string // content tokens, after stop and max_tokens
	tool   *llm.ToolCall
	finish string
}

func (c *simChoice) text() string { return strings.Join(c.pieces, "") }

func (c *simChoice) tokens() int {
	if c.tool != nil {
		return len(simTokens(c.tool.Function.Name)) + len(simTokens(c.tool.Function.Arguments))
	}
	return len(c.pieces)
}

func (a *simAnswer) usage() *llm.Usage {
	u := &llm.Usage{PromptTokens: a.prompt}
	for i := range a.choices {
		u.CompletionTokens += a.choices[i].tokens()
	}
	u.TotalTokens = u.PromptTokens + u.CompletionTokens
	return u
}

// SimPromptHash is the 8-hex-digit hash a Sim's answer quotes: FNV-1a of
// the canonical (re-encoded) messages, so formatting of the client's JSON
// does not change it but any change of content does.
func SimPromptHash(chat *llm.ChatRequest) string {
	b, _ := json.Marshal(chat.Messages)
	h := fnv.New32a()
	h.Write(b)
	return fmt.Sprintf("%08x", h.Sum32())
}

func (s *Sim) answer(r *Request, rng *rand.Rand) *simAnswer {
	chat := r.Chat
	model := r.Model
	if model == "" {
		model = chat.Model
	}
	hash := SimPromptHash(chat)
	a := &simAnswer{
		id:      fmt.Sprintf("chatcmpl-sim%016x", rng.Uint64()),
		model:   model,
		prompt:  s.cfg.CountPrompt(chat),
		choices: make([]simChoice, chat.Choices()),
	}
	var last llm.Message // a request built in code may skip DecodeChatRequest's checks
	if len(chat.Messages) > 0 {
		last = chat.Messages[len(chat.Messages)-1]
	}
	tool := pickTool(chat)
	stops := chat.StopSequences()
	limit := r.OutputLimit() // an honest upstream: never more than the gateway reserved
	for i := range a.choices {
		c := &a.choices[i]
		seed := s.cfg.Seed ^ uint64(fnvString(hash))<<8 ^ uint64(i)
		if tool != nil && last.Role == "user" {
			args := "{}"
			if b, err := json.Marshal(schemaValue(tool.Parameters, "", false, 0)); err == nil && len(tool.Parameters) > 0 {
				args = string(b)
			}
			c.tool = &llm.ToolCall{
				ID:       fmt.Sprintf("call_sim%016x", seed*0x9e3779b97f4a7c15),
				Type:     "function",
				Function: llm.FunctionCall{Name: tool.Name, Arguments: args},
			}
			c.finish = "tool_calls"
			continue
		}
		text := s.compose(chat, model, hash, last, seed)
		c.finish = "stop"
		for _, stop := range stops {
			if j := strings.Index(text, stop); stop != "" && j >= 0 {
				text = text[:j]
			}
		}
		c.pieces = simTokens(text)
		if limit > 0 && len(c.pieces) > limit {
			c.pieces, c.finish = c.pieces[:limit], "length"
		}
	}
	return a
}

// compose writes the answer text: a head that names the model and the
// prompt's hash and echoes the last user text, then filler whose length
// depends on the prompt; JSON when response_format asks for it.
func (s *Sim) compose(chat *llm.ChatRequest, model, hash string, last llm.Message, seed uint64) string {
	echo := lastUserText(chat)
	head := fmt.Sprintf("[%s] reply to %s: %s", model, hash, truncateRunes(echo, 60))
	if last.Role == "tool" {
		head = fmt.Sprintf("[%s] reply to %s: the tool returned %q", model, hash, truncateRunes(last.Content.String(), 80))
	}
	rng := rand.New(rand.NewPCG(seed, 0x5151))
	words := 6 + rng.IntN(30)
	var b strings.Builder
	b.WriteString(head)
	b.WriteString(" —")
	for i := range words {
		b.WriteByte(' ')
		b.WriteString(fillerWords[rng.IntN(len(fillerWords))])
		if i%9 == 8 {
			b.WriteByte(',')
		}
	}
	b.WriteByte('.')
	text := b.String()

	if rf := chat.ResponseFormat; rf != nil {
		switch rf.Type {
		case "json_object":
			out, _ := json.Marshal(struct {
				Answer     string `json:"answer"`
				PromptHash string `json:"prompt_hash"`
			}{text, hash})
			return string(out)
		case "json_schema":
			var js struct {
				Schema json.RawMessage `json:"schema"`
			}
			_ = json.Unmarshal(rf.JSONSchema, &js)
			out, err := json.Marshal(schemaValue(js.Schema, head, true, 0))
			if err == nil && len(js.Schema) > 0 {
				return string(out)
			}
			out, _ = json.Marshal(map[string]string{"answer": text})
			return string(out)
		}
	}
	return text
}

var fillerWords = strings.Fields(`the a gateway token budget cache model route answer request stream latency
	upstream provider cost prompt reply simulated deterministic value result data signal quick steady
	careful clear short long first next final plain useful small large every other`)

func lastUserText(chat *llm.ChatRequest) string {
	for i := len(chat.Messages) - 1; i >= 0; i-- {
		if chat.Messages[i].Role == "user" {
			return chat.Messages[i].Content.String()
		}
	}
	return ""
}

func truncateRunes(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n]) + "…"
}

func fnvString(s string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(s))
	return h.Sum32()
}

type pickedTool struct {
	Name       string
	Parameters json.RawMessage
}

// pickTool returns the function the sim will call, or nil when tools are
// absent or tool_choice is "none".
func pickTool(chat *llm.ChatRequest) *pickedTool {
	if len(chat.Tools) == 0 {
		return nil
	}
	choice := bytes.TrimSpace(chat.ToolChoice)
	if string(choice) == `"none"` {
		return nil
	}
	want := ""
	if len(choice) > 0 && choice[0] == '{' {
		var tc struct {
			Function struct {
				Name string `json:"name"`
			} `json:"function"`
			Name string `json:"name"`
		}
		_ = json.Unmarshal(choice, &tc)
		want = tc.Function.Name
		if want == "" {
			want = tc.Name
		}
	}
	for _, t := range chat.Tools {
		if t.Type == "function" && (want == "" || t.Function.Name == want) {
			return &pickedTool{Name: t.Function.Name, Parameters: t.Function.Parameters}
		}
	}
	return nil
}

// schemaValue builds a value that satisfies a (simple) JSON schema: the
// required properties (all of them when all is set, as strict structured
// output requires), enums' first member, one array item. str fills strings.
func schemaValue(raw json.RawMessage, str string, all bool, depth int) any {
	var sch struct {
		Type       json.RawMessage            `json:"type"`
		Enum       []any                      `json:"enum"`
		Const      any                        `json:"const"`
		Properties map[string]json.RawMessage `json:"properties"`
		Required   []string                   `json:"required"`
		Items      json.RawMessage            `json:"items"`
		AnyOf      []json.RawMessage          `json:"anyOf"`
		OneOf      []json.RawMessage          `json:"oneOf"`
	}
	if depth > 8 || json.Unmarshal(raw, &sch) != nil {
		return nil
	}
	if sch.Const != nil {
		return sch.Const
	}
	if len(sch.Enum) > 0 {
		return sch.Enum[0]
	}
	if alt := append(sch.AnyOf, sch.OneOf...); len(alt) > 0 {
		return schemaValue(alt[0], str, all, depth+1)
	}
	typ := ""
	var types []string
	if json.Unmarshal(sch.Type, &typ) != nil && json.Unmarshal(sch.Type, &types) == nil {
		for _, t := range types {
			if t != "null" {
				typ = t
				break
			}
		}
	}
	if typ == "" && sch.Properties != nil {
		typ = "object"
	}
	switch typ {
	case "object":
		keys := sch.Required
		if all && len(keys) == 0 {
			for k := range sch.Properties {
				keys = append(keys, k)
			}
			sort.Strings(keys)
		}
		obj := make(map[string]any, len(keys))
		for _, k := range keys {
			obj[k] = schemaValue(sch.Properties[k], str, all, depth+1)
		}
		return obj
	case "array":
		if len(sch.Items) == 0 {
			return []any{}
		}
		return []any{schemaValue(sch.Items, str, all, depth+1)}
	case "string":
		if str == "" {
			return "sim"
		}
		return str
	case "integer":
		return 1
	case "number":
		return 1.5
	case "boolean":
		return true
	}
	return nil
}

// simTokens splits text the way the sim counts tokens: a word (with the
// space before it, at most 8 bytes) or a single other character per token,
// close to the ~4 characters per token of real English BPE. Joining the
// tokens gives the text back, so truncation and streaming stay consistent
// with the usage reported.
func simTokens(s string) []string {
	out := make([]string, 0, len(s)/4+1)
	for i := 0; i < len(s); {
		j := i
		if s[j] == ' ' && j+1 < len(s) && isWordByte(s[j+1]) {
			j++
		}
		k := j
		for k < len(s) && isWordByte(s[k]) && k-j < 8 {
			_, size := utf8.DecodeRuneInString(s[k:])
			k += size
		}
		if k == j {
			_, size := utf8.DecodeRuneInString(s[j:])
			k = j + size
		}
		out = append(out, s[i:k])
		i = k
	}
	return out
}

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c >= 0x80 && !isPunctRuneStart(c)
}

// isPunctRuneStart keeps the em dash and ellipsis (E2 80 ..) as their own
// tokens rather than gluing them to words.
func isPunctRuneStart(c byte) bool { return c == 0xE2 }

// SimPromptTokens is the sim's default prompt-token count: its own token
// split of every message's text, plus OpenAI's chat framing (3 tokens per
// message and 3 to prime the reply), 85 per image (OpenAI's low-detail
// price) and the tools' JSON. It is an estimate for demos, not a tokenizer.
func SimPromptTokens(chat *llm.ChatRequest) int {
	n := 3
	for i := range chat.Messages {
		m := &chat.Messages[i]
		n += 3 + len(simTokens(m.Content.String())) + len(simTokens(m.Name))
		for _, p := range m.Content.Parts {
			if p.Type == "image_url" {
				n += 85
			}
		}
		for _, tc := range m.ToolCalls {
			n += len(simTokens(tc.Function.Name)) + len(simTokens(tc.Function.Arguments))
		}
	}
	for _, t := range chat.Tools {
		n += len(simTokens(t.Function.Name)) + len(simTokens(t.Function.Description)) + len(simTokens(string(t.Function.Parameters)))
	}
	return n
}
