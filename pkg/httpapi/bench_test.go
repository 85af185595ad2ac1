package httpapi_test

import (
	"context"
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
// the figure is tollgate's overhead alone.
func BenchmarkChatHandler(b *testing.B) {
	for _, tc := range []struct {
		name    string
		log     func(b *testing.B) io.Writer
		ledger  bool
		tracing bool // every request traced, its spans batched to an exporter that drops them
	}{
		{"access-log-off", nil, false, false},
		{"ledger", nil, true, false},
		{"tracing", nil, true, true},
		{"access-log-file", func(b *testing.B) io.Writer {
			f, err := os.Create(filepath.Join(b.TempDir(), "access.log"))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { f.Close() })
			return f
		}, false, false},
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
				Deployments: []gateway.Deployment{{Provider: sim, Upstream: "sim-small"}}}}, Tokens: tokens.NewCounter()}
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
		})
	}
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
