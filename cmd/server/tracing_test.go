package main

import (
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// otlpReceiver is an OTLP/HTTP collector in the test: it decodes every
// export and keeps its spans and raw bytes.
type otlpReceiver struct {
	mu    sync.Mutex
	spans []*tracepb.Span
	raw   bytes.Buffer
	res   []string // service.name of each resource
}

func (o *otlpReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
		http.Error(w, "unexpected "+r.URL.Path+" "+r.Header.Get("Content-Type"), http.StatusBadRequest)
		return
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	data, err := io.ReadAll(body)
	var req coltracepb.ExportTraceServiceRequest
	if err == nil {
		err = proto.Unmarshal(data, &req)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	o.mu.Lock()
	o.raw.Write(data)
	for _, rs := range req.ResourceSpans {
		for _, a := range rs.GetResource().GetAttributes() {
			if a.Key == "service.name" {
				o.res = append(o.res, a.GetValue().GetStringValue())
			}
		}
		for _, ss := range rs.ScopeSpans {
			o.spans = append(o.spans, ss.Spans...)
		}
	}
	o.mu.Unlock()
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Write(out)
}

// traceUpstream is an OpenAI-compatible upstream that records the
// traceparent of every call; a prompt containing "fail-once" fails its
// first call with a 500, one containing "refuse" every call with a 400.
type traceUpstream struct {
	mu           sync.Mutex
	traceparents []string
	failed       map[string]bool
}

const upstreamAnswer = "COMPLETION-TEXT-NEVER-TRACED"

func (u *traceUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model    string `json:"model"`
		Stream   bool   `json:"stream"`
		Messages []struct {
			Content string `json:"content"`
		} `json:"messages"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.Messages) == 0 {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	prompt := req.Messages[len(req.Messages)-1].Content
	u.mu.Lock()
	u.traceparents = append(u.traceparents, r.Header.Get("traceparent"))
	fail := strings.Contains(prompt, "fail-once") && !u.failed[prompt]
	if fail {
		u.failed[prompt] = true
	}
	u.mu.Unlock()
	if fail {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, `{"error":{"message":"upstream hiccup","type":"server_error"}}`)
		return
	}
	if strings.Contains(prompt, "refuse") {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"error":{"message":"cannot answer %q","type":"invalid_request_error","code":"refused"}}`, prompt)
		return
	}
	usage := `{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18}`
	if !req.Stream {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"c1","object":"chat.completion","created":1,"model":%q,"choices":[{"index":0,"message":{"role":"assistant","content":%q},"finish_reason":"stop"}],"usage":%s}`,
			req.Model, upstreamAnswer, usage)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	for _, part := range []string{"COMPLETION-", "TEXT"} {
		fmt.Fprintf(w, "data: {\"id\":\"c2\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":%q,\"choices\":[{\"index\":0,\"delta\":{\"content\":%q},\"finish_reason\":null}]}\n\n", req.Model, part)
	}
	fmt.Fprintf(w, "data: {\"id\":\"c2\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":%q,\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}]}\n\n", req.Model)
	fmt.Fprintf(w, "data: {\"id\":\"c2\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":%q,\"choices\":[],\"usage\":%s}\n\n", req.Model, usage)
	io.WriteString(w, "data: [DONE]\n\n")
}

// TestTracesExported runs the server with otel.endpoint pointing at an
// in-process OTLP receiver, sends a miss, its cache hit, a stream and a
// call whose upstream fails once, then stops it (which flushes the
// exporter) and checks the span tree each request left: names, parents,
// GenAI attributes, tokens, cost, status; the incoming traceparent
// honoured and passed upstream; and that no prompt, completion or secret
// appears anywhere in what was exported.
func TestTracesExported(t *testing.T) {
	recv := &otlpReceiver{}
	collector := httptest.NewServer(recv)
	defer collector.Close()
	up := &traceUpstream{failed: map[string]bool{}}
	upstream := httptest.NewServer(up)
	defer upstream.Close()

	const (
		admin       = "an-admin-key-of-enough-length" // adminCall's
		upstreamKey = "sk-upstream-SECRET-key"
		otlpToken   = "otlp-header-SECRET"
		// A client's trace: the request's span must be its child.
		clientTrace  = "4bf92f3577b34da6a3ce929d0e0e4736"
		clientParent = "00f067aa0ba902b7"
	)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "tollgate.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`
admin_key: %s
dev_key: false
providers:
  - {name: up, type: openai, base_url: %q, api_key: %s, retry: {max_attempts: 2, base: 1ms, max: 2ms}}
models:
  - {name: m1, provider: up, upstream_model: up-model, input_usd_per_mtok: 1, output_usd_per_mtok: 2, max_input_tokens: 8000, max_output_tokens: 1000}
cache:
  semantic: {enabled: false}
otel:
  endpoint: %q
  headers: {x-otlp-token: %s}
  service_name: tollgate-test
`, admin, upstream.URL+"/v1", upstreamKey, collector.URL, otlpToken)), 0o644)
	r := start(t, nil, "-config", cfg, "-data", dir)
	var key struct{ ID, Key string }
	if st := adminCall(t, r.url, "POST", "/admin/keys", `{"name":"traced","budgets":[{"period":"daily","limit_usd":5}]}`, &key); st != 201 {
		t.Fatalf("create key: %d", st)
	}

	type want struct {
		cache        string
		attempts     []int // each attempt span's http status (0: succeeded)
		stream       bool
		finish       string
		parentClient bool // the client sent a traceparent
		status       int  // the client's (0: 200)
	}
	tests := []struct {
		name string
		body string
		tp   string
		want want
	}{
		{"miss with an incoming traceparent", `{"model":"m1","max_tokens":50,"messages":[{"role":"user","content":"PROMPT-ALPHA what is a span"}]}`,
			"00-" + clientTrace + "-" + clientParent + "-01", want{cache: "miss", attempts: []int{0}, finish: "stop", parentClient: true}},
		{"exact hit", `{"model":"m1","max_tokens":50,"messages":[{"role":"user","content":"PROMPT-ALPHA what is a span"}]}`,
			"", want{cache: "hit"}},
		{"stream", `{"model":"m1","max_tokens":50,"stream":true,"messages":[{"role":"user","content":"PROMPT-BETA stream it"}]}`,
			"", want{cache: "miss", attempts: []int{0}, stream: true, finish: "length"}},
		{"upstream fails once, then answers", `{"model":"m1","max_tokens":50,"messages":[{"role":"user","content":"PROMPT-GAMMA fail-once"}]}`,
			"", want{cache: "miss", attempts: []int{500, 0}, finish: "stop"}},
		{"upstream refuses the request", `{"model":"m1","max_tokens":50,"messages":[{"role":"user","content":"PROMPT-DELTA refuse"}]}`,
			"", want{cache: "miss", attempts: []int{400}, status: 400}},
	}
	ids := make([]string, len(tests))
	for i, tt := range tests {
		req, _ := http.NewRequest("POST", r.url+"/v1/chat/completions", strings.NewReader(tt.body))
		req.Header.Set("Authorization", "Bearer "+key.Key)
		if tt.tp != "" {
			req.Header.Set("traceparent", tt.tp)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if tt.want.status != 0 {
			if resp.StatusCode != tt.want.status {
				t.Fatalf("%s: %d %s", tt.name, resp.StatusCode, body)
			}
		} else if resp.StatusCode != 200 || !strings.Contains(string(body), "COMPLETION-") {
			t.Fatalf("%s: %d %s", tt.name, resp.StatusCode, body)
		}
		ids[i] = resp.Header.Get("x-tollgate-request-id")
	}
	if err := r.stop(t); err != nil { // shutdown flushes the exporter
		t.Fatal(err)
	}

	recv.mu.Lock()
	defer recv.mu.Unlock()
	if len(recv.res) == 0 || recv.res[0] != "tollgate-test" {
		t.Errorf("service.name %v, want tollgate-test", recv.res)
	}
	for _, secret := range []string{"PROMPT-", "COMPLETION-", admin, upstreamKey, otlpToken, key.Key} {
		if bytes.Contains(recv.raw.Bytes(), []byte(secret)) {
			t.Errorf("the exported spans contain %q", secret)
		}
	}
	byID := map[string]*tracepb.Span{}
	children := map[string][]*tracepb.Span{}
	for _, s := range recv.spans {
		byID[hex.EncodeToString(s.SpanId)] = s
		children[hex.EncodeToString(s.ParentSpanId)] = append(children[hex.EncodeToString(s.ParentSpanId)], s)
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var root *tracepb.Span
			for _, s := range recv.spans {
				if s.Kind == tracepb.Span_SPAN_KIND_SERVER && attrs(s)["tollgate.request_id"] == ids[i] {
					root = s
				}
			}
			if root == nil {
				t.Fatalf("no server span with tollgate.request_id %s among %d spans", ids[i], len(recv.spans))
			}
			a := attrs(root)
			if root.Name != "chat m1" {
				t.Errorf("request span %q", root.Name)
			}
			if tt.want.status != 0 {
				if root.Status.GetCode() != tracepb.Status_STATUS_CODE_ERROR || a["http.response.status_code"] != int64(tt.want.status) || a["error.type"] != "invalid_request_error" {
					t.Errorf("failed request's span: status %v, attributes %v", root.Status, a)
				}
				kids := children[hex.EncodeToString(root.SpanId)]
				if len(kids) != 4 { // lookup, plan, attempt, settle
					t.Errorf("failed request's children: %d", len(kids))
				}
				at := spanNamed(kids, "chat up-model")
				if at.GetStatus().GetCode() != tracepb.Status_STATUS_CODE_ERROR || attrs(at)["http.response.status_code"] != int64(tt.want.status) {
					t.Errorf("failed attempt: %v %v", at.GetStatus(), attrs(at))
				}
				return
			}
			if root.Status.GetCode() == tracepb.Status_STATUS_CODE_ERROR {
				t.Errorf("request span status %v", root.Status)
			}
			for k, v := range map[string]any{
				"gen_ai.operation.name": "chat", "gen_ai.request.model": "m1", "gen_ai.response.model": "m1", "gen_ai.request.max_tokens": int64(50),
				"gen_ai.usage.input_tokens": int64(11), "gen_ai.usage.output_tokens": int64(7), "tollgate.key_id": key.ID,
				"tollgate.cache": tt.want.cache, "tollgate.attempts": int64(len(tt.want.attempts)), "http.response.status_code": int64(200),
				"tollgate.stream": tt.want.stream,
			} {
				if a[k] != v {
					t.Errorf("%s = %v (%T), want %v (%T)", k, a[k], a[k], v, v)
				}
			}
			// 11 prompt tokens at $1/M and 7 completion tokens at $2/M: 25 micro-dollars; a hit saves it.
			cost, saved := int64(25), int64(0)
			if tt.want.cache == "hit" {
				cost, saved = 0, 25
			}
			if a["tollgate.cost_micros"] != cost || a["tollgate.saved_micros"] != saved {
				t.Errorf("cost %v saved %v, want %d %d", a["tollgate.cost_micros"], a["tollgate.saved_micros"], cost, saved)
			}
			if tt.want.cache == "hit" {
				if _, ok := a["gen_ai.provider.name"]; ok {
					t.Errorf("a hit names a provider: %v", a["gen_ai.provider.name"])
				}
			} else if a["gen_ai.provider.name"] != "up" {
				t.Errorf("gen_ai.provider.name %v", a["gen_ai.provider.name"])
			}
			if fr, _ := a["gen_ai.response.finish_reasons"].([]string); tt.want.finish != "" && (len(fr) != 1 || fr[0] != tt.want.finish) {
				t.Errorf("finish reasons %v, want [%s]", a["gen_ai.response.finish_reasons"], tt.want.finish)
			}
			if tt.want.stream && !hasEvent(root, "gen_ai.first_token") {
				t.Error("a stream's span has no first-token event")
			}
			if got := hex.EncodeToString(root.ParentSpanId); tt.want.parentClient != (got == clientParent) || tt.want.parentClient != (hex.EncodeToString(root.TraceId) == clientTrace) {
				t.Errorf("parent %s trace %x; client's traceparent honoured: want %v", got, root.TraceId, tt.want.parentClient)
			}

			kids := children[hex.EncodeToString(root.SpanId)]
			var attempts []*tracepb.Span
			names := map[string]int{}
			for _, c := range kids {
				names[c.Name]++
				if string(c.TraceId) != string(root.TraceId) {
					t.Errorf("child %s in another trace", c.Name)
				}
				if c.Kind == tracepb.Span_SPAN_KIND_CLIENT {
					attempts = append(attempts, c)
				}
			}
			if names["tollgate.cache.lookup"] != 1 || names["tollgate.settle"] != 1 {
				t.Errorf("children %v: want one cache lookup and one settle", names)
			}
			if la := attrs(spanNamed(kids, "tollgate.cache.lookup")); la["tollgate.cache"] != tt.want.cache {
				t.Errorf("lookup span: %v", la)
			}
			if sa := attrs(spanNamed(kids, "tollgate.settle")); sa["tollgate.cost_micros"] != cost {
				t.Errorf("settle span: %v", sa)
			}
			if plans := names["tollgate.plan"]; (plans == 1) != (tt.want.cache != "hit") {
				t.Errorf("%d plan spans", plans)
			} else if plans == 1 {
				if pa := attrs(spanNamed(kids, "tollgate.plan")); pa["tollgate.plan.model"] != "m1" || pa["tollgate.plan.downgrade"] != false {
					t.Errorf("plan span: %v", pa)
				}
			}
			if len(attempts) != len(tt.want.attempts) {
				t.Fatalf("%d attempt spans, want %d", len(attempts), len(tt.want.attempts))
			}
			for j, c := range attempts {
				ca := attrs(c)
				if c.Name != "chat up-model" || ca["gen_ai.provider.name"] != "up" || ca["gen_ai.request.model"] != "up-model" || ca["tollgate.attempt"] != int64(j+1) {
					t.Errorf("attempt %d: %s %v", j, c.Name, ca)
				}
				failed := c.Status.GetCode() == tracepb.Status_STATUS_CODE_ERROR
				if st := tt.want.attempts[j]; failed != (st != 0) || (st != 0 && (ca["http.response.status_code"] != int64(st) || ca["error.type"] == nil)) {
					t.Errorf("attempt %d: status %v %v, want http status %d", j, c.Status, ca, st)
				}
			}
		})
	}

	t.Run("upstream calls carry the attempt's traceparent", func(t *testing.T) {
		up.mu.Lock()
		defer up.mu.Unlock()
		if len(up.traceparents) != 5 {
			t.Fatalf("%d upstream calls: %v", len(up.traceparents), up.traceparents)
		}
		for i, tp := range up.traceparents {
			parts := strings.Split(tp, "-")
			if len(parts) != 4 {
				t.Fatalf("call %d: traceparent %q", i, tp)
			}
			s := byID[parts[2]]
			if s == nil || s.Kind != tracepb.Span_SPAN_KIND_CLIENT || hex.EncodeToString(s.TraceId) != parts[1] {
				t.Errorf("call %d: traceparent %q names no attempt span", i, tp)
			}
		}
		if !strings.Contains(up.traceparents[0], clientTrace) {
			t.Errorf("the first call's traceparent %q is not in the client's trace %s", up.traceparents[0], clientTrace)
		}
	})
}

// attrs flattens a span's attributes (nil span: none).
func attrs(s *tracepb.Span) map[string]any {
	out := map[string]any{}
	if s == nil {
		return out
	}
	for _, kv := range s.Attributes {
		switch v := kv.GetValue().GetValue().(type) {
		case *commonpb.AnyValue_StringValue:
			out[kv.Key] = v.StringValue
		case *commonpb.AnyValue_IntValue:
			out[kv.Key] = v.IntValue
		case *commonpb.AnyValue_BoolValue:
			out[kv.Key] = v.BoolValue
		case *commonpb.AnyValue_DoubleValue:
			out[kv.Key] = v.DoubleValue
		case *commonpb.AnyValue_ArrayValue:
			var list []string
			for _, e := range v.ArrayValue.Values {
				list = append(list, e.GetStringValue())
			}
			out[kv.Key] = list
		}
	}
	return out
}

func spanNamed(spans []*tracepb.Span, name string) *tracepb.Span {
	for _, s := range spans {
		if s.Name == name {
			return s
		}
	}
	return nil
}

func hasEvent(s *tracepb.Span, name string) bool {
	for _, e := range s.Events {
		if e.Name == name {
			return true
		}
	}
	return false
}
