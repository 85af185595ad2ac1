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

	"github.com/tollgate/tollgate/pkg/gateway"
	"github.com/tollgate/tollgate/pkg/httpapi"
	"github.com/tollgate/tollgate/pkg/keys"
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
		name string
		log  func(b *testing.B) io.Writer
	}{
		{"access-log-off", nil},
		{"access-log-file", func(b *testing.B) io.Writer {
			f, err := os.Create(filepath.Join(b.TempDir(), "access.log"))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { f.Close() })
			return f
		}},
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
			gw, err := gateway.New(gateway.Options{Models: []*gateway.Model{{Name: "sim-small", Spec: spec("sim-small"), Chat: true,
				Deployments: []gateway.Deployment{{Provider: sim, Upstream: "sim-small"}}}}, Tokens: tokens.NewCounter()})
			if err != nil {
				b.Fatal(err)
			}
			opts := httpapi.Options{Gateway: gw, Keys: ks, MaxBodyBytes: 4 << 20}
			if tc.log != nil {
				opts.AccessLog, opts.Logger = true, slog.New(slog.NewTextHandler(tc.log(b), nil))
			}
			h := httpapi.New(opts)
			body := `{"model":"sim-small","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"What is the capital of France?"}],"max_tokens":64}`
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				req := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+secret)
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != 200 {
					b.Fatalf("%d %s", w.Code, w.Body)
				}
			}
		})
	}
}
