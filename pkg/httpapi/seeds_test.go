package httpapi_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/pkg/gateway"
	"github.com/tollgate/tollgate/pkg/keys"
	"github.com/tollgate/tollgate/pkg/providers"
	"github.com/tollgate/tollgate/pkg/router"
)

// seedNames are the request fields tollgate honours and never forwards.
var seedNames = []string{"fallback_models", "customer_credentials", "cache_enabled", "cache_ttl", "cache_options",
	"disable_log", "customer_identifier", "customer_params", "metadata"}

// seedUpstream is an OpenAI-style upstream serving model-a, model-b and
// model-c. It fails every request to a model with that model's status
// (fail), holds requests to a model until they are cancelled (hang),
// counts calls per model, and refuses, on every request, a body that holds
// a seed field's name.
type seedUpstream struct {
	t   *testing.T
	srv *httptest.Server

	mu    sync.Mutex
	fail  map[string]int
	hang  map[string]bool
	calls map[string]int
	auth  string // the last request's Authorization
}

func newSeedUpstream(t *testing.T) *seedUpstream {
	u := &seedUpstream{t: t}
	u.reset()
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		for _, name := range seedNames {
			if bytes.Contains(body, []byte(name)) {
				t.Errorf("the upstream received %s: %s", name, body)
			}
		}
		var req struct {
			Model string `json:"model"`
		}
		_ = json.Unmarshal(body, &req)
		u.mu.Lock()
		u.calls[req.Model]++
		u.auth = r.Header.Get("Authorization")
		status, hang := u.fail[req.Model], u.hang[req.Model]
		u.mu.Unlock()
		if hang {
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
			return
		}
		if status != 0 {
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"error":{"message":"failing on purpose","type":"server_error","code":"x%d"}}`, status)
			return
		}
		fmt.Fprintf(w, `{"id":"c","object":"chat.completion","created":1,"model":%q,"choices":[{"index":0,"message":{"role":"assistant","content":"answer from %s"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}}`, req.Model, req.Model)
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *seedUpstream) reset() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.fail, u.hang, u.calls, u.auth = map[string]int{}, map[string]bool{}, map[string]int{}, ""
}

func (u *seedUpstream) callsTo(model string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.calls[model]
}

// seedStack serves model-a, model-b and model-c from one seedUpstream,
// with an exact cache, stored responses, breakers that never open (so
// every case sees every retry), a clock the test moves and a seeded
// random source.
type seedStack struct {
	*stack
	up    *seedUpstream
	clock *testClock
}

type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newSeedStack(t *testing.T) *seedStack {
	up := newSeedUpstream(t)
	p, err := providers.NewOpenAI(providers.OpenAIConfig{Name: "openai", BaseURL: up.srv.URL + "/v1", APIKey: "sk-gateway"})
	if err != nil {
		t.Fatal(err)
	}
	var specs []router.Model
	var models []*gateway.Model
	for _, name := range []string{"model-a", "model-b", "model-c"} {
		sp := renamed(name, "gpt-4o-mini")
		specs = append(specs, sp)
		models = append(models, &gateway.Model{Name: name, Spec: &sp, Chat: true, Deployments: []gateway.Deployment{{Provider: p, Upstream: name}}})
	}
	breakers, _ := router.NewBreakers(router.BreakerConfig{Default: router.BreakerSettings{ConsecutiveFailures: 1 << 30, MinRequests: 1 << 30}})
	clock := &testClock{now: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	rnd := rand.New(rand.NewPCG(15, 4))
	var rmu sync.Mutex
	s := newStack(t, stackOptions{models: models, routes: routesOver(t, specs), breakers: breakers, cache: true, responses: true,
		clock: clock.Now, timeout: 30 * time.Second, rand: func() float64 {
			rmu.Lock()
			defer rmu.Unlock()
			return rnd.Float64()
		}})
	return &seedStack{stack: s, up: up, clock: clock}
}

// post sends body to path with the key and headers given (through
// adminCall, whose Authorization the key replaces).
func (s *seedStack) post(t *testing.T, path, secret, body string, header map[string]string) (int, http.Header, string) {
	t.Helper()
	h := map[string]string{"Authorization": "Bearer " + secret, "Content-Type": "application/json", "anthropic-version": "2023-06-01"}
	for k, v := range header {
		h[k] = v
	}
	return adminCall(t, s.stack, http.MethodPost, path, body, h)
}

// chatBody is a chat request for model with extra top-level members.
func chatBody(model, prompt, extra string) string {
	b := fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":%q}]`, model, prompt)
	if extra != "" {
		b += "," + extra
	}
	return b + "}"
}

// errParam is the param of an error envelope (OpenAI's or Anthropic's
// shape), "" when it has none.
func errParam(body string) string {
	var env struct {
		Error struct {
			Param string `json:"param"`
		} `json:"error"`
	}
	_ = json.Unmarshal([]byte(body), &env)
	return env.Error.Param
}

// TestSeedFields: each request field of the gateways clients migrate from
// (Keywords AI's body fields, the Portkey-style x-tollgate-config header)
// has its effect, and the upstream, which checks every body it receives,
// never sees one.
func TestSeedFields(t *testing.T) {
	s := newSeedStack(t)
	_, onlyA := s.newKey("model-a")
	_, byok, err := s.keys.Create(context.Background(), keys.New{Name: "byok", AllowBYOK: true})
	if err != nil {
		t.Fatal(err)
	}
	const chat = "/v1/chat/completions"
	config := func(js string) map[string]string { return map[string]string{"x-tollgate-config": js} }
	tests := []struct {
		name   string
		path   string // default chat
		secret string // default the stack's
		body   string
		header map[string]string
		fail   map[string]int // upstream statuses by model
		status int
		param  string // of the error
		// check asserts the effect, after the request (it may send more).
		check func(t *testing.T, h http.Header, body string)
	}{
		{name: "fallback_models: the next model serves after the first one's 500s",
			body: chatBody("model-a", "fb 1", `"fallback_models":["model-b","model-c"]`), fail: map[string]int{"model-a": 500}, status: 200,
			check: func(t *testing.T, h http.Header, body string) {
				if h.Get("x-tollgate-model") != "model-b" || !strings.Contains(body, "answer from model-b") {
					t.Errorf("served by %q: %s", h.Get("x-tollgate-model"), body)
				}
				if s.up.callsTo("model-a") != 3 || s.up.callsTo("model-b") != 1 || s.up.callsTo("model-c") != 0 {
					t.Errorf("upstream calls a=%d b=%d c=%d, want 3 1 0", s.up.callsTo("model-a"), s.up.callsTo("model-b"), s.up.callsTo("model-c"))
				}
				if !strings.Contains(h.Get("x-tollgate-route"), "fallback_models: model-b, model-c") || !strings.Contains(h.Get("x-tollgate-fallback"), "model-a") {
					t.Errorf("route %q fallback %q", h.Get("x-tollgate-route"), h.Get("x-tollgate-fallback"))
				}
			}},
		{name: "fallback_models: unused while the first model serves",
			body: chatBody("model-a", "fb 2", `"fallback_models":["model-b"]`), status: 200,
			check: func(t *testing.T, h http.Header, _ string) {
				if h.Get("x-tollgate-model") != "model-a" || s.up.callsTo("model-b") != 0 {
					t.Errorf("served by %q, model-b called %d times", h.Get("x-tollgate-model"), s.up.callsTo("model-b"))
				}
			}},
		{name: "fallback_models: one the key may not use is a 403 before any call", secret: onlyA,
			body: chatBody("model-a", "fb 3", `"fallback_models":["model-b"]`), status: 403, param: "fallback_models[0]",
			check: func(t *testing.T, _ http.Header, body string) {
				if s.up.callsTo("model-a") != 0 || !strings.Contains(body, "model-b") {
					t.Errorf("model-a called %d times; %s", s.up.callsTo("model-a"), body)
				}
			}},
		{name: "fallback_models: an unknown model is a 404 naming it", body: chatBody("model-a", "fb 4", `"fallback_models":["model-z"]`), status: 404, param: "fallback_models[0]"},
		{name: "fallback_models: nine is too many", body: chatBody("model-a", "fb 5", `"fallback_models":["a","b","c","d","e","f","g","h","i"]`), status: 400, param: "fallback_models"},
		{name: "fallback_models: not an array", body: chatBody("model-a", "fb 6", `"fallback_models":"model-b"`), status: 400, param: "fallback_models"},
		{name: "fallback_models: on legacy completions", path: "/v1/completions",
			body: `{"model":"model-a","prompt":"fb 7","fallback_models":["model-c"]}`, fail: map[string]int{"model-a": 503}, status: 200,
			check: func(t *testing.T, h http.Header, body string) {
				if h.Get("x-tollgate-model") != "model-c" || !strings.Contains(body, `"object":"text_completion"`) {
					t.Errorf("served by %q: %s", h.Get("x-tollgate-model"), body)
				}
			}},
		{name: "fallback_models: on the Responses API", path: "/v1/responses",
			body: `{"model":"model-a","input":"fb 8","fallback_models":["model-b"],"metadata":{"team":"search"}}`, fail: map[string]int{"model-a": 500}, status: 200,
			check: func(t *testing.T, h http.Header, body string) {
				if h.Get("x-tollgate-model") != "model-b" || !strings.Contains(body, `"metadata":{"team":"search"}`) {
					t.Errorf("served by %q: %s", h.Get("x-tollgate-model"), body)
				}
			}},
		{name: "fallback_models: on Anthropic Messages, with its own metadata", path: "/v1/messages",
			body:   `{"model":"model-a","max_tokens":50,"messages":[{"role":"user","content":"fb 9"}],"metadata":{"user_id":"u-1"},"fallback_models":["model-b"],"cache_enabled":false}`,
			fail:   map[string]int{"model-a": 500},
			status: 200,
			check: func(t *testing.T, h http.Header, body string) {
				if h.Get("x-tollgate-model") != "model-b" || !strings.Contains(body, `"type":"message"`) || h.Get("x-tollgate-cache") != "bypass" {
					t.Errorf("served by %q, cache %q: %s", h.Get("x-tollgate-model"), h.Get("x-tollgate-cache"), body)
				}
			}},
		{name: "cache_enabled false: no lookup, no store",
			body: chatBody("model-a", "ce 1", `"cache_enabled":false`), status: 200,
			check: func(t *testing.T, h http.Header, _ string) {
				if h.Get("x-tollgate-cache") != "bypass" || h.Get("x-tollgate-cache-reason") != "cache_enabled: false" {
					t.Errorf("cache %q reason %q", h.Get("x-tollgate-cache"), h.Get("x-tollgate-cache-reason"))
				}
				status, h2, _ := s.post(t, chat, s.secret, chatBody("model-a", "ce 1", `"cache_enabled":false`), nil)
				if status != 200 || h2.Get("x-tollgate-cache") != "bypass" || s.up.callsTo("model-a") != 2 {
					t.Errorf("second: %d cache %q, upstream calls %d", status, h2.Get("x-tollgate-cache"), s.up.callsTo("model-a"))
				}
				// Nothing was stored: the first request without the field misses.
				if _, h3, _ := s.post(t, chat, s.secret, chatBody("model-a", "ce 1", ""), nil); h3.Get("x-tollgate-cache") != "miss" {
					t.Errorf("without the field: cache %q", h3.Get("x-tollgate-cache"))
				}
				if _, h4, _ := s.post(t, chat, s.secret, chatBody("model-a", "ce 1", ""), nil); h4.Get("x-tollgate-cache") != "hit" {
					t.Errorf("the cache does not work at all: %q", h4.Get("x-tollgate-cache"))
				}
			}},
		{name: "cache_enabled: not a boolean", body: chatBody("model-a", "ce 2", `"cache_enabled":"no"`), status: 400, param: "cache_enabled"},
		{name: "cache_ttl: the entry lives that long",
			body: chatBody("model-a", "ttl 1", `"cache_ttl":60`), status: 200,
			check: func(t *testing.T, _ http.Header, _ string) {
				if _, h, _ := s.post(t, chat, s.secret, chatBody("model-a", "ttl 1", ""), nil); h.Get("x-tollgate-cache") != "hit" {
					t.Errorf("at once: cache %q", h.Get("x-tollgate-cache"))
				}
				s.clock.advance(59 * time.Second)
				if _, h, _ := s.post(t, chat, s.secret, chatBody("model-a", "ttl 1", ""), nil); h.Get("x-tollgate-cache") != "hit" {
					t.Errorf("after 59s: cache %q", h.Get("x-tollgate-cache"))
				}
				s.clock.advance(2 * time.Second)
				if _, h, _ := s.post(t, chat, s.secret, chatBody("model-a", "ttl 1", ""), nil); h.Get("x-tollgate-cache") != "miss" {
					t.Errorf("after 61s: cache %q", h.Get("x-tollgate-cache"))
				}
			}},
		{name: "cache_ttl: zero", body: chatBody("model-a", "ttl 2", `"cache_ttl":0`), status: 400, param: "cache_ttl"},
		{name: "cache_ttl: over thirty days", body: chatBody("model-a", "ttl 3", `"cache_ttl":2592001`), status: 400, param: "cache_ttl"},
		{name: "cache_ttl: a fraction", body: chatBody("model-a", "ttl 4", `"cache_ttl":1.5`), status: 400, param: "cache_ttl"},
		{name: "cache_by_customer: customers do not share entries",
			body: chatBody("model-a", "cbc 1", `"cache_options":{"cache_by_customer":true},"customer_identifier":"cust-1"`), status: 200,
			check: func(t *testing.T, _ http.Header, _ string) {
				send := func(extra string) string {
					_, h, _ := s.post(t, chat, s.secret, chatBody("model-a", "cbc 1", `"cache_options":{"cache_by_customer":true},`+extra), nil)
					return h.Get("x-tollgate-cache")
				}
				if got := send(`"customer_identifier":"cust-2"`); got != "miss" {
					t.Errorf("another customer: %q", got)
				}
				if got := send(`"customer_identifier":"cust-1"`); got != "hit" {
					t.Errorf("the same customer: %q", got)
				}
				if got := send(`"customer_params":{"customer_identifier":"cust-2","name":"Ana","email":"ana@example.com"}`); got != "hit" {
					t.Errorf("customer_params of the second: %q", got)
				}
				if got := send(`"user":"cust-1"`); got != "hit" {
					t.Errorf("user of the first: %q", got)
				}
				if _, h, _ := s.post(t, chat, s.secret, chatBody("model-a", "cbc 1", `"customer_identifier":"cust-1"`), nil); h.Get("x-tollgate-cache") != "miss" {
					t.Errorf("the key's own scope shares with no customer's: %q", h.Get("x-tollgate-cache"))
				}
			}},
		{name: "cache_by_customer: no customer", body: chatBody("model-a", "cbc 2", `"cache_options":{"cache_by_customer":true}`), status: 400, param: "cache_options.cache_by_customer"},
		{name: "cache_options: an unknown option", body: chatBody("model-a", "cbc 3", `"cache_options":{"cache_by_org":true}`), status: 400, param: "cache_options.cache_by_org"},
		{name: "disable_log: nothing stored in the cache",
			body: chatBody("model-a", "dl 1", `"disable_log":true`), status: 200,
			check: func(t *testing.T, h http.Header, _ string) {
				if h.Get("x-tollgate-cache") != "miss" {
					t.Errorf("cache %q", h.Get("x-tollgate-cache"))
				}
				if _, h, _ := s.post(t, chat, s.secret, chatBody("model-a", "dl 1", ""), nil); h.Get("x-tollgate-cache") != "miss" || s.up.callsTo("model-a") != 2 {
					t.Errorf("an entry was kept: cache %q, upstream calls %d", h.Get("x-tollgate-cache"), s.up.callsTo("model-a"))
				}
			}},
		{name: "disable_log: a stored response is not kept, whatever store says", path: "/v1/responses",
			body: `{"model":"model-a","input":"dl 2","store":true,"disable_log":true}`, status: 200,
			check: func(t *testing.T, _ http.Header, body string) {
				var o struct {
					ID    string `json:"id"`
					Store bool   `json:"store"`
				}
				_ = json.Unmarshal([]byte(body), &o)
				if o.ID == "" || o.Store {
					t.Errorf("response %s", body)
				}
				if status, _, _ := adminCall(t, s.stack, http.MethodGet, "/v1/responses/"+o.ID, "", map[string]string{"Authorization": "Bearer " + s.secret}); status != 404 {
					t.Errorf("GET %s: %d, want 404", o.ID, status)
				}
				_, _, kept := s.post(t, "/v1/responses", s.secret, `{"model":"model-a","input":"dl 3","store":true}`, nil)
				_ = json.Unmarshal([]byte(kept), &o)
				if status, _, _ := adminCall(t, s.stack, http.MethodGet, "/v1/responses/"+o.ID, "", map[string]string{"Authorization": "Bearer " + s.secret}); status != 200 {
					t.Errorf("without disable_log GET %s: %d, want 200", o.ID, status)
				}
			}},
		{name: "disable_log: not a boolean", body: chatBody("model-a", "dl 4", `"disable_log":1`), status: 400, param: "disable_log"},
		{name: "customer_credentials nested: the upstream gets the customer's key", secret: byok,
			body: chatBody("model-a", "cc 1", `"customer_credentials":{"openai":{"api_key":"sk-cust-nested"}},"cache_enabled":false`), status: 200,
			check: func(t *testing.T, _ http.Header, _ string) {
				if s.up.auth != "Bearer sk-cust-nested" {
					t.Errorf("upstream Authorization %q", s.up.auth)
				}
			}},
		{name: "customer_credentials flat: the upstream gets the customer's key", secret: byok,
			body: chatBody("model-a", "cc 2", `"customer_credentials":{"OpenAI":"sk-cust-flat"},"cache_enabled":false`), status: 200,
			check: func(t *testing.T, _ http.Header, _ string) {
				if s.up.auth != "Bearer sk-cust-flat" {
					t.Errorf("upstream Authorization %q", s.up.auth)
				}
			}},
		{name: "customer_credentials: another member than api_key", secret: byok,
			body: chatBody("model-a", "cc 3", `"customer_credentials":{"openai":{"api_key":"sk-x","api_base":"http://evil"}}`), status: 400, param: "customer_credentials.openai"},
		{name: "customer_credentials: an empty key", secret: byok,
			body: chatBody("model-a", "cc 4", `"customer_credentials":{"openai":""}`), status: 400, param: "customer_credentials.openai"},
		{name: "customer_credentials: a key that may not send them",
			body: chatBody("model-a", "cc 5", `"customer_credentials":{"openai":"sk-cust"}`), status: 403},
		{name: "customer_identifier, customer_params and metadata are not forwarded",
			body: chatBody("model-a", "cu 1", `"customer_identifier":"cust-9","customer_params":{"customer_identifier":"cust-8","name":"Bo"},"metadata":{"team":"search","env":"prod"},"user":"u-7"`), status: 200,
			check: func(t *testing.T, h http.Header, _ string) {
				if h.Get("x-tollgate-model") != "model-a" {
					t.Errorf("model %q", h.Get("x-tollgate-model"))
				}
			}},
		{name: "user: over 256 bytes is refused, since it becomes the customer", body: chatBody("model-a", "cu 3", `"user":"`+strings.Repeat("u", 257)+`"`), status: 400, param: "user"},
		{name: "customer_identifier: over 256 bytes", body: chatBody("model-a", "cu 2", `"customer_identifier":"`+strings.Repeat("c", 257)+`"`), status: 400, param: "customer_identifier"},
		{name: "customer_params: a budget tollgate would not enforce", body: chatBody("model-a", "cu 3", `"customer_params":{"customer_identifier":"c","period_budget":5}`), status: 400, param: "customer_params.period_budget"},
		{name: "metadata: seventeen pairs", body: chatBody("model-a", "md 1", `"metadata":{`+pairs(17)+`}`), status: 400, param: "metadata"},
		{name: "metadata: a number", body: chatBody("model-a", "md 2", `"metadata":{"n":1}`), status: 400, param: "metadata"},
		{name: "metadata: a key twice", body: chatBody("model-a", "md 3", `"metadata":{"team":"a","team":"b"}`), status: 400, param: "metadata.team"},
		{name: "a seed field twice", body: chatBody("model-a", "tw 1", `"cache_ttl":60,"cache\u005fttl":86400`), status: 400, param: "cache_ttl"},
		{name: "a seed field in capitals", body: chatBody("model-a", "tw 2", `"Disable_Log":true`), status: 400, param: "Disable_Log"},
		{name: "a seed field escaped is still found and stripped",
			body: chatBody("model-a", "tw 3", `"fallback\u005fmodels":["model-b"]`), fail: map[string]int{"model-a": 500}, status: 200,
			check: func(t *testing.T, h http.Header, _ string) {
				if h.Get("x-tollgate-model") != "model-b" {
					t.Errorf("model %q", h.Get("x-tollgate-model"))
				}
			}},

		{name: "config fallback: the targets in order",
			body: chatBody("model-a", "cf 1", ""), header: config(`{"strategy":{"mode":"fallback"},"targets":[{"model":"model-b"},{"model":"model-c"}]}`),
			fail: map[string]int{"model-b": 502}, status: 200,
			check: func(t *testing.T, h http.Header, _ string) {
				if h.Get("x-tollgate-model") != "model-c" || s.up.callsTo("model-a") != 0 || s.up.callsTo("model-b") != 3 {
					t.Errorf("served by %q; calls a=%d b=%d", h.Get("x-tollgate-model"), s.up.callsTo("model-a"), s.up.callsTo("model-b"))
				}
				if !strings.HasPrefix(h.Get("x-tollgate-route"), "config fallback: model-b -> model-c") {
					t.Errorf("route %q", h.Get("x-tollgate-route"))
				}
			}},
		{name: "config on_status_codes: a listed 503 falls back",
			body:   chatBody("model-a", "cf 2", ""),
			header: config(`{"strategy":{"mode":"fallback","on_status_codes":[429,503]},"targets":[{"model":"model-a"},{"model":"model-b"}]}`),
			fail:   map[string]int{"model-a": 503}, status: 200,
			check: func(t *testing.T, h http.Header, _ string) {
				if h.Get("x-tollgate-model") != "model-b" {
					t.Errorf("served by %q", h.Get("x-tollgate-model"))
				}
			}},
		{name: "config on_status_codes: a 500 not listed is returned",
			body:   chatBody("model-a", "cf 3", ""),
			header: config(`{"strategy":{"mode":"fallback","on_status_codes":[503]},"targets":[{"model":"model-a"},{"model":"model-b"}]}`),
			fail:   map[string]int{"model-a": 500}, status: 502,
			check: func(t *testing.T, h http.Header, _ string) {
				if s.up.callsTo("model-b") != 0 || !strings.Contains(h.Get("x-tollgate-fallback"), "not on 500") {
					t.Errorf("model-b called %d times; fallback %q", s.up.callsTo("model-b"), h.Get("x-tollgate-fallback"))
				}
			}},
		{name: "config on_status_codes: a listed 400 falls back, though tollgate would return it",
			body:   chatBody("model-a", "cf 4", ""),
			header: config(`{"strategy":{"mode":"fallback","on_status_codes":[400]},"targets":[{"model":"model-a"},{"model":"model-b"}]}`),
			fail:   map[string]int{"model-a": 400}, status: 200,
			check: func(t *testing.T, h http.Header, _ string) {
				if h.Get("x-tollgate-model") != "model-b" || s.up.callsTo("model-a") != 1 {
					t.Errorf("served by %q; model-a called %d times", h.Get("x-tollgate-model"), s.up.callsTo("model-a"))
				}
			}},
		{name: "config loadbalance: the targets share the traffic by weight",
			body:   chatBody("model-a", "lb 1", `"cache_enabled":false`),
			header: config(`{"strategy":{"mode":"loadbalance"},"targets":[{"model":"model-a","weight":0.7},{"model":"model-b","weight":0.3}]}`), status: 200,
			check: func(t *testing.T, h http.Header, _ string) {
				if !strings.HasPrefix(h.Get("x-tollgate-route"), "config loadbalance: model-") {
					t.Errorf("route %q", h.Get("x-tollgate-route"))
				}
				for range 199 {
					if status, _, body := s.post(t, chat, s.secret, chatBody("model-a", "lb 1", `"cache_enabled":false`),
						config(`{"strategy":{"mode":"loadbalance"},"targets":[{"model":"model-a","weight":0.7},{"model":"model-b","weight":0.3}]}`)); status != 200 {
						t.Fatalf("%d %s", status, body)
					}
				}
				a, b := s.up.callsTo("model-a"), s.up.callsTo("model-b")
				if a+b != 200 || a < 120 || a > 160 {
					t.Errorf("model-a served %d, model-b %d of 200: not a 70/30 split", a, b)
				}
			}},
		{name: "config retry: attempts counted at the upstream",
			body:   chatBody("model-a", "rt 1", ""),
			header: config(`{"strategy":{"mode":"fallback"},"targets":[{"model":"model-a"}],"retry":{"attempts":5,"on_status_codes":[500]}}`),
			fail:   map[string]int{"model-a": 500}, status: 502,
			check: func(t *testing.T, _ http.Header, _ string) {
				if n := s.up.callsTo("model-a"); n != 6 {
					t.Errorf("model-a called %d times, want 1 + 5 retries", n)
				}
			}},
		{name: "config retry: a status not listed is not retried",
			body:   chatBody("model-a", "rt 2", ""),
			header: config(`{"strategy":{"mode":"fallback"},"targets":[{"model":"model-a"}],"retry":{"attempts":5,"on_status_codes":[429]}}`),
			fail:   map[string]int{"model-a": 500}, status: 502,
			check: func(t *testing.T, _ http.Header, _ string) {
				if n := s.up.callsTo("model-a"); n != 1 {
					t.Errorf("model-a called %d times, want 1", n)
				}
			}},
		{name: "config request_timeout: the request ends then",
			body:   chatBody("model-c", "to 1", ""),
			header: config(`{"strategy":{"mode":"fallback"},"targets":[{"model":"model-c"}],"request_timeout":300}`), status: 504},
		{name: "config request_timeout: longer than the gateway's", body: chatBody("model-a", "to 2", ""),
			header: config(`{"strategy":{"mode":"fallback"},"targets":[{"model":"model-a"}],"request_timeout":60000}`), status: 400, param: "x-tollgate-config.request_timeout"},
		{name: "config: a target the key may not use is a 403", secret: onlyA, body: chatBody("model-a", "cf 5", ""),
			header: config(`{"strategy":{"mode":"fallback"},"targets":[{"model":"model-a"},{"model":"model-b"}]}`), status: 403, param: "x-tollgate-config.targets[1].model",
			check: func(t *testing.T, _ http.Header, _ string) {
				if s.up.callsTo("model-a") != 0 {
					t.Errorf("model-a called %d times", s.up.callsTo("model-a"))
				}
			}},
		{name: "config: base64", body: chatBody("model-a", "cf 6", ""),
			header: config(base64.StdEncoding.EncodeToString([]byte(`{"strategy":{"mode":"fallback"},"targets":[{"model":"model-b"}]}`))), status: 200,
			check: func(t *testing.T, h http.Header, _ string) {
				if h.Get("x-tollgate-model") != "model-b" {
					t.Errorf("served by %q", h.Get("x-tollgate-model"))
				}
			}},
		{name: "config: not JSON", body: chatBody("model-a", "cf 7", ""), header: config(`{"strategy":`), status: 400, param: "x-tollgate-config"},
		{name: "config: an unknown member names its path", body: chatBody("model-a", "cf 8", ""),
			header: config(`{"strategy":{"mode":"fallback"},"targets":[{"model":"model-a","provider":"openai"}]}`), status: 400, param: "x-tollgate-config.targets[0].provider"},
		{name: "config: an unknown mode", body: chatBody("model-a", "cf 9", ""),
			header: config(`{"strategy":{"mode":"conditional"},"targets":[{"model":"model-a"}]}`), status: 400, param: "x-tollgate-config.strategy.mode"},
		{name: "config: six retries", body: chatBody("model-a", "cf 10", ""),
			header: config(`{"strategy":{"mode":"fallback"},"targets":[{"model":"model-a"}],"retry":{"attempts":6}}`), status: 400, param: "x-tollgate-config.retry.attempts"},
		{name: "config: a status that is not an error", body: chatBody("model-a", "cf 11", ""),
			header: config(`{"strategy":{"mode":"fallback","on_status_codes":[200]},"targets":[{"model":"model-a"}]}`), status: 400, param: "x-tollgate-config.strategy.on_status_codes"},
		{name: "config: a weight of zero", body: chatBody("model-a", "cf 12", ""),
			header: config(`{"strategy":{"mode":"loadbalance"},"targets":[{"model":"model-a","weight":0}]}`), status: 400, param: "x-tollgate-config.targets[0].weight"},
		{name: "config: nine targets", body: chatBody("model-a", "cf 13", ""),
			header: config(`{"strategy":{"mode":"fallback"},"targets":[` + strings.TrimSuffix(strings.Repeat(`{"model":"model-a"},`, 9), ",") + `]}`), status: 400, param: "x-tollgate-config.targets"},
		{name: "config: an unknown target is a 404", body: chatBody("model-a", "cf 14", ""),
			header: config(`{"strategy":{"mode":"fallback"},"targets":[{"model":"model-z"}]}`), status: 404, param: "x-tollgate-config.targets[0].model"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.up.reset()
			s.up.mu.Lock()
			for m, st := range tt.fail {
				s.up.fail[m] = st
			}
			s.up.hang["model-c"] = strings.HasPrefix(tt.name, "config request_timeout")
			s.up.mu.Unlock()
			path, secret := tt.path, tt.secret
			if path == "" {
				path = chat
			}
			if secret == "" {
				secret = s.secret
			}
			start := time.Now()
			status, h, body := s.post(t, path, secret, tt.body, tt.header)
			if status != tt.status {
				t.Fatalf("status %d, want %d: %s", status, tt.status, body)
			}
			if tt.param != "" && errParam(body) != tt.param {
				t.Errorf("param %q, want %q: %s", errParam(body), tt.param, body)
			}
			if tt.status == 504 && time.Since(start) > 5*time.Second {
				t.Errorf("the request took %s", time.Since(start))
			}
			if tt.check != nil {
				tt.check(t, h, body)
			}
		})
	}
}

// pairs is n metadata pairs.
func pairs(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"k%d":"v"`, i)
	}
	return b.String()
}
