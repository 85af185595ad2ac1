package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/tollgate/tollgate/pkg/budget"
	"github.com/tollgate/tollgate/pkg/gateway"
	"github.com/tollgate/tollgate/pkg/guardrails"
	"github.com/tollgate/tollgate/pkg/httpapi"
	"github.com/tollgate/tollgate/pkg/keys"
	"github.com/tollgate/tollgate/pkg/llm"
	"github.com/tollgate/tollgate/pkg/providers"
	"github.com/tollgate/tollgate/pkg/sqlite"
	"github.com/tollgate/tollgate/pkg/tokens"
)

// BenchmarkChatHandler measures the gateway's own work for one non-streamed
// chat completion: decode, authenticate, count, call an in-process upstream
// that answers instantly, price, respond and log. No network is involved, so
// the figure is tollgate's overhead alone. The guards-* pair sends a 2 KB
// prompt with values to mask, without guards and with every built-in
// detector on: their difference is what the guards cost a request.
func BenchmarkChatHandler(b *testing.B) {
	prompt2K, err := os.ReadFile("../guardrails/testdata/prompt-2k.txt")
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		log     func(b *testing.B) io.Writer
		ledger  bool
		tracing bool // every request traced, its spans batched to an exporter that drops them
		guards  gateway.GuardConfig
		prompt  string // the user message ("": a short question)
	}{
		{name: "access-log-off"},
		{name: "ledger", ledger: true},
		{name: "tracing", ledger: true, tracing: true},
		{name: "access-log-file", log: func(b *testing.B) io.Writer {
			f, err := os.Create(filepath.Join(b.TempDir(), "access.log"))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { f.Close() })
			return f
		}},
		{name: "guards-off-2k", prompt: string(prompt2K)},
		{name: "guards-on-2k", prompt: string(prompt2K), guards: allBuiltinGuards},
	} {
		b.Run(tc.name, func(b *testing.B) {
			db, err := sqlite.Open(filepath.Join(b.TempDir(), "t.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			ks, _ := keys.Open(context.Background(), db, nil, nil)
			_, secret, _ := ks.Create(context.Background(), keys.New{Name: "b"})
			sim, _ := providers.NewSim(providers.SimConfig{})
			gwOpts := gateway.Options{Models: []*gateway.Model{{Name: "sim-small", Spec: spec("sim-small"), Chat: true,
				Deployments: []gateway.Deployment{{Provider: sim, Upstream: "sim-small"}}}}, Tokens: tokens.NewCounter(), Guards: tc.guards}
			var ledger *budget.Ledger
			if tc.ledger {
				journal := filepath.Join(b.TempDir(), "ledger.journal") // as the gateway runs it
				if ledger, err = budget.Open(context.Background(), db, budget.Options{DeliveryInterval: -1, JournalPath: journal}); err != nil {
					b.Fatal(err)
				}
				defer ledger.Close()
				gwOpts.Limits, gwOpts.Accounts = ledger.Limits, ledger.Accounts
			}
			if tc.tracing {
				tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(discardSpans{}))
				defer tp.Shutdown(context.Background())
				gwOpts.TracerProvider = tp
			}
			gw, err := gateway.New(gwOpts)
			if err != nil {
				b.Fatal(err)
			}
			opts := httpapi.Options{Gateway: gw, Keys: ks, Budget: ledger, MaxBodyBytes: 4 << 20}
			if tc.log != nil {
				opts.AccessLog, opts.Logger = true, slog.New(slog.NewTextHandler(tc.log(b), nil))
			}
			h := httpapi.New(opts)
			body := `{"model":"sim-small","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"What is the capital of France?"}],"max_tokens":64}`
			if tc.prompt != "" {
				body = chatBody2K(b, tc.prompt)
			}
			b.ReportAllocs()
			b.SetParallelism(8) // concurrent requests, as a gateway sees them (and as group commit needs)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(body))
					req.Header.Set("Authorization", "Bearer "+secret)
					w := httptest.NewRecorder()
					h.ServeHTTP(w, req)
					if w.Code != 200 {
						b.Errorf("%d %s", w.Code, w.Body)
						return
					}
				}
			})
			// The guards ran: the prompt's five values were masked in
			// every request.
			if len(tc.guards.Guards) > 0 {
				if pii := gw.Guards()[0]; pii.Hits.Request < 5*int64(b.N) {
					b.Errorf("pii guard: %d request hits after %d requests", pii.Hits.Request, b.N)
				}
			}
		})
	}
}

// allBuiltinGuards is the README's guardrails example: every built-in
// detector, personal data masked in both directions (the user's values
// restored in the answer), secrets refused.
var allBuiltinGuards = gateway.GuardConfig{Default: []string{"pii", "secrets"}, Guards: []guardrails.Spec{
	{Name: "pii", Detectors: []string{"email", "phone", "card", "iban", "us_ssn", "ip"}, Action: guardrails.Mask,
		Request: true, Answer: true, UnmaskAnswers: true},
	{Name: "secrets", Detectors: []string{"secret"}, Action: guardrails.Block, Request: true, Answer: true},
}}

// chatBody2K is a chat request whose user message is prompt.
func chatBody2K(b *testing.B, prompt string) string {
	body, err := json.Marshal(map[string]any{"model": "sim-small", "max_tokens": 64, "messages": []any{
		map[string]any{"role": "system", "content": "You are a helpful assistant."},
		map[string]any{"role": "user", "content": prompt},
	}})
	if err != nil {
		b.Fatal(err)
	}
	return string(body)
}

// discardSpans is an exporter that drops what it is given: the cost of
// tracing without a collector's.
type discardSpans struct{}

func (discardSpans) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardSpans) Shutdown(context.Context) error                             { return nil }

func BenchmarkDecodeChat(b *testing.B) {
	body := []byte(`{"model":"bench-model","messages":[{"role":"system","content":"You are a helpful assistant that answers briefly and precisely."},{"role":"user","content":"Hello! Can you help me plan a trip to Lisbon?"},{"role":"assistant","content":"Of course. How many days will you stay, and what do you enjoy?"},{"role":"user","content":"Four days; I like food, museums and walking. Give me a day-by-day plan."}],"temperature":0.7,"tools":[{"type":"function","function":{"name":"get_weather","description":"Current weather for a city","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}]}`)
	for _, tc := range []struct {
		name   string
		decode func([]byte) (*llm.ChatRequest, error)
	}{{"encoding-json", llm.DecodeChatRequest}, {"sonic", httpapi.DecodeChatForBench}} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := tc.decode(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
