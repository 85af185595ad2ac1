package httpapi

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/pkg/llm"
)

// TestResponsesStreamerSequences: the event sequence each shape of chat
// stream becomes, and the output items the terminal response holds.
func TestResponsesStreamerSequences(t *testing.T) {
	str := func(s string) *string { return &s }
	idx := func(i int) *int { return &i }
	text := func(s string) llm.ChatChunk {
		return llm.ChatChunk{Choices: []llm.ChunkChoice{{Delta: llm.Delta{Content: str(s)}}}}
	}
	refusal := func(s string) llm.ChatChunk {
		return llm.ChatChunk{Choices: []llm.ChunkChoice{{Delta: llm.Delta{Refusal: str(s)}}}}
	}
	call := func(i *int, id, name, args string) llm.ChatChunk {
		return llm.ChatChunk{Choices: []llm.ChunkChoice{{Delta: llm.Delta{ToolCalls: []llm.ToolCall{{Index: i, ID: id, Function: llm.FunctionCall{Name: name, Arguments: args}}}}}}}
	}
	finish := func(r string) llm.ChatChunk {
		return llm.ChatChunk{Choices: []llm.ChunkChoice{{FinishReason: str(r)}}}
	}
	const (
		created, progress = "response.created", "response.in_progress"
		added, done       = "response.output_item.added", "response.output_item.done"
		partAdded         = "response.content_part.added"
		partDone          = "response.content_part.done"
		textDelta         = "response.output_text.delta"
		textDone          = "response.output_text.done"
		argsDelta         = "response.function_call_arguments.delta"
		argsDone          = "response.function_call_arguments.done"
	)
	for _, tc := range []struct {
		name     string
		chunks   []llm.ChatChunk
		events   []string
		terminal string
		status   string
		output   []string // type:text-or-name(args)
	}{
		{"text", []llm.ChatChunk{text("Hel"), text("lo"), finish("stop")},
			[]string{created, progress, added, partAdded, textDelta, textDelta, textDone, partDone, done}, "response.completed", "completed",
			[]string{"message:Hello"}},
		{"cut at the output limit", []llm.ChatChunk{text("Hel"), finish("length")},
			[]string{created, progress, added, partAdded, textDelta, textDone, partDone, done}, "response.incomplete", "incomplete",
			[]string{"message:Hel[incomplete]"}},
		{"a call cut at the output limit after text", []llm.ChatChunk{text("Checking."), call(idx(0), "c1", "a", `{"x"`), finish("length")},
			[]string{created, progress, added, partAdded, textDelta, textDone, partDone, done, added, argsDelta, argsDone, done}, "response.incomplete", "incomplete",
			[]string{"message:Checking.", `function_call:a({"x")#c1[incomplete]`}},
		{"refusal", []llm.ChatChunk{refusal("I can't"), finish("stop")},
			[]string{created, progress, added, partAdded, "response.refusal.delta", "response.refusal.done", partDone, done}, "response.completed", "completed",
			[]string{"message:refusal:I can't"}},
		{"text then two calls", []llm.ChatChunk{text("Checking."), call(idx(0), "c1", "a", `{"x"`), call(idx(0), "", "", `:1}`), call(idx(1), "c2", "b", `{}`), finish("tool_calls")},
			[]string{created, progress, added, partAdded, textDelta, textDone, partDone, done, added, argsDelta, argsDelta, argsDone, done, added, argsDelta, argsDone, done}, "response.completed", "completed",
			[]string{"message:Checking.", `function_call:a({"x":1})#c1`, "function_call:b({})#c2"}},
		{"calls without an index", []llm.ChatChunk{call(nil, "c1", "a", `{}`), call(nil, "c2", "b", `{}`)},
			[]string{created, progress, added, argsDelta, argsDone, done, added, argsDelta, argsDone, done}, "response.completed", "completed",
			[]string{"function_call:a({})#c1", "function_call:b({})#c2"}},
		{"nothing", []llm.ChatChunk{finish("stop")},
			[]string{created, progress, added, partAdded, textDone, partDone, done}, "response.completed", "completed",
			[]string{"message:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			req := &responsesRequest{Model: "m"}
			var kept *responseObject
			st := &responsesStreamer{w: &buf, resp: req.newResponse(&server{Options: Options{Now: fixedNow}}), keep: func(o *responseObject) { kept = o }}
			for i := range tc.chunks {
				if err := st.chunk(&tc.chunks[i]); err != nil {
					t.Fatal(err)
				}
			}
			if err := st.end(); err != nil {
				t.Fatal(err)
			}
			if kept == nil || kept.Status != tc.status {
				t.Errorf("kept %+v, want the finished response (%s)", kept, tc.status)
			}
			var types []string
			var last responsesEvent
			var lastRaw string
			for i, block := range strings.Split(strings.TrimSpace(buf.String()), "\n\n") {
				name, data, ok := strings.Cut(block, "\ndata: ")
				if !ok || !strings.HasPrefix(name, "event: ") {
					t.Fatalf("not an SSE event: %q", block)
				}
				var e struct {
					Type string `json:"type"`
					Seq  int    `json:"sequence_number"`
				}
				if err := json.Unmarshal([]byte(data), &e); err != nil || e.Type != strings.TrimPrefix(name, "event: ") || e.Seq != i {
					t.Fatalf("event %d: %q (%v)", i, block, err)
				}
				types, lastRaw = append(types, e.Type), data
			}
			if err := json.Unmarshal([]byte(lastRaw), &last); err != nil || last.Type != tc.terminal {
				t.Fatalf("terminal event %q (%v), want %s", lastRaw, err, tc.terminal)
			}
			if got := types[:len(types)-1]; !slices.Equal(got, tc.events) {
				t.Errorf("events = %q\nwant     %q", got, tc.events)
			}
			var final struct {
				Response struct {
					Status string `json:"status"`
					Output []struct {
						Type      string          `json:"type"`
						Status    string          `json:"status"`
						Content   []outputContent `json:"content"`
						Name      string          `json:"name"`
						Arguments string          `json:"arguments"`
						CallID    string          `json:"call_id"`
					} `json:"output"`
				} `json:"response"`
			}
			_ = json.Unmarshal([]byte(lastRaw), &final)
			var output []string
			for _, it := range final.Response.Output {
				switch it.Type {
				case "message":
					c := it.Content[0]
					if c.Refusal != nil {
						output = append(output, "message:refusal:"+*c.Refusal)
					} else {
						output = append(output, "message:"+*c.Text)
					}
				case "function_call":
					output = append(output, "function_call:"+it.Name+"("+it.Arguments+")#"+it.CallID)
				}
				if it.Status != "completed" {
					output[len(output)-1] += "[" + it.Status + "]"
				}
			}
			if final.Response.Status != tc.status || !slices.Equal(output, tc.output) {
				t.Errorf("status %q output %q, want %q %q", final.Response.Status, output, tc.status, tc.output)
			}
		})
	}
}

// TestFinishMarksTheCutItem: a non-streamed answer cut by its output limit
// (or a content filter) is incomplete, and so is its last output item,
// as OpenAI marks it; the items before it and any finished answer's are
// completed.
func TestFinishMarksTheCutItem(t *testing.T) {
	text := llm.Content{Text: "Checking."}
	call := []llm.ToolCall{{ID: "c1", Function: llm.FunctionCall{Name: "a", Arguments: `{"x"`}}}
	for _, tc := range []struct {
		name, finish string
		msg          llm.Message
		want         []string
	}{
		{"stop", "stop", llm.Message{Content: text}, []string{"completed"}},
		{"text cut", "length", llm.Message{Content: text}, []string{"incomplete"}},
		{"filtered", "content_filter", llm.Message{Content: text}, []string{"incomplete"}},
		{"a call cut after text", "length", llm.Message{Content: text, ToolCalls: call}, []string{"completed", "incomplete"}},
		{"calls finished", "tool_calls", llm.Message{Content: text, ToolCalls: call}, []string{"completed", "completed"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := (&responsesRequest{Model: "m"}).newResponse(&server{Options: Options{Now: fixedNow}})
			o.Output = outputOf(&tc.msg)
			o.finish(tc.finish, "m", nil)
			var got []string
			for _, it := range o.Output {
				switch it := it.(type) {
				case *messageItem:
					got = append(got, it.Status)
				case *functionCallItem:
					got = append(got, it.Status)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("item statuses %q, want %q (response %s)", got, tc.want, o.Status)
			}
		})
	}
}
