package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/responses"

	"github.com/tollgate/tollgate/pkg/gateway"
	"github.com/tollgate/tollgate/pkg/providers"
	"github.com/tollgate/tollgate/pkg/router"
)

// nativeUpstream serves OpenAI's Responses API at /v1/responses, records
// every body it receives and answers by what it was asked, as chatUpstream
// does: tools and no function output yet, a call of get_weather for
// Paris; a JSON schema, a JSON object; a function output, a sentence
// about it; otherwise "Hello there, friend". Every answer starts with a
// reasoning item carrying encrypted content, and its message carries an
// annotation, both of which a chat translation would lose. fail makes it
// answer 500.
type nativeUpstream struct {
	bodyRecorder
	fail       atomic.Bool
	failStream atomic.Bool // a stream fails with response.failed right after response.created
}

// nativeUsage is priced on gpt-4o-mini's prices: 600 uncached x 0.15 +
// 400 cached x 0.075 + 500 out x 0.60 = 420 micro-dollars.
const nativeUsage = `{"input_tokens":1000,"input_tokens_details":{"cached_tokens":400},"output_tokens":500,"output_tokens_details":{"reasoning_tokens":100},"total_tokens":1500}`

const (
	nativeReasoning  = `{"type":"reasoning","id":"rs_up1","summary":[{"type":"summary_text","text":"Thinking."}],"encrypted_content":"gAAAAB-opaque-reasoning"}`
	nativeAnnotation = `{"type":"url_citation","start_index":0,"end_index":5,"url":"https://example.com/weather","title":"Weather"}`
)

func (u *nativeUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body := u.record(r)
	if r.URL.Path != "/v1/responses" {
		http.Error(w, `{"error":{"message":"only /v1/responses here","type":"invalid_request_error"}}`, http.StatusNotFound)
		return
	}
	if u.fail.Load() {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, `{"error":{"message":"The server had an error","type":"server_error"}}`)
		return
	}
	var req struct {
		Model  string            `json:"model"`
		Input  json.RawMessage   `json:"input"`
		Tools  []json.RawMessage `json:"tools"`
		Stream bool              `json:"stream"`
		Text   *struct {
			Format struct {
				Type string `json:"type"`
			} `json:"format"`
		} `json:"text"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		http.Error(w, `{"error":{"message":"bad json","type":"invalid_request_error"}}`, http.StatusBadRequest)
		return
	}
	var items []struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(req.Input, &items)
	lastType := ""
	if len(items) > 0 {
		lastType = items[len(items)-1].Type
	}
	text, call := "Hello there, friend", false
	switch {
	case lastType == "function_call_output":
		text = "It is sunny in Paris."
	case len(req.Tools) > 0:
		call = true
	case req.Text != nil && req.Text.Format.Type == "json_schema":
		text = `{"city":"Paris","temp_c":21}`
	}
	q, _ := json.Marshal(text)
	message := `{"type":"message","id":"msg_up1","status":"completed","role":"assistant","content":[{"type":"output_text","text":` + string(q) + `,"annotations":[` + nativeAnnotation + `],"logprobs":[]}]}`
	fc := `{"type":"function_call","id":"fc_up1","call_id":"call_up1","name":"get_weather","arguments":"{\"city\":\"Paris\"}","status":"completed"}`
	second := message
	if call {
		second = fc
	}
	object := func(status, output, usage string) string {
		return `{"id":"resp_upstream","object":"response","created_at":1700000000,"status":"` + status + `","model":"` + req.Model + `-2025","output":` + output + `,"store":false,"previous_response_id":null,"usage":` + usage + `}`
	}
	if !req.Stream {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, object("completed", "["+nativeReasoning+","+second+"]", nativeUsage))
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	seq := 0
	send := func(kind, rest string) {
		fmt.Fprintf(w, "event: %s\ndata: {\"type\":%q,\"sequence_number\":%d%s}\n\n", kind, kind, seq, rest)
		seq++
	}
	send("response.created", `,"response":`+object("in_progress", "[]", "null"))
	if u.failStream.Load() {
		send("response.failed", `,"response":`+strings.Replace(object("failed", "[]", "null"), `"output"`, `"error":{"code":"server_error","message":"overloaded"},"output"`, 1))
		return
	}
	send("response.in_progress", `,"response":`+object("in_progress", "[]", "null"))
	send("response.output_item.added", `,"output_index":0,"item":{"type":"reasoning","id":"rs_up1","summary":[]}`)
	send("response.output_item.done", `,"output_index":0,"item":`+nativeReasoning)
	if call {
		send("response.output_item.added", `,"output_index":1,"item":{"type":"function_call","id":"fc_up1","call_id":"call_up1","name":"get_weather","arguments":"","status":"in_progress"}`)
		for _, piece := range []string{`{\"city\":`, `\"Paris\"}`} {
			send("response.function_call_arguments.delta", `,"item_id":"fc_up1","output_index":1,"delta":"`+piece+`"`)
		}
		send("response.function_call_arguments.done", `,"item_id":"fc_up1","output_index":1,"arguments":"{\"city\":\"Paris\"}"`)
		send("response.output_item.done", `,"output_index":1,"item":`+fc)
	} else {
		send("response.output_item.added", `,"output_index":1,"item":{"type":"message","id":"msg_up1","status":"in_progress","role":"assistant","content":[]}`)
		send("response.content_part.added", `,"item_id":"msg_up1","output_index":1,"content_index":0,"part":{"type":"output_text","text":"","annotations":[]}`)
		for _, piece := range strings.SplitAfter(text, " ") {
			p, _ := json.Marshal(piece)
			send("response.output_text.delta", `,"item_id":"msg_up1","output_index":1,"content_index":0,"delta":`+string(p)+`,"logprobs":[]`)
		}
		send("response.output_text.done", `,"item_id":"msg_up1","output_index":1,"content_index":0,"text":`+string(q)+`,"logprobs":[]`)
		send("response.content_part.done", `,"item_id":"msg_up1","output_index":1,"content_index":0,"part":{"type":"output_text","text":`+string(q)+`,"annotations":[`+nativeAnnotation+`]}`)
		send("response.output_item.done", `,"output_index":1,"item":`+message)
	}
	send("response.completed", `,"response":`+object("completed", "["+nativeReasoning+","+second+"]", nativeUsage))
}

// nativeStack is a gateway with stored responses and budgets in front of
// two upstreams: native-model on a nativeUpstream (responses_api on, its
// deployment's upstream model "gpt-5-up"), chat-model on a chatUpstream.
// The routes native-first and chat-first try both, in that order.
type nativeStack struct {
	*stack
	native   *nativeUpstream
	chat     *chatUpstream
	chatFail atomic.Bool // the chat upstream answers 500
}

func newNativeStack(t *testing.T, o stackOptions) *nativeStack {
	t.Helper()
	ns := &nativeStack{native: &nativeUpstream{}, chat: &chatUpstream{}}
	nsrv := httptest.NewServer(ns.native)
	csrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ns.chatFail.Load() {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, `{"error":{"message":"The server had an error","type":"server_error"}}`)
			return
		}
		ns.chat.ServeHTTP(w, r)
	}))
	t.Cleanup(nsrv.Close)
	t.Cleanup(csrv.Close)
	on := true
	np, err := providers.NewOpenAI(providers.OpenAIConfig{Name: "native", BaseURL: nsrv.URL + "/v1", ResponsesAPI: &on})
	if err != nil {
		t.Fatal(err)
	}
	cp, err := providers.NewOpenAI(providers.OpenAIConfig{Name: "chat", BaseURL: csrv.URL + "/v1"})
	if err != nil {
		t.Fatal(err)
	}
	nm, cm := renamed("native-model", "gpt-4o-mini"), renamed("chat-model", "gpt-4o-mini")
	o.routes = routesOver(t, []router.Model{nm, cm},
		router.Route{Name: "native-first", Strategy: router.StrategyPriority, Candidates: []string{"native-model", "chat-model"}},
		router.Route{Name: "chat-first", Strategy: router.StrategyPriority, Candidates: []string{"chat-model", "native-model"}})
	o.models = []*gateway.Model{
		{Name: "native-model", Spec: &nm, Chat: true, Deployments: []gateway.Deployment{{Provider: np, Upstream: "gpt-5-up"}}},
		{Name: "chat-model", Spec: &cm, Chat: true, Deployments: []gateway.Deployment{{Provider: cp, Upstream: "upstream-model"}}},
	}
	o.responses, o.budgets = true, true
	ns.stack = newStack(t, o)
	return ns
}

// ledgerRow is the ledger's row for the request id.
func (s *stack) ledgerRow(t *testing.T, id string) (provider string, prompt, completion, cached int, cost int64, attempts int) {
	t.Helper()
	if err := s.ledger.Store.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.db.QueryRow(`SELECT provider, prompt_tokens, completion_tokens, cached_tokens, cost, attempts FROM budget_ledger WHERE request_id = ?`, id).
		Scan(&provider, &prompt, &completion, &cached, &cost, &attempts); err != nil {
		t.Fatalf("ledger row of %s: %v", id, err)
	}
	return
}

// wantNativeBody checks what a native upstream must get: the deployment's
// model, the output cap the gateway reserved, store off, none of
// tollgate's fields.
func wantNativeBody(t *testing.T, body map[string]any, limit float64) {
	t.Helper()
	if body["model"] != "gpt-5-up" || body["max_output_tokens"] != limit || body["store"] != false {
		t.Errorf("native body: model %v, max_output_tokens %v (want %v), store %v", body["model"], body["max_output_tokens"], limit, body["store"])
	}
	for _, k := range []string{"previous_response_id", "messages", "max_completion_tokens", "stream_options", "customer_identifier"} {
		if _, ok := body[k]; ok {
			t.Errorf("the native upstream received %q: %v", k, body)
		}
	}
}

// nativeItems are the types (and roles) of the input items a native
// upstream received.
func nativeItems(body map[string]any) []string {
	in, _ := body["input"].([]any)
	var out []string
	for _, it := range in {
		m := it.(map[string]any)
		s, _ := m["type"].(string)
		if s == "" || s == "message" {
			s = "message:" + m["role"].(string)
		}
		out = append(out, s)
	}
	return out
}

func TestResponsesNativeSDKPlain(t *testing.T) {
	s := newNativeStack(t, stackOptions{})
	var hdr http.Header
	resp, err := s.client(s.secret, headerCapture(&hdr)).Responses.New(context.Background(), responses.ResponseNewParams{
		Model:           "native-model",
		Input:           responses.ResponseNewParamsInputUnion{OfString: openai.String("Say hello")},
		Instructions:    openai.String("Be terse."),
		MaxOutputTokens: openai.Int(100),
		Include:         []responses.ResponseIncludable{responses.ResponseIncludableReasoningEncryptedContent},
	})
	if err != nil {
		t.Fatal(err)
	}
	if resp.OutputText() != "Hello there, friend" || resp.Status != "completed" || !strings.HasPrefix(resp.ID, "resp_") || resp.ID == "resp_upstream" {
		t.Errorf("response = %s", resp.RawJSON())
	}
	if !strings.Contains(resp.RawJSON(), nativeReasoning) || !strings.Contains(resp.RawJSON(), nativeAnnotation) {
		t.Errorf("the reasoning item and the annotation did not come verbatim: %s", resp.RawJSON())
	}
	if resp.Model != "gpt-5-up-2025" || resp.MaxOutputTokens != 100 || !strings.Contains(resp.RawJSON(), `"store":true`) || resp.Instructions.OfString != "Be terse." {
		t.Errorf("echo = %s", resp.RawJSON())
	}
	u := resp.Usage
	if u.InputTokens != 1000 || u.OutputTokens != 500 || u.InputTokensDetails.CachedTokens != 400 || u.OutputTokensDetails.ReasoningTokens != 100 {
		t.Errorf("usage = %+v", u)
	}
	body := s.native.last(t)
	wantNativeBody(t, body, 100)
	if body["input"] != "Say hello" || body["instructions"] != "Be terse." || body["include"] == nil {
		t.Errorf("the client's fields did not pass: %v", body)
	}
	if len(s.chat.received()) != 0 {
		t.Error("the chat upstream was called")
	}
	if hdr.Get("x-tollgate-provider") != "native" || hdr.Get("x-tollgate-cost-usd") != "0.000420" {
		t.Errorf("provider %q, cost %q (want 0.000420: the native usage at gpt-4o-mini's prices)", hdr.Get("x-tollgate-provider"), hdr.Get("x-tollgate-cost-usd"))
	}
	provider, prompt, completion, cached, cost, _ := s.ledgerRow(t, hdr.Get("x-tollgate-request-id"))
	if provider != "native" || prompt != 1000 || completion != 500 || cached != 400 || cost != 420 {
		t.Errorf("ledger: %s %d/%d/%d cost %d, want native 1000/500/400 cost 420", provider, prompt, completion, cached, cost)
	}

	// Without a cap of its own the upstream still gets one: the
	// reservation, what a chat upstream is sent as its output limit.
	for _, model := range []string{"native-model", "chat-model"} {
		if _, err := s.client(s.secret).Responses.New(context.Background(), responses.ResponseNewParams{Model: model,
			Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("Uncapped")}}); err != nil {
			t.Fatal(err)
		}
	}
	reserved, ok := s.chat.last(t)["max_tokens"].(float64) // the spelling for a host other than OpenAI's
	if !ok || reserved <= 0 {
		t.Fatalf("the chat upstream got no cap: %v", s.chat.last(t))
	}
	wantNativeBody(t, s.native.last(t), reserved)
}

func TestResponsesNativeSDKStream(t *testing.T) {
	s := newNativeStack(t, stackOptions{})
	client := s.client(s.secret)
	ctx := context.Background()
	var hdr http.Header
	stream := client.Responses.NewStreaming(ctx, responses.ResponseNewParams{
		Model:           "native-model",
		Input:           responses.ResponseNewParamsInputUnion{OfString: openai.String("Say hello")},
		MaxOutputTokens: openai.Int(200),
	}, headerCapture(&hdr))
	defer stream.Close()
	types, final, snap := accumulate(t, stream)
	want := []string{"response.created", "response.in_progress", "response.output_item.added", "response.output_item.done",
		"response.output_item.added", "response.content_part.added",
		"response.output_text.delta", "response.output_text.delta", "response.output_text.delta",
		"response.output_text.done", "response.content_part.done", "response.output_item.done", "response.completed"}
	if !slices.Equal(types, want) {
		t.Errorf("events = %q\nwant     %q", types, want)
	}
	if snap.OutputText() != "Hello there, friend" || final.OutputText() != "Hello there, friend" || !strings.HasPrefix(final.ID, "resp_") || final.ID == "resp_upstream" {
		t.Errorf("accumulated %q, final %q, id %q", snap.OutputText(), final.OutputText(), final.ID)
	}
	if final.Usage.InputTokens != 1000 || final.Usage.InputTokensDetails.CachedTokens != 400 || final.Usage.OutputTokensDetails.ReasoningTokens != 100 || !strings.Contains(final.RawJSON(), `"store":true`) {
		t.Errorf("final = %s", final.RawJSON())
	}
	wantNativeBody(t, s.native.last(t), 200)
	if s.native.last(t)["stream"] != true {
		t.Error("the native upstream was not asked to stream")
	}
	// Stored as completed, reasoning and all, under tollgate's id.
	got, err := client.Responses.Get(ctx, final.ID, responses.ResponseGetParams{})
	if err != nil || got.OutputText() != "Hello there, friend" || !strings.Contains(got.RawJSON(), nativeReasoning) {
		t.Errorf("GET of the streamed response = %v, %v", got, err)
	}
	provider, prompt, completion, cached, cost, _ := s.ledgerRow(t, hdr.Get("x-tollgate-request-id"))
	if provider != "native" || prompt != 1000 || completion != 500 || cached != 400 || cost != 420 {
		t.Errorf("ledger: %s %d/%d/%d cost %d, want native 1000/500/400 cost 420", provider, prompt, completion, cached, cost)
	}
}

func TestResponsesNativeSDKFunctionCallRoundTrip(t *testing.T) {
	for _, streamed := range []bool{false, true} {
		t.Run(map[bool]string{false: "json", true: "stream"}[streamed], func(t *testing.T) {
			s := newNativeStack(t, stackOptions{})
			client := s.client(s.secret)
			ctx := context.Background()
			user := responses.ResponseInputItemParamOfMessage("What's the weather in Paris?", responses.EasyInputMessageRoleUser)
			params := responses.ResponseNewParams{
				Model: "native-model",
				Input: responses.ResponseNewParamsInputUnion{OfInputItemList: responses.ResponseInputParam{user}},
				Tools: []responses.ToolUnionParam{responsesWeatherTool},
			}
			var first *responses.Response
			if streamed {
				stream := client.Responses.NewStreaming(ctx, params)
				types, final, _ := accumulate(t, stream)
				stream.Close()
				for _, want := range []string{"response.function_call_arguments.delta", "response.function_call_arguments.done", "response.completed"} {
					if !slices.Contains(types, want) {
						t.Errorf("no %s among %q", want, types)
					}
				}
				first = final
			} else {
				var err error
				if first, err = client.Responses.New(ctx, params); err != nil {
					t.Fatal(err)
				}
			}
			if len(first.Output) != 2 || first.Output[0].Type != "reasoning" || first.Output[1].Type != "function_call" {
				t.Fatalf("output = %s", first.RawJSON())
			}
			call := first.Output[1].AsFunctionCall()
			if call.CallID != "call_up1" || call.Arguments != `{"city":"Paris"}` {
				t.Errorf("function call = %s", call.RawJSON())
			}
			if tools := s.native.last(t)["tools"].([]any); tools[0].(map[string]any)["name"] != "get_weather" {
				t.Errorf("the native upstream's tools = %v (want the Responses shape, passed through)", tools)
			}

			// The client sends the reasoning item back with the call and its
			// output, as OpenAI's stateless usage asks: all reach the upstream.
			out := responses.ResponseInputItemParamOfFunctionCallOutput("sunny, 21C")
			out.OfFunctionCallOutput.CallID = openai.String(call.CallID)
			var reasoning responses.ResponseInputItemUnionParam
			if err := json.Unmarshal([]byte(first.Output[0].RawJSON()), &reasoning); err != nil {
				t.Fatal(err)
			}
			params.Input.OfInputItemList = responses.ResponseInputParam{user, reasoning,
				responses.ResponseInputItemParamOfFunctionCall(call.Arguments, call.CallID, call.Name), out}
			second, err := client.Responses.New(ctx, params)
			if err != nil {
				t.Fatal(err)
			}
			if second.OutputText() != "It is sunny in Paris." {
				t.Errorf("second answer = %s", second.RawJSON())
			}
			body := s.native.last(t)
			if got, want := nativeItems(body), []string{"message:user", "reasoning", "function_call", "function_call_output"}; !slices.Equal(got, want) {
				t.Errorf("native input = %q, want %q", got, want)
			}
			if in := body["input"].([]any); in[1].(map[string]any)["encrypted_content"] != "gAAAAB-opaque-reasoning" {
				t.Errorf("the reasoning item lost its encrypted content: %v", in[1])
			}

			// With previous_response_id instead: the stored turn is expanded
			// into input, the upstream never sees tollgate's id.
			params.Input.OfInputItemList = responses.ResponseInputParam{out}
			params.PreviousResponseID = openai.String(first.ID)
			third, err := client.Responses.New(ctx, params)
			if err != nil {
				t.Fatal(err)
			}
			body = s.native.last(t)
			wantNativeBody(t, body, body["max_output_tokens"].(float64))
			if got, want := nativeItems(body), []string{"message:user", "function_call", "function_call_output"}; third.OutputText() != "It is sunny in Paris." || !slices.Equal(got, want) {
				t.Errorf("with previous_response_id: answer %q, native input %q, want %q", third.OutputText(), got, want)
			}
		})
	}
}

func TestResponsesNativeSDKJSONSchema(t *testing.T) {
	s := newNativeStack(t, stackOptions{})
	schema := map[string]any{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}, "required": []string{"city"}, "additionalProperties": false}
	resp, err := s.client(s.secret).Responses.New(context.Background(), responses.ResponseNewParams{
		Model: "native-model",
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("Weather in Paris as JSON")},
		Text:  responses.ResponseTextConfigParam{Format: responses.ResponseFormatTextConfigUnionParam{OfJSONSchema: &responses.ResponseFormatTextJSONSchemaConfigParam{Name: "weather", Schema: schema, Strict: openai.Bool(true)}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		City string `json:"city"`
	}
	if err := json.Unmarshal([]byte(resp.OutputText()), &v); err != nil || v.City != "Paris" || resp.Text.Format.Name != "weather" {
		t.Errorf("output %q: %v; text %s", resp.OutputText(), err, resp.Text.RawJSON())
	}
	format, _ := json.Marshal(s.native.last(t)["text"])
	if want := `{"format":{"name":"weather","schema":{"additionalProperties":false,"properties":{"city":{"type":"string"}},"required":["city"],"type":"object"},"strict":true,"type":"json_schema"}}`; string(format) != want {
		t.Errorf("native text = %s\nwant %s", format, want)
	}
}

// TestResponsesNativeAndTranslatedShareAConversation: previous_response_id
// continues across kinds of deployment both ways, each upstream getting
// the earlier turns in its own shape.
func TestResponsesNativeAndTranslatedShareAConversation(t *testing.T) {
	s := newNativeStack(t, stackOptions{})
	client := s.client(s.secret)
	ctx := context.Background()
	ask := func(model, text, previous string) *responses.Response {
		t.Helper()
		p := responses.ResponseNewParams{Model: model, Input: responses.ResponseNewParamsInputUnion{OfString: openai.String(text)}}
		if previous != "" {
			p.PreviousResponseID = openai.String(previous)
		}
		r, err := client.Responses.New(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	first := ask("native-model", "Say hello", "")
	second := ask("chat-model", "And in German?", first.ID)
	if got, want := messagesOf(t, s.chat.last(t)), []string{"user:Say hello", "assistant:Hello there, friend", "user:And in German?"}; !slices.Equal(got, want) {
		t.Errorf("chat upstream after a native turn = %q\nwant %q", got, want)
	}
	third := ask("native-model", "Thanks", second.ID)
	body := s.native.last(t)
	if got, want := nativeItems(body), []string{"message:user", "message:assistant", "message:user", "message:assistant", "message:user"}; !slices.Equal(got, want) {
		t.Errorf("native upstream after a translated turn = %q, want %q", got, want)
	}
	if in := body["input"].([]any); in[4].(map[string]any)["content"] != "Thanks" || in[1].(map[string]any)["content"] != "Hello there, friend" {
		t.Errorf("native input = %v", in)
	}
	wantNativeBody(t, body, body["max_output_tokens"].(float64))
	if third.PreviousResponseID != second.ID {
		t.Errorf("previous_response_id echo = %q", third.PreviousResponseID)
	}
}

// TestResponsesNativeFallsBack: a native deployment that fails falls back
// to a chat-only one (which gets the translation), and a chat deployment
// that fails to a native one (which gets the Responses body), JSON and
// streamed; each answer is priced and recorded from its own usage.
func TestResponsesNativeFallsBack(t *testing.T) {
	for _, tc := range []struct {
		name, route, provider string
		stream                bool
		cost                  int64 // micro-dollars, at gpt-4o-mini's prices
		failedEvent           bool  // the native stream answers 200, then response.failed
	}{
		// nativeUsage: 420. chatUpstream's: 8 x 0.15 + 4 x 0.075 + 5 x 0.60 = 4.5, rounded up to 5.
		{"native fails, chat answers", "native-first", "chat", false, 5, false},
		{"native fails, chat answers the stream", "native-first", "chat", true, 5, false},
		{"native stream fails at once, chat answers", "native-first", "chat", true, 5, true},
		{"chat fails, native answers", "chat-first", "native", false, 420, false},
		{"chat fails, native answers the stream", "chat-first", "native", true, 420, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newNativeStack(t, stackOptions{})
			switch {
			case tc.failedEvent:
				s.native.failStream.Store(true)
			case tc.provider == "chat":
				s.native.fail.Store(true)
			default:
				s.chatFail.Store(true)
			}
			var hdr http.Header
			client := s.client(s.secret, headerCapture(&hdr))
			p := responses.ResponseNewParams{Model: tc.route, Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("Say hello")}}
			var final *responses.Response
			if tc.stream {
				stream := client.Responses.NewStreaming(context.Background(), p)
				_, final, _ = accumulate(t, stream)
				stream.Close()
			} else {
				var err error
				if final, err = client.Responses.New(context.Background(), p); err != nil {
					t.Fatal(err)
				}
			}
			if final.OutputText() != "Hello there, friend" || hdr.Get("x-tollgate-provider") != tc.provider {
				t.Errorf("answer %q from %q, want %s", final.OutputText(), hdr.Get("x-tollgate-provider"), tc.provider)
			}
			if n := len(s.native.received()); n == 0 {
				t.Error("the native deployment was never tried")
			}
			if tc.provider == "chat" {
				noResponsesFields(t, s.chat.last(t))
			} else {
				wantNativeBody(t, s.native.last(t), s.native.last(t)["max_output_tokens"].(float64))
			}
			provider, _, _, _, cost, attempts := s.ledgerRow(t, hdr.Get("x-tollgate-request-id"))
			if provider != tc.provider || attempts < 2 || cost != tc.cost {
				t.Errorf("ledger: provider %q, attempts %d, cost %d, want %s, at least 2, %d", provider, attempts, cost, tc.provider, tc.cost)
			}
			if !tc.stream && hdr.Get("x-tollgate-cost-usd") != fmt.Sprintf("0.%06d", tc.cost) {
				t.Errorf("cost header %q, want %d micro-dollars", hdr.Get("x-tollgate-cost-usd"), tc.cost)
			}
		})
	}
}

// TestResponsesNativeWireGolden pins what a native upstream is sent for a
// representative request continuing a stored turn (tollgate's fields
// gone, the turn expanded into input before the client's items, model and
// cap replaced), the client's answer, and a streamed answer's events.
func TestResponsesNativeWireGolden(t *testing.T) {
	s := newNativeStack(t, stackOptions{})
	status, first := rawPost(t, s.stack, "/v1/responses", `{"model":"native-model","input":"Weather in Paris?","tools":[{"type":"function","name":"get_weather","parameters":{"type":"object"}}]}`)
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, first)
	}
	var firstResp struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal([]byte(first), &firstResp)
	request := `{"model":"native-model",
		"previous_response_id":"` + firstResp.ID + `",
		"instructions":"You are a weather assistant.",
		"input":[
			{"type":"reasoning","id":"rs_up1","summary":[{"type":"summary_text","text":"Thinking."}],"encrypted_content":"gAAAAB-opaque-reasoning"},
			{"type":"function_call_output","call_id":"call_up1","output":"sunny, 21C"},
			{"role":"user","content":[{"type":"input_text","text":"And tomorrow?"},{"type":"input_image","image_url":"https://example.com/sky.png","detail":"low"}]}],
		"tools":[{"type":"function","name":"get_weather","description":"Current weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}},"strict":true}],
		"tool_choice":"auto","parallel_tool_calls":false,
		"text":{"format":{"type":"text"},"verbosity":"low"},
		"reasoning":{"effort":"medium","summary":"auto"},
		"max_output_tokens":300,"temperature":0.2,"top_p":0.9,"user":"u-42",
		"metadata":{"ticket":"T-1"},"include":["reasoning.encrypted_content"],
		"prompt_cache_key":"weather","safety_identifier":"s-1","service_tier":"auto"}`
	status, answer := rawPost(t, s.stack, "/v1/responses", request)
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, answer)
	}
	s.native.mu.Lock()
	sent := s.native.bodies[len(s.native.bodies)-1]
	s.native.mu.Unlock()
	var received, ans bytes.Buffer
	_ = json.Indent(&received, sent, "", "  ")
	_ = json.Indent(&ans, []byte(answer), "", "  ")
	_, stream := rawPost(t, s.stack, "/v1/responses", `{"model":"native-model","input":"Say hello","stream":true,"store":false}`)
	golden := fmt.Sprintf("### the native upstream's request\n%s\n\n### the client's response\n%s\n\n### a streamed answer\n%s",
		received.Bytes(), normalizeIDs(ans.Bytes()), normalizeIDs([]byte(stream)))
	compareGolden(t, filepath.Join("..", "..", "testdata", "httpapi", "responses_native.golden"), []byte(golden))
}

// TestResponsesNativeCacheHit: an answer a native upstream gave, JSON or
// streamed, is cached like any other and served again, JSON and streamed,
// in the Responses shape under a new id, without an upstream call.
func TestResponsesNativeCacheHit(t *testing.T) {
	for _, firstStreamed := range []bool{false, true} {
		t.Run(map[bool]string{false: "cached from json", true: "cached from a stream"}[firstStreamed], func(t *testing.T) {
			s := newNativeStack(t, stackOptions{cache: true})
			ctx := context.Background()
			var hdr http.Header
			client := s.client(s.secret, headerCapture(&hdr))
			params := responses.ResponseNewParams{Model: "native-model", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("Say hello")}}
			var first *responses.Response
			if firstStreamed {
				stream := client.Responses.NewStreaming(ctx, params)
				_, first, _ = accumulate(t, stream)
				stream.Close()
			} else {
				var err error
				if first, err = client.Responses.New(ctx, params); err != nil {
					t.Fatal(err)
				}
			}
			if hdr.Get("x-tollgate-cache") != "miss" || first.OutputText() != "Hello there, friend" {
				t.Fatalf("first call: cache %q, %s", hdr.Get("x-tollgate-cache"), first.RawJSON())
			}
			second, err := client.Responses.New(ctx, params)
			if err != nil {
				t.Fatal(err)
			}
			if hdr.Get("x-tollgate-cache") != "hit" || second.OutputText() != "Hello there, friend" || second.ID == first.ID || second.Status != "completed" || second.Object != "response" {
				t.Errorf("repeat: cache %q, response %s", hdr.Get("x-tollgate-cache"), second.RawJSON())
			}
			stream := client.Responses.NewStreaming(ctx, params)
			types, final, _ := accumulate(t, stream)
			stream.Close()
			if final.OutputText() != "Hello there, friend" || types[len(types)-1] != "response.completed" || final.ID == first.ID {
				t.Errorf("streamed repeat: %q, events %q", final.OutputText(), types)
			}
			if n := len(s.native.received()); n != 1 {
				t.Errorf("the native upstream was called %d times for one question asked three times", n)
			}
		})
	}
}

// TestResponsesNativeStreamFailsAfterTheFirstByte: a native stream that
// fails once the client has events ends with tollgate's response.failed,
// numbered after the last event relayed; nothing is stored.
func TestResponsesNativeStreamFailsAfterTheFirstByte(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i, e := range []string{
			`{"type":"response.created","sequence_number":0,"response":{"id":"resp_u","status":"in_progress","model":"m","output":[]}}`,
			`{"type":"response.output_item.added","sequence_number":1,"output_index":0,"item":{"type":"message","id":"msg_u","status":"in_progress","role":"assistant","content":[]}}`,
			`{"type":"response.output_text.delta","sequence_number":2,"item_id":"msg_u","output_index":0,"content_index":0,"delta":"Hel","logprobs":[]}`,
			`{"type":"response.failed","sequence_number":3,"response":{"id":"resp_u","status":"failed","model":"m","output":[],"error":{"code":"server_error","message":"boom"}}}`,
		} {
			fmt.Fprintf(w, "event: e%d\ndata: %s\n\n", i, e)
		}
	})
	on := true
	s := upstreamStack(t, h, providers.OpenAIConfig{ResponsesAPI: &on}, router.Route{}, stackOptions{responses: true})
	status, stream := rawPost(t, s, "/v1/responses", `{"model":"upstream-model","input":"hi","stream":true}`)
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, stream)
	}
	events := strings.Split(strings.TrimSpace(stream), "\n\n")
	last := events[len(events)-1]
	var failed struct {
		Type           string `json:"type"`
		SequenceNumber int    `json:"sequence_number"`
		Response       struct {
			ID     string `json:"id"`
			Status string `json:"status"`
			Error  struct {
				Code string `json:"code"`
			} `json:"error"`
		} `json:"response"`
	}
	_, data, _ := strings.Cut(last, "data: ")
	if err := json.Unmarshal([]byte(data), &failed); err != nil {
		t.Fatalf("last event %q: %v", last, err)
	}
	if len(events) != 4 || failed.Type != "response.failed" || failed.SequenceNumber != 3 || failed.Response.Status != "failed" || failed.Response.Error.Code != "server_error" || failed.Response.ID == "resp_u" {
		t.Fatalf("events:\n%s", stream)
	}
	if _, err := s.client(s.secret).Responses.Get(context.Background(), failed.Response.ID, responses.ResponseGetParams{}); apiStatus(err) != http.StatusNotFound {
		t.Errorf("a failed response was stored: %v", err)
	}
}
