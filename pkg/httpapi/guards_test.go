package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/responses"

	"github.com/tollgate/tollgate/pkg/budget"
	"github.com/tollgate/tollgate/pkg/gateway"
	"github.com/tollgate/tollgate/pkg/guardrails"
	"github.com/tollgate/tollgate/pkg/providers"
)

// guardUpstream is an OpenAI-style upstream that keeps every body it
// receives and answers with a scripted text: whole, or streamed in the
// given pieces.
type guardUpstream struct {
	srv    *httptest.Server
	mu     sync.Mutex
	bodies []string
	answer []string // the pieces of the answer's content
}

func newGuardUpstream(t *testing.T, answer ...string) *guardUpstream {
	u := &guardUpstream{answer: answer}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.bodies = append(u.bodies, string(body))
		u.mu.Unlock()
		var req struct {
			Stream bool            `json:"stream"`
			Input  json.RawMessage `json:"input"`
		}
		_ = json.Unmarshal(body, &req)
		if strings.HasSuffix(r.URL.Path, "/embeddings") {
			var texts []string
			_ = json.Unmarshal(req.Input, &texts)
			data := make([]string, len(texts))
			for i := range texts {
				data[i] = fmt.Sprintf(`{"object":"embedding","index":%d,"embedding":[0.5,0.25]}`, i)
			}
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"object":"list","data":[%s],"model":"text-embedding-3-small","usage":{"prompt_tokens":5,"total_tokens":5}}`, strings.Join(data, ","))
			return
		}
		if req.Stream {
			w.Header().Set("Content-Type", "text/event-stream")
			for i, piece := range u.answer {
				role := ""
				if i == 0 {
					role = `"role":"assistant",`
				}
				fmt.Fprintf(w, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"up\",\"choices\":[{\"index\":0,\"delta\":{%s\"content\":%q},\"finish_reason\":null}]}\n\n", role, piece)
				w.(http.Flusher).Flush()
			}
			fmt.Fprint(w, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"up\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n")
			fmt.Fprint(w, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"up\",\"choices\":[],\"usage\":{\"prompt_tokens\":20,\"completion_tokens\":10,\"total_tokens\":30}}\n\n")
			fmt.Fprint(w, "data: [DONE]\n\n")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		content, _ := json.Marshal(strings.Join(u.answer, ""))
		fmt.Fprintf(w, `{"id":"c","object":"chat.completion","created":1,"model":"up","choices":[{"index":0,"message":{"role":"assistant","content":%s},"finish_reason":"stop"}],"usage":{"prompt_tokens":20,"completion_tokens":10,"total_tokens":30}}`, content)
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *guardUpstream) received() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.bodies...)
}

// guardStack is a stack whose one model, gpt-4o-mini, is served by u,
// with the guards given.
func guardStack(t *testing.T, u *guardUpstream, guards gateway.GuardConfig, o stackOptions) *stack {
	t.Helper()
	o.models, o.guards = guardModels(t, u), guards
	return newStack(t, o)
}

// guardModels is gpt-4o-mini served by u.
func guardModels(t *testing.T, u *guardUpstream) []*gateway.Model {
	t.Helper()
	up, err := providers.NewOpenAI(providers.OpenAIConfig{Name: "openai", BaseURL: u.srv.URL + "/v1", APIKey: "sk-x"})
	if err != nil {
		t.Fatal(err)
	}
	return []*gateway.Model{
		{Name: "gpt-4o-mini", Spec: spec("gpt-4o-mini"), Chat: true, Deployments: []gateway.Deployment{{Provider: up, Upstream: "gpt-4o-mini"}}},
		{Name: "text-embedding-3-small", Spec: spec("text-embedding-3-small"), Embeddings: true, Deployments: []gateway.Deployment{{Provider: up, Upstream: "text-embedding-3-small"}}},
	}
}

var (
	piiGuard     = guardrails.Spec{Name: "pii", Detectors: []string{"email", "phone", "card"}, Action: guardrails.Mask, Request: true, Answer: true}
	secretsGuard = guardrails.Spec{Name: "secrets", Detectors: []string{"secret"}, Action: guardrails.Block, Request: true, Answer: true}
)

// sdkError is err as the SDK's API error, or a test failure.
func sdkError(t *testing.T, err error) *openai.Error {
	t.Helper()
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) {
		t.Fatalf("want an API error, got %v", err)
	}
	return apiErr
}

func TestGuardBlocksThroughSDK(t *testing.T) {
	u := newGuardUpstream(t, "never sent")
	s := guardStack(t, u, gateway.GuardConfig{Guards: []guardrails.Spec{piiGuard, secretsGuard}, Default: []string{"pii", "secrets"}}, stackOptions{budgets: true})
	const secret = "sk-proj-Abcdefghijklmnopqrstuvwxyz0123456789ABCD"
	var h http.Header
	_, err := s.client(s.secret, headerCapture(&h)).Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model:    "gpt-4o-mini",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Why does my key " + secret + " fail?")},
	})
	apiErr := sdkError(t, err)
	if apiErr.StatusCode != http.StatusBadRequest || apiErr.Code != "content_blocked" || !strings.Contains(apiErr.Message, "secrets") {
		t.Fatalf("error = %d %s %q", apiErr.StatusCode, apiErr.Code, apiErr.Message)
	}
	if strings.Contains(apiErr.RawJSON(), "sk-proj") {
		t.Errorf("the error quotes the matched text: %s", apiErr.RawJSON())
	}
	if got := u.received(); len(got) != 0 {
		t.Fatalf("the upstream was called %d times", len(got))
	}
	guards, status := s.ledgerGuards(t, h.Get("x-tollgate-request-id"))
	if guards != `{"secrets":1}` || status != http.StatusBadRequest {
		t.Errorf("ledger row: guards %s, status %d", guards, status)
	}
	if got := s.gw.Guards()[1].Hits; got.Request != 1 || got.Blocked != 1 {
		t.Errorf("secrets hits = %+v", got)
	}
	// The ledger's record, across replicas and restarts: the cost report by guard.
	_, rep, raw := adminDo(t, s, "GET", "/admin/reports/cost?group_by=guard&guard=secrets", "")
	if rows, _ := rep["rows"].([]any); len(rows) != 1 || !strings.Contains(raw, `"guard":"secrets","requests":1`) {
		t.Errorf("report by guard: %s", raw)
	}
}

func TestGuardMasksThroughSDK(t *testing.T) {
	const (
		email = "jane.doe@example.com"
		phone = "+14155552671"
		card  = "4111 1111 1111 1111"
	)
	// The upstream answers with the placeholders it was given.
	answer := "Hello [EMAIL_1], we will call [PHONE_1] about card [CARD_1]."
	for _, tc := range []struct {
		name   string
		unmask bool
		want   string
	}{
		{"placeholders stay", false, answer},
		{"values restored", true, "Hello " + email + ", we will call " + phone + " about card " + card + "."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := newGuardUpstream(t, answer)
			g := piiGuard
			g.UnmaskAnswers = tc.unmask
			s := guardStack(t, u, gateway.GuardConfig{Guards: []guardrails.Spec{g}, Default: []string{"pii"}}, stackOptions{budgets: true})
			var h http.Header
			resp, err := s.client(s.secret, headerCapture(&h)).Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
				Model: "gpt-4o-mini",
				Messages: []openai.ChatCompletionMessageParamUnion{
					openai.SystemMessage("Support bot."),
					openai.UserMessage("I am " + email + ", call me on " + phone + "."),
					{OfAssistant: &openai.ChatCompletionAssistantMessageParam{ToolCalls: []openai.ChatCompletionMessageToolCallUnionParam{{
						OfFunction: &openai.ChatCompletionMessageFunctionToolCallParam{ID: "call_1",
							Function: openai.ChatCompletionMessageFunctionToolCallFunctionParam{Name: "lookup", Arguments: `{"email":"` + email + `"}`}},
					}}}},
					openai.ToolMessage(`{"card":"`+card+`","owner":"`+email+`"}`, "call_1"),
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			got := u.received()
			if len(got) != 1 {
				t.Fatalf("upstream calls = %d", len(got))
			}
			for _, v := range []string{email, phone, card, "jane.doe"} {
				if strings.Contains(got[0], v) {
					t.Errorf("the upstream received %q: %s", v, got[0])
				}
			}
			for _, p := range []string{"[EMAIL_1]", "[PHONE_1]", "[CARD_1]", `\"email\":\"[EMAIL_1]\"`} {
				if !strings.Contains(got[0], p) {
					t.Errorf("the upstream did not receive %s: %s", p, got[0])
				}
			}
			if c := resp.Choices[0].Message.Content; c != tc.want {
				t.Errorf("answer = %q, want %q", c, tc.want)
			}
			guards, _ := s.ledgerGuards(t, h.Get("x-tollgate-request-id"))
			// request: email ×3 (message, tool arguments, tool result), phone, card; the answer's placeholders match nothing
			if guards != `{"pii":5}` {
				t.Errorf("ledger guards = %s", guards)
			}
		})
	}
}

func TestGuardMasksStreamedCardSplitOverThreeChunks(t *testing.T) {
	pieces := []string{"Your card 4111 11", "11 1111 1", "111 is on file."}
	for _, tc := range []struct {
		name   string
		unmask bool
	}{{"mask", false}, {"mask and restore", true}} {
		t.Run(tc.name, func(t *testing.T) {
			u := newGuardUpstream(t, pieces...)
			g := piiGuard
			g.UnmaskAnswers = tc.unmask
			s := guardStack(t, u, gateway.GuardConfig{Guards: []guardrails.Spec{g}, Default: []string{"pii"}}, stackOptions{})
			stream := s.client(s.secret).Chat.Completions.NewStreaming(context.Background(), openai.ChatCompletionNewParams{
				Model:    "gpt-4o-mini",
				Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Which card do you have?")},
			})
			var content strings.Builder
			finish := ""
			for stream.Next() {
				c := stream.Current()
				for _, ch := range c.Choices {
					if strings.ContainsAny(ch.Delta.Content, "4") && strings.Contains(ch.Delta.Content, "11") {
						t.Errorf("a chunk carries card digits: %q", ch.Delta.Content)
					}
					content.WriteString(ch.Delta.Content)
					if ch.FinishReason != "" {
						finish = ch.FinishReason
					}
				}
			}
			if err := stream.Err(); err != nil {
				t.Fatal(err)
			}
			// The card came from the answer, not the user: it is never restored.
			if got := content.String(); got != "Your card [CARD_1] is on file." || finish != "stop" {
				t.Errorf("streamed answer = %q (finish %q)", got, finish)
			}
		})
	}
}

func TestGuardBlocksStreamedAnswer(t *testing.T) {
	u := newGuardUpstream(t, "Use the key sk-ant-api03-", "Abcdefghijklmnopqrstuvwxyz0123456789", " to call it.")
	s := guardStack(t, u, gateway.GuardConfig{Guards: []guardrails.Spec{secretsGuard}, Default: []string{"secrets"}}, stackOptions{})
	stream := s.client(s.secret).Chat.Completions.NewStreaming(context.Background(), openai.ChatCompletionNewParams{
		Model:    "gpt-4o-mini",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Give me a key.")},
	})
	var content strings.Builder
	for stream.Next() {
		for _, ch := range stream.Current().Choices {
			content.WriteString(ch.Delta.Content)
		}
	}
	if strings.Contains(content.String(), "sk-ant") {
		t.Errorf("the client received the secret: %q", content.String())
	}
	if err := stream.Err(); err == nil || !strings.Contains(err.Error(), "secrets") {
		t.Errorf("stream error = %v, want the guard's refusal", err)
	}
}

func TestGuardThatCannotRunRefuses(t *testing.T) {
	t.Run("scan limit", func(t *testing.T) {
		u := newGuardUpstream(t, "never sent")
		s := guardStack(t, u, gateway.GuardConfig{Guards: []guardrails.Spec{piiGuard}, Default: []string{"pii"}, ScanLimit: 64}, stackOptions{})
		_, err := s.client(s.secret).Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
			Model:    "gpt-4o-mini",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(strings.Repeat("a long prompt ", 10))},
		})
		apiErr := sdkError(t, err)
		if apiErr.StatusCode != http.StatusRequestEntityTooLarge || apiErr.Code != "guard_scan_limit" {
			t.Errorf("error = %d %s %q", apiErr.StatusCode, apiErr.Code, apiErr.Message)
		}
		if n := len(u.received()); n != 0 {
			t.Errorf("the upstream was called %d times", n)
		}
	})
}

func TestGuardCacheStoresAndMatchesTheMaskedPrompt(t *testing.T) {
	u := newGuardUpstream(t, "The account of [EMAIL_1] is active.")
	g := piiGuard
	g.UnmaskAnswers = true
	s := guardStack(t, u, gateway.GuardConfig{Guards: []guardrails.Spec{g}, Default: []string{"pii"}}, stackOptions{cache: true})
	ask := func(email string) (string, http.Header) {
		var h http.Header
		resp, err := s.client(s.secret, headerCapture(&h)).Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
			Model:    "gpt-4o-mini",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Is the account of " + email + " active?")},
		})
		if err != nil {
			t.Fatal(err)
		}
		return resp.Choices[0].Message.Content, h
	}
	first, h1 := ask("ann@example.com")
	second, h2 := ask("bob@example.org")
	if h1.Get("x-tollgate-cache") != "miss" || h2.Get("x-tollgate-cache") != "hit" {
		t.Errorf("cache: %q then %q, want miss then hit", h1.Get("x-tollgate-cache"), h2.Get("x-tollgate-cache"))
	}
	if n := len(u.received()); n != 1 {
		t.Errorf("upstream calls = %d, want 1", n)
	}
	if first != "The account of ann@example.com is active." || second != "The account of bob@example.org is active." {
		t.Errorf("answers = %q, %q", first, second)
	}
	if err := s.cache.Close(); err != nil { // writes the entries queued behind Store
		t.Fatal(err)
	}
	rows, err := s.db.Query(`SELECT exact_key || query || CAST(response AS TEXT) FROM semcache_entries`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var stored string
		if err := rows.Scan(&stored); err != nil {
			t.Fatal(err)
		}
		n++
		if strings.Contains(stored, "@example") {
			t.Errorf("the cache stored an unmasked value: %s", stored)
		}
	}
	if n != 1 {
		t.Errorf("%d cache entries, want 1", n)
	}
}

func TestEnrichmentReachesUpstreamAndCounts(t *testing.T) {
	plainTokens := func() string {
		s := guardStack(t, newGuardUpstream(t, "ok"), gateway.GuardConfig{}, stackOptions{})
		var h http.Header
		if _, err := s.client(s.secret, headerCapture(&h)).Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
			Model: "gpt-4o-mini", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hi")}}); err != nil {
			t.Fatal(err)
		}
		return h.Get("x-tollgate-prompt-tokens")
	}()
	u := newGuardUpstream(t, "ok")
	s := guardStack(t, u, gateway.GuardConfig{Enrich: map[string]gateway.Enrichment{"gpt-4o-mini": {
		Prepend: []gateway.EnrichMessage{{Role: "system", Content: "You serve {{key_name}} for {{customer}}."}},
		Append:  []gateway.EnrichMessage{{Role: "user", Content: "Answer in English."}},
	}}}, stackOptions{})
	var h http.Header
	_, err := s.client(s.secret, headerCapture(&h)).Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model:    "gpt-4o-mini",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hi")},
		User:     openai.String("acme"),
	})
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		Messages []struct{ Role, Content string } `json:"messages"`
	}
	if err := json.Unmarshal([]byte(u.received()[0]), &body); err != nil {
		t.Fatal(err)
	}
	want := []struct{ Role, Content string }{{"system", "You serve all for acme."}, {"user", "Hi"}, {"user", "Answer in English."}}
	if fmt.Sprint(body.Messages) != fmt.Sprint(want) {
		t.Errorf("upstream messages = %v, want %v", body.Messages, want)
	}
	// Counted before the call, with the enrichment.
	var plain, enriched int
	fmt.Sscan(plainTokens, &plain)
	fmt.Sscan(h.Get("x-tollgate-prompt-tokens"), &enriched)
	if plain == 0 || enriched <= plain+10 {
		t.Errorf("prompt tokens: %d enriched, %d plain", enriched, plain)
	}
	if r := h.Get("x-tollgate-route"); !strings.Contains(r, "enriched: +1 system, +1 user") {
		t.Errorf("x-tollgate-route = %q", r)
	}
}

// ledgerGuards is the guards column and status of the request's ledger row.
func (s *stack) ledgerGuards(t *testing.T, id string) (guards string, status int) {
	t.Helper()
	if err := s.ledger.Store.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.db.QueryRow(`SELECT guards, status FROM budget_ledger WHERE request_id = ?`, id).Scan(&guards, &status); err != nil {
		t.Fatalf("ledger row of %s: %v", id, err)
	}
	return guards, status
}

// TestGuardsOnEverySurface: the Anthropic SDK (to an OpenAI-style and to
// an Anthropic upstream), the Responses API and embeddings are guarded
// like chat: the upstream sees placeholders only, the client its own
// values back.
func TestGuardsOnEverySurface(t *testing.T) {
	const email = "jane.doe@example.com"
	g := piiGuard
	g.UnmaskAnswers = true
	cfg := gateway.GuardConfig{Guards: []guardrails.Spec{g}, Default: []string{"pii"}}
	noEmail := func(t *testing.T, body []byte) {
		t.Helper()
		if strings.Contains(string(body), "jane.doe") || !strings.Contains(string(body), "[EMAIL_1]") {
			t.Errorf("the upstream received %s", body)
		}
	}

	t.Run("anthropic sdk", func(t *testing.T) {
		s := newMsgStack(t, stackOptions{guards: cfg})
		s.oa.set(func(w http.ResponseWriter, _ map[string]any) {
			writeJSON(w, oaAnswer(`{"role":"assistant","content":"Welcome back, [EMAIL_1]."}`, "stop"))
		})
		s.an.set(func(w http.ResponseWriter, _ map[string]any) {
			writeJSON(w, anAnswer(`[{"type":"text","text":"Welcome back, [EMAIL_1]."}]`, "end_turn"))
		})
		for _, model := range []string{"gpt-up", "claude-up"} {
			msg, err := s.anthropicClient(s.secret).Messages.New(context.Background(), anthropic.MessageNewParams{
				Model: anthropic.Model(model), MaxTokens: 100,
				System:   []anthropic.TextBlockParam{{Text: "Support bot for " + email}},
				Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Hi, I am " + email))},
			})
			if err != nil {
				t.Fatal(err)
			}
			up := s.oa
			if model == "claude-up" {
				up = s.an
			}
			noEmail(t, up.last())
			if got := msg.Content[0].Text; got != "Welcome back, "+email+"." {
				t.Errorf("%s: answer %q", model, got)
			}
		}
	})

	t.Run("responses", func(t *testing.T) {
		u := newGuardUpstream(t, "Welcome back, [EMAIL_1].")
		s := guardStack(t, u, cfg, stackOptions{})
		resp, err := s.client(s.secret).Responses.New(context.Background(), responses.ResponseNewParams{
			Model: "gpt-4o-mini",
			Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("Hi, I am " + email)},
		})
		if err != nil {
			t.Fatal(err)
		}
		noEmail(t, []byte(u.received()[0]))
		if got := resp.OutputText(); got != "Welcome back, "+email+"." {
			t.Errorf("answer %q", got)
		}
	})

	t.Run("legacy completions", func(t *testing.T) {
		u := newGuardUpstream(t, "Welcome back, [EMAIL_1].")
		s := guardStack(t, u, cfg, stackOptions{})
		resp, err := s.client(s.secret).Completions.New(context.Background(), openai.CompletionNewParams{
			Model:  "gpt-4o-mini",
			Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("Hi, I am " + email)},
		})
		if err != nil {
			t.Fatal(err)
		}
		noEmail(t, []byte(u.received()[0]))
		if got := resp.Choices[0].Text; got != "Welcome back, "+email+"." {
			t.Errorf("answer %q", got)
		}
	})

	// Streams: a placeholder and a card split across chunks, through each
	// surface's own event encoding.
	pieces := []string{"Hi [EMA", "IL_1], card 4111 1111 ", "1111 1111 ok"}
	const shown = "Hi " + email + ", card [CARD_1] ok"
	t.Run("anthropic stream", func(t *testing.T) {
		u := newGuardUpstream(t, pieces...)
		s := guardStack(t, u, cfg, stackOptions{})
		ms := &msgStack{stack: s}
		stream := ms.anthropicClient(s.secret).Messages.NewStreaming(context.Background(), anthropic.MessageNewParams{
			Model: "gpt-4o-mini", MaxTokens: 100,
			Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Hi, I am " + email))},
		})
		var m anthropic.Message
		for stream.Next() {
			if err := m.Accumulate(stream.Current()); err != nil {
				t.Fatal(err)
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		noEmail(t, []byte(u.received()[0]))
		if len(m.Content) != 1 || m.Content[0].Text != shown || m.StopReason != anthropic.StopReasonEndTurn {
			t.Errorf("accumulated %s", m.RawJSON())
		}
	})
	t.Run("responses stream", func(t *testing.T) {
		u := newGuardUpstream(t, pieces...)
		s := guardStack(t, u, cfg, stackOptions{})
		stream := s.client(s.secret).Responses.NewStreaming(context.Background(), responses.ResponseNewParams{
			Model: "gpt-4o-mini",
			Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("Hi, I am " + email)},
		})
		_, final, snap := accumulate(t, stream)
		noEmail(t, []byte(u.received()[0]))
		if final.OutputText() != shown || snap.OutputText() != shown {
			t.Errorf("final %q, accumulated %q", final.OutputText(), snap.OutputText())
		}
	})

	t.Run("embeddings", func(t *testing.T) {
		u := newGuardUpstream(t)
		up, err := providers.NewOpenAI(providers.OpenAIConfig{Name: "openai", BaseURL: u.srv.URL + "/v1", APIKey: "sk-x"})
		if err != nil {
			t.Fatal(err)
		}
		s := newStack(t, stackOptions{guards: cfg, models: []*gateway.Model{{Name: "text-embedding-3-small", Spec: spec("text-embedding-3-small"),
			Embeddings: true, Deployments: []gateway.Deployment{{Provider: up, Upstream: "text-embedding-3-small"}}}}})
		client := s.client(s.secret)
		resp, err := client.Embeddings.New(context.Background(), openai.EmbeddingNewParams{
			Model: "text-embedding-3-small",
			Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"plain text", "mail " + email}},
		})
		if err != nil {
			t.Fatal(err)
		}
		noEmail(t, []byte(u.received()[0]))
		if len(resp.Data) != 2 {
			t.Errorf("%d embeddings", len(resp.Data))
		}
		_, err = client.Embeddings.New(context.Background(), openai.EmbeddingNewParams{
			Model: "text-embedding-3-small",
			Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfTokens: []int64{1, 2, 3}},
		})
		if e := sdkError(t, err); e.StatusCode != http.StatusBadRequest || e.Code != "guard_unreadable_input" {
			t.Errorf("token input: %d %s", e.StatusCode, e.Code)
		}
		if n := len(u.received()); n != 1 {
			t.Errorf("upstream calls = %d, want 1", n)
		}
	})
}

// TestBlockedRequestsCountAgainstRateLimits: a prompt a guard refuses is
// charged to the key's requests per minute like any other.
func TestBlockedRequestsCountAgainstRateLimits(t *testing.T) {
	u := newGuardUpstream(t, "ok")
	s := guardStack(t, u, gateway.GuardConfig{Guards: []guardrails.Spec{secretsGuard}, Default: []string{"secrets"}}, stackOptions{budgets: true})
	k, secret := s.newKey()
	if err := s.ledger.Accounts.SetPolicy(context.Background(), k.ID, budget.Policy{RPM: 2}); err != nil {
		t.Fatal(err)
	}
	blocked := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"key AKIAIOSFODNN7EXAMPLE"}]}`
	for i, want := range []int{400, 400, 429} {
		if r, body := postChat(t, s, secret, blocked); r.StatusCode != want {
			t.Fatalf("request %d: %d %s, want %d", i, r.StatusCode, body, want)
		}
	}
	// Embeddings a guard refuses count too.
	k2, secret2 := s.newKey()
	if err := s.ledger.Accounts.SetPolicy(context.Background(), k2.ID, budget.Policy{RPM: 1}); err != nil {
		t.Fatal(err)
	}
	for i, want := range []int{400, 429} {
		req, _ := http.NewRequest("POST", s.srv.URL+"/v1/embeddings", strings.NewReader(`{"model":"text-embedding-3-small","input":[1,2,3]}`))
		req.Header.Set("Authorization", "Bearer "+secret2)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want || want == 400 && !strings.Contains(string(body), "guard_unreadable_input") {
			t.Fatalf("embeddings %d: %d %s, want %d", i, resp.StatusCode, body, want)
		}
	}
	if n := len(u.received()); n != 0 {
		t.Errorf("upstream calls = %d", n)
	}
}

// TestKeyGuardsOverrideTheRoutes: a key's guard list (admin API) replaces
// the route's, with its own actions; a key naming a guard that a reload
// removed is refused, not served unguarded.
func TestKeyGuardsOverrideTheRoutes(t *testing.T) {
	u := newGuardUpstream(t, "ok")
	cfg := gateway.GuardConfig{Guards: []guardrails.Spec{piiGuard, secretsGuard}, Default: []string{"pii"}}
	s := guardStack(t, u, cfg, stackOptions{budgets: true})
	newKey := func(guards string) string {
		status, key, raw := adminDo(t, s, "POST", "/admin/keys", `{"name":"k","guards":`+guards+`}`)
		if status != 201 {
			t.Fatalf("POST /admin/keys: %d %s", status, raw)
		}
		return key["key"].(string)
	}
	strict, none, inherits := newKey(`[{"name":"pii","action":"block"},{"name":"secrets"}]`), newKey(`[]`), newKey(`null`)
	const prompt = `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"mail ann@x.io"}]}`
	for _, tc := range []struct {
		name     string
		secret   string
		status   int
		upstream string // what the upstream got, for a 200
	}{
		{"the key blocks what the route masks", strict, 400, ""},
		{"the key has no guards", none, 200, "mail ann@x.io"},
		{"the key inherits the route's", inherits, 200, "mail [EMAIL_1]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(u.received())
			r, body := postChat(t, s, tc.secret, prompt)
			if r.StatusCode != tc.status {
				t.Fatalf("%d %s", r.StatusCode, body)
			}
			got := u.received()[before:]
			if tc.upstream == "" {
				if len(got) != 0 || !strings.Contains(body, "content_blocked") || !strings.Contains(body, "pii") {
					t.Errorf("upstream calls %d, answer %s", len(got), body)
				}
				return
			}
			if len(got) != 1 || !strings.Contains(got[0], tc.upstream) {
				t.Errorf("upstream got %v, want %q", got, tc.upstream)
			}
		})
	}

	// A reload drops pii: the strict key names a guard that is gone.
	tb := gateway.Table{Models: guardModels(t, u), Guards: gateway.GuardConfig{Guards: []guardrails.Spec{secretsGuard}}}
	if err := s.gw.Reconfigure(tb); err != nil {
		t.Fatal(err)
	}
	before := len(u.received())
	r, body := postChat(t, s, strict, prompt)
	if r.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "guard_unavailable") {
		t.Errorf("after the reload: %d %s", r.StatusCode, body)
	}
	if len(u.received()) != before {
		t.Error("the request reached the upstream unguarded")
	}
}

// TestGuardsKeepResponsesNative: a request-only guard masks a Responses
// body and it is still passed through natively (a model only the
// Responses API serves keeps working); a guard that scans answers sends it
// through the chat translation instead.
func TestGuardsKeepResponsesNative(t *testing.T) {
	reqOnly := piiGuard
	reqOnly.Answer = false
	for _, tc := range []struct {
		name   string
		guard  guardrails.Spec
		route  string
		native bool
	}{
		{"request-only guard: native", reqOnly, "native-first", true},
		{"answer guard: translated", piiGuard, "chat-first", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := newNativeStack(t, stackOptions{guards: gateway.GuardConfig{Guards: []guardrails.Spec{tc.guard}, Default: []string{"pii"}}})
			item := responses.ResponseInputItemUnionParam{OfMessage: &responses.EasyInputMessageParam{Role: "user",
				Content: responses.EasyInputMessageContentUnionParam{OfString: openai.String("Hi, I am jane.doe@example.com")}}}
			resp, err := ns.client(ns.secret).Responses.New(context.Background(), responses.ResponseNewParams{
				Model:        tc.route,
				Instructions: openai.String("Support bot; escalate to ops@corp.example"),
				Input:        responses.ResponseNewParamsInputUnion{OfInputItemList: responses.ResponseInputParam{item}},
			})
			if err != nil {
				t.Fatal(err)
			}
			var upstream []byte
			if tc.native {
				ns.native.mu.Lock()
				upstream = ns.native.bodies[len(ns.native.bodies)-1]
				ns.native.mu.Unlock()
				if resp.Output[0].Type != "reasoning" {
					t.Errorf("not served natively: %s", resp.RawJSON())
				}
			} else {
				ns.chat.mu.Lock()
				upstream = ns.chat.bodies[len(ns.chat.bodies)-1]
				ns.chat.mu.Unlock()
			}
			for _, v := range []string{"jane.doe", "ops@corp"} {
				if strings.Contains(string(upstream), v) {
					t.Errorf("the upstream received %q: %s", v, upstream)
				}
			}
			if !strings.Contains(string(upstream), "[EMAIL_1]") || !strings.Contains(string(upstream), "[EMAIL_2]") {
				t.Errorf("the upstream got no placeholders: %s", upstream)
			}
		})
	}
}
