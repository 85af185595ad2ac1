package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/pkg/config"
	"github.com/tollgate/tollgate/pkg/llm"
	"github.com/tollgate/tollgate/pkg/providers"
	"github.com/tollgate/tollgate/pkg/tokens"
)

// TestBoundFallbacksAreTheConfigDefaults: a provider built in Go with
// zero bounds gets the same ones as a loaded config's.
func TestBoundFallbacksAreTheConfigDefaults(t *testing.T) {
	for _, x := range []struct {
		name              string
		config, component int64
	}{
		{"providers[].max_response_bytes", config.DefaultMaxResponseBytes, providers.DefaultMaxResponseBytes},
		{"providers[].max_event_bytes", config.DefaultMaxEventBytes, providers.DefaultMaxEventBytes},
		{"providers[].max_stream_bytes", config.DefaultMaxStreamBytes, providers.DefaultMaxStreamBytes},
	} {
		if x.config != x.component {
			t.Errorf("%s: config default %d, component fallback %d", x.name, x.config, x.component)
		}
	}
}

// TestProviderBoundsAreWired: a provider's max_response_bytes,
// max_event_bytes and stream_idle_timeout from the config reach the client
// buildProvider makes, for each wire format; a route's stream_idle_timeout
// reaches its router.Route.
func TestProviderBoundsAreWired(t *testing.T) {
	big := strings.Repeat("x", 4<<10)
	tests := []struct {
		name     string
		upstream http.HandlerFunc
		stream   bool
		wantCode string
	}{
		{"an answer past max_response_bytes", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"pad":"`+big+`"}`)
		}, false, "upstream_response_too_large"},
		{"a stream line past max_event_bytes", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, "data: "+big+"\n\n")
		}, true, "upstream_event_too_large"},
		{"a silent stream past stream_idle_timeout", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			w.(http.Flusher).Flush()
			io.Copy(io.Discard, r.Body)
			<-r.Context().Done()
		}, true, "upstream_timeout"},
	}
	for _, typ := range []string{"openai", "anthropic"} {
		for _, tt := range tests {
			t.Run(typ+"/"+tt.name, func(t *testing.T) {
				up := httptest.NewServer(tt.upstream)
				defer up.Close()
				yaml := "providers:\n  - {name: p, type: " + typ + ", base_url: '" + up.URL + "', max_response_bytes: 2048, max_event_bytes: 1024, max_stream_bytes: 4096, stream_idle_timeout: 200ms}\n"
				cfg, err := config.Parse(strings.NewReader(yaml), func(string) string { return "" })
				if err != nil {
					t.Fatal(err)
				}
				p, err := buildProvider(cfg.Providers[0], "k", tokens.NewCounter(), nil)
				if err != nil {
					t.Fatal(err)
				}
				chat, err := llm.DecodeChatRequest([]byte(`{"model":"m","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}`))
				if err != nil {
					t.Fatal(err)
				}
				req := &providers.Request{Chat: chat, Model: "m", MaxTokens: 16}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a hang guard only
				defer cancel()
				if tt.stream {
					var st providers.Stream
					if st, err = p.Stream(ctx, req); err == nil {
						_, err = st.Recv()
						st.Close()
					}
				} else {
					_, err = p.Chat(ctx, req)
				}
				e, ok := llm.AsError(err)
				if !ok || e.Code != tt.wantCode {
					t.Fatalf("got %v, want code %s", err, tt.wantCode)
				}
			})
		}
	}

	routes := routesOf(map[string]config.Route{"slow": {Candidates: []string{"m"}, StreamIdleTimeout: config.Duration(2 * time.Minute)}})
	if len(routes) != 1 || routes[0].StreamIdleTimeout != 2*time.Minute {
		t.Fatalf("routes %+v: want the route's stream_idle_timeout of 2m", routes)
	}
}
