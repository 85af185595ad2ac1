package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/responses"
	"github.com/openai/openai-go/v3/shared"

	"github.com/tollgate/tollgate/pkg/providers"
	"github.com/tollgate/tollgate/pkg/router"
)

// chatUpstream is an OpenAI-style upstream that records every body it
// receives and answers by what it was asked: offered tools and no tool
// result yet, a call of the first tool (get_weather for Paris); a JSON
// schema, a JSON object; a tool result, a sentence about it; otherwise
// "Hello there, friend". Streams come in pieces, usage last when asked.
type chatUpstream struct{ bodyRecorder }

const upstreamUsage = `{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17,"prompt_tokens_details":{"cached_tokens":4},"completion_tokens_details":{"reasoning_tokens":2}}`

// bodyRecorder keeps every request body an upstream receives.
type bodyRecorder struct {
	mu     sync.Mutex
	bodies [][]byte
}

// record reads and keeps r's body.
func (u *bodyRecorder) record(r *http.Request) []byte {
	body, _ := io.ReadAll(r.Body)
	u.mu.Lock()
	u.bodies = append(u.bodies, body)
	u.mu.Unlock()
	return body
}

func (u *bodyRecorder) received() []map[string]any {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make([]map[string]any, len(u.bodies))
	for i, b := range u.bodies {
		_ = json.Unmarshal(b, &out[i])
	}
	return out
}

func (u *bodyRecorder) last(t *testing.T) map[string]any {
	t.Helper()
	all := u.received()
	if len(all) == 0 {
		t.Fatal("the upstream received nothing")
	}
	return all[len(all)-1]
}

func (u *chatUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body := u.record(r)
	var req struct {
		Messages []struct {
			Role    string `json:"role"`
			Content any    `json:"content"`
		} `json:"messages"`
		Tools          []json.RawMessage `json:"tools"`
		ResponseFormat *struct {
			Type string `json:"type"`
		} `json:"response_format"`
		Stream        bool `json:"stream"`
		StreamOptions *struct {
			IncludeUsage bool `json:"include_usage"`
		} `json:"stream_options"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		http.Error(w, `{"error":{"message":"bad json","type":"invalid_request_error"}}`, http.StatusBadRequest)
		return
	}
	last := req.Messages[len(req.Messages)-1]
	text, call := "Hello there, friend", false
	switch {
	case last.Role == "tool":
		text = "It is sunny in Paris."
	case len(req.Tools) > 0:
		call = true
	case req.ResponseFormat != nil && req.ResponseFormat.Type == "json_schema":
		text = `{"city":"Paris","temp_c":21}`
	}
	chunk := func(delta, finish string) string {
		f := "null"
		if finish != "" {
			f = `"` + finish + `"`
		}
		return `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"upstream-model-2025","choices":[{"index":0,"delta":` + delta + `,"finish_reason":` + f + `}]}` + "\n\n"
	}
	if req.Stream {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, chunk(`{"role":"assistant","content":""}`, ""))
		finish := "stop"
		if call {
			io.WriteString(w, chunk(`{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":""}}]}`, ""))
			for _, piece := range []string{`{\"city\":`, `\"Paris\"}`} {
				io.WriteString(w, chunk(`{"tool_calls":[{"index":0,"function":{"arguments":"`+piece+`"}}]}`, ""))
			}
			finish = "tool_calls"
		} else {
			for i, piece := range strings.SplitAfter(text, " ") {
				_ = i
				p, _ := json.Marshal(piece)
				io.WriteString(w, chunk(`{"content":`+string(p)+`}`, ""))
			}
		}
		io.WriteString(w, chunk(`{}`, finish))
		if req.StreamOptions != nil && req.StreamOptions.IncludeUsage {
			io.WriteString(w, `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"upstream-model-2025","choices":[],"usage":`+upstreamUsage+"}\n\n")
		}
		io.WriteString(w, "data: [DONE]\n\n")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	msg, _ := json.Marshal(map[string]any{"role": "assistant", "content": text})
	finish := "stop"
	if call {
		msg = []byte(`{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]}`)
		finish = "tool_calls"
	}
	fmt.Fprintf(w, `{"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"upstream-model-2025","choices":[{"index":0,"message":%s,"finish_reason":%q}],"usage":%s}`, msg, finish, upstreamUsage)
}

// responsesStack is a gateway with stored responses in front of a
// chatUpstream serving "upstream-model".
func responsesStack(t *testing.T) (*stack, *chatUpstream) {
	t.Helper()
	up := &chatUpstream{}
	s := upstreamStack(t, up, providers.OpenAIConfig{}, router.Route{}, stackOptions{responses: true})
	return s, up
}

// messagesOf returns the role and text of each message an upstream body
// held (text parts joined; tool calls as "call:name(args)#id").
func messagesOf(t *testing.T, body map[string]any) []string {
	t.Helper()
	msgs, _ := body["messages"].([]any)
	var out []string
	for _, m := range msgs {
		m := m.(map[string]any)
		s := m["role"].(string) + ":"
		switch c := m["content"].(type) {
		case string:
			s += c
		case []any:
			for _, p := range c {
				p := p.(map[string]any)
				if p["type"] == "text" {
					s += p["text"].(string)
				} else {
					s += "[" + p["type"].(string) + "]"
				}
			}
		}
		if calls, ok := m["tool_calls"].([]any); ok {
			for _, c := range calls {
				c := c.(map[string]any)
				fn := c["function"].(map[string]any)
				s += fmt.Sprintf("call:%s(%s)#%s", fn["name"], fn["arguments"], c["id"])
			}
		}
		if id, ok := m["tool_call_id"].(string); ok {
			s += "#" + id
		}
		out = append(out, s)
	}
	return out
}

// noResponsesFields: what reaches a chat upstream is a chat request.
func noResponsesFields(t *testing.T, body map[string]any) {
	t.Helper()
	for _, k := range []string{"input", "instructions", "metadata", "store", "previous_response_id", "text", "reasoning", "max_output_tokens", "prompt"} {
		if _, ok := body[k]; ok {
			t.Errorf("the upstream received the Responses field %q: %v", k, body)
		}
	}
}

var responsesWeatherTool = responses.ToolUnionParam{OfFunction: &responses.FunctionToolParam{
	Name:        "get_weather",
	Description: openai.String("Current weather in a city"),
	Parameters:  map[string]any{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}, "required": []string{"city"}},
	Strict:      openai.Bool(true),
}}

func TestResponsesSDKPlain(t *testing.T) {
	s, up := responsesStack(t)
	var hdr http.Header
	resp, err := s.client(s.secret, headerCapture(&hdr)).Responses.New(context.Background(), responses.ResponseNewParams{
		Model:           "upstream-model",
		Input:           responses.ResponseNewParamsInputUnion{OfString: openai.String("Say hello")},
		Instructions:    openai.String("Be terse."),
		Temperature:     openai.Float(0.5),
		MaxOutputTokens: openai.Int(100),
		Metadata:        shared.Metadata{"ticket": "T-1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if resp.OutputText() != "Hello there, friend" || resp.Status != "completed" || resp.Object != "response" || !strings.HasPrefix(resp.ID, "resp_") {
		t.Errorf("response = %s", resp.RawJSON())
	}
	u := resp.Usage
	if u.InputTokens != 12 || u.OutputTokens != 5 || u.TotalTokens != 17 || u.InputTokensDetails.CachedTokens != 4 || u.OutputTokensDetails.ReasoningTokens != 2 {
		t.Errorf("usage = %+v", u)
	}
	if resp.Metadata["ticket"] != "T-1" || resp.Instructions.OfString != "Be terse." || resp.Temperature != 0.5 || resp.MaxOutputTokens != 100 || !strings.Contains(resp.RawJSON(), `"store":true`) {
		t.Errorf("echoed parameters = %s", resp.RawJSON())
	}
	if hdr.Get("x-tollgate-model") != "upstream-model" || hdr.Get("x-tollgate-cost-usd") == "" {
		t.Errorf("routing headers: model %q cost %q", hdr.Get("x-tollgate-model"), hdr.Get("x-tollgate-cost-usd"))
	}
	body := up.last(t)
	noResponsesFields(t, body)
	if got, want := messagesOf(t, body), []string{"system:Be terse.", "user:Say hello"}; !slices.Equal(got, want) {
		t.Errorf("upstream messages = %q, want %q", got, want)
	}
	if body["temperature"] != 0.5 || body["max_completion_tokens"] != float64(100) {
		t.Errorf("upstream temperature / limit = %v / %v", body["temperature"], body["max_completion_tokens"])
	}
}

// accumulate reads a Responses stream through the SDK, feeding every
// event to the SDK's ResponseAccumulator, and checks the sequence numbers.
func accumulate(t *testing.T, events interface {
	Next() bool
	Current() responses.ResponseStreamEventUnion
	Err() error
}) ([]string, *responses.Response, responses.ResponseAccumulatorSnapshot) {
	t.Helper()
	var (
		acc   responses.ResponseAccumulator
		types []string
	)
	for events.Next() {
		e := events.Current()
		if e.SequenceNumber != int64(len(types)) {
			t.Errorf("event %d (%s) has sequence_number %d", len(types), e.Type, e.SequenceNumber)
		}
		types = append(types, e.Type)
		var ws responses.ResponsesServerEventUnion
		if err := json.Unmarshal([]byte(e.RawJSON()), &ws); err != nil {
			t.Fatalf("event %s: %v", e.Type, err)
		}
		if err := acc.AddEvent(ws); err != nil {
			t.Fatalf("the SDK's accumulator refused %s: %v (%s)", e.Type, err, e.RawJSON())
		}
	}
	if err := events.Err(); err != nil {
		t.Fatal(err)
	}
	final, err := acc.ReconstructedResponse()
	if err != nil {
		t.Fatalf("no terminal response: %v (events %q)", err, types)
	}
	return types, final, acc.Snapshot()
}

func TestResponsesSDKStream(t *testing.T) {
	s, up := responsesStack(t)
	client := s.client(s.secret)
	ctx := context.Background()
	stream := client.Responses.NewStreaming(ctx, responses.ResponseNewParams{
		Model: "upstream-model",
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("Say hello")},
	})
	defer stream.Close()
	types, final, snap := accumulate(t, stream)
	want := []string{"response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
		"response.output_text.delta", "response.output_text.delta", "response.output_text.delta",
		"response.output_text.done", "response.content_part.done", "response.output_item.done", "response.completed"}
	if !slices.Equal(types, want) {
		t.Errorf("events = %q\nwant     %q", types, want)
	}
	if snap.OutputText() != "Hello there, friend" || final.OutputText() != "Hello there, friend" || snap.TerminalEvent != "response.completed" {
		t.Errorf("accumulated %q, final %q, terminal %q", snap.OutputText(), final.OutputText(), snap.TerminalEvent)
	}
	if final.Usage.InputTokens != 12 || final.Usage.OutputTokens != 5 || final.Usage.InputTokensDetails.CachedTokens != 4 || final.Usage.OutputTokensDetails.ReasoningTokens != 2 {
		t.Errorf("usage = %+v", final.Usage)
	}
	body := up.last(t)
	noResponsesFields(t, body)
	if body["stream"] != true || body["stream_options"] == nil {
		t.Errorf("upstream stream / stream_options = %v / %v", body["stream"], body["stream_options"])
	}
	// A streamed response is stored too, as it was completed.
	got, err := client.Responses.Get(ctx, final.ID, responses.ResponseGetParams{})
	if err != nil || got.OutputText() != "Hello there, friend" || got.Status != "completed" {
		t.Errorf("GET of the streamed response = %v, %v", got, err)
	}
}

func TestResponsesSDKFunctionCallRoundTrip(t *testing.T) {
	for _, streamed := range []bool{false, true} {
		t.Run(map[bool]string{false: "json", true: "stream"}[streamed], func(t *testing.T) {
			s, up := responsesStack(t)
			client := s.client(s.secret)
			ctx := context.Background()
			user := responses.ResponseInputItemParamOfMessage("What's the weather in Paris?", responses.EasyInputMessageRoleUser)
			params := responses.ResponseNewParams{
				Model:      "upstream-model",
				Input:      responses.ResponseNewParamsInputUnion{OfInputItemList: responses.ResponseInputParam{user}},
				Tools:      []responses.ToolUnionParam{responsesWeatherTool},
				ToolChoice: responses.ResponseNewParamsToolChoiceUnion{OfToolChoiceMode: openai.Opt(responses.ToolChoiceOptionsAuto)},
			}
			var first *responses.Response
			if streamed {
				stream := client.Responses.NewStreaming(ctx, params)
				types, final, snap := accumulate(t, stream)
				stream.Close()
				for _, want := range []string{"response.output_item.added", "response.function_call_arguments.delta", "response.function_call_arguments.done", "response.output_item.done", "response.completed"} {
					if !slices.Contains(types, want) {
						t.Errorf("no %s among %q", want, types)
					}
				}
				if len(snap.Output) != 1 || snap.Output[0].Arguments != `{"city":"Paris"}` || snap.Output[0].Name != "get_weather" {
					t.Errorf("accumulated output = %+v", snap.Output)
				}
				first = final
			} else {
				var err error
				if first, err = client.Responses.New(ctx, params); err != nil {
					t.Fatal(err)
				}
			}
			if len(first.Output) != 1 || first.Output[0].Type != "function_call" {
				t.Fatalf("output = %s", first.RawJSON())
			}
			call := first.Output[0].AsFunctionCall()
			if call.Name != "get_weather" || call.CallID != "call_1" || call.Arguments != `{"city":"Paris"}` || !strings.HasPrefix(call.ID, "fc_") {
				t.Errorf("function call = %s", call.RawJSON())
			}
			tools := up.last(t)["tools"].([]any)
			fn := tools[0].(map[string]any)["function"].(map[string]any)
			if fn["name"] != "get_weather" || fn["strict"] != true || fn["parameters"] == nil || up.last(t)["tool_choice"] != "auto" {
				t.Errorf("upstream tools = %v, tool_choice %v", tools, up.last(t)["tool_choice"])
			}

			out := responses.ResponseInputItemParamOfFunctionCallOutput("sunny, 21C")
			out.OfFunctionCallOutput.CallID = openai.String(call.CallID)
			params.Input.OfInputItemList = responses.ResponseInputParam{user,
				responses.ResponseInputItemParamOfFunctionCall(call.Arguments, call.CallID, call.Name), out}
			params.Store = openai.Bool(false)
			second, err := client.Responses.New(ctx, params)
			if err != nil {
				t.Fatal(err)
			}
			if second.OutputText() != "It is sunny in Paris." {
				t.Errorf("second answer = %s", second.RawJSON())
			}
			want := []string{"user:What's the weather in Paris?", `assistant:call:get_weather({"city":"Paris"})#call_1`, "tool:sunny, 21C#call_1"}
			if got := messagesOf(t, up.last(t)); !slices.Equal(got, want) {
				t.Errorf("upstream messages = %q\nwant %q", got, want)
			}

			// The same turn as Codex sends it: only the output, the call
			// coming from the stored first response.
			params.Input.OfInputItemList = responses.ResponseInputParam{out}
			params.PreviousResponseID = openai.String(first.ID)
			third, err := client.Responses.New(ctx, params)
			if err != nil {
				t.Fatal(err)
			}
			if got := messagesOf(t, up.last(t)); third.OutputText() != "It is sunny in Paris." || !slices.Equal(got, want) {
				t.Errorf("with previous_response_id: answer %q, upstream messages %q\nwant %q", third.OutputText(), got, want)
			}
		})
	}
}

func TestResponsesSDKJSONSchema(t *testing.T) {
	s, up := responsesStack(t)
	schema := map[string]any{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}, "temp_c": map[string]any{"type": "number"}},
		"required": []string{"city", "temp_c"}, "additionalProperties": false}
	resp, err := s.client(s.secret).Responses.New(context.Background(), responses.ResponseNewParams{
		Model:     "upstream-model",
		Input:     responses.ResponseNewParamsInputUnion{OfString: openai.String("Weather in Paris as JSON")},
		Text:      responses.ResponseTextConfigParam{Format: responses.ResponseFormatTextConfigUnionParam{OfJSONSchema: &responses.ResponseFormatTextJSONSchemaConfigParam{Name: "weather", Schema: schema, Strict: openai.Bool(true)}}},
		Reasoning: shared.ReasoningParam{Effort: shared.ReasoningEffortLow},
	})
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		City  string  `json:"city"`
		TempC float64 `json:"temp_c"`
	}
	if err := json.Unmarshal([]byte(resp.OutputText()), &v); err != nil || v.City != "Paris" {
		t.Errorf("output %q: %v", resp.OutputText(), err)
	}
	if resp.Text.Format.Type != "json_schema" || resp.Text.Format.Name != "weather" || resp.Reasoning.Effort != "low" {
		t.Errorf("echo: text %s reasoning %s", resp.Text.RawJSON(), resp.Reasoning.RawJSON())
	}
	body := up.last(t)
	rf, _ := json.Marshal(body["response_format"])
	wantRF := `{"json_schema":{"name":"weather","schema":{"additionalProperties":false,"properties":{"city":{"type":"string"},"temp_c":{"type":"number"}},"required":["city","temp_c"],"type":"object"},"strict":true},"type":"json_schema"}`
	if string(rf) != wantRF {
		t.Errorf("upstream response_format = %s\nwant %s", rf, wantRF)
	}
	if body["reasoning_effort"] != "low" {
		t.Errorf("upstream reasoning_effort = %v", body["reasoning_effort"])
	}
}

// apiStatus is the HTTP status of an SDK error (0: none).
func apiStatus(err error) int {
	var e *openai.Error
	if errors.As(err, &e) {
		return e.StatusCode
	}
	return 0
}

func TestResponsesSDKPreviousResponseGetDelete(t *testing.T) {
	s, up := responsesStack(t)
	ctx := context.Background()
	client := s.client(s.secret)
	first, err := client.Responses.New(ctx, responses.ResponseNewParams{
		Model:        "upstream-model",
		Input:        responses.ResponseNewParamsInputUnion{OfString: openai.String("Say hello")},
		Instructions: openai.String("Be terse."),
	})
	if err != nil {
		t.Fatal(err)
	}
	second, err := client.Responses.New(ctx, responses.ResponseNewParams{
		Model:              "upstream-model",
		Input:              responses.ResponseNewParamsInputUnion{OfString: openai.String("And in German?")},
		PreviousResponseID: openai.String(first.ID),
	})
	if err != nil {
		t.Fatal(err)
	}
	// The second turn carries the first (its instructions are not carried
	// over, as OpenAI's are not).
	want := []string{"user:Say hello", "assistant:Hello there, friend", "user:And in German?"}
	if got := messagesOf(t, up.last(t)); !slices.Equal(got, want) {
		t.Errorf("second turn's upstream messages = %q\nwant %q", got, want)
	}
	if second.PreviousResponseID != first.ID {
		t.Errorf("previous_response_id echo = %q", second.PreviousResponseID)
	}
	// A third turn chains through both.
	if _, err := client.Responses.New(ctx, responses.ResponseNewParams{Model: "upstream-model",
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("Thanks")}, PreviousResponseID: openai.String(second.ID)}); err != nil {
		t.Fatal(err)
	}
	if got := len(messagesOf(t, up.last(t))); got != 5 {
		t.Errorf("third turn sent %d messages, want 5", got)
	}

	got, err := client.Responses.Get(ctx, first.ID, responses.ResponseGetParams{})
	if err != nil || got.ID != first.ID || got.OutputText() != "Hello there, friend" {
		t.Fatalf("GET = %v, %v", got, err)
	}

	// Another key sees none of it.
	_, other := s.newKey()
	otherClient := s.client(other)
	if _, err := otherClient.Responses.Get(ctx, first.ID, responses.ResponseGetParams{}); apiStatus(err) != http.StatusNotFound {
		t.Errorf("another key's GET = %v, want 404", err)
	}
	if err := otherClient.Responses.Delete(ctx, first.ID); apiStatus(err) != http.StatusNotFound {
		t.Errorf("another key's DELETE = %v, want 404", err)
	}
	n := len(up.received())
	_, err = otherClient.Responses.New(ctx, responses.ResponseNewParams{Model: "upstream-model",
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("x")}, PreviousResponseID: openai.String(first.ID)})
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusBadRequest || apiErr.Code != "previous_response_not_found" {
		t.Errorf("another key's previous_response_id = %v, want 400 previous_response_not_found", err)
	}
	if len(up.received()) != n {
		t.Error("a refused previous_response_id reached the upstream")
	}

	if err := client.Responses.Delete(ctx, first.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Responses.Get(ctx, first.ID, responses.ResponseGetParams{}); apiStatus(err) != http.StatusNotFound {
		t.Errorf("GET after DELETE = %v, want 404", err)
	}
	if err := client.Responses.Delete(ctx, first.ID); apiStatus(err) != http.StatusNotFound {
		t.Errorf("second DELETE = %v, want 404", err)
	}

	// store: false keeps nothing.
	unstored, err := client.Responses.New(ctx, responses.ResponseNewParams{Model: "upstream-model",
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("x")}, Store: openai.Bool(false)})
	if err != nil || !strings.Contains(unstored.RawJSON(), `"store":false`) {
		t.Fatalf("store false = %v, %v", unstored, err)
	}
	if _, err := client.Responses.Get(ctx, unstored.ID, responses.ResponseGetParams{}); apiStatus(err) != http.StatusNotFound {
		t.Errorf("GET of an unstored response = %v, want 404", err)
	}
}

func TestCompletionsSDK(t *testing.T) {
	s, up := responsesStack(t)
	ctx := context.Background()
	client := s.client(s.secret)
	resp, err := client.Completions.New(ctx, openai.CompletionNewParams{
		Model:     "upstream-model",
		Prompt:    openai.CompletionNewParamsPromptUnion{OfString: openai.String("Once upon a time")},
		MaxTokens: openai.Int(20),
		Stop:      openai.CompletionNewParamsStopUnion{OfString: openai.String("END")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Object != "text_completion" || len(resp.Choices) != 1 || resp.Choices[0].Text != "Hello there, friend" || resp.Choices[0].FinishReason != "stop" {
		t.Errorf("completion = %s", resp.RawJSON())
	}
	if resp.Usage.PromptTokens != 12 || resp.Usage.CompletionTokens != 5 || resp.Usage.TotalTokens != 17 {
		t.Errorf("usage = %+v", resp.Usage)
	}
	body := up.last(t)
	if got := messagesOf(t, body); !slices.Equal(got, []string{"user:Once upon a time"}) {
		t.Errorf("upstream messages = %q", got)
	}
	if body["max_tokens"] != float64(20) || body["stop"] != "END" || body["prompt"] != nil {
		t.Errorf("upstream body = %v", body)
	}

	stream := client.Completions.NewStreaming(ctx, openai.CompletionNewParams{
		Model:         "upstream-model",
		Prompt:        openai.CompletionNewParamsPromptUnion{OfArrayOfStrings: []string{"Once upon a time"}},
		StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
	})
	defer stream.Close()
	var text strings.Builder
	var finish string
	var usage openai.CompletionUsage
	chunks := 0
	for stream.Next() {
		c := stream.Current()
		chunks++
		if c.Object != "text_completion" {
			t.Errorf("chunk object %q", c.Object)
		}
		for _, ch := range c.Choices {
			text.WriteString(ch.Text)
			if ch.FinishReason != "" {
				finish = string(ch.FinishReason)
			}
		}
		if c.Usage.TotalTokens > 0 {
			usage = c.Usage
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if text.String() != "Hello there, friend" || finish != "stop" || usage.TotalTokens != 17 || chunks != 5 {
		t.Errorf("stream: text %q finish %q usage %+v chunks %d", text.String(), finish, usage, chunks)
	}
}

// rawPost sends body to path with the stack's key.
func rawPost(t *testing.T, s *stack, path, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", s.srv.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+s.secret)
	resp, err := (&http.Client{Timeout: hangGuard}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestResponsesAndCompletionsRefuseWhatTheyCannotServe(t *testing.T) {
	up := &chatUpstream{}
	s := upstreamStack(t, up, providers.OpenAIConfig{}, router.Route{}, stackOptions{responses: true, maxBodyBytes: 4096})
	const model = `"model":"upstream-model"`
	for _, tc := range []struct {
		name, path, body string
		status           int
		code, param      string
	}{
		{"unknown field", "/v1/responses", `{` + model + `,"input":"x","inptu":"y"}`, 400, "unknown_parameter", "inptu"},
		{"field in another case", "/v1/responses", `{` + model + `,"input":"x","Store":false}`, 400, "", "Store"},
		{"repeated field", "/v1/responses", `{` + model + `,"input":"x","input":"y"}`, 400, "", "input"},
		{"unknown field in an item", "/v1/responses", `{` + model + `,"input":[{"role":"user","content":"x","colour":"red"}]}`, 400, "unknown_parameter", "input[0].colour"},
		{"unknown part field", "/v1/responses", `{` + model + `,"input":[{"role":"user","content":[{"type":"input_text","text":"x","bold":true}]}]}`, 400, "unknown_parameter", "input[0].content.bold"},
		{"missing input", "/v1/responses", `{` + model + `}`, 400, "", "input"},
		{"empty input", "/v1/responses", `{` + model + `,"input":[]}`, 400, "", "input"},
		{"bad role", "/v1/responses", `{` + model + `,"input":[{"role":"robot","content":"x"}]}`, 400, "", "input[0].role"},
		{"hosted tool", "/v1/responses", `{` + model + `,"input":"x","tools":[{"type":"web_search","search_context_size":"low"}]}`, 400, "unsupported_parameter", "tools[0].type"},
		{"custom tool", "/v1/responses", `{` + model + `,"input":"x","tools":[{"type":"function","name":"f"},{"type":"custom","name":"apply_patch","format":{"type":"text"}}]}`, 400, "unsupported_parameter", "tools[1].type"},
		{"unknown function tool field", "/v1/responses", `{` + model + `,"input":"x","tools":[{"type":"function","name":"f","strictt":true}]}`, 400, "unknown_parameter", "tools[0].strictt"},
		{"file input", "/v1/responses", `{` + model + `,"input":[{"role":"user","content":[{"type":"input_file","file_id":"f"}]}]}`, 400, "unsupported_parameter", "input[0].content[0].type"},
		{"shell call item", "/v1/responses", `{` + model + `,"input":[{"role":"user","content":"x"},{"type":"local_shell_call","call_id":"c","action":{"type":"exec"}}]}`, 400, "unsupported_parameter", "input[1].type"},
		{"item reference", "/v1/responses", `{` + model + `,"input":[{"type":"item_reference","id":"msg_1"}]}`, 400, "unsupported_parameter", "input[0].type"},
		{"background", "/v1/responses", `{` + model + `,"input":"x","background":true}`, 400, "unsupported_parameter", "background"},
		{"json schema without name", "/v1/responses", `{` + model + `,"input":"x","text":{"format":{"type":"json_schema","schema":{}}}}`, 400, "", "text.format.name"},
		{"bad effort", "/v1/responses", `{` + model + `,"input":"x","reasoning":{"effort":"maximal"}}`, 400, "", "reasoning.effort"},
		{"bad tool choice", "/v1/responses", `{` + model + `,"input":"x","tool_choice":{"type":"web_search"}}`, 400, "unsupported_parameter", "tool_choice"},
		{"unknown previous response", "/v1/responses", `{` + model + `,"input":"x","previous_response_id":"resp_nope"}`, 400, "previous_response_not_found", "previous_response_id"},
		{"wrong type", "/v1/responses", `{` + model + `,"input":"x","temperature":"hot"}`, 400, "", "temperature"},
		{"too large", "/v1/responses", `{` + model + `,"input":"` + strings.Repeat("a", 5000) + `"}`, 413, "", ""},
		{"not json", "/v1/responses", `{` + model + `,"input":`, 400, "", ""},
		{"completions: several prompts", "/v1/completions", `{` + model + `,"prompt":["a","b"]}`, 400, "unsupported_parameter", "prompt"},
		{"completions: token prompt", "/v1/completions", `{` + model + `,"prompt":[1,2,3]}`, 400, "unsupported_parameter", "prompt"},
		{"completions: echo", "/v1/completions", `{` + model + `,"prompt":"a","echo":true}`, 400, "unsupported_parameter", "echo"},
		{"completions: logprobs", "/v1/completions", `{` + model + `,"prompt":"a","logprobs":2}`, 400, "unsupported_parameter", "logprobs"},
		{"completions: suffix", "/v1/completions", `{` + model + `,"prompt":"a","suffix":"z"}`, 400, "unsupported_parameter", "suffix"},
		{"completions: best_of", "/v1/completions", `{` + model + `,"prompt":"a","best_of":3}`, 400, "unsupported_parameter", "best_of"},
		{"completions: unknown field", "/v1/completions", `{` + model + `,"prompt":"a","promt":"b"}`, 400, "unknown_parameter", "promt"},
		{"completions: missing prompt", "/v1/completions", `{` + model + `}`, 400, "", "prompt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := rawPost(t, s, tc.path, tc.body)
			assertErrorAnswer(t, status, body, tc.status, tc.code, tc.param)
		})
	}
	if n := len(up.received()); n != 0 {
		t.Errorf("the upstream received %d refused requests", n)
	}
}

// assertErrorAnswer checks an answer is OpenAI's error envelope with the
// status, and the code and param when they are not "".
func assertErrorAnswer(t *testing.T, status int, body string, wantStatus int, code, param string) {
	t.Helper()
	var env struct {
		Error struct {
			Message string  `json:"message"`
			Type    string  `json:"type"`
			Param   *string `json:"param"`
			Code    *string `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &env); err != nil || env.Error.Message == "" || env.Error.Type == "" {
		t.Fatalf("not OpenAI's error envelope: %s", body)
	}
	if status != wantStatus {
		t.Fatalf("status %d, want %d: %s", status, wantStatus, body)
	}
	if code != "" && (env.Error.Code == nil || *env.Error.Code != code) {
		t.Errorf("code %v, want %s: %s", env.Error.Code, code, body)
	}
	if param != "" && (env.Error.Param == nil || *env.Error.Param != param) {
		t.Errorf("param %v, want %s: %s", env.Error.Param, param, body)
	}
}

// goldenIDs hides what changes from run to run in a Responses answer.
var goldenIDs = regexp.MustCompile(`(resp|msg|fc|cmpl)_[0-9a-f]{48}|"created_at":\s*\d+`)

func normalizeIDs(b []byte) []byte {
	return goldenIDs.ReplaceAllFunc(b, func(m []byte) []byte {
		if bytes.HasPrefix(m, []byte(`"created_at"`)) {
			return []byte(`"created_at":0`)
		}
		prefix, _, _ := bytes.Cut(m, []byte("_"))
		return append(prefix, "_ID"...)
	})
}

// TestResponsesWireGolden pins the chat request a representative
// Responses request becomes upstream, and the Responses event sequences
// of a streamed text answer and a streamed function call.
func TestResponsesWireGolden(t *testing.T) {
	s, up := responsesStack(t)
	request := `{"model":"upstream-model",
		"instructions":"You are a weather assistant.",
		"input":[
			{"role":"developer","content":"Answer in English."},
			{"type":"message","role":"user","content":[{"type":"input_text","text":"What is in this picture, and the weather there?"},{"type":"input_image","image_url":"https://example.com/paris.png","detail":"low"}]},
			{"type":"message","role":"assistant","content":[{"type":"output_text","text":"The Eiffel Tower. Let me check.","annotations":[]}]},
			{"type":"function_call","call_id":"call_1","name":"get_weather","arguments":"{\"city\":\"Paris\"}","id":"fc_1","status":"completed"},
			{"type":"function_call_output","call_id":"call_1","output":"sunny, 21C"},
			{"type":"reasoning","id":"rs_1","summary":[]},
			{"role":"user","content":"Summarise as JSON."}],
		"tools":[{"type":"function","name":"get_weather","description":"Current weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}},"strict":true}],
		"tool_choice":{"type":"function","name":"get_weather"},
		"parallel_tool_calls":false,
		"text":{"format":{"type":"json_schema","name":"summary","schema":{"type":"object"},"strict":true},"verbosity":"low"},
		"reasoning":{"effort":"medium","summary":"auto"},
		"max_output_tokens":300,"temperature":0.2,"top_p":0.9,"user":"u-42",
		"metadata":{"ticket":"T-1"},"store":false,"include":["reasoning.encrypted_content"],
		"prompt_cache_key":"weather","safety_identifier":"s-1"}`
	status, answer := rawPost(t, s, "/v1/responses", request)
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, answer)
	}
	var received bytes.Buffer
	up.mu.Lock()
	_ = json.Indent(&received, up.bodies[0], "", "  ")
	up.mu.Unlock()
	var ans bytes.Buffer
	_ = json.Indent(&ans, []byte(answer), "", "  ")
	golden := fmt.Sprintf("### the upstream's chat request\n%s\n\n### the client's response (a function call)\n%s\n", received.Bytes(), normalizeIDs(ans.Bytes()))
	compareGolden(t, filepath.Join("..", "..", "testdata", "httpapi", "responses_request.golden"), []byte(golden))

	var events bytes.Buffer
	for _, tc := range []struct{ name, body string }{
		{"text", `{"model":"upstream-model","input":"Say hello","stream":true,"store":false}`},
		{"function call", `{"model":"upstream-model","input":"Weather in Paris?","stream":true,"store":false,"tools":[{"type":"function","name":"get_weather","parameters":{"type":"object"}}]}`},
	} {
		status, stream := rawPost(t, s, "/v1/responses", tc.body)
		if status != http.StatusOK {
			t.Fatalf("%s: status %d: %s", tc.name, status, stream)
		}
		fmt.Fprintf(&events, "### %s\n%s", tc.name, normalizeIDs([]byte(stream)))
	}
	compareGolden(t, filepath.Join("..", "..", "testdata", "httpapi", "responses_stream.golden"), events.Bytes())
}

// TestResponsesStreamFailsAfterTheFirstByte: an upstream that breaks off
// mid-stream ends the Responses stream with response.failed, nothing
// stored.
func TestResponsesStreamFailsAfterTheFirstByte(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, `data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}`+"\n\n")
		io.WriteString(w, "data: {not json\n\n")
	})
	s := upstreamStack(t, h, providers.OpenAIConfig{}, router.Route{}, stackOptions{responses: true})
	stream := s.client(s.secret).Responses.NewStreaming(context.Background(), responses.ResponseNewParams{
		Model: "upstream-model", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hi")}})
	defer stream.Close()
	var last responses.ResponseStreamEventUnion
	var types []string
	for stream.Next() {
		last = stream.Current()
		types = append(types, last.Type)
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if last.Type != "response.failed" || last.Response.Status != "failed" || last.Response.Error.Code == "" || last.Response.Error.Message == "" {
		t.Fatalf("events %q, last %s", types, last.RawJSON())
	}
	if _, err := s.client(s.secret).Responses.Get(context.Background(), last.Response.ID, responses.ResponseGetParams{}); apiStatus(err) != http.StatusNotFound {
		t.Errorf("a failed response was stored: %v", err)
	}
}

// TestResponsesShareTheChatFlow: a Responses request and a legacy
// completion are chat requests to the gateway, so the response cache
// serves a repeat of either (JSON or streamed) without an upstream call,
// and each is still answered in its own wire format.
func TestResponsesShareTheChatFlow(t *testing.T) {
	up := &chatUpstream{}
	s := upstreamStack(t, up, providers.OpenAIConfig{}, router.Route{}, stackOptions{responses: true, cache: true})
	ctx := context.Background()
	client := s.client(s.secret)
	params := responses.ResponseNewParams{Model: "upstream-model", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("Say hello")}}
	var hdr http.Header
	first, err := client.Responses.New(ctx, params, headerCapture(&hdr))
	if err != nil {
		t.Fatal(err)
	}
	if hdr.Get("x-tollgate-cache") != "miss" {
		t.Errorf("first call: cache %q", hdr.Get("x-tollgate-cache"))
	}
	second, err := client.Responses.New(ctx, params, headerCapture(&hdr))
	if err != nil {
		t.Fatal(err)
	}
	if hdr.Get("x-tollgate-cache") != "hit" || second.OutputText() != first.OutputText() || second.ID == first.ID {
		t.Errorf("repeat: cache %q, text %q, ids %s %s", hdr.Get("x-tollgate-cache"), second.OutputText(), first.ID, second.ID)
	}
	stream := client.Responses.NewStreaming(ctx, params)
	_, final, _ := accumulate(t, stream)
	stream.Close()
	if final.OutputText() != "Hello there, friend" {
		t.Errorf("streamed repeat: %q", final.OutputText())
	}
	if n := len(up.received()); n > 2 {
		t.Errorf("the upstream was called %d times for one JSON question asked twice and once streamed", n)
	}
	cp := openai.CompletionNewParams{Model: "upstream-model", Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("Say hello")}}
	if _, err := client.Completions.New(ctx, cp); err != nil {
		t.Fatal(err)
	}
	before := len(up.received())
	c, err := client.Completions.New(ctx, cp, headerCapture(&hdr))
	if err != nil || hdr.Get("x-tollgate-cache") != "hit" || c.Choices[0].Text != "Hello there, friend" || len(up.received()) != before {
		t.Errorf("legacy repeat: %v, cache %q, upstream calls %d → %d", err, hdr.Get("x-tollgate-cache"), before, len(up.received()))
	}
}
