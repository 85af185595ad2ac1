package gateway

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/pkg/guardrails"
	"github.com/tollgate/tollgate/pkg/llm"
)

func textChunk(choice int, content string, finish bool) *llm.ChatChunk {
	ch := llm.ChunkChoice{Index: choice, Delta: llm.Delta{Content: &content}}
	if finish {
		stop := "stop"
		ch.FinishReason = &stop
	}
	return &llm.ChatChunk{ID: "c", Model: "m", Choices: []llm.ChunkChoice{ch}, Raw: []byte(`{"raw":true}`)}
}

func toolChunk(choice, tool int, id, name, args string) *llm.ChatChunk {
	idx := tool
	return &llm.ChatChunk{ID: "c", Model: "m", Choices: []llm.ChunkChoice{{Index: choice, Delta: llm.Delta{
		ToolCalls: []llm.ToolCall{{Index: &idx, ID: id, Function: llm.FunctionCall{Name: name, Arguments: args}}}}}}}
}

func finishChunk(choice int) *llm.ChatChunk {
	stop := "tool_calls"
	return &llm.ChatChunk{ID: "c", Model: "m", Choices: []llm.ChunkChoice{{Index: choice, FinishReason: &stop}}}
}

// collected is what the filtered chunks say, per choice: its content, then
// each tool call's arguments ("|0:{...}|1:{...}").
func collected(chunks []*llm.ChatChunk) map[int]string {
	content, args := map[int]string{}, map[int][]string{}
	for _, c := range chunks {
		for _, ch := range c.Choices {
			if ch.Delta.Content != nil {
				content[ch.Index] += *ch.Delta.Content
			}
			for _, tc := range ch.Delta.ToolCalls {
				for len(args[ch.Index]) <= *tc.Index {
					args[ch.Index] = append(args[ch.Index], "")
				}
				args[ch.Index][*tc.Index] += tc.Function.Arguments
			}
		}
	}
	out := map[int]string{}
	for i, c := range content {
		out[i] = c
	}
	for i, list := range args {
		for j, a := range list {
			out[i] += fmt.Sprintf("|%d:%s", j, a)
		}
	}
	return out
}

func TestChunkFilterMasksSplitTexts(t *testing.T) {
	pii, err := guardrails.Compile(guardrails.Spec{Name: "pii", Detectors: []string{"email", "card"}, Action: guardrails.Mask, Answer: true, Request: true})
	if err != nil {
		t.Fatal(err)
	}
	policy, err := guardrails.NewPolicy([]guardrails.Use{{Guard: pii}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		chunks []*llm.ChatChunk
		want   map[int]string
	}{
		{
			name:   "card over three chunks, flushed at finish",
			chunks: []*llm.ChatChunk{textChunk(0, "card 4111 11", false), textChunk(0, "11 1111 1", false), textChunk(0, "111 ok", true)},
			want:   map[int]string{0: "card [CARD_1] ok"},
		},
		{
			name:   "held text flushed when the upstream ends without a finish",
			chunks: []*llm.ChatChunk{textChunk(0, "mail ann@", false), textChunk(0, "x.io", false)},
			want:   map[int]string{0: "mail [EMAIL_1]"},
		},
		{
			name: "content flushed when a tool call starts; arguments per tool",
			chunks: []*llm.ChatChunk{
				textChunk(0, "calling for bob@y.org", false),
				toolChunk(0, 0, "call_1", "lookup", `{"email":"bob@`), toolChunk(0, 0, "", "", `y.org"}`),
				toolChunk(0, 1, "call_2", "charge", `{"card":"5500 0000 `), toolChunk(0, 1, "", "", `0000 0004"}`),
				finishChunk(0),
			},
			want: map[int]string{0: `calling for [EMAIL_1]|0:{"email":"[EMAIL_1]"}|1:{"card":"[CARD_1]"}`},
		},
		{
			name:   "two choices kept apart",
			chunks: []*llm.ChatChunk{textChunk(0, "a@b.co", false), textChunk(1, "c@d.co", false), textChunk(0, " end", true), textChunk(1, " end", true)},
			want:   map[int]string{0: "[EMAIL_1] end", 1: "[EMAIL_2] end"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run := policy.Begin()
			f := newChunkFilter(func() textFilter { return run.Stream() })
			var out []*llm.ChatChunk
			for _, c := range tc.chunks {
				before := collected([]*llm.ChatChunk{c})
				got, err := f.filter(c)
				if err != nil {
					t.Fatal(err)
				}
				if after := collected([]*llm.ChatChunk{c}); after[0] != before[0] || after[1] != before[1] {
					t.Fatal("filter changed its input chunk")
				}
				if got != c && got.Raw != nil {
					t.Error("a changed chunk kept the upstream's raw bytes")
				}
				out = append(out, got)
			}
			last, err := f.final()
			if err != nil {
				t.Fatal(err)
			}
			if last != nil {
				out = append(out, last)
			}
			got := collected(out)
			for k, want := range tc.want {
				if got[k] != want {
					t.Errorf("choice %d = %q, want %q", k, got[k], want)
				}
			}
		})
	}
}

func TestChunkFilterStopsOnBlock(t *testing.T) {
	secrets, err := guardrails.Compile(guardrails.Spec{Name: "secrets", Detectors: []string{"secret"}, Action: guardrails.Block, Answer: true})
	if err != nil {
		t.Fatal(err)
	}
	policy, err := guardrails.NewPolicy([]guardrails.Use{{Guard: secrets}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	run := policy.Begin()
	f := newChunkFilter(func() textFilter { return run.Stream() })
	var sent strings.Builder
	var blocked *guardrails.Blocked
	for _, piece := range []string{"key AKIA", "IOSFODNN7EXAMPLE", strings.Repeat(" and more", 60)} {
		c, err := f.filter(textChunk(0, piece, false))
		if errors.As(err, &blocked) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		sent.WriteString(*c.Choices[0].Delta.Content)
	}
	if blocked == nil || blocked.Guard != "secrets" {
		t.Fatalf("not blocked (sent %q)", sent.String())
	}
	if strings.Contains(sent.String(), "AKIA") {
		t.Errorf("the secret was sent before the block: %q", sent.String())
	}
}

// FuzzChunkFilterMatchesOneShot: however an answer's content is split into
// chunks, the filtered chunks say what masking the whole content says.
func FuzzChunkFilterMatchesOneShot(f *testing.F) {
	f.Add("card 4111 1111 1111 1111 and ann@x.io", uint8(3))
	f.Add("sk-ant-api03-Abcdefghijklmnopqrstuvwxyz0123456789 end", uint8(7))
	f.Add("call +1 415 555 2671, ip 10.0.0.1", uint8(1))
	spec := guardrails.Spec{Name: "pii", Detectors: guardrails.BuiltinNames(), Action: guardrails.Mask, Request: true, Answer: true}
	g, err := guardrails.Compile(spec)
	if err != nil {
		f.Fatal(err)
	}
	policy, err := guardrails.NewPolicy([]guardrails.Use{{Guard: g}}, 0)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, text string, step uint8) {
		want, err := policy.Begin().Answer(text)
		if err != nil {
			t.Skip() // over the scan limit
		}
		run := policy.Begin()
		filter := newChunkFilter(func() textFilter { return run.Stream() })
		n := int(step%32) + 1
		var out []*llm.ChatChunk
		for i := 0; i < len(text); i += n {
			c, err := filter.filter(textChunk(0, text[i:min(i+n, len(text))], false))
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, c)
		}
		last, err := filter.final()
		if err != nil {
			t.Fatal(err)
		}
		if last != nil {
			out = append(out, last)
		}
		if got := collected(out)[0]; got != want {
			t.Fatalf("split by %d: %q, want %q", n, got, want)
		}
	})
}
